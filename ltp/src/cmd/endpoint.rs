//! Where `ltp` listens and connects: `host:port` (TCP), `unix:PATH` (a Unix-domain socket), or,
//! to listen, `fd:N` (a listening socket handed over by systemd socket activation, or any
//! parent that sets `LISTEN_FDS` and `LISTEN_PID` as systemd does).

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;
use ltprotocol::transport::UnixConnector;
use ltprotocol::{ClientBuilder, Handler, Protocol, ReconnectingClient, Server, ServerBuilder};

/// The first file descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_PASSED_FD: u32 = 3;

/// A listening or connecting address as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `host:port`.
    Tcp(String),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `fd:N`: an inherited listening socket.
    Fd(u32),
}

impl Endpoint {
    /// Parses `unix:PATH`, `fd:N` or `host:port`; a usage error (one line) otherwise.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, as in unix:/run/ltp.sock".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = text.strip_prefix("fd:") {
            return match fd.parse::<u32>() {
                Ok(fd) if fd >= FIRST_PASSED_FD => Ok(Self::Fd(fd)),
                _ => Err(format!(
                    "fd:{fd}: an inherited socket's descriptor, {FIRST_PASSED_FD} or more"
                )),
            };
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Self::Tcp(text.to_owned()))
            }
            _ => Err(format!(
                "{text}: expected host:port, unix:PATH or fd:N (a port is needed)"
            )),
        }
    }

    /// Binds a server here.
    pub(crate) async fn bind<P: Protocol>(
        &self,
        builder: &ServerBuilder<P>,
    ) -> anyhow::Result<Server<P>> {
        match self {
            Self::Tcp(addr) => builder
                .bind(addr.as_str())
                .await
                .with_context(|| format!("cannot listen on {addr}")),
            Self::Unix(path) => builder
                .bind_unix(path)
                .with_context(|| format!("cannot listen on unix:{}", path.display())),
            Self::Fd(fd) => {
                let index = (fd - FIRST_PASSED_FD) as usize;
                let mut passed = listenfd::ListenFd::from_env();
                let mut taken = || -> std::io::Result<Server<P>> {
                    if let Some(tcp) = passed.take_tcp_listener(index)? {
                        tcp.set_nonblocking(true)?;
                        return builder.listen(tokio::net::TcpListener::from_std(tcp)?);
                    }
                    if let Some(unix) = passed.take_unix_listener(index)? {
                        unix.set_nonblocking(true)?;
                        return builder.listen(tokio::net::UnixListener::from_std(unix)?);
                    }
                    Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such socket was passed (LISTEN_FDS, LISTEN_PID)",
                    ))
                };
                taken().with_context(|| format!("cannot listen on fd:{fd}"))
            }
        }
    }

    /// Parses where to connect: `unix:PATH` or `host:port`; `fd:N` is for listening only, so
    /// it is a usage error here, as a missing port is.
    pub(crate) fn parse_target(text: &str) -> Result<Self, String> {
        match Self::parse(text) {
            Ok(Self::Fd(fd)) => Err(format!(
                "fd:{fd} is for listening; connect to host:port or unix:PATH"
            )),
            Err(_) if !text.starts_with("unix:") => Err(format!(
                "{text}: expected host:port or unix:PATH (a port is needed)"
            )),
            parsed => parsed,
        }
    }

    /// Starts a reconnecting client to here.
    pub(crate) fn connect<P: Protocol, H: Handler<P>>(
        &self,
        builder: &ClientBuilder<P>,
        handler: H,
    ) -> anyhow::Result<ReconnectingClient<P>> {
        match self {
            Self::Tcp(addr) => Ok(builder.connect_with_handler(addr.as_str(), handler)),
            Self::Unix(path) => Ok(builder.connect_with_handler(UnixConnector::new(path), handler)),
            // `parse_target` refuses it on the command line.
            Self::Fd(fd) => {
                anyhow::bail!("fd:{fd} is for listening; connect to host:port or unix:PATH")
            }
        }
    }
}

/// As given on the command line: `host:port`, `unix:PATH` or `fd:N`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(addr),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn endpoints_parse_or_say_why_not() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:9999"),
            Ok(Endpoint::Tcp("127.0.0.1:9999".into()))
        );
        assert_eq!(
            Endpoint::parse("[::1]:9999"),
            Ok(Endpoint::Tcp("[::1]:9999".into()))
        );
        assert_eq!(
            Endpoint::parse("unix:/run/x.sock"),
            Ok(Endpoint::Unix("/run/x.sock".into()))
        );
        assert_eq!(Endpoint::parse("fd:3"), Ok(Endpoint::Fd(3)));
        assert!(Endpoint::parse("fd:1").is_err());
        assert!(Endpoint::parse("unix:").is_err());
        assert!(Endpoint::parse("127.0.0.1").is_err());
        assert!(Endpoint::parse("localhost:http").is_err());
        assert_eq!(
            Endpoint::parse_target("unix:/run/x.sock"),
            Ok(Endpoint::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            Endpoint::parse_target("fd:3"),
            Err("fd:3 is for listening; connect to host:port or unix:PATH".into())
        );
        assert_eq!(
            Endpoint::parse_target("127.0.0.1"),
            Err("127.0.0.1: expected host:port or unix:PATH (a port is needed)".into())
        );
        assert!(Endpoint::parse_target("unix:").is_err());
    }
}
