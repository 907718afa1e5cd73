//! What `ltp connect` and `ltp serve` read on stdin: JSON lines ([`ltp::json::parse_input`]).
//!
//! A bad line (invalid, not UTF-8, over the line limit, or one the command cannot send) is
//! reported on stderr with its number and skipped, or with `--strict` ends the input. The
//! events of a recording other than `message` are passed over, neither sent nor counted as
//! bad. With `--pace original`, each message that has a `ts` waits until its recorded gap to
//! the first such message has passed.

use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::io::{BufReader, Stdin};
use tokio::time::Instant;

use ltp::json::{Input, Outgoing};
use ltp::lines::{Line, LineReader, line_limit};
use ltprotocol::FrameCodec;

use super::Setup;

/// Options of `connect` and `serve` for the lines they read and the events they print.
#[derive(Debug, Clone, Args)]
pub(crate) struct LineOptions {
    /// Stop at the first bad stdin line, with exit code 2, instead of skipping it.
    #[arg(long)]
    pub(crate) strict: bool,
    /// When each stdin message is sent: `asap`, as soon as it is read; `original`, keeping
    /// the gaps between the `ts` of the lines (a recording made with `--timestamps`).
    #[arg(long, value_enum, default_value_t = Pace::Asap)]
    pub(crate) pace: Pace,
    /// Give every event a `ts` key: when it was printed, in Unix seconds with microseconds.
    #[arg(long)]
    pub(crate) timestamps: bool,
}

/// When each stdin message is sent: `--pace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Pace {
    /// As soon as it is read.
    Asap,
    /// At its recorded `ts`, relative to the first line that has one; lines without `ts`
    /// at once.
    Original,
}

/// Why the input ended early: exit code 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    /// `--strict`, and a line that cannot be sent.
    #[error("stdin line {number}: {reason}")]
    BadLine {
        /// The line's number, from 1.
        number: u64,
        /// Why it cannot be sent, one line.
        reason: String,
    },
    /// Reading stdin failed (stdin is a directory, say).
    #[error("cannot read stdin")]
    Read(#[source] std::io::Error),
}

/// A message read from stdin, with the number of its line.
#[derive(Debug)]
pub(crate) struct StdinMessage {
    /// The line's number, from 1, for what is said about it on stderr.
    pub(crate) number: u64,
    /// What to send, and where.
    pub(crate) message: Outgoing,
}

/// The messages of stdin, one at a time, at their pace.
#[derive(Debug)]
pub(crate) struct StdinMessages {
    lines: LineReader<BufReader<Stdin>>,
    setup: Setup,
    strict: bool,
    pace: Pace,
    /// With `--pace original`: the first `ts` read, and when its message was handed out.
    origin: Option<(f64, Instant)>,
    skipped: u64,
}

impl StdinMessages {
    /// Reads stdin with the layout and schema of `setup`, and a line limit with room for the
    /// largest frame it accepts.
    pub(crate) fn new(setup: &Setup, options: &LineOptions) -> Self {
        // A line may carry the largest frame accepted, in hex; no line costs more.
        let max_frame = setup
            .max_frame
            .unwrap_or_else(|| FrameCodec::new(setup.layout.clone()).inbound_limit());
        Self {
            lines: LineReader::new(BufReader::new(tokio::io::stdin()), line_limit(max_frame)),
            setup: setup.clone(),
            strict: options.strict,
            pace: options.pace,
            origin: None,
            skipped: 0,
        }
    }

    /// The next message, once its pace allows; `None` at the end of stdin. Bad lines on the
    /// way are [rejected](Self::reject).
    ///
    /// # Errors
    ///
    /// [`InputError::BadLine`] under `--strict`; [`InputError::Read`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a line being read or paced when the future is dropped is lost, so
    /// it is dropped only when no more input is wanted.
    pub(crate) async fn next(&mut self) -> Result<Option<StdinMessage>, InputError> {
        loop {
            let Some(Line { number, text }) =
                self.lines.next_line().await.map_err(InputError::Read)?
            else {
                return Ok(None);
            };
            let parsed = match text {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => ltp::json::parse_input(text, &self.setup.layout, &self.setup.schema),
                Err(reason) => Err(reason.to_string()),
            };
            match parsed {
                Ok(Input::Message(message)) => {
                    self.wait_for_pace(message.ts).await;
                    return Ok(Some(StdinMessage { number, message }));
                }
                // Another event of a recording (`connected`, `summary`, ...): nothing to send.
                Ok(_) => {}
                Err(reason) => self.reject(number, reason)?,
            }
        }
    }

    /// A line that cannot be sent (for a reason found after parsing it, too: a client that
    /// is not connected): one line on stderr, and skipped.
    ///
    /// # Errors
    ///
    /// [`InputError::BadLine`] under `--strict`, instead of skipping it.
    pub(crate) fn reject(&mut self, number: u64, reason: String) -> Result<(), InputError> {
        if self.strict {
            return Err(InputError::BadLine { number, reason });
        }
        eprintln!("ltp: stdin line {number}: {reason}; skipped");
        self.skipped += 1;
        Ok(())
    }

    /// How many lines were skipped so far.
    pub(crate) const fn skipped(&self) -> u64 {
        self.skipped
    }

    /// `1 stdin line was skipped`, `3 stdin lines were skipped`; `None` if none was.
    pub(crate) fn skipped_text(&self) -> Option<String> {
        match self.skipped {
            0 => None,
            1 => Some("1 stdin line was skipped".to_owned()),
            n => Some(format!("{n} stdin lines were skipped")),
        }
    }

    async fn wait_for_pace(&mut self, ts: Option<f64>) {
        let (Pace::Original, Some(ts)) = (self.pace, ts) else {
            return;
        };
        let Some((first, start)) = self.origin else {
            self.origin = Some((ts, Instant::now()));
            return;
        };
        // Against the first line's time rather than the last's, so that waits do not add
        // up a drift. A gap that is negative (lines out of order) or too long for the clock
        // (no real recording) does not wait.
        let due = Duration::try_from_secs_f64(ts - first)
            .ok()
            .and_then(|gap| start.checked_add(gap));
        if let Some(due) = due {
            tokio::time::sleep_until(due).await;
        }
    }
}
