//! The `main` both baselines share: parse the command line, start the runtime, then serve or
//! run one workload and print its result line; its `serve` step and address lookup are public
//! for `baseline-rawtcp`, which has a command line of its own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;
use tokio::net::TcpListener;

use crate::cli::{Cli, Command, Load, LoadArgs, ServeArgs, runtime};
use crate::drive::{self, FrameIo};
use crate::wire::Layout;

/// Runs a baseline whose clients frame with `T` and whose server is `serve` (which accepts
/// from the listener until the process ends). `implementation` and `client` label the result.
pub fn main<T, S, F>(implementation: &'static str, client: &'static str, serve: S) -> ExitCode
where
    T: FrameIo,
    S: Fn(TcpListener, Layout) -> F + Copy + Send + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let cli = Cli::parse();
    let rt = match runtime(cli.threads) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{implementation}: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve_command(args, serve).await,
            Command::Throughput(args) => {
                load_command::<T, S, F>("throughput", &args, serve, implementation, client).await
            }
            Command::Pingpong(args) => {
                load_command::<T, S, F>("pingpong", &args, serve, implementation, client).await
            }
            Command::Fanout(args) => {
                load_command::<T, S, F>("fanout", &args, serve, implementation, client).await
            }
            Command::Conns(args) => {
                load_command::<T, S, F>("conns", &args, serve, implementation, client).await
            }
        }
    });
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{implementation}: {err}");
            ExitCode::from(1)
        }
    }
}

/// `serve`: binds `--listen`, prints `{"event":"listening","addr":"127.0.0.1:PORT"}` and runs
/// `serve` on the listener (given `--layout`).
///
/// # Errors
///
/// The address could not be bound, or `serve` failed.
pub async fn serve_command<S, F>(args: ServeArgs, serve: S) -> Result<ExitCode, String>
where
    S: Fn(TcpListener, Layout) -> F,
    F: Future<Output = io::Result<()>>,
{
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({"event": "listening", "addr": addr.to_string()})
    );
    serve(listener, args.layout)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

async fn load_command<T, S, F>(
    mode: &'static str,
    args: &LoadArgs,
    serve: S,
    implementation: &'static str,
    client: &'static str,
) -> Result<ExitCode, String>
where
    T: FrameIo,
    S: Fn(TcpListener, Layout) -> F,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let load = Load::new(mode, args)?;
    let (addr, in_process) = match &args.target {
        Some(target) => (resolve(target).await?, false),
        None => {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot start the in-process server: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tokio::spawn(serve(listener, load.layout));
            (addr, true)
        }
    };
    let target = if in_process {
        "in-process".to_owned()
    } else {
        addr.to_string()
    };
    let outcome = if mode == "conns" {
        // No TLS here: in-process, the client's plain sockets add next to nothing.
        let scope = ltp::bench_wire::rss_scope(load.server_pid, in_process, false);
        let (n, layout, pid) = (load.connections, load.layout, load.server_pid);
        let held =
            tokio::task::spawn_blocking(move || crate::conns::hold(addr, n, layout, pid, scope))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("conns: {e}"))?;
        crate::conns::outcome(held, &load, target, implementation, "std")
    } else {
        let mut outcome = drive::run::<T>(&load, addr, implementation, client)
            .await
            .map_err(|e| format!("{mode}: {e}"))?;
        outcome.target = target;
        outcome
    };
    println!("{}", outcome.to_json());
    Ok(if outcome.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The first address `target` (`HOST:PORT`) resolves to.
///
/// # Errors
///
/// It does not resolve.
pub async fn resolve(target: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(target)
        .await
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to no address"))
}
