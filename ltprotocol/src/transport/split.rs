//! A connection's reading and writing sides over one stream, in one task.
//!
//! The read loop and the write loop of a connection are polled by the same task, one after
//! the other, never at once. Each side reaches the stream through a lock that is therefore
//! never contended: one stream type for every kind of stream, no `Arc`, and no
//! `tokio::io::split` allocation per connection.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Stream;

fn lock<S>(stream: &Mutex<S>) -> MutexGuard<'_, S> {
    // A poll that panicked leaves the stream as the stream left it: still usable.
    stream.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reading side of a connection's stream.
#[derive(Debug)]
pub(crate) struct ReadHalf<'a, S>(pub(crate) &'a Mutex<S>);

/// The writing side of a connection's stream.
#[derive(Debug)]
pub(crate) struct WriteHalf<'a, S>(pub(crate) &'a Mutex<S>);

impl<S: Stream> ReadHalf<'_, S> {
    /// See [`Stream::poll_read_ready`].
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        lock(self.0).poll_read_ready(cx)
    }
}

impl<S: Stream> AsyncRead for ReadHalf<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(self.0)).poll_read(cx, buf)
    }
}

impl<S: Stream> AsyncWrite for WriteHalf<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *lock(self.0)).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *lock(self.0)).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        lock(self.0).is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(self.0)).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(self.0)).poll_shutdown(cx)
    }
}
