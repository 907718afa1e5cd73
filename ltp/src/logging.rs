//! Logs: one line per event on stderr, filtered by `LTP_LOG`, with control characters escaped
//! and the level coloured on a terminal.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// What is logged when `LTP_LOG` is unset or empty: warnings, but not those of the library's
/// reconnecting client. Every `ltp` command that connects reports a failed attempt itself
/// (`connect` as a `connect_failed` event on stdout, `demo` as a line, `bench` as its error),
/// so the client's "connect failed" and "giving up" would say it a second time;
/// `LTP_LOG=debug` (or `LTP_LOG=ltprotocol::client=info`) shows them.
pub(crate) const DEFAULT_FILTER: &str = "warn,ltprotocol::client=error";

/// Logs go to stderr, filtered by `LTP_LOG` (an `EnvFilter` spec such as `info` or
/// `warn,ltprotocol=debug`), [`DEFAULT_FILTER`] when it is unset or empty.
///
/// A log line can quote a peer (a disconnect reason, a certificate's names, an address
/// string), and tracing's own sanitizing covers only some fields and some characters: so
/// every line is escaped as a whole ([`EscapedLine`]) but the timestamp and the level, which
/// `ltp` writes itself. Those two are coloured when stderr is a terminal, `NO_COLOR` is unset
/// or empty (<https://no-color.org>) and `TERM` is not `dumb`: so a redirected stderr never
/// holds an escape sequence, and one that a peer sent is shown escaped, never obeyed.
pub(crate) fn init() {
    let colour = colour_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        // The lines' own colours are EscapedLine's; tracing's would be escaped with the rest
        // (span fields are formatted once, when the span opens, so they must never have any).
        .with_ansi(false)
        .event_format(EscapedLine::new(colour))
        .with_writer(std::io::stderr)
        .init();
}

/// The filter `LTP_LOG` asks for; a spec that does not parse is reported once and replaced
/// by [`DEFAULT_FILTER`].
fn filter() -> EnvFilter {
    let spec = std::env::var("LTP_LOG").unwrap_or_default();
    if spec.trim().is_empty() {
        return EnvFilter::new(DEFAULT_FILTER);
    }
    EnvFilter::builder().parse(&spec).unwrap_or_else(|err| {
        eprintln!(
            "ltp: LTP_LOG={}: {err}; logging with the default filter ({DEFAULT_FILTER})",
            ltprotocol::escape_controls(&spec)
        );
        EnvFilter::new(DEFAULT_FILTER)
    })
}

/// Whether log levels are coloured: only on a terminal, never with `NO_COLOR` set to
/// anything but the empty string, never with `TERM=dumb`.
fn colour_wanted(
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
}

/// The format of one log line: `TIMESTAMP LEVEL spans: target: message fields`.
///
/// Everything after the level comes from tracing's own formatter, without colours, and is
/// escaped ([`ltprotocol::escape_controls`]) before it is written: a newline in a field
/// cannot start a line that looks like another event, and an escape sequence in a field is
/// shown, not obeyed. The timestamp and level are `ltp`'s own text, so only they are
/// coloured (when `colour`, see [`init`]).
#[derive(Debug)]
struct EscapedLine {
    rest: Format<Full, ()>,
    colour: bool,
}

impl EscapedLine {
    fn new(colour: bool) -> Self {
        Self {
            rest: Format::default()
                .without_time()
                .with_level(false)
                .with_ansi(false),
            colour,
        }
    }
}

impl<S, N> FormatEvent<S, N> for EscapedLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let colour = self.colour;
        let mut rest = String::new();
        self.rest.format_event(ctx, Writer::new(&mut rest), event)?;
        let rest = rest.strip_suffix('\n').unwrap_or(&rest);

        if colour {
            write!(writer, "{DIM}")?;
        }
        SystemTime.format_time(&mut writer)?;
        let level = event.metadata().level();
        if colour {
            write!(writer, "{RESET} {}{level:>5}{RESET} ", level_colour(*level))?;
        } else {
            write!(writer, " {level:>5} ")?;
        }
        writeln!(writer, "{}", ltprotocol::escape_controls(rest))
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";

/// The colours tracing gives each level.
fn level_colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_a_dumb_term() {
        let some = |s: &'static str| Some(OsStr::new(s));
        assert!(colour_wanted(true, None, some("xterm-256color")));
        assert!(colour_wanted(true, some(""), None));
        assert!(!colour_wanted(false, None, some("xterm")));
        assert!(!colour_wanted(true, some("1"), some("xterm")));
        assert!(!colour_wanted(true, None, some("dumb")));
    }
}
