//! The package's exception hierarchy, every class under one base, `ltprotocol.Error`, and each
//! also under the built-in exception it is a kind of (`ConnectionClosed` is a
//! `ConnectionError`, `OutboxFull` a `BlockingIOError`, `TimedOut` a `TimeoutError`, the
//! encoding and configuration errors `ValueError`s), so that both `except ltprotocol.Error`
//! and `except ConnectionError` catch what they should.
//!
//! PyO3's `create_exception!` gives a class one base only; these classes are made with
//! `type(name, bases, namespace)` when the module is imported (their `__module__` is
//! `ltprotocol`, where the package re-exports them).
//!
//! ```text
//! Error
//! ├── ConnectionClosed (ConnectionError)   sending on an ended connection; why one ended
//! │   ├── ProtocolError                     the peer broke the framing
//! │   │   ├── FrameTooLarge                 its length exceeds the inbound maximum
//! │   │   ├── BadLength                     its length is shorter than the header, negative
//! │   │   └── DecodeError                   a body its message type cannot be made from
//! │   ├── SlowReader                        a broadcast found its outbox full
//! │   ├── TimedOut (TimeoutError)           frame read, idle, write, handshake timeouts
//! │   └── TlsError                          the TLS handshake failed
//! ├── OutboxFull (BlockingIOError)          try_send on a full outbox; nothing was queued
//! ├── EncodeError (ValueError)              a message that cannot be framed; nothing was sent
//! └── ConfigError (ValueError)              a bad option
//!     ├── LayoutError                       a header layout that cannot be built (file:line)
//!     └── SchemaError                       a schema file that cannot be read (file:line)
//! ```

use ltprotocol::{DisconnectReason, FrameError};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// One class of the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    ConnectionClosed,
    ProtocolError,
    FrameTooLarge,
    BadLength,
    DecodeError,
    SlowReader,
    TimedOut,
    TlsError,
    OutboxFull,
    EncodeError,
    ConfigError,
    LayoutError,
    SchemaError,
}

/// A base of a class: one of ours, or a built-in exception by name.
enum Base {
    Ours(Kind),
    Builtin(&'static str),
}

/// Each class: its kind, name, bases and docstring; bases come before the classes under them.
const CLASSES: &[(Kind, &str, &[Base], &str)] = &[
    (
        Kind::Error,
        "Error",
        &[Base::Builtin("Exception")],
        "The base of every exception the package raises.",
    ),
    (
        Kind::ConnectionClosed,
        "ConnectionClosed",
        &[Base::Ours(Kind::Error), Base::Builtin("ConnectionError")],
        "The connection (or client, or server) is closed: nothing more can be sent on it. \
         Also the base of the reasons a connection ended (Connection.close_reason).",
    ),
    (
        Kind::ProtocolError,
        "ProtocolError",
        &[Base::Ours(Kind::ConnectionClosed)],
        "The peer broke the protocol: a frame that cannot be read, or a handshake that failed.",
    ),
    (
        Kind::FrameTooLarge,
        "FrameTooLarge",
        &[Base::Ours(Kind::ProtocolError)],
        "The peer declared a frame longer than the inbound maximum (max_inbound); nothing of \
         its body was buffered.",
    ),
    (
        Kind::BadLength,
        "BadLength",
        &[Base::Ours(Kind::ProtocolError)],
        "The peer declared a length shorter than the header, or a negative one.",
    ),
    (
        Kind::DecodeError,
        "DecodeError",
        &[Base::Ours(Kind::ProtocolError)],
        "A message whose body its type (message class or schema) cannot be made from.",
    ),
    (
        Kind::SlowReader,
        "SlowReader",
        &[Base::Ours(Kind::ConnectionClosed)],
        "The peer read slower than the server broadcast: a broadcast found its outbox full \
         and closed the connection rather than stall the others.",
    ),
    (
        Kind::TimedOut,
        "TimedOut",
        &[
            Base::Ours(Kind::ConnectionClosed),
            Base::Builtin("TimeoutError"),
        ],
        "A frame read, idle, write or handshake timeout closed the connection.",
    ),
    (
        Kind::TlsError,
        "TlsError",
        &[Base::Ours(Kind::ConnectionClosed)],
        "The TLS handshake failed (an untrusted certificate, a name mismatch, no client \
         certificate where one is required...).",
    ),
    (
        Kind::OutboxFull,
        "OutboxFull",
        &[Base::Ours(Kind::Error), Base::Builtin("BlockingIOError")],
        "The connection's outbox is full: the peer does not read as fast as the program sends. \
         Nothing was queued; send again later (the outbox empties as the peer reads).",
    ),
    (
        Kind::EncodeError,
        "EncodeError",
        &[Base::Ours(Kind::Error), Base::Builtin("ValueError")],
        "The message cannot be framed in this header layout (too long for the length field or \
         the outbound maximum, a type number or header field value that does not fit, an \
         unknown header field, a schema message with a missing or bad field); nothing was sent.",
    ),
    (
        Kind::ConfigError,
        "ConfigError",
        &[Base::Ours(Kind::Error), Base::Builtin("ValueError")],
        "An option that cannot be used: a bad timeout, a TLS file that cannot be read...",
    ),
    (
        Kind::LayoutError,
        "LayoutError",
        &[Base::Ours(Kind::ConfigError)],
        "A header layout that cannot be built (an unknown struct code or preset, a bad TOML \
         layout file: the message names the file and line).",
    ),
    (
        Kind::SchemaError,
        "SchemaError",
        &[Base::Ours(Kind::ConfigError)],
        "A schema that cannot be loaded (an unknown built-in name, a bad TOML schema file: the \
         message names the file and line).",
    ),
];

/// The classes, in the order of [`CLASSES`], made once per interpreter.
static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn position(kind: Kind) -> usize {
    CLASSES.iter().position(|(k, ..)| *k == kind).unwrap_or(0)
}

fn make_types(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let make = builtins.getattr("type")?;
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
    for (_, name, bases, doc) in CLASSES {
        let mut resolved = Vec::with_capacity(bases.len());
        for base in *bases {
            resolved.push(match base {
                Base::Builtin(builtin) => builtins.getattr(*builtin)?,
                Base::Ours(kind) => made
                    .get(position(*kind))
                    .ok_or_else(|| PyRuntimeError::new_err("exception base declared too late"))?
                    .bind(py)
                    .clone()
                    .into_any(),
            });
        }
        let namespace = PyDict::new(py);
        namespace.set_item("__doc__", *doc)?;
        namespace.set_item("__module__", "ltprotocol")?;
        let class = make.call1((*name, PyTuple::new(py, resolved)?, namespace))?;
        made.push(class.cast_into::<PyType>().map_err(PyErr::from)?.unbind());
    }
    Ok(made)
}

impl Kind {
    /// The class, once the module is imported.
    pub(crate) fn class<'py>(self, py: Python<'py>) -> Option<Bound<'py, PyType>> {
        Some(TYPES.get(py)?.get(position(self))?.bind(py).clone())
    }

    /// An exception of this class with `message`.
    pub(crate) fn new_err(self, message: impl Into<String>) -> PyErr {
        let message = message.into();
        Python::attach(|py| match self.class(py) {
            Some(class) => PyErr::from_type(class, message),
            // Only before the module finished importing.
            None => PyRuntimeError::new_err(message),
        })
    }
}

/// The exception saying why a connection ended, for `Connection.close_reason`.
pub(crate) fn disconnect_error(reason: &DisconnectReason) -> PyErr {
    let kind = match reason {
        DisconnectReason::Protocol(frame) => match &**frame {
            FrameError::TooLong { .. } => Kind::FrameTooLarge,
            FrameError::TooShort { .. } | FrameError::NegativeLength { .. } => Kind::BadLength,
            _ => Kind::ProtocolError,
        },
        DisconnectReason::Decode(_) => Kind::DecodeError,
        DisconnectReason::Handshake(_) => Kind::ProtocolError,
        DisconnectReason::SlowReader { .. } => Kind::SlowReader,
        DisconnectReason::TimedOut { .. } => Kind::TimedOut,
        DisconnectReason::Tls(_) => Kind::TlsError,
        _ => Kind::ConnectionClosed,
    };
    kind.new_err(ltprotocol::error_chain(reason))
}

/// Makes the classes and adds them to the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let types = TYPES.get_or_try_init(py, || make_types(py))?;
    for ((_, name, ..), class) in CLASSES.iter().zip(types) {
        module.add(*name, class.bind(py))?;
    }
    Ok(())
}

/// The unit types the rest of the crate raises with, as `create_exception!` would give them:
/// `ConnectionClosed::new_err("...")`.
macro_rules! exception_types {
    ($($name:ident),*) => {$(
        #[doc = concat!("Raises `ltprotocol.", stringify!($name), "`.")]
        #[derive(Debug)]
        pub(crate) struct $name;

        impl $name {
            #[doc = concat!("A `", stringify!($name), "` with `message`.")]
            pub(crate) fn new_err(message: impl Into<String>) -> PyErr {
                Kind::$name.new_err(message)
            }
        }
    )*};
}

exception_types!(
    ConnectionClosed,
    OutboxFull,
    EncodeError,
    LayoutError,
    SchemaError,
    ConfigError
);
