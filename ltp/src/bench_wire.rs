//! The bench wire protocol and what every bench implementation reports alike, written once
//! for all of them: `ltp bench` (its load and its `serve`) and the baselines of the `bench`
//! crate, which `bench/compare.sh` measures against each other.
//!
//! Nothing here opens a socket or names a runtime type such as [`Frame`](ltprotocol::Frame):
//! types are plain `u8` numbers and bodies plain bytes, so that a hand-rolled loop and
//! `ltp bench` build the same bytes from the same functions.
//!
//! # Frames
//!
//! Every frame is a header in the run's layout, carrying the length and the type, then the
//! body (by default `[length u16][type u8][body]`, big-endian, the length counting the whole
//! frame); only the type numbers and the bodies are fixed:
//!
//! | type | name | body | the server's answer |
//! |---:|---|---|---|
//! | 1 | [`DATA`] | opaque ([`pattern_body`] from the clients) | counted; in echo mode also sent back unchanged |
//! | 2 | [`END`] | empty | a REPORT of the DATA counted on this connection since it opened or since the last END; the counters restart |
//! | 3 | [`REPORT`] | [`report_body`]: u64 count of DATA frames, u64 total DATA body bytes, big-endian | (from the server) |
//! | 4 | [`FANOUT`] | [`fanout_body`]: u64 count, u32 body size, big-endian | `count` DATA frames of `size` zero bytes to every *other* connection, then an END to each; then a REPORT to the sender with the deliveries queued and their body bytes; over [`MAX_FANOUT_COUNT`] or the frame limit ([`check_fanout`]), none: the sender's connection is closed |
//! | 5 | [`ECHO`] | empty | none; every later DATA on this connection is echoed |
//!
//! Other types are ignored. A client checks every REPORT against what it sent, so that a fast
//! wrong run cannot count.
//!
//! ```
//! use ltp::bench_wire::{self, REPORT};
//!
//! // The server's answer to END after 3 DATA frames of 16 bytes, in the default layout.
//! let body = bench_wire::report_body(3, 48);
//! let mut frame = vec![0x00, 0x13, REPORT];
//! frame.extend_from_slice(&body);
//! assert_eq!(frame, b"\x00\x13\x03\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0\x30");
//! assert_eq!(bench_wire::parse_report(&body), Some((3, 48)));
//! ```
//!
//! # The result line
//!
//! Each implementation prints its own result line (`implementation` says whose), with the
//! same keys (`ltp bench`'s adds `tls`); what they compute alike is here: a [`Workload`]'s
//! defaults and checks, the round trips gathered in a [`LatencyRecorder`] (an HDR histogram:
//! memory bounded whatever the run's length) and their [`Latency`] percentiles
//! (`latency_us`), resident memory ([`Rss`], [`vm_rss`],
//! [`rss_scope`]) and [`round_to`].
//!
//! # Idle connections
//!
//! The conns workload, [`hold_idle`]: many idle connections, each proven registered with
//! END → REPORT (0, 0), resident memory read before and after, then a round trip on a sample
//! of them. Each client supplies its sockets and framing as [`IdleLinks`].

mod latency;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use latency::{Latency, LatencyRecorder};

/// Opaque body: counted by the server, or echoed back in echo mode.
pub const DATA: u8 = 1;
/// Empty body: "report what you counted on this connection", answered with a [`REPORT`].
pub const END: u8 = 2;
/// Body: [`report_body`], the DATA count and body bytes.
pub const REPORT: u8 = 3;
/// Body: [`fanout_body`]: broadcast that many DATA frames to every other connection.
pub const FANOUT: u8 = 4;
/// Empty body: echo every later DATA on this connection.
pub const ECHO: u8 = 5;

/// A REPORT body: the count of DATA frames, then their total body bytes, each a big-endian
/// u64.
///
/// ```
/// assert_eq!(
///     ltp::bench_wire::report_body(1, 0x0102),
///     [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2]
/// );
/// ```
#[inline]
pub const fn report_body(count: u64, bytes: u64) -> [u8; 16] {
    let [c0, c1, c2, c3, c4, c5, c6, c7] = count.to_be_bytes();
    let [b0, b1, b2, b3, b4, b5, b6, b7] = bytes.to_be_bytes();
    [
        c0, c1, c2, c3, c4, c5, c6, c7, b0, b1, b2, b3, b4, b5, b6, b7,
    ]
}

/// Reads a REPORT body: `(count, bytes)`; `None` when it is shorter than 16 bytes (bytes past
/// the 16th are ignored).
///
/// ```
/// use ltp::bench_wire::{parse_report, report_body};
///
/// assert_eq!(parse_report(&report_body(7, 1 << 40)), Some((7, 1 << 40)));
/// assert_eq!(parse_report(b"short"), None);
/// ```
#[inline]
pub fn parse_report(body: &[u8]) -> Option<(u64, u64)> {
    let (count, rest) = body.split_first_chunk::<8>()?;
    let (bytes, _) = rest.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*count), u64::from_be_bytes(*bytes)))
}

/// A FANOUT body: how many DATA frames to broadcast (big-endian u64), then the size of each
/// one's body (big-endian u32).
///
/// ```
/// assert_eq!(
///     ltp::bench_wire::fanout_body(3, 64),
///     [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 64]
/// );
/// ```
#[inline]
pub const fn fanout_body(count: u64, size: u32) -> [u8; 12] {
    let [c0, c1, c2, c3, c4, c5, c6, c7] = count.to_be_bytes();
    let [s0, s1, s2, s3] = size.to_be_bytes();
    [c0, c1, c2, c3, c4, c5, c6, c7, s0, s1, s2, s3]
}

/// Reads a FANOUT body: `(count, size)`; `None` when it is shorter than 12 bytes (bytes past
/// the 12th are ignored).
///
/// ```
/// use ltp::bench_wire::{fanout_body, parse_fanout};
///
/// assert_eq!(parse_fanout(&fanout_body(3, 64)), Some((3, 64)));
/// assert_eq!(parse_fanout(&[0; 11]), None);
/// ```
#[inline]
pub fn parse_fanout(body: &[u8]) -> Option<(u64, u32)> {
    let (count, rest) = body.split_first_chunk::<8>()?;
    let (size, _) = rest.split_first_chunk::<4>()?;
    Some((u64::from_be_bytes(*count), u32::from_be_bytes(*size)))
}

/// The largest FANOUT `count` a server carries out: 10,000,000 broadcasts.
///
/// The peer chooses the count, and the server loops that many times over every other
/// connection before it answers, so an unbounded u64 would hold the server for ever. Ten
/// million is 1,000 times the fanout default (10,000) and 500 times the largest run of
/// `bench/compare.sh` (20,000); to 100 receivers it is a billion deliveries, about three
/// minutes at the 4 to 7 million a second measured in BENCHMARKS.md.
pub const MAX_FANOUT_COUNT: u64 = 10_000_000;

/// Why a server refuses a FANOUT ([`check_fanout`]); it answers none, and closes the
/// connection that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// More broadcasts than [`MAX_FANOUT_COUNT`].
    #[error("FANOUT count {count} exceeds the maximum {max}")]
    TooMany {
        /// The count asked for.
        count: u64,
        /// [`MAX_FANOUT_COUNT`].
        max: u64,
    },
    /// A DATA frame of that body size would exceed the server's frame limit.
    #[error(
        "FANOUT body size {size}: a {frame}-byte DATA frame exceeds the maximum frame length {max}"
    )]
    TooLarge {
        /// The body size asked for.
        size: u32,
        /// The whole frame that body makes, header included.
        frame: u64,
        /// The server's frame limit.
        max: usize,
    },
}

/// Checks a FANOUT's `count` and body `size` before anything is allocated or sent: each
/// DATA frame, `header_len + size` bytes, must fit `max_frame`, and `count` must not exceed
/// [`MAX_FANOUT_COUNT`]. `ltp bench serve` passes the smaller of its inbound and outbound
/// limits as `max_frame`, the bound `ltp bench MODE` puts on `--body-size`: its receivers
/// run with the same `--layout` and `--max-frame`, and would refuse a larger frame.
///
/// # Errors
///
/// [`FanoutError::TooLarge`], then [`FanoutError::TooMany`], in that order.
///
/// ```
/// use ltp::bench_wire::{FanoutError, MAX_FANOUT_COUNT, check_fanout};
///
/// assert_eq!(check_fanout(10_000, 64, 3, 65_535), Ok(()));
/// assert_eq!(
///     check_fanout(1, 65_533, 3, 65_535),
///     Err(FanoutError::TooLarge { size: 65_533, frame: 65_536, max: 65_535 })
/// );
/// assert_eq!(
///     check_fanout(u64::MAX, 64, 3, 65_535),
///     Err(FanoutError::TooMany { count: u64::MAX, max: MAX_FANOUT_COUNT })
/// );
/// ```
pub fn check_fanout(
    count: u64,
    size: u32,
    header_len: usize,
    max_frame: usize,
) -> Result<(), FanoutError> {
    // In u64, where a u32 size plus a header of at most 64 KiB cannot overflow.
    let frame = u64::from(size).saturating_add(header_len as u64);
    if frame > max_frame as u64 {
        return Err(FanoutError::TooLarge {
            size,
            frame,
            max: max_frame,
        });
    }
    if count > MAX_FANOUT_COUNT {
        return Err(FanoutError::TooMany {
            count,
            max: MAX_FANOUT_COUNT,
        });
    }
    Ok(())
}

/// A DATA body of `size` bytes: byte `i` is `i % 251`, then [`stamp`]ed with `seq`, so that
/// an echo can be checked byte for byte and a stale one told apart.
///
/// ```
/// use ltp::bench_wire::pattern_body;
///
/// assert_eq!(pattern_body(3, 0x0102), [0, 1, 2]);
/// assert_eq!(pattern_body(10, 0x0102), [0, 0, 0, 0, 0, 0, 1, 2, 8, 9]);
/// assert_eq!(pattern_body(300, 0)[260], 9);
/// ```
pub fn pattern_body(size: usize, seq: u64) -> Vec<u8> {
    // 251 is prime, so the pattern does not line up with power-of-two sizes.
    let mut body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    stamp(&mut body, seq);
    body
}

/// Writes `seq` (big-endian) over the first bytes of `body`: its last `body.len()` bytes when
/// the body is shorter than 8.
///
/// ```
/// use ltp::bench_wire::stamp;
///
/// let mut body = [9; 10];
/// stamp(&mut body, 0x0102);
/// assert_eq!(body, [0, 0, 0, 0, 0, 0, 1, 2, 9, 9]);
/// let mut short = [9; 3];
/// stamp(&mut short, 0x0102_0304);
/// assert_eq!(short, [2, 3, 4]);
/// ```
#[inline]
pub fn stamp(body: &mut [u8], seq: u64) {
    let seq = seq.to_be_bytes();
    let n = body.len().min(seq.len());
    if let (Some(dst), Some(src)) = (body.get_mut(..n), seq.get(seq.len() - n..)) {
        dst.copy_from_slice(src);
    }
}

/// A workload's size: `--connections`, `--body-size`, `--messages` and `--duration`, with
/// the defaults every implementation shares so that their figures compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Parallel connections (receivers for fanout, idle connections for conns).
    pub connections: usize,
    /// DATA body size in bytes.
    pub body_size: usize,
    /// DATA frames in all (throughput), round trips in all (pingpong), broadcasts (fanout).
    pub messages: u64,
    /// Run this long instead of `messages` (throughput and pingpong).
    pub duration: Option<Duration>,
}

/// Why [`Workload::new`] refused its options.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// `--duration` negative, not finite or too large for a [`Duration`].
    #[error("--duration {secs}: not a number of seconds")]
    Duration {
        /// The value given.
        secs: f64,
    },
    /// `--duration` for a mode that runs a count of messages (fanout and conns).
    #[error("{mode} takes --messages, not --duration")]
    DurationNotTaken {
        /// The mode.
        mode: &'static str,
    },
    /// `--connections 0`.
    #[error("--connections must be at least 1")]
    NoConnections,
    /// Fanout `--messages` over [`MAX_FANOUT_COUNT`], which a server refuses.
    #[error("--messages {messages}: a FANOUT broadcasts at most {max}")]
    TooManyBroadcasts {
        /// The value given.
        messages: u64,
        /// [`MAX_FANOUT_COUNT`].
        max: u64,
    },
}

impl Workload {
    /// `mode`'s defaults: throughput 1 connection × 1,000,000 frames of 16 bytes; pingpong
    /// 1 × 10,000 round trips of 16 bytes; fanout 100 receivers × 10,000 broadcasts of 64
    /// bytes; conns 1,000 connections (16-byte probes). Any other mode gets throughput's.
    ///
    /// ```
    /// use ltp::bench_wire::Workload;
    ///
    /// let fanout = Workload::defaults("fanout");
    /// assert_eq!((fanout.connections, fanout.body_size, fanout.messages), (100, 64, 10_000));
    /// assert_eq!(fanout.duration, None);
    /// ```
    pub fn defaults(mode: &str) -> Self {
        let (connections, body_size, messages) = match mode {
            "pingpong" => (1, 16, 10_000),
            "fanout" => (100, 64, 10_000),
            "conns" => (1_000, 16, 0),
            _ => (1, 16, 1_000_000),
        };
        Self {
            connections,
            body_size,
            messages,
            duration: None,
        }
    }

    /// `mode`'s [`defaults`](Self::defaults), each replaced by the option given.
    ///
    /// # Errors
    ///
    /// A `duration` (seconds) that is not a [`Duration`], a duration for fanout or conns, no
    /// connections, or fanout `messages` over [`MAX_FANOUT_COUNT`], checked in that order.
    ///
    /// ```
    /// use ltp::bench_wire::{Workload, WorkloadError};
    ///
    /// let pingpong = Workload::new("pingpong", Some(4), None, None, Some(0.5))?;
    /// assert_eq!((pingpong.connections, pingpong.body_size), (4, 16));
    /// assert_eq!(pingpong.duration, Some(std::time::Duration::from_millis(500)));
    /// assert_eq!(
    ///     Workload::new("conns", None, None, None, Some(1.0)),
    ///     Err(WorkloadError::DurationNotTaken { mode: "conns" })
    /// );
    /// # Ok::<(), WorkloadError>(())
    /// ```
    pub fn new(
        mode: &'static str,
        connections: Option<usize>,
        body_size: Option<usize>,
        messages: Option<u64>,
        duration: Option<f64>,
    ) -> Result<Self, WorkloadError> {
        let defaults = Self::defaults(mode);
        let duration = duration
            .map(|secs| {
                Duration::try_from_secs_f64(secs).map_err(|_| WorkloadError::Duration { secs })
            })
            .transpose()?;
        if duration.is_some() && matches!(mode, "fanout" | "conns") {
            return Err(WorkloadError::DurationNotTaken { mode });
        }
        let workload = Self {
            connections: connections.unwrap_or(defaults.connections),
            body_size: body_size.unwrap_or(defaults.body_size),
            messages: messages.unwrap_or(defaults.messages),
            duration,
        };
        if workload.connections == 0 {
            return Err(WorkloadError::NoConnections);
        }
        if mode == "fanout" && workload.messages > MAX_FANOUT_COUNT {
            return Err(WorkloadError::TooManyBroadcasts {
                messages: workload.messages,
                max: MAX_FANOUT_COUNT,
            });
        }
        Ok(workload)
    }
}

/// `x` rounded to `digits` decimal places, as the result line gives its figures.
///
/// ```
/// assert_eq!(ltp::bench_wire::round_to(2.345_678_9, 6), 2.345679);
/// assert_eq!(ltp::bench_wire::round_to(75.44, 1), 75.4);
/// ```
pub fn round_to(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Resident memory measured around a set of idle connections (the conns workload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    /// Resident bytes before the connections were opened.
    pub before: u64,
    /// Resident bytes with every connection open and synchronised.
    pub after: u64,
    /// Whose memory it is, the result line's `rss_scope` (see [`rss_scope`]).
    pub scope: &'static str,
}

impl Rss {
    /// The result line's `rss_bytes`: how much resident memory grew (0 if it shrank).
    ///
    /// ```
    /// use ltp::bench_wire::Rss;
    ///
    /// let rss = Rss { before: 10_000, after: 14_000, scope: "server-pid" };
    /// assert_eq!(rss.grown(), 4_000);
    /// ```
    pub const fn grown(self) -> u64 {
        self.after.saturating_sub(self.before)
    }

    /// The result line's `rss_bytes`, `rss_per_conn_bytes` and `rss_scope` for a run over
    /// `connections` connections: [`grown`](Self::grown), that over `connections` (at least 1)
    /// rounded to a whole byte, and [`scope`](Self::scope); three nulls without a
    /// measurement (every mode but conns).
    ///
    /// ```
    /// use ltp::bench_wire::Rss;
    /// use serde_json::{Value, json};
    ///
    /// let rss = Rss { before: 10_000, after: 14_000, scope: "server-pid" };
    /// assert_eq!(
    ///     Rss::result_fields(Some(rss), 3),
    ///     [json!(4_000), json!(1_333.0), json!("server-pid")]
    /// );
    /// assert_eq!(Rss::result_fields(None, 3), [Value::Null, Value::Null, Value::Null]);
    /// ```
    pub fn result_fields(rss: Option<Self>, connections: usize) -> [Value; 3] {
        match rss {
            Some(rss) => [
                json!(rss.grown()),
                json!((rss.grown() as f64 / connections.max(1) as f64).round()),
                json!(rss.scope),
            ],
            None => [Value::Null, Value::Null, Value::Null],
        }
    }
}

/// `VmRSS` of a process (`None`: this one) in bytes, from `/proc/PID/status`; `None` where it
/// cannot be read (no such process, not Linux).
///
/// ```
/// assert!(ltp::bench_wire::vm_rss(None).is_some_and(|bytes| bytes > 0));
/// ```
pub fn vm_rss(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |pid| format!("/proc/{pid}/status"),
    );
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whose memory a conns run measures, its `rss_scope`: `"server-pid"` given the server's
/// process id; else, with the server in this process, `"server-in-process"`, or
/// `"server-and-client-in-process"` when the client's connections carry TLS sessions here
/// too; else `"client-only"`, which says nothing about the server.
///
/// ```
/// use ltp::bench_wire::rss_scope;
///
/// assert_eq!(rss_scope(Some(4242), false, true), "server-pid");
/// assert_eq!(rss_scope(None, true, false), "server-in-process");
/// assert_eq!(rss_scope(None, true, true), "server-and-client-in-process");
/// assert_eq!(rss_scope(None, false, false), "client-only");
/// ```
pub const fn rss_scope(
    server_pid: Option<u32>,
    in_process: bool,
    client_tls: bool,
) -> &'static str {
    match (server_pid, in_process) {
        (Some(_), _) => "server-pid",
        (None, true) if client_tls => "server-and-client-in-process",
        (None, true) => "server-in-process",
        (None, false) => "client-only",
    }
}

/// Idle connections opened before their END → REPORT synchronisation is read.
const IDLE_CHUNK: usize = 256;

/// The most idle connections probed with a round trip after the measurement.
const IDLE_PROBES: usize = 100;

/// The wait between the last connection's REPORT and the second memory reading, so that the
/// server can release what it holds only while busy.
const IDLE_SETTLE: Duration = Duration::from_millis(200);

/// How [`hold_idle`] opens and talks over idle connections: each client its own sockets
/// (plain or TLS) and framing, blocking.
pub trait IdleLinks {
    /// One open connection.
    type Conn;
    /// Why a connection or a memory reading failed; it ends the run.
    type Error;

    /// Resident memory of the measured process, in bytes (see [`vm_rss`]).
    ///
    /// # Errors
    ///
    /// Memory that cannot be read, where the implementation does not count that as 0.
    fn rss(&mut self) -> Result<u64, Self::Error>;

    /// Opens connection number `index` (from 0) and writes an END on it, without waiting
    /// for the answer.
    ///
    /// # Errors
    ///
    /// The connection could not be opened or written to.
    fn open(&mut self, index: usize) -> Result<Self::Conn, Self::Error>;

    /// Reads the answer to `conn`'s END: whether it is a REPORT of (0, 0).
    ///
    /// # Errors
    ///
    /// No whole answer arrived.
    fn synced(&mut self, conn: &mut Self::Conn) -> Result<bool, Self::Error>;

    /// Writes an ECHO and a DATA of [`pattern_body(16, 0)`](pattern_body) on `conn`, then
    /// reads the echo: whether it is that DATA.
    ///
    /// # Errors
    ///
    /// The probe could not be written, or no whole echo arrived.
    fn round_trip(&mut self, conn: &mut Self::Conn) -> Result<bool, Self::Error>;
}

/// What [`hold_idle`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleRun {
    /// Resident memory before the connections were opened and with all of them open.
    pub rss: Rss,
    /// Time to open and synchronise every connection.
    pub elapsed: Duration,
    /// The round trips on a sample of the idle connections, after the measurement.
    pub probes: Vec<Duration>,
    /// What did not match (one entry a connection).
    pub problems: Vec<String>,
}

/// The conns workload: opens `n` connections, 256 at a time before their END → REPORT
/// answers are read, and checks each REPORT is (0, 0); reads resident memory before the first
/// and 200 ms after the last (so that the server can release what it holds only while busy);
/// then times a round trip on up to 100 of them, spread evenly from the first, and closes
/// them all. `scope` is the figure's [`rss_scope`]. Blocking: run it on a blocking thread.
///
/// # Errors
///
/// The first error of `links`, which ends the run.
///
/// ```
/// use std::convert::Infallible;
/// use ltp::bench_wire::{IdleLinks, hold_idle};
///
/// /// Connections that cost 1,000 bytes each and answer as a bench server does.
/// struct Fake {
///     open: u64,
/// }
///
/// impl IdleLinks for Fake {
///     type Conn = ();
///     type Error = Infallible;
///     fn rss(&mut self) -> Result<u64, Infallible> {
///         Ok((1 << 20) + self.open * 1_000)
///     }
///     fn open(&mut self, _index: usize) -> Result<(), Infallible> {
///         self.open += 1;
///         Ok(())
///     }
///     fn synced(&mut self, _conn: &mut ()) -> Result<bool, Infallible> {
///         Ok(true)
///     }
///     fn round_trip(&mut self, _conn: &mut ()) -> Result<bool, Infallible> {
///         Ok(true)
///     }
/// }
///
/// let run = hold_idle(&mut Fake { open: 0 }, 1_000, "server-in-process")?;
/// assert_eq!(run.rss.grown(), 1_000_000);
/// assert_eq!(run.probes.len(), 100);
/// assert!(run.problems.is_empty());
/// # Ok::<(), Infallible>(())
/// ```
pub fn hold_idle<L: IdleLinks>(
    links: &mut L,
    n: usize,
    scope: &'static str,
) -> Result<IdleRun, L::Error> {
    let before = links.rss()?;
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut problems = Vec::new();
    while conns.len() < n {
        let first = conns.len();
        for index in first..n.min(first + IDLE_CHUNK) {
            conns.push(links.open(index)?);
        }
        for conn in conns.iter_mut().skip(first) {
            if !links.synced(conn)? {
                problems.push("an idle connection's first REPORT was not (0, 0)".to_owned());
            }
        }
    }
    let elapsed = started.elapsed();
    std::thread::sleep(IDLE_SETTLE);
    let after = links.rss()?;

    let mut probes = Vec::new();
    for conn in probed(&mut conns) {
        let t0 = Instant::now();
        let echoed = links.round_trip(conn)?;
        probes.push(t0.elapsed());
        if !echoed {
            problems.push("a probe's echo differs from what was sent".to_owned());
        }
    }
    drop(conns);
    Ok(IdleRun {
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

/// The idle connections to probe: up to [`IDLE_PROBES`] of them, spread evenly from the first.
fn probed<T>(conns: &mut [T]) -> impl Iterator<Item = &mut T> {
    let n = conns.len();
    let step = (n / IDLE_PROBES.min(n).max(1)).max(1);
    conns.iter_mut().step_by(step).take(IDLE_PROBES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_numbers_are_the_protocols() {
        assert_eq!([DATA, END, REPORT, FANOUT, ECHO], [1, 2, 3, 4, 5]);
    }

    #[test]
    fn bodies_are_big_endian_and_round_trip() {
        let report = report_body(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        assert_eq!(
            &report,
            b"\x01\x02\x03\x04\x05\x06\x07\x08\x11\x12\x13\x14\x15\x16\x17\x18"
        );
        assert_eq!(
            parse_report(&report),
            Some((0x0102_0304_0506_0708, 0x1112_1314_1516_1718))
        );
        assert_eq!(parse_report(&report[..15]), None);
        let fanout = fanout_body(u64::MAX - 1, 0x0102_0304);
        assert_eq!(&fanout, b"\xff\xff\xff\xff\xff\xff\xff\xfe\x01\x02\x03\x04");
        assert_eq!(parse_fanout(&fanout), Some((u64::MAX - 1, 0x0102_0304)));
        assert_eq!(parse_fanout(b""), None);
    }

    #[test]
    fn pattern_bodies_repeat_every_251_bytes_under_their_stamp() {
        assert_eq!(pattern_body(0, 7), Vec::<u8>::new());
        let body = pattern_body(600, 0x0a0b);
        assert_eq!(body[..8], [0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        assert!((8..600).all(|i| body[i] == (i % 251) as u8));
    }

    #[test]
    fn probes_spread_over_every_connection() {
        let mut conns: Vec<usize> = (0..10_050).collect();
        let picked: Vec<usize> = probed(&mut conns).map(|c| *c).collect();
        assert_eq!(picked.len(), IDLE_PROBES);
        assert_eq!((picked[1], picked[99]), (100, 9_900));
        let mut conns: Vec<usize> = (0..1_000).collect();
        let picked: Vec<usize> = probed(&mut conns).map(|c| *c).collect();
        assert_eq!((picked.len(), &picked[..3]), (100, &[0, 10, 20][..]));
        assert_eq!(probed(&mut [7, 8, 9]).count(), 3);
        assert_eq!(probed::<u8>(&mut []).count(), 0);
    }

    #[test]
    fn workload_errors_name_the_option() {
        let err = Workload::new("throughput", None, None, None, Some(-1.0)).unwrap_err();
        assert_eq!(err.to_string(), "--duration -1: not a number of seconds");
        let err = Workload::new("fanout", None, None, None, Some(1.0)).unwrap_err();
        assert_eq!(err.to_string(), "fanout takes --messages, not --duration");
        let err = Workload::new("pingpong", Some(0), None, None, None).unwrap_err();
        assert_eq!(err.to_string(), "--connections must be at least 1");
    }
}
