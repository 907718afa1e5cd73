//! [`ConnectionHandle`]: the application's handle on one connection: its id and addresses,
//! sending, closing, and the state it keeps for the application. Its requests (`request`,
//! `request_stream`, `send_fresh`) are written beside the request table, in
//! [`crate::request`].

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::outbox::{NotQueued, Outbox};
use super::reason::{ConnectionId, DisconnectReason, SendError};
use crate::codec::{EncodedFrame, FrameCodec, NO_FIELDS};
use crate::frame::{Frame, HeaderFields};
use crate::layout::HeaderLayout;
use crate::protocol::Encode;
use crate::request::{Correlation, RequestTable};
use crate::transport::Addr;

#[derive(Debug)]
struct HandleInner {
    id: ConnectionId,
    peer: Addr,
    local: Addr,
    outbox: Outbox,
    codec: Arc<FrameCodec>,
    /// Set to close gracefully: drain the outbox, then close. Whoever sets it wakes the
    /// connection through [`Outbox::wake`]. A flag in place, not a cancellation token: one
    /// allocation fewer per connection.
    close: AtomicBool,
    /// Set to close at once, dropping what is queued; whoever sets it wakes the connection
    /// through its outbox.
    aborted: AtomicBool,
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
    /// What only some connections use, made when first set or asked for: a connection that
    /// uses none of it holds a null pointer (see `connection`'s docs on what an idle
    /// connection holds).
    extras: OnceLock<Box<Extras>>,
    /// The connection's `tracing` span (its id and peer): every log line of the connection's
    /// task is in it. Kept here, not in the task, which every idle connection pays for; and
    /// boxed, only while it is enabled (a subscriber that logs at info or finer for the
    /// library): a server logging warnings only keeps a null pointer.
    span: Option<Box<tracing::Span>>,
}

/// The span of every connection whose own span is disabled.
static NO_SPAN: tracing::Span = tracing::Span::none();

/// The parts of a connection's handle that only some connections use.
#[derive(Debug, Default)]
struct Extras {
    /// What the handshake returned, on a connection that ran one.
    handshake: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// The application's per-connection state ([`ConnectionHandle::state`]), one value per
    /// type.
    state: Mutex<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>,
    /// The reason the connection was closed or aborted with, by whoever did it.
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
/// let _client = tokio::net::TcpStream::connect(server.local_addr().to_string()).await?;
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
        peer: Addr,
        local: Addr,
        outbox: Outbox,
        codec: Arc<FrameCodec>,
        correlation: Option<&Correlation>,
    ) -> Self {
        let span = tracing::info_span!("connection", id = %id, peer = %peer);
        Self {
            inner: Arc::new(HandleInner {
                id,
                peer,
                local,
                outbox,
                codec,
                aborted: AtomicBool::new(false),
                close: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                connected: AtomicBool::new(true),
                released: AtomicBool::new(false),
                received: AtomicU64::new(0),
                unsent: AtomicUsize::new(0),
                requests: correlation.map(|c| RequestTable::new(c.clone())),
                extras: OnceLock::new(),
                span: (!span.is_disabled()).then(|| Box::new(span)),
            }),
        }
    }

    /// True the first time only: the server gives this connection's places back once.
    pub(crate) fn first_release(&self) -> bool {
        !self.inner.released.swap(true, Ordering::Relaxed)
    }

    /// The header layout this connection's frames are encoded with.
    pub(crate) fn layout(&self) -> &HeaderLayout {
        self.inner.codec.layout()
    }

    /// The outbox this connection's writer drains.
    #[inline]
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// The connection's `tracing` span, `connection` with its `id` and `peer`: the
    /// connection's own log lines are in it; enter it to put the application's there too.
    /// [`Span::none`](tracing::Span::none) when no subscriber enabled it as the connection
    /// opened.
    pub fn span(&self) -> &tracing::Span {
        self.inner.span.as_deref().unwrap_or(&NO_SPAN)
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.inner.id
    }

    /// The peer's address: a TCP address, a Unix socket's path, or the description the
    /// application gave its own stream.
    pub fn peer(&self) -> &Addr {
        &self.inner.peer
    }

    /// Our end's address.
    pub fn local_addr(&self) -> &Addr {
        &self.inner.local
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
    /// drop(tokio::net::TcpStream::connect(server.local_addr().to_string()).await?);
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

    /// Encodes `msg` and queues it, waiting while the outbox is full (back-pressure). With
    /// room to spare, the message is encoded straight into the outbox's write batch.
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
        msg: &'a M,
    ) -> impl Future<Output = Result<(), SendError>> + 'a {
        self.send_with(msg, &NO_FIELDS)
    }

    /// Like [`send`](Self::send), with extra header fields (OpenFlow's `xid`, say).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_with<'a, M: Encode + ?Sized>(
        &'a self,
        msg: &'a M,
        fields: &'a HeaderFields,
    ) -> impl Future<Output = Result<(), SendError>> + 'a {
        // The outbox's future itself, not one wrapping it: a ready send moves its result once.
        let inner = &*self.inner;
        let open = || self.check_open();
        inner.outbox.send(open, &inner.codec, msg, fields, inner.id)
    }

    /// Queues a raw frame with its own header fields, waiting while the outbox is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_frame<'a>(
        &'a self,
        frame: &'a Frame,
    ) -> impl Future<Output = Result<(), SendError>> + 'a {
        self.send_with(frame, &frame.fields)
    }

    /// Queues `msg` if the outbox has room now; never waits.
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] when the outbox is full, and as [`send`](Self::send).
    pub fn try_send<M: Encode + ?Sized>(&self, msg: &M) -> Result<(), SendError> {
        self.try_send_with(msg, &HeaderFields::new())
    }

    /// Like [`try_send`](Self::try_send), with extra header fields.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    pub fn try_send_with<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<(), SendError> {
        self.check_open()?;
        let inner = &*self.inner;
        inner
            .outbox
            .try_encode(&inner.codec, msg, fields, inner.id)
            .map_err(|err| self.not_queued(err))
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
    /// let _client = tokio::net::TcpStream::connect(server.local_addr().to_string()).await?;
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
    pub async fn send_encoded(&self, frame: &EncodedFrame) -> Result<(), SendError> {
        self.check_layout(frame)?;
        self.check_open()?;
        self.inner.outbox.queue(frame.bytes(), self.inner.id).await
    }

    /// Like [`send_encoded`](Self::send_encoded), if the outbox has room now; never waits.
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] when the outbox is full, and as
    /// [`send_encoded`](Self::send_encoded).
    pub fn try_send_encoded(&self, frame: &EncodedFrame) -> Result<(), SendError> {
        self.check_layout(frame)?;
        self.check_open()?;
        self.inner
            .outbox
            .try_queue(frame.bytes(), self.inner.id)
            .map_err(|err| self.not_queued(err))
    }

    fn not_queued(&self, err: NotQueued) -> SendError {
        match err {
            NotQueued::Full(_) => SendError::QueueFull {
                id: self.inner.id,
                capacity: self.inner.outbox.capacity(),
            },
            NotQueued::Failed(err) => err,
        }
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
    pub(crate) fn request_close(&self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.close.store(true, Ordering::Release);
        self.inner.outbox.wake();
    }

    /// Whether a graceful close was asked for, of the connection or of its client.
    pub(crate) fn close_requested(&self) -> bool {
        // A client's outbox drains when the client closes: its connection closes too.
        self.inner.close.load(Ordering::Acquire) || self.inner.outbox.is_draining()
    }

    /// Closes at once, dropping what is queued.
    pub(crate) fn abort_with(&self, reason: DisconnectReason) {
        self.set_reason(reason);
        self.inner.closing.store(true, Ordering::Release);
        self.inner.aborted.store(true, Ordering::Release);
        self.inner.outbox.wake();
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.inner.aborted.load(Ordering::Acquire)
    }

    /// Completes once the connection is aborted ([`abort_with`](Self::abort_with)). Only the
    /// connection's own task waits for it (the outbox holds one waker).
    pub(crate) async fn aborted(&self) {
        std::future::poll_fn(|cx| {
            // Registered before the check: an abort after it wakes this task.
            self.inner.outbox.register(cx);
            if self.is_aborted() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }

    /// The parts only some connections use, made now if they were not.
    fn extras(&self) -> &Extras {
        self.inner.extras.get_or_init(Box::default)
    }

    fn set_reason(&self, reason: DisconnectReason) {
        let mut slot = self
            .extras()
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(reason);
    }

    pub(crate) fn take_reason(&self) -> Option<DisconnectReason> {
        let extras = self.inner.extras.get()?;
        extras
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn check_open(&self) -> Result<(), SendError> {
        let outbox = &self.inner.outbox;
        if self.inner.closing.load(Ordering::Acquire) || outbox.is_closed() || outbox.is_draining()
        {
            Err(SendError::Closed { id: self.inner.id })
        } else {
            Ok(())
        }
    }

    /// Refuses new frames from now on: the connection is closing.
    pub(crate) fn mark_closing(&self) {
        self.inner.closing.store(true, Ordering::Release);
    }

    /// Counts one received frame. Only the connection's task writes the count: a plain load
    /// and store, no locked add.
    #[inline]
    pub(crate) fn count_received(&self) {
        let received = &self.inner.received;
        received.store(received.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Keeps what the handshake returned.
    pub(crate) fn set_handshake_output(&self, output: Arc<dyn Any + Send + Sync>) {
        let _ = self.extras().handshake.set(output);
    }

    pub(crate) fn mark_disconnected(&self) {
        self.inner.connected.store(false, Ordering::Release);
        if let Some(table) = &self.inner.requests {
            table.clear();
        }
    }

    #[inline]
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
        self.inner.extras.get()?.handshake.get()?.downcast_ref()
    }

    /// The application's own state of type `T` for this connection: made with
    /// `T::default()` the first time it is asked for, kept until the last handle is dropped.
    /// What the ancestor kept as attributes of its per-connection protocol object: counters,
    /// a login, a sequence number. One value per type, as `http::Extensions`: several parts of
    /// an application each keep their own. Shared by every clone of the handle, so `T` uses
    /// atomics or a lock for what changes.
    ///
    /// Each call looks the type up under a short lock. On a path taken for every message, a
    /// handler made for each connection ([`Server::serve_each`](crate::Server::serve_each))
    /// keeps its state in its own fields instead, with no lookup.
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
    ///     async fn message(&self, conn: &ConnectionHandle, _msg: Unknown, _fields: &HeaderFields) {
    ///         conn.state::<Seen>().messages.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    /// # let _ = Count;
    /// ```
    pub fn state<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut states = self
            .extras()
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let wanted = TypeId::of::<T>();
        if let Some(found) = states
            .iter()
            .find(|(id, _)| *id == wanted)
            .and_then(|(_, state)| state.clone().downcast::<T>().ok())
        {
            return found;
        }
        let made = Arc::new(T::default());
        states.push((wanted, made.clone()));
        made
    }

    /// Whether this connection runs over TLS. Feature `tls`.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, Server, Unknown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
    /// let mut events = server.events();
    /// let _plain = tokio::net::TcpStream::connect(server.local_addr().to_string()).await?;
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
        self.inner
            .extras
            .get()
            .is_some_and(|extras| extras.tls.get().is_some())
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
    /// let _plain = tokio::net::TcpStream::connect(server.local_addr().to_string()).await?;
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
        self.inner.extras.get()?.tls.get()?.as_deref()
    }

    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&self, identity: Option<crate::tls::PeerIdentity>) {
        let _ = self.extras().tls.set(identity.map(Box::new));
    }
}

impl fmt::Display for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.peer, f)
    }
}

#[cfg(test)]
mod tests {
    use super::HandleInner;

    /// Every connection, idle or not, holds its handle (see `connection`'s docs on what an
    /// idle connection holds): what only some connections use belongs in `Extras`.
    #[test]
    fn a_handle_holds_only_what_every_connection_uses() {
        let size = size_of::<HandleInner>();
        eprintln!("a connection's handle: {size} bytes");
        assert!(
            size <= 144,
            "a connection's handle is {size} bytes: over 144, every idle connection pays more"
        );
    }
}
