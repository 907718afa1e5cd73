//! Why TLS settings could not be built ([`TlsConfigError`]), and why a TLS handshake failed
//! or a TLS connection broke ([`TlsError`]).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rustls::AlertDescription;

use super::rustls;
use crate::connection::DisconnectReason;

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

/// Names what went wrong in a handshake that tokio-rustls reported as `err`.
pub(crate) fn handshake_error(err: io::Error, server_name: Option<&str>) -> TlsError {
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

pub(crate) fn from_rustls(
    err: rustls::Error,
    server_name: Option<&str>,
    handshaking: bool,
) -> TlsError {
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
