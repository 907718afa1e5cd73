//! Where events go: one JSON object (or one readable line) per event on stdout, written by a
//! thread of its own from a bounded queue, so that no handler ever blocks on stdout.
//!
//! # When the reader is slower than the events
//!
//! A paused terminal, a full pipe, a slow reader: the queue holds up to [`QUEUE_BYTES`] of
//! lines, and once it is full whoever emits a line **waits** for room (back-pressure). A
//! connection whose handler waits stops reading from its socket, so TCP slows its peer down;
//! the runtime itself is never blocked, so everything that prints nothing goes on: accepting,
//! TLS and OpenFlow handshakes, keepalive, timers, the shutdown on SIGINT or SIGTERM. No line
//! queued is dropped while stdout is open, lines keep the order they were emitted in, and
//! every line queued is written before `ltp` exits (so at exit `ltp` waits for a paused
//! reader, as `cat` would). The shutdown deadline still holds: a connection still waiting to
//! queue a line then is closed with the rest, and that line is not printed.
//!
//! A stdout that is closed (the reader went away: `EPIPE`) is no reason to stop serving: the
//! writer says so once on stderr and from then on drops lines as fast as they come, so nobody
//! waits for it.

use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::Format;

/// How many bytes of lines (newlines included) the queue holds before emitting waits: 1 MiB,
/// thousands of events, a few seconds of a terminal's scrolling. A longer line travels alone.
pub(crate) const QUEUE_BYTES: usize = 1 << 20;

/// The most bytes the writer gathers from the queue into one write.
const BATCH_BYTES: usize = 64 * 1024;

/// A cheap handle that queues whole lines for the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct Stdout {
    queue: mpsc::UnboundedSender<Chunk>,
    /// One permit per byte of [`QUEUE_BYTES`]: the bound of the queue, which is unbounded
    /// only in type. A line holds its permits until it is written.
    room: Arc<Semaphore>,
}

/// The writer thread, owned by `main`, which calls [`finish`](Self::finish) before exiting.
#[derive(Debug)]
pub(crate) struct StdoutWriter {
    queue: mpsc::UnboundedSender<Chunk>,
    thread: JoinHandle<()>,
}

#[derive(Debug)]
enum Chunk {
    /// A line without its newline, and the room it takes in the queue.
    Line(String, OwnedSemaphorePermit),
    /// Everything queued before has been written: stop.
    Close,
}

impl Stdout {
    /// Starts the writer.
    ///
    /// A thread of its own, not a tokio task: a write to a paused terminal or a full pipe
    /// blocks in the kernel, and a blocked thread must not be a runtime worker (with
    /// `--threads 1`, the only one). The thread also outlives the runtime, so `main` can wait
    /// for the last line once the runtime is gone.
    ///
    /// # Errors
    ///
    /// The operating system's, when it cannot start a thread.
    pub(crate) fn start() -> std::io::Result<(Self, StdoutWriter)> {
        let (queue, lines) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("ltp-stdout".into())
            .spawn(move || write_lines(lines))?;
        let stdout = Self {
            queue: queue.clone(),
            room: Arc::new(Semaphore::new(QUEUE_BYTES)),
        };
        Ok((stdout, StdoutWriter { queue, thread }))
    }

    /// Queues `line`, a whole line without its newline and with no control character in it;
    /// waits while the queue is full.
    ///
    /// # Cancel safety
    ///
    /// Cancelled while it waits, the line is not queued; lines already queued are not
    /// affected.
    pub(crate) async fn write_line(&self, line: String) {
        let cost = line.len().saturating_add(1).min(QUEUE_BYTES);
        // QUEUE_BYTES, and so the cost, fits a u32.
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        // The semaphore is never closed, so acquiring cannot fail; were it closed, there would
        // be nothing to do with the line but drop it.
        let Ok(room) = self.room.clone().acquire_many_owned(cost).await else {
            return;
        };
        // Fails only once the writer has stopped, at exit: no one is left to print for.
        let _ = self.queue.send(Chunk::Line(line, room));
    }

    /// Queues text for people (`ltp demo`) as one line, its control characters escaped.
    pub(crate) async fn say(&self, text: &str) {
        self.write_line(ltprotocol::escape_controls(text).into_owned())
            .await;
    }
}

impl StdoutWriter {
    /// Waits until every line queued so far is written (or dropped, if stdout is closed), then
    /// stops the writer. Lines queued after it are not printed.
    pub(crate) fn finish(self) {
        // The writer holds the receiver until it has seen Close, so this cannot fail unless it
        // panicked, and then join reports nothing more to do.
        let _ = self.queue.send(Chunk::Close);
        let _ = self.thread.join();
    }
}

/// The writer thread: gathers the lines queued into one write, writes it, gives their room
/// back, until [`Chunk::Close`].
fn write_lines(mut lines: mpsc::UnboundedReceiver<Chunk>) {
    let mut open = true;
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut rooms = Vec::new();
    while let Some(first) = lines.blocking_recv() {
        let mut closing = false;
        let mut next = Some(first);
        while let Some(chunk) = next.take() {
            match chunk {
                Chunk::Line(line, room) => {
                    batch.extend_from_slice(line.as_bytes());
                    batch.push(b'\n');
                    rooms.push(room);
                }
                Chunk::Close => closing = true,
            }
            if closing || batch.len() >= BATCH_BYTES {
                break;
            }
            next = lines.try_recv().ok();
        }
        if open && !batch.is_empty() {
            open = write_batch(&batch);
        }
        batch.clear();
        // Written (or dropped): the room goes back to whoever waits for it.
        rooms.clear();
        if closing {
            return;
        }
    }
}

/// Writes `bytes` to stdout; false once stdout is closed or broken.
fn write_batch(bytes: &[u8]) -> bool {
    let mut out = std::io::stdout().lock();
    let mut rest = bytes;
    while !rest.is_empty() {
        match out.write(rest) {
            Ok(0) => return closed(&std::io::Error::from(ErrorKind::WriteZero)),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            // Whoever opened stdout left it non-blocking: this thread is the only one to wait.
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => return closed(&err),
        }
    }
    match out.flush() {
        Ok(()) => true,
        Err(err) => closed(&err),
    }
}

fn closed(err: &std::io::Error) -> bool {
    tracing::warn!(error = %err, "cannot write to stdout: events are no longer printed");
    false
}

/// Prints events in the chosen format, one whole line at a time, through the writer.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    format: Format,
    stdout: Stdout,
    /// `--timestamps`: each event gets a `ts`, the time it was emitted.
    timestamps: bool,
}

impl Output {
    /// JSON unless asked otherwise, or text when stdout is a terminal and nothing was asked.
    pub(crate) fn new(format: Option<Format>, stdout: Stdout) -> Self {
        let format = format.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Text
        } else {
            Format::Json
        });
        Self {
            format,
            stdout,
            timestamps: false,
        }
    }

    /// `--timestamps`: from now on each event carries `ts`, when it was emitted, in Unix
    /// seconds ([`ltp::json::unix_seconds`]), as its second key.
    pub(crate) fn set_timestamps(&mut self, timestamps: bool) {
        self.timestamps = timestamps;
    }

    /// Queues one event as a line; waits while the queue is full (see the module's doc).
    pub(crate) async fn emit(&self, event: &Value) {
        let stamped;
        let event = match event {
            Value::Object(object) if self.timestamps => {
                stamped = stamp(object, ltp::json::unix_seconds(SystemTime::now()));
                &stamped
            }
            _ => event,
        };
        let line = match self.format {
            Format::Json => ltp::json::json_line(event),
            Format::Text => ltp::json::text_line(event),
        };
        self.stdout.write_line(line).await;
    }
}

/// `object` with `ts` right after `event`, where a reader looks first.
fn stamp(object: &Map<String, Value>, ts: Value) -> Value {
    let mut stamped = Map::with_capacity(object.len() + 1);
    let mut ts = Some(ts);
    for (key, value) in object {
        stamped.insert(key.clone(), value.clone());
        if key == "event"
            && let Some(ts) = ts.take()
        {
            stamped.insert("ts".to_owned(), ts);
        }
    }
    // Every event has an `event`; were one without it, its `ts` would go last.
    if let Some(ts) = ts {
        stamped.insert("ts".to_owned(), ts);
    }
    Value::Object(stamped)
}
