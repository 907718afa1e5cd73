//! The byte streams connections run over, and where they come from.
//!
//! A connection runs over any [`Stream`]: TCP and Unix-domain sockets, TLS over either, tokio's
//! in-memory [`DuplexStream`](tokio::io::DuplexStream), or any other `AsyncRead + AsyncWrite`
//! wrapped in [`AnyStream`]. A server takes its connections from a [`Listener`] (a TCP or Unix
//! listener it binds, or one the application already has, such as one handed over by systemd);
//! a reconnecting client makes each of its connections with a [`Connector`].
//!
//! Every feature (limits, timeouts, handshake, request/reply, keepalive, TLS on top, graceful
//! shutdown) works the same over every stream; [`Addr`] says who the peer is.
//!
//! ```
//! use ltprotocol::transport::Addr;
//! let tcp = Addr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 9999)));
//! assert_eq!(tcp.to_string(), "127.0.0.1:9999");
//! assert_eq!(Addr::unix("/run/ltp.sock").to_string(), "unix:/run/ltp.sock");
//! ```

mod connector;
mod listener;
mod split;
#[cfg(feature = "tls")]
pub(crate) mod tls_stream;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) use self::connector::ErasedConnector;
#[cfg(unix)]
pub use self::connector::UnixConnector;
pub use self::connector::{Connector, FnConnector, TcpConnector};
pub use self::listener::Listener;
pub(crate) use self::listener::{BoxListener, boxed_listener};
pub(crate) use self::split::{ReadHalf, WriteHalf};

/// A byte stream a connection can run over: any tokio `AsyncRead + AsyncWrite` that can move
/// between threads.
///
/// Implemented for tokio's TCP and Unix-domain streams and its in-memory duplex; wrap any other
/// stream in [`AnyStream`], or implement this trait for it (its one method has a default).
///
/// ```
/// use ltprotocol::transport::{AnyStream, Stream};
/// fn runs_over<S: Stream>(_stream: &S) {}
/// let (ours, _theirs) = tokio::io::duplex(1024);
/// runs_over(&ours);
/// // Any other AsyncRead + AsyncWrite, wrapped:
/// runs_over(&AnyStream(tokio::io::BufStream::new(ours)));
/// ```
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Whether a read would find bytes (or the end of the stream, or an error) now, without
    /// taking any: an idle connection then waits holding no read buffer (what keeps ten
    /// thousand idle TCP connections small). `None`, the default, when the stream cannot tell:
    /// an idle connection on it then waits in a read, with its read buffer.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        let _ = cx;
        None
    }

    /// Our end's address, when the stream has one. Default: `None`.
    fn local_addr(&self) -> Option<Addr> {
        None
    }
}

impl Stream for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        Some(Self::poll_read_ready(self, cx))
    }

    fn local_addr(&self) -> Option<Addr> {
        Self::local_addr(self).ok().map(Addr::Tcp)
    }
}

#[cfg(unix)]
impl Stream for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        Some(Self::poll_read_ready(self, cx))
    }

    fn local_addr(&self) -> Option<Addr> {
        Self::local_addr(self).ok().map(Addr::from)
    }
}

impl Stream for tokio::io::DuplexStream {}

impl fmt::Debug for dyn Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stream")
    }
}

impl Stream for Box<dyn Stream> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        (**self).poll_read_ready(cx)
    }

    fn local_addr(&self) -> Option<Addr> {
        (**self).local_addr()
    }
}

/// Any `AsyncRead + AsyncWrite + Send + Unpin` as a [`Stream`] (one that cannot tell when it is
/// readable, so its idle connections keep their read buffer).
///
/// ```
/// use ltprotocol::transport::{AnyStream, Stream};
/// let (ours, _theirs) = tokio::io::duplex(64);
/// let wrapped: Box<dyn Stream> = Box::new(AnyStream(tokio::io::BufStream::new(ours)));
/// # let _ = wrapped;
/// ```
#[derive(Debug)]
pub struct AnyStream<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for AnyStream<S> {}

impl<S: AsyncRead + Unpin> AsyncRead for AnyStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AnyStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A stream whose type is erased, as servers and clients hold them: one connection engine for
/// every kind of stream.
pub(crate) type BoxStream = Box<dyn Stream>;

/// Who is at the other end of a connection (or at ours).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A Unix-domain socket: its path, or `None` for an unnamed one (a client's end, usually).
    Unix(Option<Arc<Path>>),
    /// Another kind of stream, described by the application (an in-memory duplex, say).
    Other(Arc<str>),
}

impl Addr {
    /// A Unix-domain socket address.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::Unix(Some(Arc::from(path.into())))
    }

    /// An address described by the application.
    pub fn other(description: impl Into<String>) -> Self {
        Self::Other(Arc::from(description.into()))
    }

    /// The TCP address, for a TCP peer.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The IP address, for a TCP peer.
    pub fn ip(&self) -> Option<IpAddr> {
        self.as_tcp().map(|addr| addr.ip())
    }
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Self {
        Self::Tcp(addr)
    }
}

#[cfg(unix)]
impl From<tokio::net::unix::SocketAddr> for Addr {
    fn from(addr: tokio::net::unix::SocketAddr) -> Self {
        Self::Unix(addr.as_pathname().map(Arc::from))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => fmt::Display::fmt(addr, f),
            Self::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Self::Unix(None) => f.write_str("unix:(unnamed)"),
            Self::Other(description) => f.write_str(description),
        }
    }
}

/// A connection's stream as its engine runs it: plain, or boxed (TLS over the plain stream,
/// or either of them captured). Two variants, the second boxed: what a connection's task
/// holds stays at 24 bytes, as small as a plain stream.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain; its first bytes are watched, to recognise a TLS peer on a plain port.
    Plain(Sniff<BoxStream>),
    /// TLS, or a captured stream.
    #[cfg(any(feature = "tls", feature = "pcap"))]
    Boxed(Box<Boxed>),
}

/// The streams a [`Transport`] holds boxed.
#[cfg(any(feature = "tls", feature = "pcap"))]
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "boxed whole in Transport; a captured stream's box is as large as a TLS one's"
)]
pub(crate) enum Boxed {
    /// TLS, its handshake done. Feature `tls`.
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsStream<BoxStream>),
    /// A plain or TLS stream whose application bytes (above TLS) are captured. Feature
    /// `pcap`.
    #[cfg(feature = "pcap")]
    Captured {
        inner: Transport,
        capture: crate::capture::StreamCapture,
    },
}

impl Transport {
    pub(crate) fn plain(stream: BoxStream) -> Self {
        Self::Plain(Sniff::new(stream))
    }

    /// A TLS stream whose handshake is done.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(stream: tokio_rustls::TlsStream<BoxStream>) -> Self {
        Self::Boxed(Box::new(Boxed::Tls(stream)))
    }

    /// This stream, captured from now on when the options ask for it (above TLS: the
    /// plaintext). `server`: the connection was accepted.
    pub(crate) fn captured(
        self,
        options: &crate::connection::ConnectionOptions,
        handle: &crate::ConnectionHandle,
        server: bool,
    ) -> Self {
        #[cfg(feature = "pcap")]
        if let Some(capture) = &options.capture {
            let capture = crate::capture::StreamCapture::open(
                capture,
                handle.local_addr(),
                handle.peer(),
                server,
            );
            return Self::Boxed(Box::new(Boxed::Captured {
                inner: self,
                capture,
            }));
        }
        #[cfg(not(feature = "pcap"))]
        let _ = (options, handle, server);
        self
    }

    /// The final say on why a connection over this stream ended: a TLS failure hidden in an
    /// I/O error is named, and so is a TLS peer on a plain port.
    pub(crate) fn explain(
        &self,
        reason: crate::DisconnectReason,
        handle: &crate::ConnectionHandle,
    ) -> crate::DisconnectReason {
        match self {
            #[cfg(feature = "tls")]
            Self::Plain(sniff) => tls_stream::plain_reason(reason, sniff, handle),
            #[cfg(not(feature = "tls"))]
            Self::Plain(_) => {
                let _ = handle;
                reason
            }
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &**boxed {
                #[cfg(feature = "tls")]
                Boxed::Tls(_) => tls_stream::established_reason(reason),
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, .. } => inner.explain(reason, handle),
            },
        }
    }
}

/// Locks a connection's stream; its lock is never contended (see `split`).
pub(crate) fn lock(stream: &std::sync::Mutex<Transport>) -> std::sync::MutexGuard<'_, Transport> {
    stream
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Stream for Transport {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        match self {
            Self::Plain(sniff) => sniff.inner.poll_read_ready(cx),
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &**boxed {
                // TLS decrypts into buffers of its own: a TLS stream is always read at once.
                #[cfg(feature = "tls")]
                Boxed::Tls(_) => None,
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, .. } => inner.poll_read_ready(cx),
            },
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut *self {
            Self::Plain(sniff) => Pin::new(sniff).poll_read(cx, buf),
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &mut **boxed {
                #[cfg(feature = "tls")]
                Boxed::Tls(stream) => match Pin::new(stream).poll_read(cx, buf) {
                    // A peer that closes the TCP connection without TLS's close_notify: an
                    // ordinary close. The framing still tells a cut frame from a clean end,
                    // as on plain TCP.
                    Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                        Poll::Ready(Ok(()))
                    }
                    polled => polled,
                },
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, capture } => {
                    let before = buf.filled().len();
                    let polled = Pin::new(inner).poll_read(cx, buf);
                    // Nothing new with room in `buf`: the peer's end of the stream.
                    if matches!(polled, Poll::Ready(Ok(())))
                        && (buf.remaining() > 0 || buf.filled().len() > before)
                    {
                        capture.received(buf.filled().get(before..).unwrap_or_default());
                    }
                    polled
                }
            },
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut *self {
            Self::Plain(sniff) => Pin::new(&mut sniff.inner).poll_write(cx, buf),
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &mut **boxed {
                #[cfg(feature = "tls")]
                Boxed::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, capture } => {
                    let polled = Pin::new(inner).poll_write(cx, buf);
                    if let Poll::Ready(Ok(written)) = polled {
                        capture.sent(&[io::IoSlice::new(buf)], written);
                    }
                    polled
                }
            },
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut *self {
            Self::Plain(sniff) => Pin::new(&mut sniff.inner).poll_write_vectored(cx, bufs),
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &mut **boxed {
                #[cfg(feature = "tls")]
                Boxed::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, capture } => {
                    let polled = Pin::new(inner).poll_write_vectored(cx, bufs);
                    if let Poll::Ready(Ok(written)) = polled {
                        capture.sent(bufs, written);
                    }
                    polled
                }
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(sniff) => sniff.inner.is_write_vectored(),
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &**boxed {
                #[cfg(feature = "tls")]
                Boxed::Tls(stream) => stream.is_write_vectored(),
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, .. } => inner.is_write_vectored(),
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self {
            Self::Plain(sniff) => Pin::new(&mut sniff.inner).poll_flush(cx),
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &mut **boxed {
                #[cfg(feature = "tls")]
                Boxed::Tls(stream) => Pin::new(stream).poll_flush(cx),
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, .. } => Pin::new(inner).poll_flush(cx),
            },
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self {
            Self::Plain(sniff) => Pin::new(&mut sniff.inner).poll_shutdown(cx),
            #[cfg(any(feature = "tls", feature = "pcap"))]
            Self::Boxed(boxed) => match &mut **boxed {
                #[cfg(feature = "tls")]
                Boxed::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
                #[cfg(feature = "pcap")]
                Boxed::Captured { inner, capture } => {
                    let polled = Pin::new(inner).poll_shutdown(cx);
                    if let Poll::Ready(Ok(())) = polled {
                        capture.shut_down();
                    }
                    polled
                }
            },
        }
    }
}

/// Remembers the first bytes read from a plain stream, to recognise a TLS peer.
#[derive(Debug)]
pub(crate) struct Sniff<S> {
    pub(crate) inner: S,
    head: [u8; 3],
    len: u8,
}

impl<S> Sniff<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            head: [0; 3],
            len: 0,
        }
    }

    /// A TLS handshake (a client's hello) or alert (a server's refusal) record header:
    /// content type 22 or 21, then version 3.0 to 3.4.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn looks_like_tls(&self) -> bool {
        let [kind, major, minor] = self.head;
        usize::from(self.len) == self.head.len()
            && matches!(kind, 0x15 | 0x16)
            && major == 3
            && minor <= 4
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if usize::from(self.len) < self.head.len() && matches!(polled, Poll::Ready(Ok(()))) {
            let this = &mut *self;
            for &byte in buf.filled().iter().skip(before) {
                let Some(slot) = this.head.get_mut(usize::from(this.len)) else {
                    break;
                };
                *slot = byte;
                this.len += 1;
            }
        }
        polled
    }
}
