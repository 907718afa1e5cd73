//! The handshake hook: an async exchange run on every new connection (and every client
//! reconnect) before anything queued is sent or any event delivered; e.g. OpenFlow's HELLO and
//! FEATURES_REQUEST.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use crate::codec::{EncodeError, FrameCodec, FrameError};
use crate::connection::ConnectionHandle;
use crate::frame::{Frame, HeaderFields};
use crate::layout::HeaderLayout;
use crate::message::DecodeError;
use crate::protocol::Encode;

/// Why a handshake failed. The connection is closed with
/// [`DisconnectReason::Handshake`](crate::DisconnectReason::Handshake); a client counts it as
/// a failed attempt and backs off.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer closed the connection during the handshake.
    #[error("peer closed the connection during the handshake")]
    Closed,
    /// Reading or writing failed.
    #[error("i/o error during the handshake")]
    Io(#[from] io::Error),
    /// The peer broke the framing rules.
    #[error("protocol error during the handshake")]
    Frame(#[from] FrameError),
    /// A handshake message could not be encoded.
    #[error("cannot encode a handshake message")]
    Encode(#[from] EncodeError),
    /// A message from the peer did not decode.
    #[error("cannot decode a handshake message")]
    Decode(#[from] DecodeError),
    /// The layout has no correlation field, so [`HandshakeContext::request`] cannot work.
    #[error("no correlation field is configured for requests")]
    NoCorrelation,
    /// The handshake refused the peer (say, no common protocol version).
    #[error("{0}")]
    Rejected(String),
    /// While the handshake waited for a reply, the peer sent more other frames than may be
    /// set aside for the application ([`HandshakeBacklog`]): before any authentication, a
    /// peer must not make the server hold an unbounded backlog.
    #[error(
        "more than {max_frames} frames or {max_bytes} bytes arrived while the handshake waited \
         for its reply ({frames} frames, {bytes} bytes set aside)"
    )]
    BacklogFull {
        /// Frames set aside, the one over the limit included.
        frames: usize,
        /// Their bytes (headers included).
        bytes: usize,
        /// The limit on frames.
        max_frames: usize,
        /// The limit on bytes.
        max_bytes: usize,
    },
}

/// How much a handshake may set aside, in frames and bytes (headers included), while it
/// waits for a reply ([`HandshakeContext::request`]): frames the peer sends meanwhile are
/// delivered to the application after the handshake. Past either bound the handshake fails
/// with [`HandshakeError::BacklogFull`].
///
/// ```
/// use ltprotocol::HandshakeBacklog;
/// let backlog = HandshakeBacklog::default();
/// assert_eq!((backlog.frames, backlog.bytes), (1024, 1024 * 1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeBacklog {
    /// The most frames set aside. Default: 1,024 (a switch announces its ports, a few
    /// dozen frames, while a controller waits for its FEATURES_REPLY).
    pub frames: usize,
    /// The most bytes set aside. Default: 1 MiB.
    pub bytes: usize,
}

impl Default for HandshakeBacklog {
    fn default() -> Self {
        Self {
            frames: 1024,
            bytes: 1024 * 1024,
        }
    }
}

/// An async handshake. Implement it for a type holding its settings; the value it returns is
/// kept on the connection ([`ConnectionHandle::handshake_output`]).
///
/// ```
/// use ltprotocol::{
///     Event, HandshakeContext, HandshakeError, Handshake, HeaderLayout, MessageType,
///     ReconnectingClient, Server, Unknown,
/// };
///
/// /// Sends a greeting (type 9) and waits for the peer's, whose body it returns.
/// struct Greeting;
///
/// impl Handshake for Greeting {
///     type Output = bytes::Bytes;
///
///     async fn run(&self, ctx: &mut HandshakeContext<'_>) -> Result<bytes::Bytes, HandshakeError> {
///         ctx.send(&Unknown { message_type: MessageType::new(9), body: "hi".into() }).await?;
///         let reply = ctx.recv().await?;
///         if reply.message_type != MessageType::new(9) {
///             return Err(HandshakeError::Rejected(format!("expected a greeting, got type {}", reply.message_type)));
///         }
///         Ok(reply.body)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Both ends greet: the server per accepted connection, the client on every (re)connect.
/// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
///     .handshake(Greeting)
///     .bind("127.0.0.1:0")
///     .await?;
/// let mut server_events = server.events();
/// let (client, _events) = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol())
///     .handshake(Greeting)
///     .connect(server.local_addr().to_string());
///
/// let conn = client.wait_connected().await.unwrap();
/// assert_eq!(conn.handshake_output::<bytes::Bytes>().unwrap(), "hi");
/// let Some(Event::Connected(accepted)) = server_events.next().await else { panic!() };
/// assert_eq!(accepted.handshake_output::<bytes::Bytes>().unwrap(), "hi");
/// client.close(std::time::Duration::from_secs(5)).await;
/// server.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(())
/// # }
/// ```
pub trait Handshake: Send + Sync + 'static {
    /// What the handshake learnt (a negotiated version, a datapath id).
    type Output: Any + Send + Sync;

    /// Runs the exchange.
    fn run(
        &self,
        ctx: &mut HandshakeContext<'_>,
    ) -> impl Future<Output = Result<Self::Output, HandshakeError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A [`Handshake`] with its output type erased, so servers and clients can hold any.
pub(crate) trait ErasedHandshake: Send + Sync + 'static {
    fn run_erased<'a>(
        &'a self,
        ctx: &'a mut HandshakeContext<'_>,
    ) -> BoxFuture<'a, Result<Arc<dyn Any + Send + Sync>, HandshakeError>>;
}

impl<H: Handshake> ErasedHandshake for H {
    fn run_erased<'a>(
        &'a self,
        ctx: &'a mut HandshakeContext<'_>,
    ) -> BoxFuture<'a, Result<Arc<dyn Any + Send + Sync>, HandshakeError>> {
        Box::pin(async move {
            let output = self.run(ctx).await?;
            Ok(Arc::new(output) as Arc<dyn Any + Send + Sync>)
        })
    }
}

/// A shareable handshake, as servers and clients store it.
pub(crate) type SharedHandshake = Arc<dyn ErasedHandshake>;

/// What a [`Handshake`] works with: the new connection's socket, before the read and write
/// loops start. Frames that arrive during the handshake and that it does not take
/// ([`request`](Self::request) skips them) are delivered to the application afterwards, in
/// order.
pub struct HandshakeContext<'a> {
    pub(crate) reader: &'a mut (dyn AsyncRead + Unpin + Send),
    pub(crate) writer: &'a mut (dyn AsyncWrite + Unpin + Send),
    pub(crate) codec: &'a mut FrameCodec,
    pub(crate) buf: &'a mut BytesMut,
    pub(crate) deferred: &'a mut VecDeque<Frame>,
    /// The bytes of `deferred`.
    pub(crate) deferred_bytes: usize,
    pub(crate) backlog: HandshakeBacklog,
    pub(crate) handle: &'a ConnectionHandle,
}

impl std::fmt::Debug for HandshakeContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeContext")
            .field("connection", self.handle)
            .field("deferred", &self.deferred.len())
            .finish_non_exhaustive()
    }
}

impl HandshakeContext<'_> {
    /// The connection being set up.
    pub fn connection(&self) -> &ConnectionHandle {
        self.handle
    }

    /// The connection's layout.
    pub fn layout(&self) -> &HeaderLayout {
        self.codec.layout()
    }

    /// Sends a message at once (ahead of anything queued) and flushes it.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Encode`] or [`HandshakeError::Io`].
    pub async fn send<M: Encode + ?Sized>(&mut self, msg: &M) -> Result<(), HandshakeError> {
        self.send_with(msg, &HeaderFields::new()).await
    }

    /// Like [`send`](Self::send), with extra header fields.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_with<M: Encode + ?Sized>(
        &mut self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<(), HandshakeError> {
        let mut out = BytesMut::new();
        self.codec.encode_message_with(msg, fields, &mut out)?;
        self.writer.write_all(&out).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Like [`send`](Self::send), with the correlation field set to a fresh id (see
    /// [`ConnectionHandle::send_fresh`](crate::ConnectionHandle::send_fresh)), which it
    /// returns; without correlation, as `send`, returning `None`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); [`HandshakeError::Rejected`] when every id is in flight.
    pub async fn send_fresh<M: Encode + ?Sized>(
        &mut self,
        msg: &M,
    ) -> Result<Option<i128>, HandshakeError> {
        let Some(table) = self.handle.request_table().cloned() else {
            self.send(msg).await?;
            return Ok(None);
        };
        let (id, fields) = table
            .fresh_fields(HeaderFields::new())
            .map_err(|_| HandshakeError::Rejected("no free request id".into()))?;
        self.send_with(msg, &fields).await?;
        Ok(Some(id))
    }

    /// The next frame from the peer (frames set aside by [`request`](Self::request) first).
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Closed`] at the end of the stream, [`HandshakeError::Frame`] for a
    /// framing error, [`HandshakeError::Io`].
    pub async fn recv(&mut self) -> Result<Frame, HandshakeError> {
        if let Some(frame) = self.deferred.pop_front() {
            self.deferred_bytes = self
                .deferred_bytes
                .saturating_sub(self.layout().header_len() + frame.body.len());
            return Ok(frame);
        }
        self.read_frame().await
    }

    async fn read_frame(&mut self) -> Result<Frame, HandshakeError> {
        loop {
            if let Some(frame) = self.codec.decode(self.buf)? {
                return Ok(frame);
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            if self.reader.read_buf(self.buf).await? == 0 {
                self.codec.decode_eof(self.buf)?;
                return Err(HandshakeError::Closed);
            }
        }
    }

    /// Sends `msg` with a fresh correlation id and returns the frame that carries the same
    /// id. Other frames that arrive meanwhile are delivered to the application after the
    /// handshake, within the [`HandshakeBacklog`]. The handshake's own timeout bounds the
    /// wait.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::NoCorrelation`] without a correlation field,
    /// [`HandshakeError::BacklogFull`] past the backlog, and as [`send`](Self::send) and
    /// [`recv`](Self::recv).
    pub async fn request<M: Encode + ?Sized>(&mut self, msg: &M) -> Result<Frame, HandshakeError> {
        let table = self
            .handle
            .request_table()
            .ok_or(HandshakeError::NoCorrelation)?
            .clone();
        let field = table.config.field;
        let (id, fields) = table
            .fresh_fields(HeaderFields::new())
            .map_err(|_| HandshakeError::Rejected("no free request id".into()))?;
        self.send_with(msg, &fields).await?;
        loop {
            let frame = self.read_frame().await?;
            if frame.fields.get(field) == Some(id) {
                return Ok(frame);
            }
            self.set_aside(frame)?;
        }
    }

    /// Keeps `frame` for the application, within the backlog. Its body is copied out of the
    /// read buffer, so that the bytes counted are the bytes held (a small body would pin
    /// its whole read block).
    fn set_aside(&mut self, frame: Frame) -> Result<(), HandshakeError> {
        let frames = self.deferred.len() + 1;
        let bytes = self.deferred_bytes + self.layout().header_len() + frame.body.len();
        if frames > self.backlog.frames || bytes > self.backlog.bytes {
            return Err(HandshakeError::BacklogFull {
                frames,
                bytes,
                max_frames: self.backlog.frames,
                max_bytes: self.backlog.bytes,
            });
        }
        self.deferred_bytes = bytes;
        self.deferred.push_back(Frame {
            body: bytes::Bytes::copy_from_slice(&frame.body),
            ..frame
        });
        Ok(())
    }
}
