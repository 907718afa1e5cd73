//! The write path: what the outbox holds goes to the stream in as few writes as it takes,
//! each frame confirmed once the kernel has all of it, under a write timeout about progress.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::handle::ConnectionHandle;
use super::outbox::{Outbox, OutboxReceiver};

/// The most slices one write gathers (a vectored write of the queue's segments).
const MAX_SLICES: usize = 16;

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
        write_taken(writer, queue, outbox, limit).await?;
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
    limit: Option<Duration>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    while queue.has_taken() {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let filled = queue.unwritten(&mut slices);
            let slices = slices.get(..filled).unwrap_or_default();
            // Each write has the whole timeout to make progress.
            timed(limit, writer.write_vectored(slices)).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // A stream that buffers (TLS) has taken the bytes, not the kernel: only after a flush
        // may they count as sent. A no-op on plain sockets.
        timed(limit, writer.flush()).await?;
        queue.written(outbox, written);
    }
    Ok(())
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
