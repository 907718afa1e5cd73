//! [`EventQueue`]: how what happens on the runtime's threads reaches Python, in batches,
//! without a worker thread ever taking the GIL.
//!
//! The runtime's tasks push [`Event`]s into a queue bounded in events and in body bytes; a
//! task that finds it full waits (its connection reads nothing meanwhile, so TCP slows the
//! peer: back-pressure, and memory stays bounded). Python watches the read end of a
//! nonblocking socket pair ([`EventQueue::fileno`]) with its event loop (Twisted's
//! `addReader`, asyncio's `add_reader`) and, when it is readable, takes the whole batch at
//! once ([`EventQueue::take`]).
//!
//! # No lost wake-up
//!
//! A producer writes one byte when its push makes the queue go from empty to non-empty; the
//! consumer first drains the socket, then takes every event. An event pushed before the take
//! is in the batch; one pushed after it finds the queue empty and writes a byte, which the
//! next drain finds. The worst case is a spurious wake-up that finds nothing (a byte written
//! for an event that the take, coming after the drain, already carried off). Full queues are
//! the mirror image: a producer registers for the "room" notification before it looks at the
//! queue under the lock, and the consumer notifies after every take.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use ltprotocol::{DisconnectReason, HeaderFields, SendError};
use tokio::sync::Notify;

/// Default bound of a queue in events: a batch handed to Python at once.
pub(crate) const DEFAULT_MAX_EVENTS: usize = 16 * 1024;
/// Default bound of a queue in body bytes.
pub(crate) const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// What an event costs besides its body, for the byte bound.
const EVENT_OVERHEAD: usize = 64;

/// One thing that happened on a server's or client's connections, waiting for Python.
#[derive(Debug)]
pub(crate) enum Event {
    /// A connection was made.
    Connected {
        /// The connection's id, unique within its server or client.
        id: u64,
        /// The peer's address, as `str(conn)` shows it.
        peer: String,
    },
    /// A frame arrived.
    Message {
        /// The connection it came on.
        id: u64,
        /// Its type number.
        message_type: i128,
        /// Its body.
        body: Bytes,
        /// Its extra header fields (OpenFlow's `xid`).
        fields: HeaderFields,
    },
    /// A connection ended.
    Disconnected {
        /// The connection.
        id: u64,
        /// Why, as one line.
        reason: String,
        /// Why, as the library said it (for a typed exception).
        cause: DisconnectReason,
    },
    /// A send that waited for room in an outbox finished (`token` is the caller's).
    Sent {
        /// What the caller passed with the send.
        token: u64,
        /// Whether the message was queued.
        result: Result<(), SendError>,
    },
    /// A client is about to try to connect.
    Connecting {
        /// The attempt's number since the last lasting connection, from 1.
        attempt: u32,
    },
    /// A client's connection attempt failed.
    ConnectFailed {
        /// The attempt's number, from 1.
        attempt: u32,
        /// Why, as one line.
        error: String,
        /// Seconds until the next attempt; `None` when the client gives up.
        retry_in: Option<f64>,
    },
    /// The server or client finished shutting down; nothing follows.
    Closed,
}

impl Event {
    fn weight(&self) -> usize {
        match self {
            Self::Message { body, .. } => EVENT_OVERHEAD + body.len(),
            _ => EVENT_OVERHEAD,
        }
    }
}

#[derive(Debug)]
struct State {
    events: Vec<Event>,
    /// The events' weight, for the byte bound.
    bytes: usize,
    /// Set when nobody will take events any more while the owner shuts down: pushes stop
    /// waiting; messages past the bound are dropped and counted, other events always queued.
    draining: bool,
    dropped: u64,
}

/// A bounded queue of [`Event`]s with a wake-up socket; see the module's documentation.
#[derive(Debug)]
pub(crate) struct EventQueue {
    state: Mutex<State>,
    /// Notified after every take: producers waiting for room look again.
    room: Notify,
    /// Python watches this end.
    reader: UnixStream,
    /// Producers write a byte here when the queue stops being empty.
    writer: UnixStream,
    max_events: usize,
    max_bytes: usize,
}

impl EventQueue {
    /// A queue holding at most `max_events` events and about `max_bytes` bytes of bodies
    /// (an event larger than that is accepted when the queue is empty).
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self {
            state: Mutex::new(State {
                events: Vec::new(),
                bytes: 0,
                draining: false,
                dropped: 0,
            }),
            room: Notify::new(),
            reader,
            writer,
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a push or a swap: the state is consistent even if a
        // holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The descriptor Python watches for readability.
    pub(crate) fn fileno(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Queues `event`, waiting while the queue is full (never while it is draining).
    pub(crate) async fn push(&self, event: Event) {
        let Err(event) = self.try_push(event) else {
            return;
        };
        let mut event = event;
        loop {
            let mut room = pin!(self.room.notified());
            // Registered before looking, so a take between the look and the wait is seen.
            room.as_mut().enable();
            match self.try_push(event) {
                Ok(()) => return,
                Err(back) => event = back,
            }
            room.await;
        }
    }

    /// Queues `event` if there is room (or the queue is draining); gives it back otherwise.
    fn try_push(&self, event: Event) -> Result<(), Event> {
        let weight = event.weight();
        let was_empty = {
            let mut state = self.state();
            let full = !state.events.is_empty()
                && (state.events.len() >= self.max_events || state.bytes + weight > self.max_bytes);
            if full {
                if !state.draining {
                    return Err(event);
                }
                if matches!(event, Event::Message { .. }) {
                    state.dropped += 1;
                    return Ok(());
                }
            }
            let was_empty = state.events.is_empty();
            state.events.push(event);
            state.bytes += weight;
            was_empty
        };
        if was_empty {
            self.wake();
        }
        Ok(())
    }

    /// Queues `event` whatever the bound: for the one [`Event::Closed`] at the end.
    pub(crate) fn push_always(&self, event: Event) {
        let was_empty = {
            let mut state = self.state();
            let was_empty = state.events.is_empty();
            state.bytes += event.weight();
            state.events.push(event);
            was_empty
        };
        if was_empty {
            self.wake();
        }
    }

    fn wake(&self) {
        // Would block: the socket is full of earlier bytes, and one is enough. Any other
        // error cannot happen on a socket pair we hold both ends of.
        let _ = (&self.writer).write(&[1]);
    }

    /// Takes every queued event into `batch` (which should be empty: its allocation is
    /// reused), after draining the wake-up socket. Never blocks.
    pub(crate) fn take(&self, batch: &mut Vec<Event>) {
        let mut sink = [0u8; 256];
        // Until it would block: every byte written before this point is consumed.
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
        {
            let mut state = self.state();
            std::mem::swap(&mut state.events, batch);
            state.bytes = 0;
        }
        self.room.notify_waiters();
    }

    /// From now on pushes never wait: the owner is shutting down and nobody may take events.
    /// Messages past the bound are dropped (counted by [`dropped`](Self::dropped)); the other
    /// events are always queued (one or two per connection).
    pub(crate) fn drain_mode(&self) {
        self.state().draining = true;
        self.room.notify_waiters();
    }

    /// Counts a message dropped before it was pushed (a closed connection's inbox was full).
    pub(crate) fn count_dropped(&self) {
        self.state().dropped += 1;
    }

    /// How many messages were dropped: by [`drain_mode`](Self::drain_mode), and counted by
    /// [`count_dropped`](Self::count_dropped).
    pub(crate) fn dropped(&self) -> u64 {
        self.state().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, len: usize) -> Event {
        Event::Message {
            id,
            message_type: 1,
            body: Bytes::from(vec![0u8; len]),
            fields: HeaderFields::new(),
        }
    }

    /// Whether a wake-up byte is waiting (it is consumed).
    fn readable(queue: &EventQueue) -> bool {
        let mut byte = [0u8; 1];
        matches!((&queue.reader).read(&mut byte), Ok(1))
    }

    #[test]
    fn one_wake_byte_per_empty_to_non_empty_transition() {
        let queue = EventQueue::new(10, 1 << 20).unwrap();
        assert!(!readable(&queue));
        queue.try_push(message(1, 1)).unwrap();
        queue.try_push(message(1, 1)).unwrap();
        assert!(readable(&queue));
        let mut batch = Vec::new();
        queue.take(&mut batch);
        assert_eq!(batch.len(), 2);
        assert!(!readable(&queue), "take drains the wake-up bytes");
        queue.try_push(message(1, 1)).unwrap();
        assert!(readable(&queue), "a push after the take wakes again");
    }

    #[test]
    fn full_by_count_or_bytes_gives_the_event_back() {
        let queue = EventQueue::new(2, 1 << 20).unwrap();
        queue.try_push(message(1, 1)).unwrap();
        queue.try_push(message(1, 1)).unwrap();
        assert!(queue.try_push(message(1, 1)).is_err());

        let queue = EventQueue::new(100, 1000).unwrap();
        // Larger than the bound, into an empty queue: accepted.
        queue.try_push(message(1, 5000)).unwrap();
        assert!(queue.try_push(message(1, 1)).is_err());
    }

    #[test]
    fn drain_mode_drops_messages_past_the_bound_but_keeps_the_rest() {
        let queue = EventQueue::new(1, 1 << 20).unwrap();
        queue.try_push(message(1, 1)).unwrap();
        queue.drain_mode();
        queue.try_push(message(1, 1)).unwrap();
        queue
            .try_push(Event::Disconnected {
                id: 1,
                reason: "closed by peer".into(),
                cause: DisconnectReason::PeerClosed,
            })
            .unwrap();
        assert_eq!(queue.dropped(), 1);
        let mut batch = Vec::new();
        queue.take(&mut batch);
        assert_eq!(batch.len(), 2);
        assert!(matches!(batch[1], Event::Disconnected { .. }));
    }
}
