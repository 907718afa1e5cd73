//! Durations on the command line: `500ms`, `2s`, `1.5m`, `1h`, or a plain number of seconds.
//!
//! Every option of `ltp` that takes a duration takes it in this form, so that `--timeout 2`,
//! `--timeout 2s` and `--timeout 2000ms` mean the same. A number alone is seconds, as it was
//! before units were accepted; fractions are allowed with any unit (`0.5s`, `1.5m`).
//!
//! ```
//! use std::time::Duration;
//! use ltp::duration::parse;
//!
//! assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
//! assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
//! assert_eq!(parse("1.5m"), Ok(Duration::from_secs(90)));
//! assert!(parse("-1s").is_err());
//! assert!(parse("5 parsecs").is_err());
//! ```

use std::time::Duration;

/// The units accepted after the number, and how many seconds each is.
const UNITS: [(&str, f64); 5] = [
    ("us", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Why a duration was refused: the text given, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {problem} (examples: 500ms, 2s, 1.5m, 1h, or 30 for seconds)")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Reads a duration: a non-negative number, then optionally one of `us`, `ms`, `s`, `m`, `h`
/// (seconds when there is none). Usable as a clap `value_parser`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let refuse = |problem| DurationError {
        text: text.to_owned(),
        problem,
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale = if unit.is_empty() {
        1.0
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| refuse("unknown unit"))?
    };
    // `f64::from_str` also takes `inf`, `nan` and exponents; only plain decimals are meant.
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(refuse("expected a non-negative number"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| refuse("expected a non-negative number"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| refuse("too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_plain_seconds() {
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn refusals_name_the_problem() {
        for (text, problem) in [
            ("", "expected a non-negative number"),
            ("s", "expected a non-negative number"),
            ("-1", "expected a non-negative number"),
            ("1e3", "unknown unit"),
            ("nan", "unknown unit"),
            ("inf", "unknown unit"),
            ("1.2.3s", "expected a non-negative number"),
            ("5min", "unknown unit"),
            ("1e300h", "unknown unit"),
            ("99999999999999999999999h", "too long"),
        ] {
            assert_eq!(
                parse(text).map_err(|err| err.problem),
                Err(problem),
                "{text}"
            );
        }
        let message = parse("5min").unwrap_err().to_string();
        assert!(
            message.contains("`5min`") && message.contains("500ms"),
            "{message}"
        );
    }
}
