//! The conns workload: hold many idle connections open and measure resident memory. The
//! client side uses blocking `std` sockets (no buffers, no runtime registration), so that when
//! the server runs in the same process the figure is the server's. The procedure is
//! [`ltp::bench_wire::hold_idle`], as `ltp bench conns`'s; here are its sockets and frames.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use ltp::bench_wire::{IdleLinks, IdleRun, hold_idle};

use crate::outcome::{Latency, Outcome, vm_rss};
use crate::wire::{self, DATA, ECHO, END, Layout, REPORT};

/// Opens `n` connections to `addr`, proves each is registered with END → REPORT (0, 0), reads
/// resident memory before and after (of `pid`, or of this process; 0 where it cannot be read),
/// then probes up to 100 of them with an ECHO + DATA round trip ([`hold_idle`]). Blocking: run
/// it on a blocking thread.
///
/// # Errors
///
/// A connection could not be opened or answered nothing.
pub fn hold(
    addr: SocketAddr,
    n: usize,
    layout: Layout,
    pid: Option<u32>,
    scope: &'static str,
) -> io::Result<IdleRun> {
    let body = wire::pattern_body(16, 0);
    let mut probe = layout.frame(ECHO, &[]).to_vec();
    probe.extend_from_slice(&layout.frame(DATA, &body));
    let mut links = Links {
        addr,
        layout,
        pid,
        end: layout.frame(END, &[]),
        probe,
        body,
    };
    hold_idle(&mut links, n, scope)
}

/// The result line's figures for a conns run.
pub fn outcome(
    held: IdleRun,
    load: &crate::cli::Load,
    target: String,
    implementation: &'static str,
    client: &'static str,
) -> Outcome {
    Outcome {
        implementation,
        mode: "conns",
        client,
        target,
        layout: load.layout.name().to_owned(),
        connections: load.connections,
        body_size: 16,
        messages: 0,
        deliveries: 0,
        header_len: load.layout.header_len(),
        elapsed: held.elapsed,
        latency: Latency::of(&held.probes),
        rss: Some(held.rss),
        verified: held.problems.is_empty(),
        problems: held.problems,
    }
}

/// Plain sockets to `addr`, framed in `layout`.
struct Links {
    addr: SocketAddr,
    layout: Layout,
    pid: Option<u32>,
    end: Bytes,
    /// ECHO, then DATA with `body`.
    probe: Vec<u8>,
    body: Vec<u8>,
}

impl IdleLinks for Links {
    type Conn = TcpStream;
    type Error = io::Error;

    fn rss(&mut self) -> io::Result<u64> {
        Ok(vm_rss(self.pid).unwrap_or(0))
    }

    fn open(&mut self, _index: usize) -> io::Result<TcpStream> {
        let mut sock = TcpStream::connect(self.addr)?;
        sock.set_nodelay(true)?;
        sock.write_all(&self.end)?;
        Ok(sock)
    }

    fn synced(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        let report_len = self.layout.header_len() + 16;
        let mut reply = vec![0; report_len];
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        sock.read_exact(&mut reply)?;
        let header = self.layout.parse_header(&reply).map_err(io::Error::other)?;
        let report = wire::parse_report(&reply[self.layout.header_len()..]);
        Ok(header == Some((report_len, REPORT)) && report == Some((0, 0)))
    }

    fn round_trip(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        sock.write_all(&self.probe)?;
        let mut echoed = vec![0; self.layout.header_len() + self.body.len()];
        sock.read_exact(&mut echoed)?;
        Ok(echoed[self.layout.header_len()..] == self.body[..])
    }
}
