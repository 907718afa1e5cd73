//! One live connection: the task that runs it, from its handshake to its end.
//!
//! Servers and clients run every connection through `drive`; the application sees only
//! [`ConnectionHandle`]s and [`DisconnectReason`]s. The parts, one file each:
//!
//! * `reason`: the shared vocabulary ([`ConnectionId`], [`DisconnectReason`],
//!   [`TimeoutKind`], [`SendError`]);
//! * `options`: what every connection of a server or client runs with, and the [`Builder`]
//!   that sets it;
//! * `outbox`: the frames queued for sending, bounded in bytes;
//! * `handle`: [`ConnectionHandle`];
//! * `read`: the read path and the one way a frame goes to the application;
//! * `write`: the write path.
//!
//! # A connection's life, and what an idle one holds
//!
//! After the handshake and the `connected` callback, a connection alternates between two
//! states. **Active**, it reads, delivers and writes; everything that takes (the read buffer,
//! the handler's message future, a write in progress, the timers' sleep) lives in one box made
//! when it turns active. **Idle**, when nothing is buffered, nothing is being delivered and
//! nothing is queued, the box is dropped and the connection's task waits, holding only its
//! handle, its stream, its outbox's empty queue and a few instants for its timers, for the
//! first of: bytes to read, a frame queued, a close or an abort, a timer. Its read buffer and
//! write batch are given back too. This is what keeps ten thousand idle connections below
//! the ancestor's memory (see BENCHMARKS.md): the rule lives here, in `drive`, and nowhere
//! else. Streams that cannot tell when they are readable (TLS, which buffers on its own; an
//! application's [`AnyStream`](crate::transport::AnyStream)) stay active, reading.
//!
//! What an idle plain-TCP connection of a server holds, in bytes asked of the allocator
//! (x86-64), about 1,090 in all:
//!
//! * 512, its task: the future, at most 400 bytes (tested in `server::accept`), in tokio's
//!   cell (about 104 bytes of its own, the task tracker's 8, rounded up to 128);
//! * 256, tokio's registration of its socket;
//! * 160, its handle, shared with the application (`handle`): what only some connections use
//!   (a handshake's output, the application's state, a close reason, a TLS identity) is boxed
//!   when first used, and the `tracing` span only while it is enabled;
//! * 104, its outbox's shared part (`outbox`): the queue and the writer's batch are boxed only
//!   while frames are queued or taken, the wait queue of senders once one had to wait;
//! * 32, its stream, boxed as a `dyn Stream`;
//! * about 28, its entry in the server's registry (a hash map of handles).
//!
//! The allocator adds its own: glibc, 8 bytes a block, rounded up to 16, and the free
//! remainders beside the two blocks aligned to 128 (the task and the registration), which only
//! small blocks fit. The outbox's (112 bytes with glibc's own) fits them; at 144 it did not,
//! and every connection left about 200 more bytes free but resident. So about 1.2 KB of
//! resident memory per connection over 10,000 idle ones. Anything added to these (a field in
//! the handle or the outbox, a byte of the task's future past 400) is paid by every idle
//! connection; the handle and the outbox have tests of their sizes.

mod handle;
mod options;
mod outbox;
mod read;
mod reason;
mod write;

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::FutureExt;

pub use self::handle::ConnectionHandle;
pub(crate) use self::options::ConnectionOptions;
pub use self::options::{
    AutoReply, Builder, DEFAULT_EVENT_CAPACITY, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_LINGER,
    DEFAULT_OUTBOX_BYTES, Keepalive, Timeouts,
};
pub(crate) use self::outbox::{NotQueued, Outbox, OutboxReceiver, outbox};
use self::read::{Deadline, Delivery, Input, ReadState, read_loop};
pub use self::reason::{ConnectionId, DisconnectReason, SendError, TimeoutKind};
use self::write::write_loop;
use crate::handler::Handler;
use crate::handshake::{HandshakeContext, SharedHandshake};
use crate::protocol::Protocol;
use crate::transport::{ReadHalf, Transport, WriteHalf};

/// Polls `fut` in `span`, entered for each poll as `tracing::Instrument` does, but with the
/// span borrowed from the connection's handle: the task holds no span of its own. `fut` is
/// pinned where it is, so that the task keeps one copy of it.
pub(crate) fn poll_in_span<F: Future>(
    span: &tracing::Span,
    fut: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let _in_span = span.enter();
    fut.poll(cx)
}

/// Runs one connection over `stream` until it ends, and returns why: the handshake (if any),
/// the `connected` callback, then reading, delivering and writing. A panicking handler ends
/// this connection only. `on_ready` runs once the handshake has succeeded.
pub(crate) async fn drive<P, H>(
    stream: &Mutex<Transport>,
    handle: &ConnectionHandle,
    queue: &mut OutboxReceiver,
    handler: &H,
    options: &ConnectionOptions,
    on_ready: impl FnOnce(),
) -> DisconnectReason
where
    P: Protocol,
    H: Handler<P>,
{
    let reason = 'run: {
        // Boxed, and raced with an abort: run once, its state is not kept for the life of
        // the connection.
        let ready = Box::pin(async {
            tokio::select! {
                () = handle.aborted() => Err(DisconnectReason::Closed),
                ready = set_up::<P, H>(stream, handle, handler, options) => ready,
            }
        })
        .await;
        let mut carried = match ready {
            Ok(carried) => carried,
            Err(reason) => break 'run finish(handle, Some(reason)),
        };
        on_ready();
        let mut state = ReadState::new();
        loop {
            let busy = Box::pin(busy_period::<P, H>(
                stream,
                carried.take(),
                &mut state,
                handle,
                queue,
                handler,
                options,
            ));
            if let BusyEnd::Ended(reason) = busy.await {
                break 'run finish(handle, reason);
            }
            // The outbox's buffers are given back once the connection has stayed idle for one
            // pass of the scheduler (the yield). A connection fed by other tasks (a broadcast
            // fan-out) goes idle and busy again many times a second; freeing and reallocating
            // its buffers each time moves memory between the threads' allocator arenas, which
            // costs more than the writes themselves.
            tokio::task::yield_now().await;
            if handle.outbox().is_empty() {
                queue.release_buffers(handle.outbox());
            }
            // Idle: wait until the connection has work again, or ends. The timer is boxed,
            // and only when one runs: without idle timeout and keepalive (the defaults) an
            // idle connection carries none.
            loop {
                let mut timer = state
                    .deadline(options)
                    .map(|(at, _)| Box::pin(tokio::time::sleep_until(at)));
                let woke =
                    std::future::poll_fn(|cx| poll_idle(cx, stream, handle, timer.as_mut())).await;
                drop(timer);
                match (woke, state.deadline(options)) {
                    (Woke::Aborted, _) => break 'run finish(handle, None),
                    (Woke::Work, _) => break,
                    (Woke::Expired, None) => {}
                    (Woke::Expired, Some((_, Deadline::Expire(kind, after)))) => {
                        let reason = DisconnectReason::TimedOut { kind, after };
                        break 'run finish(handle, Some(reason));
                    }
                    (Woke::Expired, Some((_, Deadline::Probe))) => state.probe(handle, options),
                }
            }
        }
    };
    crate::transport::lock(stream).explain(reason, handle)
}

/// The handshake (boxed apart: only connections with one pay for its state) and the
/// `connected` callback. Returns what the handshake read past its own frames.
async fn set_up<P: Protocol, H: Handler<P>>(
    stream: &Mutex<Transport>,
    handle: &ConnectionHandle,
    handler: &H,
    options: &ConnectionOptions,
) -> Result<Option<Box<Input>>, DisconnectReason> {
    let carried = match &options.handshake {
        Some(handshake) => Box::pin(run_handshake(handshake, stream, handle, options)).await?,
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
}

/// Runs the handshake within its timeout and keeps its output in the handle. Returns what it
/// read past its own frames, for the first busy period.
async fn run_handshake(
    handshake: &SharedHandshake,
    stream: &Mutex<Transport>,
    handle: &ConnectionHandle,
    options: &ConnectionOptions,
) -> Result<Option<Box<Input>>, DisconnectReason> {
    let mut codec = options.codec.clone();
    codec.reset();
    let mut input = Input::default();
    let (mut reader, mut writer) = (ReadHalf(stream), WriteHalf(stream));
    let mut ctx = HandshakeContext {
        reader: &mut reader,
        writer: &mut writer,
        codec: &mut codec,
        buf: &mut input.buf,
        deferred: &mut input.deferred,
        deferred_bytes: 0,
        backlog: options.handshake_backlog,
        handle,
    };
    let ran = tokio::time::timeout(options.handshake_timeout, handshake.run_erased(&mut ctx));
    match ran.await {
        Ok(Ok(output)) => handle.set_handshake_output(output),
        Ok(Err(err)) => return Err(DisconnectReason::Handshake(Arc::new(err))),
        Err(_) => {
            return Err(DisconnectReason::TimedOut {
                kind: TimeoutKind::Handshake,
                after: options.handshake_timeout,
            });
        }
    }
    Ok(input.holds_anything().then(|| Box::new(input)))
}

/// How a busy period ended.
enum BusyEnd {
    /// Nothing buffered, nothing to write: wait idle.
    Idle,
    /// The connection is over (`None`: aborted).
    Ended(Option<DisconnectReason>),
}

/// Set by the read and write loops while each waits with nothing in hand; when both are, the
/// busy period ends and its state is dropped.
#[derive(Debug, Default)]
struct Quiet {
    read: AtomicBool,
    write: AtomicBool,
}

/// Reads and delivers frames and writes queued frames until both sides have nothing in hand
/// (`Idle`) or the connection ends.
async fn busy_period<P, H>(
    stream: &Mutex<Transport>,
    carried: Option<Box<Input>>,
    state: &mut ReadState,
    handle: &ConnectionHandle,
    queue: &mut OutboxReceiver,
    handler: &H,
    options: &ConnectionOptions,
) -> BusyEnd
where
    P: Protocol,
    H: Handler<P>,
{
    let mut input = carried.map_or_else(Input::default, |input| *input);
    let (mut reader, mut writer) = (ReadHalf(stream), WriteHalf(stream));
    let delivery = Delivery {
        handle,
        handler,
        options,
        _protocol: PhantomData,
    };
    let quiet = Quiet::default();
    let read = AssertUnwindSafe(read_loop::<_, P, H>(
        &mut reader,
        &mut input,
        state,
        &quiet.read,
        &delivery,
    ))
    .catch_unwind();
    tokio::pin!(read);
    let write = write_loop(
        &mut writer,
        queue,
        handle,
        &quiet.write,
        options.timeouts.write,
    );
    tokio::pin!(write);
    let aborted = handle.aborted();
    tokio::pin!(aborted);

    /// What the busy period saw first.
    enum FirstReady {
        Aborted,
        Read(std::thread::Result<DisconnectReason>),
        Write(std::io::Result<()>),
        Idle,
    }
    let first = std::future::poll_fn(|cx| {
        if aborted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(FirstReady::Aborted);
        }
        if let Poll::Ready(read) = read.as_mut().poll(cx) {
            return Poll::Ready(FirstReady::Read(read));
        }
        if let Poll::Ready(write) = write.as_mut().poll(cx) {
            return Poll::Ready(FirstReady::Write(write));
        }
        // Both wait with nothing in hand (polled just now, in this order, so a frame the
        // reader queued has been seen by the writer).
        if quiet.read.load(Ordering::Relaxed) && quiet.write.load(Ordering::Relaxed) {
            return Poll::Ready(FirstReady::Idle);
        }
        Poll::Pending
    })
    .await;

    let reason = match first {
        FirstReady::Idle => return BusyEnd::Idle,
        FirstReady::Aborted => None,
        FirstReady::Read(read) => {
            let reason = read.unwrap_or(DisconnectReason::HandlerPanicked);
            // Reading is over, but what was accepted for sending still goes out (a reply to
            // the last good frame before a bad one, say), within the linger. Not when a
            // broken socket cannot take it, nor when the queue has a next connection to go
            // to: written into a connection the peer has left, it would be lost.
            if !matches!(reason, DisconnectReason::Io(_)) && !options.queue_outlives_connection {
                handle.request_close();
                tokio::select! {
                    () = &mut aborted => {}
                    _ = &mut write => {}
                    () = tokio::time::sleep(options.linger) => {}
                }
            }
            Some(reason)
        }
        FirstReady::Write(Err(err)) if err.kind() == std::io::ErrorKind::TimedOut => {
            Some(DisconnectReason::TimedOut {
                kind: TimeoutKind::Write,
                after: options.timeouts.write.unwrap_or_default(),
            })
        }
        FirstReady::Write(Err(err)) => Some(DisconnectReason::Io(Arc::new(err))),
        // Our side is closed and flushed: keep reading (and delivering) until the peer
        // closes too, so nothing it sent is lost, but not for longer than the linger.
        FirstReady::Write(Ok(())) => {
            tokio::select! {
                () = &mut aborted => {}
                _ = &mut read => {}
                () = tokio::time::sleep(options.linger) => {}
            }
            None
        }
    };
    BusyEnd::Ended(reason)
}

/// What ended an idle wait.
enum Woke {
    Aborted,
    Work,
    Expired,
}

/// One look, idle, at what could give the connection work or end it: an abort, a close or a
/// queued frame (the outbox's waker, registered before the checks, so that none is lost
/// between a check and the wait), bytes to read, the timer that runs.
fn poll_idle(
    cx: &mut Context<'_>,
    stream: &Mutex<Transport>,
    handle: &ConnectionHandle,
    timer: Option<&mut Pin<Box<tokio::time::Sleep>>>,
) -> Poll<Woke> {
    // With the task's budget spent, a busy period would find its sources refusing at once
    // and end straight back here: yield first.
    if !tokio::task::coop::has_budget_remaining() {
        cx.waker().wake_by_ref();
        return Poll::Pending;
    }
    handle.outbox().register(cx);
    if handle.is_aborted() {
        return Poll::Ready(Woke::Aborted);
    }
    if handle.close_requested() || !handle.outbox().is_empty() {
        return Poll::Ready(Woke::Work);
    }
    // An error is for the read to report.
    if ReadHalf(stream)
        .poll_read_ready(cx)
        .is_none_or(|ready| ready.is_ready())
    {
        return Poll::Ready(Woke::Work);
    }
    match timer.map(|sleep| sleep.as_mut().poll(cx)) {
        Some(Poll::Ready(())) => Poll::Ready(Woke::Expired),
        _ => Poll::Pending,
    }
}

/// The reason a connection ended with: the one given by whoever closed it wins over its
/// consequence.
fn finish(handle: &ConnectionHandle, reason: Option<DisconnectReason>) -> DisconnectReason {
    handle.mark_disconnected();
    match (handle.take_reason(), reason) {
        (Some(requested), _) => requested,
        (None, Some(reason)) => reason,
        (None, None) => DisconnectReason::Closed,
    }
}
