//! `ltp connect`: connect (and reconnect), send the JSON lines read from stdin, print what
//! arrives. A stdin line longer than [`line_limit`] of the frame limit is skipped with one
//! error line, as an invalid one is, without ever being held whole.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::sync::Notify;

use ltp::lines::{Line, LineReader, line_limit};
use ltprotocol::tls::ClientTls;
use ltprotocol::{
    Backoff, ConnectionHandle, DisconnectReason, FrameCodec, Handler, HeaderFields,
    ReconnectingClient, Unknown,
};

use super::Setup;
use super::endpoint::Endpoint;
use crate::Common;
use crate::output::Stdout;

/// `ltp connect` options.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The server: `HOST:PORT`, or `unix:PATH` for a Unix-domain socket.
    #[arg(value_parser = Endpoint::parse_target)]
    addr: Endpoint,
    #[command(flatten)]
    common: Common,
    /// Exit 0 once this many messages have arrived (exit 1 if `--timeout` passes first),
    /// instead of at the end of stdin.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// With `--count`: give up after this long. Also bounds the final flush.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = ltp::duration::parse)]
    timeout: Duration,
    /// First wait after a failed attempt.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = ltp::duration::parse)]
    backoff_initial: Duration,
    /// Each further failure multiplies the wait by this.
    #[arg(long, default_value_t = 2.0)]
    backoff_factor: f64,
    /// The longest wait.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = ltp::duration::parse)]
    backoff_max: Duration,
    /// Relative spread of each wait (0.2 is ±20 %).
    #[arg(long, default_value_t = 0.2)]
    backoff_jitter: f64,
    /// Give up after this many consecutive failed attempts (default: never).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Speak TLS (the server's certificate is checked against the system's roots, or `--ca`).
    #[arg(long)]
    tls: bool,
    /// With `--tls`: trust the CAs in this bundle (PEM) instead of the system's roots.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
    /// With `--tls`: the name the server's certificate must carry (default: ADDR's host).
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
    /// With `--tls`: present this client certificate chain (PEM), for mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"])]
    cert: Option<PathBuf>,
    /// The private key of `--cert` (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert"])]
    key: Option<PathBuf>,
}

struct Connect {
    setup: Setup,
    received: AtomicU64,
    arrived: Notify,
}

impl Handler<Unknown> for Connect {
    async fn connected(&self, conn: &ConnectionHandle) {
        self.setup.emit_connected(conn).await;
    }

    async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: &HeaderFields) {
        self.setup.emit_message(conn, msg, fields).await;
        self.received.fetch_add(1, Ordering::AcqRel);
        self.arrived.notify_waiters();
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        super::serve::emit_disconnect(&self.setup, conn, reason).await;
    }

    async fn connect_failed(
        &self,
        attempt: u32,
        error: &std::io::Error,
        retry_in: Option<Duration>,
    ) {
        self.setup
            .output
            .emit(&json!({
                "event": "connect_failed",
                "attempt": attempt,
                "error": error.to_string(),
                "retry_in_ms": retry_in.map(|d| d.as_millis() as u64),
            }))
            .await;
    }
}

/// `--tls`, `--ca`, `--server-name`, `--cert` and `--key` as TLS settings; `None` without TLS.
fn client_tls(args: &ConnectArgs) -> Result<Option<ClientTls>, ltp::ConfigError> {
    if !args.tls {
        return Ok(None);
    }
    let mut tls = ClientTls::builder();
    if let Some(ca) = &args.ca {
        tls.ca_file(ca);
    }
    if let Some(name) = &args.server_name {
        tls.server_name(name);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        tls.client_cert(cert, key);
    }
    let tls = tls
        .build()
        .map_err(|err| ltp::ConfigError::Invalid(ltprotocol::error_chain(&err)))?;
    Ok(Some(tls))
}

pub(crate) async fn run(args: ConnectArgs, stdout: Stdout) -> anyhow::Result<ExitCode> {
    let setup = Setup::load(&args.common, stdout)?;
    let backoff = Backoff {
        initial: args.backoff_initial,
        factor: args.backoff_factor,
        max: args.backoff_max,
        jitter: args.backoff_jitter,
        max_attempts: args.max_attempts,
        ..Backoff::default()
    };
    let timeout = args.timeout;
    let mut builder = ReconnectingClient::<Unknown>::builder(setup.layout.clone());
    builder.backoff(backoff);
    if let Some(max) = setup.max_frame {
        builder.max_inbound(max).max_outbound(max);
    }
    if setup.handshake == crate::HandshakeKind::Openflow {
        <ReconnectingClient<Unknown> as ltprotocol::openflow::Configurable>::configure(
            &mut builder,
        );
    }
    if let Some(tls) = client_tls(&args)? {
        builder.tls(tls);
    }
    let handler = Arc::new(Connect {
        setup: setup.clone(),
        received: AtomicU64::new(0),
        arrived: Notify::new(),
    });
    let client = args.addr.connect(&builder, handler.clone())?;

    // A line may carry the largest frame this client accepts, in hex; no line costs more.
    let max_frame = setup
        .max_frame
        .unwrap_or_else(|| FrameCodec::new(setup.layout.clone()).inbound_limit());
    let mut lines = LineReader::new(
        tokio::io::BufReader::new(tokio::io::stdin()),
        line_limit(max_frame),
    );
    let mut refused = 0usize;
    while let Some(Line { number, text }) = lines.next_line().await? {
        let line = match text {
            Ok(line) => line,
            Err(reason) => {
                eprintln!("ltp: stdin line {number}: {reason}; skipped");
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let frame = match ltp::json::parse_input_line(line, &setup.layout, &setup.schema) {
            Ok(frame) => frame,
            Err(reason) => {
                eprintln!("ltp: stdin line {number}: {reason}; skipped");
                continue;
            }
        };
        if let Err(err) = client.send_with(&frame, &frame.fields).await {
            // Not sent (the client gave up before it was queued): counts as unsent below.
            refused += 1;
            eprintln!(
                "ltp: stdin line {number}: {}; skipped",
                ltprotocol::error_chain(&err)
            );
        }
    }

    let code = match args.count {
        Some(count) => {
            let reached = tokio::time::timeout(timeout, async {
                loop {
                    let arrived = handler.arrived.notified();
                    if handler.received.load(Ordering::Acquire) >= count {
                        break;
                    }
                    arrived.await;
                }
            })
            .await;
            if reached.is_ok() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "ltp: {} of {count} messages arrived within {:?}",
                    handler.received.load(Ordering::Acquire),
                    timeout
                );
                ExitCode::from(1)
            }
        }
        None => ExitCode::SUCCESS,
    };
    let report = client.close(timeout).await;
    if report.unsent_frames + refused > 0 {
        eprintln!(
            "ltp: {} messages could not be sent",
            report.unsent_frames + refused
        );
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}
