//! Where events go: one JSON object (or one readable line) per event on stdout.

use std::io::{IsTerminal, Write};

use serde_json::Value;

use crate::Format;

/// Prints events in the chosen format, one whole line at a time (safe from many tasks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    format: Format,
}

impl Output {
    /// JSON unless asked otherwise, or text when stdout is a terminal and nothing was asked.
    pub(crate) fn new(format: Option<Format>) -> Self {
        let format = format.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Text
        } else {
            Format::Json
        });
        Self { format }
    }

    pub(crate) fn emit(&self, event: &Value) {
        let line = match self.format {
            Format::Json => ltp::json::json_line(event),
            Format::Text => ltp::json::text_line(event),
        };
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) is no reason to stop serving.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
