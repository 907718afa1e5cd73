//! [`Server`]: accepts any number of clients, one task each; broadcast, send to one, the
//! list of live connections, connection limits and graceful shutdown.
//!
//! * `mod.rs`: [`Server`], what the application calls;
//! * `builder`: [`ServerBuilder`], the server's settings and where it listens;
//! * `limits`: the connection and per-address limits, and each connection's place in the
//!   server;
//! * `accept`: the accept loop and each connection's task.

mod accept;
mod builder;
mod limits;

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use self::limits::Limits;
use crate::codec::{EncodeError, EncodedFrame, FrameCodec};
use crate::connection::{
    ConnectionHandle, ConnectionId, ConnectionOptions, DisconnectReason, SendError,
};
use crate::frame::HeaderFields;
use crate::handler::{self, EventStream, Handler};
use crate::layout::HeaderLayout;
use crate::protocol::{Encode, Protocol};
use crate::transport::{Addr, BoxListener};

pub(crate) use self::accept::log_disconnect;
pub use self::builder::{DEFAULT_IPV6_PREFIX, DEFAULT_MAX_CONNECTIONS, ServerBuilder, ServerSide};
pub use crate::connection::{DEFAULT_EVENT_CAPACITY, DEFAULT_LINGER, DEFAULT_OUTBOX_BYTES};

#[derive(Debug)]
struct ServerInner {
    local_addr: Addr,
    listener: Mutex<Option<BoxListener>>,
    /// The Unix socket file to remove at shutdown, if `bind_unix` made one.
    socket_file: Mutex<Option<PathBuf>>,
    registry: Mutex<HashMap<ConnectionId, ConnectionHandle>>,
    next_id: AtomicU64,
    options: ConnectionOptions,
    /// The codec every connection's handle encodes with.
    codec: Arc<FrameCodec>,
    limits: Limits,
    shutdown: CancellationToken,
    /// Cancelled once the listener is closed (the accept loop ended, or nobody served).
    accept_stopped: CancellationToken,
    /// Cancelled when the shutdown deadline passes: callbacks still running are abandoned.
    force: CancellationToken,
    tracker: TaskTracker,
    accept_errors: AtomicU64,
    unsent: AtomicUsize,
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::tls_stream::Acceptor>,
}

impl ServerInner {
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
/// let mut client = tokio::net::TcpStream::connect(server.local_addr().to_string()).await?;
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
        ServerBuilder::server(layout)
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> Addr {
        self.inner.local_addr.clone()
    }

    /// The layout, and the frame limits in force.
    pub fn codec(&self) -> &FrameCodec {
        &self.inner.codec
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
    /// idle or not: a handler of up to 48 bytes costs nothing more (the task stays in a
    /// 512-byte cell); put what is shared behind an `Arc`, and what is large in a `Box`. Its
    /// fields that change are atomics or behind a lock (a handler is `Sync`); only this
    /// connection's task calls it, so a relaxed load and store is enough for a counter.
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
    /// use ltprotocol::{ConnectionHandle, Handler, HeaderFields, Server};
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
    ///     async fn message(&self, conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
    ///         let Demo::Num(_) = msg else {
    ///             return;
    ///         };
    ///         let seen = self.seen.load(Ordering::Relaxed) + 1;
    ///         self.seen.store(seen, Ordering::Relaxed);
    ///         let _ = conn.send(&Demo::Num(NumMsg { num: seen })).await;
    ///     }
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
    ///     tokio::net::TcpStream::connect(server.local_addr().to_string()).await?,
    ///     tokio::net::TcpStream::connect(server.local_addr().to_string()).await?,
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
    pub async fn serve_each<H, F>(&self, make: F) -> io::Result<()>
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
        accept::accept_loop::<P, H, F>(&self.inner, listener, make).await;
        Ok(())
    }

    /// Starts serving (on a spawned task) and returns the stream of events: the stream style,
    /// equal to [`serve`](Self::serve) with a handler. The stream ends after shutdown.
    ///
    /// Must be called within a tokio runtime. Calling it twice, or after `serve`, gives a
    /// stream that ends at once (the listener is already taken); the error is logged.
    pub fn events(&self) -> EventStream<P> {
        let (handler, stream) = handler::channel(self.inner.options.event_capacity);
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
        self.inner.codec.encode_once(msg, fields)
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

    /// How many connections were refused because of [`ServerBuilder::max_connections`] or
    /// [`ServerBuilder::max_connections_per_ip`].
    pub fn refused(&self) -> u64 {
        self.inner.limits.refused()
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
        // Stop accepting first, so that no client slips in while the others are closed: a
        // client whose connection is closed here and that reconnects at once must find the
        // listener gone, not connect into its backlog and write into a connection nobody
        // will read.
        self.inner.shutdown.cancel();
        let idle_listener = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if idle_listener.is_some() {
            // Nobody is serving: the listener is still here, closed now.
            drop(idle_listener);
            self.inner.accept_stopped.cancel();
        }
        let _ = tokio::time::timeout(deadline, self.inner.accept_stopped.cancelled()).await;
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
        let socket_file = self
            .inner
            .socket_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(path) = socket_file
            && let Err(err) = std::fs::remove_file(&path)
        {
            warn!(path = %path.display(), error = %err, "cannot remove the socket file");
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
