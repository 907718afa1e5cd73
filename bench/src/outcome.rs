//! The final JSON line every bench client prints (the same keys as `ltp bench`); its latency
//! percentiles and resident memory come from [`ltp::bench_wire`], as `ltp bench`'s do.

use std::time::Duration;

use ltp::bench_wire::round_to;
use serde_json::{Value, json};

pub use ltp::bench_wire::{Latency, LatencyRecorder, Rss, vm_rss};

/// What one bench run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which implementation ran the client (`handrolled`, `lengthdelimited`, `ltp`).
    pub implementation: &'static str,
    /// `throughput`, `pingpong`, `fanout` or `conns`.
    pub mode: &'static str,
    /// The client's sending path (`bufwriter`, `framed`, `codec`, `runtime`).
    pub client: &'static str,
    /// The target address, or `in-process`.
    pub target: String,
    /// The header layout's name.
    pub layout: String,
    /// Connections used (receivers for fanout).
    pub connections: usize,
    /// DATA body size in bytes.
    pub body_size: usize,
    /// DATA frames sent (throughput), round trips (pingpong), broadcasts (fanout).
    pub messages: u64,
    /// DATA frames received in all (fanout: `messages × connections`); else `messages`.
    pub deliveries: u64,
    /// Header size, to compute wire bytes.
    pub header_len: usize,
    /// Time from the first DATA sent to the last REPORT (or END) received.
    pub elapsed: Duration,
    /// Round-trip latency (pingpong; conns' probes).
    pub latency: Option<Latency>,
    /// Memory (conns).
    pub rss: Option<Rss>,
    /// Every REPORT and echo matched what was sent.
    pub verified: bool,
    /// What did not match, when not verified.
    pub problems: Vec<String>,
}

impl Outcome {
    /// The result line: `{"event":"result","mode":…,"msgs_per_sec":…,…,"verified":true}`.
    pub fn to_json(&self) -> Value {
        let secs = self.elapsed.as_secs_f64();
        let per_sec = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
        let rate = self.mode != "conns";
        let deliveries = self.deliveries as f64;
        let body_bytes = deliveries * self.body_size as f64;
        let wire_bytes = deliveries * (self.body_size + self.header_len) as f64;
        let [rss_bytes, rss_per_conn, scope] = Rss::result_fields(self.rss, self.connections);
        json!({
            "event": "result",
            "implementation": self.implementation,
            "mode": self.mode,
            "client": self.client,
            "target": self.target,
            "layout": self.layout,
            "connections": self.connections,
            "body_size": self.body_size,
            "messages": self.messages,
            "deliveries": self.deliveries,
            "elapsed_secs": round_to(secs, 6),
            "msgs_per_sec": if rate { json!(per_sec(deliveries).round()) } else { Value::Null },
            "mb_per_sec": if rate { json!(round_to(per_sec(body_bytes) / 1e6, 1)) } else { Value::Null },
            "wire_mb_per_sec": if rate { json!(round_to(per_sec(wire_bytes) / 1e6, 1)) } else { Value::Null },
            "latency_us": self.latency.map_or(Value::Null, Latency::to_json),
            "rss_bytes": rss_bytes,
            "rss_per_conn_bytes": rss_per_conn,
            "rss_scope": scope,
            "verified": self.verified,
            "problems": self.problems,
        })
    }
}

/// A figure for a table or a chart label: three significant digits with a k, M or G suffix
/// (`12.36 M`, `446.3 k`, `4276`, `33.3`).
///
/// ```
/// assert_eq!(bench::outcome::human(12_360_000.0), "12.36 M");
/// assert_eq!(bench::outcome::human(33.25), "33.2");
/// ```
pub fn human(x: f64) -> String {
    let abs = x.abs();
    if abs >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if abs >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if abs >= 1e4 {
        format!("{:.1} k", x / 1e3)
    } else if abs >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}
