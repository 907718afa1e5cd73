//! Logs: one line per event on stderr, filtered by `LTP_LOG`, with control characters escaped.

use std::io::Write;

/// Logs go to stderr, filtered by `LTP_LOG` (e.g. `LTP_LOG=info`), `warn` by default.
///
/// A log line can quote a peer (a disconnect reason, a certificate's names, an address
/// string), and tracing's own sanitizing covers only some fields and some characters: so
/// every line is escaped as a whole on its way out ([`EscapedLine`]). Without colours: they
/// are escape sequences too, which the escaping could not tell from a peer's.
pub(crate) fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LTP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(EscapedLine::default)
        .init();
}

/// The writer of one log event: gathers what the formatter writes and, when dropped, writes
/// it to stderr as one line with every control character escaped
/// ([`ltprotocol::escape_controls`]) but the line's own final newline.
///
/// The formatter makes a writer per event, so a newline in the middle can only be a field's:
/// escaped, it cannot start a line that looks like another event.
#[derive(Debug, Default)]
struct EscapedLine {
    text: Vec<u8>,
}

impl Write for EscapedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EscapedLine {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.text);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        // A log line that cannot be written has nowhere else to go.
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            ltprotocol::escape_controls(line)
        );
    }
}
