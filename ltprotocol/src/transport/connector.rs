//! How a reconnecting client makes each of its connections: a [`Connector`].

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use super::{Addr, BoxStream, Stream};

/// Makes one connection for a [`ReconnectingClient`](crate::ReconnectingClient), on every
/// attempt: TCP ([`TcpConnector`], what `connect("host:port")` uses), a Unix-domain socket
/// ([`UnixConnector`]), or any stream the application makes ([`FnConnector`]).
pub trait Connector: Send + Sync + 'static {
    /// The streams it makes.
    type Stream: Stream;

    /// Makes a connection, with the peer's address. The client bounds it with its
    /// [`connect_timeout`](crate::ClientBuilder::connect_timeout).
    fn connect(&self) -> impl Future<Output = io::Result<(Self::Stream, Addr)>> + Send;

    /// Where it connects to, for logs (`127.0.0.1:9999`, `unix:/run/app.sock`).
    fn target(&self) -> String;

    /// The host name a TLS client checks the server's certificate against when none is
    /// configured: the host of a TCP address; `None` otherwise.
    fn host(&self) -> Option<&str> {
        None
    }
}

/// Connects over TCP to `host:port`, resolving the name on every attempt, with
/// `TCP_NODELAY` set.
///
/// ```
/// use ltprotocol::transport::{Connector, TcpConnector};
/// let to = TcpConnector::new("localhost:9999");
/// assert_eq!((to.target(), to.host()), ("localhost:9999".to_owned(), Some("localhost")));
/// ```
#[derive(Debug, Clone)]
pub struct TcpConnector {
    addr: String,
}

impl TcpConnector {
    /// A connector to `addr` (`host:port`, `[v6]:port`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }
}

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;

    async fn connect(&self) -> io::Result<(tokio::net::TcpStream, Addr)> {
        let stream = tokio::net::TcpStream::connect(self.addr.as_str()).await?;
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let peer = stream.peer_addr()?;
        Ok((stream, Addr::Tcp(peer)))
    }

    fn target(&self) -> String {
        self.addr.clone()
    }

    fn host(&self) -> Option<&str> {
        Some(host_of(&self.addr))
    }
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

/// Connects to a Unix-domain socket.
///
/// ```
/// use ltprotocol::transport::{Connector, UnixConnector};
/// assert_eq!(UnixConnector::new("/run/app.sock").target(), "unix:/run/app.sock");
/// ```
#[cfg(unix)]
#[derive(Debug, Clone)]
pub struct UnixConnector {
    path: PathBuf,
}

#[cfg(unix)]
impl UnixConnector {
    /// A connector to the socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[cfg(unix)]
impl Connector for UnixConnector {
    type Stream = tokio::net::UnixStream;

    async fn connect(&self) -> io::Result<(tokio::net::UnixStream, Addr)> {
        let stream = tokio::net::UnixStream::connect(&self.path).await?;
        Ok((stream, Addr::unix(&self.path)))
    }

    fn target(&self) -> String {
        Addr::unix(&self.path).to_string()
    }
}

/// Makes each connection with a function of the application's: any stream (an in-memory
/// duplex in a test, a socket set up with special options, a tunnel).
///
/// ```
/// use ltprotocol::transport::{Addr, Connector, FnConnector};
/// let to = FnConnector::new("memory", || async {
///     let (ours, _theirs) = tokio::io::duplex(1024);
///     Ok((ours, Addr::other("memory")))
/// });
/// assert_eq!(to.target(), "memory");
/// ```
pub struct FnConnector<F> {
    target: String,
    make: F,
}

impl<F> FnConnector<F> {
    /// A connector calling `make` on every attempt; `target` names it in logs.
    pub fn new(target: impl Into<String>, make: F) -> Self {
        Self {
            target: target.into(),
            make,
        }
    }
}

impl<F> fmt::Debug for FnConnector<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnConnector")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<F, Fut, S> Connector for FnConnector<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<(S, Addr)>> + Send,
    S: Stream,
{
    type Stream = S;

    fn connect(&self) -> impl Future<Output = io::Result<(S, Addr)>> + Send {
        (self.make)()
    }

    fn target(&self) -> String {
        self.target.clone()
    }
}

type Connecting<'a> = Pin<Box<dyn Future<Output = io::Result<(BoxStream, Addr)>> + Send + 'a>>;

/// A [`Connector`] with its stream type erased, as a client's task holds it.
pub(crate) trait ErasedConnector: Send + Sync {
    fn connect_boxed(&self) -> Connecting<'_>;
    fn target(&self) -> String;
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    fn host(&self) -> Option<&str>;
}

impl<C: Connector> ErasedConnector for C {
    fn connect_boxed(&self) -> Connecting<'_> {
        Box::pin(async move {
            let (stream, peer) = self.connect().await?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }

    fn target(&self) -> String {
        Connector::target(self)
    }

    fn host(&self) -> Option<&str> {
        Connector::host(self)
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("localhost:9999"), "localhost");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }
}
