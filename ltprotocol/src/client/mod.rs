//! [`ReconnectingClient`]: a client that connects in the background, reconnects with
//! [`Backoff`] when the connection is lost, and queues what is sent while disconnected.
//!
//! It is an actor: the handle is a cheap clone; one task owns the stream, the queue of
//! unsent frames, the backoff state and the reconnect loop.

mod backoff;

use std::io;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

pub use self::backoff::Backoff;
use self::backoff::Jitter;
use crate::codec::{FrameCodec, NO_FIELDS};
use crate::connection::{
    self, Builder, ConnectionHandle, ConnectionId, ConnectionOptions, DisconnectReason, Outbox,
    OutboxReceiver, SendError,
};
use crate::frame::{Frame, HeaderFields};
use crate::handler::{self, EventStream, Handler};
use crate::layout::HeaderLayout;
use crate::protocol::{Encode, Protocol};
use crate::transport::{BoxStream, Connector, ErasedConnector, Stream, TcpConnector, Transport};

/// Default [`ClientBuilder::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The id a closed client reports in [`SendError::Closed`].
const CLIENT_ID: ConnectionId = ConnectionId::new(0);

/// Configures a [`ReconnectingClient`]: the settings every connection shares are those of
/// [`Builder`]; the client adds its backoff, connect timeout and TLS, and where it connects.
///
/// ```
/// use std::time::Duration;
/// use ltprotocol::{Backoff, HeaderLayout, ReconnectingClient, Unknown};
/// let builder = ReconnectingClient::<Unknown>::builder(HeaderLayout::ltprotocol())
///     .backoff(Backoff { max: Duration::from_secs(10), ..Backoff::default() })
///     .outbox_capacity(64 * 1024)
///     .clone();
/// # let _ = builder;
/// ```
pub type ClientBuilder<P> = Builder<ClientSide<P>>;

/// What only a client has: its backoff, connect timeout and TLS. See [`ClientBuilder`].
#[derive(Debug, Clone)]
pub struct ClientSide<P> {
    backoff: Backoff,
    connect_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ClientTls>,
    _protocol: PhantomData<fn() -> P>,
}

/// Where a [`ReconnectingClient`] connects: `"host:port"` (TCP), or any [`Connector`]
/// ([`UnixConnector`](crate::transport::UnixConnector), [`FnConnector`](crate::transport::FnConnector), one of the
/// application's).
pub trait Target {
    /// The connector for this target.
    type Connector: Connector;

    /// Makes the connector.
    fn into_connector(self) -> Self::Connector;
}

impl Target for String {
    type Connector = TcpConnector;

    fn into_connector(self) -> TcpConnector {
        TcpConnector::new(self)
    }
}

impl Target for &str {
    type Connector = TcpConnector;

    fn into_connector(self) -> TcpConnector {
        TcpConnector::new(self)
    }
}

impl Target for &String {
    type Connector = TcpConnector;

    fn into_connector(self) -> TcpConnector {
        TcpConnector::new(self.as_str())
    }
}

impl<C: Connector> Target for C {
    type Connector = C;

    fn into_connector(self) -> C {
        self
    }
}

impl<P: Protocol> Builder<ClientSide<P>> {
    pub(crate) fn client(layout: HeaderLayout) -> Self {
        let mut builder = Self::with(
            layout,
            ClientSide {
                backoff: Backoff::default(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                #[cfg(feature = "tls")]
                tls: None,
                _protocol: PhantomData,
            },
        );
        builder.options.queue_outlives_connection = true;
        builder
    }

    /// Speaks TLS (presenting a client certificate if `tls` has one) over each connection.
    /// Default: plain. Feature `tls`.
    ///
    /// Every attempt, the first and each reconnect, runs a fresh TLS handshake after the
    /// connect and before the [`handshake`](Builder::handshake) hook, bounded by
    /// [`tls_timeout`](Builder::tls_timeout). A failure is a failed attempt: reported through
    /// `connect_failed` (or [`Event::ConnectFailed`](crate::Event::ConnectFailed)) with the
    /// reason ([`TlsError`](crate::tls::TlsError)), never as `connected`, and retried after
    /// the backoff. See [`tls`](crate::tls) for an example.
    #[cfg(feature = "tls")]
    pub fn tls(&mut self, tls: crate::tls::ClientTls) -> &mut Self {
        self.side.tls = Some(tls);
        self
    }

    /// The reconnect policy. Default: [`Backoff::default`].
    pub fn backoff(&mut self, backoff: Backoff) -> &mut Self {
        self.side.backoff = backoff;
        self
    }

    /// How long one connection attempt (resolving and connecting) may take. Default: 10 s.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.side.connect_timeout = timeout;
        self
    }

    /// Starts connecting to `target` in the background and returns at once, with the stream
    /// of events. `target` is `"host:port"` (TCP; the name is resolved on every attempt) or
    /// any [`Connector`]: a Unix socket's, or the application's own.
    ///
    /// Must be called within a tokio runtime.
    pub fn connect(&self, target: impl Target) -> (ReconnectingClient<P>, EventStream<P>) {
        let (handler, events) = handler::channel(self.options.event_capacity);
        (self.connect_with_handler(target, handler), events)
    }

    /// Starts connecting to `target` in the background, running `handler`'s callbacks, and
    /// returns at once.
    ///
    /// Must be called within a tokio runtime.
    pub fn connect_with_handler<H: Handler<P>>(
        &self,
        target: impl Target,
        handler: H,
    ) -> ReconnectingClient<P> {
        let connector: Box<dyn ErasedConnector> = Box::new(target.into_connector());
        let (outbox, queue) = connection::outbox(self.options.outbox_bytes);
        let (connected_tx, connected_rx) = watch::channel(None);
        let codec = Arc::new(self.options.codec.clone());
        let shared = Arc::new(Shared {
            outbox: outbox.clone(),
            codec: codec.clone(),
            close: CancellationToken::new(),
            abort: CancellationToken::new(),
            connected: connected_rx,
            task: Mutex::new(None),
        });
        let span = info_span!("client", target = %connector.target());
        let actor = Actor {
            target: connector.target(),
            connector,
            backoff: self.side.backoff.clone(),
            jitter: Jitter::from_clock(),
            connect_timeout: self.side.connect_timeout,
            options: self.options.clone(),
            codec,
            #[cfg(feature = "tls")]
            tls: self.side.tls.as_ref().map(|tls| {
                crate::transport::tls_stream::Connector::new(tls, self.options.tls_timeout)
            }),
            outbox,
            queue,
            close: shared.close.clone(),
            abort: shared.abort.clone(),
            connected: connected_tx,
            next_id: AtomicU64::new(1),
        };
        let task = tokio::spawn(actor.run(handler).instrument(span));
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
    codec: Arc<FrameCodec>,
    close: CancellationToken,
    abort: CancellationToken,
    connected: watch::Receiver<Option<ConnectionHandle>>,
    task: Mutex<Option<JoinHandle<usize>>>,
}

/// A client that connects in the background and reconnects by itself, with [`Backoff`];
/// the ancestor's `LTTwistedClient` (a Twisted `ReconnectingClientFactory`).
///
/// Messages sent while disconnected are queued (up to
/// [`outbox_capacity`](Builder::outbox_capacity)) and written in order right after the next connection
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
        ClientBuilder::client(layout)
    }

    /// Queues `msg` for sending (now, or after the next connection is made), waiting while
    /// the queue is full. With room to spare, the message is encoded straight into the
    /// queue's write batch.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] after [`close`](Self::close) or once the client gave up;
    /// [`SendError::Encode`] when the message cannot be framed.
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

    /// Like [`send`](Self::send), with extra header fields.
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
        let shared = &*self.shared;
        let open = || self.check_open();
        shared
            .outbox
            .send(open, &shared.codec, msg, fields, CLIENT_ID)
    }

    /// Queues a raw frame with its own header fields, waiting while the queue is full.
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

    /// Queues `msg` if the queue has room now; never waits.
    ///
    /// # Errors
    ///
    /// [`SendError::QueueFull`] when the queue is full, and as [`send`](Self::send).
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
        let shared = &*self.shared;
        match shared
            .outbox
            .try_encode(&shared.codec, msg, fields, CLIENT_ID)
        {
            Ok(()) => Ok(()),
            Err(connection::NotQueued::Full(_)) => Err(SendError::QueueFull {
                id: CLIENT_ID,
                capacity: shared.outbox.capacity(),
            }),
            Err(connection::NotQueued::Failed(err)) => Err(err),
        }
    }

    fn check_open(&self) -> Result<(), SendError> {
        // Atomic flags: a cancellation token's state is behind a lock.
        let outbox = &self.shared.outbox;
        if outbox.is_draining() || outbox.is_closed() {
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
        // Refuses further sends; the connection writes what is queued and closes.
        self.shared.outbox.drain();
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
    connector: Box<dyn ErasedConnector>,
    /// Where it connects, for logs.
    target: String,
    backoff: Backoff,
    jitter: Jitter,
    connect_timeout: Duration,
    options: ConnectionOptions,
    codec: Arc<FrameCodec>,
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::tls_stream::Connector>,
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
                warn!(target = %self.target, "connecting handler panicked");
            }
            debug!(target = %self.target, attempt, "connecting");
            let connected = tokio::select! {
                () = self.abort.cancelled() => break,
                connected = tokio::time::timeout(self.connect_timeout, self.connector.connect_boxed()) => connected,
            };
            let error = match connected {
                Ok(Ok((stream, peer))) => {
                    let (lasted, reason) =
                        self.run_connection::<P, H>(stream, peer, &handler).await;
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
                        debug!(target = %self.target, wait_ms = wait.as_millis() as u64, "reconnecting after a lasting connection");
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
            warn!(target = %self.target, attempt, error = %error, retry_in_ms = retry_in.map(|d| d.as_millis() as u64), "connect failed");
            if call_or_abort(
                &self.abort,
                handler.connect_failed(attempt, &error, retry_in),
            )
            .await
            .is_err()
            {
                warn!(target = %self.target, "connect_failed handler panicked");
            }
            let Some(wait) = retry_in else {
                warn!(target = %self.target, failures, "giving up");
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
            warn!(target = %self.target, unsent, "client stopped with frames unsent");
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
        stream: BoxStream,
        peer: crate::transport::Addr,
        handler: &H,
    ) -> (bool, DisconnectReason) {
        let local = stream
            .local_addr()
            .unwrap_or_else(|| crate::transport::Addr::other("local"));
        let id = ConnectionId::new(self.next_id.fetch_add(1, Ordering::Relaxed));
        let abort = self.abort.clone();
        let handle = ConnectionHandle::new(
            id,
            peer.clone(),
            local,
            self.outbox.clone(),
            self.codec.clone(),
            self.options.correlation.as_ref(),
        );
        // A failed TLS handshake is a failed attempt, like a refused connect: no events.
        #[cfg(feature = "tls")]
        let transport = match &self.tls {
            Some(tls) => {
                let host = self.connector.host();
                match crate::transport::tls_stream::connect(stream, tls, host, &handle, &abort)
                    .instrument(handle.span().clone())
                    .await
                {
                    Ok(transport) => transport,
                    Err(reason) => return (false, reason),
                }
            }
            None => Transport::plain(stream),
        };
        #[cfg(not(feature = "tls"))]
        let transport = Transport::plain(stream);
        let transport = Mutex::new(transport.captured(&self.options, &handle, false));
        // What was left unconfirmed by the last connection is written again whole.
        self.queue.restart();
        info!(conn = %id, %peer, "connected");
        let started = Instant::now();
        let connected = &self.connected;
        let reason = {
            let mut drive = std::pin::pin!(connection::drive::<P, H>(
                &transport,
                &handle,
                &mut self.queue,
                handler,
                &self.options,
                || {
                    connected.send_replace(Some(handle.clone()));
                },
            ));
            let in_span = std::future::poll_fn(|cx| {
                connection::poll_in_span(handle.span(), drive.as_mut(), cx)
            });
            tokio::select! {
                reason = in_span => reason,
                () = abort.cancelled() => DisconnectReason::Shutdown,
            }
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
