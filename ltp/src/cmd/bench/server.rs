//! The bench server: [`ltprotocol::Server`] with a [`Handler`] that counts DATA per
//! connection, answers END with a REPORT, echoes after ECHO and broadcasts on FANOUT.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::future::Either;
use serde_json::json;

use ltprotocol::{
    ConnectionHandle, ConnectionId, DisconnectReason, Handler, HeaderFields, MessageType,
    SendError, Server, Unknown,
};

use super::{DATA, ECHO, END, FANOUT, REPORT, WireArgs};

/// The per-connection counters live in this many independently locked maps, so that
/// connections served by different threads rarely meet on one lock.
const SHARDS: usize = 64;
/// A FANOUT yields to the runtime after this many rounds, so that the connections' writers
/// drain their outboxes while it goes on (on a single-thread runtime too).
const FANOUT_CHUNK: u64 = 64;

/// What one connection has sent since it opened or since its last END.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    count: u64,
    bytes: u64,
    echo: bool,
}

/// Hashes a connection id as itself (ids are unique counters: nothing to spread).
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type CounterMap = HashMap<ConnectionId, Counters, BuildHasherDefault<IdHasher>>;

#[derive(Debug)]
struct BenchHandler {
    shards: Vec<Mutex<CounterMap>>,
    server: Server<Unknown>,
}

impl BenchHandler {
    fn new(server: Server<Unknown>) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(CounterMap::default()))
                .collect(),
            server,
        }
    }

    /// Runs `f` on this connection's counters.
    fn with<T>(&self, id: ConnectionId, f: impl FnOnce(&mut Counters) -> T) -> T {
        let index = (id.get() % SHARDS as u64) as usize;
        let mut fallback = Counters::default();
        let Some(shard) = self.shards.get(index) else {
            // `index < SHARDS == shards.len()`: never reached.
            return f(&mut fallback);
        };
        // Each critical section is one update of one entry: consistent even after a panic.
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(id).or_default())
    }

    /// The frames that wait: an echoed DATA, END's REPORT, FANOUT.
    async fn answer(&self, conn: &ConnectionHandle, msg: Unknown, fields: HeaderFields) {
        match msg.message_type.value() {
            DATA => {
                // Fails only when this connection is closing.
                let _ = conn.send_with(&msg, &fields).await;
            }
            END => {
                let (count, bytes) = self.with(conn.id(), |c| {
                    let report = (c.count, c.bytes);
                    (c.count, c.bytes) = (0, 0);
                    report
                });
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
    // Counting a DATA frame needs no waiting: it is done before the future is built, and the
    // future returned for it is a ready one, so the read loop moves a few bytes per frame
    // rather than a future able to broadcast. Only the frames that wait are boxed.
    fn message(
        &self,
        conn: &ConnectionHandle,
        msg: Unknown,
        fields: HeaderFields,
    ) -> impl Future<Output = ()> + Send {
        let value = msg.message_type.value();
        if value == DATA {
            let len = msg.body.len() as u64;
            let echo = self.with(conn.id(), |c| {
                c.count += 1;
                c.bytes += len;
                c.echo
            });
            if !echo {
                return Either::Left(std::future::ready(()));
            }
        } else if value == ECHO {
            self.with(conn.id(), |c| c.echo = true);
            return Either::Left(std::future::ready(()));
        }
        Either::Right(Box::pin(self.answer(conn, msg, fields)))
    }

    async fn disconnected(&self, conn: &ConnectionHandle, _reason: &DisconnectReason) {
        let index = (conn.id().get() % SHARDS as u64) as usize;
        if let Some(shard) = self.shards.get(index) {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&conn.id());
        }
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
