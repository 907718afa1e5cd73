//! The conns workload: hold many idle connections open and measure resident memory. The
//! client side uses blocking `std` sockets (no buffers, no runtime registration), so that when
//! the server runs in the same process the figure is the server's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::outcome::{Latency, Rss, vm_rss};
use crate::wire::{self, DATA, ECHO, END, Layout, REPORT};

/// How many connections are opened before their END/REPORT synchronisation is read.
const CHUNK: usize = 256;
/// How many of the idle connections are probed with a round trip after the measurement.
const PROBES: usize = 100;

/// What [`hold`] measured.
#[derive(Debug, Clone)]
pub struct Held {
    /// Memory before and after.
    pub rss: Rss,
    /// Time to open and synchronise every connection.
    pub elapsed: Duration,
    /// Round trips on a sample of the idle connections, after the measurement.
    pub probe_latency: Option<Latency>,
    /// What went wrong.
    pub problems: Vec<String>,
}

/// Opens `n` connections to `addr`, proves each is registered with END → REPORT (0, 0), reads
/// resident memory before and after (of `pid`, or of this process), then probes up to 100 of
/// them with an ECHO + DATA round trip. Blocking: run it on a blocking thread.
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
) -> io::Result<Held> {
    let before = vm_rss(pid).unwrap_or(0);
    let end = layout.frame(END, &[]);
    let report_len = layout.header_len() + 16;
    let started = Instant::now();
    let mut socks = Vec::with_capacity(n);
    let mut problems = Vec::new();
    while socks.len() < n {
        let first = socks.len();
        for _ in first..n.min(first + CHUNK) {
            let mut sock = TcpStream::connect(addr)?;
            sock.set_nodelay(true)?;
            sock.write_all(&end)?;
            socks.push(sock);
        }
        for sock in &mut socks[first..] {
            let mut reply = vec![0; report_len];
            sock.set_read_timeout(Some(Duration::from_secs(30)))?;
            sock.read_exact(&mut reply)?;
            let header = layout.parse_header(&reply).map_err(io::Error::other)?;
            let report = wire::parse_report(&reply[layout.header_len()..]);
            if header != Some((report_len, REPORT)) || report != Some((0, 0)) {
                problems.push("an idle connection's first REPORT was not (0, 0)".to_owned());
            }
        }
    }
    let elapsed = started.elapsed();
    // Let the server settle (release buffers it keeps only while busy) before measuring.
    std::thread::sleep(Duration::from_millis(200));
    let after = vm_rss(pid).unwrap_or(0);

    let mut samples = Vec::new();
    let step = (n / PROBES.min(n)).max(1);
    let body = wire::pattern_body(16, 0);
    let mut frame = layout.frame(ECHO, &[]).to_vec();
    frame.extend_from_slice(&layout.frame(DATA, &body));
    for sock in socks.iter_mut().step_by(step).take(PROBES) {
        let t0 = Instant::now();
        sock.write_all(&frame)?;
        let mut echoed = vec![0; layout.header_len() + body.len()];
        sock.read_exact(&mut echoed)?;
        samples.push(t0.elapsed());
        if echoed[layout.header_len()..] != body[..] {
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
        probe_latency: Latency::of(&mut samples),
        problems,
    })
}

impl Held {
    /// The result line's figures for a conns run.
    pub fn into_outcome(
        self,
        load: &crate::cli::Load,
        target: String,
        implementation: &'static str,
        client: &'static str,
    ) -> crate::outcome::Outcome {
        crate::outcome::Outcome {
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
            elapsed: self.elapsed,
            latency: self.probe_latency,
            rss: Some(self.rss),
            verified: self.problems.is_empty(),
            problems: self.problems,
        }
    }
}
