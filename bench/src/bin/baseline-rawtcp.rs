//! The raw TCP sink: the ceiling for one-way throughput, with no framing at all (issue #9's
//! "a tokio loop writing 256 KiB chunks and discarding them"). A current-thread runtime.
//!
//! * `serve`: for each connection, reads into one 256 KiB buffer and discards, counting bytes;
//!   at end of stream writes the count (u64, big-endian) and closes. `--layout` is accepted and
//!   ignored, so `compare.sh` starts it as it starts the other servers.
//! * `throughput`: writes 256 KiB chunks of zeros for `--duration` seconds (or `--messages`
//!   frames' worth), shuts its write side, reads the count and checks it against what it sent,
//!   so that a fast wrong run cannot count. Without `--target` it starts a sink in-process.
//!
//! The result line has the keys of the other baselines'. `messages` and `msgs_per_sec` count
//! frames' worth of bytes: bytes sent / (`--body-size` + the `--layout` header). A timed run
//! stops at the first whole number of such frames after its deadline (the last write is a
//! partial chunk), so `messages × (body_size + header)` is exactly the bytes sent and
//! `wire_mb_per_sec` is the sink's true byte rate, comparable with the framed rows.
//!
//! 256 KiB writes are issue #9's definition of the sink, not the fastest way to move bytes:
//! on a 2-core loopback the size of each `write(2)` matters most, so a framed client that
//! writes a whole 1 MiB frame per call (the hand-rolled one does) can outrun this sink.
//!
//! ```text
//! cargo run --release -p bench --bin baseline-rawtcp -- serve --listen 127.0.0.1:0
//! cargo run --release -p bench --bin baseline-rawtcp -- throughput --target ADDR --body-size 65532 --duration 2
//! cargo run --release -p bench --bin baseline-rawtcp -- throughput --layout u32 --body-size 1048576
//! ```

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::Instant;

use bench::app::{resolve, serve_command};
use bench::cli::{Load, LoadArgs, ServeArgs, runtime};
use bench::drive::shares;
use bench::outcome::Outcome;

/// The sink's read buffer and the client's write size.
const CHUNK: usize = 256 * 1024;

/// A raw TCP sink, or its client.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reads and discards, then answers the byte count; prints `{"event":"listening","addr":…}`.
    Serve(ServeArgs),
    /// Writes 256 KiB chunks of zeros, shuts its write side, checks the sink's byte count.
    Throughput(LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("rawtcp: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve_command(args, |listener, _| sink(listener)).await,
            Command::Throughput(args) => throughput(&args).await,
        }
    });
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rawtcp: {err}");
            ExitCode::from(1)
        }
    }
}

// ---- server ----

async fn sink(listener: TcpListener) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(drain(stream));
            }
            // Out of file descriptors and the like: pause rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Reads until end of stream, discarding, then writes the byte count and closes.
async fn drain(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    let mut count = 0u64;
    loop {
        match stream.read(&mut buf).await? {
            0 => break,
            n => count += n as u64,
        }
    }
    stream.write_all(&count.to_be_bytes()).await?;
    stream.shutdown().await
}

// ---- client ----

/// What one connection sent, when its count came back, and what did not match.
struct Sent {
    bytes: u64,
    finished: Instant,
    problem: Option<String>,
}

async fn throughput(args: &LoadArgs) -> Result<ExitCode, String> {
    let load = Load::new("throughput", args)?;
    let (addr, target) = match &args.target {
        Some(target) => {
            let addr = resolve(target).await?;
            (addr, addr.to_string())
        }
        None => {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot start the in-process sink: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tokio::spawn(sink(listener));
            (addr, "in-process".to_owned())
        }
    };
    let frame_len = (load.body_size + load.layout.header_len()) as u64;
    let barrier = Arc::new(Barrier::new(load.connections + 1));
    let mut tasks = JoinSet::new();
    for quota in shares(load.messages, load.connections) {
        let barrier = barrier.clone();
        let duration = load.duration;
        tasks.spawn(async move { send(addr, frame_len, quota, duration, barrier).await });
    }
    barrier.wait().await;
    let start = Instant::now();
    let (mut bytes, mut finished, mut problems) = (0u64, start, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let sent = joined
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("throughput: {e}"))?;
        bytes += sent.bytes;
        finished = finished.max(sent.finished);
        problems.extend(sent.problem);
    }
    let frames = bytes / frame_len;
    let outcome = Outcome {
        implementation: "rawtcp",
        mode: "throughput",
        client: "write256k",
        target,
        layout: load.layout.name().to_owned(),
        connections: load.connections,
        body_size: load.body_size,
        messages: frames,
        deliveries: frames,
        header_len: load.layout.header_len(),
        elapsed: finished - start,
        latency: None,
        rss: None,
        verified: problems.is_empty(),
        problems,
    };
    println!("{}", outcome.to_json());
    Ok(if outcome.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One connection: `quota` frames' worth of bytes, or with a `duration` 256 KiB chunks until
/// it has passed and then up to a whole number of frames; then the sink's count.
async fn send(
    addr: SocketAddr,
    frame_len: u64,
    quota: u64,
    duration: Option<Duration>,
    barrier: Arc<Barrier>,
) -> io::Result<Sent> {
    // Whatever happens, reach the barrier: the others (and the clock) wait for everyone.
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream.set_nodelay(true).map(|()| stream),
        Err(err) => Err(err),
    };
    barrier.wait().await;
    let mut stream = stream?;
    let chunk = vec![0; CHUNK];
    let mut sent = 0u64;
    let total = match duration {
        Some(duration) => {
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                stream.write_all(&chunk).await?;
                sent += CHUNK as u64;
            }
            sent.div_ceil(frame_len) * frame_len
        }
        None => quota * frame_len,
    };
    while sent < total {
        // At most one chunk: the cast cannot truncate.
        let n = (total - sent).min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        sent += n as u64;
    }
    stream.shutdown().await?;
    let mut count = [0; 8];
    stream.read_exact(&mut count).await?;
    let finished = Instant::now();
    let count = u64::from_be_bytes(count);
    let problem = (count != sent)
        .then(|| format!("throughput: the sink counted {count} bytes, expected {sent}"));
    Ok(Sent {
        bytes: sent,
        finished,
        problem,
    })
}
