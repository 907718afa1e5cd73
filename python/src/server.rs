//! [`Server`]: the library's `Server` driven from Python. It listens and serves on the
//! module's runtime; what happens reaches Python through its event queue (see
//! [`crate::queue`] and [`crate::dispatch`]); sending, broadcasting and closing never wait.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ltprotocol::{HeaderLayout, Unknown};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use crate::dispatch::Dispatcher;
use crate::errors::{ConnectionClosed, EncodeError, send_error};
use crate::flow::InboxLimits;
use crate::forward::{Connections, Forward};
use crate::layout::Layout;
use crate::options::Options;
use crate::queue::{DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Event, EventQueue};
use crate::raw::RawMessage;
use crate::runtime::{block_on, runtime};

/// A server: listens, accepts any number of clients, and hands what happens to Python in
/// batches. See NATIVE.md.
#[pyclass(frozen, module = "ltprotocol._native")]
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) layout: HeaderLayout,
    pub(crate) queue: Arc<EventQueue>,
    dispatcher: Dispatcher,
    pub(crate) connections: Arc<Connections>,
    pub(crate) server: OnceLock<ltprotocol::Server<Unknown>>,
    /// Limits, timeouts and TLS (the asyncio API's); `None`: the library's defaults.
    options: Option<Options>,
}

/// Why a connection could not be found: it ended (or never was).
fn closed(id: u64) -> PyErr {
    ConnectionClosed::new_err(format!("connection #{id} is closed"))
}

impl Server {
    fn serving(&self) -> PyResult<&ltprotocol::Server<Unknown>> {
        self.server
            .get()
            .ok_or_else(|| PyRuntimeError::new_err("the server is not listening"))
    }
}

#[pymethods]
impl Server {
    /// A server for `layout`, not yet listening. Its queue holds at most `max_events` events
    /// and about `max_bytes` bytes of bodies before the connections stop reading. With
    /// `flow_control`, each connection also stops reading while it holds more messages than
    /// the program took (`release`) allows: `options`' `inbox_messages` / `inbox_capacity`.
    #[new]
    #[pyo3(signature = (
        layout, *, max_events = DEFAULT_MAX_EVENTS, max_bytes = DEFAULT_MAX_BYTES, options = None,
        flow_control = false,
    ))]
    fn new(
        layout: &Layout,
        max_events: usize,
        max_bytes: usize,
        options: Option<&Bound<'_, Options>>,
        flow_control: bool,
    ) -> PyResult<Self> {
        let queue =
            Arc::new(EventQueue::new(max_events, max_bytes).map_err(|err| {
                PyOSError::new_err(format!("cannot make the wake-up socket: {err}"))
            })?);
        Ok(Self {
            layout: layout.inner.clone(),
            dispatcher: Dispatcher::new(queue.clone()),
            queue,
            connections: Arc::new(Connections::new(inbox_limits(flow_control, options))),
            server: OnceLock::new(),
            options: options.map(|o| o.get().clone()),
        })
    }

    /// Binds `host:port` (port 0 picks a free one), starts accepting, and returns the bound
    /// port. Once only.
    fn listen(&self, py: Python<'_>, host: &str, port: u16) -> PyResult<u16> {
        if self.server.get().is_some() {
            return Err(PyRuntimeError::new_err("the server is already listening"));
        }
        let mut builder = ltprotocol::Server::<Unknown>::builder(self.layout.clone());
        if let Some(options) = &self.options {
            options.apply_server(&mut builder)?;
        }
        let addr = (host.to_owned(), port);
        let server = block_on(py, async move { builder.bind(addr).await })?
            .map_err(|err| PyOSError::new_err(format!("cannot listen on {host}:{port}: {err}")))?;
        let bound = server.local_addr().as_tcp().map_or(port, |a| a.port());
        let handler = Forward::new(self.queue.clone(), self.connections.clone());
        let serving = server.clone();
        runtime()?.spawn(async move { serving.serve(handler).await });
        self.server
            .set(server)
            .map_err(|_| PyRuntimeError::new_err("the server is already listening"))?;
        Ok(bound)
    }

    /// The bound address as `(host, port)`, or `None` before `listen`.
    #[getter]
    fn local_address(&self) -> Option<(String, u16)> {
        let addr = self.server.get()?.local_addr().as_tcp()?;
        Some((addr.ip().to_string(), addr.port()))
    }

    /// The descriptor to watch for readability; when readable, call `dispatch`.
    fn fileno(&self) -> i32 {
        self.queue.fileno()
    }

    /// Takes every queued event and calls `handler` with each (see NATIVE.md); returns how
    /// many there were. Never blocks.
    fn dispatch(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<usize> {
        // A connection whose callback failed: its later messages are skipped, so its inbox
        // is closed too (it waits for nobody).
        self.dispatcher
            .dispatch(py, handler, |id| self.connections.close(id))
    }

    /// Queues one message on connection `conn_id`. Never waits.
    ///
    /// Raises `OutboxFull` when its outbox is full, `ConnectionClosed` when it has ended,
    /// `EncodeError` when the message cannot be framed.
    fn send(&self, conn_id: u64, message_type: i128, body: &[u8]) -> PyResult<()> {
        let conn = self
            .connections
            .get(conn_id)
            .ok_or_else(|| closed(conn_id))?;
        conn.try_send(&RawMessage { message_type, body })
            .map_err(|err| send_error(&err))
    }

    /// Sends one message, encoded once, to every live connection, or to those of `conn_ids`
    /// (ids of connections that ended are skipped). Never waits. Returns `(reached, slow)`:
    /// how many connections it was queued for, and the ids of those whose outbox was full:
    /// they are closed (a slow reader, which must neither stall the others nor silently miss
    /// a message), gracefully with `conn_ids`, at once without.
    #[pyo3(signature = (message_type, body, conn_ids = None))]
    fn broadcast(
        &self,
        message_type: i128,
        body: &[u8],
        conn_ids: Option<Vec<u64>>,
    ) -> PyResult<(usize, Vec<u64>)> {
        let server = self.serving()?;
        let msg = RawMessage { message_type, body };
        let encode_error =
            |err: ltprotocol::EncodeError| EncodeError::new_err(ltprotocol::error_chain(&err));
        let Some(conn_ids) = conn_ids else {
            return Ok((server.broadcast(&msg).map_err(encode_error)?, Vec::new()));
        };
        let frame = server.encode(&msg).map_err(encode_error)?;
        let mut reached = 0;
        let mut slow = Vec::new();
        for conn in self.connections.get_many(&conn_ids) {
            match conn.try_send_encoded(&frame) {
                Ok(()) => reached += 1,
                Err(ltprotocol::SendError::QueueFull { .. }) => {
                    conn.close();
                    slow.push(conn.id().get());
                }
                // Closed meanwhile: it is no longer live.
                Err(_) => {}
            }
        }
        Ok((reached, slow))
    }

    /// Closes connection `conn_id` gracefully: what it queued is written first. Closing a
    /// connection that has ended does nothing.
    fn close(&self, conn_id: u64) {
        self.connections.close(conn_id);
    }

    /// Whether connection `conn_id` is live.
    fn is_connected(&self, conn_id: u64) -> bool {
        self.connections
            .get(conn_id)
            .is_some_and(|conn| conn.is_connected())
    }

    /// The live connections as `(conn_id, peer)`, by id.
    fn connections(&self) -> PyResult<Vec<(u64, String)>> {
        Ok(self
            .serving()?
            .connections()
            .iter()
            .map(|conn| (conn.id().get(), conn.peer().to_string()))
            .collect())
    }

    /// Starts a graceful shutdown and returns at once: stops accepting, lets every
    /// connection write what it queued, closes them; at `timeout` seconds what is left is
    /// closed at once. Events go on arriving (the disconnections), then a last `closed()`.
    /// With flow control, connections no longer wait for the program to take messages:
    /// those past a connection's inbox bound are dropped.
    fn shutdown_start(&self, timeout: f64) -> PyResult<()> {
        let deadline = duration(timeout)?;
        let queue = self.queue.clone();
        let server = self.server.get().cloned();
        // Nobody waits for the program to read any more: what is past the inboxes' bound is
        // dropped, so that every connection reads on to its end.
        self.connections.close_inboxes();
        runtime()?.spawn(async move {
            if let Some(server) = server {
                server.shutdown(deadline).await;
            }
            queue.push_always(Event::Closed);
        });
        Ok(())
    }

    /// Shuts down gracefully as `shutdown_start` does, but waits for the end (with the GIL
    /// released) for a caller that dispatches no more: from now on events are no longer
    /// waited for (messages past the queue's bound are dropped and counted). Returns
    /// `(connections, forced, unsent_frames, dropped_messages)`.
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<(usize, usize, usize, u64)> {
        let deadline = duration(timeout)?;
        self.queue.drain_mode();
        self.connections.close_inboxes();
        let Some(server) = self.server.get().cloned() else {
            return Ok((0, 0, 0, 0));
        };
        let report = block_on(py, async move { server.shutdown(deadline).await })?;
        self.queue.push_always(Event::Closed);
        Ok((
            report.connections,
            report.forced,
            report.unsent_frames,
            self.queue.dropped(),
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.dispatcher.traverse(&visit)
    }

    fn __clear__(&self) {
        self.dispatcher.clear();
    }
}

/// The bound of each connection's inbox when `flow_control` is on: the options', else the
/// defaults.
pub(crate) fn inbox_limits(
    flow_control: bool,
    options: Option<&Bound<'_, Options>>,
) -> Option<InboxLimits> {
    flow_control.then(|| options.map_or_else(InboxLimits::default, |o| o.get().inbox_limits()))
}

/// A timeout in seconds as a `Duration`.
pub(crate) fn duration(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "timeout {seconds} is not a number of seconds from 0"
        ))
    })
}
