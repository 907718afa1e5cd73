//! [`ServerBuilder`]: the settings a server adds to those every connection shares, and the
//! ways to start listening.

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use super::limits::{self, Limits};
use crate::connection::Builder;
use crate::layout::HeaderLayout;
use crate::protocol::Protocol;
use crate::transport::{Listener, boxed_listener};

use super::{Server, ServerInner};

/// Default [`ServerBuilder::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
/// Default [`ServerBuilder::ipv6_prefix`]: a /64, what one host or link usually holds.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Configures and binds a [`Server`]: the settings every connection shares are those of
/// [`Builder`]; the server adds its limits, TLS, and where it listens. Every limit has a
/// documented default.
///
/// ```
/// # use ltprotocol::{HeaderLayout, Server, Unknown};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
///     .max_connections(1_000)
///     .outbox_capacity(256 * 1024)
///     .bind("127.0.0.1:0")
///     .await?;
/// assert_ne!(server.local_addr().as_tcp().map(|a| a.port()), Some(0));
/// # Ok(())
/// # }
/// ```
pub type ServerBuilder<P> = Builder<ServerSide<P>>;

/// What only a server has: its limits and TLS. See [`ServerBuilder`].
#[derive(Debug, Clone)]
pub struct ServerSide<P> {
    max_connections: usize,
    max_per_ip: Option<usize>,
    ipv6_prefix: u8,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ServerTls>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> Builder<ServerSide<P>> {
    pub(crate) fn server(layout: HeaderLayout) -> Self {
        Self::with(
            layout,
            ServerSide {
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_per_ip: None,
                ipv6_prefix: DEFAULT_IPV6_PREFIX,
                #[cfg(feature = "tls")]
                tls: None,
                _protocol: PhantomData,
            },
        )
    }

    /// Serves TLS (with client authentication if `tls` asks for it) instead of plain bytes,
    /// over any listener. Default: plain. Feature `tls`.
    ///
    /// Each accepted connection runs the TLS handshake on its own task, after the connection
    /// limits and before the [`handshake`](Builder::handshake) hook, bounded by
    /// [`tls_timeout`](Builder::tls_timeout). A connection that fails it is not registered
    /// and never reported `connected`; it is logged, and `disconnected` (or
    /// [`Event::Disconnected`](crate::Event::Disconnected)) reports
    /// [`DisconnectReason::Tls`](crate::DisconnectReason::Tls) saying why. See [`tls`](crate::tls) for an example.
    #[cfg(feature = "tls")]
    pub fn tls(&mut self, tls: crate::tls::ServerTls) -> &mut Self {
        self.side.tls = Some(tls);
        self
    }

    /// The most connections open at once; one more is accepted and closed at once, and the
    /// refusal logged and counted ([`Server::refused`]). Default: 100,000 (the process's file
    /// descriptor limit is usually lower, and accepting backs off when it is reached).
    pub fn max_connections(&mut self, max: usize) -> &mut Self {
        self.side.max_connections = max;
        self
    }

    /// The most TCP connections open at once from one address group; more are refused like
    /// those over [`max_connections`](Self::max_connections). A group is one IPv4 address (an
    /// IPv4-mapped IPv6 address counts as its IPv4 address), or one IPv6 prefix of
    /// [`ipv6_prefix`](Self::ipv6_prefix) bits: a single host usually holds a whole /64, so
    /// counting full IPv6 addresses would let it open as many connections as it likes.
    /// Default: `None` (no per-address limit).
    pub fn max_connections_per_ip(&mut self, max: usize) -> &mut Self {
        self.side.max_per_ip = Some(max);
        self
    }

    /// How many leading bits of an IPv6 address make one group for
    /// [`max_connections_per_ip`](Self::max_connections_per_ip) (clamped to 0..=128).
    /// Default: 64, the usual allocation to one host or link.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, Server, Unknown};
    /// let mut builder = Server::<Unknown>::builder(HeaderLayout::ltprotocol());
    /// builder.max_connections_per_ip(16).ipv6_prefix(56); // a /56 per site
    /// ```
    pub fn ipv6_prefix(&mut self, bits: u8) -> &mut Self {
        self.side.ipv6_prefix = bits.min(128);
        self
    }

    /// Binds a TCP listener (IPv4 or IPv6; port 0 picks a free port, see
    /// [`Server::local_addr`]). Nothing is accepted until [`Server::serve`] or
    /// [`Server::events`].
    ///
    /// # Errors
    ///
    /// The I/O error from resolving or binding the address.
    pub async fn bind(&self, addr: impl ToSocketAddrs) -> io::Result<Server<P>> {
        self.listen(TcpListener::bind(addr).await?)
    }

    /// Binds a Unix-domain socket at `path`. A socket file left there by a server that is
    /// gone (nobody accepts on it) is replaced; one a live server listens on is not (the error
    /// is [`io::ErrorKind::AddrInUse`]), nor is a file that is not a socket. The socket file
    /// is removed when the server shuts down.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, Server, Unknown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let path = std::env::temp_dir().join(format!("ltp-doc-{}.sock", std::process::id()));
    /// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind_unix(&path)?;
    /// assert_eq!(server.local_addr().to_string(), format!("unix:{}", path.display()));
    /// server.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert!(!path.exists());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AddrInUse`] when a server listens there, and the I/O error from
    /// binding.
    #[cfg(unix)]
    pub fn bind_unix(&self, path: impl AsRef<Path>) -> io::Result<Server<P>> {
        let path = path.as_ref();
        limits::clear_stale_socket(path)?;
        let listener = tokio::net::UnixListener::bind(path)?;
        let server = self.listen(listener)?;
        *server
            .inner
            .socket_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(path.to_path_buf());
        Ok(server)
    }

    /// Serves the connections `listener` accepts: a listener the application already has
    /// (bound with its own options, inherited, or handed over by systemd socket activation),
    /// TCP, Unix or its own [`Listener`].
    ///
    /// # Errors
    ///
    /// The I/O error from asking the listener its address.
    pub fn listen(&self, listener: impl Listener) -> io::Result<Server<P>> {
        let local_addr = listener.local_addr()?;
        info!(%local_addr, "listening");
        let options = self.options.clone();
        Ok(Server {
            inner: Arc::new(ServerInner {
                local_addr,
                listener: Mutex::new(Some(boxed_listener(listener))),
                socket_file: Mutex::new(None),
                registry: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                codec: Arc::new(options.codec.clone()),
                limits: Limits::new(
                    self.side.max_connections,
                    self.side.max_per_ip,
                    self.side.ipv6_prefix,
                ),
                shutdown: CancellationToken::new(),
                accept_stopped: CancellationToken::new(),
                force: CancellationToken::new(),
                tracker: TaskTracker::new(),
                accept_errors: AtomicU64::new(0),
                unsent: AtomicUsize::new(0),
                #[cfg(feature = "tls")]
                tls: self.side.tls.as_ref().map(|tls| {
                    crate::transport::tls_stream::Acceptor::new(tls, options.tls_timeout)
                }),
                options,
            }),
            _protocol: PhantomData,
        })
    }
}
