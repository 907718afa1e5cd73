//! Input lines with a length limit: `ltp connect` reads its stdin through [`LineReader`], so a
//! line without an end costs at most the limit in memory, and the lines after it still count.
//!
//! A line longer than the limit is not kept: its first bytes are dropped as soon as it passes
//! the limit, the rest is skipped up to the next newline, and the reader hands back
//! [`LineError::TooLong`] for it, numbered as any other line, then goes on with the next.
//! The limit [`line_limit`] gives is large enough for any frame `ltp` accepts.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The smallest line limit [`line_limit`] gives: 1 MiB.
pub const MIN_LINE_LIMIT: usize = 1024 * 1024;

/// Room [`line_limit`] leaves beside a body's hex digits for the JSON around them (`type`,
/// `msg`, header fields): 64 KiB.
pub const LINE_SLACK: usize = 64 * 1024;

/// The line limit for frames of at most `max_frame` bytes: room for a body of that size in
/// hex (two digits a byte) plus [`LINE_SLACK`], and never below [`MIN_LINE_LIMIT`].
///
/// `ltp connect` passes `--max-frame`, or without it the library's default inbound maximum
/// (what the length field can describe, at most 8 MiB): 1 MiB for both presets, about 16 MiB
/// for a layout with a 32-bit length. A larger `--max-frame` raises it along.
///
/// ```
/// use ltp::lines::{MIN_LINE_LIMIT, line_limit};
///
/// assert_eq!(line_limit(65_535), MIN_LINE_LIMIT);
/// assert_eq!(line_limit(8 * 1024 * 1024), 16 * 1024 * 1024 + 64 * 1024);
/// assert_eq!(line_limit(usize::MAX), usize::MAX);
/// ```
pub const fn line_limit(max_frame: usize) -> usize {
    let limit = max_frame.saturating_mul(2).saturating_add(LINE_SLACK);
    if limit < MIN_LINE_LIMIT {
        MIN_LINE_LIMIT
    } else {
        limit
    }
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line had more bytes than the limit (its newline not counted, a `\r` before it
    /// counted).
    #[error("longer than the {limit}-byte line limit")]
    TooLong {
        /// The limit in force.
        limit: usize,
    },
    /// The line is not UTF-8.
    #[error("not UTF-8 (invalid byte at {valid_up_to})")]
    NotUtf8 {
        /// How many bytes of the line are valid UTF-8 before the first invalid one.
        valid_up_to: usize,
    },
}

/// One line from [`LineReader::next_line`]: its number and its text, or why it was skipped.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line's number, counting from 1; a skipped line counts too.
    pub number: u64,
    /// The text without its newline (nor a `\r` before it).
    pub text: Result<&'a str, LineError>,
}

/// Reads lines of at most `limit` bytes from a buffered reader; see the
/// [module documentation](self).
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    limit: usize,
    line: Vec<u8>,
    number: u64,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Lines of at most `limit` bytes from `reader`.
    pub const fn new(reader: R, limit: usize) -> Self {
        Self {
            reader,
            limit,
            line: Vec::new(),
            number: 0,
        }
    }

    /// The next line, or `None` at the end of the input. The last line may lack its newline.
    ///
    /// # Errors
    ///
    /// The reader's own errors. A line that is too long or not UTF-8 is not an error of the
    /// reader: it comes back as a [`Line`] whose `text` says why, and reading goes on.
    ///
    /// ```
    /// use ltp::lines::{Line, LineError, LineReader};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut lines = LineReader::new(&b"short\nmuch too long\nok\r\n"[..], 5);
    /// assert_eq!(lines.next_line().await?, Some(Line { number: 1, text: Ok("short") }));
    /// let too_long = Err(LineError::TooLong { limit: 5 });
    /// assert_eq!(lines.next_line().await?, Some(Line { number: 2, text: too_long }));
    /// assert_eq!(lines.next_line().await?, Some(Line { number: 3, text: Ok("ok") }));
    /// assert_eq!(lines.next_line().await?, None);
    /// # std::io::Result::Ok(())
    /// # }).unwrap();
    /// ```
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        self.line.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = match newline {
                Some(at) => chunk.get(..at).unwrap_or(chunk),
                None => chunk,
            };
            if !too_long {
                if self.line.len() + part.len() > self.limit {
                    // Past the limit: what was kept goes, and the rest of the line is
                    // skipped as it arrives, so memory stays at the limit.
                    too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(part);
                }
            }
            let used = part.len() + usize::from(newline.is_some());
            self.reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        let text = if too_long {
            Err(LineError::TooLong { limit: self.limit })
        } else {
            let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
            std::str::from_utf8(line).map_err(|err| LineError::NotUtf8 {
                valid_up_to: err.valid_up_to(),
            })
        };
        Ok(Some(Line {
            number: self.number,
            text,
        }))
    }
}
