//! The client side of the throughput, pingpong and fanout workloads, generic over how a
//! baseline frames its connection ([`FrameIo`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::Load;
use crate::outcome::{LatencyRecorder, Outcome};
use crate::wire::{self, DATA, ECHO, END, FANOUT, Layout, REPORT};

/// One client connection, framed the way a baseline frames it.
pub trait FrameIo: Sized + Send + 'static {
    /// A frame ready to be written many times (encoded once).
    type Prepared: Clone + Send + Sync + 'static;

    /// Connects (with `TCP_NODELAY`).
    fn connect(addr: SocketAddr, layout: Layout) -> impl Future<Output = io::Result<Self>> + Send;

    /// Encodes a frame.
    fn prepare(layout: Layout, message_type: u8, body: &[u8]) -> Self::Prepared;

    /// Queues a frame for writing (buffered).
    fn feed(&mut self, frame: &Self::Prepared) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes out what is buffered.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// The next frame's type and body; `None` at end of stream.
    fn recv(&mut self) -> impl Future<Output = io::Result<Option<(u8, Bytes)>>> + Send;
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")
}

/// Sends END and waits for the REPORT; returns `(count, bytes)`.
async fn end_and_report<T: FrameIo>(io: &mut T, end: &T::Prepared) -> io::Result<(u64, u64)> {
    io.feed(end).await?;
    io.flush().await?;
    loop {
        let (message_type, body) = io.recv().await?.ok_or_else(eof)?;
        if message_type == REPORT {
            return wire::parse_report(&body)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short REPORT body"));
        }
    }
}

/// What one connection of a workload did.
struct ConnResult {
    sent: u64,
    finished: Instant,
    problems: Vec<String>,
}

/// Every connection's round trips in one HDR histogram, as `ltp bench` gathers them: memory
/// bounded whatever the run's length. Each sample is added after its round trip is timed.
type SharedLatencies = Arc<Mutex<LatencyRecorder>>;

fn check_report(what: &str, got: (u64, u64), want: (u64, u64), problems: &mut Vec<String>) {
    if got != want {
        problems.push(format!(
            "{what}: REPORT says {} frames / {} bytes, expected {} / {}",
            got.0, got.1, want.0, want.1
        ));
    }
}

/// Splits `total` into `parts` shares that differ by at most one.
pub fn shares(total: u64, parts: usize) -> impl Iterator<Item = u64> {
    let parts = parts.max(1) as u64;
    (0..parts).map(move |i| total / parts + u64::from(i < total % parts))
}

/// Runs one workload (`throughput`, `pingpong` or `fanout`) against `addr`.
///
/// # Errors
///
/// A connection failed; a mismatch is not an error but an unverified [`Outcome`].
pub async fn run<T: FrameIo>(
    load: &Load,
    addr: SocketAddr,
    implementation: &'static str,
    client: &'static str,
) -> io::Result<Outcome> {
    let mut outcome = Outcome {
        implementation,
        mode: load.mode,
        client,
        target: addr.to_string(),
        layout: load.layout.name().to_owned(),
        connections: load.connections,
        body_size: load.body_size,
        messages: 0,
        deliveries: 0,
        header_len: load.layout.header_len(),
        elapsed: Duration::ZERO,
        latency: None,
        rss: None,
        verified: false,
        problems: Vec::new(),
    };
    match load.mode {
        "fanout" => fanout::<T>(load, addr, &mut outcome).await?,
        mode => {
            let echo = mode == "pingpong";
            let barrier = Arc::new(Barrier::new(load.connections + 1));
            let latencies = SharedLatencies::default();
            let mut tasks = JoinSet::new();
            for quota in shares(load.messages, load.connections) {
                let barrier = barrier.clone();
                let load = load.clone();
                let latencies = latencies.clone();
                tasks.spawn(async move {
                    if echo {
                        pingpong_conn::<T>(&load, addr, quota, barrier, &latencies).await
                    } else {
                        throughput_conn::<T>(&load, addr, quota, barrier).await
                    }
                });
            }
            barrier.wait().await;
            let start = Instant::now();
            let mut finished = start;
            while let Some(joined) = tasks.join_next().await {
                let conn = joined.map_err(io::Error::other)??;
                outcome.messages += conn.sent;
                finished = finished.max(conn.finished);
                outcome.problems.extend(conn.problems);
            }
            outcome.elapsed = finished - start;
            outcome.deliveries = outcome.messages;
            if echo {
                outcome.latency = latencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .latency();
            }
        }
    }
    outcome.verified = outcome.problems.is_empty();
    Ok(outcome)
}

async fn throughput_conn<T: FrameIo>(
    load: &Load,
    addr: SocketAddr,
    quota: u64,
    barrier: Arc<Barrier>,
) -> io::Result<ConnResult> {
    let layout = load.layout;
    // Whatever happens, reach the barrier: the others (and the clock) wait for everyone.
    let io = T::connect(addr, layout).await;
    barrier.wait().await;
    let mut io = io?;
    let data = T::prepare(layout, DATA, &wire::pattern_body(load.body_size, 0));
    let end = T::prepare(layout, END, &[]);
    // Look at the clock about once per 256 KiB written.
    let check_every = (256 * 1024 / (load.body_size + layout.header_len())).max(1) as u64;
    let deadline = load.duration.map(|d| Instant::now() + d);
    let mut sent = 0u64;
    loop {
        if deadline.is_none() && sent >= quota {
            break;
        }
        io.feed(&data).await?;
        sent += 1;
        if let Some(deadline) = deadline
            && sent.is_multiple_of(check_every)
            && Instant::now() >= deadline
        {
            break;
        }
    }
    let report = end_and_report(&mut io, &end).await?;
    let finished = Instant::now();
    let mut problems = Vec::new();
    check_report(
        "throughput",
        report,
        (sent, sent * load.body_size as u64),
        &mut problems,
    );
    Ok(ConnResult {
        sent,
        finished,
        problems,
    })
}

async fn pingpong_conn<T: FrameIo>(
    load: &Load,
    addr: SocketAddr,
    quota: u64,
    barrier: Arc<Barrier>,
    latencies: &SharedLatencies,
) -> io::Result<ConnResult> {
    let layout = load.layout;
    let end = T::prepare(layout, END, &[]);
    // Whatever happens, reach the barrier: the others (and the clock) wait for everyone.
    let ready = async {
        let mut io = T::connect(addr, layout).await?;
        io.feed(&T::prepare(layout, ECHO, &[])).await?;
        // Start from clean counters (and proof that the server echoes before timing starts).
        end_and_report(&mut io, &end).await?;
        io::Result::Ok(io)
    }
    .await;
    barrier.wait().await;
    let mut io = ready?;
    let deadline = load.duration.map(|d| Instant::now() + d);
    let mut problems = Vec::new();
    let mut sent = 0u64;
    let mut body = wire::pattern_body(load.body_size, 0);
    loop {
        match deadline {
            Some(deadline) if Instant::now() >= deadline => break,
            None if sent >= quota => break,
            _ => {}
        }
        // A new stamp per round trip, so a stale or reordered echo cannot pass.
        wire::stamp(&mut body, sent);
        let frame = T::prepare(layout, DATA, &body);
        let t0 = Instant::now();
        io.feed(&frame).await?;
        io.flush().await?;
        let (message_type, echoed) = io.recv().await?.ok_or_else(eof)?;
        let elapsed = t0.elapsed();
        // A panic elsewhere cannot leave a histogram half-incremented: poisoning is no matter.
        latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(elapsed);
        sent += 1;
        if message_type != DATA || echoed[..] != body[..] {
            problems.push(format!(
                "round trip {sent}: the echo differs from what was sent"
            ));
            break;
        }
    }
    let report = end_and_report(&mut io, &end).await?;
    let finished = Instant::now();
    check_report(
        "pingpong",
        report,
        (sent, sent * load.body_size as u64),
        &mut problems,
    );
    Ok(ConnResult {
        sent,
        finished,
        problems,
    })
}

async fn fanout<T: FrameIo>(
    load: &Load,
    addr: SocketAddr,
    outcome: &mut Outcome,
) -> io::Result<()> {
    let layout = load.layout;
    let end = T::prepare(layout, END, &[]);
    let mut control = T::connect(addr, layout).await?;
    end_and_report(&mut control, &end).await?;
    // Each receiver's END → REPORT proves the server has registered it before the broadcast.
    let mut receivers = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let mut io = T::connect(addr, layout).await?;
        end_and_report(&mut io, &end).await?;
        receivers.push(io);
    }
    let mut tasks = JoinSet::new();
    for mut io in receivers {
        tasks.spawn(async move {
            let (mut count, mut bytes) = (0u64, 0u64);
            loop {
                let (message_type, body) = io.recv().await?.ok_or_else(eof)?;
                match message_type {
                    DATA => {
                        count += 1;
                        bytes += body.len() as u64;
                    }
                    END => return io::Result::Ok((count, bytes, Instant::now())),
                    _ => {}
                }
            }
        });
    }
    let size = u32::try_from(load.body_size).unwrap_or(u32::MAX);
    let command = T::prepare(layout, FANOUT, &wire::fanout_body(load.messages, size));
    let start = Instant::now();
    control.feed(&command).await?;
    control.flush().await?;
    let report = loop {
        let (message_type, body) = control.recv().await?.ok_or_else(eof)?;
        if message_type == REPORT {
            break wire::parse_report(&body).unwrap_or_default();
        }
    };
    let mut finished = start;
    let per_receiver = (load.messages, load.messages * u64::from(size));
    while let Some(joined) = tasks.join_next().await {
        let (count, bytes, at) = joined.map_err(io::Error::other)??;
        finished = finished.max(at);
        if (count, bytes) != per_receiver && outcome.problems.len() < 10 {
            outcome.problems.push(format!(
                "a receiver got {count} frames / {bytes} bytes, expected {} / {}",
                per_receiver.0, per_receiver.1
            ));
        }
    }
    let deliveries = load.messages * load.connections as u64;
    check_report(
        "fanout",
        report,
        (deliveries, deliveries * u64::from(size)),
        &mut outcome.problems,
    );
    outcome.messages = load.messages;
    outcome.deliveries = deliveries;
    outcome.elapsed = finished - start;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        let parts: Vec<u64> = shares(10, 3).collect();
        assert_eq!(parts, vec![4, 3, 3]);
        assert_eq!(shares(2, 4).sum::<u64>(), 2);
    }
}
