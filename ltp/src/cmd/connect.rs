//! `ltp connect`: connect, send the JSON lines read from stdin, print what arrives.
//!
//! The first connection is tried once, as `nc` does, unless `--retry` (or `--max-attempts`);
//! a connection once made is reconnected with backoff when lost, its queued lines kept. A
//! stdin line longer than [`line_limit`](ltp::lines::line_limit) of the frame limit is
//! skipped with one error line, as an invalid one is, without ever being held whole.
//!
//! Exit codes: 0 when everything read from stdin was sent (and, with `--count N`, N messages
//! arrived); 1 when no connection was made, connecting was given up, a line was skipped or
//! left unsent, or the count was not reached; 2 for a usage error, a bad line under
//! `--strict` or a stdin that cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use ltprotocol::tls::ClientTls;
use ltprotocol::{
    Backoff, ConnectionHandle, DisconnectReason, Handler, HeaderFields, ReconnectingClient,
    SendError, Unknown,
};

use super::Setup;
use super::endpoint::Endpoint;
use super::signals::Signals;
use super::stdin::{InputError, LineOptions, StdinMessages};
use crate::Common;
use crate::output::Stdout;

/// `--timeout` when not given: how long `--count` waits and the final flush may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `ltp connect` options.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The server: `HOST:PORT`, or `unix:PATH` for a Unix-domain socket.
    #[arg(value_parser = Endpoint::parse_target)]
    addr: Endpoint,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    lines: LineOptions,
    /// Exit 0 once this many messages have arrived (exit 1 if `--timeout` passes first),
    /// instead of at the end of stdin.
    #[arg(long, value_name = "N", conflicts_with = "keep_open")]
    count: Option<u64>,
    /// Stay connected after the end of stdin and keep printing what arrives, until SIGINT,
    /// SIGTERM or `--timeout`.
    #[arg(long)]
    keep_open: bool,
    /// How long `--count` waits for its messages after the end of stdin, `--keep-open`
    /// stays (default: until a signal), and the final flush may take [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = ltp::duration::parse)]
    timeout: Option<Duration>,
    /// Keep trying the first connection, with the backoff below, instead of giving up when
    /// the first attempt fails. (A connection once made is always retried when lost.)
    #[arg(long)]
    retry: bool,
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
    /// Give up after this many consecutive failed attempts (default: never), the first
    /// connection's included: implies `--retry`.
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
    #[command(flatten)]
    pcap: super::pcap::PcapArgs,
}

/// The handler: prints events, counts messages, and decides when connecting is given up.
struct Connect {
    setup: Setup,
    /// Where it connects, for the last line on stderr.
    target: String,
    received: AtomicU64,
    arrived: Notify,
    /// Whether a connection was ever made: from then on a lost one is reconnected.
    connected_once: AtomicBool,
    /// `--retry` or `--max-attempts`: the first connection is retried too.
    retry_first: bool,
    /// Cancelled once connecting is given up (the first attempt failed without `--retry`,
    /// or `--max-attempts` failed in a row): nothing more will be sent.
    gave_up: CancellationToken,
    /// Why it gave up: the line for stderr.
    give_up_reason: Mutex<Option<String>>,
}

impl Handler<Unknown> for Connect {
    async fn connected(&self, conn: &ConnectionHandle) {
        self.connected_once.store(true, Ordering::Release);
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
        let first = !self.connected_once.load(Ordering::Acquire);
        // The library would retry; without --retry, a first connection is not retried.
        let retry_in = retry_in.filter(|_| self.retry_first || !first);
        self.setup
            .output
            .emit(&json!({
                "event": "connect_failed",
                "attempt": attempt,
                "error": error.to_string(),
                "retry_in_ms": retry_in.map(|d| d.as_millis() as u64),
            }))
            .await;
        if retry_in.is_some() {
            return;
        }
        let error = ltprotocol::escape_controls(&error.to_string()).into_owned();
        let target = &self.target;
        let attempts = if attempt == 1 {
            "1 attempt".to_owned()
        } else {
            format!("{attempt} attempts")
        };
        let reason = match (first, self.retry_first) {
            (true, false) => format!("cannot connect to {target}: {error} (--retry keeps trying)"),
            (true, true) => {
                format!("cannot connect to {target}: gave up after {attempts}: {error}")
            }
            (false, _) => format!(
                "lost the connection to {target}: gave up after {attempts} to \
                 reconnect: {error}"
            ),
        };
        *self
            .give_up_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
        self.gave_up.cancel();
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

/// Why sending stdin stopped.
#[derive(Debug)]
enum Ending {
    /// The end of stdin: everything read was queued or skipped.
    StdinEnded,
    /// A bad line under `--strict`, or stdin cannot be read.
    Input(InputError),
    /// Connecting was given up.
    GaveUp,
    /// SIGINT or SIGTERM, by name.
    Signal(&'static str),
}

/// What happened after the end of stdin, while waiting for `--count`, `--keep-open` or a
/// first connection.
#[derive(Debug)]
enum Wait {
    /// Done waiting: counted, kept open until `--timeout`, or connected.
    Done,
    /// `--count`: the timeout passed first.
    CountNotReached,
    /// No connection was made within the timeout (`--retry`).
    NoConnection,
    /// Connecting was given up.
    GaveUp,
    /// SIGINT or SIGTERM, by name.
    Signal(&'static str),
}

/// Messages from stdin the client took (queued), or refused because it had given up.
#[derive(Debug, Default)]
struct Tally {
    queued: u64,
    refused: u64,
}

pub(crate) async fn run(args: ConnectArgs, stdout: Stdout) -> anyhow::Result<ExitCode> {
    let mut setup = Setup::load(&args.common, stdout)?;
    setup.output.set_timestamps(args.lines.timestamps);
    let mut signals = Signals::install().context("cannot catch SIGINT and SIGTERM")?;
    let retry_first = args.retry || args.max_attempts.is_some();
    let backoff = Backoff {
        initial: args.backoff_initial,
        factor: args.backoff_factor,
        max: args.backoff_max,
        jitter: args.backoff_jitter,
        max_attempts: args.max_attempts,
        ..Backoff::default()
    };
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
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
    let capture = args.pcap.open()?;
    if let Some(capture) = &capture {
        builder.capture(capture.clone());
    }
    let handler = Arc::new(Connect {
        setup: setup.clone(),
        target: args.addr.to_string(),
        received: AtomicU64::new(0),
        arrived: Notify::new(),
        connected_once: AtomicBool::new(false),
        retry_first,
        gave_up: CancellationToken::new(),
        give_up_reason: Mutex::new(None),
    });
    let client = args.addr.connect(&builder, handler.clone())?;

    let mut input = StdinMessages::new(&setup, &args.lines);
    let mut tally = Tally::default();
    let ending = tokio::select! {
        ending = feed(&client, &mut input, &mut tally) => ending,
        () = handler.gave_up.cancelled() => Ending::GaveUp,
        signal = signals.recv() => Ending::Signal(signal),
    };
    let wait = match ending {
        Ending::StdinEnded => Some(tokio::select! {
            wait = wait_after_stdin(&args, &client, &handler, timeout) => wait,
            () = handler.gave_up.cancelled() => Wait::GaveUp,
            signal = signals.recv() => Wait::Signal(signal),
        }),
        _ => None,
    };

    // Nothing more can be sent once connecting was given up, or no connection came.
    let hopeless = handler.gave_up.is_cancelled() || matches!(wait, Some(Wait::NoConnection));
    let flush = if hopeless { Duration::ZERO } else { timeout };
    let report = tokio::select! {
        report = client.close(flush) => Some(report),
        signal = signals.recv() => {
            eprintln!("ltp: {signal} again: stopped without finishing the flush");
            None
        }
    };
    let unsent_queued = report.map_or(tally.queued, |r| r.unsent_frames as u64);
    let unsent = unsent_queued + tally.refused;
    let received = handler.received.load(Ordering::Acquire);
    let mut summary = json!({
        "event": "summary",
        "sent": tally.queued.saturating_sub(unsent_queued),
        "skipped": input.skipped(),
        "unsent": unsent,
        "received": received,
    });
    if let Some(pcap) = super::pcap::finish(capture.as_ref()).await {
        summary["pcap"] = pcap;
    }
    setup.output.emit(&summary).await;

    // Every reason for a non-zero exit, one line each.
    let mut code = 0;
    let mut fail = |code_now: u8, line: String| {
        eprintln!("ltp: {line}");
        code = code.max(code_now);
    };
    let give_up_reason = handler
        .give_up_reason
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(reason) = &give_up_reason {
        fail(1, reason.clone());
    }
    match ending {
        Ending::Input(err) => fail(2, ltprotocol::error_chain(&err)),
        Ending::Signal(signal) if !args.keep_open => {
            fail(1, format!("stopped by {signal} before the end of stdin"));
        }
        Ending::StdinEnded | Ending::GaveUp | Ending::Signal(_) => {}
    }
    match wait {
        Some(Wait::CountNotReached) => fail(
            1,
            format!(
                "{received} of {} messages arrived within {timeout:?}",
                args.count.unwrap_or_default()
            ),
        ),
        Some(Wait::NoConnection) => fail(
            1,
            format!("no connection to {} within {timeout:?}", args.addr),
        ),
        Some(Wait::Signal(signal)) if !args.keep_open => match args.count {
            Some(count) => fail(
                1,
                format!("stopped by {signal}: {received} of {count} messages arrived"),
            ),
            None => fail(1, format!("stopped by {signal} before connecting")),
        },
        Some(Wait::Done | Wait::GaveUp | Wait::Signal(_)) | None => {}
    }
    // Said once: by the reason for giving up or for waiting no more, or here.
    let connection_told = give_up_reason.is_some()
        || matches!(wait, Some(Wait::NoConnection))
        || matches!(wait, Some(Wait::Signal(_)) if !args.keep_open && args.count.is_none());
    if !handler.connected_once.load(Ordering::Acquire) && !connection_told {
        fail(1, format!("never connected to {}", args.addr));
    }
    match unsent {
        0 => {}
        1 => fail(1, "1 message could not be sent".to_owned()),
        n => fail(1, format!("{n} messages could not be sent")),
    }
    if let Some(skipped) = input.skipped_text() {
        fail(1, skipped);
    }
    Ok(ExitCode::from(code))
}

/// Sends each message of stdin until its end, a bad line under `--strict`, or the client
/// gives up.
async fn feed(
    client: &ReconnectingClient<Unknown>,
    input: &mut StdinMessages,
    tally: &mut Tally,
) -> Ending {
    loop {
        let next = match input.next().await {
            Ok(Some(next)) => next,
            Ok(None) => return Ending::StdinEnded,
            Err(err) => return Ending::Input(err),
        };
        // `conn` picks a client of `ltp serve`; here there is one connection.
        let frame = &next.message.frame;
        match client.send_with(frame, &frame.fields).await {
            Ok(()) => tally.queued += 1,
            Err(SendError::Closed { .. }) => {
                // The client gave up before this one was queued.
                tally.refused += 1;
                return Ending::GaveUp;
            }
            Err(err) => {
                if let Err(err) = input.reject(next.number, ltprotocol::error_chain(&err)) {
                    return Ending::Input(err);
                }
            }
        }
    }
}

/// After the end of stdin: waits for `--count` messages, or with `--keep-open` for
/// `--timeout` (if given), or for a first connection if none was made yet.
async fn wait_after_stdin(
    args: &ConnectArgs,
    client: &ReconnectingClient<Unknown>,
    handler: &Connect,
    timeout: Duration,
) -> Wait {
    if let Some(count) = args.count {
        let counted = tokio::time::timeout(timeout, async {
            loop {
                let arrived = handler.arrived.notified();
                if handler.received.load(Ordering::Acquire) >= count {
                    break;
                }
                arrived.await;
            }
        })
        .await;
        return if counted.is_ok() {
            Wait::Done
        } else {
            Wait::CountNotReached
        };
    }
    if args.keep_open {
        match args.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
        return Wait::Done;
    }
    if handler.connected_once.load(Ordering::Acquire) {
        return Wait::Done;
    }
    match tokio::time::timeout(timeout, client.wait_connected()).await {
        Ok(Some(_)) => Wait::Done,
        // The client stopped: it gave up, and `gave_up` says so.
        Ok(None) => Wait::GaveUp,
        Err(_) => Wait::NoConnection,
    }
}
