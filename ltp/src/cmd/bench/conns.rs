//! The conns workload: idle connections held open, resident memory per connection. The
//! client side uses blocking `std` sockets (no buffers, no runtime registration), so that when
//! the server runs in this process the figure is the server's.
//!
//! Over TLS each client socket carries a rustls session too (its keys and buffers), so an
//! in-process figure then counts both ends (`rss_scope: "server-and-client-in-process"`);
//! `ltp bench serve --tls` with `--server-pid` measures the server alone.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use ltp::bench_wire::{IdleLinks, hold_idle, rss_scope};
use ltprotocol::tls::ClientTls;
use ltprotocol::{Frame, FrameCodec, MessageType};

use super::tls::BlockingStream;
use super::{DATA, ECHO, END, Latency, Load, Outcome, REPORT};

pub(super) use ltp::bench_wire::vm_rss;

pub(super) async fn run(
    load: &Load,
    addr: SocketAddr,
    in_process: bool,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let pid = load.server_pid;
    let scope = rss_scope(pid, in_process, load.tls.is_some());
    let (n, codec, tls) = (load.connections, load.codec.clone(), load.tls.clone());
    let held = tokio::task::spawn_blocking(move || {
        hold_idle(
            &mut Links::new(addr, n, &codec, tls.as_ref(), pid)?,
            n,
            scope,
        )
    })
    .await
    .context("the connections' thread failed")??;
    outcome.elapsed = held.elapsed;
    outcome.rss = Some(held.rss);
    outcome.latency = Latency::of(&held.probes);
    for problem in held.problems {
        outcome.problem(problem);
    }
    Ok(())
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

/// Idle connections to `addr` for [`hold_idle`]: plain sockets or TLS sessions, framed by the
/// run's codec.
struct Links<'a> {
    addr: SocketAddr,
    n: usize,
    codec: FrameCodec,
    tls: Option<&'a ClientTls>,
    pid: Option<u32>,
    end: Vec<u8>,
    /// ECHO, then DATA with `body`.
    probe: Vec<u8>,
    body: Vec<u8>,
}

impl<'a> Links<'a> {
    fn new(
        addr: SocketAddr,
        n: usize,
        codec: &FrameCodec,
        tls: Option<&'a ClientTls>,
        pid: Option<u32>,
    ) -> anyhow::Result<Self> {
        let mut codec = codec.clone();
        let end = encode(&mut codec, END, &[])?;
        let body = super::pattern_body(16, 0);
        let mut probe = encode(&mut codec, ECHO, &[])?;
        probe.extend(encode(&mut codec, DATA, &body)?);
        Ok(Self {
            addr,
            n,
            codec,
            tls,
            pid,
            end,
            probe,
            body,
        })
    }

    fn header_len(&self) -> usize {
        self.codec.layout().header_len()
    }
}

impl IdleLinks for Links<'_> {
    type Conn = Idle;
    type Error = anyhow::Error;

    fn rss(&mut self) -> anyhow::Result<u64> {
        vm_rss(self.pid).context("cannot read VmRSS")
    }

    fn open(&mut self, index: usize) -> anyhow::Result<Idle> {
        let mut sock = Idle::connect(self.addr, self.tls)
            .with_context(|| format!("connection {} of {}", index + 1, self.n))?;
        sock.send(&self.end)?;
        Ok(sock)
    }

    fn synced(&mut self, sock: &mut Idle) -> anyhow::Result<bool> {
        let len = self.header_len() + 16;
        let reply = read_frame(sock, &mut self.codec, len)?;
        let report = super::parse_report(&reply.body);
        Ok(reply.message_type.value() == REPORT && report == Some((0, 0)))
    }

    fn round_trip(&mut self, sock: &mut Idle) -> anyhow::Result<bool> {
        sock.send(&self.probe)?;
        let len = self.header_len() + self.body.len();
        let echoed = read_frame(sock, &mut self.codec, len)?;
        Ok(echoed.message_type.value() == DATA && echoed.body == self.body[..])
    }
}
