//! The load: throughput and pingpong over either sending path ([`CodecLink`] or
//! [`RuntimeLink`]), and fanout's receivers and control connection (codec path); each over
//! plain TCP or, with `--tls`, TLS.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::either::Either;

use ltprotocol::{
    EncodedFrame, Event, EventStream, Frame, FrameCodec, MessageType, ReconnectingClient, Unknown,
};

use super::progress::Progress;
use ltp::bench_wire::LatencyRecorder;

use super::{DATA, ECHO, END, FANOUT, Load, Outcome, REPORT};

/// The codec path's write buffer: frames are encoded into it and written once it holds this
/// much (and on flush).
const WRITE_BATCH: usize = 256 * 1024;
/// Progress is published once per this many frames.
const PROGRESS_STEP: u64 = 1024;

/// One client connection as the workloads see it.
pub(super) trait Link: Sized + Send + 'static {
    /// Connects (with `load.tls`, over TLS) and waits until the connection is up.
    fn connect(addr: SocketAddr, load: &Load) -> impl Future<Output = io::Result<Self>> + Send;
    /// Queues a frame (buffered).
    fn send(&mut self, frame: &Frame) -> impl Future<Output = io::Result<()>> + Send;
    /// Queues a frame sent many times, `encoded` being `frame` encoded once with the load's
    /// codec ([`FrameCodec::encode_once`]), as the baselines prepare theirs. By default it is
    /// sent as `frame`.
    fn send_encoded(
        &mut self,
        frame: &Frame,
        encoded: &EncodedFrame,
    ) -> impl Future<Output = io::Result<()>> + Send {
        let _ = encoded;
        self.send(frame)
    }
    /// Writes out what is buffered.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// The next frame received; `None` at the end of the stream.
    fn recv(&mut self) -> impl Future<Output = io::Result<Option<Frame>>> + Send;
    /// Closes the connection (a client that reconnects by itself must be told to stop).
    fn close(self) -> impl Future<Output = ()> + Send;
}

fn invalid(err: &(dyn std::error::Error + 'static)) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, ltprotocol::error_chain(err))
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection",
    )
}

/// The codec path's stream: a `TcpStream`, or with `--tls` a tokio-rustls stream over one.
/// One task both writes and reads it, never at once, so it needs no split into halves.
type CodecStream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// The codec path: [`FrameCodec`] over a `TcpStream` (or a TLS stream over one), encoding into
/// one 256 KiB write buffer and decoding from one read buffer (bodies are slices of it).
#[derive(Debug)]
pub(super) struct CodecLink {
    stream: CodecStream,
    codec: FrameCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// The first two bytes the server sent, to tell a TLS server answering a plain client.
    first_bytes: Option<[u8; 2]>,
}

impl CodecLink {
    /// A framing error as an `io::Error`, saying so when a plain link's server speaks TLS
    /// (its alert or handshake record then reads as a frame header).
    fn explain(&self, err: &(dyn std::error::Error + 'static)) -> io::Error {
        // A TLS record starts with its content type (21 alert, 22 handshake), then major
        // version 3.
        let tls_reply = matches!(self.first_bytes, Some([21 | 22, 3]));
        if tls_reply && matches!(self.stream, Either::Left(_)) {
            return io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the server answered with TLS (add --tls): {}",
                    ltprotocol::error_chain(err)
                ),
            );
        }
        invalid(err)
    }
}

impl Link for CodecLink {
    async fn connect(addr: SocketAddr, load: &Load) -> io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match &load.tls {
            None => Either::Left(tcp),
            Some(tls) => Either::Right(Box::new(super::tls::connect(tls, addr, tcp).await?)),
        };
        Ok(Self {
            stream,
            codec: load.codec.clone(),
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            first_bytes: None,
        })
    }

    async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.codec
            .encode(frame, &mut self.write_buf)
            .map_err(|e| invalid(&e))?;
        if self.write_buf.len() >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn send_encoded(&mut self, _frame: &Frame, encoded: &EncodedFrame) -> io::Result<()> {
        let bytes = encoded.as_bytes();
        if bytes.len() >= WRITE_BATCH {
            // A frame as large as a batch goes out from its own buffer in one write, not
            // copied into the batch (as the hand-rolled client writes its 1 MiB frames).
            self.flush().await?;
            self.stream.write_all(bytes).await?;
            return self.stream.flush().await;
        }
        self.write_buf.extend_from_slice(bytes);
        if self.write_buf.len() >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
            // TLS may hold records back until flushed; for a `TcpStream` this does nothing.
            self.stream.flush().await?;
        }
        Ok(())
    }

    async fn recv(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self
                .codec
                .decode(&mut self.read_buf)
                .map_err(|e| self.explain(&e))?
            {
                return Ok(Some(frame));
            }
            if self.read_buf.capacity() - self.read_buf.len() < 4096 {
                self.read_buf.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return self
                    .codec
                    .decode_eof(&mut self.read_buf)
                    .map_err(|e| self.explain(&e));
            }
            if self.first_bytes.is_none()
                && let Some(&[a, b]) = self.read_buf.get(..2)
            {
                self.first_bytes = Some([a, b]);
            }
        }
    }

    async fn close(mut self) {
        // The run is over: a failure to say goodbye changes nothing measured. Over TLS this
        // sends close_notify first.
        let _ = self.stream.shutdown().await;
    }
}

/// The runtime path: a [`ReconnectingClient`]; each frame goes through `send` (encoded
/// into its own buffer, queued to the client's writer), replies come from its event stream.
#[derive(Debug)]
pub(super) struct RuntimeLink {
    client: ReconnectingClient<Unknown>,
    events: EventStream<Unknown>,
}

impl Link for RuntimeLink {
    async fn connect(addr: SocketAddr, load: &Load) -> io::Result<Self> {
        let codec = &load.codec;
        let mut builder = ReconnectingClient::<Unknown>::builder(codec.layout().clone());
        builder
            .max_inbound(codec.inbound_limit())
            .max_outbound(codec.outbound_limit());
        if let Some(tls) = &load.tls {
            builder.tls(tls.clone());
        }
        let (client, mut events) = builder.connect(addr.to_string());
        // A bench does not retry: the first failed attempt (refused, or a TLS handshake that
        // fails) ends the run with its reason instead of backing off forever.
        loop {
            match events.next().await {
                Some(Event::Connected(_)) => break,
                Some(Event::ConnectFailed { error, .. }) => {
                    client.close(Duration::from_secs(2)).await;
                    return Err(io::Error::new(
                        error.kind(),
                        format!(
                            "cannot connect to {addr}: {}",
                            ltprotocol::error_chain(error.as_ref())
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the client gave up",
                    ));
                }
            }
        }
        Ok(Self { client, events })
    }

    async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.client
            .send_with(frame, &frame.fields)
            .await
            .map_err(|e| io::Error::other(ltprotocol::error_chain(&e)))
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn recv(&mut self) -> io::Result<Option<Frame>> {
        loop {
            match self.events.next().await {
                Some(Event::Message {
                    message, fields, ..
                }) => {
                    return Ok(Some(Frame {
                        message_type: message.message_type,
                        fields,
                        body: message.body,
                    }));
                }
                Some(Event::Disconnected { reason, .. }) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        ltprotocol::error_chain(&reason),
                    ));
                }
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    async fn close(self) {
        self.client.close(Duration::from_secs(2)).await;
    }
}

fn frame(message_type: i128, body: impl Into<Bytes>) -> Frame {
    Frame::new(MessageType::new(message_type), body.into())
}

/// Sends END and waits for the REPORT: `(count, bytes)`.
async fn end_and_report<L: Link>(link: &mut L) -> io::Result<(u64, u64)> {
    link.send(&frame(END, Bytes::new())).await?;
    link.flush().await?;
    loop {
        let reply = link.recv().await?.ok_or_else(eof)?;
        if reply.message_type.value() == REPORT {
            return super::parse_report(&reply.body).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "REPORT body too short")
            });
        }
    }
}

fn check_report(outcome: &mut Outcome, what: &str, got: (u64, u64), want: (u64, u64)) {
    if got != want {
        outcome.problem(format!(
            "{what}: REPORT says {} frames / {} bytes, expected {} / {}",
            got.0, got.1, want.0, want.1
        ));
    }
}

/// What one connection of a workload did.
struct ConnResult {
    sent: u64,
    report: (u64, u64),
    finished: Instant,
    problems: Vec<String>,
}

/// Every connection's round trips, in one histogram: its memory does not grow with the run's
/// length or its number of connections. Each sample is added after its round trip is timed,
/// under a lock held for a histogram increment.
type SharedLatencies = Arc<Mutex<LatencyRecorder>>;

fn record(latencies: &SharedLatencies, sample: Duration) {
    // A panic elsewhere cannot leave a histogram half-incremented: poisoning is no matter.
    latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(sample);
}

/// Throughput or pingpong over `L`.
pub(super) async fn run<L: Link>(
    load: &Load,
    addr: SocketAddr,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let pingpong = load.mode == "pingpong";
    let progress = Progress::start(load.mode, load.messages, load.duration);
    let barrier = Arc::new(Barrier::new(load.connections + 1));
    let mut tasks = JoinSet::new();
    let parts = load.connections as u64;
    let latencies = SharedLatencies::default();
    for i in 0..parts {
        let quota = load.messages / parts + u64::from(i < load.messages % parts);
        let (load, barrier, done) = (load.clone(), barrier.clone(), progress.counter());
        let latencies = latencies.clone();
        tasks.spawn(async move {
            if pingpong {
                pingpong_conn::<L>(&load, addr, quota, barrier, done, &latencies).await
            } else {
                throughput_conn::<L>(&load, addr, quota, barrier, done).await
            }
        });
    }
    // Taken before the release: on a multi-threaded runtime the senders may finish before
    // this task runs again, and a start taken after would make the run last no time.
    let start = Instant::now();
    barrier.wait().await;
    let mut finished = start;
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(io::Error::other).and_then(|r| r) {
            Ok(conn) => {
                outcome.messages += conn.sent;
                finished = finished.max(conn.finished);
                let body = load.body_size as u64;
                check_report(
                    outcome,
                    load.mode,
                    conn.report,
                    (conn.sent, conn.sent * body),
                );
                for problem in conn.problems {
                    outcome.problem(problem);
                }
            }
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    progress.finish();
    if let Some(err) = failure {
        return Err(anyhow::Error::new(err).context(format!("{} connection failed", load.mode)));
    }
    outcome.deliveries = outcome.messages;
    outcome.elapsed = finished - start;
    if pingpong {
        outcome.latency = latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .latency();
    }
    Ok(())
}

async fn throughput_conn<L: Link>(
    load: &Load,
    addr: SocketAddr,
    quota: u64,
    barrier: Arc<Barrier>,
    done: Arc<AtomicU64>,
) -> io::Result<ConnResult> {
    // Whatever happens, reach the barrier: the others (and the clock) wait for everyone.
    let link = L::connect(addr, load).await;
    barrier.wait().await;
    let mut link = link?;
    let data = frame(DATA, super::pattern_body(load.body_size, 0));
    // Encoded once, as the baselines prepare theirs; the codec path copies it per send.
    let encoded = load
        .codec
        .encode_once(&data, &data.fields)
        .map_err(|e| invalid(&e))?;
    let header_len = load.codec.layout().header_len();
    // Look at the clock about once per 256 KiB sent.
    let check_every = (WRITE_BATCH / (load.body_size + header_len)).max(1) as u64;
    let deadline = load.duration.map(|d| Instant::now() + d);
    let mut sent = 0u64;
    loop {
        if deadline.is_none() && sent >= quota {
            break;
        }
        link.send_encoded(&data, &encoded).await?;
        sent += 1;
        if sent.is_multiple_of(PROGRESS_STEP) {
            done.fetch_add(PROGRESS_STEP, Ordering::Relaxed);
        }
        if let Some(deadline) = deadline
            && sent.is_multiple_of(check_every)
            && Instant::now() >= deadline
        {
            break;
        }
    }
    let report = end_and_report(&mut link).await?;
    let finished = Instant::now();
    link.close().await;
    Ok(ConnResult {
        sent,
        report,
        finished,
        problems: Vec::new(),
    })
}

async fn pingpong_conn<L: Link>(
    load: &Load,
    addr: SocketAddr,
    quota: u64,
    barrier: Arc<Barrier>,
    done: Arc<AtomicU64>,
    latencies: &SharedLatencies,
) -> io::Result<ConnResult> {
    // Whatever happens, reach the barrier: the others (and the clock) wait for everyone.
    let ready = async {
        let mut link = L::connect(addr, load).await?;
        link.send(&frame(ECHO, Bytes::new())).await?;
        // Clean counters, and proof that the server is echoing before the clock starts.
        end_and_report(&mut link).await?;
        io::Result::Ok(link)
    }
    .await;
    barrier.wait().await;
    let mut link = ready?;
    let deadline = load.duration.map(|d| Instant::now() + d);
    let mut problems = Vec::new();
    let mut sent = 0u64;
    loop {
        match deadline {
            Some(deadline) if Instant::now() >= deadline => break,
            None if sent >= quota => break,
            _ => {}
        }
        // A new stamp per round trip, so that a stale echo cannot pass.
        let data = frame(DATA, super::pattern_body(load.body_size, sent));
        let t0 = Instant::now();
        link.send(&data).await?;
        link.flush().await?;
        let echoed = link.recv().await?.ok_or_else(eof)?;
        record(latencies, t0.elapsed());
        sent += 1;
        if sent.is_multiple_of(64) {
            done.fetch_add(64, Ordering::Relaxed);
        }
        if echoed.message_type != data.message_type || echoed.body != data.body {
            problems.push(format!(
                "round trip {sent}: the echo differs from what was sent"
            ));
            break;
        }
    }
    let report = end_and_report(&mut link).await?;
    let finished = Instant::now();
    link.close().await;
    Ok(ConnResult {
        sent,
        report,
        finished,
        problems,
    })
}

/// Fanout: receivers, then a control connection's FANOUT; every receiver checks its share.
pub(super) async fn fanout(
    load: &Load,
    addr: SocketAddr,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let mut control = CodecLink::connect(addr, load).await?;
    end_and_report(&mut control).await?;
    // Each receiver's END → REPORT proves the server has registered it.
    let mut receivers = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let mut link = CodecLink::connect(addr, load).await?;
        end_and_report(&mut link).await?;
        receivers.push(link);
    }
    let deliveries = load.messages * load.connections as u64;
    let progress = Progress::start("fanout", deliveries, None);
    let mut tasks = JoinSet::new();
    for mut link in receivers {
        let done = progress.counter();
        tasks.spawn(async move {
            let (mut count, mut bytes) = (0u64, 0u64);
            loop {
                let got = link.recv().await?.ok_or_else(eof)?;
                match got.message_type.value() {
                    DATA => {
                        count += 1;
                        bytes += got.body.len() as u64;
                        if count % PROGRESS_STEP == 0 {
                            done.fetch_add(PROGRESS_STEP, Ordering::Relaxed);
                        }
                    }
                    END => return io::Result::Ok((count, bytes, Instant::now())),
                    _ => {}
                }
            }
        });
    }
    let size = u32::try_from(load.body_size).unwrap_or(u32::MAX);
    let start = Instant::now();
    control
        .send(&frame(FANOUT, super::fanout_body(load.messages, size)))
        .await?;
    control.flush().await?;
    let report = loop {
        let got = control.recv().await?.ok_or_else(eof)?;
        if got.message_type.value() == REPORT {
            break super::parse_report(&got.body).unwrap_or_default();
        }
    };
    let mut finished = start;
    let want = (load.messages, load.messages * u64::from(size));
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(io::Error::other).and_then(|r| r) {
            Ok((count, bytes, at)) => {
                finished = finished.max(at);
                if (count, bytes) != want {
                    outcome.problem(format!(
                        "a receiver got {count} frames / {bytes} bytes, expected {} / {}",
                        want.0, want.1
                    ));
                }
            }
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    progress.finish();
    if let Some(err) = failure {
        outcome.problem(format!("a receiver failed: {err}"));
    }
    check_report(
        outcome,
        "fanout",
        report,
        (deliveries, deliveries * u64::from(size)),
    );
    outcome.messages = load.messages;
    outcome.deliveries = deliveries;
    outcome.elapsed = finished - start;
    Ok(())
}
