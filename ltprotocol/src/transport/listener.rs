//! Where a server's connections come from: a [`Listener`].

use std::future::Future;
use std::io;
use std::pin::Pin;

use super::{Addr, BoxStream, Stream};

/// A source of incoming connections for a [`Server`](crate::Server): a TCP or Unix-domain
/// listener, or anything else that hands out streams (as axum's and hyper's servers take any
/// listener).
///
/// Implemented for tokio's `TcpListener` (every accepted socket gets `TCP_NODELAY`: the
/// writer batches instead) and `UnixListener`. A listener the application already has as a
/// `std` one converts with tokio's `from_std` (after `set_nonblocking(true)`); one handed over
/// by systemd socket activation comes from the `listenfd` crate the same way.
///
/// ```
/// # use ltprotocol::{HeaderLayout, Server, Unknown};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// // A listener the application bound itself (inherited, or set up with socket options).
/// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// std_listener.set_nonblocking(true)?;
/// let listener = tokio::net::TcpListener::from_std(std_listener)?;
/// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).listen(listener)?;
/// assert!(server.local_addr().as_tcp().is_some());
/// # Ok(())
/// # }
/// ```
pub trait Listener: Send + 'static {
    /// The streams it accepts.
    type Stream: Stream;

    /// The next connection, with its peer's address.
    ///
    /// Errors that concern one connection only (`ECONNABORTED` and the like) are skipped by
    /// the server; any other (`EMFILE`, …) pauses accepting, 10 ms doubling to 1 s.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, Addr)>> + Send;

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// The I/O error from asking the socket.
    fn local_addr(&self) -> io::Result<Addr>;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(tokio::net::TcpStream, Addr)> {
        let (stream, peer) = Self::accept(self).await?;
        // Small frames must not wait for Nagle; our writer batches instead.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        Ok((stream, Addr::Tcp(peer)))
    }

    fn local_addr(&self) -> io::Result<Addr> {
        Self::local_addr(self).map(Addr::Tcp)
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<(tokio::net::UnixStream, Addr)> {
        let (stream, peer) = Self::accept(self).await?;
        Ok((stream, Addr::from(peer)))
    }

    fn local_addr(&self) -> io::Result<Addr> {
        Self::local_addr(self).map(Addr::from)
    }
}

type Accepting<'a> = Pin<Box<dyn Future<Output = io::Result<(BoxStream, Addr)>> + Send + 'a>>;

/// A [`Listener`] with its stream type erased, as a server holds it.
pub(crate) trait ErasedListener: Send {
    fn accept_boxed(&mut self) -> Accepting<'_>;
}

impl<L: Listener> ErasedListener for L {
    fn accept_boxed(&mut self) -> Accepting<'_> {
        Box::pin(async move {
            let (stream, peer) = self.accept().await?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }
}

impl std::fmt::Debug for dyn ErasedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// How a server keeps its listener until it serves.
pub(crate) type BoxListener = Box<dyn ErasedListener>;

/// Erases `listener`'s stream type.
pub(crate) fn boxed_listener(listener: impl Listener) -> BoxListener {
    Box::new(listener)
}
