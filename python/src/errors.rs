//! The module's Python exceptions, and how the library's errors become them.

use ltprotocol::SendError;
use pyo3::create_exception;
use pyo3::exceptions::{PyBlockingIOError, PyConnectionError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    _native,
    ConnectionClosed,
    PyConnectionError,
    "The connection (or client, or server) is closed: nothing more can be sent on it."
);
create_exception!(
    _native,
    OutboxFull,
    PyBlockingIOError,
    "The connection's outbox is full: the peer does not read as fast as the program sends. \
     Nothing was queued; send again later (the outbox empties as the peer reads)."
);
create_exception!(
    _native,
    EncodeError,
    PyValueError,
    "The message cannot be framed in this header layout (too long for the length field, a \
     type number the type field cannot hold); nothing was sent."
);
create_exception!(
    _native,
    LayoutError,
    PyValueError,
    "A header layout that cannot be built (an unknown struct code, a bad TOML layout file)."
);

/// The Python exception for a send that was refused.
pub(crate) fn send_error(err: &SendError) -> PyErr {
    let text = ltprotocol::error_chain(err);
    match err {
        SendError::QueueFull { .. } => OutboxFull::new_err(text),
        SendError::Encode(_) => EncodeError::new_err(text),
        SendError::Closed { .. } => ConnectionClosed::new_err(text),
        // A frame encoded for another layout, or no free correlation id: neither is made by
        // this module's sends.
        _ => PyRuntimeError::new_err(text),
    }
}

/// Adds the exceptions to the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("ConnectionClosed", py.get_type::<ConnectionClosed>())?;
    module.add("OutboxFull", py.get_type::<OutboxFull>())?;
    module.add("EncodeError", py.get_type::<EncodeError>())?;
    module.add("LayoutError", py.get_type::<LayoutError>())?;
    Ok(())
}
