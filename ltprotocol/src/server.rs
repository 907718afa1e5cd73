//! [`Server`]: accepts any number of clients, one task each; broadcast, send to one, the
//! list of live connections, a connection limit and graceful shutdown.

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::codec::{EncodeError, EncodedFrame, FrameCodec};
use crate::connection::{
    self, ConnectionHandle, ConnectionId, DisconnectReason, LinkConfig, SendError,
};
use crate::event::{self, EventStream, Handler};
use crate::frame::HeaderFields;
use crate::layout::HeaderLayout;
use crate::protocol::{Encode, Protocol};
use crate::transport::Transport;

/// Default [`ServerBuilder::outbox_capacity`]: 1 MiB, four 256 KiB write batches.
pub const DEFAULT_OUTBOX_BYTES: usize = 1024 * 1024;
/// Default [`ServerBuilder::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
/// Default [`ServerBuilder::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Default [`ServerBuilder::ipv6_prefix`]: a /64, what one host or link usually holds.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
pub use crate::connection::DEFAULT_LINGER;

/// Configures and binds a [`Server`]. Every limit has a documented default.
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
/// assert_ne!(server.local_addr().port(), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServerBuilder<P> {
    max_connections: usize,
    max_per_ip: Option<usize>,
    ipv6_prefix: u8,
    outbox_bytes: usize,
    event_capacity: usize,
    link: LinkConfig,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ServerTls>,
    #[cfg(feature = "tls")]
    tls_timeout: Duration,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> ServerBuilder<P> {
    fn new(layout: HeaderLayout) -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_ip: None,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            outbox_bytes: DEFAULT_OUTBOX_BYTES,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            link: LinkConfig::new(FrameCodec::new(layout)),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_timeout: crate::tls::DEFAULT_TLS_TIMEOUT,
            _protocol: PhantomData,
        }
    }

    connection::link_setters!();

    /// Serves TLS (with client authentication if `tls` asks for it) instead of plain TCP.
    /// Default: plain TCP. Feature `tls`.
    ///
    /// Each accepted connection runs the TLS handshake on its own task, after the connection
    /// limits and before the [`handshake`](Self::handshake) hook, bounded by
    /// [`tls_timeout`](Self::tls_timeout). A connection that fails it is not registered and
    /// never reported `connected`; it is logged, and `disconnected` (or
    /// [`Event::Disconnected`](crate::Event::Disconnected)) reports
    /// [`DisconnectReason::Tls`] saying why. See [`tls`](crate::tls) for an example.
    #[cfg(feature = "tls")]
    pub fn tls(&mut self, tls: crate::tls::ServerTls) -> &mut Self {
        self.tls = Some(tls);
        self
    }

    /// Bounds each TLS handshake; past it the connection closes with
    /// [`TlsError::TimedOut`](crate::tls::TlsError::TimedOut). Default: 10 s. Feature `tls`.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, Server, Unknown};
    /// let mut builder = Server::<Unknown>::builder(HeaderLayout::ltprotocol());
    /// builder.tls_timeout(std::time::Duration::from_secs(5));
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.tls_timeout = timeout;
        self
    }

    /// The most connections open at once; one more is accepted and closed at once, and the
    /// refusal logged and counted ([`Server::refused`]). Default: 100,000 (the process's file
    /// descriptor limit is usually lower, and accepting backs off when it is reached).
    pub fn max_connections(&mut self, max: usize) -> &mut Self {
        self.max_connections = max;
        self
    }

    /// The most connections open at once from one address group; more are refused like
    /// those over [`max_connections`](Self::max_connections). A group is one IPv4 address
    /// (an IPv4-mapped IPv6 address counts as its IPv4 address), or one IPv6 prefix of
    /// [`ipv6_prefix`](Self::ipv6_prefix) bits: a single host usually holds a whole /64, so
    /// counting full IPv6 addresses would let it open as many connections as it likes.
    /// Default: `None` (no per-address limit).
    pub fn max_connections_per_ip(&mut self, max: usize) -> &mut Self {
        self.max_per_ip = Some(max);
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
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The bytes of encoded frames each connection may have queued for writing. `send` waits
    /// for room; a broadcast that finds a connection's outbox full disconnects that connection
    /// with [`DisconnectReason::SlowReader`] rather than waiting or dropping the frame. A frame
    /// larger than the whole outbox is still accepted when the outbox is empty. Default: 1 MiB.
    pub fn outbox_capacity(&mut self, bytes: usize) -> &mut Self {
        self.outbox_bytes = bytes;
        self
    }

    /// How many events [`Server::events`] buffers before connections stop reading until the
    /// application catches up. Default: 1,024.
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Self {
        self.event_capacity = capacity;
        self
    }

    /// Binds the listening socket (IPv4 or IPv6; port 0 picks a free port, see
    /// [`Server::local_addr`]). Nothing is accepted until [`Server::serve`] or
    /// [`Server::events`].
    ///
    /// # Errors
    ///
    /// The I/O error from resolving or binding the address.
    pub async fn bind(&self, addr: impl ToSocketAddrs) -> io::Result<Server<P>> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        info!(%local_addr, "listening");
        Ok(Server {
            inner: Arc::new(ServerInner {
                local_addr,
                listener: Mutex::new(Some(listener)),
                registry: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                link: self.link.clone(),
                outbox_bytes: self.outbox_bytes,
                max_connections: self.max_connections,
                max_per_ip: self.max_per_ip,
                ipv6_prefix: self.ipv6_prefix,
                per_ip: Mutex::new(HashMap::new()),
                open: AtomicUsize::new(0),
                shutdown: CancellationToken::new(),
                force: CancellationToken::new(),
                tracker: TaskTracker::new(),
                refused: AtomicU64::new(0),
                accept_errors: AtomicU64::new(0),
                unsent: AtomicUsize::new(0),
                event_capacity: self.event_capacity,
                #[cfg(feature = "tls")]
                tls: self
                    .tls
                    .as_ref()
                    .map(|tls| crate::tls::Acceptor::new(tls, self.tls_timeout)),
            }),
            _protocol: PhantomData,
        })
    }
}

#[derive(Debug)]
struct ServerInner {
    local_addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
    registry: Mutex<HashMap<ConnectionId, ConnectionHandle>>,
    next_id: AtomicU64,
    link: LinkConfig,
    outbox_bytes: usize,
    max_connections: usize,
    max_per_ip: Option<usize>,
    ipv6_prefix: u8,
    /// Open connections per address group ([`address_group`]).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Connections admitted whose task has not ended: held to `max_connections`.
    open: AtomicUsize,
    shutdown: CancellationToken,
    /// Cancelled when the shutdown deadline passes: callbacks still running are abandoned.
    force: CancellationToken,
    tracker: TaskTracker,
    refused: AtomicU64,
    accept_errors: AtomicU64,
    unsent: AtomicUsize,
    event_capacity: usize,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Acceptor>,
}

impl ServerInner {
    /// Takes a place under both connection limits for a peer at `ip`, or says which limit
    /// (and its value) refuses it.
    /// Counts a new connection against the connection and per-address limits; the
    /// connection's [`Registration`] gives both back when its task ends.
    fn admit_connection(&self, ip: IpAddr) -> Result<(), (&'static str, usize)> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .map_err(|_| ("connection", self.max_connections))?;
        if !self.admit(ip) {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(("per-address", self.max_per_ip.unwrap_or_default()));
        }
        Ok(())
    }

    /// Counts a connection from `ip` against the per-address limit; `false` if over it.
    fn admit(&self, ip: IpAddr) -> bool {
        let Some(max) = self.max_per_ip else {
            return true;
        };
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let count = per_ip
            .entry(address_group(ip, self.ipv6_prefix))
            .or_insert(0);
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        if self.max_per_ip.is_none() {
            return;
        }
        let group = address_group(ip, self.ipv6_prefix);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = per_ip.get_mut(&group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&group);
            }
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, ConnectionHandle>> {
        // The map stays consistent even if a holder panicked: every critical section is a
        // single insert, remove or read.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`Server::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections open when shutdown began.
    pub connections: usize,
    /// Connections still open at the deadline, then closed without finishing their writes.
    pub forced: usize,
    /// Frames accepted by `send` or `broadcast` that were never written to a socket (the peer
    /// vanished, or the deadline passed). Frames handed to the kernel count as written.
    pub unsent_frames: usize,
}

/// A server for one protocol `P`: accepts clients, runs each connection on its own task, and
/// tells the application about them through a [`Handler`] ([`serve`](Self::serve)), a
/// handler per connection ([`serve_each`](Self::serve_each)) or a stream
/// ([`events`](Self::events)).
///
/// Cheap to clone; every clone is the same server.
///
/// The ancestor's `LTTwistedServer`, mapped:
///
/// | ltprotocol 0.2.1 | here |
/// |---|---|
/// | `LTTwistedServer(proto, recv_cb, new_cb, lost_cb).listen(port)` | `Server::builder(layout).bind(addr)` + `serve(handler)` |
/// | the protocol object made for each connection, and its attributes | [`serve_each`](Self::serve_each): a handler per connection, its fields |
/// | `server.send(msg)` (broadcast) | [`broadcast`](Self::broadcast) |
/// | `send_msg_to_client(conn, msg)` | [`send_to`](Self::send_to) or [`ConnectionHandle::send`] |
/// | `connections`, `numProtocols` | [`connections`](Self::connections), [`len`](Self::len) |
///
/// ```
/// use ltprotocol::{Event, HeaderLayout, Message, Protocol, Server, Unknown};
///
/// #[derive(Debug, Message)]
/// #[ltp(message_type = 1)]
/// struct NumMsg { num: u32 }
///
/// #[derive(Debug, Protocol)]
/// enum Demo { Num(NumMsg), #[ltp(unknown)] Other(Unknown) }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::<Demo>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
/// let mut events = server.events();
///
/// let mut client = tokio::net::TcpStream::connect(server.local_addr()).await?;
/// tokio::io::AsyncWriteExt::write_all(&mut client, b"\x00\x07\x01\x00\x00\x00\xc8").await?;
///
/// let Some(Event::Connected(conn)) = events.next().await else { panic!() };
/// let Some(Event::Message { message: Demo::Num(num), .. }) = events.next().await else { panic!() };
/// assert_eq!(num.num, 200);
/// assert_eq!(server.broadcast(&NumMsg { num: 7 })?, 1);
/// assert_eq!(server.len(), 1);
/// # let _ = conn;
/// server.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server<P> {
    inner: Arc<ServerInner>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P> Clone for Server<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _protocol: PhantomData,
        }
    }
}

impl<P: Protocol> Server<P> {
    /// A builder for a server speaking `layout`; see [`ServerBuilder`] for the limits.
    pub fn builder(layout: HeaderLayout) -> ServerBuilder<P> {
        ServerBuilder::new(layout)
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The layout, and the frame limits in force.
    pub fn codec(&self) -> &FrameCodec {
        &self.inner.link.codec
    }

    /// Accepts clients until [`shutdown`](Self::shutdown), running `handler`'s callbacks for
    /// each connection. Returns once accepting has stopped; connections may still be closing
    /// (`shutdown` waits for them).
    ///
    /// Accept errors such as running out of file descriptors (`EMFILE`) are logged and
    /// retried after a pause that grows to one second, rather than spinning.
    ///
    /// # Errors
    ///
    /// An error of kind [`io::ErrorKind::AlreadyExists`] if the server is already serving
    /// (through `serve` or `events`).
    pub async fn serve<H: Handler<P>>(&self, handler: H) -> io::Result<()> {
        let handler = Arc::new(handler);
        self.serve_each(move |_| handler.clone()).await
    }

    /// Accepts clients as [`serve`](Self::serve) does, with a handler of its own for each
    /// connection, made by `make` when the connection is accepted: the ancestor's protocol
    /// object per connection. The handler's fields are that connection's state, reached with
    /// no lookup: cheaper on every frame than [`ConnectionHandle::state`], which finds the
    /// state by its type. Every callback of that connection, from
    /// [`connected`](Handler::connected) to [`disconnected`](Handler::disconnected), runs on
    /// its handler, which is dropped when the connection's task ends.
    ///
    /// The handler lives in the connection's task, so its size is paid by every connection,
    /// idle or not: up to 48 bytes it costs nothing more (the task stays in a 512-byte cell);
    /// put what is shared behind an `Arc`, and what is large in a `Box`. Its fields that
    /// change are atomics or behind a lock (a handler is `Sync`); only this connection's
    /// task calls it, so a relaxed load and store is enough for a counter.
    ///
    /// `make` runs in the accept loop as soon as the connection is accepted, before any TLS
    /// or protocol handshake: the handle's id and addresses are known then, its TLS peer
    /// identity and [`handshake_output`](ConnectionHandle::handshake_output) only from
    /// [`connected`](Handler::connected) on. Keep it quick: the next connection waits for it.
    /// If `make` panics, that connection alone is closed (and logged); the server goes on.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use ltprotocol::demo::{Demo, NumMsg};
    /// use ltprotocol::{ConnectionHandle, Handled, Handler, HeaderFields, Server};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// /// Numbers each connection's messages: every `NumMsg` is answered with how many this
    /// /// connection has sent so far.
    /// #[derive(Default)]
    /// struct Numbering {
    ///     seen: AtomicU32,
    /// }
    ///
    /// impl Handler<Demo> for Numbering {
    ///     fn try_message(&self, conn: &ConnectionHandle, msg: Demo, fields: HeaderFields) -> Handled<Demo> {
    ///         let Demo::Num(_) = msg else {
    ///             return Handled::Later(msg, fields);
    ///         };
    ///         let seen = self.seen.load(Ordering::Relaxed) + 1;
    ///         self.seen.store(seen, Ordering::Relaxed);
    ///         let _ = conn.try_send(&Demo::Num(NumMsg { num: seen }));
    ///         Handled::Done
    ///     }
    ///
    ///     async fn message(&self, _conn: &ConnectionHandle, _msg: Demo, _fields: HeaderFields) {}
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = Server::<Demo>::builder(ltprotocol::HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
    /// let serving = server.clone();
    /// tokio::spawn(async move { serving.serve_each(|_conn| Numbering::default()).await });
    ///
    /// let num = b"\x00\x07\x01\x00\x00\x00\x05"; // NumMsg(5)
    /// let (mut a, mut b) = (
    ///     tokio::net::TcpStream::connect(server.local_addr()).await?,
    ///     tokio::net::TcpStream::connect(server.local_addr()).await?,
    /// );
    /// let mut answer = [0u8; 7];
    /// for expected in [1u8, 2] {
    ///     a.write_all(num).await?;
    ///     a.read_exact(&mut answer).await?;
    ///     assert_eq!(answer[6], expected);
    /// }
    /// // Another connection, another handler: its count starts again.
    /// b.write_all(num).await?;
    /// b.read_exact(&mut answer).await?;
    /// assert_eq!(answer[6], 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve): [`io::ErrorKind::AlreadyExists`] if the server is already
    /// serving.
    pub async fn serve_each<H, F>(&self, mut make: F) -> io::Result<()>
    where
        H: Handler<P>,
        F: FnMut(&ConnectionHandle) -> H + Send,
    {
        let listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the server is already serving",
                )
            })?;
        let mut pause = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                () = self.inner.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) if self.inner.shutdown.is_cancelled() => {
                    debug!(%peer, "closing a connection accepted as shutdown began");
                    drop(stream);
                    break;
                }
                Ok((stream, peer)) => {
                    pause = Duration::from_millis(10);
                    if let Err((limit, max)) = self.inner.admit_connection(peer.ip()) {
                        self.inner.refused.fetch_add(1, Ordering::Relaxed);
                        warn!(%peer, max, "refusing connection: {limit} limit reached");
                        drop(stream);
                        continue;
                    }
                    let accepted = Accepted::new(self.inner.clone(), stream, peer);
                    if let Some(handler) = accepted.handler(&mut make) {
                        self.inner
                            .tracker
                            .spawn(run_connection::<P, H>(accepted, handler));
                    }
                }
                Err(err) if is_per_connection(&err) => {
                    debug!(error = %err, "accept: connection failed before it was accepted");
                }
                Err(err) => {
                    self.inner.accept_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %err, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                    tokio::select! {
                        () = self.inner.shutdown.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
        info!(local_addr = %self.inner.local_addr, "stopped accepting");
        Ok(())
    }

    /// Starts serving (on a spawned task) and returns the stream of events: the stream style,
    /// equal to [`serve`](Self::serve) with a handler. The stream ends after shutdown.
    ///
    /// Must be called within a tokio runtime. Calling it twice, or after `serve`, gives a
    /// stream that ends at once (the listener is already taken); the error is logged.
    pub fn events(&self) -> EventStream<P> {
        let (handler, stream) = event::channel(self.inner.event_capacity);
        let server = self.clone();
        tokio::spawn(async move {
            if let Err(err) = server.serve(handler).await {
                warn!(error = %err, "events(): cannot serve");
            }
        });
        stream
    }

    /// Sends `msg` to every live connection: encoded once, then queued to each without
    /// waiting. A connection whose outbox is full is disconnected with
    /// [`DisconnectReason::SlowReader`] (and a log line) instead of stalling the others or
    /// losing the frame. Returns how many connections it was queued for.
    ///
    /// # Errors
    ///
    /// An [`EncodeError`] when the message cannot be framed; nothing is sent.
    pub fn broadcast<M: Encode + ?Sized>(&self, msg: &M) -> Result<usize, EncodeError> {
        self.broadcast_with(msg, &HeaderFields::new())
    }

    /// Like [`broadcast`](Self::broadcast), with extra header fields.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    pub fn broadcast_with<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<usize, EncodeError> {
        self.broadcast_filtered(msg, fields, |_| true)
    }

    fn broadcast_filtered<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
        include: impl Fn(ConnectionId) -> bool,
    ) -> Result<usize, EncodeError> {
        let frame = self.encode_with(msg, fields)?;
        Ok(self.broadcast_encoded_filtered(&frame, include))
    }

    /// Encodes a message once, for [`broadcast_encoded`](Self::broadcast_encoded) or for
    /// [`ConnectionHandle::send_encoded`] to a group of connections the application chooses
    /// (a snapshot of [`connections`](Self::connections), say): sending it again costs no
    /// encoding.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, MessageType, Server, Unknown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
    /// let tick = server.encode(&Unknown { message_type: MessageType::new(1), body: "tick".into() })?;
    /// assert_eq!(tick.as_bytes(), b"\x00\x07\x01tick");
    /// for _ in 0..3 {
    ///     server.broadcast_encoded(&tick);
    /// }
    /// # server.shutdown(std::time::Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An [`EncodeError`] when the message cannot be framed.
    pub fn encode<M: Encode + ?Sized>(&self, msg: &M) -> Result<EncodedFrame, EncodeError> {
        self.encode_with(msg, &HeaderFields::new())
    }

    /// Like [`encode`](Self::encode), with extra header fields.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn encode_with<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<EncodedFrame, EncodeError> {
        self.inner.link.codec.encode_once(msg, fields)
    }

    /// Like [`broadcast`](Self::broadcast), with a frame encoded once by
    /// [`encode`](Self::encode): a message broadcast repeatedly is encoded only once. A frame
    /// of another header layout reaches nobody. Returns how many connections it was queued
    /// for.
    pub fn broadcast_encoded(&self, frame: &EncodedFrame) -> usize {
        self.broadcast_encoded_filtered(frame, |_| true)
    }

    fn broadcast_encoded_filtered(
        &self,
        frame: &EncodedFrame,
        include: impl Fn(ConnectionId) -> bool,
    ) -> usize {
        let mut reached = 0;
        let mut slow = Vec::new();
        {
            let registry = self.inner.registry();
            for handle in registry.values().filter(|h| include(h.id())) {
                match handle.try_send_encoded(frame) {
                    Ok(()) => reached += 1,
                    Err(SendError::QueueFull { .. }) => slow.push(handle.clone()),
                    Err(_) => {}
                }
            }
        }
        for handle in slow {
            warn!(
                conn = %handle.id(),
                peer = %handle.peer(),
                capacity = handle.outbox_capacity(),
                "disconnecting slow reader: outbox full during broadcast"
            );
            handle.abort_with(DisconnectReason::SlowReader {
                capacity: handle.outbox_capacity(),
            });
        }
        reached
    }

    /// Like [`broadcast`](Self::broadcast), to every live connection but `except` (a chat
    /// relay's "everyone else").
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    pub fn broadcast_except<M: Encode + ?Sized>(
        &self,
        msg: &M,
        except: ConnectionId,
    ) -> Result<usize, EncodeError> {
        self.broadcast_except_with(msg, &HeaderFields::new(), except)
    }

    /// Like [`broadcast_except`](Self::broadcast_except), with extra header fields.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    pub fn broadcast_except_with<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
        except: ConnectionId,
    ) -> Result<usize, EncodeError> {
        self.broadcast_filtered(msg, fields, |id| id != except)
    }

    /// Sends `msg` to one connection, waiting while its outbox is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] when no live connection has this id, and as
    /// [`ConnectionHandle::send`].
    pub async fn send_to<M: Encode + ?Sized>(
        &self,
        id: ConnectionId,
        msg: &M,
    ) -> Result<(), SendError> {
        let handle = self.connection(id).ok_or(SendError::Closed { id })?;
        handle.send(msg).await
    }

    /// The live connection with this id.
    pub fn connection(&self, id: ConnectionId) -> Option<ConnectionHandle> {
        self.inner.registry().get(&id).cloned()
    }

    /// Every live connection, by id.
    pub fn connections(&self) -> Vec<ConnectionHandle> {
        let mut all: Vec<_> = self.inner.registry().values().cloned().collect();
        all.sort_by_key(ConnectionHandle::id);
        all
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.inner.registry().len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many connections were refused because of [`ServerBuilder::max_connections`].
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// How many times accepting failed for want of a resource (`EMFILE` and the like); each
    /// failure pauses accepting, 10 ms doubling up to 1 s, so this grows slowly, never in a
    /// spin.
    pub fn accept_errors(&self) -> u64 {
        self.inner.accept_errors.load(Ordering::Relaxed)
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Shuts down gracefully: stops accepting, lets every connection write what it has
    /// queued, closes our side of each, waits for the peers to close theirs (up to the
    /// linger), and returns when all are done, or at `deadline`, when what is left is closed
    /// at once. Calling it again waits again and reports on the connections left.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        // Stop accepting first, so that no client slips in while the others are closed.
        self.inner.shutdown.cancel();
        // If nobody is serving, the listener is still here: close it now.
        drop(
            self.inner
                .listener
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let handles = self.connections();
        info!(connections = handles.len(), "shutting down");
        for handle in &handles {
            handle.close_with(DisconnectReason::Shutdown);
        }
        self.inner.tracker.close();
        let mut forced = 0;
        if tokio::time::timeout(deadline, self.inner.tracker.wait())
            .await
            .is_err()
        {
            let left = self.connections();
            forced = left.len();
            warn!(forced, "shutdown deadline passed: closing the rest at once");
            self.inner.force.cancel();
            for handle in left {
                handle.abort_with(DisconnectReason::Shutdown);
            }
            self.inner.tracker.wait().await;
        }
        let report = ShutdownReport {
            connections: handles.len(),
            forced,
            unsent_frames: self.inner.unsent.load(Ordering::Relaxed),
        };
        info!(?report, "shut down");
        report
    }
}

/// The group `ip` is counted in for the per-address limit: an IPv4 address itself (also
/// when it arrives IPv4-mapped, `::ffff:a.b.c.d`, on a dual-stack listener), an IPv6 address
/// cut to its first `ipv6_prefix` bits.
fn address_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let keep = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

/// Accept errors that concern one incoming connection only; anything else (`EMFILE`,
/// `ENFILE`, `ENOBUFS`, `ENOMEM`) means the process is out of a resource.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection's handle and its place in the server: removes the connection from the
/// registry and gives its address's count back when its task ends, however it ends, and only
/// then (after the `disconnected` callback) its place under the connection limit.
struct Registration {
    inner: Arc<ServerInner>,
    handle: ConnectionHandle,
}

impl Registration {
    fn release(&self) {
        if self.handle.first_release() {
            self.inner.registry().remove(&self.handle.id());
            self.inner.release(self.handle.peer().ip());
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
        self.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A newly accepted connection's parts, made before its task runs: its handle and place in
/// the server, its transport, and its outbox's receiving end.
struct Accepted {
    registration: Registration,
    transport: Option<Transport>,
    queue: connection::OutboxReceiver,
}

impl Accepted {
    fn new(inner: Arc<ServerInner>, stream: TcpStream, peer: SocketAddr) -> Self {
        // Small frames must not wait for Nagle; our writer batches instead.
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let local = stream.local_addr().unwrap_or(inner.local_addr);
        let id = ConnectionId::new(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (outbox, queue) = connection::outbox(inner.outbox_bytes);
        let handle = ConnectionHandle::new(
            id,
            peer,
            local,
            outbox,
            inner.link.codec.clone(),
            // No parent: `shutdown` closes every registered connection itself, and one
            // registered as it began closes itself (below).
            None,
            inner.link.correlation.as_ref(),
        );
        Self {
            registration: Registration { inner, handle },
            transport: Some(Transport::Plain(stream)),
            queue,
        }
    }

    /// The handler `make` makes for this connection; `None` if `make` panicked (logged): the
    /// connection is then closed and its places given back as `self` drops.
    fn handler<H>(&self, make: &mut impl FnMut(&ConnectionHandle) -> H) -> Option<H> {
        let handle = &self.registration.handle;
        let made = std::panic::catch_unwind(AssertUnwindSafe(|| make(handle)));
        if made.is_err() {
            warn!(
                conn = %handle.id(),
                peer = %handle.peer(),
                "closing a connection: making its handler panicked"
            );
        }
        made.ok()
    }
}

/// A connection's task. Its parts are made before it runs ([`Accepted`]), and the `async
/// move` block uses each in place: a block keeps every capture for its whole life, moved from
/// or not, and an `async fn` would keep a second copy of each argument. What an idle
/// connection costs is mostly this future, the handler included.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep a second copy of each argument in the task"
)]
fn run_connection<P: Protocol, H: Handler<P>>(
    accepted: Accepted,
    handler: H,
) -> impl Future<Output = ()> {
    let Accepted {
        registration,
        mut transport,
        mut queue,
    } = accepted;
    async move {
        // Used in place through `registration`, and `id` and `peer` through the handle: a
        // capture or a reference held across an await would cost every connection its room.
        let ended = {
            // Scoped, and the transport used in place: the task keeps room only for what an
            // await needs.
            let reason = 'opened: {
                // TLS first: a connection that fails it is never registered nor reported
                // connected, only disconnected, with the reason.
                #[cfg(feature = "tls")]
                if let Err(reason) = Box::pin(crate::tls::accept(
                    &mut transport,
                    registration.inner.tls.as_ref(),
                    &registration.handle,
                    &registration.inner.shutdown,
                ))
                .await
                {
                    break 'opened reason;
                }
                let Some(transport) = transport.as_mut() else {
                    break 'opened DisconnectReason::Closed;
                };
                registration
                    .inner
                    .registry()
                    .insert(registration.handle.id(), registration.handle.clone());
                if registration.inner.shutdown.is_cancelled() {
                    // Accepted just before the shutdown began: it closes with the others'
                    // reason.
                    registration.handle.close_with(DisconnectReason::Shutdown);
                }
                let handle = &registration.handle;
                info!(conn = %handle.id(), peer = %handle.peer(), "connected");
                transport
                    .drive::<P, H>(
                        &registration.handle,
                        &mut queue,
                        &handler,
                        &registration.inner.link,
                        || {},
                    )
                    .await
            };
            registration.handle.mark_disconnected();
            let outbox = registration.handle.outbox();
            queue.close(outbox);
            let unsent = queue.unsent(outbox);
            registration.handle.set_unsent_frames(unsent);
            registration
                .inner
                .unsent
                .fetch_add(unsent, Ordering::Relaxed);
            registration.release();
            log_disconnect(&registration.handle, &reason, unsent);
            // Boxed: run once, at the end; its state is not carried for the connection's life.
            Box::pin(disconnected(&registration, &handler, reason))
        };
        ended.await;
        // The place under the connection limit is given back as `registration` drops, after
        // the callback.
    }
}

/// Calls the `disconnected` callback. An application that stopped reading its event stream
/// must not hold the shutdown past its deadline: the callback is abandoned when the deadline
/// forces the end.
async fn disconnected<P: Protocol, H: Handler<P>>(
    registration: &Registration,
    handler: &H,
    reason: DisconnectReason,
) {
    let handle = &registration.handle;
    let called = AssertUnwindSafe(handler.disconnected(handle, &reason)).catch_unwind();
    tokio::select! {
        called = called => {
            if called.is_err() {
                warn!(conn = %handle.id(), peer = %handle.peer(), "disconnected handler panicked");
            }
        }
        () = registration.inner.force.cancelled() => {
            debug!(
                conn = %handle.id(),
                peer = %handle.peer(),
                "disconnected callback abandoned at the shutdown deadline"
            );
        }
    }
}

pub(crate) fn log_disconnect(handle: &ConnectionHandle, reason: &DisconnectReason, unsent: usize) {
    let id = handle.id();
    let peer = handle.peer();
    let detail = crate::error_chain(reason);
    match reason {
        DisconnectReason::PeerClosed | DisconnectReason::Closed | DisconnectReason::Shutdown => {
            info!(conn = %id, %peer, reason = %detail, unsent, "disconnected");
        }
        _ => warn!(conn = %id, %peer, reason = %detail, unsent, "disconnected"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};

    use super::{Accepted, address_group, run_connection};
    use crate::{ConnectionHandle, Handler, HeaderFields, HeaderLayout, Server, Unknown};

    struct Quiet;

    impl Handler<Unknown> for Quiet {
        async fn message(&self, _conn: &ConnectionHandle, _msg: Unknown, _fields: HeaderFields) {}
    }

    /// A handler per connection of the largest size `serve_each` says costs nothing more.
    struct Own([u64; 6]);

    impl Handler<Unknown> for Own {
        async fn message(&self, _conn: &ConnectionHandle, _msg: Unknown, _fields: HeaderFields) {
            let _ = self.0;
        }
    }

    /// What an idle connection costs is mostly its task: tokio rounds a task's cell up to 128
    /// bytes, and a future of up to 400 bytes (with the task tracker's token) keeps it at 512
    /// (1.49 KB per idle connection in all, against 1.61 KB at 640). The handler's futures are
    /// boxed, so only the handler itself counts: the `Arc` of `serve`, or the handler of
    /// `serve_each`, up to 48 bytes.
    #[tokio::test]
    async fn a_connection_task_fits_a_512_byte_cell() {
        let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _clients = (
            TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap(),
            TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap(),
        );
        let accept = async || {
            let (stream, peer) = listener.accept().await.unwrap();
            server.inner.admit_connection(peer.ip()).unwrap();
            Accepted::new(server.inner.clone(), stream, peer)
        };
        let shared = run_connection::<Unknown, _>(accept().await, Arc::new(Quiet));
        let own = run_connection::<Unknown, _>(accept().await, Own([0; 6]));
        for (size, what) in [
            (size_of_val(&shared), "with a shared handler"),
            (size_of_val(&own), "with a 48-byte handler of its own"),
        ] {
            assert!(
                size <= 400,
                "a connection's future {what} is {size} bytes: \
                 over 400, its task no longer fits a 512-byte cell"
            );
        }
    }

    fn group(ip: &str, prefix: u8) -> String {
        address_group(ip.parse::<IpAddr>().unwrap(), prefix).to_string()
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_prefix() {
        // One host's /64: every address in it is one group.
        assert_eq!(group("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(group("2001:db8:1:2:ffff:1:2:3", 64), "2001:db8:1:2::");
        assert_ne!(group("2001:db8:1:3::1", 64), group("2001:db8:1:2::1", 64));
        assert_eq!(group("2001:db8:1:2ff::1", 56), "2001:db8:1:200::");
        assert_eq!(group("2001:db8::1", 128), "2001:db8::1");
        assert_eq!(group("2001:db8::1", 0), "::");
    }

    #[test]
    fn ipv4_addresses_count_alone_even_when_mapped() {
        assert_eq!(group("192.0.2.7", 64), "192.0.2.7");
        assert_eq!(group("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_ne!(group("192.0.2.7", 0), group("192.0.2.8", 0));
    }
}
