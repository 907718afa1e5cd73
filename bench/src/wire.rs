//! The two header layouts the baselines speak, and (from [`ltp::bench_wire`], their one
//! home, shared with `ltp bench`) the bench protocol's message types and bodies.

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

pub use ltp::bench_wire::{
    DATA, ECHO, END, FANOUT, REPORT, fanout_body, parse_fanout, parse_report, pattern_body,
    report_body, stamp,
};

/// A header layout: a big-endian length counting the whole frame, then a `u8` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[length u16][type u8]`: the ancestor's default; bodies up to 65,532 bytes.
    Ltprotocol,
    /// `[length u32][type u8]`: for bodies past 64 KiB.
    U32,
}

/// The largest whole frame accepted with the `u32` layout: 64 MiB.
pub const U32_MAX_FRAME: usize = 64 * 1024 * 1024;

impl Layout {
    /// Width of the length field.
    #[inline]
    pub const fn length_width(self) -> usize {
        match self {
            Self::Ltprotocol => 2,
            Self::U32 => 4,
        }
    }

    /// Header size: the length field and the type byte.
    #[inline]
    pub const fn header_len(self) -> usize {
        self.length_width() + 1
    }

    /// The largest whole frame.
    #[inline]
    pub const fn max_frame(self) -> usize {
        match self {
            Self::Ltprotocol => 65_535,
            Self::U32 => U32_MAX_FRAME,
        }
    }

    /// The name `--layout` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ltprotocol => "ltprotocol",
            Self::U32 => "u32",
        }
    }

    /// Appends a header for a frame of type `message_type` with a body of `body_len` bytes.
    #[inline]
    pub fn put_header(self, dst: &mut impl BufMut, message_type: u8, body_len: usize) {
        let whole = body_len + self.header_len();
        match self {
            // Callers check `whole <= max_frame()` first (`check_body`).
            Self::Ltprotocol => dst.put_u16(whole as u16),
            Self::U32 => dst.put_u32(whole as u32),
        }
        dst.put_u8(message_type);
    }

    /// A whole frame.
    pub fn frame(self, message_type: u8, body: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.header_len() + body.len());
        self.put_header(&mut buf, message_type, body.len());
        buf.put_slice(body);
        buf.freeze()
    }

    /// Reads a header at the front of `buf`: `None` when incomplete, else the whole frame's
    /// length and its type.
    ///
    /// # Errors
    ///
    /// A length smaller than the header or larger than [`max_frame`](Self::max_frame).
    #[inline]
    pub fn parse_header(self, buf: &[u8]) -> Result<Option<(usize, u8)>, String> {
        let (len, message_type) = match (self, buf) {
            (Self::Ltprotocol, [a, b, t, ..]) => (usize::from(u16::from_be_bytes([*a, *b])), *t),
            (Self::U32, [a, b, c, d, t, ..]) => (u32::from_be_bytes([*a, *b, *c, *d]) as usize, *t),
            _ => return Ok(None),
        };
        self.check_frame_len(len)?;
        Ok(Some((len, message_type)))
    }

    /// Checks a declared whole-frame length.
    ///
    /// # Errors
    ///
    /// A length smaller than the header or larger than [`max_frame`](Self::max_frame).
    #[inline]
    pub fn check_frame_len(self, len: usize) -> Result<(), String> {
        if len < self.header_len() {
            return Err(format!(
                "length {len} is smaller than the {}-byte header",
                self.header_len()
            ));
        }
        if len > self.max_frame() {
            return Err(format!(
                "length {len} exceeds the maximum frame length {}",
                self.max_frame()
            ));
        }
        Ok(())
    }

    /// Checks that a body of `body_size` bytes can be framed.
    ///
    /// # Errors
    ///
    /// Names the largest body the layout can frame.
    pub fn check_body(self, body_size: usize) -> Result<(), String> {
        let largest = self.max_frame() - self.header_len();
        if body_size > largest {
            return Err(format!(
                "a {body_size}-byte body does not fit the {} layout (largest body: {largest} bytes)",
                self.name()
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ltprotocol" => Ok(Self::Ltprotocol),
            "u32" => Ok(Self::U32),
            other => Err(format!(
                "unknown layout `{other}` (expected ltprotocol or u32)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_count_the_whole_frame() {
        assert_eq!(
            &Layout::Ltprotocol.frame(DATA, b"ab")[..],
            b"\x00\x05\x01ab"
        );
        assert_eq!(&Layout::U32.frame(END, b"")[..], b"\x00\x00\x00\x05\x02");
        assert_eq!(
            Layout::Ltprotocol.parse_header(b"\x00\x05\x01ab"),
            Ok(Some((5, DATA)))
        );
        assert_eq!(Layout::Ltprotocol.parse_header(b"\x00\x05"), Ok(None));
        assert!(Layout::Ltprotocol.parse_header(b"\x00\x02\x01").is_err());
    }
}
