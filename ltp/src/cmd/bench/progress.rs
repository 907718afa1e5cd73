//! The progress bar: on stderr, and only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Counts frames done (published by the workers in steps) and shows them, or the time spent
/// for a `--duration` run.
#[derive(Debug)]
pub(super) struct Progress {
    done: Arc<AtomicU64>,
    shown: Option<(ProgressBar, JoinHandle<()>)>,
}

impl Progress {
    pub(super) fn start(label: &str, total: u64, duration: Option<Duration>) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        if !std::io::stderr().is_terminal() {
            return Self { done, shown: None };
        }
        let (length, template) = match duration {
            Some(d) => (
                d.as_millis() as u64,
                "{prefix} [{bar:40}] {elapsed_precise} {msg}",
            ),
            None => (
                total,
                "{prefix} [{bar:40}] {human_pos}/{human_len} {per_sec} {msg}",
            ),
        };
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        let (ticking, counter) = (bar.clone(), done.clone());
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let position = match duration {
                    Some(_) => started.elapsed().as_millis() as u64,
                    None => counter.load(Ordering::Relaxed),
                };
                ticking.set_position(position.min(length));
            }
        });
        Self {
            done,
            shown: Some((bar, ticker)),
        }
    }

    /// The counter workers add to.
    pub(super) fn counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }

    pub(super) fn finish(self) {
        if let Some((bar, ticker)) = self.shown {
            ticker.abort();
            bar.finish_and_clear();
        }
    }
}
