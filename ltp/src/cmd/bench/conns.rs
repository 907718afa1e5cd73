//! The conns workload: idle connections held open, resident memory per connection. The
//! client side uses blocking `std` sockets (no buffers, no runtime registration), so that when
//! the server runs in this process the figure is the server's.
//!
//! Over TLS each client socket carries a rustls session too (its keys and buffers), so an
//! in-process figure then counts both ends (`rss_scope: "server-and-client-in-process"`);
//! `ltp bench serve --tls` with `--server-pid` measures the server alone.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use ltprotocol::tls::ClientTls;
use ltprotocol::{Frame, FrameCodec, MessageType};

use super::tls::BlockingStream;
use super::{DATA, ECHO, END, Latency, Load, Outcome, REPORT, Rss};

/// Connections opened before their END → REPORT synchronisation is read.
const CHUNK: usize = 256;
/// Idle connections probed with a round trip after the measurement.
const PROBES: usize = 100;
/// File descriptors kept free for everything else.
const SPARE_FDS: u64 = 64;

pub(super) async fn run(
    load: &Load,
    addr: SocketAddr,
    in_process: bool,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let (pid, scope) = match (load.server_pid, in_process) {
        (Some(pid), _) => (Some(pid), "server-pid"),
        (None, true) if load.tls.is_some() => (None, "server-and-client-in-process"),
        (None, true) => (None, "server-in-process"),
        (None, false) => (None, "client-only"),
    };
    // In-process, each connection costs two descriptors here: ours and the server's.
    let needed = load.connections as u64 * if in_process { 2 } else { 1 } + SPARE_FDS;
    if let Some(limit) = open_files_limit()
        && needed > limit
    {
        anyhow::bail!(
            "{} connections need about {needed} file descriptors{}, above this process's limit \
             of {limit}: raise it (ulimit -n) or use fewer",
            load.connections,
            if in_process {
                " (both ends in this process)"
            } else {
                ""
            },
        );
    }
    let (n, codec, tls) = (load.connections, load.codec.clone(), load.tls.clone());
    let held = tokio::task::spawn_blocking(move || hold(addr, n, &codec, tls.as_ref(), pid, scope))
        .await
        .context("the connections' thread failed")??;
    outcome.elapsed = held.elapsed;
    outcome.rss = Some(held.rss);
    outcome.latency = Latency::of(&mut held.probes.clone());
    for problem in held.problems {
        outcome.problem(problem);
    }
    Ok(())
}

struct Held {
    rss: Rss,
    elapsed: Duration,
    probes: Vec<Duration>,
    problems: Vec<String>,
}

fn encode(codec: &mut FrameCodec, message_type: i128, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut buf = BytesMut::new();
    let frame = Frame::new(MessageType::new(message_type), Bytes::copy_from_slice(body));
    codec.encode(frame, &mut buf)?;
    Ok(buf.to_vec())
}

/// An idle connection: a plain socket, or a TLS session over one (boxed: a rustls session is
/// large, a socket is not).
enum Idle {
    Plain(TcpStream),
    Tls(Box<BlockingStream>),
}

impl Idle {
    fn connect(addr: SocketAddr, tls: Option<&ClientTls>) -> io::Result<Self> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        // Also bounds the TLS handshake below.
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(match tls {
            None => Self::Plain(sock),
            Some(tls) => Self::Tls(Box::new(super::tls::connect_blocking(tls, addr, sock)?)),
        })
    }

    /// Writes `bytes` whole and out (a TLS session may otherwise hold them back).
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(sock) => sock.write_all(bytes),
            Self::Tls(stream) => {
                stream.write_all(bytes)?;
                stream.flush()
            }
        }
    }
}

impl Read for Idle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(sock) => sock.read(buf),
            Self::Tls(stream) => stream.read(buf),
        }
    }
}

/// Reads exactly one frame of `len` bytes from `sock` and decodes it.
fn read_frame(sock: &mut Idle, codec: &mut FrameCodec, len: usize) -> anyhow::Result<Frame> {
    let mut raw = vec![0; len];
    sock.read_exact(&mut raw).with_context(|| {
        let hint = match sock {
            Idle::Plain(_) => " (if it serves TLS, add --tls)",
            Idle::Tls(_) => "",
        };
        format!("no {len}-byte reply from the server{hint}")
    })?;
    let mut buf = BytesMut::from(&raw[..]);
    codec
        .decode(&mut buf)?
        .context("the server's reply was not one whole frame")
}

fn hold(
    addr: SocketAddr,
    n: usize,
    codec: &FrameCodec,
    tls: Option<&ClientTls>,
    pid: Option<u32>,
    scope: &'static str,
) -> anyhow::Result<Held> {
    let mut codec = codec.clone();
    let header_len = codec.layout().header_len();
    let end = encode(&mut codec, END, &[])?;
    let before = vm_rss(pid).context("cannot read VmRSS")?;
    let started = Instant::now();
    let mut socks: Vec<Idle> = Vec::with_capacity(n);
    let mut problems = Vec::new();
    while socks.len() < n {
        let first = socks.len();
        for _ in first..n.min(first + CHUNK) {
            let mut sock = Idle::connect(addr, tls)
                .with_context(|| format!("connection {} of {n}", socks.len() + 1))?;
            sock.send(&end)?;
            socks.push(sock);
        }
        for sock in socks.iter_mut().skip(first) {
            let reply = read_frame(sock, &mut codec, header_len + 16)?;
            let report = super::parse_report(&reply.body);
            if reply.message_type.value() != REPORT || report != Some((0, 0)) {
                problems.push("an idle connection's first REPORT was not (0, 0)".to_owned());
            }
        }
    }
    let elapsed = started.elapsed();
    // Let the server settle (drop what it holds only while busy) before measuring.
    std::thread::sleep(Duration::from_millis(200));
    let after = vm_rss(pid).context("cannot read VmRSS")?;

    let body = super::pattern_body(16, 0);
    let mut probe = encode(&mut codec, ECHO, &[])?;
    probe.extend(encode(&mut codec, DATA, &body)?);
    let step = (n / PROBES.min(n)).max(1);
    let mut probes = Vec::new();
    for sock in socks.iter_mut().step_by(step).take(PROBES) {
        let t0 = Instant::now();
        sock.send(&probe)?;
        let echoed = read_frame(sock, &mut codec, header_len + body.len())?;
        probes.push(t0.elapsed());
        if echoed.message_type.value() != DATA || echoed.body != body[..] {
            problems.push("a probe's echo differs from what was sent".to_owned());
        }
    }
    drop(socks);
    Ok(Held {
        rss: Rss {
            before,
            after,
            scope,
        },
        elapsed,
        probes,
        problems,
    })
}

/// `VmRSS` of a process (`None`: this one), in bytes.
pub(super) fn vm_rss(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
