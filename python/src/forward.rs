//! [`Forward`]: the library's [`Handler`] for servers and clients driven from Python. It runs
//! on the runtime's worker threads and never touches Python: every callback turns into an
//! [`Event`] pushed into the [`EventQueue`], waiting while the queue is full (so a slow
//! Python program slows its peers down, through TCP, instead of growing memory).
//!
//! It also keeps the live connections by id ([`Connections`]), which a client needs to send
//! to one of them (a server has its own registry).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ltprotocol::{ConnectionHandle, DisconnectReason, Handler, HeaderFields, Unknown};

use crate::queue::{Event, EventQueue};

/// Live connections by id, kept by [`Forward`].
#[derive(Debug, Default)]
pub(crate) struct Connections {
    by_id: Mutex<HashMap<u64, ConnectionHandle>>,
}

impl Connections {
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
