//! TLS over any stream: the handshakes that turn a plain [`Transport`] into a TLS one, and
//! the names of what went wrong. Feature `tls`.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector, rustls};
use tokio_util::sync::CancellationToken;

use super::{BoxStream, Sniff, Transport};
use crate::connection::{ConnectionHandle, DisconnectReason};
use crate::handshake::HandshakeError;
use crate::tls::{ClientTls, PeerIdentity, ServerTls, TlsError, from_rustls, handshake_error};

/// A server's TLS side, as the bound server keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Acceptor {
    config: Arc<ServerConfig>,
    timeout: Duration,
}

impl Acceptor {
    pub(crate) fn new(tls: &ServerTls, timeout: Duration) -> Self {
        Self {
            config: tls.config().clone(),
            timeout,
        }
    }
}

/// A client's TLS side, as its task keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    timeout: Duration,
}

impl Connector {
    pub(crate) fn new(tls: &ClientTls, timeout: Duration) -> Self {
        Self {
            config: tls.config().clone(),
            server_name: tls.server_name().cloned(),
            timeout,
        }
    }
}

/// Runs the server side of the handshake over `stream`, under the timeout, giving up at
/// shutdown. On success the peer's identity is on `handle`.
pub(crate) async fn accept(
    stream: BoxStream,
    tls: &Acceptor,
    handle: &ConnectionHandle,
    shutdown: &CancellationToken,
) -> Result<Transport, DisconnectReason> {
    let accepting = TlsAcceptor::from(tls.config.clone()).accept(stream);
    let accepted = tokio::select! {
        () = shutdown.cancelled() => return Err(DisconnectReason::Shutdown),
        accepted = tokio::time::timeout(tls.timeout, accepting) => accepted,
    };
    match accepted {
        Ok(Ok(stream)) => {
            handle.set_tls(PeerIdentity::from_chain(
                stream.get_ref().1.peer_certificates(),
            ));
            Ok(Transport::tls(stream.into()))
        }
        Ok(Err(err)) => Err(tls_failed(handshake_error(err, None))),
        Err(_) => Err(tls_failed(TlsError::TimedOut { after: tls.timeout })),
    }
}

/// Runs the client side of the handshake over `stream`, under the timeout, giving up when
/// the client is aborted. The server's certificate must name the configured server name, or
/// else `host` (the host of a TCP address). On success the server's identity is on `handle`.
pub(crate) async fn connect(
    stream: BoxStream,
    tls: &Connector,
    host: Option<&str>,
    handle: &ConnectionHandle,
    abort: &CancellationToken,
) -> Result<Transport, DisconnectReason> {
    let server_name = match (&tls.server_name, host) {
        (Some(name), _) => name.clone(),
        (None, Some(host)) => ServerName::try_from(host.to_owned()).map_err(|_| {
            tls_failed(TlsError::InvalidServerName {
                name: host.to_owned(),
            })
        })?,
        (None, None) => {
            return Err(tls_failed(TlsError::InvalidServerName {
                name: "(none: set ClientTls's server name for a stream without a host)".into(),
            }));
        }
    };
    let expected = server_name.to_str().into_owned();
    let connecting = TlsConnector::from(tls.config.clone()).connect(server_name, stream);
    let connected = tokio::select! {
        () = abort.cancelled() => return Err(DisconnectReason::Shutdown),
        connected = tokio::time::timeout(tls.timeout, connecting) => connected,
    };
    match connected {
        Ok(Ok(stream)) => {
            handle.set_tls(PeerIdentity::from_chain(
                stream.get_ref().1.peer_certificates(),
            ));
            Ok(Transport::tls(stream.into()))
        }
        Ok(Err(err)) => Err(tls_failed(handshake_error(err, Some(&expected)))),
        Err(_) => Err(tls_failed(TlsError::TimedOut { after: tls.timeout })),
    }
}

fn tls_failed(err: TlsError) -> DisconnectReason {
    DisconnectReason::Tls(Arc::new(err))
}

/// On an established TLS connection, names a TLS failure hidden in an I/O error (an alert
/// from a server that rejected our certificate after a TLS 1.3 handshake, a corrupt record).
pub(crate) fn established_reason(reason: DisconnectReason) -> DisconnectReason {
    let io = match &reason {
        DisconnectReason::Io(err) => Some(&**err),
        DisconnectReason::Handshake(err) => match &**err {
            HandshakeError::Io(err) => Some(err),
            _ => None,
        },
        _ => None,
    };
    match io.and_then(|e| e.get_ref()?.downcast_ref::<rustls::Error>()) {
        Some(tls) => tls_failed(from_rustls(tls.clone(), None, false)),
        None => reason,
    }
}

/// On a plain connection that ended badly before any message, tells when its first bytes
/// were a TLS record: the peer speaks TLS.
pub(crate) fn plain_reason(
    reason: DisconnectReason,
    head: &Sniff<BoxStream>,
    handle: &ConnectionHandle,
) -> DisconnectReason {
    let abnormal = matches!(
        reason,
        DisconnectReason::PeerClosed
            | DisconnectReason::Protocol(_)
            | DisconnectReason::Decode(_)
            | DisconnectReason::Io(_)
            | DisconnectReason::Handshake(_)
            | DisconnectReason::TimedOut { .. }
    );
    if abnormal && handle.received() == 0 && head.looks_like_tls() {
        tls_failed(TlsError::UnexpectedTls(reason))
    } else {
        reason
    }
}
