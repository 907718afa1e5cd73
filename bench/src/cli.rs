//! The command line both baselines share: `serve`, or one workload against `--target` (or
//! against a server of their own started in-process).

use std::io;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ltp::bench_wire::Workload;

use crate::wire::Layout;

/// A baseline: a bench server, or a bench client running one workload.
#[derive(Debug, Parser)]
pub struct Cli {
    /// Runtime worker threads; 1 (the default) runs a current-thread runtime.
    #[arg(long, default_value_t = 1, global = true)]
    pub threads: usize,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `serve` or a workload.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Counting / echoing / broadcasting server; prints `{"event":"listening","addr":…}`.
    Serve(ServeArgs),
    /// One-way pipelined DATA, then END; checks the REPORT.
    Throughput(LoadArgs),
    /// One DATA in flight per connection, echoed back; latency percentiles.
    Pingpong(LoadArgs),
    /// One control connection asks the server to broadcast to `--connections` receivers.
    Fanout(LoadArgs),
    /// Holds `--connections` idle connections; resident memory per connection.
    Conns(LoadArgs),
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (see the `listening` line).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Header layout: `ltprotocol` or `u32`.
    #[arg(long, default_value = "ltprotocol")]
    pub layout: Layout,
}

/// Workload options.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Server to load; without it, one is started in this process on 127.0.0.1:0.
    #[arg(long)]
    pub target: Option<String>,
    /// Parallel connections (receivers for fanout, idle connections for conns).
    #[arg(long)]
    pub connections: Option<usize>,
    /// DATA body size in bytes.
    #[arg(long)]
    pub body_size: Option<usize>,
    /// DATA frames in all (throughput), round trips in all (pingpong), broadcasts (fanout).
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Run for this many seconds instead of a message count (throughput, pingpong).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Header layout: `ltprotocol` or `u32`.
    #[arg(long, default_value = "ltprotocol")]
    pub layout: Layout,
    /// For conns with `--target`: the server's process id, to read its resident memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// A workload's settings after defaults.
#[derive(Debug, Clone)]
pub struct Load {
    /// `throughput`, `pingpong`, `fanout` or `conns`.
    pub mode: &'static str,
    /// Connections.
    pub connections: usize,
    /// DATA body size.
    pub body_size: usize,
    /// How many, unless `duration`.
    pub messages: u64,
    /// How long, instead of `messages`.
    pub duration: Option<Duration>,
    /// Header layout.
    pub layout: Layout,
    /// Server process for conns' memory figure.
    pub server_pid: Option<u32>,
}

impl Load {
    /// Applies the mode's defaults, the same as `ltp bench`'s ([`Workload::defaults`]):
    /// throughput 1 connection × 1,000,000 frames of 16 bytes; pingpong 1 × 10,000 round trips
    /// of 16 bytes; fanout 100 receivers × 10,000 broadcasts of 64 bytes; conns 1,000
    /// connections.
    ///
    /// # Errors
    ///
    /// A bad duration, a duration for fanout or conns, no connections, or a body that does not
    /// fit the layout.
    pub fn new(mode: &'static str, args: &LoadArgs) -> Result<Self, String> {
        let workload = Workload::new(
            mode,
            args.connections,
            args.body_size,
            args.messages,
            args.duration,
        )
        .map_err(|err| err.to_string())?;
        let load = Self {
            mode,
            connections: workload.connections,
            body_size: workload.body_size,
            messages: workload.messages,
            duration: workload.duration,
            layout: args.layout,
            server_pid: args.server_pid,
        };
        load.layout.check_body(load.body_size)?;
        Ok(load)
    }
}

/// A runtime with `threads` workers; 1 gives a current-thread runtime.
///
/// # Errors
///
/// The runtime could not start.
pub fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
