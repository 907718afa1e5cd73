//! The module's Python exceptions, and how the library's errors become them.

use ltprotocol::SendError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

// The classes live in `exceptions`, under one base `ltprotocol.Error`; these names raise them.
pub(crate) use crate::exceptions::{ConnectionClosed, EncodeError, LayoutError, OutboxFull};

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
    crate::exceptions::register(module)
}
