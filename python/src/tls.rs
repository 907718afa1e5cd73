//! [`ServerTls`] and [`ClientTls`]: the Rust library's TLS settings (tokio-rustls) from PEM
//! files, read and checked when made, as `ltp serve --tls-cert/--tls-key/--client-ca` and
//! `ltp connect --tls --ca/--server-name/--cert/--key` read them.

use ltprotocol::tls::ClientAuth;
use pyo3::prelude::*;

use crate::exceptions::ConfigError;

/// A server's TLS: its certificate chain and key, and optionally the CA bundle its clients'
/// certificates must be issued by (mutual TLS). Immutable.
#[pyclass(frozen, module = "ltprotocol")]
#[derive(Debug, Clone)]
pub(crate) struct ServerTls {
    pub(crate) inner: ltprotocol::tls::ServerTls,
}

#[pymethods]
impl ServerTls {
    /// Serves TLS with the certificate chain in `cert` (PEM, the server's certificate first)
    /// and the private key in `key` (PEM). With `client_ca` (PEM), clients must present a
    /// certificate issued by one of its CAs (`client_auth="required"`, mutual TLS) or may
    /// (`client_auth="optional"`).
    ///
    /// Raises `ConfigError` naming the file and problem (unreadable, not PEM, a key that
    /// does not go with the certificate...).
    #[new]
    #[pyo3(signature = (cert, key, *, client_ca = None, client_auth = "required"))]
    fn new(cert: &str, key: &str, client_ca: Option<&str>, client_auth: &str) -> PyResult<Self> {
        let mode = match client_auth {
            "required" => ClientAuth::Required,
            "optional" => ClientAuth::Optional,
            other => {
                return Err(ConfigError::new_err(format!(
                    "client_auth {other:?} is neither \"required\" nor \"optional\""
                )));
            }
        };
        let mut builder = ltprotocol::tls::ServerTls::builder(cert, key);
        if let Some(ca) = client_ca {
            builder.client_auth(ca, mode);
        }
        let inner = builder
            .build()
            .map_err(|err| ConfigError::new_err(ltprotocol::error_chain(&err)))?;
        Ok(Self { inner })
    }

    fn __repr__(&self) -> &'static str {
        "ServerTls(...)"
    }
}

/// A client's TLS: whom to trust, the name to check, and optionally a certificate to
/// present (mutual TLS). Immutable.
#[pyclass(frozen, module = "ltprotocol")]
#[derive(Debug, Clone)]
pub(crate) struct ClientTls {
    pub(crate) inner: ltprotocol::tls::ClientTls,
}

#[pymethods]
impl ClientTls {
    /// Speaks TLS, trusting the CAs in `ca` (PEM) or, without it, the system's root
    /// certificates; the server's certificate must carry `server_name` (default: the host the
    /// client connects to). With `cert` and `key` (PEM), presents that certificate when the
    /// server asks for one.
    ///
    /// Raises `ConfigError` naming the file and problem.
    #[new]
    #[pyo3(signature = (*, ca = None, server_name = None, cert = None, key = None))]
    fn new(
        ca: Option<&str>,
        server_name: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> PyResult<Self> {
        let mut builder = ltprotocol::tls::ClientTls::builder();
        if let Some(ca) = ca {
            builder.ca_file(ca);
        }
        if let Some(name) = server_name {
            builder.server_name(name);
        }
        match (cert, key) {
            (Some(cert), Some(key)) => {
                builder.client_cert(cert, key);
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::new_err(
                    "a client certificate needs both cert and key",
                ));
            }
        }
        let inner = builder
            .build()
            .map_err(|err| ConfigError::new_err(ltprotocol::error_chain(&err)))?;
        Ok(Self { inner })
    }

    fn __repr__(&self) -> &'static str {
        "ClientTls(...)"
    }
}
