//! The bench server: [`ltprotocol::Server`] with a [`Handler`] that counts DATA per
//! connection, answers END with a REPORT, echoes after ECHO and broadcasts on FANOUT.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;

use ltp::bench_wire::check_fanout;
use ltprotocol::capture::Capture;
use ltprotocol::{
    ConnectionHandle, FrameRef, Handler, HeaderFields, Inspected, Message, MessageType, Protocol,
    SendError, Server, Unknown,
};

use super::{DATA, ECHO, END, FANOUT, REPORT, WireArgs};
use crate::cmd::signals::Signals;

/// A FANOUT yields to the runtime after this many rounds, so that the connections' writers
/// drain their outboxes while it goes on (on a single-thread runtime too). Large enough that
/// each writer finds hundreds of frames per wake-up and writes them in one call (at 64 rounds
/// it made seven times the `write(2)` calls of the hand-rolled broadcaster, which yields only
/// when a queue is full); small enough that what waits per connection stays a few KiB.
const FANOUT_CHUNK: u64 = 512;

/// What one connection has sent since it opened or since its last END: kept in the
/// connection's own handler ([`Server::serve_each`]). Only the connection's task changes it,
/// so a load and a store do (no locked read-modify-write).
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

    /// Counts a DATA frame of `bytes`; says whether it is to be echoed (after an ECHO).
    fn data(&self, bytes: u64) -> bool {
        self.add(bytes);
        self.echoing()
    }

    /// ECHO: every later DATA is sent back.
    fn echo_from_now(&self) {
        self.echo.store(true, Ordering::Relaxed);
    }

    fn echoing(&self) -> bool {
        self.echo.load(Ordering::Relaxed)
    }

    /// The counts so far, and a fresh start.
    fn take(&self) -> (u64, u64) {
        (
            self.count.swap(0, Ordering::Relaxed),
            self.bytes.swap(0, Ordering::Relaxed),
        )
    }
}

/// How the bench server receives DATA (`ltp bench serve --api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Api {
    /// Counted in place in the read buffer ([`Handler::inspect`]): no allocation, no
    /// decoding and no future per frame.
    #[default]
    Inspect,
    /// Every frame as an [`Unknown`] (its type, its header fields and its body as `Bytes`),
    /// DATA counted in [`Handler::message`].
    Frame,
    /// Every frame decoded into [`Bench`], a derived protocol enum, and taken through the
    /// ordinary async [`Handler::message`]: the path users write first.
    #[value(alias = "typed")]
    TypedAsync,
}

/// DATA as a typed message: the body, whatever its size.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 1)]
pub(crate) struct Data {
    body: Bytes,
}

/// END: report what was counted.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 2)]
pub(crate) struct End;

/// REPORT: what was counted since the connection opened or since its last END.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 3)]
pub(crate) struct Report {
    count: u64,
    bytes: u64,
}

/// FANOUT: broadcast `count` DATA frames of `size` bytes to every other connection.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 4)]
pub(crate) struct Fanout {
    count: u64,
    size: u32,
}

/// ECHO: send every later DATA back.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 5)]
pub(crate) struct Echo;

/// The bench protocol as the typed API sees it (`--api typed`).
#[derive(Debug, Clone, PartialEq, Eq, Protocol)]
pub(crate) enum Bench {
    /// DATA.
    Data(Data),
    /// END.
    End(End),
    /// FANOUT.
    Fanout(Fanout),
    /// ECHO.
    Echo(Echo),
    /// Anything else: ignored.
    #[ltp(unknown)]
    Other(Unknown),
}

/// The frame-level server (`--api inspect` and `--api frame`): one handler per connection,
/// whose counters are that connection's.
#[derive(Debug)]
struct BenchHandler {
    server: Server<Unknown>,
    /// Count DATA in [`Handler::inspect`] (`--api inspect`) or, decoded, in
    /// [`Handler::message`] (`--api frame`).
    in_place: bool,
    counters: Counters,
}

impl Handler<Unknown> for BenchHandler {
    // With `--api inspect`, DATA is counted in place, in the read buffer, and consumed there
    // (unless echoing): no allocation, no decoding and no future per frame. ECHO only sets a
    // flag.
    fn inspect(&self, _conn: &ConnectionHandle, frame: FrameRef<'_>) -> Inspected {
        if !self.in_place {
            return Inspected::Deliver;
        }
        let counters = &self.counters;
        match frame.message_type.value() {
            // The guard counts the frame (once) and says whether it is to be echoed.
            DATA if counters.data(frame.body.len() as u64) => Inspected::Deliver,
            DATA => Inspected::Consumed,
            ECHO => {
                counters.echo_from_now();
                Inspected::Consumed
            }
            _ => Inspected::Deliver,
        }
    }

    /// With `--api frame` everything; with `--api inspect` what `inspect` did not keep: an
    /// echoed DATA (counted already), END's REPORT, FANOUT.
    async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: &HeaderFields) {
        let counters = &self.counters;
        match msg.message_type.value() {
            // Counted in place already (`inspect`), or now (`frame`); echoed if asked. Fails
            // only when this connection is closing.
            DATA => {
                let echo = if self.in_place {
                    counters.echoing()
                } else {
                    counters.data(msg.body.len() as u64)
                };
                if echo {
                    let _ = conn.send_with(&msg, fields).await;
                }
            }
            ECHO => counters.echo_from_now(),
            END => {
                let (count, bytes) = counters.take();
                let report = Unknown {
                    message_type: MessageType::new(REPORT),
                    body: super::report_body(count, bytes),
                };
                let _ = conn.send_with(&report, fields).await;
            }
            FANOUT => match super::parse_fanout(&msg.body) {
                // Boxed: the broadcast's state would otherwise make every message's future
                // large, and that future is moved into place for each frame.
                Some((count, size)) => {
                    Box::pin(fanout(&self.server, conn, count, size)).await;
                }
                None => tracing::warn!(conn = %conn.id(), "FANOUT body shorter than 12 bytes"),
            },
            _ => {}
        }
    }
}

/// Broadcasts `count` DATA frames of `size` bytes, then END, to every connection but `conn`,
/// and answers `conn` with the deliveries made.
///
/// The peer chooses both numbers, so they are checked first ([`check_fanout`]): a DATA frame
/// over the server's frame limit, or a count over
/// [`MAX_FANOUT_COUNT`](ltp::bench_wire::MAX_FANOUT_COUNT), is logged and closes
/// `conn`, with nothing allocated, sent or answered (the bench protocol has no error message,
/// and a REPORT would read as a run that delivered nothing).
async fn fanout<P: Protocol>(server: &Server<P>, conn: &ConnectionHandle, count: u64, size: u32) {
    let codec = server.codec();
    let max_frame = codec.inbound_limit().min(codec.outbound_limit());
    if let Err(err) = check_fanout(count, size, codec.layout().header_len(), max_frame) {
        tracing::warn!(
            conn = %conn.id(),
            peer = %conn.peer(),
            error = %err,
            "FANOUT refused; closing the connection"
        );
        conn.close();
        return;
    }
    // Lossless: a u32 fits the usize of every target tokio supports.
    let size = size as usize;
    let encode = |message_type, body| {
        server.encode(&Unknown {
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
    let targets: Vec<ConnectionHandle> = server
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
        // Saturating: deliveries (at most MAX_FANOUT_COUNT per receiver) times a body size
        // near the frame limit may pass u64 with a wide layout and a large `--max-frame`.
        body: super::report_body(delivered, delivered.saturating_mul(size as u64)),
    };
    // Fails only when the control connection is closing: nobody left to tell.
    let _ = conn.send(&report).await;
}

/// The typed server (`--api typed-async`): every frame is decoded into [`Bench`] and taken
/// through the ordinary async `message`. One handler per connection, as [`BenchHandler`].
#[derive(Debug)]
struct TypedHandler {
    server: Server<Bench>,
    counters: Counters,
}

impl Handler<Bench> for TypedHandler {
    async fn message(&self, conn: &ConnectionHandle, msg: Bench, fields: &HeaderFields) {
        let counters = &self.counters;
        match msg {
            Bench::Data(data) => {
                if counters.data(data.body.len() as u64) {
                    let _ = conn.send_with(&data, fields).await;
                }
            }
            Bench::Echo(Echo) => counters.echo_from_now(),
            Bench::End(End) => {
                let (count, bytes) = counters.take();
                let _ = conn.send_with(&Report { count, bytes }, fields).await;
            }
            Bench::Fanout(Fanout { count, size }) => {
                // Boxed, as for `BenchHandler`.
                Box::pin(fanout(&self.server, conn, count, size)).await;
            }
            Bench::Other(_) => {}
        }
    }
}

/// Binds the frame-level bench server on `listen` (over TLS with `tls`), counting DATA in
/// place (`in_place`, `--api inspect`) or in `message` (`--api frame`), and serves it on a
/// spawned task.
pub(super) async fn start(
    wire: &WireArgs,
    listen: &str,
    in_place: bool,
    tls: Option<ltprotocol::tls::ServerTls>,
    capture: Option<&Capture>,
) -> anyhow::Result<Server<Unknown>> {
    let server = bind(wire, listen, tls, capture).await?;
    let shared = server.clone();
    spawn_serving(&server, move |_| BenchHandler {
        server: shared.clone(),
        in_place,
        counters: Counters::default(),
    });
    Ok(server)
}

/// A server for protocol `P`, bound and configured, not serving yet.
async fn bind<P: Protocol>(
    wire: &WireArgs,
    listen: &str,
    tls: Option<ltprotocol::tls::ServerTls>,
    capture: Option<&Capture>,
) -> anyhow::Result<Server<P>> {
    let codec = super::codec_for(wire)?;
    let mut builder = Server::<P>::builder(codec.layout().clone());
    builder
        .max_inbound(codec.inbound_limit())
        .max_outbound(codec.outbound_limit());
    if let Some(bytes) = wire.outbox_bytes {
        builder.outbox_capacity(bytes);
    }
    if let Some(tls) = tls {
        builder.tls(tls);
    }
    if let Some(capture) = capture {
        builder.capture(capture.clone());
    }
    builder
        .bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

/// Serves `server` on a spawned task, with a handler per connection made by `make`.
fn spawn_serving<P: Protocol, H: Handler<P>>(
    server: &Server<P>,
    make: impl FnMut(&ConnectionHandle) -> H + Send + 'static,
) {
    let serving = server.clone();
    tokio::spawn(async move {
        if let Err(err) = serving.serve_each(make).await {
            tracing::warn!(error = %err, "bench server stopped");
        }
    });
}

/// `ltp bench serve`: prints the `listening` line, serves until SIGINT or SIGTERM; with
/// `capture`, every connection is captured (`--pcap`), and the `shutdown` line says what the
/// capture wrote and dropped.
pub(super) async fn serve_command(
    listen: &str,
    wire: &WireArgs,
    api: Api,
    tls: Option<ltprotocol::tls::ServerTls>,
    capture: Option<Capture>,
) -> anyhow::Result<ExitCode> {
    let capture = capture.as_ref();
    match api {
        Api::Inspect | Api::Frame => {
            let server = start(wire, listen, api == Api::Inspect, tls, capture).await?;
            serve_until_signal(server, capture).await
        }
        Api::TypedAsync => {
            let server = bind::<Bench>(wire, listen, tls, capture).await?;
            let shared = server.clone();
            spawn_serving(&server, move |_| TypedHandler {
                server: shared.clone(),
                counters: Counters::default(),
            });
            serve_until_signal(server, capture).await
        }
    }
}

async fn serve_until_signal<P: Protocol>(
    server: Server<P>,
    capture: Option<&Capture>,
) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::install().context("cannot catch SIGINT and SIGTERM")?;
    println!(
        "{}",
        json!({"event": "listening", "addr": server.local_addr().to_string()})
    );
    let signal = signals.recv().await;
    tracing::info!(signal, "stopping");
    let report = server.shutdown(Duration::from_secs(5)).await;
    let mut shutdown =
        json!({"event": "shutdown", "connections": report.connections, "forced": report.forced});
    if let Some(pcap) = crate::cmd::pcap::finish(capture).await {
        shutdown["pcap"] = pcap;
    }
    println!("{shutdown}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use ltprotocol::{FrameCodec, HeaderLayout};

    use super::*;

    fn wire(msg: &impl ltprotocol::Encode) -> BytesMut {
        let mut out = BytesMut::new();
        FrameCodec::new(HeaderLayout::ltprotocol())
            .encode_message(msg, &mut out)
            .expect("encodes");
        out
    }

    fn raw(message_type: i128, body: Bytes) -> BytesMut {
        wire(&Unknown {
            message_type: MessageType::new(message_type),
            body,
        })
    }

    /// The derived messages of `--api typed-async` are the bench wire protocol's frames, byte for
    /// byte.
    #[test]
    fn typed_messages_are_the_wire_protocol() {
        assert_eq!(
            wire(&Report {
                count: 7,
                bytes: 9_000
            }),
            raw(REPORT, super::super::report_body(7, 9_000))
        );
        assert_eq!(
            wire(&Fanout {
                count: 20_000,
                size: 64
            }),
            raw(FANOUT, super::super::fanout_body(20_000, 64))
        );
        assert_eq!(wire(&End), raw(END, Bytes::new()));
        assert_eq!(wire(&Echo), raw(ECHO, Bytes::new()));
        let body = Bytes::from_static(b"sixteen bytes..!");
        assert_eq!(wire(&Data { body: body.clone() }), raw(DATA, body));
    }
}
