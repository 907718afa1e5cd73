//! The write path: what the outbox holds goes to the stream in as few writes as it takes,
//! each frame confirmed once the kernel has all of it, under a write timeout about progress.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::handle::ConnectionHandle;
use super::outbox::{Outbox, OutboxReceiver};
use crate::layout::HeaderLayout;

/// The most slices one vectored write gathers: Linux's `IOV_MAX`, as many as one `writev`
/// takes (a broadcast's frames are one slice each; 16 KiB of stack while a write is polled).
const MAX_SLICES: usize = 1024;
/// For a stream that cannot gather: pieces shorter than this are copied together.
const COPY_BELOW: usize = 4 * 1024;
/// For a stream that cannot gather: the most bytes one write copies together.
const COPY_LIMIT: usize = 64 * 1024;

const WRITE_TIMED_OUT: &str = "a write made no progress within the write timeout";

/// Writes queued frames until the connection is closed gracefully (its handle's `close`, or
/// its client's), then writes what is still queued, flushes and shuts our write side down;
/// returns `Ok` after that. `quiet` is set while it waits with nothing in hand.
///
/// A frame is confirmed (its room in the outbox given back) once every byte of it was handed
/// to the kernel. Frames not confirmed when a connection breaks stay in `queue`, and a client
/// writes them, whole, first on its next connection: a frame cut on the old connection is
/// discarded there as truncated, so it is neither lost nor duplicated.
pub(super) async fn write_loop<W>(
    writer: &mut W,
    queue: &mut OutboxReceiver,
    handle: &ConnectionHandle,
    quiet: &AtomicBool,
    limit: Option<Duration>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    let outbox = handle.outbox();
    let mut closing = false;
    loop {
        // Frames left unconfirmed by an earlier connection (a client's) go first.
        if !queue.has_taken() {
            if closing {
                // Closing: write what is queued now, then stop. Handles refuse new frames
                // once a close is asked for.
                if !queue.take(outbox) {
                    break;
                }
            } else {
                quiet.store(true, Ordering::Relaxed);
                let closed = queue.take_or(outbox, || handle.close_requested()).await;
                quiet.store(false, Ordering::Relaxed);
                if closed {
                    closing = true;
                    handle.mark_closing();
                    continue;
                }
            }
        } else {
            queue.take(outbox);
        }
        write_taken(writer, queue, outbox, handle.layout(), limit).await?;
    }
    timed(limit, writer.flush()).await?;
    // TLS sends its close_notify here: a peer that stopped reading must not hold it.
    timed(limit, writer.shutdown()).await
}

/// Writes everything taken from the outbox, confirming frames as the kernel takes them.
async fn write_taken<W>(
    writer: &mut W,
    queue: &mut OutboxReceiver,
    outbox: &Outbox,
    layout: &HeaderLayout,
    limit: Option<Duration>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    let gathers = writer.is_write_vectored();
    // Small frames copied together for a stream that cannot gather; allocated only then.
    let mut scratch = Vec::new();
    while queue.has_taken() {
        let written = {
            let (queue, writer, scratch) = (&*queue, &mut *writer, &mut scratch);
            // The slices are gathered anew at each poll: no borrow of the queue is kept across
            // a wait, and the array lives on the stack, not in this future.
            let write = std::future::poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let filled = if gathers {
                    fill(queue.unwritten(), &mut slices)
                } else {
                    copy_small(queue.unwritten(), scratch, &mut slices)
                };
                let slices = slices.get(..filled).unwrap_or_default();
                Pin::new(&mut *writer).poll_write_vectored(cx, slices)
            });
            // Each write has the whole timeout to make progress.
            timed(limit, write).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // A stream that buffers (TLS) has taken the bytes, not the kernel: only after a flush
        // may they count as sent. A no-op on plain sockets.
        timed(limit, writer.flush()).await?;
        queue.written(outbox, layout, written);
    }
    Ok(())
}

/// Fills `slices` with the first `pieces`, one each; returns how many it filled.
fn fill<'a>(pieces: impl Iterator<Item = &'a [u8]>, slices: &mut [IoSlice<'a>]) -> usize {
    let mut filled = 0;
    for (slot, piece) in slices.iter_mut().zip(pieces) {
        *slot = IoSlice::new(piece);
        filled += 1;
    }
    filled
}

/// For a stream that writes one slice per call: when the first two pieces are small (a
/// broadcast's frames, queued as one handle each), copies the small pieces at the front into
/// `scratch`, up to [`COPY_LIMIT`] bytes, so that one write carries them all; otherwise the
/// first piece as it is. Returns how many slices it filled.
fn copy_small<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    scratch: &'a mut Vec<u8>,
    slices: &mut [IoSlice<'a>],
) -> usize {
    let is_small = |piece: &[u8]| piece.len() < COPY_BELOW;
    let mut pieces = pieces.peekable();
    let Some(first) = pieces.next() else {
        return 0;
    };
    if !is_small(first) || !pieces.peek().is_some_and(|next| is_small(next)) {
        return fill(std::iter::once(first), slices);
    }
    scratch.clear();
    scratch.extend_from_slice(first);
    while let Some(&piece) = pieces.peek() {
        if !is_small(piece) || scratch.len() + piece.len() > COPY_LIMIT {
            break;
        }
        scratch.extend_from_slice(piece);
        pieces.next();
    }
    fill(std::iter::once(scratch.as_slice()), slices)
}

/// Runs one step of writing, failing with [`io::ErrorKind::TimedOut`] if it makes no progress
/// within `limit`.
async fn timed<T>(
    limit: Option<Duration>,
    step: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, step)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, WRITE_TIMED_OUT))?,
        None => step.await,
    }
}
