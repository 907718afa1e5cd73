//! [`Forward`]: the library's [`Handler`] for servers and clients driven from Python. It runs
//! on the runtime's worker threads and never touches Python: every callback turns into an
//! [`Event`] pushed into the [`EventQueue`], waiting while the queue is full (so a slow
//! Python program slows its peers down, through TCP, instead of growing memory).
//!
//! It also keeps the live connections by id ([`Connections`]), which a client needs to send
//! to one of them (a server has its own registry), and, for the asyncio API, applies the
//! per-connection flow control of [`crate::flow`]: a message is pushed only once its
//! connection's [`Inbox`] has admitted it.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ltprotocol::{ConnectionHandle, DisconnectReason, Handler, HeaderFields, Unknown};

use crate::flow::{Inbox, InboxLimits};
use crate::queue::{Event, EventQueue};

/// Live connections by id, kept by [`Forward`], and their flow control.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    by_id: Mutex<HashMap<u64, ConnectionHandle>>,
    /// Flow control ([`crate::flow`]) when set: each connection's inbox is bounded by these.
    inbox: Option<InboxLimits>,
    /// Set when the owner closes: every inbox, even of connections made later, is closed.
    inboxes_closed: AtomicBool,
}

impl Connections {
    /// Connections with flow control bounded by `inbox`, or none (`None`: every message is
    /// pushed at once, as the drop-in API wants).
    pub(crate) fn new(inbox: Option<InboxLimits>) -> Self {
        Self {
            inbox,
            ..Self::default()
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<u64, ConnectionHandle>> {
        // Every critical section is one insert, remove or lookup.
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live connection with this id.
    pub(crate) fn get(&self, id: u64) -> Option<ConnectionHandle> {
        self.map().get(&id).cloned()
    }

    /// The live connections among `ids`, in that order (the lock taken once).
    pub(crate) fn get_many(&self, ids: &[u64]) -> Vec<ConnectionHandle> {
        let map = self.map();
        ids.iter().filter_map(|id| map.get(id).cloned()).collect()
    }

    /// Closes connection `id` gracefully (what it queued is written first), and its inbox:
    /// it waits for the program no more. Closing a connection that ended does nothing.
    pub(crate) fn close(&self, id: u64) {
        if let Some(conn) = self.get(id) {
            conn.close();
            if self.inbox.is_some() {
                conn.state::<Inbox>().close();
            }
        }
    }

    /// The program took `messages` messages of connection `id`: gives their credit back.
    /// Nothing happens without flow control or for a connection that ended.
    pub(crate) fn release(&self, id: u64, messages: usize) {
        if let Some(limits) = self.inbox
            && let Some(conn) = self.get(id)
        {
            conn.state::<Inbox>().release(limits, messages);
        }
    }

    /// What connection `id` holds that the program has not taken: `(messages, bytes,
    /// paused)`; `None` without flow control or for a connection that ended.
    pub(crate) fn inbox_state(&self, id: u64) -> Option<(usize, usize, bool)> {
        self.inbox?;
        Some(self.get(id)?.state::<Inbox>().state())
    }

    /// Closes every connection's inbox, now and of connections made later: the owner is
    /// closing, and no connection may wait for the program to read.
    pub(crate) fn close_inboxes(&self) {
        if self.inbox.is_none() {
            return;
        }
        self.inboxes_closed.store(true, Ordering::Release);
        for conn in self.map().values() {
            conn.state::<Inbox>().close();
        }
    }

    /// Whether the message may be pushed: at once without flow control, else once the
    /// connection's inbox admits it (waiting while the connection is paused); `false`: drop
    /// it (the inbox is closed and full).
    async fn admit(&self, conn: &ConnectionHandle, bytes: usize) -> bool {
        let Some(limits) = self.inbox else {
            return true;
        };
        let inbox = conn.state::<Inbox>();
        if self.inboxes_closed.load(Ordering::Acquire) {
            inbox.close();
        }
        match inbox.try_admit(limits, bytes) {
            Some(deliver) => deliver,
            // The rare path, boxed: the message future stays small.
            None => Box::pin(inbox.admit(limits, bytes)).await,
        }
    }
}

/// Forwards every callback into an [`EventQueue`]; see the module's documentation.
#[derive(Debug)]
pub(crate) struct Forward {
    queue: Arc<EventQueue>,
    connections: Arc<Connections>,
}

impl Forward {
    pub(crate) fn new(queue: Arc<EventQueue>, connections: Arc<Connections>) -> Self {
        Self { queue, connections }
    }
}

impl Handler<Unknown> for Forward {
    async fn connected(&self, conn: &ConnectionHandle) {
        let id = conn.id().get();
        self.connections.map().insert(id, conn.clone());
        let peer = conn.peer().to_string();
        self.queue.push(Event::Connected { id, peer }).await;
    }

    async fn message(&self, conn: &ConnectionHandle, message: Unknown, fields: &HeaderFields) {
        if !self.connections.admit(conn, message.body.len()).await {
            self.queue.count_dropped();
            return;
        }
        let event = Event::Message {
            id: conn.id().get(),
            message_type: message.message_type.value(),
            body: message.body,
            fields: fields.clone(),
        };
        self.queue.push(event).await;
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        let id = conn.id().get();
        self.connections.map().remove(&id);
        let cause = reason.clone();
        let reason = ltprotocol::error_chain(reason);
        let event = Event::Disconnected { id, reason, cause };
        self.queue.push(event).await;
    }

    async fn connecting(&self, attempt: u32) {
        self.queue.push(Event::Connecting { attempt }).await;
    }

    async fn connect_failed(&self, attempt: u32, error: &io::Error, retry_in: Option<Duration>) {
        let event = Event::ConnectFailed {
            attempt,
            error: ltprotocol::error_chain(error),
            retry_in: retry_in.map(|d| d.as_secs_f64()),
        };
        self.queue.push(event).await;
    }
}
