//! `ltp bench`: a load generator with its own target server, or either half alone.
//!
//! * `ltp bench serve [--listen ADDR]`: the counting / echoing / broadcasting server only,
//!   built on [`ltprotocol::Server`] and a [`Handler`](ltprotocol::Handler), so that the
//!   figures measure the library. It prints `{"event":"listening","addr":"127.0.0.1:PORT"}`
//!   first (use port 0 and read the real one), and runs until SIGINT or SIGTERM.
//! * `ltp bench MODE [--target ADDR]`: one workload against any server speaking the protocol
//!   below; without `--target` it starts its own server in this process on `127.0.0.1:0`.
//!
//! # Modes
//!
//! * `throughput`: `--connections` parallel senders pipeline DATA frames one way, then END,
//!   and check the REPORT. Figures: `msgs_per_sec`, `mb_per_sec` (body bytes) and
//!   `wire_mb_per_sec` (header included). `--client codec` (the default) frames with
//!   [`ltprotocol::FrameCodec`] into a 256 KiB write buffer over a plain `TcpStream`;
//!   `--client runtime` sends each frame through [`ltprotocol::ReconnectingClient::send`]
//!   (an encode into a fresh buffer and a trip through its outbox per frame).
//! * `pingpong`: each connection switches the server to echo (ECHO), then keeps one DATA in
//!   flight and checks each echo byte for byte. Figures: round trips per second
//!   (`msgs_per_sec`) and `latency_us` `{p50, p99, p999, max}`, from one HDR histogram that
//!   every connection records into ([`ltp::bench_wire::LatencyRecorder`]: 3 significant
//!   digits, the maximum exact), so that a `--duration` run of any length holds the same
//!   memory.
//! * `fanout`: `--connections` receivers connect (each proven registered by an END → REPORT),
//!   then a control connection sends FANOUT; the server broadcasts `--messages` DATA frames to
//!   every receiver, then END. Every receiver checks its count and bytes. Figures: deliveries
//!   per second (`msgs_per_sec`, `deliveries`). Receivers and control always use the codec path.
//! * `conns`: `--connections` idle connections are opened (plain blocking sockets, no buffers,
//!   so they add next to nothing) and each proven registered by END → REPORT; resident memory
//!   (`VmRSS` of `/proc/PID/status`) is read before and after. In-process that is the server's
//!   process (`rss_scope: "server-in-process"`); with `--target` and `--server-pid PID` it is
//!   that process (`"server-pid"`); with `--target` alone only this client's own memory can be
//!   read (`"client-only"`, which says nothing about the server). Then up to 100 of the idle
//!   connections are probed with a round trip (`latency_us`).
//!
//! Every load mode first makes room for its connections: when this process's open-files soft
//! limit is too low for them (two descriptors each in-process, one with `--target`, plus 64),
//! it is raised up to the hard limit (logged at `LTP_LOG=info`); when even the hard limit is
//! too low, the run fails at once with one line naming it.
//! * `soak [--duration DURATION] [--connections N]`: always in-process; a relaying server and N
//!   reconnecting clients that send sequence-numbered messages and drop their connections at
//!   random. Its result line has its own keys (see [`soak`]): sent, delivered, lost,
//!   duplicated, unsent, relay order checks, reconnects and RSS at start, middle and end.
//!
//! # TLS
//!
//! `--tls` runs throughput, pingpong, fanout and conns over TLS (soak has no `--tls`), with
//! rustls's `ring` provider as [`ltprotocol::tls`] uses; nothing is left unverified:
//!
//! * in-process, the server gets a self-signed ECDSA P-256 certificate for `127.0.0.1` and
//!   `localhost`, made in memory at start (rcgen), and the client trusts that certificate and
//!   nothing else;
//! * split, `ltp bench serve --tls --tls-ca-out FILE` writes that certificate (PEM) before its
//!   `listening` line, and `ltp bench MODE --target ADDR --tls --ca FILE` trusts it
//!   (`--server-name` as in `ltp connect`; without `--ca`, the system's roots). `ltp bench
//!   serve --tls --tls-cert FILE --tls-key FILE` presents a certificate of one's own instead.
//!
//! The server is [`ServerBuilder::tls`](ltprotocol::ServerBuilder::tls); `--client runtime` is
//! [`ClientBuilder::tls`](ltprotocol::ClientBuilder::tls); the codec path wraps its
//! `TcpStream` in tokio-rustls's `TlsConnector` (the 256 KiB write buffer is written through
//! it and flushed); conns's blocking sockets carry a `rustls::StreamOwned` each, so that an
//! in-process conns run counts the client's TLS sessions too and says so
//! (`rss_scope: "server-and-client-in-process"`; measure `ltp bench serve --tls` with
//! `--server-pid` for the server alone). The result line says `"tls": true`.
//!
//! # Output
//!
//! A progress bar on stderr when stderr is a terminal; one final JSON line on stdout:
//!
//! ```text
//! {"event":"result","implementation":"ltp","mode":"throughput","client":"codec",
//!  "target":"in-process","layout":"ltprotocol","tls":false,"connections":1,"body_size":16,
//!  "messages":1000000,"deliveries":1000000,"elapsed_secs":0.21,"msgs_per_sec":4.7e6,
//!  "mb_per_sec":75.4,"wire_mb_per_sec":89.5,"latency_us":null,"rss_bytes":null,
//!  "rss_per_conn_bytes":null,"rss_scope":null,"verified":true,"problems":[]}
//! ```
//!
//! `latency_us` is an object for pingpong and conns, `rss_*` are set for conns, rates are null
//! for conns. Exit code 0 when every REPORT and echo matched (`verified: true`), 1 when one
//! did not (`problems` says which) or the run failed, 2 for bad options.
//!
//! # The bench wire protocol
//!
//! Fixed, so that any implementation can drive `ltp bench serve` or be driven by
//! `ltp bench MODE --target` (the baselines in `bench/` do both, with the same type numbers,
//! bodies and result-line figures from [`ltp::bench_wire`]). In the default layout
//! (`[length u16][type u8][body]`, big-endian, the length counting the whole frame; any other
//! `--layout` works the same way with these type numbers):
//!
//! | type | name | body | the server's answer |
//! |---:|---|---|---|
//! | 1 | DATA | opaque | counted; in echo mode also sent back unchanged |
//! | 2 | END | empty | REPORT of the DATA counted on this connection since it opened or since the last END; the counters restart |
//! | 3 | REPORT | u64 count of DATA frames, u64 total DATA body bytes, big-endian | (from the server) |
//! | 4 | FANOUT | u64 count, u32 body size, big-endian | `count` DATA frames of `size` zero bytes to every *other* connection, then an END to each; then a REPORT to the sender with the deliveries queued and their body bytes; a count over 10,000,000 or a DATA frame over the frame limit gets none: the sender's connection is closed |
//! | 5 | ECHO | empty | none; every later DATA on this connection is echoed |
//!
//! Other types are ignored. A one-way run ends when the REPORT arrives; the client checks
//! that its count and bytes equal what it sent, so a fast wrong run cannot count.

mod client;
mod conns;
mod open_files;
mod progress;
mod server;
mod soak;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use bytes::Bytes;
use ltp::ConfigError;
use ltp::bench_wire::{self, Workload, round_to};
use ltprotocol::tls::{ClientTls, ServerTls};
use ltprotocol::{FrameCodec, HeaderLayout, Int};

pub(crate) use ltp::bench_wire::{Latency, Rss, parse_fanout, parse_report, pattern_body};

// The bench message types of `bench_wire`, widened to `MessageType` values.
pub(crate) const DATA: i128 = bench_wire::DATA as i128;
pub(crate) const END: i128 = bench_wire::END as i128;
pub(crate) const REPORT: i128 = bench_wire::REPORT as i128;
pub(crate) const FANOUT: i128 = bench_wire::FANOUT as i128;
pub(crate) const ECHO: i128 = bench_wire::ECHO as i128;

/// `ltp bench` options.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The counting / echoing / broadcasting server only; prints the `listening` line first.
    Serve(ServeArgs),
    /// One-way pipelined DATA, then END; checks the REPORT.
    Throughput(StreamArgs),
    /// One DATA in flight per connection, echoed back; latency percentiles.
    Pingpong(StreamArgs),
    /// A broadcast to `--connections` receivers, `--messages` times.
    Fanout(FanoutArgs),
    /// `--connections` idle connections held open; resident memory per connection.
    Conns(ConnsArgs),
    /// Relaying server and reconnecting clients dropping links at random: nothing lost.
    Soak(soak::SoakArgs),
}

/// Options about the wire, shared by the server and the load.
#[derive(Debug, Clone, Args)]
struct WireArgs {
    /// Header layout: `ltprotocol`, `openflow`, `u32` (`[length u32][type u8]`, for bodies
    /// past 64 KiB), or a TOML file.
    #[arg(long, default_value = "ltprotocol", value_name = "NAME|FILE")]
    layout: String,
    /// The largest whole frame (header included) accepted or sent, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<usize>,
    /// Bytes of frames each server connection may have queued (a broadcast that finds it full
    /// drops that client as a slow reader). Default: the library's, 1 MiB.
    #[arg(long, value_name = "BYTES")]
    outbox_bytes: Option<usize>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (see the `listening` line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Serve TLS, with a self-signed certificate for 127.0.0.1 and localhost made in memory
    /// at start (ECDSA P-256), or with `--tls-cert` and `--tls-key`.
    #[arg(long)]
    tls: bool,
    /// With `--tls`: present this certificate chain (PEM) instead of a generated one.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// With `--tls`: write the generated certificate (PEM) to this file before the
    /// `listening` line, for the load's `--ca`.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "tls_cert"
    )]
    tls_ca_out: Option<PathBuf>,
    /// How the server receives DATA: `inspect` counts it in place in the read buffer
    /// (`Handler::inspect`); `frame` takes every frame as a frame-level `Unknown` (type,
    /// fields, `Bytes` body) and counts DATA in `Handler::message`; `typed-async` (or
    /// `typed`) decodes every frame into a derived protocol enum and takes it through
    /// `Handler::message`, the ordinary path.
    #[arg(long, value_enum, default_value_t = server::Api::Inspect)]
    api: server::Api,
    #[command(flatten)]
    wire: WireArgs,
    /// Capture every connection (see `ltp serve --pcap`): what the capture costs.
    #[command(flatten)]
    pcap: crate::cmd::pcap::PcapArgs,
}

impl ServeArgs {
    /// The server's TLS settings (`None` without `--tls`); writes `--tls-ca-out`.
    fn server_tls(&self) -> anyhow::Result<Option<ServerTls>> {
        if !self.tls {
            return Ok(None);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let tls = ServerTls::from_pem_files(cert, key)
                .map_err(|err| ConfigError::Invalid(ltprotocol::error_chain(&err)))?;
            return Ok(Some(tls));
        }
        let generated = tls::Generated::new()?;
        if let Some(path) = &self.tls_ca_out {
            generated.write_pem(path)?;
        }
        Ok(Some(generated.server()?))
    }
}

/// How the load is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientPath {
    /// `FrameCodec` encoding into a 256 KiB buffer written to a `TcpStream`.
    Codec,
    /// `ReconnectingClient::send` per frame, replies from its event stream.
    Runtime,
}

impl ClientPath {
    fn name(self) -> &'static str {
        match self {
            Self::Codec => "codec",
            Self::Runtime => "runtime",
        }
    }
}

/// Where the load goes and how it is carried: every load mode's options.
#[derive(Debug, Args)]
struct TargetArgs {
    /// The server to load; without it one is started in this process on 127.0.0.1:0.
    #[arg(long, value_name = "ADDR")]
    target: Option<String>,
    /// Run over TLS. In-process, the server gets a self-signed certificate made at start and
    /// the client trusts that certificate only; with `--target`, the server's certificate is
    /// checked against `--ca` (or the system's roots) and `--server-name`.
    #[arg(long)]
    tls: bool,
    /// With `--tls --target`: trust the CAs in this bundle (PEM), e.g. the file written by
    /// `ltp bench serve --tls --tls-ca-out FILE`, instead of the system's roots.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "target"])]
    ca: Option<PathBuf>,
    /// With `--tls --target`: the name the server's certificate must carry (default: the
    /// host part of `--target`).
    #[arg(long, value_name = "NAME", requires_all = ["tls", "target"])]
    server_name: Option<String>,
    #[command(flatten)]
    wire: WireArgs,
}

/// `ltp bench throughput` and `ltp bench pingpong` options.
#[derive(Debug, Args)]
struct StreamArgs {
    /// Parallel connections, the messages shared between them. Default: 1.
    #[arg(long, value_name = "N")]
    connections: Option<usize>,
    /// DATA body size. Default: 16.
    #[arg(long, value_name = "BYTES")]
    body_size: Option<usize>,
    /// DATA frames in all (throughput) or round trips in all (pingpong). Defaults:
    /// throughput 1,000,000; pingpong 10,000.
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    messages: Option<u64>,
    /// Run for this long instead of a message count.
    #[arg(long, value_name = "DURATION", value_parser = ltp::duration::parse)]
    duration: Option<Duration>,
    /// The sending path.
    #[arg(long, value_enum, default_value_t = ClientPath::Codec)]
    client: ClientPath,
    #[command(flatten)]
    target: TargetArgs,
}

/// `ltp bench fanout` options.
#[derive(Debug, Args)]
struct FanoutArgs {
    /// Receivers of every broadcast. Default: 100.
    #[arg(long, value_name = "N")]
    connections: Option<usize>,
    /// DATA body size. Default: 64.
    #[arg(long, value_name = "BYTES")]
    body_size: Option<usize>,
    /// Broadcasts: each is one DATA to every receiver. Default: 10,000.
    #[arg(long, value_name = "N")]
    messages: Option<u64>,
    #[command(flatten)]
    target: TargetArgs,
}

/// `ltp bench conns` options.
#[derive(Debug, Args)]
struct ConnsArgs {
    /// Idle connections held open. Default: 1,000. The open-files soft limit is raised
    /// toward the hard limit when they need more descriptors.
    #[arg(long, value_name = "N")]
    connections: Option<usize>,
    /// With `--target`: the server's process id, whose memory is then measured.
    #[arg(long, value_name = "PID", requires = "target")]
    server_pid: Option<u32>,
    #[command(flatten)]
    target: TargetArgs,
}

/// A load mode's options, whichever subcommand gave them (what it does not take is `None`).
#[derive(Debug, Clone, Copy)]
struct LoadOptions {
    connections: Option<usize>,
    body_size: Option<usize>,
    messages: Option<u64>,
    duration: Option<Duration>,
    client: ClientPath,
    server_pid: Option<u32>,
}

impl From<&StreamArgs> for LoadOptions {
    fn from(args: &StreamArgs) -> Self {
        Self {
            connections: args.connections,
            body_size: args.body_size,
            messages: args.messages,
            duration: args.duration,
            client: args.client,
            server_pid: None,
        }
    }
}

impl From<&FanoutArgs> for LoadOptions {
    fn from(args: &FanoutArgs) -> Self {
        Self {
            connections: args.connections,
            body_size: args.body_size,
            messages: args.messages,
            duration: None,
            client: ClientPath::Codec,
            server_pid: None,
        }
    }
}

impl From<&ConnsArgs> for LoadOptions {
    fn from(args: &ConnsArgs) -> Self {
        Self {
            connections: args.connections,
            body_size: None,
            messages: None,
            duration: None,
            client: ClientPath::Codec,
            server_pid: args.server_pid,
        }
    }
}

/// A workload, its options resolved.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) mode: &'static str,
    pub(crate) connections: usize,
    pub(crate) body_size: usize,
    pub(crate) messages: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) codec: FrameCodec,
    /// The client's TLS settings; `None` for plain TCP.
    pub(crate) tls: Option<ClientTls>,
    layout_name: String,
    client: ClientPath,
    server_pid: Option<u32>,
}

/// The layout `--layout` names; `u32` is `[length u32][type u8]`, big-endian, the length
/// counting the whole frame.
fn load_layout(spec: &str) -> Result<HeaderLayout, ConfigError> {
    if spec == "u32" {
        return HeaderLayout::builder()
            .length(0, Int::U32)
            .message_type(4, Int::U8)
            .build()
            .map_err(|err| ConfigError::Invalid(format!("layout u32: {err}")));
    }
    ltp::layout_file::load_layout(spec)
}

fn codec_for(wire: &WireArgs) -> Result<FrameCodec, ConfigError> {
    let codec = FrameCodec::new(load_layout(&wire.layout)?);
    Ok(match wire.max_frame {
        Some(max) => codec.max_frame_len(max),
        None => codec,
    })
}

impl Load {
    fn new(mode: &'static str, args: LoadOptions, wire: &WireArgs) -> Result<Self, ConfigError> {
        let workload = Workload::new(
            mode,
            args.connections,
            args.body_size,
            args.messages,
            args.duration.map(|duration| duration.as_secs_f64()),
        )
        .map_err(|err| ConfigError::Invalid(err.to_string()))?;
        let load = Self {
            mode,
            connections: workload.connections,
            body_size: workload.body_size,
            messages: workload.messages,
            duration: workload.duration,
            codec: codec_for(wire)?,
            // Set once the server is known (see `load_command`).
            tls: None,
            layout_name: wire.layout.clone(),
            client: args.client,
            server_pid: args.server_pid,
        };
        let frame = load.body_size + load.codec.layout().header_len();
        let max = load.codec.outbound_limit().min(load.codec.inbound_limit());
        if frame > max {
            return Err(ConfigError::Invalid(format!(
                "--body-size {}: a {frame}-byte frame exceeds the maximum frame length {max} \
                 (see --layout and --max-frame)",
                load.body_size
            )));
        }
        Ok(load)
    }

    fn header_len(&self) -> usize {
        self.codec.layout().header_len()
    }
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Serve(args) => {
            let tls = args.server_tls()?;
            let capture = args.pcap.open()?;
            server::serve_command(&args.listen, &args.wire, args.api, tls, capture).await
        }
        BenchCommand::Throughput(args) => {
            load_command("throughput", (&args).into(), &args.target).await
        }
        BenchCommand::Pingpong(args) => {
            load_command("pingpong", (&args).into(), &args.target).await
        }
        BenchCommand::Fanout(args) => load_command("fanout", (&args).into(), &args.target).await,
        BenchCommand::Conns(args) => load_command("conns", (&args).into(), &args.target).await,
        BenchCommand::Soak(args) => soak::run(&args).await,
    }
}

async fn load_command(
    mode: &'static str,
    options: LoadOptions,
    args: &TargetArgs,
) -> anyhow::Result<ExitCode> {
    let mut load = Load::new(mode, options, &args.wire)?;
    // Fanout's control connection is among the spare descriptors.
    open_files::make_room_for(load.connections, args.target.is_none())?;
    let (addr, own_server) = match &args.target {
        Some(target) => {
            if args.tls {
                let (ca, name) = (args.ca.as_deref(), args.server_name.as_deref());
                load.tls = Some(tls::client_for_target(target, ca, name)?);
            }
            (resolve(target).await?, None)
        }
        None => {
            let server_tls = if args.tls {
                let generated = tls::Generated::new()?;
                load.tls = Some(generated.client("127.0.0.1")?);
                Some(generated.server()?)
            } else {
                None
            };
            let server = server::start(&args.wire, "127.0.0.1:0", true, server_tls, None)
                .await
                .context("cannot start the in-process server")?;
            let addr = server
                .local_addr()
                .as_tcp()
                .context("the in-process server is not on TCP")?;
            (addr, Some(server))
        }
    };
    let target = match own_server {
        Some(_) => "in-process".to_owned(),
        None => addr.to_string(),
    };
    let mut outcome = Outcome::new(&load, target);
    match mode {
        "conns" => conns::run(&load, addr, own_server.is_some(), &mut outcome).await?,
        "fanout" => client::fanout(&load, addr, &mut outcome).await?,
        _ => match load.client {
            ClientPath::Codec => {
                client::run::<client::CodecLink>(&load, addr, &mut outcome).await?
            }
            ClientPath::Runtime => {
                client::run::<client::RuntimeLink>(&load, addr, &mut outcome).await?;
            }
        },
    }
    outcome.verified = outcome.problems.is_empty();
    if let Some(server) = own_server {
        server.shutdown(Duration::from_secs(2)).await;
    }
    println!("{}", outcome.to_json());
    Ok(if outcome.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(target)
        .await
        .with_context(|| format!("cannot resolve {target}"))?
        .next()
        .with_context(|| format!("{target} resolves to no address"))
}

/// What a run measured: the final JSON line.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    mode: &'static str,
    client: &'static str,
    target: String,
    layout: String,
    tls: bool,
    pub(crate) connections: usize,
    body_size: usize,
    header_len: usize,
    pub(crate) messages: u64,
    pub(crate) deliveries: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Option<Latency>,
    pub(crate) rss: Option<Rss>,
    verified: bool,
    pub(crate) problems: Vec<String>,
}

impl Outcome {
    fn new(load: &Load, target: String) -> Self {
        let client = match load.mode {
            "fanout" => "codec",
            "conns" => "std",
            _ => load.client.name(),
        };
        Self {
            mode: load.mode,
            client,
            target,
            layout: load.layout_name.clone(),
            tls: load.tls.is_some(),
            connections: load.connections,
            body_size: load.body_size,
            header_len: load.header_len(),
            messages: 0,
            deliveries: 0,
            elapsed: Duration::ZERO,
            latency: None,
            rss: None,
            verified: false,
            problems: Vec::new(),
        }
    }

    /// Records a mismatch (the first 10 of them; more say nothing new).
    pub(crate) fn problem(&mut self, problem: String) {
        if self.problems.len() < 10 {
            self.problems.push(problem);
        }
    }

    fn to_json(&self) -> Value {
        let secs = self.elapsed.as_secs_f64();
        let rate = |n: f64| {
            if self.mode == "conns" || secs <= 0.0 {
                Value::Null
            } else {
                json!(n / secs)
            }
        };
        let deliveries = self.deliveries as f64;
        let mb = |per_frame: usize| match rate(deliveries * per_frame as f64 / 1e6) {
            Value::Number(n) => json!(round_to(n.as_f64().unwrap_or(0.0), 1)),
            other => other,
        };
        let [rss_bytes, per_conn, scope] = Rss::result_fields(self.rss, self.connections);
        json!({
            "event": "result",
            "implementation": "ltp",
            "mode": self.mode,
            "client": self.client,
            "target": self.target,
            "layout": self.layout,
            "tls": self.tls,
            "connections": self.connections,
            "body_size": self.body_size,
            "messages": self.messages,
            "deliveries": self.deliveries,
            "elapsed_secs": round_to(secs, 6),
            "msgs_per_sec": match rate(deliveries) {
                Value::Number(n) => json!(n.as_f64().unwrap_or(0.0).round()),
                other => other,
            },
            "mb_per_sec": mb(self.body_size),
            "wire_mb_per_sec": mb(self.body_size + self.header_len),
            "latency_us": self.latency.map_or(Value::Null, Latency::to_json),
            "rss_bytes": rss_bytes,
            "rss_per_conn_bytes": per_conn,
            "rss_scope": scope,
            "verified": self.verified,
            "problems": self.problems,
        })
    }
}

/// [`bench_wire::report_body`] as a frame body.
pub(crate) fn report_body(count: u64, bytes: u64) -> Bytes {
    Bytes::copy_from_slice(&bench_wire::report_body(count, bytes))
}

/// [`bench_wire::fanout_body`] as a frame body.
pub(crate) fn fanout_body(count: u64, size: u32) -> Bytes {
    Bytes::copy_from_slice(&bench_wire::fanout_body(count, size))
}
