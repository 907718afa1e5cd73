//! Session capture: every connection's application bytes, both directions, written to a
//! pcapng file that Wireshark and `tshark` open as ordinary TCP. Feature `pcap`.
//!
//! Give a [`Capture`] to a server or client builder ([`Builder::capture`](crate::Builder::capture));
//! each of its connections becomes one TCP stream in the file:
//!
//! * the real addresses and ports of TCP connections; streams without IP addresses
//!   (Unix-domain sockets, in-memory ones) get stable synthetic ones: the listening end
//!   127.0.0.1 port 1, the connecting end 127.1.X.Y port 49152, where X.Y is the stream's
//!   number in the capture (counted from 1, modulo 65,536);
//! * a SYN, SYN-ACK, ACK at the start, sequence and acknowledgement numbers that follow the
//!   bytes of each direction, a FIN for each direction's graceful end and a RST from our side
//!   when the connection is aborted (so Wireshark's "Follow TCP stream" and reassembly work);
//! * the bytes as the application exchanged them, at the time each read or write completed,
//!   in segments of at most 65,000 bytes (IP's packet limit);
//! * over TLS, the **plaintext**: the bytes above TLS, with no key log needed. (For captures
//!   of the wire made by other tools, TLS servers and clients write their session keys to
//!   the file named by `SSLKEYLOGFILE` when it is set: see [`tls`](crate::tls).)
//!
//! Capture cannot slow or break a session: each read or write copies its bytes into one
//! record offered, without waiting, to a bounded queue (4,096 records and 64 MiB); a thread
//! of the capture's own writes them out. When the disk cannot keep up, records are dropped
//! from the capture (never from the session) and counted: see [`CaptureSummary`]. A
//! connection without a capture pays one check per read or write.
//!
//! ```
//! use std::time::Duration;
//! use ltprotocol::capture::Capture;
//! use ltprotocol::{HeaderLayout, Server, Unknown};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("ltp-capture-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("session.pcapng");
//! let capture = Capture::builder(&path).max_file_size(100_000_000).open()?;
//! let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
//!     .capture(capture.clone())
//!     .bind("127.0.0.1:0")
//!     .await?;
//! // … serve (`server.serve(handler)`), then:
//! server.shutdown(Duration::from_secs(5)).await;
//! let summary = capture.finish().await;
//! println!("{} packets captured, {} dropped", summary.frames, summary.dropped_frames);
//! assert_eq!(summary.files, [path]);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

mod stream;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot};

use self::stream::Record;
pub(crate) use self::stream::StreamCapture;

/// The most application bytes in one captured TCP segment: an IPv4 packet's total length
/// (and an IPv6 packet's payload length) is a `u16`, headers included.
pub(crate) const MAX_SEGMENT: usize = 65_000;
/// How many records the queue to the writer holds.
pub const QUEUE_RECORDS: usize = 4096;
/// How many application bytes the queue to the writer holds.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Why a capture could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// A capture file could not be created.
    #[error("cannot create the capture file {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing to a capture file failed (a full disk, say); what came after was dropped.
    #[error("cannot write the capture file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A packet could not be made (never expected: report it).
    #[error("cannot make a capture packet: {reason}")]
    Packet {
        /// What the packet library said.
        reason: String,
    },
    /// The capture's writer thread could not be started.
    #[error("cannot start the capture's writer thread: {0}")]
    Thread(std::io::Error),
}

/// What a capture wrote and dropped; [`Capture::summary`] tells it while it runs,
/// [`Capture::finish`] at the end.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CaptureSummary {
    /// Packets written.
    pub frames: u64,
    /// Application bytes written.
    pub bytes: u64,
    /// Packets dropped because the queue to the writer was full (or the writer had stopped).
    pub dropped_frames: u64,
    /// Application bytes dropped so.
    pub dropped_bytes: u64,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// Why writing stopped early, if it did.
    pub error: Option<CaptureError>,
}

/// Sets up a [`Capture`]: [`Capture::builder`].
#[derive(Debug, Clone)]
pub struct CaptureBuilder {
    path: PathBuf,
    max_file_size: Option<u64>,
}

impl CaptureBuilder {
    /// Past about this many bytes, a file is closed and the next one started, as `tcpdump -C`
    /// does: `s.pcapng`, then `s.1.pcapng`, `s.2.pcapng`… (a path without extension gets `.1`,
    /// `.2`…). Each file is a whole pcapng file; a stream that goes on in the next file has
    /// its opening in an earlier one. Default: no limit.
    pub fn max_file_size(&mut self, bytes: u64) -> &mut Self {
        self.max_file_size = Some(bytes);
        self
    }

    /// Creates the first file and starts the writer thread.
    pub fn open(&self) -> Result<Capture, CaptureError> {
        let shared = Arc::new(Shared::default());
        let files = writer::Files::create(&self.path, self.max_file_size, shared.files.clone())?;
        let (records, queue) = mpsc::channel(QUEUE_RECORDS);
        let (done, finished) = oneshot::channel();
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("ltprotocol-capture".into())
            .spawn(move || {
                let result = writer::run(queue, files, &for_writer);
                let _ = done.send(result.err());
            })
            .map_err(CaptureError::Thread)?;
        *lock(&shared.finished) = Some(finished);
        Ok(Capture { records, shared })
    }
}

/// A session capture to pcapng files; see the [module](self). Cheap to clone: every clone
/// (one per server or client given it) writes to the same files.
#[derive(Debug, Clone)]
pub struct Capture {
    records: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

/// What the writer thread is sent.
#[derive(Debug)]
enum Message {
    Record(Record),
    Finish,
}

/// Counters shared by the connections and the writer.
#[derive(Debug, Default)]
struct Shared {
    next_stream: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
    dropped_frames: AtomicU64,
    dropped_bytes: AtomicU64,
    queued_bytes: AtomicUsize,
    files: Arc<Mutex<Vec<PathBuf>>>,
    finished: Mutex<Option<oneshot::Receiver<Option<CaptureError>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Capture {
    /// A capture to `path` (created, or truncated), with the defaults: [`CaptureBuilder`]
    /// sets a size limit.
    pub fn builder(path: impl AsRef<Path>) -> CaptureBuilder {
        CaptureBuilder {
            path: path.as_ref().to_path_buf(),
            max_file_size: None,
        }
    }

    /// A capture to `path` with no size limit.
    pub fn to_file(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::builder(path).open()
    }

    /// What was written and dropped so far.
    pub fn summary(&self) -> CaptureSummary {
        let shared = &self.shared;
        CaptureSummary {
            frames: shared.frames.load(Ordering::Relaxed),
            bytes: shared.bytes.load(Ordering::Relaxed),
            dropped_frames: shared.dropped_frames.load(Ordering::Relaxed),
            dropped_bytes: shared.dropped_bytes.load(Ordering::Relaxed),
            files: lock(&shared.files).clone(),
            error: None,
        }
    }

    /// Writes out what is queued, closes the file and says what was written and dropped.
    /// Call it once the servers and clients capturing have ended; what their connections
    /// record afterwards is dropped (and counted, in [`summary`](Self::summary)). A second
    /// call returns the counts only.
    pub async fn finish(&self) -> CaptureSummary {
        let finished = lock(&self.shared.finished).take();
        let mut error = None;
        if let Some(finished) = finished {
            // Waits for room: the writer is draining the queue. Refused only when the writer
            // has stopped already, which `finished` then says.
            let _ = self.records.send(Message::Finish).await;
            error = finished.await.ok().flatten();
        }
        CaptureSummary {
            error,
            ..self.summary()
        }
    }

    /// Offers a record to the writer, without waiting; counts it as dropped when it cannot
    /// be queued.
    fn offer(&self, record: Record) {
        let shared = &self.shared;
        let len = record.payload.len();
        let queued = shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        let refused = if queued + len > QUEUE_BYTES && len > 0 {
            Some(record)
        } else {
            self.records
                .try_send(Message::Record(record))
                .err()
                .and_then(|err| match err.into_inner() {
                    Message::Record(record) => Some(record),
                    Message::Finish => None,
                })
        };
        if let Some(record) = refused {
            shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            shared
                .dropped_frames
                .fetch_add(record.packets(), Ordering::Relaxed);
            shared
                .dropped_bytes
                .fetch_add(len as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::stream::{Ends, RecordKind};
    use super::*;

    fn record(len: usize) -> Record {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Record {
            ends: Ends {
                client: addr,
                server: addr,
                client_isn: 1,
                server_isn: 1,
            },
            kind: RecordKind::Data,
            from_client: true,
            at: Duration::ZERO,
            client_sent: 0,
            server_sent: 0,
            client_fin: false,
            server_fin: false,
            payload: vec![0; len],
        }
    }

    /// A capture whose writer never reads: its queue of `records` fills.
    fn stalled(records: usize) -> (Capture, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(records);
        let capture = Capture {
            records: sender,
            shared: Arc::new(Shared::default()),
        };
        (capture, receiver)
    }

    #[test]
    fn a_full_queue_drops_records_and_counts_their_packets_and_bytes() {
        let (capture, _queue) = stalled(1);
        capture.offer(record(10));
        capture.offer(record(MAX_SEGMENT + 1));
        capture.offer(record(5));
        let summary = capture.summary();
        // The first is queued; the second would have been two segments.
        assert_eq!(summary.dropped_frames, 3);
        assert_eq!(summary.dropped_bytes, (MAX_SEGMENT + 1 + 5) as u64);
        assert_eq!(capture.shared.queued_bytes.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn the_queue_holds_a_bounded_number_of_bytes() {
        let (capture, _queue) = stalled(QUEUE_RECORDS);
        for _ in 0..QUEUE_BYTES / MAX_SEGMENT + 10 {
            capture.offer(record(MAX_SEGMENT));
        }
        assert!(capture.shared.queued_bytes.load(Ordering::Relaxed) <= QUEUE_BYTES);
        // As many whole records as the byte bound holds are queued; the rest are dropped.
        assert_eq!(capture.summary().dropped_frames, 10);
    }
}
