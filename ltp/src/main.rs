//! `ltp`: a netcat for length-type protocols. Parses the command line and dispatches to one
//! subcommand per file under `cmd/`.

mod cmd;
mod docs;
mod logging;
mod output;

use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// Speak any length-type TCP protocol as JSON lines: serve, connect, run the ancestor's demo,
/// measure speed.
#[derive(Debug, Parser)]
#[command(name = "ltp", version, about, long_about = None)]
struct Cli {
    /// Runtime worker threads: 1 runs everything on one thread (tokio's current-thread
    /// runtime); the default is one worker per core.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Listen and print what arrives (optionally echo it back, or relay it to the others).
    Serve(cmd::serve::ServeArgs),
    /// Connect (and reconnect), send JSON lines read from stdin, print what arrives.
    Connect(cmd::connect::ConnectArgs),
    /// The ancestor's demo: a server sending NumMsg(200), StrMsg("hello world!"), NumMsg(7)
    /// every second, and a client printing them.
    Demo(cmd::demo::DemoArgs),
    /// Measure throughput, latency, fan-out and memory per connection.
    Bench(cmd::bench::BenchArgs),
    /// Print a Wireshark Lua dissector for the protocol of `--layout` and `--schema`.
    Dissector(cmd::dissector::DissectorArgs),
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page of `ltp` or of a subcommand (roff), or write them all to a directory.
    Man(docs::ManArgs),
}

/// Options shared by every subcommand that talks to the network.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// Header layout: `ltprotocol`, `openflow`, or a TOML file.
    #[arg(long, default_value = "ltprotocol", value_name = "NAME|FILE")]
    pub(crate) layout: String,
    /// Message names and fields: `demo`, `openflow`, `none`, or a TOML file. Without one,
    /// messages are shown by type number and body bytes.
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) schema: Option<String>,
    /// The largest whole frame (header included) accepted or sent, in bytes. For `connect`,
    /// stdin lines may be twice this plus 64 KiB long (at least 1 MiB).
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_frame: Option<usize>,
    /// Output format; json is the default when stdout is not a terminal.
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
    /// A handshake run on every connection before anything else: `openflow` exchanges
    /// HELLO (1.3) and FEATURES, answers ECHO_REQUEST and probes quiet peers (needs
    /// `--layout openflow`).
    #[arg(long, value_enum, default_value_t = HandshakeKind::None)]
    pub(crate) handshake: HandshakeKind,
}

/// The handshakes `--handshake` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HandshakeKind {
    /// None: frames flow as soon as the TCP (or TLS) connection is up.
    None,
    /// OpenFlow 1.3: HELLO, FEATURES, echo auto-reply, keepalive.
    Openflow,
}

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line.
    Json,
    /// One readable line per event.
    Text,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Demo(args) = &cli.command
        && let Some(problem) = args.misplaced()
    {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, problem)
            .exit();
    }
    // Generated from the command line's definition; no runtime, no logs.
    match &cli.command {
        Command::Completions(args) => return docs::completions(args, Cli::command()),
        Command::Man(args) => return docs::man(args, Cli::command()),
        Command::Dissector(args) => return cmd::dissector::run(args),
        _ => {}
    }
    logging::init();
    let (stdout, writer) = match output::Stdout::start() {
        Ok(started) => started,
        Err(err) => {
            eprintln!("ltp: cannot start the stdout writer: {err}");
            return ExitCode::from(1);
        }
    };
    let mut builder = match cli.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(n));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ltp: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args, stdout).await,
            Command::Connect(args) => cmd::connect::run(args, stdout).await,
            Command::Demo(args) => cmd::demo::run(args, stdout).await,
            // Its few lines are printed by the command's own future, never by a handler.
            Command::Bench(args) => cmd::bench::run(args).await,
            // Printed above, before the runtime was started.
            Command::Completions(_) | Command::Man(_) | Command::Dissector(_) => {
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // Connections still open (a client mid-reconnect, say) must not hold the exit.
    runtime.shutdown_background();
    // Every line emitted must be on stdout before the exit, the last ones (`shutdown`) most of
    // all: this waits for a paused reader (see output.rs).
    writer.finish();
    match result {
        Ok(code) => code,
        Err(err) => {
            let usage = err.downcast_ref::<ltp::ConfigError>().is_some();
            eprintln!("ltp: {}", ltprotocol::escape_controls(&format!("{err:#}")));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
