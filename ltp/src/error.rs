//! [`ConfigError`]: why a layout or schema (a preset name or a TOML file) could not be loaded.
//!
//! Every variant prints as one line naming the file and, where there is one, the line:
//! `layout.toml:7: field `type` (bytes 1..2) overlaps field `version` (bytes 0..2)`.

use std::ops::Range;

/// Why a layout or schema could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A problem at a place in a file: "FILE:LINE: PROBLEM" (line from 1; toml's span → line).
    #[error("{file}:{line}: {problem}")]
    File {
        /// The file, as it was named on the command line.
        file: String,
        /// The line the problem is on, counting from 1.
        line: usize,
        /// What is wrong there.
        problem: String,
    },
    /// A file that cannot be read: "FILE: cannot read: REASON".
    #[error("{file}: cannot read: {reason}")]
    Unreadable {
        /// The file, as it was named on the command line.
        file: String,
        /// The operating system's reason.
        reason: String,
    },
    /// Anything else (unknown preset name etc.).
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// A [`File`](Self::File) error at byte offset `at` of `text`, the contents of `file`.
    ///
    /// ```
    /// use ltp::ConfigError;
    /// let err = ConfigError::at("x.toml", "a = 1\nb = ?\n", 10, "bad value");
    /// assert_eq!(err.to_string(), "x.toml:2: bad value");
    /// ```
    pub fn at(file: &str, text: &str, at: usize, problem: impl Into<String>) -> Self {
        Self::File {
            file: file.to_owned(),
            line: line_of(text, at),
            problem: one_line(&problem.into()),
        }
    }

    /// A [`File`](Self::File) error at the start of `span`, or at line 1 without one.
    pub fn at_span(
        file: &str,
        text: &str,
        span: Option<Range<usize>>,
        problem: impl Into<String>,
    ) -> Self {
        Self::at(file, text, span.map_or(0, |s| s.start), problem)
    }

    /// The error for a TOML file that does not parse or does not match the expected shape:
    /// toml's message (without its source excerpt) at the line its span points to.
    pub fn from_toml(file: &str, text: &str, err: &toml::de::Error) -> Self {
        Self::at_span(file, text, err.span(), err.message().trim())
    }
}

/// The line (from 1) holding byte offset `at` of `text`; offsets past the end give the last line.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    let before = text.as_bytes().get(..at).unwrap_or(text.as_bytes());
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Joins a multi-line message into one line, so every error stays one line of output.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one_and_clamp_past_the_end() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 1), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
        assert_eq!(line_of(text, 99), 3);
    }

    #[test]
    fn problems_are_joined_into_one_line() {
        let err = ConfigError::at("f", "", 0, "first\n  second\n\n");
        assert_eq!(err.to_string(), "f:1: first; second");
    }
}
