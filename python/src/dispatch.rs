//! [`Dispatcher`]: the Python side of an [`EventQueue`]. On the Python thread that watches
//! the queue's descriptor, [`Dispatcher::dispatch`] takes the whole batch and walks it in
//! Rust, calling the handler's Python callables itself: per message, one `bytes` for the body,
//! the decoder for its type (`decoders[type](body)`), then `message(conn, msg)`. No tuple per
//! message is built for Python to loop over.
//!
//! # The handler object
//!
//! Any Python object with these attributes, read once per batch (so they may change between
//! batches):
//!
//! * `decoders`: a `dict` from type number to a callable taking the body (`bytes`) and
//!   returning the message; a type not in it gives `None`. Or `None`, and then
//! * `decode(message_type, body)`: returns the message (used only when `decoders` is `None`);
//! * `connection(conn_id, peer)`: makes and returns the object that stands for the
//!   connection in the other callbacks (anything);
//! * `connected(conn)`: the connection is made (the ancestor's `new_conn_callback`);
//! * `message(conn, msg)`;
//! * `disconnected(conn, reason)`: `reason` is one line of text;
//! * `error(conn, exc)`: a callback raised `exc` (`conn` is `None` when `connected` raised);
//! * optional: `connecting(attempt)`, `connect_failed(attempt, error, retry_in)` (clients),
//!   `closed()` (the server or client finished shutting down);
//! * optional, for the asyncio API: `frames`, a `Layout`: when set, `message(conn, frame)`
//!   gets a `Frame` (type, body and header fields named by that layout) and neither
//!   `decoders` nor `decode` is read; `typed_reasons`, when true, makes `disconnected`'s
//!   `reason` the exception saying why (a `ConnectionClosed` subclass) instead of text;
//!   `sent(token, exc)`: a send that waited for room finished (`exc` is `None` or why not).
//!
//! A callback that raises ends its connection as Twisted does: `error` is called, the
//! connection is closed (gracefully: what it queued is still written), its later messages are
//! not delivered, and `disconnected` still is (unless `connection` itself raised: then no
//! callback of that connection is called at all).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::{PyTraverseError, PyVisit};

use crate::errors::send_error;
use crate::exceptions::disconnect_error;
use crate::frame::Frame;
use crate::layout::Layout;
use crate::queue::{Event, EventQueue};

/// What Python knows of one connection.
#[derive(Debug)]
struct Known {
    /// What `connection` returned; `None` if it raised.
    object: Option<Py<PyAny>>,
    /// A callback raised: later messages are skipped.
    failed: bool,
}

#[derive(Debug, Default)]
struct State {
    known: HashMap<u64, Known>,
    /// The last batch's allocation, reused.
    spare: Vec<Event>,
}

/// Takes batches from an [`EventQueue`] and calls Python with them; see the module's
/// documentation.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    queue: Arc<EventQueue>,
    /// `None` while a dispatch runs (its callbacks must not start another).
    state: Mutex<Option<State>>,
}

/// The handler's callables for one batch.
struct Callbacks<'py> {
    decoders: Vec<(i128, Bound<'py, PyAny>)>,
    decode: Option<Bound<'py, PyAny>>,
    connection: Bound<'py, PyAny>,
    connected: Bound<'py, PyAny>,
    message: Bound<'py, PyAny>,
    disconnected: Bound<'py, PyAny>,
    error: Bound<'py, PyAny>,
    handler: Bound<'py, PyAny>,
    /// Set: messages are handed over as `Frame`s with header fields named by this layout.
    frames: Option<Py<Layout>>,
    /// Whether `disconnected` gets an exception rather than text.
    typed_reasons: bool,
}

impl<'py> Callbacks<'py> {
    fn of(handler: &Bound<'py, PyAny>) -> PyResult<Self> {
        let frames = match handler.getattr("frames") {
            Ok(layout) if !layout.is_none() => Some(layout.extract::<Py<Layout>>()?),
            _ => None,
        };
        let typed_reasons = match handler.getattr("typed_reasons") {
            Ok(flag) => flag.is_truthy()?,
            Err(_) => false,
        };
        let mut decoders = Vec::new();
        let mut decode = None;
        // Frames need no decoder.
        if frames.is_none() {
            let table = handler.getattr("decoders")?;
            if table.is_none() {
                decode = Some(handler.getattr("decode")?);
            } else {
                let table = table.cast_into::<PyDict>().map_err(PyErr::from)?;
                for (key, decoder) in table.iter() {
                    // A key that is no integer names no type that can arrive.
                    if let Ok(message_type) = key.extract::<i128>() {
                        decoders.push((message_type, decoder));
                    }
                }
            }
        }
        Ok(Self {
            decoders,
            decode,
            connection: handler.getattr("connection")?,
            connected: handler.getattr("connected")?,
            message: handler.getattr("message")?,
            disconnected: handler.getattr("disconnected")?,
            error: handler.getattr("error")?,
            handler: handler.clone(),
            frames,
            typed_reasons,
        })
    }

    /// The message for a received frame: a `Frame` in frames mode, else as [`decode`](Self::decode).
    fn message_of(
        &self,
        py: Python<'py>,
        message_type: i128,
        body: &[u8],
        fields: ltprotocol::HeaderFields,
    ) -> PyResult<Bound<'py, PyAny>> {
        match &self.frames {
            Some(layout) => {
                let frame = Frame::received(py, message_type, body, fields, layout);
                Ok(Bound::new(py, frame)?.into_any())
            }
            None => self.decode(py, message_type, body),
        }
    }

    /// The message for a frame: its decoder's result, or `None` for a type without one.
    fn decode(
        &self,
        py: Python<'py>,
        message_type: i128,
        body: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = PyBytes::new(py, body);
        if let Some(decode) = &self.decode {
            return decode.call1((message_type, body));
        }
        match self.decoders.iter().find(|(t, _)| *t == message_type) {
            Some((_, decoder)) => decoder.call1((body,)),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// Reports a callback's exception to `error`; one raised there is printed as
    /// unraisable, since nobody else could catch it.
    fn report(&self, py: Python<'py>, conn: Option<&Py<PyAny>>, err: PyErr) {
        let conn = conn.map_or_else(|| py.None(), |c| c.clone_ref(py));
        let exc = err.into_value(py);
        if let Err(again) = self.error.call1((conn, exc)) {
            again.write_unraisable(py, Some(&self.error));
        }
    }

    /// Calls an optional method of the handler; a missing one is no error.
    fn optional(&self, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyResult<()> {
        match self.handler.getattr(name) {
            Ok(method) => method.call1(args).map(drop),
            Err(_) => Ok(()),
        }
    }
}

impl Dispatcher {
    pub(crate) fn new(queue: Arc<EventQueue>) -> Self {
        Self {
            queue,
            state: Mutex::new(Some(State::default())),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<State>> {
        // Held only to take or put back the state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every queued event and calls `handler` with each, in order; returns how many
    /// events there were. `close` is called with the id of each connection whose callback
    /// raised. Never blocks on the runtime.
    pub(crate) fn dispatch(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        close: impl Fn(u64),
    ) -> PyResult<usize> {
        let Some(mut state) = self.slot().take() else {
            return Err(PyRuntimeError::new_err(
                "dispatch() is already running: a callback cannot call it",
            ));
        };
        let result = Callbacks::of(handler).map(|callbacks| {
            let mut batch = std::mem::take(&mut state.spare);
            self.queue.take(&mut batch);
            let count = batch.len();
            for event in batch.drain(..) {
                deliver(py, &callbacks, &mut state.known, event, &close);
            }
            state.spare = batch;
            count
        });
        *self.slot() = Some(state);
        result
    }

    /// Lets Python's garbage collector see the connection objects held here.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // A dispatch in progress holds the state: what it holds is simply not reported.
        if let Ok(slot) = self.state.try_lock()
            && let Some(state) = slot.as_ref()
        {
            for known in state.known.values() {
                if let Some(object) = &known.object {
                    visit.call(object)?;
                }
            }
        }
        Ok(())
    }

    /// Drops the connection objects (Python's `tp_clear`, breaking reference cycles).
    pub(crate) fn clear(&self) {
        if let Ok(mut slot) = self.state.try_lock()
            && let Some(state) = slot.as_mut()
        {
            state.known.clear();
        }
    }
}

fn deliver(
    py: Python<'_>,
    callbacks: &Callbacks<'_>,
    known: &mut HashMap<u64, Known>,
    event: Event,
    close: &impl Fn(u64),
) {
    match event {
        Event::Message {
            id,
            message_type,
            body,
            fields,
        } => {
            let Some(conn) = known.get_mut(&id) else {
                return;
            };
            if conn.failed {
                return;
            }
            let Some(object) = &conn.object else {
                return;
            };
            let delivered = callbacks
                .message_of(py, message_type, &body, fields)
                .and_then(|msg| callbacks.message.call1((object, msg)));
            if let Err(err) = delivered {
                callbacks.report(py, Some(object), err);
                conn.failed = true;
                close(id);
            }
        }
        Event::Connected { id, peer } => {
            let object = match callbacks.connection.call1((id, peer)) {
                Ok(object) => object.unbind(),
                Err(err) => {
                    callbacks.report(py, None, err);
                    let object = None;
                    known.insert(
                        id,
                        Known {
                            object,
                            failed: true,
                        },
                    );
                    close(id);
                    return;
                }
            };
            let failed = match callbacks.connected.call1((&object,)) {
                Ok(_) => false,
                Err(err) => {
                    callbacks.report(py, Some(&object), err);
                    close(id);
                    true
                }
            };
            let object = Some(object);
            known.insert(id, Known { object, failed });
        }
        Event::Disconnected { id, reason, cause } => {
            let Some(Known {
                object: Some(object),
                ..
            }) = known.remove(&id)
            else {
                return;
            };
            let reason = if callbacks.typed_reasons {
                disconnect_error(&cause).into_value(py).into_any()
            } else {
                reason
                    .into_pyobject(py)
                    .map_or_else(|_| py.None(), |r| r.into_any().unbind())
            };
            if let Err(err) = callbacks.disconnected.call1((&object, reason)) {
                callbacks.report(py, Some(&object), err);
            }
        }
        Event::Sent { token, result } => {
            let exc = match result {
                Ok(()) => py.None(),
                Err(err) => send_error(&err).into_value(py).into_any(),
            };
            if let Err(err) = callbacks.optional("sent", (token, exc)) {
                callbacks.report(py, None, err);
            }
        }
        Event::Connecting { attempt } => {
            if let Err(err) = callbacks.optional("connecting", (attempt,)) {
                callbacks.report(py, None, err);
            }
        }
        Event::ConnectFailed {
            attempt,
            error,
            retry_in,
        } => {
            if let Err(err) = callbacks.optional("connect_failed", (attempt, error, retry_in)) {
                callbacks.report(py, None, err);
            }
        }
        Event::Closed => {
            if let Err(err) = callbacks.optional("closed", ()) {
                callbacks.report(py, None, err);
            }
        }
    }
}
