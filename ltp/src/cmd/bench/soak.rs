//! `ltp bench soak`: a relaying [`Server`] and `--connections` [`ReconnectingClient`]s in
//! this process, for `--duration`.
//!
//! Each client sends DATA messages whose body is `[sender u32][seq u64]` (big-endian) and
//! 0..1000 bytes of padding, paced by a short random sleep, through
//! [`ReconnectingClient::send`]; every 0.5–3 s (at random) it closes its current
//! connection, so that the client reconnects and writes again what it had queued. The server
//! relays every message to every other client ([`Server::broadcast_except`]).
//!
//! Accounting:
//!
//! * the server records, per sender, the sequence numbers it received: `delivered` counts the
//!   distinct ones, `duplicated` the repeats; `lost` counts the gaps below the highest one
//!   received plus the sent messages above it that the sender's final
//!   [`CloseReport::unsent_frames`](ltprotocol::CloseReport) does not account for (so every
//!   message `send` accepted is either received or reported unsent);
//! * every receiver checks that each sender's relayed messages arrive with strictly increasing
//!   sequence numbers (gaps are allowed: a receiver may have been disconnected):
//!   `relay_out_of_order` and `relay_duplicated` must be 0;
//! * `reconnects` counts connections made beyond each client's first;
//! * `rss_*_bytes` is `VmRSS` of this process (server and clients) once every client is
//!   connected, halfway through, and after the clients were closed.
//!
//! `verified` is `lost == 0 && duplicated == 0 && relay_out_of_order == 0 &&
//! relay_duplicated == 0`; the exit code is 1 when it is false.

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use ltprotocol::{
    Backoff, ConnectionHandle, Handler, HeaderFields, HeaderLayout, MessageType,
    ReconnectingClient, Server, Unknown,
};

use super::DATA;
use super::conns::vm_rss;

/// How long the final `close` of each client may take.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest random padding after the 12-byte stamp.
const MAX_PADDING: u64 = 1000;

/// `ltp bench soak` options.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// How long the clients send.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = ltp::duration::parse)]
    duration: Duration,
    /// Reconnecting clients.
    #[arg(long, default_value_t = 100, value_name = "N")]
    connections: usize,
}

/// A small xorshift generator: enough spread for sizes and pauses.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Never zero (xorshift's fixed point); mixed so that neighbouring seeds differ.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough in `lo..hi` (`hi > lo`).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The sender and sequence number stamped on a body.
fn parse_stamp(body: &[u8]) -> Option<(u32, u64)> {
    let sender = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(body.get(4..12)?.try_into().ok()?);
    Some((sender, seq))
}

/// What the server received from one sender.
#[derive(Debug, Default)]
struct SenderTally {
    /// One past the highest sequence number received.
    next: u64,
    /// Sequence numbers below `next` not received (yet).
    missing: BTreeSet<u64>,
    distinct: u64,
    duplicated: u64,
}

impl SenderTally {
    fn record(&mut self, seq: u64) {
        if seq >= self.next {
            self.missing.extend(self.next..seq);
            self.next = seq + 1;
            self.distinct += 1;
        } else if self.missing.remove(&seq) {
            self.distinct += 1;
        } else {
            self.duplicated += 1;
        }
    }
}

/// The relaying server's handler.
#[derive(Debug)]
struct Relay {
    server: Server<Unknown>,
    senders: Mutex<HashMap<u32, SenderTally>>,
    malformed: AtomicU64,
}

impl Handler<Unknown> for Relay {
    async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: &HeaderFields) {
        let Some((sender, seq)) = parse_stamp(&msg.body) else {
            self.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(sender)
            .or_default()
            .record(seq);
        if let Err(err) = self.server.broadcast_except_with(&msg, fields, conn.id()) {
            tracing::warn!(error = %err, "cannot relay");
        }
    }
}

/// Counters shared by every client.
#[derive(Debug, Default)]
struct Totals {
    relayed: AtomicU64,
    out_of_order: AtomicU64,
    duplicated: AtomicU64,
    connects: AtomicU64,
    malformed: AtomicU64,
}

/// One client's handler: checks that each sender's relayed messages arrive in order.
#[derive(Debug)]
struct Receiver {
    totals: Arc<Totals>,
    last: Mutex<HashMap<u32, u64>>,
}

impl Handler<Unknown> for Receiver {
    async fn connected(&self, _conn: &ConnectionHandle) {
        self.totals.connects.fetch_add(1, Ordering::Relaxed);
    }

    async fn message(&self, _conn: &ConnectionHandle, msg: Unknown, _fields: &HeaderFields) {
        let Some((sender, seq)) = parse_stamp(&msg.body) else {
            self.totals.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.totals.relayed.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match last.get(&sender) {
            Some(&prev) if seq == prev => {
                self.totals.duplicated.fetch_add(1, Ordering::Relaxed);
            }
            Some(&prev) if seq < prev => {
                self.totals.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                last.insert(sender, seq);
            }
        }
    }
}

/// The body of message `seq` from `sender`.
fn body(sender: u32, seq: u64, rng: &mut XorShift) -> Bytes {
    let padding = rng.range(0, MAX_PADDING + 1) as usize;
    let mut body = Vec::with_capacity(12 + padding);
    body.extend_from_slice(&sender.to_be_bytes());
    body.extend_from_slice(&seq.to_be_bytes());
    body.resize(12 + padding, seq as u8);
    body.into()
}

/// Sends until `end`, dropping the connection at random moments; returns how many messages
/// `send` accepted (sequence numbers `0..sent`).
async fn sender(
    id: u32,
    client: ReconnectingClient<Unknown>,
    end: Instant,
    pause_ms: (u64, u64),
    seed: u64,
) -> u64 {
    let mut rng = XorShift::new(seed ^ u64::from(id).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut seq = 0u64;
    let mut next_drop = Instant::now() + Duration::from_millis(rng.range(500, 3000));
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_drop {
            if let Some(conn) = client.connection() {
                conn.close();
            }
            next_drop = now + Duration::from_millis(rng.range(500, 3000));
        }
        let msg = Unknown {
            message_type: MessageType::new(DATA),
            body: body(id, seq, &mut rng),
        };
        // Cancel safe: a send cut off by the end was not queued, so it is not counted.
        match tokio::time::timeout_at(end, client.send(&msg)).await {
            Ok(Ok(())) => seq += 1,
            Ok(Err(err)) => {
                tracing::warn!(sender = id, error = %err, "send failed");
                break;
            }
            Err(_) => break,
        }
        let pause = Duration::from_millis(rng.range(pause_ms.0, pause_ms.1));
        tokio::time::sleep_until((Instant::now() + pause).min(end)).await;
    }
    seq
}

/// `ltp bench soak`.
pub(crate) async fn run(args: &SoakArgs) -> anyhow::Result<ExitCode> {
    let duration = args.duration;
    anyhow::ensure!(!duration.is_zero(), "--duration must be more than zero");
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let n = args.connections;
    let layout = HeaderLayout::ltprotocol();

    let server = Server::<Unknown>::builder(layout.clone())
        .bind("127.0.0.1:0")
        .await
        .context("cannot start the in-process server")?;
    let relay = Arc::new(Relay {
        server: server.clone(),
        senders: Mutex::new(HashMap::new()),
        malformed: AtomicU64::new(0),
    });
    let serving = server.clone();
    let serve_relay = relay.clone();
    tokio::spawn(async move {
        if let Err(err) = serving.serve(serve_relay).await {
            tracing::warn!(error = %err, "soak server stopped");
        }
    });
    let addr = server.local_addr().to_string();

    let totals = Arc::new(Totals::default());
    let mut builder = ReconnectingClient::<Unknown>::builder(layout);
    builder.backoff(Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(500),
        ..Backoff::default()
    });
    let clients: Vec<ReconnectingClient<Unknown>> = (0..n)
        .map(|_| {
            builder.connect_with_handler(
                addr.clone(),
                Receiver {
                    totals: totals.clone(),
                    last: Mutex::new(HashMap::new()),
                },
            )
        })
        .collect();
    for client in &clients {
        client
            .wait_connected()
            .await
            .context("a soak client gave up connecting")?;
    }

    // Pace the load so that relaying (n - 1 deliveries per message) stays sustainable: the
    // mean pause grows with the number of clients (about 2,500 messages per second in all).
    let mean_ms = (n as u64 * 2 / 5).max(5);
    let pause_ms = (mean_ms / 2, mean_ms * 3 / 2 + 1);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x5EED, |d| d.as_nanos() as u64);

    let rss_start = vm_rss(None).unwrap_or(0);
    let started = Instant::now();
    let end = started + duration;
    let mut senders = JoinSet::new();
    for (id, client) in clients.iter().enumerate() {
        let client = client.clone();
        senders.spawn(async move { (id, sender(id as u32, client, end, pause_ms, seed).await) });
    }
    tokio::time::sleep_until(started + duration / 2).await;
    let rss_mid = vm_rss(None).unwrap_or(0);

    let mut sent_by = vec![0u64; n];
    while let Some(joined) = senders.join_next().await {
        let (id, sent) = joined.context("a soak sender panicked")?;
        if let Some(slot) = sent_by.get_mut(id) {
            *slot = sent;
        }
    }

    let mut closing = JoinSet::new();
    for (id, client) in clients.into_iter().enumerate() {
        closing.spawn(async move { (id, client.close(CLOSE_DEADLINE).await) });
    }
    let mut unsent_by = vec![0u64; n];
    while let Some(joined) = closing.join_next().await {
        let (id, report) = joined.context("a soak client's close panicked")?;
        if let Some(slot) = unsent_by.get_mut(id) {
            *slot = report.unsent_frames as u64;
        }
    }
    server.shutdown(Duration::from_secs(5)).await;
    let rss_end = vm_rss(None).unwrap_or(0);

    let (mut delivered, mut lost, mut duplicated, mut unsent_unaccounted) =
        (0u64, 0u64, 0u64, 0u64);
    {
        let tallies = relay.senders.lock().unwrap_or_else(PoisonError::into_inner);
        let empty = SenderTally::default();
        for (id, (&sent, &unsent)) in sent_by.iter().zip(&unsent_by).enumerate() {
            let tally = tallies.get(&(id as u32)).unwrap_or(&empty);
            delivered += tally.distinct;
            duplicated += tally.duplicated;
            let tail = sent.saturating_sub(tally.next);
            lost += tally.missing.len() as u64 + tail.saturating_sub(unsent);
            // Reported unsent yet received (or received beyond what was sent): a miscount.
            unsent_unaccounted += unsent.saturating_sub(tail) + tally.next.saturating_sub(sent);
        }
    }
    let sent: u64 = sent_by.iter().sum();
    let unsent: u64 = unsent_by.iter().sum();
    let relay_out_of_order = totals.out_of_order.load(Ordering::Relaxed);
    let relay_duplicated = totals.duplicated.load(Ordering::Relaxed);
    let malformed =
        relay.malformed.load(Ordering::Relaxed) + totals.malformed.load(Ordering::Relaxed);
    let verified = lost == 0
        && duplicated == 0
        && relay_out_of_order == 0
        && relay_duplicated == 0
        && unsent_unaccounted == 0
        && malformed == 0;
    println!(
        "{}",
        json!({
            "event": "result",
            "mode": "soak",
            "duration_secs": duration.as_secs_f64(),
            "connections": n,
            "sent": sent,
            "delivered": delivered,
            "lost": lost,
            "duplicated": duplicated,
            "unsent": unsent,
            "unsent_unaccounted": unsent_unaccounted,
            "malformed": malformed,
            "relayed": totals.relayed.load(Ordering::Relaxed),
            "relay_out_of_order": relay_out_of_order,
            "relay_duplicated": relay_duplicated,
            "reconnects": totals.connects.load(Ordering::Relaxed).saturating_sub(n as u64),
            "rss_start_bytes": rss_start,
            "rss_mid_bytes": rss_mid,
            "rss_end_bytes": rss_end,
            "verified": verified,
        })
    );
    Ok(if verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_gaps_fills_and_repeats() {
        let mut t = SenderTally::default();
        for seq in [0, 1, 3, 2, 2, 5] {
            t.record(seq);
        }
        assert_eq!((t.next, t.distinct, t.duplicated), (6, 5, 1));
        assert_eq!(t.missing.iter().copied().collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn stamp_round_trips() {
        let mut rng = XorShift::new(7);
        let b = body(3, 42, &mut rng);
        assert!(b.len() >= 12 && b.len() <= 12 + MAX_PADDING as usize);
        assert_eq!(parse_stamp(&b), Some((3, 42)));
    }
}
