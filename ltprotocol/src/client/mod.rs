//! [`ReconnectingClient`]: a client that connects in the background, reconnects with
//! [`Backoff`] when the connection is lost, and queues what is sent while disconnected.
//!
//! It is an actor: the handle is a cheap clone; one task owns the socket, the queue of
//! unsent frames, the backoff state and the reconnect loop.

mod backoff;

use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use self::backoff::Backoff;
use self::backoff::Jitter;
use crate::codec::FrameCodec;
use crate::connection::{
    self, ConnectionHandle, ConnectionId, DisconnectReason, LinkConfig, Outbox, OutboxReceiver,
    SendError,
};
use crate::event::{self, EventStream, Handler};
use crate::frame::{Frame, HeaderFields};
use crate::layout::HeaderLayout;
use crate::protocol::{Encode, Protocol};
#[cfg(not(feature = "tls"))]
use crate::transport::Transport;

/// Default [`ClientBuilder::queue_capacity`]: 1 MiB of encoded frames.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;
/// Default [`ClientBuilder::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The id a closed client reports in [`SendError::Closed`].
const CLIENT_ID: ConnectionId = ConnectionId::new(0);

/// Configures a [`ReconnectingClient`].
///
/// ```
/// use std::time::Duration;
/// use ltprotocol::{Backoff, HeaderLayout, ReconnectingClient, Unknown};
/// let builder = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol())
///     .backoff(Backoff { max: Duration::from_secs(10), ..Backoff::default() })
///     .queue_capacity(64 * 1024)
///     .clone();
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder<P> {
    backoff: Backoff,
    queue_bytes: usize,
    connect_timeout: Duration,
    event_capacity: usize,
    link: LinkConfig,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ClientTls>,
    #[cfg(feature = "tls")]
    tls_timeout: Duration,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> ClientBuilder<P> {
    fn new(layout: HeaderLayout) -> Self {
        Self {
            backoff: Backoff::default(),
            queue_bytes: DEFAULT_QUEUE_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            event_capacity: crate::server::DEFAULT_EVENT_CAPACITY,
            link: LinkConfig {
                queue_outlives_connection: true,
                ..LinkConfig::new(FrameCodec::new(layout))
            },
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_timeout: crate::tls::DEFAULT_TLS_TIMEOUT,
            _protocol: PhantomData,
        }
    }

    connection::link_setters!();

    /// Speaks TLS (presenting a client certificate if `tls` has one) instead of plain TCP.
    /// Default: plain TCP. Feature `tls`.
    ///
    /// Every attempt, the first and each reconnect, runs a fresh TLS handshake after the TCP
    /// connect and before the [`handshake`](Self::handshake) hook, bounded by
    /// [`tls_timeout`](Self::tls_timeout). A failure is a failed attempt: reported through
    /// `connect_failed` (or [`Event::ConnectFailed`](crate::Event::ConnectFailed)) with the
    /// reason ([`TlsError`](crate::tls::TlsError)), never as `connected`, and retried after
    /// the backoff. See [`tls`](crate::tls) for an example.
    #[cfg(feature = "tls")]
    pub fn tls(&mut self, tls: crate::tls::ClientTls) -> &mut Self {
        self.tls = Some(tls);
        self
    }

    /// Bounds each TLS handshake; past it the attempt fails with
    /// [`TlsError::TimedOut`](crate::tls::TlsError::TimedOut). Default: 10 s. Feature `tls`.
    ///
    /// ```
    /// # use ltprotocol::{HeaderLayout, ReconnectingClient, Unknown};
    /// let mut builder = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol());
    /// builder.tls_timeout(std::time::Duration::from_secs(5));
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.tls_timeout = timeout;
        self
    }

    /// The reconnect policy. Default: [`Backoff::default`].
    pub fn backoff(&mut self, backoff: Backoff) -> &mut Self {
        self.backoff = backoff;
        self
    }

    /// The bytes of encoded frames the client holds for sending, connected or not. Past it,
    /// [`ReconnectingClient::send`] fails with [`SendError::QueueFull`] and
    /// [`ReconnectingClient::send_wait`] waits. Default: 1 MiB.
    pub fn queue_capacity(&mut self, bytes: usize) -> &mut Self {
        self.queue_bytes = bytes;
        self
    }

    /// How long one connection attempt (resolving and TCP connect) may take. Default: 10 s.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many events the stream from [`connect`](Self::connect) buffers before the
    /// connection stops reading. Default: 1,024.
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Self {
        self.event_capacity = capacity;
        self
    }

    /// Starts connecting to `addr` (`host:port`; names are resolved on every attempt) in the
    /// background and returns at once, with the stream of events.
    ///
    /// Must be called within a tokio runtime.
    pub fn connect(&self, addr: impl Into<String>) -> (ReconnectingClient<P>, EventStream<P>) {
        let (handler, events) = event::channel(self.event_capacity);
        (self.connect_with_handler(addr, handler), events)
    }

    /// Starts connecting to `addr` in the background, running `handler`'s callbacks, and
    /// returns at once.
    ///
    /// Must be called within a tokio runtime.
    pub fn connect_with_handler<H: Handler<P>>(
        &self,
        addr: impl Into<String>,
        handler: H,
    ) -> ReconnectingClient<P> {
        let codec = (*self.link.codec).clone();
        let (outbox, queue) = connection::outbox(self.queue_bytes);
        let (connected_tx, connected_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            outbox: outbox.clone(),
            codec,
            close: CancellationToken::new(),
            abort: CancellationToken::new(),
            connected: connected_rx,
            task: Mutex::new(None),
        });
        let actor = Actor {
            addr: addr.into(),
            backoff: self.backoff.clone(),
            jitter: Jitter::from_clock(),
            connect_timeout: self.connect_timeout,
            link: self.link.clone(),
            #[cfg(feature = "tls")]
            tls: self
                .tls
                .as_ref()
                .map(|tls| crate::tls::Connector::new(tls, self.tls_timeout)),
            outbox,
            queue,
            close: shared.close.clone(),
            abort: shared.abort.clone(),
            connected: connected_tx,
            next_id: AtomicU64::new(1),
        };
        let task = tokio::spawn(actor.run(handler));
        *shared.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        ReconnectingClient {
            shared,
            _protocol: PhantomData,
        }
    }
}

/// What [`ReconnectingClient::close`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CloseReport {
    /// Frames accepted by `send` that were never written to a socket (never connected
    /// again before the deadline, or cut off by it). Frames handed to the kernel count as
    /// written.
    pub unsent_frames: usize,
    /// Whether the client stopped by itself within the deadline.
    pub graceful: bool,
}

#[derive(Debug)]
struct Shared {
    outbox: Outbox,
    codec: FrameCodec,
    close: CancellationToken,
    abort: CancellationToken,
    connected: watch::Receiver<Option<ConnectionHandle>>,
    task: Mutex<Option<JoinHandle<usize>>>,
}

/// A client that connects in the background and reconnects by itself, with [`Backoff`];
/// the ancestor's `LTTwistedClient` (a Twisted `ReconnectingClientFactory`).
///
/// Messages sent while disconnected are queued (up to
/// [`ClientBuilder::queue_capacity`]) and written in order right after the next connection
/// is made; each connection starts with a fresh decoder, so a frame cut by a disconnect
/// never leaks into the next connection. Frames taken from the queue but not confirmed
/// written when a connection broke are written again first on the next one. TCP has no
/// application-level acknowledgement: a frame handed whole to the kernel counts as sent,
/// yet dies with a crashed peer.
///
/// ```
/// use std::time::Duration;
/// use ltprotocol::{Event, HeaderLayout, ReconnectingClient, Server, Unknown, MessageType};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
/// let mut server_events = server.events();
///
/// let (client, _client_events) = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol())
///     .connect(server.local_addr().to_string());
/// // Queued until connected, then written.
/// client.send(&Unknown { message_type: MessageType::new(1), body: "hi".into() }).await?;
///
/// loop {
///     if let Some(Event::Message { message, .. }) = server_events.next().await {
///         assert_eq!(&message.body[..], b"hi");
///         break;
///     }
/// }
/// let report = client.close(Duration::from_secs(5)).await;
/// assert_eq!(report.unsent_frames, 0);
/// server.shutdown(Duration::from_secs(5)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ReconnectingClient<P> {
    shared: Arc<Shared>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P> Clone for ReconnectingClient<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _protocol: PhantomData,
        }
    }
}

impl<P: Protocol> ReconnectingClient<P> {
    /// A builder for a client speaking `layout`.
    pub fn builder(layout: HeaderLayout) -> ClientBuilder<P> {
        ClientBuilder::new(layout)
    }

    /// Queues `msg` for sending (now, or after the next connection is made).
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] when the queue is full (use [`send_wait`](Self::send_wait)
    /// to wait instead); [`SendError::Closed`] after [`close`](Self::close) or once the
    /// client gave up; [`SendError::Encode`] when the message cannot be framed.
    pub async fn send<M: Encode + ?Sized>(&self, msg: &M) -> Result<(), SendError> {
        self.send_with(msg, &HeaderFields::new()).await
    }

    /// Like [`send`](Self::send), with extra header fields.
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
        self.check_open()?;
        self.shared.outbox.try_send(frame, CLIENT_ID)
    }

    /// Queues `msg`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] after [`close`](Self::close) or once the client gave up;
    /// [`SendError::Encode`] when the message cannot be framed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, the message was not queued.
    pub async fn send_wait<M: Encode + ?Sized>(&self, msg: &M) -> Result<(), SendError> {
        self.send_wait_with(msg, &HeaderFields::new()).await
    }

    /// Like [`send_wait`](Self::send_wait), with extra header fields.
    ///
    /// # Errors
    ///
    /// As [`send_wait`](Self::send_wait).
    pub async fn send_wait_with<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<(), SendError> {
        let frame = self.encode(msg, fields)?;
        self.check_open()?;
        self.shared.outbox.send(frame, CLIENT_ID).await
    }

    /// Queues a raw frame with its own header fields, without waiting.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_frame(&self, frame: &Frame) -> Result<(), SendError> {
        self.send_with(frame, &frame.fields).await
    }

    fn encode<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<bytes::Bytes, SendError> {
        Ok(self.shared.codec.encode_to_bytes(msg, fields)?)
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.shared.close.is_cancelled() || self.shared.outbox.is_closed() {
            Err(SendError::Closed { id: CLIENT_ID })
        } else {
            Ok(())
        }
    }

    /// The current connection, if connected.
    pub fn connection(&self) -> Option<ConnectionHandle> {
        self.shared.connected.borrow().clone()
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.borrow().is_some()
    }

    /// Waits until a connection is up and returns it; `None` if the client stops first
    /// (closed, or gave up).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_connected(&self) -> Option<ConnectionHandle> {
        let mut connected = self.shared.connected.clone();
        let result = connected.wait_for(Option::is_some).await;
        result.ok().and_then(|c| c.clone())
    }

    /// Stops the client: no more sends are accepted; what is queued is written (connecting
    /// again if need be), our side is closed, and the call returns when the server has closed
    /// its side, or at `deadline`, when the client stops at once and reports what it could
    /// not send.
    pub async fn close(&self, deadline: Duration) -> CloseReport {
        self.shared.close.cancel();
        // The connection looks at this token when woken: wake it.
        self.shared.outbox.wake();
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return CloseReport {
                unsent_frames: 0,
                graceful: true,
            };
        };
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(joined) => CloseReport {
                unsent_frames: joined.unwrap_or(0),
                graceful: true,
            },
            Err(_) => {
                self.shared.abort.cancel();
                CloseReport {
                    unsent_frames: task.await.unwrap_or(0),
                    graceful: false,
                }
            }
        }
    }
}

/// The task behind a [`ReconnectingClient`].
struct Actor {
    addr: String,
    backoff: Backoff,
    jitter: Jitter,
    connect_timeout: Duration,
    link: LinkConfig,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Connector>,
    outbox: Outbox,
    queue: OutboxReceiver,
    close: CancellationToken,
    abort: CancellationToken,
    connected: watch::Sender<Option<ConnectionHandle>>,
    next_id: AtomicU64,
}

impl Actor {
    /// Returns how many frames were left unsent.
    async fn run<P: Protocol, H: Handler<P>>(mut self, handler: H) -> usize {
        let mut failures: u32 = 0;
        loop {
            if self.close.is_cancelled() && self.queue.unsent(&self.outbox) == 0 {
                break;
            }
            let attempt = failures + 1;
            if call_or_abort(&self.abort, handler.connecting(attempt))
                .await
                .is_err()
            {
                warn!(addr = %self.addr, "connecting handler panicked");
            }
            debug!(addr = %self.addr, attempt, "connecting");
            let connected = tokio::select! {
                () = self.abort.cancelled() => break,
                connected = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr.as_str())) => connected,
            };
            let error = match connected {
                Ok(Ok(stream)) => {
                    let (lasted, reason) = self.run_connection::<P, H>(stream, &handler).await;
                    if self.abort.is_cancelled() {
                        break;
                    }
                    if self.close.is_cancelled() && self.queue.unsent(&self.outbox) == 0 {
                        break;
                    }
                    if lasted {
                        // A lasting connection was lost: start the sequence again, but never
                        // reconnect faster than its first (jittered) wait, whatever the
                        // connection did, so a server that accepts and closes at once is
                        // not hammered.
                        failures = 0;
                        let wait = self.backoff.reconnect_delay(self.jitter.next_unit());
                        debug!(addr = %self.addr, wait_ms = wait.as_millis() as u64, "reconnecting after a lasting connection");
                        if self
                            .wait_before_retry(Instant::now() + wait)
                            .await
                            .is_break()
                        {
                            break;
                        }
                        continue;
                    }
                    io::Error::other(crate::error_chain(&reason))
                }
                Ok(Err(err)) => err,
                Err(_) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {:?}", self.connect_timeout),
                ),
            };
            failures = failures.saturating_add(1);
            let retry_in = self.backoff.delay(failures, self.jitter.next_unit());
            warn!(addr = %self.addr, attempt, error = %error, retry_in_ms = retry_in.map(|d| d.as_millis() as u64), "connect failed");
            if call_or_abort(
                &self.abort,
                handler.connect_failed(attempt, &error, retry_in),
            )
            .await
            .is_err()
            {
                warn!(addr = %self.addr, "connect_failed handler panicked");
            }
            let Some(wait) = retry_in else {
                warn!(addr = %self.addr, failures, "giving up");
                break;
            };
            if self
                .wait_before_retry(Instant::now() + wait)
                .await
                .is_break()
            {
                break;
            }
        }
        self.queue.close(&self.outbox);
        let unsent = self.queue.unsent(&self.outbox);
        if unsent > 0 {
            warn!(addr = %self.addr, unsent, "client stopped with frames unsent");
        }
        unsent
    }

    /// Waits until `until` before the next attempt. Breaks when the client is aborted, or
    /// closed while nothing waits to be sent (frames queued during the wait still need the
    /// next connection, so a close with frames waiting keeps to the wait).
    async fn wait_before_retry(&self, until: Instant) -> ControlFlow<()> {
        tokio::select! {
            () = self.abort.cancelled() => ControlFlow::Break(()),
            () = self.close.cancelled() => {
                if self.queue.unsent(&self.outbox) == 0 {
                    return ControlFlow::Break(());
                }
                tokio::select! {
                    () = self.abort.cancelled() => ControlFlow::Break(()),
                    () = tokio::time::sleep_until(until) => ControlFlow::Continue(()),
                }
            }
            () = tokio::time::sleep_until(until) => ControlFlow::Continue(()),
        }
    }

    /// Runs one connection; returns whether it lasted (reset the backoff) and why it ended.
    async fn run_connection<P: Protocol, H: Handler<P>>(
        &mut self,
        stream: TcpStream,
        handler: &H,
    ) -> (bool, DisconnectReason) {
        if let Err(err) = stream.set_nodelay(true) {
            debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let peer = stream.peer_addr().unwrap_or(unspecified);
        let local = stream.local_addr().unwrap_or(unspecified);
        let id = ConnectionId::new(self.next_id.fetch_add(1, Ordering::Relaxed));
        let abort = self.abort.clone();
        let handle = ConnectionHandle::new(
            id,
            peer,
            local,
            self.outbox.clone(),
            self.link.codec.clone(),
            // Closing the client closes this connection gracefully.
            Some(self.close.clone()),
            self.link.correlation.as_ref(),
        );
        // A failed TLS handshake is a failed attempt, like a refused connect: no events.
        #[cfg(feature = "tls")]
        let mut transport =
            match crate::tls::connect(stream, self.tls.as_ref(), &self.addr, &handle, &abort).await
            {
                Ok(transport) => transport,
                Err(reason) => return (false, reason),
            };
        #[cfg(not(feature = "tls"))]
        let mut transport = Transport::Plain(stream);
        info!(conn = %id, %peer, "connected");
        let started = Instant::now();
        let connected = &self.connected;
        let drive = transport.drive::<P, H>(&handle, &mut self.queue, handler, &self.link, || {
            connected.send_replace(Some(handle.clone()));
        });
        let reason = tokio::select! {
            reason = drive => reason,
            () = abort.cancelled() => DisconnectReason::Shutdown,
        };
        let handshake_failed = matches!(
            reason,
            DisconnectReason::Handshake(_)
                | DisconnectReason::TimedOut {
                    kind: crate::TimeoutKind::Handshake,
                    ..
                }
        );
        handle.mark_disconnected();
        self.connected.send_replace(None);
        // Kept for the next connection, which writes them first.
        let unsent = self.queue.unsent(&self.outbox);
        handle.set_unsent_frames(unsent);
        crate::server::log_disconnect(&handle, &reason, unsent);
        if call_or_abort(&self.abort, handler.disconnected(&handle, &reason))
            .await
            .is_err()
        {
            warn!(conn = %id, %peer, "disconnected handler panicked");
        }
        // A failed handshake is a failed attempt, however long it took; a connection that
        // delivered a message but ended before `reset_after` did not last either (a server
        // that accepts, says "busy" and closes must see the waits grow).
        let lasted = !handshake_failed && started.elapsed() >= self.backoff.reset_after;
        (lasted, reason)
    }
}

/// Like [`call`], abandoned when `abort` is cancelled: `close` past its deadline must not
/// wait for an application that stopped reading its event stream.
async fn call_or_abort<F: std::future::Future<Output = ()>>(
    abort: &CancellationToken,
    fut: F,
) -> Result<(), ()> {
    tokio::select! {
        called = call(fut) => called,
        () = abort.cancelled() => Ok(()),
    }
}

/// Runs a handler callback, catching a panic so that it ends one connection, not the client.
async fn call<F: std::future::Future<Output = ()>>(fut: F) -> Result<(), ()> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(|_| ())
}
