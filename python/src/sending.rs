//! Sends for the asyncio API, on `Server` and `Client` (a second `#[pymethods]` block of
//! each): with extra header fields (OpenFlow's `xid`), and the slow path of `await send`.
//!
//! `await conn.send(msg)` first tries to queue at once (`try_send`, no thread hop). Only
//! when the outbox is full does it hand the message to a runtime task that waits for room
//! ([`ltprotocol::ConnectionHandle::send_with`]) and then reports through the event queue
//! (`Event::Sent` with the caller's token), which resolves the Python future on the event
//! loop's thread. The asyncio side keeps at most one such send in flight per connection and
//! queues the rest behind it, so messages keep their order.

use std::sync::Arc;

use bytes::Bytes;
use ltprotocol::{ConnectionHandle, HeaderFields, HeaderLayout, SendError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::client::Client;
use crate::errors::{ConnectionClosed, EncodeError, send_error};
use crate::forward::Connections;
use crate::frame::header_fields;
use crate::queue::{Event, EventQueue};
use crate::raw::RawMessage;
use crate::runtime::runtime;
use crate::server::Server;

/// Connection `conn_id`'s handle while it is live; else `ConnectionClosed`.
fn live(connections: &Connections, conn_id: u64) -> PyResult<ConnectionHandle> {
    connections
        .get(conn_id)
        .ok_or_else(|| ConnectionClosed::new_err(format!("connection #{conn_id} is closed")))
}

/// Queues one message with extra header fields by name on `conn` now, for the
/// `try_send_frame` of `Server` and `Client`.
fn try_send_frame(
    layout: &HeaderLayout,
    conn: &ConnectionHandle,
    message_type: i128,
    body: &[u8],
    header: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let fields = header_fields(layout, header)?;
    conn.try_send_with(&RawMessage { message_type, body }, &fields)
        .map_err(|err| send_error(&err))
}

/// Waits for room on `conn`, queues the message, and reports with `token`.
fn send_later(
    queue: Arc<EventQueue>,
    conn: ConnectionHandle,
    token: u64,
    message_type: i128,
    body: Bytes,
    fields: HeaderFields,
) -> PyResult<()> {
    runtime()?.spawn(async move {
        let message = RawMessage {
            message_type,
            body: &body,
        };
        let result = conn.send_with(&message, &fields).await;
        queue.push(Event::Sent { token, result }).await;
    });
    Ok(())
}

#[pymethods]
impl Server {
    /// Queues one message on connection `conn_id` with extra header fields by name. Never
    /// waits.
    ///
    /// Raises `OutboxFull`, `ConnectionClosed` or `EncodeError` (also for an unknown field).
    #[pyo3(signature = (conn_id, message_type, body, header = None))]
    fn try_send_frame(
        &self,
        conn_id: u64,
        message_type: i128,
        body: &[u8],
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let conn = live(&self.connections, conn_id)?;
        try_send_frame(&self.layout, &conn, message_type, body, header)
    }

    /// Queues one message on connection `conn_id` once its outbox has room, and reports
    /// with `sent(token, exc)` through the dispatcher. Returns at once.
    ///
    /// Raises `ConnectionClosed` or `EncodeError` (an unknown field) at once.
    #[pyo3(signature = (conn_id, token, message_type, body, header = None))]
    fn send_frame_later(
        &self,
        conn_id: u64,
        token: u64,
        message_type: i128,
        body: &[u8],
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let fields = header_fields(&self.layout, header)?;
        let conn = live(&self.connections, conn_id)?;
        let body = Bytes::copy_from_slice(body);
        send_later(self.queue.clone(), conn, token, message_type, body, fields)
    }

    /// Sends one message, with extra header fields, to every live connection, encoded once;
    /// returns how many it was queued for (see `broadcast`). Never waits.
    #[pyo3(signature = (message_type, body, header = None))]
    fn broadcast_frame(
        &self,
        message_type: i128,
        body: &[u8],
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<usize> {
        let fields = header_fields(&self.layout, header)?;
        let Some(server) = self.server.get() else {
            return Ok(0);
        };
        server
            .broadcast_with(&RawMessage { message_type, body }, &fields)
            .map_err(|err| EncodeError::new_err(ltprotocol::error_chain(&err)))
    }

    /// How many bytes connection `conn_id`'s outbox holds at most, or `None` once it ended.
    fn outbox_capacity(&self, conn_id: u64) -> Option<usize> {
        Some(self.connections.get(conn_id)?.outbox_capacity())
    }
}

#[pymethods]
impl Client {
    /// Queues one message, with extra header fields, on the client (kept across reconnects,
    /// as `send_queued`). Never waits.
    ///
    /// Raises `OutboxFull`, `ConnectionClosed` (after `close`) or `EncodeError`.
    #[pyo3(signature = (message_type, body, header = None))]
    fn try_send_queued_frame(
        &self,
        message_type: i128,
        body: &[u8],
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let fields = header_fields(&self.layout, header)?;
        self.client
            .try_send_with(&RawMessage { message_type, body }, &fields)
            .map_err(|err| send_error(&err))
    }

    /// Queues one message on the client once its queue has room, and reports with
    /// `sent(token, exc)` through the dispatcher. Returns at once.
    #[pyo3(signature = (token, message_type, body, header = None))]
    fn send_queued_later(
        &self,
        token: u64,
        message_type: i128,
        body: &[u8],
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let fields = header_fields(&self.layout, header)?;
        let body = Bytes::copy_from_slice(body);
        let client = self.client.clone();
        let queue = self.queue.clone();
        runtime()?.spawn(async move {
            let message = RawMessage {
                message_type,
                body: &body,
            };
            let result: Result<(), SendError> = client.send_with(&message, &fields).await;
            queue.push(Event::Sent { token, result }).await;
        });
        Ok(())
    }

    /// Queues one message on connection `conn_id` of the client (this very connection, not
    /// kept across a reconnect), with extra header fields. Never waits.
    #[pyo3(signature = (conn_id, message_type, body, header = None))]
    fn try_send_frame(
        &self,
        conn_id: u64,
        message_type: i128,
        body: &[u8],
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let conn = live(&self.connections, conn_id)?;
        try_send_frame(&self.layout, &conn, message_type, body, header)
    }

    /// As `Server.send_frame_later`, on connection `conn_id` of the client.
    #[pyo3(signature = (conn_id, token, message_type, body, header = None))]
    fn send_frame_later(
        &self,
        conn_id: u64,
        token: u64,
        message_type: i128,
        body: &[u8],
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let fields = header_fields(&self.layout, header)?;
        let conn = live(&self.connections, conn_id)?;
        let body = Bytes::copy_from_slice(body);
        send_later(self.queue.clone(), conn, token, message_type, body, fields)
    }
}
