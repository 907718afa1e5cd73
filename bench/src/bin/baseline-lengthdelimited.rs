//! The tokio-util `LengthDelimitedCodec` baseline for `ltp bench`, configured to speak the
//! ancestor's layout as DESIGN.md describes: decoding with the length at offset 0, adjustment
//! 0 and `num_skip(0)` (a frame is the whole message, header included) plus a "frame ≥ header"
//! check; encoding `[type][body]` with adjustment −2 (−4 for `--layout u32`), so the length
//! written counts the whole frame. `FramedRead` / `FramedWrite` on the two halves (one codec
//! cannot hold both configurations), a 256 KiB read buffer and a 64 KiB write back-pressure
//! boundary. A current-thread runtime unless `--threads N`.
//!
//! ```text
//! cargo run --release -p bench --bin baseline-lengthdelimited -- serve --listen 127.0.0.1:0
//! cargo run --release -p bench --bin baseline-lengthdelimited -- throughput --target ADDR
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use bench::drive::FrameIo;
use bench::wire::{self, DATA, ECHO, END, FANOUT, Layout, REPORT};

/// Frames a connection's writer may have queued.
const QUEUE: usize = 1024;
/// `FramedRead`'s buffer.
const READ_CAPACITY: usize = 256 * 1024;
/// `FramedWrite` writes out once it holds this much.
const WRITE_BOUNDARY: usize = 64 * 1024;

fn main() -> ExitCode {
    bench::app::main::<Client, _, _>("lengthdelimited", "framed", serve)
}

fn decoder(layout: Layout) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_length(layout.length_width())
        .length_adjustment(0)
        .num_skip(0)
        .max_frame_length(layout.max_frame())
        .new_codec()
}

fn encoder(layout: Layout) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(layout.length_width())
        .length_adjustment(-(layout.length_width() as isize))
        .max_frame_length(layout.max_frame())
        .new_codec()
}

/// `[type][body]`: what the encoder frames.
fn payload(message_type: u8, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(1 + body.len());
    buf.put_u8(message_type);
    buf.put_slice(body);
    buf.freeze()
}

fn invalid(problem: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, problem)
}

/// Checks a decoded frame (the whole message) and splits off its type: the codec itself lets
/// lengths under the header through (a length of 0 would yield empty frames forever).
fn split_frame(layout: Layout, frame: &BytesMut) -> io::Result<u8> {
    layout.check_frame_len(frame.len()).map_err(invalid)?;
    frame
        .get(layout.length_width())
        .copied()
        .ok_or_else(|| invalid("frame shorter than its header".to_owned()))
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
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared.conns().insert(id, tx.clone());
    let writer = tokio::spawn(write_loop(writer, shared.layout, rx));
    let mut frames = FramedRead::with_capacity(reader, decoder(shared.layout), READ_CAPACITY);
    let _ = read_loop(&mut frames, &tx, id, &shared).await;
    shared.conns().remove(&id);
    drop(tx);
    let _ = writer.await;
}

async fn queue(tx: &mpsc::Sender<Bytes>, payload: Bytes) -> io::Result<()> {
    match tx.try_send(payload) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(payload)) => tx
            .send(payload)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "writer gone")),
        Err(mpsc::error::TrySendError::Closed(_)) => {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "writer gone"))
        }
    }
}

async fn read_loop(
    frames: &mut FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    tx: &mpsc::Sender<Bytes>,
    id: u64,
    shared: &Shared,
) -> io::Result<()> {
    let layout = shared.layout;
    let header_len = layout.header_len();
    let (mut count, mut bytes, mut echo) = (0u64, 0u64, false);
    while let Some(frame) = frames.next().await {
        let mut frame = frame?;
        match split_frame(layout, &frame)? {
            DATA => {
                count += 1;
                bytes += (frame.len() - header_len) as u64;
                if echo {
                    queue(tx, frame.split_off(layout.length_width()).freeze()).await?;
                }
            }
            END => {
                queue(tx, payload(REPORT, &wire::report_body(count, bytes))).await?;
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
    Ok(())
}

async fn broadcast(
    shared: &Shared,
    me: u64,
    n: u64,
    size: usize,
    tx: &mpsc::Sender<Bytes>,
) -> io::Result<()> {
    shared.layout.check_body(size).map_err(invalid)?;
    let targets: Vec<mpsc::Sender<Bytes>> = shared
        .conns()
        .iter()
        .filter(|(id, _)| **id != me)
        .map(|(_, tx)| tx.clone())
        .collect();
    let data = payload(DATA, &vec![0; size]);
    let mut delivered = 0u64;
    for _ in 0..n {
        for target in &targets {
            if queue(target, data.clone()).await.is_ok() {
                delivered += 1;
            }
        }
    }
    let end = payload(END, &[]);
    for target in &targets {
        let _ = queue(target, end.clone()).await;
    }
    let report = wire::report_body(delivered, delivered * size as u64);
    queue(tx, payload(REPORT, &report)).await
}

async fn write_loop(writer: OwnedWriteHalf, layout: Layout, mut rx: mpsc::Receiver<Bytes>) {
    let mut sink = FramedWrite::new(writer, encoder(layout));
    sink.set_backpressure_boundary(WRITE_BOUNDARY);
    while let Some(first) = rx.recv().await {
        if sink.feed(first).await.is_err() {
            return;
        }
        while let Ok(next) = rx.try_recv() {
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
            return;
        }
    }
    let _ = SinkExt::<Bytes>::close(&mut sink).await;
}

// ---- client ----

/// A client connection: `FramedRead` and `FramedWrite` over the two halves.
#[derive(Debug)]
struct Client {
    frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    layout: Layout,
}

impl FrameIo for Client {
    type Prepared = Bytes;

    async fn connect(addr: SocketAddr, layout: Layout) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let mut sink = FramedWrite::new(writer, encoder(layout));
        sink.set_backpressure_boundary(WRITE_BOUNDARY);
        Ok(Self {
            frames: FramedRead::new(reader, decoder(layout)),
            sink,
            layout,
        })
    }

    fn prepare(_layout: Layout, message_type: u8, body: &[u8]) -> Bytes {
        payload(message_type, body)
    }

    async fn feed(&mut self, frame: &Bytes) -> io::Result<()> {
        self.sink.feed(frame.clone()).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        SinkExt::<Bytes>::flush(&mut self.sink).await
    }

    async fn recv(&mut self) -> io::Result<Option<(u8, Bytes)>> {
        let Some(frame) = self.frames.next().await else {
            return Ok(None);
        };
        let mut frame = frame?;
        let message_type = split_frame(self.layout, &frame)?;
        Ok(Some((
            message_type,
            frame.split_off(self.layout.header_len()).freeze(),
        )))
    }
}
