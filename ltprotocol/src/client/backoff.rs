//! [`Backoff`]: the delays between a client's connection attempts. A pure policy: no clock,
//! no sleeping, so it is tested as a sequence.

use std::time::Duration;

/// How long a [`ReconnectingClient`](crate::ReconnectingClient) waits between attempts:
/// `initial × factor^(failures − 1)`, capped at `max`, then spread by a uniform jitter of
/// ±`jitter` (never above `max`).
///
/// Our defaults beside Twisted's `ReconnectingClientFactory` (the ancestor's client):
///
/// | knob | ours | Twisted | why ours differ |
/// |---|---|---|---|
/// | `initial` | 0.5 s | 1.0 s | a short blip heals fast |
/// | `factor` | 2 | e ≈ 2.718 | waits 0.5, 1, 2, 4, 8, 16, 30 s: predictable |
/// | `max` | 30 s | 3,600 s | a returning server is found within 30 s, not an hour |
/// | `jitter` | ±20 % uniform, inside the cap | Gaussian σ 0.1196, compounding, can exceed the cap | spreads a herd after a restart without growing past `max` |
/// | `max_attempts` | none (retry forever) | none | |
/// | reset | after a connection that lasted `reset_after` (2 s); even then the next attempt waits `initial` (jittered) | on every TCP connect | a server that accepts (even says "busy") and closes at once is not hammered: its waits grow |
///
/// ```
/// use std::time::Duration;
/// use ltprotocol::Backoff;
/// let backoff = Backoff { jitter: 0.0, ..Backoff::default() };
/// let waits: Vec<_> = (1..=8).map(|n| backoff.delay(n, 0.5).unwrap()).collect();
/// assert_eq!(waits[0], Duration::from_millis(500));
/// assert_eq!(waits[3], Duration::from_secs(4));
/// assert_eq!(waits[7], Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The wait after the first failure. Default: 0.5 s.
    pub initial: Duration,
    /// Each further failure multiplies the wait by this (at least 1). Default: 2.
    pub factor: f64,
    /// The longest wait. Default: 30 s.
    pub max: Duration,
    /// The relative spread of each wait: ±20 % is 0.2. Clamped to 0..=1. Default: 0.2.
    pub jitter: f64,
    /// Give up after this many consecutive failed attempts; `None` retries forever
    /// (the default).
    pub max_attempts: Option<u32>,
    /// A connection that stays up this long (and whose handshake, if any, succeeded) resets
    /// the sequence: the next attempt waits `initial` again (never less). One that ends
    /// sooner counts as a failed attempt, whatever it delivered. Default: 2 s.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            factor: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.2,
            max_attempts: None,
            reset_after: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The ancestor's policy, Twisted's `ReconnectingClientFactory` defaults (1 s, ×e,
    /// 3,600 s), with its jitter taken as uniform ±11.96 % and its reset on every connect.
    pub fn twisted() -> Self {
        Self {
            initial: Duration::from_secs(1),
            factor: std::f64::consts::E,
            max: Duration::from_secs(3600),
            jitter: 0.1196,
            max_attempts: None,
            reset_after: Duration::ZERO,
        }
    }

    /// The wait after `failures` consecutive failed attempts (from 1), before jitter.
    pub fn base_delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(1_000) as i32;
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let max = self.max.as_secs_f64();
        let secs = (self.initial.as_secs_f64() * factor.powi(exponent)).min(max);
        Duration::try_from_secs_f64(secs).unwrap_or(self.max)
    }

    /// The wait after `failures` consecutive failed attempts, with jitter from `unit`, a
    /// number in `[0, 1)` (0.5 gives no jitter); `None` once `max_attempts` is reached.
    pub fn delay(&self, failures: u32, unit: f64) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| failures >= max) {
            return None;
        }
        Some(self.jittered(failures, unit))
    }

    /// The wait before reconnecting after a connection that lasted (see
    /// [`reset_after`](Self::reset_after)) was lost: the first wait, `initial` with jitter.
    /// A client never reconnects sooner, whatever the connection did.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ltprotocol::Backoff;
    /// let backoff = Backoff::default();
    /// assert_eq!(backoff.reconnect_delay(0.5), Duration::from_millis(500));
    /// assert_eq!(backoff.reconnect_delay(0.0), Duration::from_millis(400)); // -20 %
    /// ```
    pub fn reconnect_delay(&self, unit: f64) -> Duration {
        self.jittered(1, unit)
    }

    fn jittered(&self, failures: u32, unit: f64) -> Duration {
        let base = self.base_delay(failures).as_secs_f64();
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let secs = (base * (1.0 + jitter * (2.0 * unit - 1.0))).clamp(0.0, self.max.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(self.max)
    }
}

/// A small xorshift generator for jitter: reproducible in tests, seeded from the clock and
/// a counter in clients. Not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn from_clock() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::new(nanos ^ count.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// A number in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_factor_up_to_the_cap() {
        let backoff = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        let secs: Vec<f64> = (1..=9)
            .map(|n| backoff.delay(n, 0.3).unwrap_or_default().as_secs_f64())
            .collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_the_cap() {
        let backoff = Backoff::default();
        let mut jitter = Jitter::new(42);
        for failures in 1..50 {
            let base = backoff.base_delay(failures).as_secs_f64();
            let got = backoff
                .delay(failures, jitter.next_unit())
                .unwrap_or_default()
                .as_secs_f64();
            assert!(
                got >= base * 0.8 - 1e-9 && got <= base * 1.2 + 1e-9,
                "{failures}: {got}"
            );
            assert!(got <= 30.0);
        }
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let backoff = Backoff {
            max_attempts: Some(3),
            ..Backoff::default()
        };
        assert!(backoff.delay(2, 0.5).is_some());
        assert_eq!(backoff.delay(3, 0.5), None);
    }

    #[test]
    fn jitter_units_are_in_range_and_vary() {
        let mut jitter = Jitter::new(7);
        let units: Vec<f64> = (0..1000).map(|_| jitter.next_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(units.iter().any(|u| *u < 0.1) && units.iter().any(|u| *u > 0.9));
    }
}
