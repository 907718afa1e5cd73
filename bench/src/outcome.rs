//! The final JSON line every bench client prints (the same keys as `ltp bench`), latency
//! percentiles and resident memory.

use std::time::Duration;

use serde_json::{Value, json};

/// Latency percentiles of a set of round trips, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of `samples` (sorted in place); `None` when empty.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        let at = |q: f64| -> Option<f64> {
            let last = samples.len().checked_sub(1)?;
            // Nearest rank: the smallest sample with at least q of the samples at or below it.
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, last + 1) - 1;
            samples.get(rank).map(|d| d.as_nanos() as f64 / 1e3)
        };
        Some(Self {
            p50: at(0.50)?,
            p99: at(0.99)?,
            p999: at(0.999)?,
            max: at(1.0)?,
        })
    }

    /// `{"p50":…,"p99":…,"p999":…,"max":…}`, rounded to 0.1 µs.
    pub fn to_json(self) -> Value {
        json!({
            "p50": round1(self.p50),
            "p99": round1(self.p99),
            "p999": round1(self.p999),
            "max": round1(self.max),
        })
    }
}

/// Resident memory measured around a set of idle connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    /// Resident bytes before the connections were opened.
    pub before: u64,
    /// Resident bytes with every connection open (and synchronised).
    pub after: u64,
    /// Whose memory: `"server-pid"`, `"server-in-process"` or `"client-only"`.
    pub scope: &'static str,
}

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
        let (rss_bytes, rss_per_conn, scope) = match self.rss {
            Some(rss) => {
                let grown = rss.after.saturating_sub(rss.before);
                (
                    json!(grown),
                    json!((grown as f64 / self.connections.max(1) as f64).round()),
                    json!(rss.scope),
                )
            }
            None => (Value::Null, Value::Null, Value::Null),
        };
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
            "mb_per_sec": if rate { json!(round1(per_sec(body_bytes) / 1e6)) } else { Value::Null },
            "wire_mb_per_sec": if rate { json!(round1(per_sec(wire_bytes) / 1e6)) } else { Value::Null },
            "latency_us": self.latency.map_or(Value::Null, Latency::to_json),
            "rss_bytes": rss_bytes,
            "rss_per_conn_bytes": rss_per_conn,
            "rss_scope": scope,
            "verified": self.verified,
            "problems": self.problems,
        })
    }
}

fn round1(x: f64) -> f64 {
    round_to(x, 1)
}

fn round_to(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// `VmRSS` of a process (`None` = this one) in bytes, from `/proc/PID/status`.
pub fn vm_rss(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let lat = Latency::of(&mut samples).unwrap();
        assert_eq!(
            (lat.p50, lat.p99, lat.p999, lat.max),
            (500.0, 990.0, 999.0, 1000.0)
        );
        assert!(Latency::of(&mut []).is_none());
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(vm_rss(None).unwrap() > 0);
    }
}
