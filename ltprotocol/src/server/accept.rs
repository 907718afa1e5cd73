//! The accept loop, and the task that runs each accepted connection.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tracing::{debug, info, warn};

use super::ServerInner;
use super::limits::Registration;
use crate::connection::{self, ConnectionHandle, ConnectionId, DisconnectReason};
use crate::handler::Handler;
use crate::protocol::Protocol;
use crate::transport::{Addr, BoxListener, BoxStream, Stream, Transport};

/// Accepts connections until the server shuts down, each on a task of its own with the
/// handler `make` makes for it.
pub(super) async fn accept_loop<P, H, F>(
    inner: &Arc<ServerInner>,
    mut listener: BoxListener,
    mut make: F,
) where
    P: Protocol,
    H: Handler<P>,
    F: FnMut(&ConnectionHandle) -> H + Send,
{
    let mut pause = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = inner.shutdown.cancelled() => break,
            accepted = listener.accept_boxed() => accepted,
        };
        match accepted {
            Ok((stream, peer)) if inner.shutdown.is_cancelled() => {
                debug!(%peer, "closing a connection accepted as shutdown began");
                drop(stream);
                break;
            }
            Ok((stream, peer)) => {
                pause = Duration::from_millis(10);
                if let Err((limit, max)) = inner.limits.admit(&peer) {
                    warn!(%peer, max, "refusing connection: {limit} limit reached");
                    drop(stream);
                    continue;
                }
                let accepted = Accepted::new(inner.clone(), stream, peer);
                if let Some(handler) = accepted.handler(&mut make) {
                    inner
                        .tracker
                        .spawn(run_connection::<P, H>(accepted, handler));
                }
            }
            Err(err) if is_per_connection(&err) => {
                debug!(error = %err, "accept: connection failed before it was accepted");
            }
            Err(err) => {
                inner.accept_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %err, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                tokio::select! {
                    () = inner.shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    inner.accept_stopped.cancel();
    info!(local_addr = %inner.local_addr, "stopped accepting");
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

/// A newly accepted connection's parts, made before its task runs: its handle and place in
/// the server, its stream, and its outbox's receiving end.
struct Accepted {
    registration: Registration,
    stream: BoxStream,
    queue: connection::OutboxReceiver,
}

impl Accepted {
    fn new(inner: Arc<ServerInner>, stream: BoxStream, peer: Addr) -> Self {
        let id = ConnectionId::new(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (outbox, queue) = connection::outbox(inner.options.outbox_bytes);
        // The stream's own end (the interface a wildcard listener accepted on), else the
        // listener's.
        let local = stream
            .local_addr()
            .unwrap_or_else(|| inner.local_addr.clone());
        let handle = ConnectionHandle::new(
            id,
            peer,
            local,
            outbox,
            inner.codec.clone(),
            inner.options.correlation.as_ref(),
        );
        Self {
            registration: Registration { inner, handle },
            stream,
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

/// A connection's task: TLS (if the server speaks it), registration, the connection itself,
/// then its end: the `disconnected` callback, and its places given back.
///
/// Its parts are taken apart before the `async` block, which then holds each once: an `async
/// fn` would keep its argument and the parts taken out of it, twice the room for every
/// connection, idle or not (see `connection`'s docs on what an idle connection holds).
fn run_connection<P: Protocol, H: Handler<P>>(
    accepted: Accepted,
    handler: H,
) -> impl Future<Output = ()> {
    let Accepted {
        registration,
        stream,
        mut queue,
    } = accepted;
    async move {
        let handle = &registration.handle;
        let inner = &registration.inner;
        #[cfg_attr(not(feature = "tls"), allow(unused_labels))]
        let reason = 'opened: {
            // TLS first: a connection that fails it is never registered nor reported connected,
            // only disconnected, with the reason.
            #[cfg(feature = "tls")]
            let transport = match &inner.tls {
                Some(tls) => {
                    match Box::pin(crate::transport::tls_stream::accept(
                        stream,
                        tls,
                        handle,
                        &inner.shutdown,
                    ))
                    .await
                    {
                        Ok(transport) => transport,
                        Err(reason) => break 'opened reason,
                    }
                }
                None => Transport::plain(stream),
            };
            #[cfg(not(feature = "tls"))]
            let transport = Transport::plain(stream);
            inner.registry().insert(handle.id(), handle.clone());
            if inner.shutdown.is_cancelled() {
                // Accepted just before the shutdown began: it closes with the others' reason.
                handle.close_with(DisconnectReason::Shutdown);
            }
            info!(conn = %handle.id(), peer = %handle.peer(), "connected");
            let transport = Mutex::new(transport.captured(&inner.options, handle, true));
            let mut drive = std::pin::pin!(connection::drive::<P, H>(
                &transport,
                handle,
                &mut queue,
                &handler,
                &inner.options,
                || {},
            ));
            std::future::poll_fn(move |cx| {
                connection::poll_in_span(handle.span(), drive.as_mut(), cx)
            })
            .await
        };
        handle.mark_disconnected();
        let outbox = handle.outbox();
        queue.close(outbox);
        let unsent = queue.unsent(outbox);
        handle.set_unsent_frames(unsent);
        inner.unsent.fetch_add(unsent, Ordering::Relaxed);
        registration.release();
        log_disconnect(handle, &reason, unsent);
        // Boxed: run once, at the end; its state is not carried for the connection's life.
        Box::pin(disconnected(&registration, &handler, reason)).await;
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

/// Logs a connection's end: at info for the ordinary ends, at warn for the others.
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
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};

    use super::{Accepted, run_connection};
    use crate::transport::{Addr, BoxStream};
    use crate::{ConnectionHandle, Handler, HeaderFields, HeaderLayout, Server, Unknown};

    struct Quiet;

    impl Handler<Unknown> for Quiet {
        async fn message(&self, _conn: &ConnectionHandle, _msg: Unknown, _fields: &HeaderFields) {}
    }

    /// A handler of its own for each connection (`serve_each`), as large as the docs allow.
    struct OwnState {
        _counters: [u64; 6],
    }

    impl Handler<Unknown> for OwnState {
        async fn message(&self, _conn: &ConnectionHandle, _msg: Unknown, _fields: &HeaderFields) {}
    }

    /// The size of a connection's future with `handler`, on a real accepted socket.
    async fn connection_future_size<H: Handler<Unknown>>(handler: H) -> usize {
        let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let accepted = Accepted::new(
            server.inner.clone(),
            Box::new(stream) as BoxStream,
            Addr::Tcp(peer),
        );
        size_of_val(&run_connection::<Unknown, _>(accepted, handler))
    }

    /// What an idle connection costs is mostly its task (see `connection`'s docs): tokio
    /// aligns a task's cell to 128 bytes and adds about 104 bytes of its own to the future
    /// (and the task tracker 8), so a future of up to 400 bytes keeps the cell at 512 bytes
    /// (about 1.2 KB per idle connection in all, BENCHMARKS.md), one of 401 makes it 640.
    /// Both a shared handler and a per-connection one of 48 bytes must fit.
    #[tokio::test]
    async fn a_connection_task_fits_a_512_byte_cell() {
        let shared = connection_future_size(Arc::new(Quiet)).await;
        let own = connection_future_size(OwnState { _counters: [0; 6] }).await;
        assert_eq!(size_of::<OwnState>(), 48);
        eprintln!("connection future: {shared} bytes shared, {own} with a 48-byte handler");
        for (size, what) in [(shared, "a shared handler"), (own, "a 48-byte handler")] {
            assert!(
                size <= 400,
                "with {what}, a connection's future is {size} bytes: over 400, its task no \
                 longer fits a 512-byte cell"
            );
        }
    }
}
