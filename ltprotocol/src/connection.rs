//! One live connection: its [`ConnectionHandle`], its bounded outbox, and the task that reads
//! frames from the socket and writes queued frames to it.
//!
//! Servers and clients both run connections through this module; the application only ever
//! sees [`ConnectionHandle`]s and [`DisconnectReason`]s.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::codec::{EncodeError, FrameCodec, FrameError};
use crate::event::Handler;
use crate::frame::{Frame, HeaderFields};
use crate::message::DecodeError;
use crate::protocol::{Encode, Protocol};

/// A connection's number: unique for the life of its server or client, never reused.
///
/// ```
/// # use ltprotocol::ConnectionId;
/// assert_eq!(ConnectionId::new(7).to_string(), "#7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// An id with this number.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a connection ended. Shaped like quinn's `ConnectionError`: one variant per cause, each
/// carrying what explains it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed the connection between two frames.
    #[error("closed by peer")]
    PeerClosed,
    /// The byte stream broke the framing rules (bad length, or the stream ended mid-frame).
    #[error("protocol error")]
    Protocol(#[source] Arc<FrameError>),
    /// A frame of a known type carried a body that does not decode.
    #[error("undecodable message")]
    Decode(#[source] DecodeError),
    /// Reading or writing failed.
    #[error("i/o error")]
    Io(#[source] Arc<io::Error>),
    /// The connection's outbox stayed full while a broadcast needed room: the peer does not
    /// read fast enough, so it was dropped rather than stalling everyone else.
    #[error("slow reader: outbox of {capacity} bytes full")]
    SlowReader {
        /// The outbox's capacity in bytes.
        capacity: usize,
    },
    /// The application closed the connection.
    #[error("closed locally")]
    Closed,
    /// The server or client is shutting down.
    #[error("shut down")]
    Shutdown,
    /// The application's handler panicked while handling this connection.
    #[error("handler panicked")]
    HandlerPanicked,
}

/// Why a message could not be queued for sending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection (or client) is closed: nothing more can be sent on it.
    #[error("connection {id} is closed")]
    Closed {
        /// The connection, or `#0` for a client that was closed.
        id: ConnectionId,
    },
    /// The outbox is full and the caller asked not to wait.
    #[error("outbox of connection {id} is full ({capacity} bytes)")]
    QueueFull {
        /// The connection.
        id: ConnectionId,
        /// The outbox's capacity in bytes.
        capacity: usize,
    },
    /// The message cannot be encoded (too large for the length field or the outbound maximum,
    /// or a type or header field out of range); nothing was queued.
    #[error("cannot encode message")]
    Encode(#[from] EncodeError),
}

/// A bounded queue of encoded frames, measured in bytes. Shared by every handle of a
/// connection (or, for a client, across its connections); the writer drains it.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    budget: Arc<Semaphore>,
    capacity: usize,
}

/// The receiving end of an [`Outbox`], owned by the writer, with the frames taken from the
/// queue but not yet confirmed written (sent again on a client's next connection).
#[derive(Debug)]
pub(crate) struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Bytes>,
    budget: Arc<Semaphore>,
    capacity: usize,
    inflight: VecDeque<Bytes>,
}

pub(crate) fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(capacity));
    (
        Outbox {
            tx,
            budget: budget.clone(),
            capacity,
        },
        OutboxReceiver {
            rx,
            budget,
            capacity,
            inflight: VecDeque::new(),
        },
    )
}

/// The permits a frame of `len` bytes holds: its size, but never more than the whole budget,
/// so that a frame larger than the outbox can still be queued when the outbox is empty.
fn permits_for(len: usize, capacity: usize) -> u32 {
    // `capacity` was clamped to u32::MAX in `outbox`.
    u32::try_from(len.min(capacity)).unwrap_or(u32::MAX)
}

impl Outbox {
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues a frame, waiting for room.
    pub(crate) async fn send(&self, frame: Bytes, id: ConnectionId) -> Result<(), SendError> {
        let permits = permits_for(frame.len(), self.capacity);
        let permit = self
            .budget
            .acquire_many(permits)
            .await
            .map_err(|_| SendError::Closed { id })?;
        permit.forget();
        self.push(frame, permits, id)
    }

    /// Queues a frame if there is room now.
    pub(crate) fn try_send(&self, frame: Bytes, id: ConnectionId) -> Result<(), SendError> {
        let permits = permits_for(frame.len(), self.capacity);
        match self.budget.try_acquire_many(permits) {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SendError::Closed { id }),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(SendError::QueueFull {
                    id,
                    capacity: self.capacity,
                });
            }
        }
        self.push(frame, permits, id)
    }

    fn push(&self, frame: Bytes, permits: u32, id: ConnectionId) -> Result<(), SendError> {
        self.tx.send(frame).map_err(|_| {
            self.budget.add_permits(permits as usize);
            SendError::Closed { id }
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl OutboxReceiver {
    /// Frames queued or in flight, not yet confirmed written.
    pub(crate) fn unsent(&self) -> usize {
        self.inflight.len() + self.rx.len()
    }

    /// Refuses further frames; those already queued can still be drained.
    pub(crate) fn close(&mut self) {
        self.rx.close();
        self.budget.close();
    }

    fn confirm(&mut self) {
        let mut released = 0usize;
        for frame in self.inflight.drain(..) {
            released += permits_for(frame.len(), self.capacity) as usize;
        }
        self.budget.add_permits(released);
    }
}

/// Sizes and limits of a connection's buffers.
#[derive(Debug, Clone)]
pub(crate) struct LinkConfig {
    /// The codec, with the inbound and outbound maxima.
    pub(crate) codec: FrameCodec,
    /// How long a gracefully closing connection waits for the peer's end of stream.
    pub(crate) linger: Duration,
}

/// Frames at least this large are written straight from their `Bytes`, not copied into the
/// batch buffer.
const DIRECT_WRITE: usize = 16 * 1024;
/// A write batch is flushed once it holds this much.
const BATCH_BYTES: usize = 256 * 1024;
/// The first read of an idle connection reserves this much.
const INITIAL_READ: usize = 4 * 1024;
/// Reads grow (doubling while they fill the buffer) up to this much.
const MAX_READ: usize = 256 * 1024;

#[derive(Debug)]
struct HandleInner {
    id: ConnectionId,
    peer: SocketAddr,
    local: SocketAddr,
    outbox: Outbox,
    codec: FrameCodec,
    /// Cancelled to close gracefully: drain the outbox, then close.
    close: CancellationToken,
    /// Cancelled to close at once, dropping what is queued.
    abort: CancellationToken,
    connected: AtomicBool,
    received: AtomicU64,
    reason: Mutex<Option<DisconnectReason>>,
}

/// The application's handle on one connection: cheap to clone, usable from any task.
///
/// `Display` shows the peer address, as the ancestor's `str(conn)` did.
///
/// ```
/// # use ltprotocol::{HeaderLayout, Server, Unknown};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
/// let mut events = server.events();
/// let _client = tokio::net::TcpStream::connect(server.local_addr()).await?;
/// if let Some(ltprotocol::Event::Connected(conn)) = events.next().await {
///     assert!(conn.is_connected());
///     assert_eq!(conn.to_string(), conn.peer().to_string());
/// }
/// # server.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    inner: Arc<HandleInner>,
}

impl ConnectionHandle {
    pub(crate) fn new(
        id: ConnectionId,
        peer: SocketAddr,
        local: SocketAddr,
        outbox: Outbox,
        codec: FrameCodec,
        close: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(HandleInner {
                id,
                peer,
                local,
                outbox,
                codec,
                abort: CancellationToken::new(),
                close,
                connected: AtomicBool::new(true),
                received: AtomicU64::new(0),
                reason: Mutex::new(None),
            }),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.inner.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }

    /// Our end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Whether the connection is still open (the ancestor's `connected`).
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// How many messages have arrived on this connection.
    pub fn received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// The outbox's capacity in bytes.
    pub fn outbox_capacity(&self) -> usize {
        self.inner.outbox.capacity()
    }

    /// Encodes `msg` and queues it, waiting while the outbox is full (back-pressure).
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once the connection is closed; [`SendError::Encode`] when the
    /// message cannot be framed (nothing is queued).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, the message was not queued.
    pub async fn send<M: Encode + ?Sized>(&self, msg: &M) -> Result<(), SendError> {
        self.send_with(msg, &HeaderFields::new()).await
    }

    /// Like [`send`](Self::send), with extra header fields (OpenFlow's `xid`, say).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_with<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<(), SendError> {
        let frame = self.encode(msg, fields)?;
        self.send_encoded(frame).await
    }

    /// Queues a raw frame with its own header fields, waiting while the outbox is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_frame(&self, frame: &Frame) -> Result<(), SendError> {
        self.send_with(frame, &frame.fields).await
    }

    /// Queues `msg` if the outbox has room now; never waits.
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] when the outbox is full, and as [`send`](Self::send).
    pub fn try_send<M: Encode + ?Sized>(&self, msg: &M) -> Result<(), SendError> {
        let frame = self.encode(msg, &HeaderFields::new())?;
        self.check_open()?;
        self.inner.outbox.try_send(frame, self.inner.id)
    }

    /// Closes the connection gracefully: what is queued is written, then our side closes and
    /// the connection ends when the peer closes its side (or after a short linger).
    pub fn close(&self) {
        self.close_with(DisconnectReason::Closed);
    }

    pub(crate) fn close_with(&self, reason: DisconnectReason) {
        self.set_reason(reason);
        self.inner.close.cancel();
    }

    /// Closes at once, dropping what is queued.
    pub(crate) fn abort_with(&self, reason: DisconnectReason) {
        self.set_reason(reason);
        self.inner.abort.cancel();
    }

    fn set_reason(&self, reason: DisconnectReason) {
        let mut slot = self
            .inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(reason);
    }

    fn take_reason(&self) -> Option<DisconnectReason> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn encode<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.inner.codec.encode_message_with(msg, fields, &mut buf)?;
        Ok(buf.freeze())
    }

    pub(crate) async fn send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
        self.check_open()?;
        self.inner.outbox.send(frame, self.inner.id).await
    }

    /// Queues an already encoded frame without waiting (broadcast).
    pub(crate) fn try_send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
        self.check_open()?;
        self.inner.outbox.try_send(frame, self.inner.id)
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.inner.close.is_cancelled() || self.inner.outbox.is_closed() {
            Err(SendError::Closed { id: self.inner.id })
        } else {
            Ok(())
        }
    }

    pub(crate) fn mark_disconnected(&self) {
        self.inner.connected.store(false, Ordering::Release);
    }
}

impl fmt::Display for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.peer, f)
    }
}

/// Runs one connection until it ends: reads and delivers frames, writes queued frames, and
/// returns why it ended. Catches a panicking handler.
pub(crate) async fn drive<R, W, P, H>(
    mut reader: R,
    mut writer: W,
    handle: &ConnectionHandle,
    queue: &mut OutboxReceiver,
    handler: &H,
    config: &LinkConfig,
) -> DisconnectReason
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    P: Protocol,
    H: Handler<P>,
{
    let mut codec = config.codec.clone();
    codec.reset();
    let abort = handle.inner.abort.clone();
    let read = AssertUnwindSafe(read_loop::<R, P, H>(&mut reader, &mut codec, handle, handler))
        .catch_unwind();
    tokio::pin!(read);
    let write = write_loop(&mut writer, queue, &handle.inner.close);
    tokio::pin!(write);

    let reason = tokio::select! {
        () = abort.cancelled() => None,
        read_result = &mut read => Some(match read_result {
            Ok(reason) => reason,
            Err(_) => DisconnectReason::HandlerPanicked,
        }),
        write_result = &mut write => match write_result {
            Err(err) => Some(DisconnectReason::Io(Arc::new(err))),
            // Our side is closed and flushed: keep reading (and delivering) until the peer
            // closes too, so nothing it sent is lost, but not for longer than the linger.
            Ok(()) => {
                tokio::select! {
                    () = abort.cancelled() => None,
                    _ = &mut read => None,
                    () = tokio::time::sleep(config.linger) => None,
                }
            }
        },
    };
    handle.mark_disconnected();
    let requested = handle.take_reason();
    match (requested, reason) {
        // A reason given by whoever closed the connection wins over its consequence.
        (Some(requested), _) => requested,
        (None, Some(reason)) => reason,
        (None, None) => DisconnectReason::Closed,
    }
}

async fn read_loop<R, P, H>(
    reader: &mut R,
    codec: &mut FrameCodec,
    handle: &ConnectionHandle,
    handler: &H,
) -> DisconnectReason
where
    R: AsyncRead + Unpin + Send,
    P: Protocol,
    H: Handler<P>,
{
    let order = codec.layout().byte_order();
    let mut buf = BytesMut::new();
    let mut read_size = INITIAL_READ;
    loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    handle.inner.received.fetch_add(1, Ordering::Relaxed);
                    let message = match P::decode(frame.message_type, frame.body, order) {
                        Ok(message) => message,
                        Err(err) => return DisconnectReason::Decode(err),
                    };
                    handler.message(handle, message, frame.fields).await;
                }
                Ok(None) => break,
                Err(err) => return DisconnectReason::Protocol(Arc::new(err)),
            }
        }
        if buf.is_empty() && buf.capacity() > 0 && !codec.is_mid_frame() {
            // Idle between frames: give the buffer back, so an idle connection costs little.
            buf = BytesMut::new();
            read_size = INITIAL_READ;
        }
        if buf.capacity() - buf.len() < read_size / 2 {
            buf.reserve(read_size);
        }
        let spare = buf.capacity() - buf.len();
        match reader.read_buf(&mut buf).await {
            Ok(0) => {
                // Every complete frame was decoded above, so what is left is a cut frame.
                return match codec.decode_eof(&mut buf) {
                    Ok(_) => DisconnectReason::PeerClosed,
                    Err(err) => DisconnectReason::Protocol(Arc::new(err)),
                };
            }
            Ok(n) => {
                if n == spare {
                    read_size = (read_size * 2).min(MAX_READ);
                }
            }
            Err(err) => return DisconnectReason::Io(Arc::new(err)),
        }
    }
}

/// Writes queued frames in batches until the connection is closed gracefully (`close`), then
/// drains the queue, flushes and shuts our write side. Returns `Ok` after that shutdown.
async fn write_loop<W>(
    writer: &mut W,
    queue: &mut OutboxReceiver,
    close: &CancellationToken,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    let mut batch = BytesMut::new();
    let mut closing = false;
    // Frames left unconfirmed by an earlier connection (a client's) go first.
    if !queue.inflight.is_empty() {
        let retry: Vec<Bytes> = queue.inflight.iter().cloned().collect();
        for frame in &retry {
            writer.write_all(frame).await?;
        }
        writer.flush().await?;
        queue.confirm();
    }
    loop {
        let next = if closing {
            // Closing: write what is queued now, then stop. Handles refuse new frames once
            // the close token is cancelled.
            queue.rx.try_recv().ok()
        } else {
            tokio::select! {
                biased;
                frame = queue.rx.recv() => frame,
                () = close.cancelled() => {
                    closing = true;
                    continue;
                }
            }
        };
        let Some(first) = next else { break };
        let mut total = first.len();
        queue.inflight.push_back(first);
        while total < BATCH_BYTES {
            match queue.rx.try_recv() {
                Ok(frame) => {
                    total += frame.len();
                    queue.inflight.push_back(frame);
                }
                Err(_) => break,
            }
        }
        for frame in &queue.inflight {
            if frame.len() >= DIRECT_WRITE {
                if !batch.is_empty() {
                    writer.write_all(&batch).await?;
                    batch.clear();
                }
                writer.write_all(frame).await?;
            } else {
                batch.extend_from_slice(frame);
            }
        }
        if !batch.is_empty() {
            writer.write_all(&batch).await?;
            batch.clear();
        }
        if queue.rx.is_empty() {
            writer.flush().await?;
            // Going idle: release the batch buffer.
            batch = BytesMut::new();
        }
        queue.confirm();
    }
    writer.flush().await?;
    writer.shutdown().await
}
