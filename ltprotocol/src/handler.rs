//! How the application takes what happens on its connections: a [`Handler`] with async
//! callbacks (the ancestor's `recv_callback`, `new_conn_callback` and `lost_conn_callback`),
//! or a stream of [`Event`]s, which is a handler that forwards into a bounded channel. Every
//! received frame reaches either along the one delivery path (see `connection/read.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;

use crate::connection::{ConnectionHandle, DisconnectReason};
use crate::frame::{FrameRef, HeaderFields};
use crate::protocol::Protocol;

/// What [`Handler::inspect`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspected {
    /// Done with: not decoded, not given to [`Handler::message`].
    Consumed,
    /// Decode it and give it to [`Handler::message`].
    Deliver,
}

/// One thing that happened to a server's or client's connections.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<P> {
    /// A connection was made (accepted by a server, or made by a client).
    Connected(ConnectionHandle),
    /// A message arrived.
    Message {
        /// The connection it came on.
        conn: ConnectionHandle,
        /// The decoded message (a variant of the protocol, or its unknown arm).
        message: P,
        /// The frame's extra header fields (empty for layouts without any).
        fields: HeaderFields,
    },
    /// A connection ended.
    Disconnected {
        /// The connection.
        conn: ConnectionHandle,
        /// Why.
        reason: DisconnectReason,
        /// Frames accepted for sending on it that were not written before it ended (see
        /// [`ConnectionHandle::unsent_frames`]): lost on a server, kept by a client for its
        /// next connection.
        unsent_frames: usize,
    },
    /// A client is about to try to connect.
    Connecting {
        /// The attempt's number since the last lasting connection, from 1.
        attempt: u32,
    },
    /// A client's connection attempt failed.
    ConnectFailed {
        /// The attempt's number since the last successful connection, from 1.
        attempt: u32,
        /// Why.
        error: Arc<io::Error>,
        /// When the next attempt is made; `None` when the client gives up.
        retry_in: Option<Duration>,
    },
}

/// Async callbacks for connection events. Only [`message`](Self::message) is required.
///
/// Each received frame may be looked at in place by [`inspect`](Self::inspect), which may
/// keep it; the others are decoded into the protocol's message and given to
/// [`message`](Self::message). A `message` future that finishes without waiting (counting,
/// updating state, a [`try_send`](ConnectionHandle::try_send) reply) is polled where the
/// frame lies and costs no trip back to the connection's task: the plain async handler is
/// the fast way.
///
/// One handler serves every connection ([`Server::serve`](crate::Server::serve)), or each
/// connection has one of its own whose fields are its state
/// ([`Server::serve_each`](crate::Server::serve_each)).
///
/// Callbacks for one connection run in order, on that connection's task: while `message` is
/// running, no further frame is read from that peer (back-pressure). A panic in a callback
/// ends that connection only, with [`DisconnectReason::HandlerPanicked`].
///
/// ```
/// use ltprotocol::{ConnectionHandle, HeaderFields, Handler, HeaderLayout, Server, Unknown};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// struct Echo;
///
/// impl Handler<Unknown> for Echo {
///     async fn message(&self, conn: &ConnectionHandle, msg: Unknown, _fields: &HeaderFields) {
///         let _ = conn.send(&msg).await;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:0").await?;
/// let serving = server.clone();
/// tokio::spawn(async move { serving.serve(Echo).await });
///
/// let mut peer = tokio::net::TcpStream::connect(server.local_addr().to_string()).await?;
/// peer.write_all(b"\x00\x05\x09hi").await?;
/// let mut echoed = [0u8; 5];
/// peer.read_exact(&mut echoed).await?;
/// assert_eq!(&echoed, b"\x00\x05\x09hi");
/// # Ok(())
/// # }
/// ```
pub trait Handler<P: Protocol>: Send + Sync + 'static {
    /// A connection was made; the ancestor's `new_conn_callback`.
    fn connected(&self, conn: &ConnectionHandle) -> impl Future<Output = ()> + Send {
        let _ = conn;
        async {}
    }

    /// Sees each received frame in place, synchronously, before anything is allocated for it
    /// or it is decoded: return [`Inspected::Consumed`] when done with it (it then never
    /// reaches [`message`](Self::message)), [`Inspected::Deliver`] (the default) for the usual
    /// path. The fast path for frames that need no waiting: counting, filtering, sampling.
    /// It sees exactly the frames `message` would: not those that answer a pending
    /// [`request`](ConnectionHandle::request), nor those an auto-reply rule answers. Worth it
    /// to count or drop frames at line rate: a `message` that needs no waiting still costs a
    /// future made, polled and dropped, and a reference count taken and given back for each
    /// body kept as `Bytes`, about four times the in-place cost for small frames
    /// (BENCHMARKS.md has the figures). A message whose fields all copy (integers, arrays) can
    /// also be decoded here, from [`Body::new`](crate::Body::new)`(frame.body)`, at about the
    /// in-place cost.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use ltprotocol::{ConnectionHandle, FrameRef, Handler, HeaderFields, Inspected, Unknown};
    ///
    /// /// Counts telemetry samples (type 7) in place; everything else goes to `message`.
    /// #[derive(Default)]
    /// struct Telemetry {
    ///     samples: AtomicU64,
    /// }
    ///
    /// impl Handler<Unknown> for Telemetry {
    ///     fn inspect(&self, _conn: &ConnectionHandle, frame: FrameRef<'_>) -> Inspected {
    ///         if frame.message_type.value() != 7 {
    ///             return Inspected::Deliver;
    ///         }
    ///         self.samples.fetch_add(1, Ordering::Relaxed);
    ///         Inspected::Consumed
    ///     }
    ///
    ///     async fn message(&self, _conn: &ConnectionHandle, msg: Unknown, _fields: &HeaderFields) {
    ///         println!("type {}", msg.message_type);
    ///     }
    /// }
    /// # let _ = Telemetry::default();
    /// ```
    fn inspect(&self, conn: &ConnectionHandle, frame: FrameRef<'_>) -> Inspected {
        let _ = (conn, frame);
        Inspected::Deliver
    }

    /// A message arrived; the ancestor's `recv_callback`.
    ///
    /// The future is made in place for each message and polled at once; while it waits, no
    /// further frame is read from this peer. Its size is paid per message: a rare path that
    /// holds much state across an `.await` (a broadcast loop, a request to another service)
    /// is best boxed (`Box::pin(…).await`), so that only the messages that take it pay for it.
    /// The sends of [`ConnectionHandle`] encode straight into the outbox and wait (boxed) only
    /// when it is full.
    fn message(
        &self,
        conn: &ConnectionHandle,
        message: P,
        fields: &HeaderFields,
    ) -> impl Future<Output = ()> + Send;

    /// A connection ended; the ancestor's `lost_conn_callback`, with the reason.
    fn disconnected(
        &self,
        conn: &ConnectionHandle,
        reason: &DisconnectReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (conn, reason);
        async {}
    }

    /// A client is about to try to connect (never called on a server).
    fn connecting(&self, attempt: u32) -> impl Future<Output = ()> + Send {
        let _ = attempt;
        async {}
    }

    /// A client's connection attempt failed (never called on a server).
    fn connect_failed(
        &self,
        attempt: u32,
        error: &io::Error,
        retry_in: Option<Duration>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (attempt, error, retry_in);
        async {}
    }
}

/// A shared handler: the application can keep an `Arc` of the state its handler updates.
impl<P: Protocol, H: Handler<P>> Handler<P> for Arc<H> {
    fn connected(&self, conn: &ConnectionHandle) -> impl Future<Output = ()> + Send {
        (**self).connected(conn)
    }

    fn inspect(&self, conn: &ConnectionHandle, frame: FrameRef<'_>) -> Inspected {
        (**self).inspect(conn, frame)
    }

    fn message(
        &self,
        conn: &ConnectionHandle,
        message: P,
        fields: &HeaderFields,
    ) -> impl Future<Output = ()> + Send {
        (**self).message(conn, message, fields)
    }

    fn disconnected(
        &self,
        conn: &ConnectionHandle,
        reason: &DisconnectReason,
    ) -> impl Future<Output = ()> + Send {
        (**self).disconnected(conn, reason)
    }

    fn connecting(&self, attempt: u32) -> impl Future<Output = ()> + Send {
        (**self).connecting(attempt)
    }

    fn connect_failed(
        &self,
        attempt: u32,
        error: &io::Error,
        retry_in: Option<Duration>,
    ) -> impl Future<Output = ()> + Send {
        (**self).connect_failed(attempt, error, retry_in)
    }
}

/// A stream of [`Event`]s, from [`Server::events`](crate::Server::events) or
/// [`ClientBuilder::connect`](crate::ClientBuilder::connect).
///
/// Bounded: when the application stops taking events, the connections stop reading (and so
/// their peers are slowed by TCP) instead of memory growing.
#[derive(Debug)]
pub struct EventStream<P> {
    rx: mpsc::Receiver<Event<P>>,
}

impl<P> EventStream<P> {
    /// The next event; `None` once the server or client is shut down and every event was
    /// taken.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no event is lost if the future is dropped.
    pub async fn next(&mut self) -> Option<Event<P>> {
        self.rx.recv().await
    }
}

impl<P> Stream for EventStream<P> {
    type Item = Event<P>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<P>>> {
        self.rx.poll_recv(cx)
    }
}

/// The handler behind an [`EventStream`]: forwards every callback into a bounded channel.
#[derive(Debug)]
pub(crate) struct ChannelHandler<P> {
    tx: mpsc::Sender<Event<P>>,
}

pub(crate) fn channel<P>(capacity: usize) -> (ChannelHandler<P>, EventStream<P>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ChannelHandler { tx }, EventStream { rx })
}

impl<P: Protocol> Handler<P> for ChannelHandler<P> {
    async fn connected(&self, conn: &ConnectionHandle) {
        // A dropped stream means nobody listens: the event has nowhere to go.
        let _ = self.tx.send(Event::Connected(conn.clone())).await;
    }

    async fn message(&self, conn: &ConnectionHandle, message: P, fields: &HeaderFields) {
        let event = Event::Message {
            conn: conn.clone(),
            message,
            fields: fields.clone(),
        };
        let _ = self.tx.send(event).await;
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        let event = Event::Disconnected {
            conn: conn.clone(),
            reason: reason.clone(),
            unsent_frames: conn.unsent_frames(),
        };
        let _ = self.tx.send(event).await;
    }

    async fn connecting(&self, attempt: u32) {
        let _ = self.tx.send(Event::Connecting { attempt }).await;
    }

    async fn connect_failed(&self, attempt: u32, error: &io::Error, retry_in: Option<Duration>) {
        let event = Event::ConnectFailed {
            attempt,
            error: Arc::new(io::Error::new(error.kind(), error.to_string())),
            retry_in,
        };
        let _ = self.tx.send(event).await;
    }
}
