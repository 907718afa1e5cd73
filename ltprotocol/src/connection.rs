//! One live connection: its [`ConnectionHandle`], its bounded outbox, and the task that reads
//! frames from the socket and writes queued frames to it.
//!
//! Servers and clients both run connections through this module; the application only ever
//! sees [`ConnectionHandle`]s and [`DisconnectReason`]s.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::codec::{EncodeError, EncodedFrame, FrameCodec, FrameError};
use crate::event::{Handled, Handler, Inspected};
use crate::frame::{Frame, HeaderFields};
use crate::handshake::{HandshakeBacklog, HandshakeContext, HandshakeError, SharedHandshake};
use crate::message::{Body, DecodeError};
use crate::protocol::{Encode, Protocol};
use crate::request::{Correlation, ReplyStream, RequestError, RequestTable};

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
    Decode(#[source] Arc<DecodeError>),
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
    /// The handshake failed.
    #[error("handshake failed")]
    Handshake(#[source] Arc<HandshakeError>),
    /// TLS failed: the handshake (a certificate rejected by us or by the peer, plain TCP on a
    /// TLS port, a timeout), or the TLS layer of an established connection. Which, is in the
    /// [`TlsError`](crate::tls::TlsError). Feature `tls`.
    #[cfg(feature = "tls")]
    #[error("TLS failed")]
    Tls(#[source] Arc<crate::tls::TlsError>),
    /// A timeout expired.
    #[error("{kind} timeout after {after:?}")]
    TimedOut {
        /// Which timeout.
        kind: TimeoutKind,
        /// Its setting.
        after: Duration,
    },
}

/// Which of the [`Timeouts`] expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// A frame's header had started but the frame was not complete in time.
    FrameRead,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// A write made no progress: the peer stopped reading.
    Write,
    /// The handshake did not finish in time.
    Handshake,
    /// A keepalive probe went unanswered: nothing arrived for the keepalive's idle time plus
    /// its timeout.
    Keepalive,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FrameRead => "frame read",
            Self::Idle => "idle",
            Self::Write => "write",
            Self::Handshake => "handshake",
            Self::Keepalive => "keepalive",
        })
    }
}

/// The per-connection timeouts of a server or client. Each closes only the offending
/// connection, with [`DisconnectReason::TimedOut`].
///
/// ```
/// use std::time::Duration;
/// use ltprotocol::Timeouts;
/// let strict = Timeouts { idle: Some(Duration::from_secs(60)), ..Timeouts::default() };
/// assert_eq!(strict.frame_read, Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Once the first byte of a frame has arrived, the whole frame must arrive within this:
    /// a peer trickling a byte a second cannot hold a connection. Default: 30 s.
    pub frame_read: Option<Duration>,
    /// Close a connection on which nothing arrives for this long. Default: `None` (off),
    /// since listen-only peers such as the ancestor's demo client never send; set it, or use
    /// a keepalive, to shed vanished peers.
    pub idle: Option<Duration>,
    /// A write that makes no progress for this long (the peer stopped reading and the
    /// kernel's buffers are full) closes the connection. Default: 30 s.
    pub write: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            frame_read: Some(Duration::from_secs(30)),
            idle: None,
            write: Some(Duration::from_secs(30)),
        }
    }
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
    /// An [`EncodedFrame`] made for another header layout than the connection's.
    #[error("frame for connection {id} was encoded for another header layout")]
    LayoutMismatch {
        /// The connection.
        id: ConnectionId,
    },
    /// The message cannot be encoded (too large for the length field or the outbound maximum,
    /// or a type or header field out of range); nothing was queued.
    #[error("cannot encode message")]
    Encode(#[from] EncodeError),
}

/// A bounded queue of encoded frames, measured in bytes. Shared by every handle of a
/// connection (or, for a client, across its connections); the writer drains it.
///
/// Senders take room from a byte budget (a semaphore, so waiting senders are served in
/// order), push under a short lock and wake the writer only when the queue was empty; the
/// writer takes everything queued in one swap. Nothing is allocated until a frame is queued,
/// and an idle writer gives its buffers back.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    shared: Arc<OutboxShared>,
}

#[derive(Debug)]
struct OutboxShared {
    pending: Mutex<VecDeque<Bytes>>,
    /// Set (under the `pending` lock) once the receiver is closed: no frame is taken after.
    closed: AtomicBool,
    /// Wakes the writer when the queue turns non-empty.
    ready: Notify,
    budget: Semaphore,
    capacity: usize,
}

impl OutboxShared {
    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        // Every critical section is one push or one swap: consistent even after a panic.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The receiving end of an [`Outbox`], owned by the writer, with the frames taken from the
/// queue but not yet confirmed written (sent again on a client's next connection). It does
/// not hold the outbox: its methods are given the one it came with (the handle's, or the
/// client's), 8 bytes less in every connection's task.
#[derive(Debug)]
pub(crate) struct OutboxReceiver {
    inflight: VecDeque<Bytes>,
}

pub(crate) fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let shared = Arc::new(OutboxShared {
        pending: Mutex::new(VecDeque::new()),
        closed: AtomicBool::new(false),
        ready: Notify::new(),
        budget: Semaphore::new(capacity),
        capacity,
    });
    (
        Outbox { shared },
        OutboxReceiver {
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
        self.shared.capacity
    }

    /// Takes room for a frame of `len` bytes if there is room now.
    fn take_room(&self, len: usize, id: ConnectionId) -> Result<Room, SendError> {
        let permits = permits_for(len, self.shared.capacity);
        match self.shared.budget.try_acquire_many(permits) {
            Ok(permit) => {
                permit.forget();
                Ok(Room::Taken(permits))
            }
            Err(tokio::sync::TryAcquireError::Closed) => Err(SendError::Closed { id }),
            Err(tokio::sync::TryAcquireError::NoPermits) => Ok(Room::Full(permits)),
        }
    }

    /// Waits until the `permits` [`take_room`](Self::take_room) found missing are free, takes
    /// them and queues the frame. Boxed by its callers: the semaphore's wait is large and
    /// seldom needed.
    async fn queue_when_room(
        &self,
        frame: Bytes,
        permits: u32,
        id: ConnectionId,
    ) -> Result<(), SendError> {
        let permit = self
            .shared
            .budget
            .acquire_many(permits)
            .await
            .map_err(|_| SendError::Closed { id })?;
        permit.forget();
        self.push(frame, permits, id)
    }

    /// Queues a frame, waiting for room.
    pub(crate) async fn send(&self, frame: Bytes, id: ConnectionId) -> Result<(), SendError> {
        match self.take_room(frame.len(), id)? {
            Room::Taken(permits) => self.push(frame, permits, id),
            Room::Full(permits) => Box::pin(self.queue_when_room(frame, permits, id)).await,
        }
    }

    /// Queues a frame if there is room now.
    pub(crate) fn try_send(&self, frame: Bytes, id: ConnectionId) -> Result<(), SendError> {
        match self.take_room(frame.len(), id)? {
            Room::Taken(permits) => self.push(frame, permits, id),
            Room::Full(_) => Err(SendError::QueueFull {
                id,
                capacity: self.shared.capacity,
            }),
        }
    }

    fn push(&self, frame: Bytes, permits: u32, id: ConnectionId) -> Result<(), SendError> {
        let was_empty = {
            let mut pending = self.shared.pending();
            if self.shared.closed.load(Ordering::Relaxed) {
                drop(pending);
                self.shared.budget.add_permits(permits as usize);
                return Err(SendError::Closed { id });
            }
            pending.push_back(frame);
            pending.len() == 1
        };
        if was_empty {
            // The writer takes all it finds, so only the first frame after a take wakes it.
            self.shared.ready.notify_one();
        }
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Whether no frame is queued (frames taken by the writer are not counted).
    fn is_empty(&self) -> bool {
        self.shared.pending().is_empty()
    }

    /// Wakes the connection that drains this outbox, idle or writing, to look at its close
    /// and abort flags (and a client's close token): whoever sets or cancels one of them calls
    /// this next.
    pub(crate) fn wake(&self) {
        self.shared.ready.notify_one();
    }
}

/// Whether [`Outbox::take_room`] found room; either way, the permits a frame of that size
/// holds.
enum Room {
    Taken(u32),
    Full(u32),
}

/// A [`ConnectionHandle`] send: queues its frame at the first poll, and waits (boxed) only
/// while the outbox is full. Small on purpose: it lives inside every handler future that
/// sends, and a handler's future is moved into place for each frame delivered.
struct Queueing<'a> {
    handle: &'a ConnectionHandle,
    /// The encoded frame, or why there is none; taken at the first poll.
    frame: Option<Result<Bytes, SendError>>,
    waiting: Option<futures::future::BoxFuture<'a, Result<(), SendError>>>,
}

impl Future for Queueing<'_> {
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(waiting) = &mut this.waiting {
            return waiting.as_mut().poll(cx);
        }
        let handle = this.handle;
        let id = handle.inner.id;
        let frame = match this.frame.take() {
            Some(Ok(frame)) => frame,
            Some(Err(err)) => return Poll::Ready(Err(err)),
            // Polled again after it completed.
            None => return Poll::Ready(Err(SendError::Closed { id })),
        };
        if let Err(err) = handle.check_open() {
            return Poll::Ready(Err(err));
        }
        let outbox = &handle.inner.outbox;
        match outbox.take_room(frame.len(), id) {
            Ok(Room::Taken(permits)) => Poll::Ready(outbox.push(frame, permits, id)),
            Ok(Room::Full(permits)) => {
                let mut waiting = Box::pin(outbox.queue_when_room(frame, permits, id));
                let polled = waiting.as_mut().poll(cx);
                if polled.is_pending() {
                    this.waiting = Some(waiting);
                }
                polled
            }
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl OutboxReceiver {
    /// Frames queued or in flight, not yet confirmed written.
    pub(crate) fn unsent(&self, outbox: &Outbox) -> usize {
        self.inflight.len() + outbox.shared.pending().len()
    }

    /// Refuses further frames; those already queued can still be drained.
    pub(crate) fn close(&mut self, outbox: &Outbox) {
        let _pending = outbox.shared.pending();
        outbox.shared.closed.store(true, Ordering::Release);
        outbox.shared.budget.close();
    }

    /// Moves every queued frame behind those in flight; false when nothing was queued.
    fn take(&mut self, outbox: &Outbox) -> bool {
        let mut pending = outbox.shared.pending();
        if pending.is_empty() {
            return false;
        }
        if self.inflight.is_empty() {
            // The emptied in-flight buffer becomes the queue's: no allocation per batch.
            std::mem::swap(&mut *pending, &mut self.inflight);
        } else {
            self.inflight.extend(pending.drain(..));
        }
        true
    }

    /// Waits until frames are queued and moves them in flight (`false`), or until `closed`
    /// says so (`true`): whoever makes it say so wakes the outbox ([`Outbox::wake`]) next.
    async fn recv_or(&mut self, outbox: &Outbox, closed: impl Fn() -> bool) -> bool {
        loop {
            if self.take(outbox) {
                return false;
            }
            if closed() {
                return true;
            }
            // `notify_one` keeps a permit when the writer is not waiting: no wake-up is lost
            // between the check above and this wait.
            outbox.shared.ready.notified().await;
        }
    }

    /// Gives back the queue's buffers while they are empty and hold room for more than `keep`
    /// frames: with 0, so that an idle connection holds none.
    fn release_buffers(&mut self, outbox: &Outbox, keep: usize) {
        if self.inflight.is_empty() && self.inflight.capacity() > keep {
            self.inflight = VecDeque::new();
        }
        let mut pending = outbox.shared.pending();
        if pending.is_empty() && pending.capacity() > keep {
            *pending = VecDeque::new();
        }
    }

    /// Confirms the first `count` frames in flight: written whole.
    fn confirm_front(&mut self, outbox: &Outbox, count: usize) {
        let mut released = 0usize;
        for frame in self.inflight.drain(..count.min(self.inflight.len())) {
            released += permits_for(frame.len(), outbox.shared.capacity) as usize;
        }
        if released > 0 {
            outbox.shared.budget.add_permits(released);
        }
    }
}

/// A byte source that can tell when bytes are waiting without taking them, so that an idle
/// connection waits without a read buffer.
pub(crate) trait ReadReady {
    /// Ready once a read would find bytes (or end of stream, or an error); may be ready early.
    fn poll_read_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>>;
}

impl ReadReady for tokio::net::tcp::ReadHalf<'_> {
    fn poll_read_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

impl<T: ReadReady + ?Sized> ReadReady for &mut T {
    fn poll_read_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        (**self).poll_read_ready(cx)
    }
}

/// Everything a connection runs with: limits, timeouts, request matching, handshake.
#[derive(Clone)]
pub(crate) struct LinkConfig {
    /// The codec, with the inbound and outbound maxima; shared by every connection's handle
    /// (each connection decodes with a copy of its own).
    pub(crate) codec: Arc<FrameCodec>,
    /// How long a gracefully closing connection waits for the peer's end of stream.
    pub(crate) linger: Duration,
    /// Read, idle and write timeouts.
    pub(crate) timeouts: Timeouts,
    /// Request/reply matching.
    pub(crate) correlation: Option<Correlation>,
    /// Run on every new connection before anything else.
    pub(crate) handshake: Option<SharedHandshake>,
    /// Bounds the handshake.
    pub(crate) handshake_timeout: Duration,
    /// Bounds what the handshake sets aside while it waits for a reply.
    pub(crate) handshake_backlog: HandshakeBacklog,
    /// Probes a quiet peer.
    pub(crate) keepalive: Option<Keepalive>,
    /// Answers some frames at once (OpenFlow's ECHO_REQUEST).
    pub(crate) auto_reply: Option<AutoReply>,
    /// Whether what is queued outlives the connection (a client's queue, written on its next
    /// connection): once the peer is gone, nothing more is written into the dying socket.
    /// A server's connection instead goes on writing what its handler queued (the replies
    /// to a peer that half-closed, say) until the linger ends.
    pub(crate) queue_outlives_connection: bool,
}

impl fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkConfig")
            .field("codec", &self.codec)
            .field("linger", &self.linger)
            .field("timeouts", &self.timeouts)
            .field("correlation", &self.correlation)
            .field("handshake", &self.handshake.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("handshake_backlog", &self.handshake_backlog)
            .field("keepalive", &self.keepalive)
            .field("auto_reply", &self.auto_reply.is_some())
            .field("queue_outlives_connection", &self.queue_outlives_connection)
            .finish()
    }
}

impl LinkConfig {
    pub(crate) fn new(codec: FrameCodec) -> Self {
        Self {
            codec: Arc::new(codec),
            linger: DEFAULT_LINGER,
            timeouts: Timeouts::default(),
            correlation: None,
            handshake: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshake_backlog: HandshakeBacklog::default(),
            keepalive: None,
            auto_reply: None,
            queue_outlives_connection: false,
        }
    }
}

/// The connection settings shared by [`ServerBuilder`](crate::ServerBuilder) and
/// [`ClientBuilder`](crate::ClientBuilder): frame limits, timeouts, request matching,
/// handshake, keepalive. Expands to setters on `self.link: LinkConfig`.
macro_rules! link_setters {
    () => {
        /// The largest whole frame accepted from the peer, checked from the header alone
        /// before any body byte is buffered. Default: what the length field can describe, at
        /// most 8 MiB (65,535 for both presets).
        pub fn max_inbound(&mut self, max: usize) -> &mut Self {
            self.link.codec = Arc::new((*self.link.codec).clone().max_inbound(max));
            self
        }

        /// The largest whole frame sent; larger ones are refused with
        /// [`EncodeError::TooLarge`](crate::EncodeError::TooLarge). Default: what the length
        /// field can describe.
        pub fn max_outbound(&mut self, max: usize) -> &mut Self {
            self.link.codec = Arc::new((*self.link.codec).clone().max_outbound(max));
            self
        }

        /// After a graceful close has flushed our side, how long to wait for the peer to
        /// close its side (reading and delivering what it still sends). Default: 5 s.
        pub fn linger(&mut self, linger: std::time::Duration) -> &mut Self {
            self.link.linger = linger;
            self
        }

        /// The frame read, idle and write timeouts of every connection; see
        /// [`Timeouts`](crate::Timeouts) for their defaults.
        pub fn timeouts(&mut self, timeouts: crate::Timeouts) -> &mut Self {
            self.link.timeouts = timeouts;
            self
        }

        /// Enables [`request`](crate::ConnectionHandle::request): replies are matched to
        /// requests on this header field. Default: off.
        pub fn correlation(&mut self, correlation: crate::Correlation) -> &mut Self {
            self.link.correlation = Some(correlation);
            self
        }

        /// Runs `handshake` on every new connection before anything queued is sent or any
        /// event delivered; its output is kept on the
        /// [`ConnectionHandle`](crate::ConnectionHandle). Default: none.
        pub fn handshake<H: crate::Handshake>(&mut self, handshake: H) -> &mut Self {
            self.link.handshake = Some(std::sync::Arc::new(handshake));
            self
        }

        /// Bounds the handshake; past it the connection closes with
        /// [`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake). Default: 10 s.
        pub fn handshake_timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
            self.link.handshake_timeout = timeout;
            self
        }

        /// Bounds the frames a handshake sets aside for the application while it waits for a
        /// reply; past it the handshake fails with
        /// [`HandshakeError::BacklogFull`](crate::HandshakeError::BacklogFull). Default:
        /// 1,024 frames and 1 MiB ([`HandshakeBacklog`](crate::HandshakeBacklog)).
        pub fn handshake_backlog(&mut self, backlog: crate::HandshakeBacklog) -> &mut Self {
            self.link.handshake_backlog = backlog;
            self
        }

        /// Probes quiet connections; see [`Keepalive`](crate::Keepalive). Default: off.
        pub fn keepalive(&mut self, keepalive: crate::Keepalive) -> &mut Self {
            self.link.keepalive = Some(keepalive);
            self
        }

        /// Answers frames for which `rule` returns a reply at once, without delivering them
        /// (OpenFlow's ECHO_REQUEST → ECHO_REPLY). Default: none.
        pub fn auto_reply(
            &mut self,
            rule: impl Fn(&crate::Frame) -> Option<crate::Frame> + Send + Sync + 'static,
        ) -> &mut Self {
            self.link.auto_reply = Some(std::sync::Arc::new(rule));
            self
        }
    };
}
pub(crate) use link_setters;

/// Default linger of a graceful close: 5 s.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);
/// Default handshake timeout: 10 s (never below 1 s: Open vSwitch answers 0.3–0.5 s late
/// after a timer-driven reconnect).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A rule that answers some received frames at once, before they reach the application
/// (which then does not see them): OpenFlow's ECHO_REQUEST → ECHO_REPLY, say.
pub type AutoReply = Arc<dyn Fn(&Frame) -> Option<Frame> + Send + Sync>;

/// Keeps a quiet connection honest: after `idle` without anything arriving, send `probe`;
/// if still nothing arrives within `timeout`, close with [`TimeoutKind::Keepalive`].
///
/// ```
/// use std::time::Duration;
/// use ltprotocol::{Frame, Keepalive, MessageType};
/// let echo = Keepalive {
///     idle: Duration::from_secs(5),
///     timeout: Duration::from_secs(5),
///     probe: Frame::new(MessageType::new(2), bytes::Bytes::new()),
/// };
/// # let _ = echo;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keepalive {
    /// Quiet time before a probe.
    pub idle: Duration,
    /// How long to wait for anything after the probe.
    pub timeout: Duration,
    /// The frame sent as a probe (with its header fields).
    pub probe: Frame,
}

/// Frames at least this large are written straight from their `Bytes`, not copied into the
/// batch buffer.
const DIRECT_WRITE: usize = 16 * 1024;
/// A write batch is flushed once it holds this much.
const BATCH_BYTES: usize = 256 * 1024;
/// Between bursts of an active connection, the write batch is kept if no larger than this
/// (a fan-out burst of 512 small frames fits): growing it again for each burst cost a few per
/// cent of a broadcast's time in `realloc` and copies.
const KEEP_BATCH_BYTES: usize = 64 * 1024;
/// Likewise, the queue's buffers are kept if they hold room for no more than this many frames.
const KEEP_QUEUED: usize = 1024;
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
    codec: Arc<FrameCodec>,
    /// Set to close gracefully: drain the outbox, then close. Whoever sets it wakes the
    /// connection through [`Outbox::wake`]. A flag in place, not a cancellation token: one
    /// allocation fewer per connection.
    close: AtomicBool,
    /// A client's own close: closing the client closes its connection gracefully too.
    parent_close: Option<CancellationToken>,
    /// Set to close at once, dropping what is queued; `abort_notify` wakes those waiting
    /// for it ([`ConnectionHandle::aborted`]). A flag and a `Notify` in place, not a
    /// cancellation token: one allocation fewer per connection.
    aborted: AtomicBool,
    abort_notify: Notify,
    /// Set when the connection starts closing (close, abort, or its writer saw a shutdown):
    /// the cheap check that refuses new frames.
    closing: AtomicBool,
    connected: AtomicBool,
    /// Set once a server has given back this connection's places (registry, per-address
    /// count): here rather than in the server's guard, where it would cost the connection's
    /// task 8 bytes.
    released: AtomicBool,
    received: AtomicU64,
    /// Frames accepted for sending that were not written when the connection ended.
    unsent: AtomicUsize,
    requests: Option<Arc<RequestTable>>,
    handshake: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// The application's per-connection state (`state`).
    state: OnceLock<Box<dyn Any + Send + Sync>>,
    reason: Mutex<Option<DisconnectReason>>,
    /// Set once a TLS handshake succeeded: the peer's verified certificate, if it sent one.
    #[cfg(feature = "tls")]
    tls: OnceLock<Option<Box<crate::tls::PeerIdentity>>>,
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
        codec: Arc<FrameCodec>,
        parent_close: Option<CancellationToken>,
        correlation: Option<&Correlation>,
    ) -> Self {
        Self {
            inner: Arc::new(HandleInner {
                id,
                peer,
                local,
                outbox,
                codec,
                aborted: AtomicBool::new(false),
                abort_notify: Notify::new(),
                close: AtomicBool::new(false),
                parent_close,
                closing: AtomicBool::new(false),
                connected: AtomicBool::new(true),
                released: AtomicBool::new(false),
                received: AtomicU64::new(0),
                unsent: AtomicUsize::new(0),
                requests: correlation.map(|c| RequestTable::new(c.clone())),
                handshake: OnceLock::new(),
                state: OnceLock::new(),
                reason: Mutex::new(None),
                #[cfg(feature = "tls")]
                tls: OnceLock::new(),
            }),
        }
    }

    /// True the first time only: the server gives this connection's places back once.
    pub(crate) fn first_release(&self) -> bool {
        !self.inner.released.swap(true, Ordering::Relaxed)
    }

    /// The outbox this connection's writer drains.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.inner.outbox
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

    /// Once the connection has ended: how many frames accepted for sending on it were not
    /// written (handed whole to the kernel) before it ended. A server reports them lost
    /// ([`ShutdownReport::unsent_frames`](crate::ShutdownReport) counts them too); a client
    /// keeps them and writes them first on its next connection. 0 while connected.
    ///
    /// ```
    /// # use ltprotocol::{Event, HeaderLayout, Server, Unknown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
    /// let mut events = server.events();
    /// drop(tokio::net::TcpStream::connect(server.local_addr()).await?);
    /// loop {
    ///     if let Some(Event::Disconnected { conn, unsent_frames, .. }) = events.next().await {
    ///         assert_eq!((conn.unsent_frames(), unsent_frames), (0, 0));
    ///         break;
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn unsent_frames(&self) -> usize {
        self.inner.unsent.load(Ordering::Acquire)
    }

    pub(crate) fn set_unsent_frames(&self, unsent: usize) {
        self.inner.unsent.store(unsent, Ordering::Release);
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
    pub fn send<'a, M: Encode + ?Sized>(
        &'a self,
        msg: &M,
    ) -> impl Future<Output = Result<(), SendError>> + Send + use<'a, M> {
        self.send_with(msg, &HeaderFields::new())
    }

    /// Like [`send`](Self::send), with extra header fields (OpenFlow's `xid`, say).
    ///
    /// The message is encoded when this is called, and queued when the future is first
    /// polled: the future borrows neither `msg` nor `fields`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_with<'a, M: Encode + ?Sized>(
        &'a self,
        msg: &M,
        fields: &HeaderFields,
    ) -> impl Future<Output = Result<(), SendError>> + Send + use<'a, M> {
        Queueing {
            handle: self,
            frame: Some(self.encode(msg, fields).map_err(SendError::from)),
            waiting: None,
        }
    }

    /// Queues a raw frame with its own header fields, waiting while the outbox is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_frame<'a>(
        &'a self,
        frame: &Frame,
    ) -> impl Future<Output = Result<(), SendError>> + Send + use<'a> {
        self.send_with(frame, &frame.fields)
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

    /// Queues a frame encoded once with [`Server::encode`](crate::Server::encode) (or
    /// [`FrameCodec::encode_once`](crate::FrameCodec::encode_once)), waiting while the outbox
    /// is full: sending one message to a group of connections encodes it once.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, MessageType, Server, Unknown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
    /// let mut events = server.events();
    /// let _client = tokio::net::TcpStream::connect(server.local_addr()).await?;
    /// let Some(ltprotocol::Event::Connected(conn)) = events.next().await else { return Ok(()) };
    /// let tick = server.encode(&Unknown { message_type: MessageType::new(1), body: "tick".into() })?;
    /// for target in [&conn] {
    ///     target.send_encoded(&tick).await?;
    /// }
    /// # server.shutdown(std::time::Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError::LayoutMismatch`] when the frame was encoded for another header layout, and
    /// as [`send`](Self::send).
    pub fn send_encoded<'a>(
        &'a self,
        frame: &EncodedFrame,
    ) -> impl Future<Output = Result<(), SendError>> + Send + use<'a> {
        Queueing {
            handle: self,
            frame: Some(self.check_layout(frame).map(|()| frame.bytes().clone())),
            waiting: None,
        }
    }

    /// Like [`send_encoded`](Self::send_encoded), if the outbox has room now; never waits.
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] when the outbox is full, and as
    /// [`send_encoded`](Self::send_encoded).
    pub fn try_send_encoded(&self, frame: &EncodedFrame) -> Result<(), SendError> {
        self.check_layout(frame)?;
        self.try_queue_bytes(frame.bytes().clone())
    }

    fn check_layout(&self, frame: &EncodedFrame) -> Result<(), SendError> {
        if frame.layout() == self.inner.codec.layout() {
            Ok(())
        } else {
            Err(SendError::LayoutMismatch { id: self.inner.id })
        }
    }

    /// Closes the connection gracefully: what is queued is written, then our side closes and
    /// the connection ends when the peer closes its side (or after a short linger).
    pub fn close(&self) {
        self.close_with(DisconnectReason::Closed);
    }

    pub(crate) fn close_with(&self, reason: DisconnectReason) {
        self.set_reason(reason);
        self.request_close();
    }

    /// Asks the connection to close gracefully (what is queued is written first), and wakes
    /// it to look.
    fn request_close(&self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.close.store(true, Ordering::Release);
        self.inner.outbox.wake();
    }

    /// Whether a graceful close was asked for, of the connection or of its client.
    fn close_requested(&self) -> bool {
        self.inner.close.load(Ordering::Acquire)
            || self
                .inner
                .parent_close
                .as_ref()
                .is_some_and(CancellationToken::is_cancelled)
    }

    /// Closes at once, dropping what is queued.
    pub(crate) fn abort_with(&self, reason: DisconnectReason) {
        self.set_reason(reason);
        self.inner.closing.store(true, Ordering::Release);
        self.inner.aborted.store(true, Ordering::Release);
        self.inner.abort_notify.notify_waiters();
        self.inner.outbox.wake();
    }

    fn is_aborted(&self) -> bool {
        self.inner.aborted.load(Ordering::Acquire)
    }

    /// Completes once the connection is aborted ([`abort_with`](Self::abort_with)).
    async fn aborted(&self) {
        loop {
            let notified = self.inner.abort_notify.notified();
            tokio::pin!(notified);
            // Registered before the check: an abort after it wakes this wait.
            notified.as_mut().enable();
            if self.is_aborted() {
                return;
            }
            notified.await;
        }
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
        self.inner.codec.encode_to_bytes(msg, fields)
    }

    /// Queues an already encoded frame without waiting (broadcast).
    pub(crate) fn try_queue_bytes(&self, frame: Bytes) -> Result<(), SendError> {
        self.check_open()?;
        self.inner.outbox.try_send(frame, self.inner.id)
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.inner.closing.load(Ordering::Acquire) || self.inner.outbox.is_closed() {
            Err(SendError::Closed { id: self.inner.id })
        } else {
            Ok(())
        }
    }

    pub(crate) fn mark_disconnected(&self) {
        self.inner.connected.store(false, Ordering::Release);
        if let Some(table) = &self.inner.requests {
            table.clear();
        }
    }

    pub(crate) fn request_table(&self) -> Option<&Arc<RequestTable>> {
        self.inner.requests.as_ref()
    }

    /// What the handshake returned, if a handshake of output type `T` ran on this connection.
    ///
    /// See [`Handshake`](crate::Handshake) for a whole example.
    ///
    /// ```
    /// fn greeting(conn: &ltprotocol::ConnectionHandle) -> Option<&bytes::Bytes> {
    ///     conn.handshake_output::<bytes::Bytes>()
    /// }
    /// # let _ = greeting;
    /// ```
    pub fn handshake_output<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.inner.handshake.get()?.downcast_ref()
    }

    /// The application's own state for this connection: a `T` made with `T::default()` the
    /// first time it is asked for, kept until the last handle is dropped. What the ancestor
    /// kept as attributes of its per-connection protocol object: counters, a login, a
    /// sequence number. Shared by every clone of the handle, so `T` uses atomics or a lock
    /// for what changes. `None` if the state was first made with another type.
    ///
    /// Each call finds the state by its type: a virtual call and a compare, and the caller's
    /// registers saved around the call. On a path taken for every frame, a handler made for
    /// each connection ([`Server::serve_each`](crate::Server::serve_each)) keeps its state in
    /// its own fields instead, with no lookup.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use ltprotocol::{ConnectionHandle, Handler, HeaderFields, Unknown};
    ///
    /// #[derive(Default)]
    /// struct Seen {
    ///     messages: AtomicU64,
    /// }
    ///
    /// struct Count;
    ///
    /// impl Handler<Unknown> for Count {
    ///     async fn message(&self, conn: &ConnectionHandle, _msg: Unknown, _fields: HeaderFields) {
    ///         if let Some(seen) = conn.state::<Seen>() {
    ///             seen.messages.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// }
    /// # let _ = Count;
    /// ```
    pub fn state<T: Default + Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner
            .state
            .get_or_init(|| Box::new(T::default()))
            .downcast_ref()
    }

    /// Whether this connection runs over TLS. Feature `tls`.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, Server, Unknown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
    /// let mut events = server.events();
    /// let _plain = tokio::net::TcpStream::connect(server.local_addr()).await?;
    /// if let Some(ltprotocol::Event::Connected(conn)) = events.next().await {
    ///     assert!(!conn.is_tls());
    ///     assert!(conn.peer_identity().is_none());
    /// }
    /// # server.shutdown(std::time::Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn is_tls(&self) -> bool {
        self.inner.tls.get().is_some()
    }

    /// Who the peer's verified certificate names: on a server with client authentication,
    /// the client; on a TLS client, the server. `None` on plain TCP, and on a server whose
    /// client sent no certificate ([`ClientAuth::Optional`](crate::tls::ClientAuth)). Known
    /// before `connected` runs. Feature `tls`. The [`tls`](crate::tls) module's example
    /// shows a client's identity over mutual TLS; on plain TCP there is none:
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, Server, Unknown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
    /// let mut events = server.events();
    /// let _plain = tokio::net::TcpStream::connect(server.local_addr()).await?;
    /// if let Some(ltprotocol::Event::Connected(conn)) = events.next().await {
    ///     assert!(!conn.is_tls());
    ///     assert!(conn.peer_identity().is_none());
    /// }
    /// # server.shutdown(std::time::Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn peer_identity(&self) -> Option<&crate::tls::PeerIdentity> {
        self.inner.tls.get()?.as_deref()
    }

    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&self, identity: Option<crate::tls::PeerIdentity>) {
        let _ = self.inner.tls.set(identity.map(Box::new));
    }

    /// Sends `msg` with a fresh correlation id and waits for the frame carrying the same id
    /// (or an error message carrying it: it resolves the request as well). Frames that match
    /// no pending request go to the handler or event stream as usual.
    ///
    /// # Errors
    ///
    /// [`RequestError::NoCorrelation`] when the server or client has no correlation field;
    /// [`RequestError::TimedOut`] after the correlation's timeout;
    /// [`RequestError::Disconnected`] if the connection ends first; [`RequestError::Send`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the request; a late reply then goes the ordinary way.
    ///
    /// # Example
    ///
    /// A protocol of our own with a `seq` header field: the server answers type 1 with type
    /// 2 carrying the same `seq`, and announces itself (type 3) unprompted, which does not
    /// disturb the pairing. A keepalive probes a quiet server after a minute.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ltprotocol::{
    ///     ConnectionHandle, Correlation, Event, Frame, Handler, HeaderFields, HeaderLayout, Int,
    ///     Keepalive, MessageType, ReconnectingClient, Server, Unknown,
    /// };
    ///
    /// struct Answer;
    ///
    /// impl Handler<Unknown> for Answer {
    ///     async fn connected(&self, conn: &ConnectionHandle) {
    ///         let hello = Unknown { message_type: MessageType::new(3), body: "hi".into() };
    ///         let _ = conn.send(&hello).await;
    ///     }
    ///
    ///     async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: HeaderFields) {
    ///         let reply = Unknown { message_type: MessageType::new(2), body: msg.body };
    ///         let _ = conn.send_with(&reply, &fields).await; // same seq
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layout = HeaderLayout::builder()
    ///     .length(0, Int::U16)
    ///     .message_type(2, Int::U8)
    ///     .field("seq", 3, Int::U32)
    ///     .build()?;
    /// let server = Server::<Unknown>::builder(layout.clone()).bind("127.0.0.1:0").await?;
    /// let serving = server.clone();
    /// tokio::spawn(async move { serving.serve(Answer).await });
    ///
    /// let (client, mut events) = ReconnectingClient::<Unknown>::builder(layout.clone())
    ///     .correlation(Correlation::new(&layout, "seq").unwrap())
    ///     .keepalive(Keepalive {
    ///         idle: Duration::from_secs(60),
    ///         timeout: Duration::from_secs(10),
    ///         probe: Frame::new(MessageType::new(4), bytes::Bytes::new()),
    ///     })
    ///     .connect(server.local_addr().to_string());
    /// let conn = client.wait_connected().await.unwrap();
    /// let ask = Unknown { message_type: MessageType::new(1), body: "42?".into() };
    /// let reply = conn.request(&ask).await?;
    /// assert_eq!((reply.message_type, &reply.body[..]), (MessageType::new(2), &b"42?"[..]));
    /// // The unsolicited hello went to the ordinary event stream.
    /// loop {
    ///     if let Some(Event::Message { message, .. }) = events.next().await {
    ///         assert_eq!(message.message_type, MessageType::new(3));
    ///         break;
    ///     }
    /// }
    /// client.close(Duration::from_secs(5)).await;
    /// server.shutdown(Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request<M: Encode + ?Sized>(&self, msg: &M) -> Result<Frame, RequestError> {
        let table = self.request_table().ok_or(RequestError::NoCorrelation)?;
        let timeout = table.config.timeout;
        self.request_timeout(msg, timeout).await
    }

    /// Like [`request`](Self::request), with its own timeout.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    pub async fn request_timeout<M: Encode + ?Sized>(
        &self,
        msg: &M,
        timeout: Duration,
    ) -> Result<Frame, RequestError> {
        let table = self.request_table().ok_or(RequestError::NoCorrelation)?;
        let id = table.next_id()?;
        let (rx, pending) = table.register_one(id);
        let fields = HeaderFields::new().with(table.config.field, id);
        self.send_with(msg, &fields).await?;
        let conn = self.id();
        let reply = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Err(RequestError::Disconnected { conn, id }),
            Err(_) => Err(RequestError::TimedOut {
                conn,
                id,
                after: timeout,
            }),
        };
        drop(pending);
        reply
    }

    /// Sends `msg` with a fresh correlation id and returns every frame carrying that id, until
    /// `is_last` says a frame was the last (OpenFlow multipart replies without the MORE flag).
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request), for sending.
    pub async fn request_stream<M: Encode + ?Sized>(
        &self,
        msg: &M,
        is_last: fn(&Frame) -> bool,
    ) -> Result<ReplyStream, RequestError> {
        let table = self.request_table().ok_or(RequestError::NoCorrelation)?;
        let id = table.next_id()?;
        let (parts, pending) = table.register_many(id);
        let fields = HeaderFields::new().with(table.config.field, id);
        let config = &table.config;
        let deadline = (
            Instant::now() + config.stream_deadline,
            config.stream_deadline,
        );
        self.send_with(msg, &fields).await?;
        Ok(ReplyStream {
            parts,
            pending: Some(pending),
            conn: self.id(),
            timeout: config.timeout,
            deadline,
            limits: (config.max_stream_parts, config.max_stream_bytes),
            is_last,
        })
    }
}

impl fmt::Display for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.peer, f)
    }
}

/// Runs one connection until it ends: the handshake (if any), the `connected` callback, then
/// reads and delivers frames and writes queued frames; returns why it ended. Catches a
/// panicking handler. `on_ready` runs once the handshake has succeeded; `explain` gives the
/// final say on the reason, seeing the reader (a plain connection recognises a TLS peer).
///
/// A function returning an `async move` block rather than an `async fn`, so that the
/// connection's task keeps one copy of each argument, not two.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep a second copy of each argument in the task"
)]
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one connection, each held once by its task"
)]
pub(crate) fn drive<R, W, P, H>(
    mut reader: R,
    mut writer: W,
    handle: &ConnectionHandle,
    queue: &mut OutboxReceiver,
    handler: &H,
    config: &LinkConfig,
    on_ready: impl FnOnce(),
    explain: impl FnOnce(DisconnectReason, &R, &ConnectionHandle) -> DisconnectReason,
) -> impl Future<Output = DisconnectReason>
where
    R: AsyncRead + ReadReady + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    P: Protocol,
    H: Handler<P>,
{
    async move {
        let reason = 'run: {
            let setup = async {
                // Boxed apart: only connections with a handshake pay for its state.
                let carried = match &config.handshake {
                    Some(handshake) => {
                        Box::pin(run_handshake(
                            handshake,
                            &mut reader,
                            &mut writer,
                            handle,
                            config,
                        ))
                        .await?
                    }
                    None => None,
                };
                if AssertUnwindSafe(handler.connected(handle))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    return Err(DisconnectReason::HandlerPanicked);
                }
                Ok(carried)
            };
            // Boxed, with the wait for an abort: run once, its state (the handshake's,
            // `connected`'s) is not kept for the life of the connection.
            let mut carried = {
                // In a block of its own, so that the connection's task keeps no room for it.
                let ready = Box::pin(async {
                    tokio::select! {
                        () = handle.aborted() => Err(DisconnectReason::Closed),
                        ready = setup => ready,
                    }
                })
                .await;
                match ready {
                    Ok(carried) => carried,
                    Err(reason) => break 'run finish(handle, Some(reason)),
                }
            };
            on_ready();

            // A connection alternates between active spells, whose state (buffers, codec, the
            // handler's future, a write in progress) is boxed, and idle waits that hold only what
            // must survive: an idle connection costs little.
            let mut state = ReadState::new();
            let reason = loop {
                let spell = Box::pin(active::<R, W, P, H>(
                    &mut reader,
                    &mut writer,
                    carried.take(),
                    &mut state,
                    handle,
                    queue,
                    handler,
                    config,
                ));
                match spell.await {
                    Spell::Ended(reason) => break reason,
                    // Going idle: the queue gives its buffers back.
                    Spell::Idle => queue.release_buffers(&handle.inner.outbox, 0),
                }
                // Idle: wait, holding nothing but the timers, until bytes can be read, frames are
                // queued, the connection is closed or aborted, or a timer expires.
                //
                // One wake-up source besides the socket and the timer: the outbox's `ready`, which
                // a queued frame, [`ConnectionHandle::close`] and every abort notify (`notify_one`
                // keeps a permit when nobody waits, so no wake-up is lost between a check and the
                // wait). The conditions are checked again after each wake-up. This keeps an idle
                // connection's task small: one `Notified`, not a future per source, and written
                // here rather than in a function of its own, whose future would hold its own copy
                // of every reference.
                let next = loop {
                    // Boxed, and only when a timer runs: without idle timeout and keepalive (the
                    // defaults) an idle connection carries no timer at all. Which timer it is, is
                    // asked again when it expires (the state does not change meanwhile), not kept.
                    let mut timer = state
                        .deadline(config)
                        .map(|(at, _)| Box::pin(tokio::time::sleep_until(at)));
                    let notified = handle.inner.outbox.shared.ready.notified();
                    tokio::pin!(notified);
                    let woke = std::future::poll_fn(|cx| {
                        // With the task's budget spent, a spell would find its sources refusing at
                        // once and end straight back here: yield first.
                        if !tokio::task::coop::has_budget_remaining() {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        if handle.is_aborted() {
                            return Poll::Ready(Woke::Aborted);
                        }
                        if handle.close_requested() || !handle.inner.outbox.is_empty() {
                            return Poll::Ready(Woke::Work);
                        }
                        // Checked before waiting: a frame queued or a close since then leaves a
                        // permit.
                        if notified.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Woke::Notified);
                        }
                        // An error is for the read to report.
                        if reader.poll_read_ready(cx).is_ready() {
                            return Poll::Ready(Woke::Readable);
                        }
                        match timer.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
                            Some(Poll::Ready(())) => Poll::Ready(Woke::Expired),
                            _ => Poll::Pending,
                        }
                    })
                    .await;
                    drop(timer);
                    match (woke, state.deadline(config)) {
                        (Woke::Aborted, _) => break ControlFlow::Break(None),
                        (Woke::Work | Woke::Readable, _) => break ControlFlow::Continue(()),
                        (Woke::Notified, _) | (Woke::Expired, None) => {}
                        (Woke::Expired, Some((_, Deadline::Expire(kind, after)))) => {
                            break ControlFlow::Break(Some(DisconnectReason::TimedOut {
                                kind,
                                after,
                            }));
                        }
                        (Woke::Expired, Some((_, Deadline::Probe))) => state.probe(handle, config),
                    }
                };
                // `Continue`: go active.
                if let ControlFlow::Break(reason) = next {
                    break reason;
                }
            };
            finish(handle, reason)
        };
        explain(reason, &reader, handle)
    }
}

/// The read side's working state: made for each active spell, and carried between two only
/// when it holds something (the bytes a handshake read past its frames). A spell ends idle
/// only with nothing buffered and no frame begun, so an idle connection keeps none of it.
struct Parts {
    codec: FrameCodec,
    buf: BytesMut,
    deferred: VecDeque<Frame>,
}

/// Runs the link's handshake on a new connection, within its timeout, and keeps its output in
/// the handle. Returns what it read past its own frames, for the first spell.
async fn run_handshake<R, W>(
    handshake: &SharedHandshake,
    reader: &mut R,
    writer: &mut W,
    handle: &ConnectionHandle,
    config: &LinkConfig,
) -> Result<Option<Box<Parts>>, DisconnectReason>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut parts = Parts::fresh(config);
    let mut ctx = HandshakeContext {
        reader,
        writer,
        codec: &mut parts.codec,
        buf: &mut parts.buf,
        deferred: &mut parts.deferred,
        deferred_bytes: 0,
        backlog: config.handshake_backlog,
        handle,
    };
    let ran = tokio::time::timeout(config.handshake_timeout, handshake.run_erased(&mut ctx));
    match ran.await {
        Ok(Ok(output)) => {
            let _ = handle.inner.handshake.set(output);
        }
        Ok(Err(err)) => return Err(DisconnectReason::Handshake(Arc::new(err))),
        Err(_) => {
            return Err(DisconnectReason::TimedOut {
                kind: TimeoutKind::Handshake,
                after: config.handshake_timeout,
            });
        }
    }
    Ok(parts.carried())
}

impl Parts {
    fn fresh(config: &LinkConfig) -> Self {
        let mut codec = (*config.codec).clone();
        codec.reset();
        Self {
            codec,
            buf: BytesMut::new(),
            deferred: VecDeque::new(),
        }
    }

    /// Itself, boxed, if it holds anything the next spell must see.
    fn carried(self) -> Option<Box<Self>> {
        let holds = !self.buf.is_empty() || !self.deferred.is_empty() || self.codec.is_mid_frame();
        holds.then(|| Box::new(self))
    }
}

/// What a spell's read loop works on: its [`Parts`], and the read state kept between spells.
struct Link<'a> {
    codec: &'a mut FrameCodec,
    buf: &'a mut BytesMut,
    deferred: &'a mut VecDeque<Frame>,
    state: &'a mut ReadState,
}

/// How an active spell ended.
enum Spell {
    /// Nothing buffered, nothing to write: wait idle.
    Idle,
    /// The connection is over (`None`: aborted).
    Ended(Option<DisconnectReason>),
}

/// What the read side keeps between active spells.
#[derive(Debug)]
struct ReadState {
    /// How much the next read reserves.
    read_size: usize,
    /// When bytes last arrived.
    last_arrival: Instant,
    /// When the first byte of the frame now being assembled arrived.
    partial_since: Option<Instant>,
    /// When the keepalive probe was sent, if one is unanswered.
    probe_sent: Option<Instant>,
}

impl ReadState {
    fn new() -> Self {
        Self {
            read_size: INITIAL_READ,
            last_arrival: Instant::now(),
            partial_since: None,
            probe_sent: None,
        }
    }

    /// The next deadline of the frame-read, idle and keepalive timers, the earliest first.
    fn deadline(&self, config: &LinkConfig) -> Option<(Instant, Deadline)> {
        let mut deadline: Option<(Instant, Deadline)> = None;
        let mut consider = |at: Instant, what: Deadline| {
            if deadline.is_none_or(|(current, _)| at < current) {
                deadline = Some((at, what));
            }
        };
        let timeouts = config.timeouts;
        match self.partial_since {
            Some(since) => {
                if let Some(limit) = timeouts.frame_read {
                    consider(
                        since + limit,
                        Deadline::Expire(TimeoutKind::FrameRead, limit),
                    );
                }
            }
            None => {
                if let Some(limit) = timeouts.idle {
                    consider(
                        self.last_arrival + limit,
                        Deadline::Expire(TimeoutKind::Idle, limit),
                    );
                }
            }
        }
        if let Some(keepalive) = &config.keepalive {
            match self.probe_sent {
                None => consider(self.last_arrival + keepalive.idle, Deadline::Probe),
                Some(sent) => consider(
                    sent + keepalive.timeout,
                    Deadline::Expire(TimeoutKind::Keepalive, keepalive.idle + keepalive.timeout),
                ),
            }
        }
        deadline
    }

    /// Sends the keepalive probe and notes when.
    fn probe(&mut self, handle: &ConnectionHandle, config: &LinkConfig) {
        self.probe_sent = Some(Instant::now());
        if let Some(keepalive) = &config.keepalive {
            // A full outbox means traffic is flowing our way anyway.
            if let Ok(frame) = handle.encode(&keepalive.probe, &keepalive.probe.fields) {
                let _ = handle.try_queue_bytes(frame);
            }
        }
    }
}

/// Set by the read and write loops while each waits with nothing in hand; when both are, the
/// spell ends and its state is dropped.
#[derive(Debug, Default)]
struct Quiet {
    read: AtomicBool,
    write: AtomicBool,
}

/// What ended an idle wait.
enum Woke {
    Aborted,
    Work,
    Notified,
    Readable,
    Expired,
}

/// Reads and delivers frames and writes queued frames until both sides have nothing in hand
/// (`Idle`) or the connection ends.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one connection, borrowed for one spell"
)]
async fn active<R, W, P, H>(
    reader: &mut R,
    writer: &mut W,
    carried: Option<Box<Parts>>,
    state: &mut ReadState,
    handle: &ConnectionHandle,
    queue: &mut OutboxReceiver,
    handler: &H,
    config: &LinkConfig,
) -> Spell
where
    R: AsyncRead + ReadReady + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    P: Protocol,
    H: Handler<P>,
{
    let mut parts = carried.map_or_else(|| Parts::fresh(config), |parts| *parts);
    let link = Link {
        codec: &mut parts.codec,
        buf: &mut parts.buf,
        deferred: &mut parts.deferred,
        state,
    };
    let quiet = Quiet::default();
    let read = AssertUnwindSafe(read_loop::<R, P, H>(
        reader,
        link,
        &quiet.read,
        handle,
        handler,
        config,
    ))
    .catch_unwind();
    tokio::pin!(read);
    let write = write_loop(writer, queue, handle, &quiet.write, config.timeouts.write);
    tokio::pin!(write);
    let aborted = handle.aborted();
    tokio::pin!(aborted);

    enum First {
        Aborted,
        Read(std::thread::Result<DisconnectReason>),
        Write(io::Result<()>),
        Idle,
    }
    let first = std::future::poll_fn(|cx| {
        if aborted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(First::Aborted);
        }
        if let Poll::Ready(read) = read.as_mut().poll(cx) {
            return Poll::Ready(First::Read(read));
        }
        if let Poll::Ready(write) = write.as_mut().poll(cx) {
            return Poll::Ready(First::Write(write));
        }
        // Both wait with nothing in hand (polled just now, in this order, so a frame the
        // reader queued has been seen by the writer).
        if quiet.read.load(Ordering::Relaxed) && quiet.write.load(Ordering::Relaxed) {
            return Poll::Ready(First::Idle);
        }
        Poll::Pending
    })
    .await;

    let reason = match first {
        First::Idle => return Spell::Idle,
        First::Aborted => None,
        First::Read(read_result) => {
            let reason = match read_result {
                Ok(reason) => reason,
                Err(_) => DisconnectReason::HandlerPanicked,
            };
            // Reading is over, but what was accepted for sending still goes out (a reply to
            // the last good frame before a bad one, say), within the linger. Not when a
            // broken socket cannot take it, nor when the queue has a next connection to go
            // to: written into a connection the peer has left, it would be lost.
            if !matches!(reason, DisconnectReason::Io(_)) && !config.queue_outlives_connection {
                handle.request_close();
                tokio::select! {
                    () = &mut aborted => {}
                    _ = &mut write => {}
                    () = tokio::time::sleep(config.linger) => {}
                }
            }
            Some(reason)
        }
        First::Write(Err(err)) if err.kind() == io::ErrorKind::TimedOut => {
            Some(DisconnectReason::TimedOut {
                kind: TimeoutKind::Write,
                after: config.timeouts.write.unwrap_or_default(),
            })
        }
        First::Write(Err(err)) => Some(DisconnectReason::Io(Arc::new(err))),
        // Our side is closed and flushed: keep reading (and delivering) until the peer
        // closes too, so nothing it sent is lost, but not for longer than the linger.
        First::Write(Ok(())) => {
            tokio::select! {
                () = &mut aborted => None,
                _ = &mut read => None,
                () = tokio::time::sleep(config.linger) => None,
            }
        }
    };
    Spell::Ended(reason)
}

fn finish(handle: &ConnectionHandle, reason: Option<DisconnectReason>) -> DisconnectReason {
    handle.mark_disconnected();
    let requested = handle.take_reason();
    match (requested, reason) {
        // A reason given by whoever closed the connection wins over its consequence.
        (Some(requested), _) => requested,
        (None, Some(reason)) => reason,
        (None, None) => DisconnectReason::Closed,
    }
}

/// What to do with one received frame. Deciding is synchronous; only the steps that must
/// wait are awaited, in the read loop itself, so the common path builds no future of its own
/// per frame.
enum Step<P> {
    /// A request may be waiting for it: route it first.
    Route(Frame),
    /// Answer it at once (auto-reply) instead of delivering it.
    Reply(Frame),
    /// Hand it to the handler.
    Deliver(P, HeaderFields),
    /// It answered a request; nothing more to do.
    Done,
    /// Its body does not decode: the connection ends.
    Fail(DisconnectReason),
}

/// Counts one received frame. Only this connection's task writes the count: a plain load and
/// store, no locked add.
#[inline]
fn count_received(handle: &ConnectionHandle) {
    let received = &handle.inner.received;
    received.store(received.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn classify<P, H>(
    frame: Frame,
    handle: &ConnectionHandle,
    handler: &H,
    config: &LinkConfig,
) -> Step<P>
where
    P: Protocol,
    H: Handler<P>,
{
    count_received(handle);
    match &handle.inner.requests {
        Some(table) if table.has_waiters() => Step::Route(frame),
        _ => classify_unrouted(frame, handle, handler, config),
    }
}

fn classify_unrouted<P, H>(
    frame: Frame,
    handle: &ConnectionHandle,
    handler: &H,
    config: &LinkConfig,
) -> Step<P>
where
    P: Protocol,
    H: Handler<P>,
{
    if let Some(rule) = &config.auto_reply {
        if let Some(reply) = rule(&frame) {
            return Step::Reply(reply);
        }
    }
    if handler.inspect(handle, frame.view()) == Inspected::Consumed {
        return Step::Done;
    }
    decode_step(frame, config)
}

fn decode_step<P: Protocol>(frame: Frame, config: &LinkConfig) -> Step<P> {
    match decode_message(frame, config) {
        Ok((message, fields)) => Step::Deliver(message, fields),
        Err(reason) => Step::Fail(reason),
    }
}

/// Decodes a frame's body into the protocol's message; a body that does not decode ends the
/// connection.
#[inline]
fn decode_message<P: Protocol>(
    frame: Frame,
    config: &LinkConfig,
) -> Result<(P, HeaderFields), DisconnectReason> {
    let order = config.codec.layout().byte_order();
    match P::decode(frame.message_type, Body::from(&frame.body), order) {
        Ok(message) => Ok((message, frame.fields)),
        Err(err) => Err(DisconnectReason::Decode(Arc::new(err))),
    }
}

/// Takes one received frame the whole way: a pending request it answers, the auto-reply
/// rule, then typed decoding and the handler. Returns `Err(reason)` from the enclosing function
/// when the connection must end.
macro_rules! dispatch {
    ($frame:expr, $handle:expr, $handler:expr, $config:expr) => {{
        let mut step = classify::<P, H>($frame, $handle, $handler, $config);
        if let Step::Route(frame) = step {
            step = match $handle.inner.requests.as_ref() {
                // Boxed: a rare path, kept out of the read loop's own (per-connection) state.
                Some(table) => match table.route(frame) {
                    Some(frame) => classify_unrouted(frame, $handle, $handler, $config),
                    None => Step::Done,
                },
                None => classify_unrouted(frame, $handle, $handler, $config),
            };
        }
        run_step!(step, $handle, $handler);
    }};
}

/// Carries out a [`Step`] once routing is done: the handler (`try_message`, then `message`
/// for what it hands on), the auto-reply, or the end of the connection.
macro_rules! run_step {
    ($step:expr, $handle:expr, $handler:expr) => {
        match $step {
            Step::Deliver(message, fields) => {
                if let Handled::Later(message, fields) =
                    $handler.try_message($handle, message, fields)
                {
                    $handler.message($handle, message, fields).await;
                }
            }
            Step::Reply(reply) => {
                // Fails only when the connection is closing: no one to answer.
                let _ = $handle.send_frame(&reply).await;
            }
            Step::Done | Step::Route(_) => {}
            Step::Fail(reason) => return Err(reason),
        }
    };
}

/// Delivers frames read before the connection was ready (during its handshake).
async fn deliver_frames<P, H>(
    frames: VecDeque<Frame>,
    handle: &ConnectionHandle,
    handler: &H,
    config: &LinkConfig,
) -> Result<(), DisconnectReason>
where
    P: Protocol,
    H: Handler<P>,
{
    for frame in frames {
        dispatch!(frame, handle, handler, config);
    }
    Ok(())
}

/// Whether a request on this connection waits for its reply: frames are then routed before
/// the handler sees them.
#[inline(always)]
fn awaits_reply(handle: &ConnectionHandle) -> bool {
    handle
        .inner
        .requests
        .as_ref()
        .is_some_and(|table| table.has_waiters())
}

/// Decodes and delivers every complete frame in `buf`; says whether there was one.
async fn deliver_buffered<P, H>(
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
    handle: &ConnectionHandle,
    handler: &H,
    config: &LinkConfig,
) -> Result<bool, DisconnectReason>
where
    P: Protocol,
    H: Handler<P>,
{
    let mut decoded_any = false;
    loop {
        // Without a pending request or an auto-reply rule to consult first, the handler
        // inspects each frame in place, in the read buffer: a frame it consumes costs no
        // allocation, no reference count and no decoding.
        if config.auto_reply.is_none() && !awaits_reply(handle) {
            // A message that `try_message` finishes is handled inside the decoding loop; the
            // loop stops at one it hands on to `message`, awaited here (`Ok(Some(..))`), when
            // frames must be routed again (`Ok(None)`), or at a body that does not decode.
            // (A three-variant enum instead of the nested `Result` and `Option` made typed
            // messages 10–20 % slower: the loop's code is sensitive to the stop value's layout.)
            let next = codec.decode_each(
                buf,
                |frame| {
                    decoded_any = true;
                    count_received(handle);
                    handler.inspect(handle, frame) == Inspected::Consumed
                },
                |frame| match decode_message::<P>(frame, config) {
                    Ok((message, fields)) => match handler.try_message(handle, message, fields) {
                        // Unless it started a request (polled once, say), whose reply may be
                        // the next frame and must be routed first.
                        Handled::Done if !awaits_reply(handle) => ControlFlow::Continue(()),
                        Handled::Done => ControlFlow::Break(Ok(None)),
                        Handled::Later(message, fields) => {
                            ControlFlow::Break(Ok(Some((message, fields))))
                        }
                    },
                    Err(reason) => ControlFlow::Break(Err(reason)),
                },
            );
            match next {
                Ok(Some(Ok(Some((message, fields))))) => {
                    handler.message(handle, message, fields).await;
                }
                Ok(Some(Ok(None))) => {}
                Ok(Some(Err(reason))) => return Err(reason),
                Ok(None) => return Ok(decoded_any),
                Err(err) => return Err(DisconnectReason::Protocol(Arc::new(err))),
            }
            continue;
        }
        match codec.decode(buf) {
            Ok(Some(frame)) => {
                decoded_any = true;
                dispatch!(frame, handle, handler, config);
            }
            Ok(None) => return Ok(decoded_any),
            Err(err) => return Err(DisconnectReason::Protocol(Arc::new(err))),
        }
    }
}

/// What the read loop waits for besides bytes.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    Expire(TimeoutKind, Duration),
    Probe,
}

async fn read_loop<R, P, H>(
    reader: &mut R,
    link: Link<'_>,
    quiet: &AtomicBool,
    handle: &ConnectionHandle,
    handler: &H,
    config: &LinkConfig,
) -> DisconnectReason
where
    R: AsyncRead + ReadReady + Unpin + Send,
    P: Protocol,
    H: Handler<P>,
{
    let Link {
        codec,
        buf,
        deferred,
        state,
    } = link;
    if !deferred.is_empty() {
        let frames = std::mem::take(deferred);
        if let Err(reason) = Box::pin(deliver_frames(frames, handle, handler, config)).await {
            return reason;
        }
    }
    loop {
        // Delivering holds the handler's future, which an idle connection should not keep:
        // it runs boxed, one allocation per read rather than a larger task for ever.
        let decoded_any = if buf.is_empty() {
            false
        } else {
            match Box::pin(deliver_buffered(codec, buf, handle, handler, config)).await {
                Ok(decoded_any) => decoded_any,
                Err(reason) => return reason,
            }
        };
        if decoded_any {
            state.partial_since = None;
        }
        if buf.is_empty() && !codec.is_mid_frame() {
            state.partial_since = None;
            if buf.capacity() > 0 {
                // Idle between frames: give the buffer back, so an idle connection costs little.
                *buf = BytesMut::new();
                state.read_size = INITIAL_READ;
            }
        } else if state.partial_since.is_none() {
            state.partial_since = Some(state.last_arrival);
        }
        let deadline = state.deadline(config);
        let read_size = state.read_size;
        // An idle connection holds no read buffer: it waits until bytes are there to read.
        let fill = async {
            if buf.capacity() == 0 {
                quiet.store(true, Ordering::Relaxed);
                let ready = std::future::poll_fn(|cx| reader.poll_read_ready(cx)).await;
                quiet.store(false, Ordering::Relaxed);
                ready?;
            }
            if buf.capacity() - buf.len() < read_size / 2 {
                buf.reserve(read_size);
            }
            let spare = buf.capacity() - buf.len();
            reader.read_buf(&mut *buf).await.map(|n| (n, spare))
        };
        let read = match deadline {
            Some((at, what)) => match tokio::time::timeout_at(at, fill).await {
                Ok(read) => read,
                Err(_) => match what {
                    Deadline::Expire(kind, after) => {
                        return DisconnectReason::TimedOut { kind, after };
                    }
                    Deadline::Probe => {
                        state.probe(handle, config);
                        continue;
                    }
                },
            },
            None => fill.await,
        };
        match read {
            Ok((0, _)) => {
                // Every complete frame was decoded above, so what is left is a cut frame.
                return match codec.decode_eof(buf) {
                    Ok(_) => DisconnectReason::PeerClosed,
                    Err(err) => DisconnectReason::Protocol(Arc::new(err)),
                };
            }
            Ok((n, spare)) => {
                state.last_arrival = Instant::now();
                state.probe_sent = None;
                if n == spare {
                    state.read_size = (state.read_size * 2).min(MAX_READ);
                }
            }
            Err(err) => return DisconnectReason::Io(Arc::new(err)),
        }
    }
}

/// Flushes, failing with [`io::ErrorKind::TimedOut`] if that takes longer than `limit`.
async fn flush_timed<W: AsyncWrite + Unpin>(
    writer: &mut W,
    limit: Option<Duration>,
) -> io::Result<()> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, writer.flush())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, WRITE_TIMED_OUT))?,
        None => writer.flush().await,
    }
}

const WRITE_TIMED_OUT: &str = "write made no progress within the write timeout";

/// Writes queued frames in batches until the connection is closed gracefully (`close`), then
/// writes what is still queued, flushes and shuts our write side. Returns `Ok` after that.
///
/// A frame is confirmed (taken off `inflight`, its room given back) once every byte of it was
/// accepted by the socket. Frames not confirmed when a connection breaks stay in `inflight`
/// and a client writes them whole, first, on its next connection: a frame cut on the old
/// connection is discarded there as truncated, so it is neither lost nor duplicated.
async fn write_loop<W>(
    writer: &mut W,
    queue: &mut OutboxReceiver,
    handle: &ConnectionHandle,
    quiet: &AtomicBool,
    limit: Option<Duration>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    let outbox = &handle.inner.outbox;
    let mut batch = BytesMut::new();
    let mut closing = false;
    loop {
        // Frames left unconfirmed by an earlier connection (a client's) go first.
        if queue.inflight.is_empty() {
            if closing {
                // Closing: write what is queued now, then stop. Handles refuse new frames
                // once a close is asked for.
                if !queue.take(outbox) {
                    break;
                }
            } else {
                quiet.store(true, Ordering::Relaxed);
                let closed = queue.recv_or(outbox, || handle.close_requested()).await;
                quiet.store(false, Ordering::Relaxed);
                if closed {
                    closing = true;
                    handle.inner.closing.store(true, Ordering::Release);
                    continue;
                }
            }
        } else {
            queue.take(outbox);
        }
        // Writing runs boxed, one allocation per batch, so an idle connection's task does not
        // carry the state of a write in progress.
        Box::pin(write_batch(writer, queue, outbox, &mut batch, limit)).await?;
    }
    flush_timed(writer, limit).await?;
    // TLS sends its close_notify here: a peer that stopped reading must not hold it.
    match limit {
        Some(limit) => tokio::time::timeout(limit, writer.shutdown())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, WRITE_TIMED_OUT))?,
        None => writer.shutdown().await,
    }
}

/// Writes what is in flight, and flushes if nothing more is queued. The buffers are kept for
/// the next burst while the spell lasts, unless they grew past a burst's size: the spell drops
/// the batch, and `drive` gives the queue's back, when it ends idle.
async fn write_batch<W>(
    writer: &mut W,
    queue: &mut OutboxReceiver,
    outbox: &Outbox,
    batch: &mut BytesMut,
    limit: Option<Duration>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    write_inflight(writer, queue, outbox, batch, limit).await?;
    if outbox.is_empty() {
        flush_timed(writer, limit).await?;
        if batch.capacity() > KEEP_BATCH_BYTES {
            *batch = BytesMut::new();
        }
        queue.release_buffers(outbox, KEEP_QUEUED);
    }
    Ok(())
}

/// Writes every frame of `queue.inflight`, confirming each as soon as all of it has been
/// handed to the kernel. Small frames are copied into one batch; large ones are written from
/// their own `Bytes`. Each write, and the flush after it, has the whole write timeout to make
/// progress: a slow but moving peer is never timed out, however large the frame.
async fn write_inflight<W>(
    writer: &mut W,
    queue: &mut OutboxReceiver,
    outbox: &Outbox,
    batch: &mut BytesMut,
    limit: Option<Duration>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    while let Some(front) = queue.inflight.front() {
        // What is written in one go: a large frame from its own bytes, or the run of small
        // frames at the front gathered into the batch.
        let direct;
        let (data, mut count) = if front.len() >= DIRECT_WRITE {
            direct = front.clone();
            (&direct[..], 1)
        } else {
            batch.clear();
            let mut count = 0;
            for frame in queue.inflight.iter() {
                if frame.len() >= DIRECT_WRITE
                    || (count > 0 && batch.len() + frame.len() > BATCH_BYTES)
                {
                    break;
                }
                batch.extend_from_slice(frame);
                count += 1;
            }
            (&batch[..], count)
        };
        let mut written = 0;
        let mut confirmed_bytes = 0;
        while written < data.len() {
            let chunk = data.get(written..).unwrap_or_default();
            written += write_some(writer, chunk, limit).await?;
            // A stream that buffers (TLS) has taken the bytes, not the kernel: only after a
            // flush may they count as sent. A no-op on plain TCP.
            flush_timed(writer, limit).await?;
            // Confirm the frames handed over whole.
            let mut whole = 0;
            for frame in queue.inflight.iter().take(count) {
                if confirmed_bytes + frame.len() > written {
                    break;
                }
                confirmed_bytes += frame.len();
                whole += 1;
            }
            queue.confirm_front(outbox, whole);
            count -= whole;
        }
    }
    Ok(())
}

/// One `write`, failing with [`io::ErrorKind::TimedOut`] if it makes no progress within
/// `limit` and with [`io::ErrorKind::WriteZero`] if the socket takes nothing.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    limit: Option<Duration>,
) -> io::Result<usize> {
    let n = match limit {
        Some(limit) => tokio::time::timeout(limit, writer.write(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, WRITE_TIMED_OUT))??,
        None => writer.write(bytes).await?,
    };
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}
