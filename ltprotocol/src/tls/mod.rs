//! TLS and mutual TLS (feature `tls`): [`ServerTls`] for
//! [`ServerBuilder::tls`](crate::ServerBuilder::tls), [`ClientTls`] for
//! [`ClientBuilder::tls`](crate::ClientBuilder::tls), and what a failed handshake reports
//! ([`TlsError`]).
//!
//! Built on tokio-rustls; TLS 1.3 and 1.2. The cryptography is the process's default rustls
//! `CryptoProvider` when the application installed one (`CryptoProvider::install_default`, e.g.
//! aws-lc-rs's, which adds the post-quantum key exchange X25519MLKEM768), and otherwise rustls's
//! `ring` provider, which builds anywhere without cmake or a C toolchain for aws-lc but offers
//! no post-quantum key exchange (see [`crypto_provider`]). Nothing else
//! changes: handlers, event streams, broadcast, requests, keepalive, limits and reconnects
//! work the same over TLS, and a connection's [`ConnectionHandle::peer_identity`](crate::ConnectionHandle::peer_identity) tells who
//! the peer's verified certificate names.
//!
//! * **Server**: a certificate chain and key from PEM files, and optionally client
//!   authentication against a CA bundle ([`ClientAuth::Required`] or
//!   [`ClientAuth::Optional`]). The TLS handshake runs on the connection's own task after the
//!   connection limits, under [`ServerBuilder::tls_timeout`](crate::ServerBuilder::tls_timeout).
//!   A connection that fails it is never registered and never reported `connected`: it is
//!   logged, and the handler's `disconnected` (or [`Event::Disconnected`](crate::Event)) gets
//!   [`DisconnectReason::Tls`](crate::DisconnectReason::Tls) saying why. Other connections are not affected.
//! * **Client**: the server's name (by default the host part of the address), a CA bundle or
//!   the system's roots, optionally a client certificate and key. Each connection attempt,
//!   first and every reconnect, performs a TLS handshake (resuming the session when the server
//!   allows); a failure is a failed attempt like a refused TCP connect: reported through
//!   `connect_failed` ([`Event::ConnectFailed`](crate::Event)) with the reason, and retried
//!   after the backoff.
//!
//! # `SSLKEYLOGFILE`
//!
//! Servers and clients whose TLS settings this module builds from files ([`ServerTls`],
//! [`ClientTls`]; not those made with `from_config`, whose configuration is the
//! application's) append their TLS session secrets to the file named by the environment
//! variable `SSLKEYLOGFILE` when it is set (rustls's `KeyLogFile`; unset, nothing is written).
//! With that file, Wireshark decrypts a capture of the wire made by another tool
//! (`tcpdump`). **Risk**: whoever reads that file can decrypt every session it covers, past
//! and future captures alike; set it only while debugging, on a machine you control, and
//! delete the file afterwards. A session capture of the library (module `capture`, feature `pcap`)
//! needs none of this: it holds the plaintext.
//!
//! With TLS 1.3 a client finishes its handshake before the server has checked the client's
//! certificate, so a client whose certificate the server rejects is connected for a moment:
//! it then sees [`DisconnectReason::Tls`](crate::DisconnectReason::Tls) with [`TlsError::PeerRejected`] (or an I/O error, if
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

mod error;
mod identity;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use self::error::{TlsConfigError, TlsError};
pub(crate) use self::error::{from_rustls, handshake_error};
pub use self::identity::PeerIdentity;

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
    /// let provider = ltprotocol::tls::crypto_provider();
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
    /// [`ConnectionHandle::peer_identity`](crate::ConnectionHandle::peer_identity). Default: no client authentication.
    pub fn client_auth(&mut self, ca_bundle: impl AsRef<Path>, mode: ClientAuth) -> &mut Self {
        self.client_auth = Some((ca_bundle.as_ref().to_path_buf(), mode));
        self
    }

    /// Reads the files and builds the configuration (TLS 1.3 and 1.2, the
    /// [`crypto_provider`]).
    ///
    /// # Errors
    ///
    /// A [`TlsConfigError`] naming the file and the problem: unreadable, not PEM, no
    /// certificate or key in it, a CA certificate that cannot be a trust anchor, or a key
    /// that does not go with the certificate.
    pub fn build(&self) -> Result<ServerTls, TlsConfigError> {
        let provider = crypto_provider();
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
        let mut config = builder.with_single_cert(chain, key).map_err(|source| {
            TlsConfigError::CertificateKey {
                cert: self.cert_chain.clone(),
                key: self.key.clone(),
                source,
            }
        })?;
        config.key_log = Arc::new(rustls::KeyLogFile::new());
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
    /// let provider = ltprotocol::tls::crypto_provider();
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
    /// 1.2, the [`crypto_provider`], session resumption on).
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
        let provider = crypto_provider();
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Settings)?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
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
        config.key_log = Arc::new(rustls::KeyLogFile::new());
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

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

/// The cryptography [`ServerTls::builder`] and [`ClientTls::builder`] configurations use: the
/// process's default rustls provider if the application installed one, and otherwise rustls's
/// `ring` provider.
///
/// rustls 0.23.48 deprecates its `ring` provider for lacking post-quantum key exchange, and
/// steers to aws-lc-rs, which needs a C toolchain (and on some targets cmake) to build. This
/// crate keeps `ring` as the fallback, so that it builds anywhere, and leaves the choice to the
/// application: one line at start, before any TLS setting is built, selects aws-lc-rs (with the
/// `rustls` crate's `aws_lc_rs` feature):
///
/// ```ignore
/// rustls::crypto::aws_lc_rs::default_provider().install_default();
/// ```
///
/// ```
/// // Nothing installed: the ring provider, whose suites include TLS 1.3's AES-GCM.
/// let provider = ltprotocol::tls::crypto_provider();
/// assert!(!provider.cipher_suites.is_empty());
/// ```
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Arc::clone(installed);
    }
    // Deprecated only for what it lacks (post-quantum key exchange), and the one way to get
    // ring's provider: the application can install another, as the docs above say.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    Arc::new(ring)
}
