//! TLS and mutual TLS (feature `tls`, on by default): [`ServerTls`] for
//! [`ServerBuilder::tls`](crate::ServerBuilder::tls), [`ClientTls`] for
//! [`ClientBuilder::tls`](crate::ClientBuilder::tls), and what a failed handshake reports
//! ([`TlsError`]).
//!
//! Built on tokio-rustls with rustls's `ring` crypto provider; TLS 1.3 and 1.2. Nothing else
//! changes: handlers, event streams, broadcast, requests, keepalive, limits and reconnects
//! work the same over TLS, and a connection's [`ConnectionHandle::peer_identity`] tells who
//! the peer's verified certificate names.
//!
//! * **Server**: a certificate chain and key from PEM files, and optionally client
//!   authentication against a CA bundle ([`ClientAuth::Required`] or
//!   [`ClientAuth::Optional`]). The TLS handshake runs on the connection's own task after the
//!   connection limits, under [`ServerBuilder::tls_timeout`](crate::ServerBuilder::tls_timeout).
//!   A connection that fails it is never registered and never reported `connected`: it is
//!   logged, and the handler's `disconnected` (or [`Event::Disconnected`](crate::Event)) gets
//!   [`DisconnectReason::Tls`] saying why. Other connections are not affected.
//! * **Client**: the server's name (by default the host part of the address), a CA bundle or
//!   the system's roots, optionally a client certificate and key. Each connection attempt,
//!   first and every reconnect, performs a TLS handshake (resuming the session when the server
//!   allows); a failure is a failed attempt like a refused TCP connect: reported through
//!   `connect_failed` ([`Event::ConnectFailed`](crate::Event)) with the reason, and retried
//!   after the backoff.
//!
//! With TLS 1.3 a client finishes its handshake before the server has checked the client's
//! certificate, so a client whose certificate the server rejects is connected for a moment:
//! it then sees [`DisconnectReason::Tls`] with [`TlsError::PeerRejected`] (or an I/O error, if
//! a write notices first), and the short-lived connection counts as a failed attempt.
//!
//! A plain TCP peer talking to a TLS port fails with [`TlsError::NotTls`]; a plain connection
//! whose peer speaks TLS (a TLS client on a plain port, or a TLS server answering a plain
//! client) ends with [`TlsError::UnexpectedTls`] instead of a framing error.
//!
//! # Example: mutual TLS
//!
//! ```
//! use std::time::Duration;
//! use ltprotocol::tls::{ClientAuth, ClientTls, ServerTls};
//! use ltprotocol::{Event, HeaderLayout, MessageType, ReconnectingClient, Server, Unknown};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("ltp-doc-tls-mod-{}", std::process::id()));
//! # let files = write_test_pki(&dir)?;
//! # let (ca, server_cert, server_key, client_cert, client_key) = files;
//! let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
//!     .tls(
//!         ServerTls::builder(&server_cert, &server_key)
//!             .client_auth(&ca, ClientAuth::Required)
//!             .build()?,
//!     )
//!     .bind("127.0.0.1:0")
//!     .await?;
//! let mut events = server.events();
//!
//! let tls = ClientTls::builder().ca_file(&ca).client_cert(&client_cert, &client_key).build()?;
//! let (client, _client_events) = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol())
//!     .tls(tls)
//!     .connect(server.local_addr().to_string());
//! client.send(&Unknown { message_type: MessageType::new(1), body: "hi".into() }).await?;
//!
//! let Some(Event::Connected(conn)) = events.next().await else { panic!() };
//! let who = conn.peer_identity().expect("a verified client certificate");
//! assert_eq!(who.common_name.as_deref(), Some("client"));
//! let Some(Event::Message { message, .. }) = events.next().await else { panic!() };
//! assert_eq!(&message.body[..], b"hi");
//!
//! client.close(Duration::from_secs(5)).await;
//! server.shutdown(Duration::from_secs(5)).await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # type Files = (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf);
//! # fn write_test_pki(dir: &std::path::Path) -> Result<Files, Box<dyn std::error::Error>> {
//! #     use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
//! #     std::fs::create_dir_all(dir)?;
//! #     let mut ca = CertificateParams::new(Vec::<String>::new())?;
//! #     ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! #     ca.distinguished_name.push(DnType::CommonName, "test CA");
//! #     let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
//! #     let issue = |name: &str, sans: Vec<String>, eku| -> Result<_, Box<dyn std::error::Error>> {
//! #         let mut params = CertificateParams::new(sans)?;
//! #         params.distinguished_name.push(DnType::CommonName, name);
//! #         params.extended_key_usages = vec![eku];
//! #         let key = KeyPair::generate()?;
//! #         let cert = params.signed_by(&key, &ca)?;
//! #         let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
//! #         std::fs::write(&cert_path, cert.pem())?;
//! #         std::fs::write(&key_path, key.serialize_pem())?;
//! #         Ok((cert_path, key_path))
//! #     };
//! #     let server = issue("server", vec!["127.0.0.1".into(), "localhost".into()], ExtendedKeyUsagePurpose::ServerAuth)?;
//! #     let client = issue("client", vec!["client.example".into()], ExtendedKeyUsagePurpose::ClientAuth)?;
//! #     let ca_path = dir.join("ca.pem");
//! #     std::fs::write(&ca_path, ca.pem())?;
//! #     Ok((ca_path, server.0, server.1, client.0, client.1))
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::connection::{ConnectionHandle, DisconnectReason};
use crate::handshake::HandshakeError;
use crate::transport::Transport;

/// The rustls version this crate is built with, for [`ServerTls::from_config`] and
/// [`ClientTls::from_config`].
pub use tokio_rustls::rustls;

/// Default [`ServerBuilder::tls_timeout`](crate::ServerBuilder::tls_timeout) and
/// [`ClientBuilder::tls_timeout`](crate::ClientBuilder::tls_timeout): 10 s.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a server asks its clients for a certificate and insists on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Every client must present a certificate issued by the CA bundle (mutual TLS).
    Required,
    /// Clients may present a certificate; one that does must present a valid one, and its
    /// identity is on the handle. Clients without one connect with no identity.
    Optional,
}

/// A server's TLS settings, for [`ServerBuilder::tls`](crate::ServerBuilder::tls).
///
/// Cheap to clone (the rustls configuration is shared).
///
/// ```
/// use ltprotocol::tls::{ServerTls, TlsConfigError};
///
/// // Files that do not exist: the error names the file.
/// let err = ServerTls::from_pem_files("/nonexistent/server.pem", "/nonexistent/server.key")
///     .unwrap_err();
/// assert!(matches!(err, TlsConfigError::Read { .. }));
/// assert_eq!(err.to_string(), "cannot read /nonexistent/server.pem");
/// ```
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// A builder for a server presenting the certificate chain in `cert_chain` (PEM, the
    /// server's own certificate first, then any intermediates) with the private key in `key`
    /// (PEM: PKCS#8, PKCS#1 or SEC1). Without [`client_auth`](ServerTlsBuilder::client_auth)
    /// no client certificate is asked for.
    pub fn builder(cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> ServerTlsBuilder {
        ServerTlsBuilder {
            cert_chain: cert_chain.as_ref().to_path_buf(),
            key: key.as_ref().to_path_buf(),
            client_auth: None,
        }
    }

    /// TLS without client authentication, from a certificate chain and key in PEM files:
    /// `ServerTls::builder(cert_chain, key).build()`.
    ///
    /// # Errors
    ///
    /// As [`ServerTlsBuilder::build`].
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        Self::builder(cert_chain, key).build()
    }

    /// Uses a rustls configuration as it is: in-memory certificates, a custom client
    /// verifier, ALPN, another crypto provider.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ltprotocol::tls::{rustls, ServerTls};
    ///
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    /// let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    /// let config = rustls::ServerConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![cert.cert.der().clone()], key.into())?;
    /// let tls = ServerTls::from_config(Arc::new(config));
    /// # let _ = tls;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// Builds a [`ServerTls`] from PEM files; see [`ServerTls::builder`].
///
/// ```
/// use ltprotocol::tls::{ClientAuth, ServerTls};
///
/// # let dir = std::env::temp_dir().join(format!("ltp-doc-tls-server-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let ca = rcgen::generate_simple_self_signed(vec!["test CA".to_string()])?;
/// # let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
/// # std::fs::write(dir.join("ca.pem"), ca.cert.pem())?;
/// # std::fs::write(dir.join("server.pem"), cert.cert.pem())?;
/// # std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem())?;
/// # let [ca, server_pem, server_key] = ["ca.pem", "server.pem", "server.key"].map(|f| dir.join(f));
/// let tls = ServerTls::builder(&server_pem, &server_key)
///     .client_auth(&ca, ClientAuth::Optional)
///     .build()?;
/// # let _ = tls;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerTlsBuilder {
    cert_chain: PathBuf,
    key: PathBuf,
    client_auth: Option<(PathBuf, ClientAuth)>,
}

impl ServerTlsBuilder {
    /// Asks clients for a certificate issued by a CA in `ca_bundle` (PEM, one or more
    /// certificates), required or optional. The verified client's identity is on its
    /// [`ConnectionHandle::peer_identity`]. Default: no client authentication.
    pub fn client_auth(&mut self, ca_bundle: impl AsRef<Path>, mode: ClientAuth) -> &mut Self {
        self.client_auth = Some((ca_bundle.as_ref().to_path_buf(), mode));
        self
    }

    /// Reads the files and builds the configuration (TLS 1.3 and 1.2, rustls's `ring`
    /// provider).
    ///
    /// # Errors
    ///
    /// A [`TlsConfigError`] naming the file and the problem: unreadable, not PEM, no
    /// certificate or key in it, a CA certificate that cannot be a trust anchor, or a key
    /// that does not go with the certificate.
    pub fn build(&self) -> Result<ServerTls, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Settings)?;
        let chain = read_certificates(&self.cert_chain)?;
        let key = read_private_key(&self.key)?;
        let builder = match &self.client_auth {
            None => versions.with_no_client_auth(),
            Some((ca, mode)) => {
                let roots = read_roots(ca)?;
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if *mode == ClientAuth::Optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let verifier =
                    verifier
                        .build()
                        .map_err(|source| TlsConfigError::ClientVerifier {
                            path: ca.clone(),
                            source,
                        })?;
                versions.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(|source| {
            TlsConfigError::CertificateKey {
                cert: self.cert_chain.clone(),
                key: self.key.clone(),
                source,
            }
        })?;
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }
}

/// A client's TLS settings, for [`ClientBuilder::tls`](crate::ClientBuilder::tls).
///
/// Cheap to clone (the rustls configuration, with its session cache, is shared).
///
/// ```
/// use ltprotocol::tls::{ClientTls, TlsConfigError};
///
/// let err = ClientTls::builder().ca_file("/nonexistent/ca.pem").build().unwrap_err();
/// assert!(matches!(err, TlsConfigError::Read { .. }));
///
/// let err = ClientTls::builder().server_name("not a name").build().unwrap_err();
/// assert!(matches!(err, TlsConfigError::InvalidServerName { .. }));
/// ```
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// A builder: system roots, the server's name taken from the address, no client
    /// certificate, until set otherwise.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// Uses a rustls configuration as it is. The server's name is the host part of the
    /// address the client connects to, unless set with
    /// [`with_server_name`](Self::with_server_name).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ltprotocol::tls::{rustls, ClientTls};
    ///
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let mut roots = rustls::RootCertStore::empty();
    /// let ca = rcgen::generate_simple_self_signed(vec!["test CA".to_string()])?;
    /// roots.add(ca.cert.der().clone())?;
    /// let config = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let tls = ClientTls::from_config(Arc::new(config)).with_server_name("localhost")?;
    /// # let _ = tls;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        Self {
            config,
            server_name: None,
        }
    }

    /// The name the server's certificate must carry (a DNS name or an IP address) instead of
    /// the host part of the address.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::InvalidServerName`] when `name` is neither.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsConfigError> {
        self.server_name = Some(parse_server_name(name)?);
        Ok(self)
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The server name set, if any (otherwise the address's host is used).
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }
}

/// Builds a [`ClientTls`]; see [`ClientTls::builder`].
///
/// ```
/// use ltprotocol::tls::ClientTls;
///
/// # let dir = std::env::temp_dir().join(format!("ltp-doc-tls-client-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let ca = rcgen::generate_simple_self_signed(vec!["test CA".to_string()])?;
/// # std::fs::write(dir.join("ca.pem"), ca.cert.pem())?;
/// # let ca = dir.join("ca.pem");
/// let tls = ClientTls::builder().ca_file(&ca).server_name("switch.example").build()?;
/// assert_eq!(tls.server_name().map(|n| n.to_str().into_owned()).as_deref(), Some("switch.example"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientTlsBuilder {
    ca: Option<PathBuf>,
    server_name: Option<String>,
    identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTlsBuilder {
    /// Trusts the CA certificates in `ca_bundle` (PEM) and nothing else. Default: the
    /// system's root certificates (through `rustls-native-certs`: the operating system's
    /// store, `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured).
    pub fn ca_file(&mut self, ca_bundle: impl AsRef<Path>) -> &mut Self {
        self.ca = Some(ca_bundle.as_ref().to_path_buf());
        self
    }

    /// The name the server's certificate must carry: a DNS name or an IP address. Default:
    /// the host part of the address the client connects to.
    pub fn server_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.server_name = Some(name.into());
        self
    }

    /// Presents this certificate chain and key (PEM files) when the server asks for one
    /// (mutual TLS). Default: none.
    pub fn client_cert(
        &mut self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> &mut Self {
        self.identity = Some((
            cert_chain.as_ref().to_path_buf(),
            key.as_ref().to_path_buf(),
        ));
        self
    }

    /// Reads the files (or the system's roots) and builds the configuration (TLS 1.3 and
    /// 1.2, rustls's `ring` provider, session resumption on).
    ///
    /// # Errors
    ///
    /// A [`TlsConfigError`] naming the file and the problem, or
    /// [`TlsConfigError::NoSystemRoots`], or [`TlsConfigError::InvalidServerName`].
    pub fn build(&self) -> Result<ClientTls, TlsConfigError> {
        let server_name = self
            .server_name
            .as_deref()
            .map(parse_server_name)
            .transpose()?;
        let roots = match &self.ca {
            Some(path) => read_roots(path)?,
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Settings)?
            .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certificates(cert)?;
                let private = read_private_key(key)?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|source| TlsConfigError::CertificateKey {
                        cert: cert.clone(),
                        key: key.clone(),
                        source,
                    })?
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// Why TLS settings could not be built. Each variant names the file and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("{}: not valid PEM", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{}: no certificate in it (expected \"-----BEGIN CERTIFICATE-----\")", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no private key.
    #[error("{}: no private key in it (expected a PKCS#8, PKCS#1 or SEC1 PEM key)", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in a CA bundle cannot serve as a trust anchor.
    #[error("{}: certificate {index} is not a usable CA certificate", path.display())]
    BadCaCertificate {
        /// The CA bundle.
        path: PathBuf,
        /// The certificate's position in the file, from 0.
        index: usize,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The certificate chain and key are unusable together: the key does not belong to the
    /// certificate, or its type is not supported.
    #[error("{} with {}: unusable certificate and key", cert.display(), key.display())]
    CertificateKey {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built from the CA bundle.
    #[error("{}: cannot verify client certificates with this CA bundle", path.display())]
    ClientVerifier {
        /// The CA bundle.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// No CA file was given and the system's root certificates could not be loaded.
    #[error("no system root certificates could be loaded ({details})")]
    NoSystemRoots {
        /// What went wrong, as reported by `rustls-native-certs`.
        details: String,
    },
    /// A server name that is neither a DNS name nor an IP address.
    #[error("{name:?} is not a valid TLS server name (a DNS name or an IP address)")]
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// rustls rejected the protocol settings.
    #[error("TLS settings rejected")]
    Settings(#[source] rustls::Error),
}

/// Why a TLS handshake failed, or a TLS connection broke: the `source` of
/// [`DisconnectReason::Tls`], and the reason given for a client's failed attempt.
///
/// Which side sees what: the side that checks a certificate reports the problem with it
/// ([`UnknownCa`](Self::UnknownCa), [`NameMismatch`](Self::NameMismatch),
/// [`Expired`](Self::Expired), ...); the other side receives rustls's alert and reports
/// [`PeerRejected`](Self::PeerRejected) with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate is not issued by a CA we trust.
    #[error("the peer's certificate is not issued by a trusted CA (unknown CA)")]
    UnknownCa(#[source] rustls::Error),
    /// The server's certificate does not carry the name we connected to.
    #[error("the server's certificate is not valid for {server_name} (name mismatch)")]
    NameMismatch {
        /// The name we expected.
        server_name: String,
        /// rustls's error, with the names the certificate does carry.
        #[source]
        source: rustls::Error,
    },
    /// The peer's certificate has expired.
    #[error("the peer's certificate has expired")]
    Expired(#[source] rustls::Error),
    /// The peer's certificate is not valid yet.
    #[error("the peer's certificate is not valid yet")]
    NotYetValid(#[source] rustls::Error),
    /// The peer's certificate is otherwise invalid: a bad signature, the wrong key usage, a
    /// revoked certificate, an unparsable one.
    #[error("the peer's certificate is invalid (bad certificate)")]
    BadCertificate(#[source] rustls::Error),
    /// The client presented no certificate, and one is required.
    #[error("the client presented no certificate, and one is required")]
    NoCertificate(#[source] rustls::Error),
    /// The peer ended the handshake with an alert: it rejected our certificate or our
    /// parameters.
    #[error("the peer rejected the handshake: {}", describe_alert(*alert))]
    PeerRejected {
        /// The alert it sent.
        alert: AlertDescription,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// What arrived is not TLS: a plain TCP peer talking to a TLS port, or a plain server
    /// answering a TLS client.
    #[error("not a TLS handshake: the peer sent plain (non-TLS) data")]
    NotTls(#[source] rustls::Error),
    /// This connection is plain TCP but the peer speaks TLS: a TLS client on a plain port,
    /// or a TLS server answering a plain client. Holds what the plain connection made of it.
    #[error("the peer speaks TLS, but this connection is plain TCP")]
    UnexpectedTls(#[source] DisconnectReason),
    /// The handshake did not finish within the TLS timeout.
    #[error("TLS handshake timed out after {after:?}")]
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// The peer closed the connection during the handshake.
    #[error("the peer closed the connection during the TLS handshake")]
    Closed,
    /// The host part of the address is not a valid server name, and none was set.
    #[error("{name:?} is not a valid TLS server name; set one with ClientTlsBuilder::server_name")]
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// Any other TLS protocol failure (no common version or cipher suite, a corrupt record).
    #[error("TLS protocol error")]
    Protocol(#[source] rustls::Error),
    /// Reading or writing failed during the handshake.
    #[error("i/o error during the TLS handshake")]
    Io(#[source] io::Error),
}

/// What an alert means for us; the alert's name is in the source error.
fn describe_alert(alert: AlertDescription) -> &'static str {
    match alert {
        AlertDescription::UnknownCA => "it does not trust the CA of our certificate",
        AlertDescription::BadCertificate => {
            "it rejected our certificate (a name mismatch or a wrong key usage, say)"
        }
        AlertDescription::CertificateExpired => "it rejected our certificate as expired",
        AlertDescription::CertificateRequired => "it requires a client certificate",
        AlertDescription::CertificateRevoked => "it rejected our certificate as revoked",
        AlertDescription::CertificateUnknown | AlertDescription::UnsupportedCertificate => {
            "it rejected our certificate"
        }
        AlertDescription::HandshakeFailure => "no parameters in common",
        AlertDescription::ProtocolVersion => "no TLS version in common",
        AlertDescription::DecodeError | AlertDescription::UnexpectedMessage => {
            "it could not make sense of what we sent"
        }
        _ => "it ended the handshake",
    }
}

/// What a verified peer certificate says about its holder: the server's certificate on a
/// client, the client's certificate on a server with client authentication.
///
/// ```
/// use ltprotocol::{ConnectionHandle, Handler, HeaderFields, Unknown};
///
/// /// Logs who connects.
/// struct Audit;
///
/// impl Handler<Unknown> for Audit {
///     async fn connected(&self, conn: &ConnectionHandle) {
///         match conn.peer_identity() {
///             Some(peer) => println!("{conn}: {peer} {:?} {:?}", peer.dns_names, peer.ip_addresses),
///             None => println!("{conn}: no verified certificate"),
///         }
///     }
///
///     async fn message(&self, _conn: &ConnectionHandle, _message: Unknown, _fields: HeaderFields) {}
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = ltprotocol::Server::<Unknown>::builder(ltprotocol::HeaderLayout::ltprotocol())
///     .bind("127.0.0.1:0")
///     .await?;
/// let serving = server.clone();
/// tokio::spawn(async move { serving.serve(Audit).await });
/// # let _plain = tokio::net::TcpStream::connect(server.local_addr()).await?;
/// server.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// The subject's distinguished name, as `CN=client, O=Example`.
    pub subject: String,
    /// The subject's first common name (`CN`), if any.
    pub common_name: Option<String>,
    /// The DNS names among the subject alternative names.
    pub dns_names: Vec<String>,
    /// The IP addresses among the subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// The whole certificate, DER-encoded, for anything else.
    pub der: CertificateDer<'static>,
}

impl PeerIdentity {
    /// Parses a certificate already verified by rustls. A part that does not parse is left
    /// empty (rustls has checked the signature and the names it needs).
    fn from_der(der: CertificateDer<'static>) -> Self {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let mut identity = Self {
            subject: String::new(),
            common_name: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            der: der.clone(),
        };
        let cert = match X509Certificate::from_der(der.as_ref()) {
            Ok((_, cert)) => cert,
            Err(err) => {
                debug!(error = %err, "cannot parse the peer's certificate for its identity");
                return identity;
            }
        };
        identity.subject = cert.subject().to_string();
        identity.common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => identity.dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            identity.ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            identity.ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        identity
    }

    fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> Option<Self> {
        let leaf = chain?.first()?;
        Some(Self::from_der(leaf.clone().into_owned()))
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject)
    }
}

// ---- files -----------------------------------------------------------------------------------

fn read_file(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        source => TlsConfigError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in read_certificates(path)?.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|source| TlsConfigError::BadCaCertificate {
                path: path.to_path_buf(),
                index,
                source,
            })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // System stores hold the odd certificate rustls cannot use; skipping those is normal.
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let details = if found.errors.is_empty() {
            "none found".to_owned()
        } else {
            found
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(TlsConfigError::NoSystemRoots { details });
    }
    Ok(roots)
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsConfigError::InvalidServerName {
        name: name.to_owned(),
    })
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => addr,
    }
}

// ---- handshakes ------------------------------------------------------------------------------

/// A server's acceptor, as the bound server keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Acceptor {
    config: Arc<ServerConfig>,
    timeout: Duration,
}

impl Acceptor {
    pub(crate) fn new(tls: &ServerTls, timeout: Duration) -> Self {
        Self {
            config: tls.config.clone(),
            timeout,
        }
    }
}

/// A client's connector, as its task keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    timeout: Duration,
}

impl Connector {
    pub(crate) fn new(tls: &ClientTls, timeout: Duration) -> Self {
        Self {
            config: tls.config.clone(),
            server_name: tls.server_name.clone(),
            timeout,
        }
    }
}

/// Runs the server side of the handshake (when TLS is on), under the timeout, giving up at
/// shutdown, turning the plain `transport` into a TLS one in place (`None` once it failed).
/// On success the peer's identity is on `handle`.
pub(crate) async fn accept(
    transport: &mut Option<Transport>,
    tls: Option<&Acceptor>,
    handle: &ConnectionHandle,
    shutdown: &CancellationToken,
) -> Result<(), DisconnectReason> {
    let Some(tls) = tls else {
        return Ok(());
    };
    let stream = match transport.take() {
        Some(Transport::Plain(stream)) => stream,
        other => {
            *transport = other;
            return Ok(());
        }
    };
    let accepted = tokio::select! {
        () = shutdown.cancelled() => return Err(DisconnectReason::Shutdown),
        accepted = tokio::time::timeout(tls.timeout, TlsAcceptor::from(tls.config.clone()).accept(stream)) => accepted,
    };
    match accepted {
        Ok(Ok(stream)) => {
            handle.set_tls(PeerIdentity::from_chain(
                stream.get_ref().1.peer_certificates(),
            ));
            *transport = Some(Transport::Tls(Box::new(stream.into())));
            Ok(())
        }
        Ok(Err(err)) => Err(tls_failed(handshake_error(err, None))),
        Err(_) => Err(tls_failed(TlsError::TimedOut { after: tls.timeout })),
    }
}

/// Runs the client side of the handshake (when TLS is on), under the timeout, giving up
/// when the client is aborted. On success the server's identity is on `handle`.
pub(crate) async fn connect(
    stream: TcpStream,
    tls: Option<&Connector>,
    addr: &str,
    handle: &ConnectionHandle,
    abort: &CancellationToken,
) -> Result<Transport, DisconnectReason> {
    let Some(tls) = tls else {
        return Ok(Transport::Plain(stream));
    };
    let server_name = match &tls.server_name {
        Some(name) => name.clone(),
        None => {
            let host = host_of(addr);
            ServerName::try_from(host.to_owned()).map_err(|_| {
                tls_failed(TlsError::InvalidServerName {
                    name: host.to_owned(),
                })
            })?
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
            Ok(Transport::Tls(Box::new(stream.into())))
        }
        Ok(Err(err)) => Err(tls_failed(handshake_error(err, Some(&expected)))),
        Err(_) => Err(tls_failed(TlsError::TimedOut { after: tls.timeout })),
    }
}

fn tls_failed(err: TlsError) -> DisconnectReason {
    DisconnectReason::Tls(Arc::new(err))
}

/// Names what went wrong in a handshake that tokio-rustls reported as `err`.
fn handshake_error(err: io::Error, server_name: Option<&str>) -> TlsError {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return from_rustls(tls.clone(), server_name, true);
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => TlsError::Closed,
        _ => TlsError::Io(err),
    }
}

fn from_rustls(err: rustls::Error, server_name: Option<&str>, handshaking: bool) -> TlsError {
    use rustls::{CertificateError as Cert, Error as E, InvalidMessage as Msg};
    match &err {
        E::InvalidCertificate(Cert::UnknownIssuer) => TlsError::UnknownCa(err),
        E::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            TlsError::NameMismatch {
                server_name: server_name.unwrap_or("the expected name").to_owned(),
                source: err,
            }
        }
        E::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            TlsError::Expired(err)
        }
        E::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            TlsError::NotYetValid(err)
        }
        E::InvalidCertificate(_) => TlsError::BadCertificate(err),
        E::NoCertificatesPresented => TlsError::NoCertificate(err),
        E::AlertReceived(alert) => TlsError::PeerRejected {
            alert: *alert,
            source: err,
        },
        // A record header that TLS never sends, on the first bytes: not TLS at all.
        E::InvalidMessage(
            Msg::InvalidContentType
            | Msg::UnknownProtocolVersion
            | Msg::MessageTooLarge
            | Msg::InvalidEmptyPayload,
        )
        | E::PeerSentOversizedRecord
            if handshaking =>
        {
            TlsError::NotTls(err)
        }
        _ => TlsError::Protocol(err),
    }
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
    head: &Sniff<impl Sized>,
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

/// Remembers the first bytes read from a plain connection, to recognise a TLS peer.
#[derive(Debug)]
pub(crate) struct Sniff<R> {
    inner: R,
    head: [u8; 3],
    len: usize,
}

impl<R> Sniff<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            head: [0; 3],
            len: 0,
        }
    }

    /// A TLS handshake (a client's hello) or alert (a server's refusal) record header:
    /// content type 22 or 21, then version 3.0 to 3.4.
    fn looks_like_tls(&self) -> bool {
        let [kind, major, minor] = self.head;
        self.len == self.head.len() && matches!(kind, 0x15 | 0x16) && major == 3 && minor <= 4
    }
}

impl<R: crate::connection::ReadReady> crate::connection::ReadReady for Sniff<R> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Sniff<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.len < self.head.len() && matches!(polled, Poll::Ready(Ok(()))) {
            let this = &mut *self;
            for &byte in buf.filled().iter().skip(before) {
                let Some(slot) = this.head.get_mut(this.len) else {
                    break;
                };
                *slot = byte;
                this.len += 1;
            }
        }
        polled
    }
}

/// Reads an established TLS stream, taking a peer that closes the TCP connection without
/// TLS's close_notify as an ordinary close: the framing still tells a cut frame from a
/// clean end, as on plain TCP.
#[derive(Debug)]
pub(crate) struct EofAsClose<R>(pub(crate) R);

/// TLS decrypts into buffers of its own, so a TLS reader is always read at once.
impl<R> crate::connection::ReadReady for EofAsClose<R> {
    fn poll_read_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EofAsClose<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                Poll::Ready(Ok(()))
            }
            polled => polled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("127.0.0.1:6653"), "127.0.0.1");
        assert_eq!(host_of("switch.example:6653"), "switch.example");
        assert_eq!(host_of("[::1]:6653"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn sniff_recognises_tls_records_only() {
        let mut sniff = Sniff::new(());
        for (head, tls) in [
            ([0x16, 3, 1], true),
            ([0x15, 3, 3], true),
            ([0x00, 7, 1], false),
            ([0x16, 4, 1], false),
            ([0x17, 3, 3], false),
        ] {
            sniff.head = head;
            sniff.len = 3;
            assert_eq!(sniff.looks_like_tls(), tls, "{head:?}");
        }
        sniff.len = 2;
        sniff.head = [0x16, 3, 0];
        assert!(!sniff.looks_like_tls());
    }
}
