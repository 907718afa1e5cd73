//! `--tls` for the bench: a certificate made in memory, the server's and the client's rustls
//! settings, and a blocking TLS socket for the conns workload.
//!
//! No verification is ever skipped. In-process, the client trusts exactly the certificate the
//! server was just given. Split, `ltp bench serve --tls --tls-ca-out FILE` writes its
//! certificate (PEM) for `ltp bench MODE --target ADDR --tls --ca FILE`; without `--ca` the
//! client checks the server against the system's roots, as `ltp connect --tls` does.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use ltp::ConfigError;
use ltprotocol::tls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use ltprotocol::tls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use ltprotocol::tls::{ClientTls, ServerTls};

/// How long the codec path and the conns workload wait for a TLS handshake: a peer that does
/// not speak TLS must fail the run, not hang it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The names the generated certificate carries (subject-alternative names).
const NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A self-signed certificate made at start: its own trust anchor.
#[derive(Debug)]
pub(super) struct Generated {
    /// The certificate (DER), to present and to trust.
    cert: CertificateDer<'static>,
    /// The same certificate as PEM, for `--tls-ca-out`.
    pem: String,
    /// Its private key (PKCS#8 DER).
    key: Vec<u8>,
}

impl Generated {
    /// An ECDSA P-256 self-signed certificate for `127.0.0.1` and `localhost`, named
    /// "ltp bench".
    pub(super) fn new() -> anyhow::Result<Self> {
        let make = || -> Result<_, rcgen::Error> {
            let names: Vec<String> = NAMES.iter().map(|&n| n.to_owned()).collect();
            let mut params = rcgen::CertificateParams::new(names)?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "ltp bench");
            let key = rcgen::KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            Ok((cert, key))
        };
        let (cert, key) = make().context("cannot generate the bench's TLS certificate")?;
        Ok(Self {
            cert: cert.der().clone(),
            pem: cert.pem(),
            key: key.serialize_der(),
        })
    }

    /// The server's settings: this certificate, no client authentication.
    pub(super) fn server(&self) -> anyhow::Result<ServerTls> {
        let key = PrivatePkcs8KeyDer::from(self.key.clone());
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key.into())
            .context("the generated certificate and key do not go together")?;
        Ok(ServerTls::from_config(Arc::new(config)))
    }

    /// The client's settings: trusts this certificate and nothing else, expects `server_name`
    /// (one of [`NAMES`]).
    pub(super) fn client(&self, server_name: &str) -> anyhow::Result<ClientTls> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert.clone())
            .context("the generated certificate cannot be a trust anchor")?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls::from_config(Arc::new(config)).with_server_name(server_name)?)
    }

    /// Writes the certificate (PEM) to `path`, for a client's `--ca`.
    pub(super) fn write_pem(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, &self.pem)
            .with_context(|| format!("cannot write the certificate to {}", path.display()))
    }
}

/// The crypto provider `ltprotocol::tls` uses, so both ends of a bench negotiate alike.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    ltprotocol::tls::crypto_provider()
}

/// The client's settings against `--target`: the CAs of `ca` (or the system's roots) and the
/// name `server_name` (or the host part of `target`).
pub(super) fn client_for_target(
    target: &str,
    ca: Option<&Path>,
    server_name: Option<&str>,
) -> Result<ClientTls, ConfigError> {
    let mut tls = ClientTls::builder();
    if let Some(ca) = ca {
        tls.ca_file(ca);
    }
    tls.server_name(server_name.unwrap_or_else(|| host_of(target)));
    tls.build()
        .map_err(|err| ConfigError::Invalid(ltprotocol::error_chain(&err)))
}

/// The host part of `HOST:PORT` or `[V6]:PORT`.
fn host_of(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The name the client expects, as rustls takes it.
fn server_name_of(tls: &ClientTls, addr: SocketAddr) -> ServerName<'static> {
    // Every `ClientTls` made here has a name set; the address is the library's own fallback.
    tls.server_name()
        .cloned()
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
}

/// A failed handshake, with a hint when the server's certificate was the reason.
fn handshake_failed(addr: SocketAddr, err: &io::Error) -> io::Error {
    let rejected = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)));
    let hint = if rejected {
        " (a server started with `ltp bench serve --tls --tls-ca-out FILE` is trusted with \
         `--ca FILE`)"
    } else {
        ""
    };
    io::Error::new(
        err.kind(),
        format!("TLS handshake with {addr} failed: {err}{hint}"),
    )
}

/// The codec path's TLS: a handshake over `tcp`, under [`HANDSHAKE_TIMEOUT`].
pub(super) async fn connect(
    tls: &ClientTls,
    addr: SocketAddr,
    tcp: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(tls.config().clone());
    let handshake = connector.connect(server_name_of(tls, addr), tcp);
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS handshake with {addr}: no answer in {HANDSHAKE_TIMEOUT:?}"),
            )
        })?
        .map_err(|err| handshake_failed(addr, &err))?;
    let (_, session) = stream.get_ref();
    tracing::debug!(
        %addr,
        version = ?session.protocol_version(),
        suite = ?session.negotiated_cipher_suite().map(|s| s.suite()),
        "TLS connected"
    );
    Ok(stream)
}

/// A blocking TLS client socket (the conns workload), handshake done.
pub(super) type BlockingStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// The conns workload's TLS: a blocking handshake over `sock`, which must already carry a
/// read timeout (so that a silent peer fails the handshake instead of hanging it).
pub(super) fn connect_blocking(
    tls: &ClientTls,
    addr: SocketAddr,
    mut sock: std::net::TcpStream,
) -> io::Result<BlockingStream> {
    let mut session =
        rustls::ClientConnection::new(tls.config().clone(), server_name_of(tls, addr))
            .map_err(|err| handshake_failed(addr, &io::Error::other(err)))?;
    while session.is_handshaking() {
        session
            .complete_io(&mut sock)
            .map_err(|err| handshake_failed(addr, &err))?;
    }
    Ok(rustls::StreamOwned::new(session, sock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port_and_brackets() {
        assert_eq!(host_of("127.0.0.1:9999"), "127.0.0.1");
        assert_eq!(host_of("localhost:1"), "localhost");
        assert_eq!(host_of("[::1]:9999"), "::1");
    }
}
