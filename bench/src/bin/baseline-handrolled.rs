//! The hand-rolled tokio baseline for `ltp bench`: reads into a `BytesMut` and parses the
//! header by hand; clients write through a 256 KiB buffer (a `BufWriter` by hand); the server (also the
//! broadcaster) queues encoded frames to one batching writer task per connection, with
//! `try_send` first and waiting only when a queue is full. A current-thread runtime unless
//! `--threads N`.
//!
//! ```text
//! cargo run --release -p bench --bin baseline-handrolled -- serve --listen 127.0.0.1:0
//! cargo run --release -p bench --bin baseline-handrolled -- throughput --target ADDR --body-size 16
//! cargo run --release -p bench --bin baseline-handrolled -- pingpong   # own server, in-process
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use bench::drive::FrameIo;
use bench::wire::{self, DATA, ECHO, END, FANOUT, Layout, REPORT};

/// Frames a connection's writer may have queued (the broadcaster's best in DESIGN.md).
const QUEUE: usize = 1024;
/// A server write batch is sent once it holds this much.
const WRITE_BATCH: usize = 64 * 1024;
/// The client's `BufWriter` capacity.
const CLIENT_WRITE: usize = 256 * 1024;
/// First read of a connection that was idle.
const INITIAL_READ: usize = 8 * 1024;
/// Reads grow (doubling while they fill the buffer) up to this much.
const MAX_READ: usize = 256 * 1024;

fn main() -> ExitCode {
    bench::app::main::<Client, _, _>("handrolled", "bufwriter", serve)
}

// ---- server ----

#[derive(Debug)]
struct Shared {
    layout: Layout,
    conns: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
    next_id: AtomicU64,
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Bytes>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn serve(listener: TcpListener, layout: Layout) -> io::Result<()> {
    let shared = Arc::new(Shared {
        layout,
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, shared.clone()));
            }
            // Out of file descriptors and the like: pause rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared.conns().insert(id, tx.clone());
    let writer = tokio::spawn(write_loop(writer, rx));
    let _ = read_loop(&mut reader, &tx, id, &shared).await;
    shared.conns().remove(&id);
    drop(tx);
    let _ = writer.await;
}

/// Queues a frame: `try_send` first, waiting only when the queue is really full (waiting on
/// every frame spends tokio's cooperative budget and ends in one `write(2)` per frame).
async fn queue(tx: &mpsc::Sender<Bytes>, frame: Bytes) -> io::Result<()> {
    let closed = |_| io::Error::new(io::ErrorKind::BrokenPipe, "writer gone");
    match tx.try_send(frame) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(frame)) => tx.send(frame).await.map_err(closed),
        Err(mpsc::error::TrySendError::Closed(_)) => {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "writer gone"))
        }
    }
}

fn invalid(problem: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, problem)
}

async fn read_loop(
    reader: &mut OwnedReadHalf,
    tx: &mpsc::Sender<Bytes>,
    id: u64,
    shared: &Shared,
) -> io::Result<()> {
    let layout = shared.layout;
    let header_len = layout.header_len();
    let mut buf = BytesMut::new();
    let mut read_size = INITIAL_READ;
    let (mut count, mut bytes, mut echo) = (0u64, 0u64, false);
    loop {
        // DATA frames are counted in place and consumed all at once; the others take their
        // bytes out of the buffer first.
        let mut pos = 0;
        while let Some((len, message_type)) = layout.parse_header(&buf[pos..]).map_err(invalid)? {
            if buf.len() - pos < len {
                break;
            }
            if message_type == DATA && !echo {
                count += 1;
                bytes += (len - header_len) as u64;
                pos += len;
                continue;
            }
            buf.advance(pos);
            pos = 0;
            let frame = buf.split_to(len);
            match message_type {
                DATA => {
                    count += 1;
                    bytes += (len - header_len) as u64;
                    queue(tx, frame.freeze()).await?;
                }
                END => {
                    let report = layout.frame(REPORT, &wire::report_body(count, bytes));
                    queue(tx, report).await?;
                    (count, bytes) = (0, 0);
                }
                ECHO => echo = true,
                FANOUT => {
                    let (n, size) = wire::parse_fanout(&frame[header_len..])
                        .ok_or_else(|| invalid("short FANOUT body".to_owned()))?;
                    broadcast(shared, id, n, size as usize, tx).await?;
                }
                _ => {}
            }
        }
        buf.advance(pos);
        if buf.is_empty() {
            // Idle between frames: give the buffer back, so an idle connection costs little.
            buf = BytesMut::new();
            reader.readable().await?;
        }
        if buf.capacity() - buf.len() < read_size / 2 {
            buf.reserve(read_size);
        }
        let spare = buf.capacity() - buf.len();
        match reader.read_buf(&mut buf).await? {
            0 => return Ok(()),
            n if n == spare => read_size = (read_size * 2).min(MAX_READ),
            _ => {}
        }
    }
}

/// FANOUT: `n` DATA frames of `size` zero bytes to every other connection, encoded once, then
/// an END to each, then a REPORT of the deliveries to the sender.
async fn broadcast(
    shared: &Shared,
    me: u64,
    n: u64,
    size: usize,
    tx: &mpsc::Sender<Bytes>,
) -> io::Result<()> {
    let layout = shared.layout;
    layout.check_body(size).map_err(invalid)?;
    let targets: Vec<mpsc::Sender<Bytes>> = shared
        .conns()
        .iter()
        .filter(|(id, _)| **id != me)
        .map(|(_, tx)| tx.clone())
        .collect();
    let frame = layout.frame(DATA, &vec![0; size]);
    let mut delivered = 0u64;
    for _ in 0..n {
        for target in &targets {
            if queue(target, frame.clone()).await.is_ok() {
                delivered += 1;
            }
        }
    }
    let end = layout.frame(END, &[]);
    for target in &targets {
        let _ = queue(target, end.clone()).await;
    }
    let report = wire::report_body(delivered, delivered * size as u64);
    queue(tx, layout.frame(REPORT, &report)).await
}

/// Drains the queue into batches of up to 64 KiB, one `write(2)` each; the batch buffer is
/// released whenever the queue runs dry.
async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    let mut out: Vec<u8> = Vec::new();
    while let Some(first) = rx.recv().await {
        out.reserve(WRITE_BATCH.max(first.len()));
        out.extend_from_slice(&first);
        while out.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(frame) => out.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        if rx.is_empty() {
            out = Vec::new();
        }
    }
    let _ = writer.shutdown().await;
}

// ---- client ----

/// A client connection: reads into a `BytesMut`, writes through a 256 KiB `BufWriter`.
#[derive(Debug)]
struct Client {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    /// The 256 KiB write buffer (what `BufWriter` does, without a future per frame).
    out: Vec<u8>,
    buf: BytesMut,
    layout: Layout,
}

impl FrameIo for Client {
    type Prepared = Bytes;

    async fn connect(addr: SocketAddr, layout: Layout) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Self {
            reader,
            writer,
            out: Vec::with_capacity(CLIENT_WRITE),
            buf: BytesMut::new(),
            layout,
        })
    }

    fn prepare(layout: Layout, message_type: u8, body: &[u8]) -> Bytes {
        layout.frame(message_type, body)
    }

    async fn feed(&mut self, frame: &Bytes) -> io::Result<()> {
        if self.out.len() + frame.len() > CLIENT_WRITE {
            self.flush().await?;
        }
        if frame.len() >= CLIENT_WRITE {
            self.writer.write_all(frame).await
        } else {
            self.out.extend_from_slice(frame);
            Ok(())
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    async fn recv(&mut self) -> io::Result<Option<(u8, Bytes)>> {
        let header_len = self.layout.header_len();
        loop {
            if let Some((len, message_type)) =
                self.layout.parse_header(&self.buf).map_err(invalid)?
            {
                if self.buf.len() >= len {
                    let mut frame = self.buf.split_to(len);
                    return Ok(Some((message_type, frame.split_off(header_len).freeze())));
                }
                self.buf.reserve(len - self.buf.len());
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ended mid-frame",
                    ))
                };
            }
        }
    }
}
