//! [`Client`]: the library's `ReconnectingClient` driven from Python. It connects in the
//! background on the module's runtime and reconnects with the library's `Backoff`; what
//! happens reaches Python through its event queue (see [`crate::queue`] and
//! [`crate::dispatch`]); sending and closing never wait.

use std::sync::Arc;

use ltprotocol::{Backoff, ReconnectingClient, Unknown};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use crate::dispatch::Dispatcher;
use crate::errors::{ConnectionClosed, send_error};
use crate::forward::{Connections, Forward};
use crate::layout::Layout;
use crate::options::Options;
use crate::queue::{DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Event, EventQueue};
use crate::raw::RawMessage;
use crate::runtime::{block_on, runtime};
use crate::server::{duration, inbox_limits};

/// A reconnecting client. See NATIVE.md.
#[pyclass(frozen, module = "ltprotocol._native")]
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) client: ReconnectingClient<Unknown>,
    pub(crate) queue: Arc<EventQueue>,
    dispatcher: Dispatcher,
    pub(crate) connections: Arc<Connections>,
    /// The header layout, for the header fields of sends.
    pub(crate) layout: ltprotocol::HeaderLayout,
}

/// The backoff from the keywords given, each missing one at the library's default.
fn backoff(
    initial: Option<f64>,
    factor: Option<f64>,
    max: Option<f64>,
    jitter: Option<f64>,
    max_attempts: Option<u32>,
    reset_after: Option<f64>,
) -> PyResult<Backoff> {
    let mut backoff = Backoff::default();
    if let Some(initial) = initial {
        backoff.initial = duration(initial)?;
    }
    if let Some(factor) = factor {
        backoff.factor = factor;
    }
    if let Some(max) = max {
        backoff.max = duration(max)?;
    }
    if let Some(jitter) = jitter {
        backoff.jitter = jitter;
    }
    backoff.max_attempts = max_attempts;
    if let Some(reset_after) = reset_after {
        backoff.reset_after = duration(reset_after)?;
    }
    Ok(backoff)
}

#[pymethods]
impl Client {
    /// Starts connecting to `host:port` in the background and returns at once. The backoff
    /// keywords (seconds) default to the library's: 0.5 s initial, ×2, 30 s max, ±20 %
    /// jitter, unlimited attempts, reset after a connection that lasted 2 s.
    #[new]
    #[pyo3(signature = (
        layout, host, port, *,
        initial_delay = None, factor = None, max_delay = None, jitter = None,
        max_attempts = None, reset_after = None,
        max_events = DEFAULT_MAX_EVENTS, max_bytes = DEFAULT_MAX_BYTES, options = None,
        flow_control = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        layout: &Layout,
        host: &str,
        port: u16,
        initial_delay: Option<f64>,
        factor: Option<f64>,
        max_delay: Option<f64>,
        jitter: Option<f64>,
        max_attempts: Option<u32>,
        reset_after: Option<f64>,
        max_events: usize,
        max_bytes: usize,
        options: Option<&Bound<'_, Options>>,
        flow_control: bool,
    ) -> PyResult<Self> {
        let backoff = backoff(
            initial_delay,
            factor,
            max_delay,
            jitter,
            max_attempts,
            reset_after,
        )?;
        let queue =
            Arc::new(EventQueue::new(max_events, max_bytes).map_err(|err| {
                PyOSError::new_err(format!("cannot make the wake-up socket: {err}"))
            })?);
        let connections = Arc::new(Connections::new(inbox_limits(flow_control, options)));
        let handler = Forward::new(queue.clone(), connections.clone());
        // The client's task is spawned on the module's runtime.
        let _entered = runtime()?.enter();
        let mut builder = ReconnectingClient::<Unknown>::builder(layout.inner.clone());
        builder.backoff(backoff);
        if let Some(options) = options {
            options.get().apply_client(&mut builder)?;
        }
        let client = builder.connect_with_handler(format!("{host}:{port}"), handler);
        Ok(Self {
            client,
            layout: layout.inner.clone(),
            dispatcher: Dispatcher::new(queue.clone()),
            queue,
            connections,
        })
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

    /// Queues one message on connection `conn_id` (this very connection: a message sent
    /// after it ended raises `ConnectionClosed`). Never waits.
    ///
    /// Raises `OutboxFull`, `ConnectionClosed` or `EncodeError`.
    fn send(&self, conn_id: u64, message_type: i128, body: &[u8]) -> PyResult<()> {
        let conn = self
            .connections
            .get(conn_id)
            .ok_or_else(|| ConnectionClosed::new_err(format!("connection #{conn_id} is closed")))?;
        conn.try_send(&RawMessage { message_type, body })
            .map_err(|err| send_error(&err))
    }

    /// Queues one message on the client: written on the current connection, or kept (up to
    /// the outbox's capacity) and written first thing after the next (re)connection. Never
    /// waits.
    ///
    /// Raises `OutboxFull`, `ConnectionClosed` (after `close`) or `EncodeError`.
    fn send_queued(&self, message_type: i128, body: &[u8]) -> PyResult<()> {
        self.client
            .try_send(&RawMessage { message_type, body })
            .map_err(|err| send_error(&err))
    }

    /// Closes connection `conn_id` gracefully (the client then reconnects, as after any
    /// lost connection). Closing a connection that has ended does nothing.
    fn close_connection(&self, conn_id: u64) {
        self.connections.close(conn_id);
    }

    /// Whether connection `conn_id` is live.
    fn is_connected(&self, conn_id: u64) -> bool {
        self.connections
            .get(conn_id)
            .is_some_and(|conn| conn.is_connected())
    }

    /// The current connection's id, or `None` while disconnected.
    #[getter]
    fn connection_id(&self) -> Option<u64> {
        self.client.connection().map(|conn| conn.id().get())
    }

    /// Starts closing and returns at once: no more sends; what is queued is written
    /// (connecting again if need be) until `timeout` seconds, then the client stops. Events go
    /// on arriving, then a last `closed()`. With flow control, connections no longer wait for
    /// the program to take messages: those past a connection's inbox bound are dropped.
    fn close_start(&self, timeout: f64) -> PyResult<()> {
        let deadline = duration(timeout)?;
        let client = self.client.clone();
        let queue = self.queue.clone();
        // Nobody waits for the program to read any more: what is past the inboxes' bound is
        // dropped, so that every connection reads on to its end.
        self.connections.close_inboxes();
        runtime()?.spawn(async move {
            client.close(deadline).await;
            queue.push_always(Event::Closed);
        });
        Ok(())
    }

    /// Closes as `close_start` does, but waits for the end (with the GIL released), for a
    /// caller that dispatches no more (messages past the queue's bound are dropped and
    /// counted). Returns `(unsent_frames, graceful, dropped_messages)`.
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<(usize, bool, u64)> {
        let deadline = duration(timeout)?;
        self.queue.drain_mode();
        self.connections.close_inboxes();
        let client = self.client.clone();
        let report = block_on(py, async move { client.close(deadline).await })?;
        self.queue.push_always(Event::Closed);
        Ok((report.unsent_frames, report.graceful, self.queue.dropped()))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.dispatcher.traverse(&visit)
    }

    fn __clear__(&self) {
        self.dispatcher.clear();
    }
}
