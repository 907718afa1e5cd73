//! The bench server: [`ltprotocol::Server`] with a [`Handler`] that counts DATA per
//! connection, answers END with a REPORT, echoes after ECHO and broadcasts on FANOUT.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;

use ltprotocol::{
    ConnectionHandle, FrameRef, Handler, HeaderFields, Inspected, MessageType, SendError, Server,
    Unknown,
};

use super::{DATA, ECHO, END, FANOUT, REPORT, WireArgs};

/// A FANOUT yields to the runtime after this many rounds, so that the connections' writers
/// drain their outboxes while it goes on (on a single-thread runtime too).
const FANOUT_CHUNK: u64 = 64;

/// What one connection has sent since it opened or since its last END: the connection's own
/// state ([`ConnectionHandle::state`]). Only the connection's task changes it, so a load and
/// a store do (no locked read-modify-write).
#[derive(Debug, Default)]
struct Counters {
    count: AtomicU64,
    bytes: AtomicU64,
    echo: AtomicBool,
}

impl Counters {
    fn add(&self, bytes: u64) {
        self.count
            .store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.bytes.store(
            self.bytes.load(Ordering::Relaxed) + bytes,
            Ordering::Relaxed,
        );
    }

    /// The counts so far, and a fresh start.
    fn take(&self) -> (u64, u64) {
        (
            self.count.swap(0, Ordering::Relaxed),
            self.bytes.swap(0, Ordering::Relaxed),
        )
    }
}

#[derive(Debug)]
struct BenchHandler {
    server: Server<Unknown>,
}

impl BenchHandler {
    fn new(server: Server<Unknown>) -> Self {
        Self { server }
    }

    async fn answer(&self, conn: &ConnectionHandle, msg: Unknown, fields: HeaderFields) {
        match msg.message_type.value() {
            DATA => {
                // Fails only when this connection is closing.
                let _ = conn.send_with(&msg, &fields).await;
            }
            END => {
                let (count, bytes) = conn.state::<Counters>().map_or((0, 0), Counters::take);
                let report = Unknown {
                    message_type: MessageType::new(REPORT),
                    body: super::report_body(count, bytes),
                };
                let _ = conn.send_with(&report, &fields).await;
            }
            FANOUT => match super::parse_fanout(&msg.body) {
                Some((count, size)) => self.fanout(conn, count, size as usize).await,
                None => tracing::warn!(conn = %conn.id(), "FANOUT body shorter than 12 bytes"),
            },
            _ => {}
        }
    }

    async fn fanout(&self, conn: &ConnectionHandle, count: u64, size: usize) {
        let encode = |message_type, body| {
            self.server.encode(&Unknown {
                message_type: MessageType::new(message_type),
                body,
            })
        };
        let (data, end) = match (
            encode(DATA, Bytes::from(vec![0; size])),
            encode(END, Bytes::new()),
        ) {
            (Ok(data), Ok(end)) => (data, end),
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(conn = %conn.id(), error = %err, "cannot encode the fan-out");
                return;
            }
        };
        // The receivers as they are now, each sent the frame encoded once; a full outbox is
        // waited for (the bench counts deliveries, it does not shed slow readers).
        let targets: Vec<ConnectionHandle> = self
            .server
            .connections()
            .into_iter()
            .filter(|target| target.id() != conn.id())
            .collect();
        let mut delivered = 0u64;
        for i in 0..count {
            for target in &targets {
                let sent = match target.try_send_encoded(&data) {
                    Err(SendError::QueueFull { .. }) => target.send_encoded(&data).await,
                    sent => sent,
                };
                delivered += u64::from(sent.is_ok());
            }
            if i % FANOUT_CHUNK == FANOUT_CHUNK - 1 {
                tokio::task::yield_now().await;
            }
        }
        for target in &targets {
            let _ = target.send_encoded(&end).await;
        }
        let report = Unknown {
            message_type: MessageType::new(REPORT),
            body: super::report_body(delivered, delivered * size as u64),
        };
        // Fails only when the control connection is closing: nobody left to tell.
        let _ = conn.send(&report).await;
    }
}

impl Handler<Unknown> for BenchHandler {
    // DATA is counted in place, in the read buffer, and consumed there (unless echoing): no
    // allocation, no decoding and no future per frame. ECHO only sets a flag.
    fn inspect(&self, conn: &ConnectionHandle, frame: FrameRef<'_>) -> Inspected {
        let Some(counters) = conn.state::<Counters>() else {
            return Inspected::Deliver;
        };
        match frame.message_type.value() {
            DATA => {
                counters.add(frame.body.len() as u64);
                if counters.echo.load(Ordering::Relaxed) {
                    Inspected::Deliver
                } else {
                    Inspected::Consumed
                }
            }
            ECHO => {
                counters.echo.store(true, Ordering::Relaxed);
                Inspected::Consumed
            }
            _ => Inspected::Deliver,
        }
    }

    /// What waits: an echoed DATA, END's REPORT, FANOUT.
    async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: HeaderFields) {
        self.answer(conn, msg, fields).await;
    }
}

/// Binds a bench server on `listen` (over TLS with `tls`) and serves it on a spawned task.
pub(super) async fn start(
    wire: &WireArgs,
    listen: &str,
    tls: Option<ltprotocol::tls::ServerTls>,
) -> anyhow::Result<Server<Unknown>> {
    let codec = super::codec_for(wire)?;
    let mut builder = Server::<Unknown>::builder(codec.layout().clone());
    builder
        .max_inbound(codec.inbound_limit())
        .max_outbound(codec.outbound_limit());
    if let Some(bytes) = wire.outbox_bytes {
        builder.outbox_capacity(bytes);
    }
    if let Some(tls) = tls {
        builder.tls(tls);
    }
    let server = builder
        .bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let handler = BenchHandler::new(server.clone());
    let serving = server.clone();
    tokio::spawn(async move {
        if let Err(err) = serving.serve(handler).await {
            tracing::warn!(error = %err, "bench server stopped");
        }
    });
    Ok(server)
}

/// `ltp bench serve`: prints the `listening` line, serves until SIGINT or SIGTERM.
pub(super) async fn serve_command(
    listen: &str,
    wire: &WireArgs,
    tls: Option<ltprotocol::tls::ServerTls>,
) -> anyhow::Result<ExitCode> {
    let server = start(wire, listen, tls).await?;
    println!(
        "{}",
        json!({"event": "listening", "addr": server.local_addr().to_string()})
    );
    let signal = wait_for_signal().await;
    tracing::info!(signal, "stopping");
    let report = server.shutdown(Duration::from_secs(5)).await;
    println!(
        "{}",
        json!({"event": "shutdown", "connections": report.connections, "forced": report.forced})
    );
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}
