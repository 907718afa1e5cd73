//! `ltp serve`: listen, print what arrives, and optionally echo or relay it; send each line of
//! stdin to every client (a broadcast), or with `"conn": N` to one.
//!
//! The end of stdin does not stop serving: SIGINT or SIGTERM does (or, with `--strict`, a bad
//! stdin line, exit code 2). The exit code is then 0, or 1 if a stdin line was skipped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use ltprotocol::tls::{ClientAuth, ServerTls};
use ltprotocol::{
    ConnectionHandle, ConnectionId, DisconnectReason, Handler, HeaderFields, Server, Unknown,
};

use super::Setup;
use super::endpoint::Endpoint;
use super::signals::Signals;
use super::stdin::{InputError, LineOptions, StdinMessages};
use crate::Common;
use crate::output::Stdout;

/// `ltp serve` options.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    lines: LineOptions,
    /// Where to listen: `HOST:PORT` (port 0 picks a free port, see the `listening` line),
    /// `unix:PATH` (a Unix-domain socket; a stale socket file is replaced, and the file is
    /// removed at shutdown) or `fd:N` (a socket passed by systemd socket activation).
    #[arg(long, default_value = "127.0.0.1:9999", value_parser = Endpoint::parse)]
    listen: Endpoint,
    /// What to do with each message besides printing it.
    #[arg(long, value_enum, default_value_t = Mode::Print)]
    mode: Mode,
    /// The most clients connected at once; more are refused (and logged).
    #[arg(long, default_value_t = ltprotocol::server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// How long shutdown (on SIGINT or SIGTERM) may take.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = ltp::duration::parse)]
    shutdown_timeout: Duration,
    /// Serve TLS with this certificate chain (PEM, server certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by a CA in this bundle (PEM): mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    #[command(flatten)]
    pcap: super::pcap::PcapArgs,
}

/// What `serve` does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Print it.
    Print,
    /// Print it and send it back to its sender.
    Echo,
    /// Print it and send it to every other client.
    Relay,
}

struct Serve {
    setup: Setup,
    mode: Mode,
    server: OnceLock<Server<Unknown>>,
}

impl Handler<Unknown> for Serve {
    async fn connected(&self, conn: &ConnectionHandle) {
        self.setup.emit_connected(conn).await;
    }

    async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: &HeaderFields) {
        let frame = self.setup.emit_message(conn, msg, fields).await;
        match self.mode {
            Mode::Print => {}
            Mode::Echo => {
                // Fails only when this connection is closing: nothing left to echo to.
                let _ = conn.send_frame(&frame).await;
            }
            Mode::Relay => {
                if let Some(server) = self.server.get() {
                    let msg = Unknown::from(frame.clone());
                    if let Err(err) = server.broadcast_except_with(&msg, &frame.fields, conn.id()) {
                        tracing::warn!(conn = %conn.id(), error = %err, "cannot relay");
                    }
                }
            }
        }
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        emit_disconnect(&self.setup, conn, reason).await;
    }
}

/// Prints an `error` line for a protocol violation, then the `disconnected` line.
pub(crate) async fn emit_disconnect(
    setup: &Setup,
    conn: &ConnectionHandle,
    reason: &DisconnectReason,
) {
    let id = conn.id().get();
    let cause = match reason {
        DisconnectReason::Protocol(err) => Some(ltprotocol::error_chain(&**err)),
        DisconnectReason::Decode(err) => Some(ltprotocol::error_chain(err)),
        _ => None,
    };
    if let Some(error) = cause {
        setup
            .output
            .emit(&json!({"event": "error", "conn": id, "error": error}))
            .await;
    }
    setup
        .output
        .emit(&json!({
            "event": "disconnected",
            "conn": id,
            "reason": ltprotocol::error_chain(reason),
            "unsent_frames": conn.unsent_frames(),
        }))
        .await;
}

pub(crate) async fn run(args: ServeArgs, stdout: Stdout) -> anyhow::Result<ExitCode> {
    let mut setup = Setup::load(&args.common, stdout)?;
    setup.output.set_timestamps(args.lines.timestamps);
    let mut builder = Server::<Unknown>::builder(setup.layout.clone());
    builder.max_connections(args.max_connections);
    if let Some(max) = setup.max_frame {
        builder.max_inbound(max).max_outbound(max);
    }
    if setup.handshake == crate::HandshakeKind::Openflow {
        <Server<Unknown> as ltprotocol::openflow::Configurable>::configure(&mut builder);
    }
    if let Some(tls) = server_tls(&args)? {
        builder.tls(tls);
    }
    let capture = args.pcap.open()?;
    if let Some(capture) = &capture {
        builder.capture(capture.clone());
    }
    let mut signals = Signals::install().context("cannot catch SIGINT and SIGTERM")?;
    let server = args.listen.bind(&builder).await?;
    setup
        .output
        .emit(&json!({
            "event": "listening",
            "addr": server.local_addr().to_string(),
        }))
        .await;
    let output = setup.output.clone();
    let mut input = StdinMessages::new(&setup, &args.lines);
    let handler = Serve {
        setup,
        mode: args.mode,
        server: OnceLock::new(),
    };
    let _ = handler.server.set(server.clone());
    let serving = server.clone();
    let serve_task = tokio::spawn(async move { serving.serve(handler).await });

    let mut sent = 0u64;
    let mut stdin_open = true;
    let bad_line = loop {
        tokio::select! {
            signal = signals.recv() => {
                tracing::info!(signal, "stopping");
                break None;
            }
            fed = feed_one(&server, &mut input, &mut sent), if stdin_open => match fed {
                Ok(more) => stdin_open = more,
                Err(err) => break Some(err),
            },
        }
    };
    let report = server.shutdown(args.shutdown_timeout).await;
    // Accepting stopped with the shutdown; a join error would only repeat what was logged.
    let _ = serve_task.await;
    let mut shutdown = json!({
        "event": "shutdown",
        "connections": report.connections,
        "forced": report.forced,
        "unsent_frames": report.unsent_frames,
        "sent": sent,
        "skipped": input.skipped(),
    });
    if let Some(pcap) = super::pcap::finish(capture.as_ref()).await {
        shutdown["pcap"] = pcap;
    }
    output.emit(&shutdown).await;
    if let Some(err) = bad_line {
        eprintln!("ltp: {}", ltprotocol::error_chain(&err));
        return Ok(ExitCode::from(2));
    }
    if let Some(skipped) = input.skipped_text() {
        eprintln!("ltp: {skipped}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends the next message of stdin: to the client its `conn` names, or to every client
/// (encoded once). Returns whether stdin has more; a message for a client that is not
/// connected is a bad line.
///
/// # Errors
///
/// A bad line under `--strict`, or stdin that cannot be read.
///
/// # Cancel safety
///
/// Dropped only when serving stops: a line being read, paced or sent then is not sent.
async fn feed_one(
    server: &Server<Unknown>,
    input: &mut StdinMessages,
    sent: &mut u64,
) -> Result<bool, InputError> {
    let Some(next) = input.next().await? else {
        return Ok(false);
    };
    let frame = &next.message.frame;
    let outcome = match next.message.conn {
        None => server
            .broadcast_with(frame, &frame.fields)
            .map(drop)
            .map_err(|err| ltprotocol::error_chain(&err)),
        Some(conn) => match server.connection(ConnectionId::new(conn)) {
            None => Err(format!("no client {conn} is connected")),
            Some(client) => client
                .send_frame(frame)
                .await
                .map_err(|err| format!("client {conn}: {}", ltprotocol::error_chain(&err))),
        },
    };
    match outcome {
        Ok(()) => *sent += 1,
        Err(reason) => input.reject(next.number, reason)?,
    }
    Ok(true)
}

/// `--tls-cert`, `--tls-key` and `--client-ca` as TLS settings; `None` without TLS.
fn server_tls(args: &ServeArgs) -> Result<Option<ServerTls>, ltp::ConfigError> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let mut tls = ServerTls::builder(cert, key);
    if let Some(ca) = &args.client_ca {
        tls.client_auth(ca, ClientAuth::Required);
    }
    let tls = tls
        .build()
        .map_err(|err| ltp::ConfigError::Invalid(ltprotocol::error_chain(&err)))?;
    Ok(Some(tls))
}
