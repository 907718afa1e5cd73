//! [`Options`]: the limits, timeouts and TLS a server or client runs its connections with,
//! each defaulting to the Rust library's default (exported as `DEFAULTS`).

use std::time::Duration;

use ltprotocol::client::DEFAULT_CONNECT_TIMEOUT;
use ltprotocol::connection::{DEFAULT_LINGER, DEFAULT_OUTBOX_BYTES};
use ltprotocol::server::DEFAULT_MAX_CONNECTIONS;
use ltprotocol::tls::DEFAULT_TLS_TIMEOUT;
use ltprotocol::{Builder, ClientBuilder, ServerBuilder, Timeouts, Unknown};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::exceptions::ConfigError;
use crate::flow::{DEFAULT_INBOX_BYTES, DEFAULT_INBOX_MESSAGES, InboxLimits};
use crate::tls::{ClientTls, ServerTls};

/// Connection settings for `Server(..., options=)` and `Client(..., options=)`. Immutable.
/// A timeout of `None` is off.
#[pyclass(frozen, module = "ltprotocol._native")]
#[derive(Debug, Clone)]
pub(crate) struct Options {
    max_inbound: Option<usize>,
    max_outbound: Option<usize>,
    outbox_capacity: usize,
    timeouts: Timeouts,
    linger: Duration,
    tls_timeout: Duration,
    max_connections: usize,
    max_connections_per_ip: Option<usize>,
    connect_timeout: Duration,
    inbox: InboxLimits,
    server_tls: Option<ServerTls>,
    client_tls: Option<ClientTls>,
}

fn seconds(what: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        ConfigError::new_err(format!("{what} {value} is not a number of seconds from 0"))
    })
}

fn optional_seconds(what: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    value.map(|v| seconds(what, v)).transpose()
}

fn default_seconds(duration: Option<Duration>) -> Option<f64> {
    duration.map(|d| d.as_secs_f64())
}

#[pymethods]
impl Options {
    /// Every keyword defaults to the Rust library's default (see `DEFAULTS`):
    ///
    /// * `max_inbound`: the largest frame accepted (checked from the header before any body
    ///   byte is buffered; a larger one closes the connection with `FrameTooLarge`); default
    ///   what the length field can describe, at most 8 MiB. `max_outbound`: the largest sent
    ///   (larger raise `EncodeError`).
    /// * `outbox_capacity`: bytes queued for sending per connection (a client's: across
    ///   reconnects) before `send` waits and `try_send` raises `OutboxFull`; 1 MiB.
    /// * `frame_read_timeout` (30 s), `idle_timeout` (off), `write_timeout` (30 s), in
    ///   seconds; each closes only its connection, with `TimedOut`.
    /// * `linger`: after a graceful close flushed our side, how long to wait for the peer's
    ///   (5 s). `tls_timeout`: bound of a TLS handshake (10 s).
    /// * servers: `max_connections` (100,000), `max_connections_per_ip` (none), `tls`
    ///   (a `ServerTls`);
    /// * clients: `connect_timeout` (10 s), `tls` (a `ClientTls`).
    /// * with flow control (`Server(..., flow_control=True)`, as the asyncio API runs):
    ///   `inbox_messages` (1,024) and `inbox_capacity` (1 MiB of bodies): what a connection
    ///   may hold that the program has not taken before it stops being read; it is read again
    ///   once the program has taken it down to half of each.
    #[new]
    #[pyo3(signature = (
        *, max_inbound = None, max_outbound = None, outbox_capacity = DEFAULT_OUTBOX_BYTES,
        frame_read_timeout = default_seconds(Timeouts::default().frame_read),
        idle_timeout = default_seconds(Timeouts::default().idle),
        write_timeout = default_seconds(Timeouts::default().write),
        linger = DEFAULT_LINGER.as_secs_f64(), tls_timeout = DEFAULT_TLS_TIMEOUT.as_secs_f64(),
        max_connections = DEFAULT_MAX_CONNECTIONS, max_connections_per_ip = None,
        connect_timeout = DEFAULT_CONNECT_TIMEOUT.as_secs_f64(),
        inbox_messages = DEFAULT_INBOX_MESSAGES, inbox_capacity = DEFAULT_INBOX_BYTES, tls = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        max_inbound: Option<usize>,
        max_outbound: Option<usize>,
        outbox_capacity: usize,
        frame_read_timeout: Option<f64>,
        idle_timeout: Option<f64>,
        write_timeout: Option<f64>,
        linger: f64,
        tls_timeout: f64,
        max_connections: usize,
        max_connections_per_ip: Option<usize>,
        connect_timeout: f64,
        inbox_messages: usize,
        inbox_capacity: usize,
        tls: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if inbox_messages == 0 || inbox_capacity == 0 {
            return Err(ConfigError::new_err(format!(
                "inbox_messages ({inbox_messages}) and inbox_capacity ({inbox_capacity}) must \
                 be at least 1"
            )));
        }
        let (server_tls, client_tls) = match tls {
            None => (None, None),
            Some(tls) => {
                if let Ok(server) = tls.cast::<ServerTls>() {
                    (Some(server.get().clone()), None)
                } else if let Ok(client) = tls.cast::<ClientTls>() {
                    (None, Some(client.get().clone()))
                } else {
                    return Err(ConfigError::new_err(
                        "tls must be a ServerTls (servers) or a ClientTls (clients)",
                    ));
                }
            }
        };
        Ok(Self {
            max_inbound,
            max_outbound,
            outbox_capacity,
            timeouts: Timeouts {
                frame_read: optional_seconds("frame_read_timeout", frame_read_timeout)?,
                idle: optional_seconds("idle_timeout", idle_timeout)?,
                write: optional_seconds("write_timeout", write_timeout)?,
            },
            linger: seconds("linger", linger)?,
            tls_timeout: seconds("tls_timeout", tls_timeout)?,
            max_connections,
            max_connections_per_ip,
            connect_timeout: seconds("connect_timeout", connect_timeout)?,
            inbox: InboxLimits {
                messages: inbox_messages,
                bytes: inbox_capacity,
            },
            server_tls,
            client_tls,
        })
    }

    /// Whether TLS is set.
    #[getter]
    fn tls(&self) -> bool {
        self.server_tls.is_some() || self.client_tls.is_some()
    }
}

impl Options {
    /// The bound of each connection's inbox, for flow control.
    pub(crate) fn inbox_limits(&self) -> InboxLimits {
        self.inbox
    }

    fn apply_common<Side>(&self, builder: &mut Builder<Side>) {
        if let Some(max) = self.max_inbound {
            builder.max_inbound(max);
        }
        if let Some(max) = self.max_outbound {
            builder.max_outbound(max);
        }
        builder
            .outbox_capacity(self.outbox_capacity)
            .timeouts(self.timeouts)
            .linger(self.linger)
            .tls_timeout(self.tls_timeout);
    }

    /// Sets a server's builder.
    ///
    /// # Errors
    ///
    /// `ConfigError` for a client's TLS.
    pub(crate) fn apply_server(&self, builder: &mut ServerBuilder<Unknown>) -> PyResult<()> {
        if self.client_tls.is_some() {
            return Err(ConfigError::new_err("a server's tls must be a ServerTls"));
        }
        self.apply_common(builder);
        builder.max_connections(self.max_connections);
        if let Some(max) = self.max_connections_per_ip {
            builder.max_connections_per_ip(max);
        }
        if let Some(tls) = &self.server_tls {
            builder.tls(tls.inner.clone());
        }
        Ok(())
    }

    /// Sets a client's builder.
    ///
    /// # Errors
    ///
    /// `ConfigError` for a server's TLS.
    pub(crate) fn apply_client(&self, builder: &mut ClientBuilder<Unknown>) -> PyResult<()> {
        if self.server_tls.is_some() {
            return Err(ConfigError::new_err("a client's tls must be a ClientTls"));
        }
        self.apply_common(builder);
        builder.connect_timeout(self.connect_timeout);
        if let Some(tls) = &self.client_tls {
            builder.tls(tls.inner.clone());
        }
        Ok(())
    }
}

/// The library's defaults by option name, as `Options` takes them (seconds; `None` is off).
pub(crate) fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let timeouts = Timeouts::default();
    let dict = PyDict::new(py);
    dict.set_item("outbox_capacity", DEFAULT_OUTBOX_BYTES)?;
    dict.set_item("frame_read_timeout", default_seconds(timeouts.frame_read))?;
    dict.set_item("idle_timeout", default_seconds(timeouts.idle))?;
    dict.set_item("write_timeout", default_seconds(timeouts.write))?;
    dict.set_item("linger", DEFAULT_LINGER.as_secs_f64())?;
    dict.set_item("tls_timeout", DEFAULT_TLS_TIMEOUT.as_secs_f64())?;
    dict.set_item("max_connections", DEFAULT_MAX_CONNECTIONS)?;
    dict.set_item("connect_timeout", DEFAULT_CONNECT_TIMEOUT.as_secs_f64())?;
    dict.set_item("inbox_messages", DEFAULT_INBOX_MESSAGES)?;
    dict.set_item("inbox_capacity", DEFAULT_INBOX_BYTES)?;
    Ok(dict)
}
