//! [`Inbox`]: per-connection flow control for the asyncio API, so that a connection whose
//! messages the program does not take stops being read, instead of growing memory.
//!
//! The event queue ([`crate::queue`]) is shared by every connection of a server or client and
//! is emptied by every dispatch, whatever the program reads: it bounds what crosses from the
//! runtime to Python, not what waits in Python. What waits in Python is bounded here, per
//! connection: before [`Forward`](crate::forward::Forward) pushes a message, the connection's
//! task takes credit for it from the connection's [`Inbox`] (one message, its body's bytes);
//! the program gives the credit back when it takes the message ([`Inbox::release`], called
//! from Python, batched). A connection that holds [`InboxLimits::messages`] messages or
//! [`InboxLimits::bytes`] bytes of bodies that the program has not taken is **paused**: its
//! task waits here (so it reads nothing more and TCP slows that peer only), holding no place
//! in the shared queue, until the program has taken enough for it to be back at the low-water
//! mark (half of each bound). Other connections go on.
//!
//! # No lost wake-up, no GIL
//!
//! The waiting task registers for the resume notification before it looks at the counters
//! under the lock; [`Inbox::release`] changes them under the lock and notifies after, so a
//! release between the look and the wait is seen. `release` runs on the Python thread and
//! never blocks; the waiting task runs on the runtime and never touches Python.
//!
//! # Ends
//!
//! A connection whose messages will not all be taken any more is [closed](Inbox::close): the
//! program closed it (or its server or client), a callback failed, or its owner is shutting
//! down with nobody dispatching. From then on it never waits: messages within the bound are
//! still handed over (the program may still read them), those past it are dropped, so that
//! the connection reads on to the peer's end (or the linger) at once, in bounded memory.
//! Dropping a waiting task (the connection aborted) leaves nothing behind.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use tokio::sync::Notify;

use crate::client::Client;
use crate::server::Server;

/// Default bound of a connection's inbox, in messages.
pub(crate) const DEFAULT_INBOX_MESSAGES: usize = 1024;
/// Default bound of a connection's inbox, in bytes of bodies.
pub(crate) const DEFAULT_INBOX_BYTES: usize = 1024 * 1024;

/// How much a connection may hold that the program has not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboxLimits {
    /// Messages.
    pub(crate) messages: usize,
    /// Bytes of bodies (a larger message is still let through when nothing else is held).
    pub(crate) bytes: usize,
}

impl Default for InboxLimits {
    fn default() -> Self {
        Self {
            messages: DEFAULT_INBOX_MESSAGES,
            bytes: DEFAULT_INBOX_BYTES,
        }
    }
}

impl InboxLimits {
    /// Whether holding `messages` messages and `bytes` bytes is at or under the low-water mark.
    fn low(&self, messages: usize, bytes: usize) -> bool {
        messages <= self.messages / 2 && bytes <= self.bytes / 2
    }
}

#[derive(Debug, Default)]
struct Held {
    /// The sizes of the messages handed to Python and not yet taken by the program, oldest
    /// first (Python gives back a count; this says how many bytes that was).
    sizes: VecDeque<usize>,
    bytes: usize,
    /// Over the bound: waiting to be back at the low-water mark.
    paused: bool,
    /// Never waits again; drops what is past the bound.
    closed: bool,
}

/// One connection's credit; see the module's documentation. Kept in the connection's state
/// (`ConnectionHandle::state`), so that looking it up takes no global lock.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    held: Mutex<Held>,
    resume: Notify,
}

impl Inbox {
    fn held(&self) -> MutexGuard<'_, Held> {
        // Every critical section is a few counter updates: consistent even after a panic.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes credit for one message of `bytes` bytes, waiting while the connection is paused;
    /// says whether to hand the message over (`false`: the inbox is closed and full, drop
    /// it). Cancel-safe: dropped while waiting, it took nothing.
    pub(crate) async fn admit(&self, limits: InboxLimits, bytes: usize) -> bool {
        loop {
            let mut resumed = pin!(self.resume.notified());
            // Registered before looking, so a release between the look and the wait is seen.
            resumed.as_mut().enable();
            if let Some(deliver) = self.try_admit(limits, bytes) {
                return deliver;
            }
            resumed.await;
        }
    }

    /// [`admit`](Self::admit) without waiting: `None` when the connection is paused.
    pub(crate) fn try_admit(&self, limits: InboxLimits, bytes: usize) -> Option<bool> {
        let mut held = self.held();
        let count = held.sizes.len();
        if held.paused && !held.closed {
            if !limits.low(count, held.bytes) {
                return None;
            }
            held.paused = false;
        }
        let fits = count == 0 || (count < limits.messages && held.bytes + bytes <= limits.bytes);
        if !fits {
            if held.closed {
                return Some(false);
            }
            held.paused = true;
            return None;
        }
        held.sizes.push_back(bytes);
        held.bytes += bytes;
        Some(true)
    }

    /// The program took `messages` messages (the oldest held): gives their credit back, and
    /// resumes the connection if it is paused and now at the low-water mark. Never blocks.
    pub(crate) fn release(&self, limits: InboxLimits, messages: usize) {
        let resume = {
            let mut held = self.held();
            for _ in 0..messages {
                let Some(bytes) = held.sizes.pop_front() else {
                    break;
                };
                held.bytes -= bytes;
            }
            held.paused && limits.low(held.sizes.len(), held.bytes)
        };
        if resume {
            self.resume.notify_waiters();
        }
    }

    /// From now on never waits; messages past the bound are dropped.
    pub(crate) fn close(&self) {
        self.held().closed = true;
        self.resume.notify_waiters();
    }

    /// What is held: `(messages, bytes, paused)`.
    pub(crate) fn state(&self) -> (usize, usize, bool) {
        let held = self.held();
        (held.sizes.len(), held.bytes, held.paused && !held.closed)
    }
}

// What Python calls (a `#[pymethods]` block of each of `Server` and `Client`).

#[pymethods]
impl Server {
    /// With flow control: the program took `messages` more messages of connection
    /// `conn_id` (call it in batches); once the connection holds no more than half of its
    /// inbox's bounds, it is read again. Does nothing without flow control, or for a
    /// connection that ended. Never blocks.
    fn release(&self, conn_id: u64, messages: usize) {
        self.connections.release(conn_id, messages);
    }

    /// With flow control: what connection `conn_id` holds that the program has not taken
    /// (released): `(messages, bytes, paused)`; `None` without flow control or for a
    /// connection that ended.
    fn inbox(&self, conn_id: u64) -> Option<(usize, usize, bool)> {
        self.connections.inbox_state(conn_id)
    }
}

#[pymethods]
impl Client {
    /// As `Server.release`.
    fn release(&self, conn_id: u64, messages: usize) {
        self.connections.release(conn_id, messages);
    }

    /// As `Server.inbox`.
    fn inbox(&self, conn_id: u64) -> Option<(usize, usize, bool)> {
        self.connections.inbox_state(conn_id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    const LIMITS: InboxLimits = InboxLimits {
        messages: 4,
        bytes: 100,
    };

    #[test]
    fn pauses_at_the_bound_and_resumes_at_the_low_water_mark() {
        let inbox = Inbox::default();
        for _ in 0..4 {
            assert_eq!(inbox.try_admit(LIMITS, 1), Some(true));
        }
        assert_eq!(inbox.try_admit(LIMITS, 1), None);
        assert_eq!(inbox.state(), (4, 4, true));
        inbox.release(LIMITS, 1);
        assert_eq!(
            inbox.try_admit(LIMITS, 1),
            None,
            "3 held: above the low-water mark"
        );
        inbox.release(LIMITS, 1);
        assert_eq!(
            inbox.try_admit(LIMITS, 1),
            Some(true),
            "2: the low-water mark"
        );
        assert_eq!(inbox.state(), (3, 3, false));
    }

    #[test]
    fn bytes_bound_lets_one_large_message_through_alone() {
        let inbox = Inbox::default();
        assert_eq!(
            inbox.try_admit(LIMITS, 500),
            Some(true),
            "alone: let through"
        );
        assert_eq!(inbox.try_admit(LIMITS, 1), None);
        inbox.release(LIMITS, 1);
        assert_eq!(inbox.state(), (0, 0, true));
        assert_eq!(inbox.try_admit(LIMITS, 60), Some(true));
        assert_eq!(inbox.try_admit(LIMITS, 60), None, "120 bytes > 100");
        inbox.release(LIMITS, 5);
        assert_eq!(
            inbox.state(),
            (0, 0, true),
            "a release past what is held is no error"
        );
    }

    #[test]
    fn closed_never_waits_and_drops_past_the_bound() {
        let inbox = Inbox::default();
        for _ in 0..3 {
            assert_eq!(inbox.try_admit(LIMITS, 1), Some(true));
        }
        inbox.close();
        assert_eq!(inbox.try_admit(LIMITS, 1), Some(true), "within the bound");
        for _ in 0..100 {
            assert_eq!(inbox.try_admit(LIMITS, 1), Some(false));
        }
        inbox.release(LIMITS, 1);
        assert_eq!(inbox.try_admit(LIMITS, 1), Some(true), "room again");
    }

    #[test]
    fn a_waiting_admit_resumes_on_release_and_on_close() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let inbox = Arc::new(Inbox::default());
            for _ in 0..4 {
                assert!(inbox.admit(LIMITS, 1).await);
            }
            let waiting = tokio::spawn({
                let inbox = inbox.clone();
                async move { inbox.admit(LIMITS, 1).await }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiting.is_finished());
            inbox.release(LIMITS, 2);
            let delivered = tokio::time::timeout(Duration::from_secs(10), waiting)
                .await
                .unwrap()
                .unwrap();
            assert!(delivered);

            assert!(inbox.admit(LIMITS, 1).await, "the fourth");
            let waiting = tokio::spawn({
                let inbox = inbox.clone();
                async move { inbox.admit(LIMITS, 1).await }
            });
            inbox.close();
            let delivered = tokio::time::timeout(Duration::from_secs(10), waiting)
                .await
                .unwrap()
                .unwrap();
            assert!(!delivered, "closed and full: dropped");
        });
    }
}
