//! [`PeerIdentity`]: who a verified peer certificate names.

use std::fmt;
use std::net::IpAddr;

use rustls::pki_types::CertificateDer;

use tracing::debug;

use super::rustls;

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
///     async fn message(&self, _conn: &ConnectionHandle, _message: Unknown, _fields: &HeaderFields) {}
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = ltprotocol::Server::<Unknown>::builder(ltprotocol::HeaderLayout::ltprotocol())
///     .bind("127.0.0.1:0")
///     .await?;
/// let serving = server.clone();
/// tokio::spawn(async move { serving.serve(Audit).await });
/// # let _plain = tokio::net::TcpStream::connect(server.local_addr().to_string()).await?;
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

    pub(crate) fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> Option<Self> {
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
