//! Round-trip latencies: gathered into an HDR histogram ([`LatencyRecorder`]), reported as
//! the result line's percentiles ([`Latency`], `latency_us`).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::round_to;

/// Significant decimal digits kept of every sample: each percentile is within 0.1 % of the
/// sample it stands for.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Round trips gathered into an HDR histogram of nanoseconds (the `hdrhistogram` crate), so
/// that a run of any length or count costs the same memory: a few tens of KiB for
/// sub-millisecond round trips, growing with the logarithm of the largest sample (at most
/// about 450 KiB), never with their number. Percentiles keep 3 significant digits (within
/// 0.1 %); the largest sample is kept exactly.
///
/// ```
/// use std::time::Duration;
/// use ltp::bench_wire::LatencyRecorder;
///
/// let mut recorder = LatencyRecorder::new();
/// assert_eq!(recorder.latency(), None);
/// for micros in 1..=1000 {
///     recorder.record(Duration::from_micros(micros));
/// }
/// assert_eq!(recorder.len(), 1000);
/// let latency = recorder.latency().expect("samples");
/// assert!((latency.p50 - 500.0).abs() <= 0.5, "{latency:?}");
/// assert!((latency.p99 - 990.0).abs() <= 1.0, "{latency:?}");
/// assert_eq!(latency.max, 1000.0);
/// ```
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    max: Duration,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        // An auto-resizing histogram from 1 ns: it grows to the largest sample recorded.
        let histogram = Histogram::new(SIGNIFICANT_DIGITS).unwrap_or_else(|_| {
            unreachable!("3 significant digits are within hdrhistogram's 0..=5")
        });
        Self {
            histogram,
            max: Duration::ZERO,
        }
    }

    /// Adds one round trip.
    pub fn record(&mut self, sample: Duration) {
        let nanos = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        // Past what the histogram can grow to (centuries), the sample is clamped.
        if self.histogram.record(nanos).is_err() {
            self.histogram.saturating_record(nanos);
        }
        self.max = self.max.max(sample);
    }

    /// How many round trips were recorded.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether none was.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The percentiles of what was recorded; `None` when nothing was. Nearest rank (the
    /// smallest sample with at least that share of the samples at or below it), each given as
    /// the middle of its histogram bucket (within 0.1 %) and never above the exact maximum.
    #[must_use]
    pub fn latency(&self) -> Option<Latency> {
        if self.histogram.is_empty() {
            return None;
        }
        let max = self.max.as_nanos() as f64 / 1e3;
        let at = |q: f64| {
            let nanos = self
                .histogram
                .median_equivalent(self.histogram.value_at_quantile(q));
            (nanos as f64 / 1e3).min(max)
        };
        Some(Latency {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max,
        })
    }
}

/// Latency percentiles of a set of round trips, in microseconds, by nearest rank.
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
    /// The percentiles of a few samples (through a [`LatencyRecorder`], as every run's are);
    /// `None` when there are none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ltp::bench_wire::Latency;
    ///
    /// let samples = [1500, 900, 1200].map(Duration::from_nanos);
    /// let latency = Latency::of(&samples).expect("samples");
    /// assert_eq!((latency.p50, latency.p99, latency.max), (1.2, 1.5, 1.5));
    /// assert_eq!(Latency::of(&[]), None);
    /// ```
    #[must_use]
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut recorder = LatencyRecorder::new();
        for sample in samples {
            recorder.record(*sample);
        }
        recorder.latency()
    }

    /// The result line's `latency_us`: `{"p50":…,"p99":…,"p999":…,"max":…}`, each rounded to
    /// 0.1 µs.
    ///
    /// ```
    /// use ltp::bench_wire::Latency;
    ///
    /// let latency = Latency { p50: 60.44, p99: 104.96, p999: 180.0, max: 250.05 };
    /// let json = latency.to_json();
    /// assert_eq!((json["p50"].as_f64(), json["p99"].as_f64()), (Some(60.4), Some(105.0)));
    /// ```
    #[must_use]
    pub fn to_json(self) -> Value {
        json!({
            "p50": round_to(self.p50, 1),
            "p99": round_to(self.p99, 1),
            "p999": round_to(self.p999, 1),
            "max": round_to(self.max, 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank_within_a_tenth_of_a_percent() {
        let samples: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let lat = Latency::of(&samples).unwrap();
        for (got, want) in [(lat.p50, 500.0), (lat.p99, 990.0), (lat.p999, 999.0)] {
            assert!((got - want).abs() <= want * 1e-3, "{got} for {want}");
        }
        assert_eq!(lat.max, 1000.0);
        // Below 2,048 ns every nanosecond has its own bucket: exact.
        let one = Latency::of(&[Duration::from_nanos(1500)]).unwrap();
        assert_eq!((one.p50, one.p999, one.max), (1.5, 1.5, 1.5));
    }

    #[test]
    fn memory_does_not_grow_with_the_count() {
        let mut recorder = LatencyRecorder::new();
        for i in 0..10_000u64 {
            recorder.record(Duration::from_nanos(20_000 + i % 5_000));
        }
        let size = recorder.histogram.distinct_values();
        for i in 0..1_000_000u64 {
            recorder.record(Duration::from_nanos(20_000 + i % 5_000));
        }
        assert_eq!(recorder.histogram.distinct_values(), size);
        assert_eq!(recorder.len(), 1_010_000);
    }

    #[test]
    fn a_huge_sample_is_kept_as_the_exact_maximum() {
        let mut recorder = LatencyRecorder::new();
        recorder.record(Duration::from_micros(50));
        recorder.record(Duration::from_secs(3_600));
        let lat = recorder.latency().unwrap();
        assert!((lat.p50 - 50.0).abs() <= 0.05, "{lat:?}");
        assert_eq!(lat.max, 3.6e9);
        // Past u64 nanoseconds: clamped in the histogram, still the maximum.
        recorder.record(Duration::MAX);
        assert_eq!(recorder.len(), 3);
        assert_eq!(
            recorder.latency().unwrap().max,
            Duration::MAX.as_nanos() as f64 / 1e3
        );
    }
}
