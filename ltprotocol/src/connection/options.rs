//! What every connection of a server or client runs with, in one struct both builders hold:
//! frame limits, timeouts, keepalive, request matching, handshake, auto-replies and queue
//! sizes. [`Builder`] sets them, once for both sides; [`ServerBuilder`](crate::ServerBuilder)
//! and [`ClientBuilder`](crate::ClientBuilder) add what only one side has.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::FrameCodec;
use crate::frame::{Frame, FrameRef};
use crate::handshake::{Handshake, HandshakeBacklog, SharedHandshake};
use crate::layout::HeaderLayout;
use crate::request::Correlation;

/// Default [`Builder::linger`] of a graceful close: 5 s.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);
/// Default [`Builder::handshake_timeout`]: 10 s (never below 1 s: Open vSwitch answers
/// 0.3–0.5 s late after a timer-driven reconnect).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Builder::outbox_capacity`]: 1 MiB, four 256 KiB write batches.
pub const DEFAULT_OUTBOX_BYTES: usize = 1024 * 1024;
/// Default [`Builder::event_capacity`]: 1,024 events.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// The per-connection timeouts of a server or client. Each closes only the offending
/// connection, with [`DisconnectReason::TimedOut`](crate::DisconnectReason::TimedOut).
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
    /// kernel's buffers are full) closes the connection. It is about progress: each write,
    /// and each flush, has the whole of it, so a slow but moving peer is never timed out,
    /// however large the frame. Default: 30 s.
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

/// Keeps a quiet connection honest: after `idle` without anything arriving, send `probe`;
/// if still nothing arrives within `timeout`, close with
/// [`TimeoutKind::Keepalive`](crate::TimeoutKind::Keepalive).
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
    /// The frame sent as a probe (with its header fields). With
    /// [`correlation`](Builder::correlation), each probe's correlation field is set to a fresh
    /// id, as [`send_fresh`](crate::ConnectionHandle::send_fresh) does.
    pub probe: Frame,
}

/// A rule that answers some received frames at once, before they reach the application
/// (which then does not see them): OpenFlow's ECHO_REQUEST → ECHO_REPLY, say.
pub type AutoReply = Arc<dyn Fn(FrameRef<'_>) -> Option<Frame> + Send + Sync>;

/// The settings every connection of one server or client runs with.
#[derive(Clone)]
pub(crate) struct ConnectionOptions {
    /// The layout, with the inbound and outbound maxima.
    pub(crate) codec: FrameCodec,
    pub(crate) linger: Duration,
    pub(crate) timeouts: Timeouts,
    pub(crate) correlation: Option<Correlation>,
    pub(crate) handshake: Option<SharedHandshake>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) handshake_backlog: HandshakeBacklog,
    pub(crate) keepalive: Option<Keepalive>,
    pub(crate) auto_reply: Option<AutoReply>,
    /// Bytes of encoded frames held for sending (per connection on a server, across
    /// connections on a client).
    pub(crate) outbox_bytes: usize,
    pub(crate) event_capacity: usize,
    /// Whether what is queued outlives the connection (a client's queue, written on its next
    /// connection): once the peer is gone, nothing more is written into the dying socket. A
    /// server's connection instead goes on writing what its handler queued (the replies to a
    /// peer that half-closed, say) until the linger ends.
    pub(crate) queue_outlives_connection: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls_timeout: Duration,
    #[cfg(feature = "pcap")]
    pub(crate) capture: Option<crate::capture::Capture>,
}

impl ConnectionOptions {
    pub(crate) fn new(layout: HeaderLayout) -> Self {
        Self {
            codec: FrameCodec::new(layout),
            linger: DEFAULT_LINGER,
            timeouts: Timeouts::default(),
            correlation: None,
            handshake: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshake_backlog: HandshakeBacklog::default(),
            keepalive: None,
            auto_reply: None,
            outbox_bytes: DEFAULT_OUTBOX_BYTES,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            queue_outlives_connection: false,
            #[cfg(feature = "tls")]
            tls_timeout: crate::tls::DEFAULT_TLS_TIMEOUT,
            #[cfg(feature = "pcap")]
            capture: None,
        }
    }
}

impl ConnectionOptions {
    fn capture_enabled(&self) -> bool {
        #[cfg(feature = "pcap")]
        return self.capture.is_some();
        #[cfg(not(feature = "pcap"))]
        false
    }
}

impl fmt::Debug for ConnectionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionOptions")
            .field("codec", &self.codec)
            .field("linger", &self.linger)
            .field("timeouts", &self.timeouts)
            .field("correlation", &self.correlation)
            .field("handshake", &self.handshake.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("handshake_backlog", &self.handshake_backlog)
            .field("keepalive", &self.keepalive)
            .field("auto_reply", &self.auto_reply.is_some())
            .field("outbox_bytes", &self.outbox_bytes)
            .field("event_capacity", &self.event_capacity)
            .field("capture", &self.capture_enabled())
            .finish_non_exhaustive()
    }
}

/// Configures a server or a client: the settings both share are methods of `Builder`, written
/// once; [`ServerBuilder`](crate::ServerBuilder) (`Builder<ServerSide<P>>`) and
/// [`ClientBuilder`](crate::ClientBuilder) (`Builder<ClientSide<P>>`) add their own. Setters
/// take and return `&mut Self`, as tokio-util's builders do.
///
/// ```
/// use std::time::Duration;
/// use ltprotocol::{HeaderLayout, ReconnectingClient, Server, Timeouts, Unknown};
/// let timeouts = Timeouts { idle: Some(Duration::from_secs(60)), ..Timeouts::default() };
/// let mut server = Server::<Unknown>::builder(HeaderLayout::ltprotocol());
/// server.timeouts(timeouts).max_inbound(4096).max_connections(1_000);
/// let mut client = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol());
/// client.timeouts(timeouts).max_inbound(4096).connect_timeout(Duration::from_secs(3));
/// ```
#[derive(Debug, Clone)]
pub struct Builder<Side> {
    pub(crate) options: ConnectionOptions,
    pub(crate) side: Side,
}

impl<Side> Builder<Side> {
    pub(crate) fn with(layout: HeaderLayout, side: Side) -> Self {
        Self {
            options: ConnectionOptions::new(layout),
            side,
        }
    }

    /// The largest whole frame accepted from the peer, checked from the header alone before
    /// any body byte is buffered. Default: what the length field can describe, at most 8 MiB
    /// (65,535 for both presets).
    pub fn max_inbound(&mut self, max: usize) -> &mut Self {
        self.options.codec = self.options.codec.clone().max_inbound(max);
        self
    }

    /// The largest whole frame sent; larger ones are refused with
    /// [`EncodeError::TooLarge`](crate::EncodeError::TooLarge), never truncated. Default: what
    /// the length field can describe.
    pub fn max_outbound(&mut self, max: usize) -> &mut Self {
        self.options.codec = self.options.codec.clone().max_outbound(max);
        self
    }

    /// After a graceful close has flushed our side, how long to wait for the peer to close
    /// its side (reading and delivering what it still sends). Default: 5 s.
    pub fn linger(&mut self, linger: Duration) -> &mut Self {
        self.options.linger = linger;
        self
    }

    /// The frame read, idle and write timeouts of every connection; see [`Timeouts`] for
    /// their defaults.
    pub fn timeouts(&mut self, timeouts: Timeouts) -> &mut Self {
        self.options.timeouts = timeouts;
        self
    }

    /// Enables [`request`](crate::ConnectionHandle::request): replies are matched to requests
    /// on this header field. Default: off.
    pub fn correlation(&mut self, correlation: Correlation) -> &mut Self {
        self.options.correlation = Some(correlation);
        self
    }

    /// Runs `handshake` on every new connection before anything queued is sent or any event
    /// delivered; its output is kept on the [`ConnectionHandle`](crate::ConnectionHandle).
    /// Default: none.
    pub fn handshake<H: Handshake>(&mut self, handshake: H) -> &mut Self {
        self.options.handshake = Some(Arc::new(handshake));
        self
    }

    /// Bounds the handshake; past it the connection closes with
    /// [`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake). Default: 10 s.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.options.handshake_timeout = timeout;
        self
    }

    /// Bounds the frames a handshake sets aside for the application while it waits for a
    /// reply; past it the handshake fails with
    /// [`HandshakeError::BacklogFull`](crate::HandshakeError::BacklogFull). Default: 1,024
    /// frames and 1 MiB ([`HandshakeBacklog`]).
    pub fn handshake_backlog(&mut self, backlog: HandshakeBacklog) -> &mut Self {
        self.options.handshake_backlog = backlog;
        self
    }

    /// Probes quiet connections; see [`Keepalive`]. Default: off.
    pub fn keepalive(&mut self, keepalive: Keepalive) -> &mut Self {
        self.options.keepalive = Some(keepalive);
        self
    }

    /// Answers frames for which `rule` returns a reply at once, without delivering them
    /// (OpenFlow's ECHO_REQUEST → ECHO_REPLY). Default: none.
    pub fn auto_reply(
        &mut self,
        rule: impl Fn(FrameRef<'_>) -> Option<Frame> + Send + Sync + 'static,
    ) -> &mut Self {
        self.options.auto_reply = Some(Arc::new(rule));
        self
    }

    /// The bytes of encoded frames held for sending: per connection on a server, across
    /// connections (connected or not) on a client. `send` waits for room and `try_send`
    /// fails with [`SendError::QueueFull`](crate::SendError::QueueFull); a server's broadcast
    /// that finds a connection's outbox full disconnects that connection with
    /// [`DisconnectReason::SlowReader`](crate::DisconnectReason::SlowReader) rather than
    /// waiting or dropping the frame. A frame larger than the whole outbox is still accepted
    /// when the outbox is empty. Default: 1 MiB.
    pub fn outbox_capacity(&mut self, bytes: usize) -> &mut Self {
        self.options.outbox_bytes = bytes;
        self
    }

    /// How many events the stream style ([`Server::events`](crate::Server::events), the
    /// stream of [`ClientBuilder::connect`](crate::ClientBuilder::connect)) buffers before
    /// connections stop reading until the application catches up. Default: 1,024.
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Self {
        self.options.event_capacity = capacity;
        self
    }

    /// Bounds each TLS handshake; past it the connection (or attempt) fails with
    /// [`TlsError::TimedOut`](crate::tls::TlsError::TimedOut). Default: 10 s. Feature `tls`.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, Server, Unknown};
    /// let mut builder = Server::<Unknown>::builder(HeaderLayout::ltprotocol());
    /// builder.tls_timeout(std::time::Duration::from_secs(5));
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.options.tls_timeout = timeout;
        self
    }

    /// Writes every connection's application bytes, both directions (over TLS, the
    /// plaintext), to `capture`'s pcapng file, one TCP stream per connection; see
    /// [`capture`](crate::capture). Default: none. Feature `pcap`.
    ///
    /// ```no_run
    /// # use ltprotocol::{HeaderLayout, ReconnectingClient, Unknown};
    /// use ltprotocol::capture::Capture;
    /// let capture = Capture::to_file("client.pcapng")?;
    /// let mut builder = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol());
    /// builder.capture(capture.clone());
    /// # Ok::<(), ltprotocol::capture::CaptureError>(())
    /// ```
    #[cfg(feature = "pcap")]
    pub fn capture(&mut self, capture: crate::capture::Capture) -> &mut Self {
        self.options.capture = Some(capture);
        self
    }
}
