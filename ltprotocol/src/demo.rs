//! The ancestor's example protocol (`tests/test_ltprotocol.py` of ltprotocol 0.2.1), used by
//! the examples, the `ltp demo` command and the tests: `NumMsg` (type 1, a `u32`) and
//! `StrMsg` (type 2, a string filling the body), in the default layout.
//!
//! ```
//! use ltprotocol::demo::{Demo, NumMsg, StrMsg};
//! use ltprotocol::{FrameCodec, HeaderLayout};
//!
//! let codec = FrameCodec::new(HeaderLayout::ltprotocol());
//! let mut wire = bytes::BytesMut::new();
//! codec.encode_message(&NumMsg { num: 200 }, &mut wire)?;
//! codec.encode_message(&StrMsg { str: "hello world!".into() }, &mut wire)?;
//! assert_eq!(&wire[..7], b"\x00\x07\x01\x00\x00\x00\xc8");
//! assert_eq!(&wire[7..], b"\x00\x0f\x02hello world!");
//! assert_eq!(Demo::from(NumMsg { num: 200 }).to_string(), "200");
//! let str_msg = StrMsg { str: "\x1b]0;pwned\x07".into() };
//! assert_eq!(Demo::from(str_msg).to_string(), r"\x1b]0;pwned\x07");
//! # Ok::<(), ltprotocol::EncodeError>(())
//! ```

use std::fmt;

use crate::{Message, Protocol, Unknown};

/// The port the ancestor's demo listens on.
pub const DEMO_PORT: u16 = 9999;

/// Type 1: one big-endian `u32`.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 1)]
pub struct NumMsg {
    /// The number.
    pub num: u32,
}

/// Type 2: a UTF-8 string filling the rest of the body.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 2)]
pub struct StrMsg {
    /// The text (named as in the ancestor).
    pub str: String,
}

/// The demo protocol: `LTProtocol([NumMsg, StrMsg], 'H', 'B')`.
#[derive(Debug, Clone, PartialEq, Eq, Protocol)]
pub enum Demo {
    /// A [`NumMsg`].
    Num(NumMsg),
    /// A [`StrMsg`].
    Str(StrMsg),
    /// Any other type, kept whole.
    #[ltp(unknown)]
    Other(Unknown),
}

impl fmt::Display for NumMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.num, f)
    }
}

/// The text, with its control characters escaped ([`escape_controls`](crate::escape_controls)):
/// it is the peer's, and printing it must not drive the terminal.
impl fmt::Display for StrMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::escape_controls(&self.str))
    }
}

/// As the ancestor's `__str__`: the number, the text, or the unknown type and body size.
impl fmt::Display for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(m) => fmt::Display::fmt(m, f),
            Self::Str(m) => fmt::Display::fmt(m, f),
            Self::Other(u) => write!(f, "type {} ({} bytes)", u.message_type, u.body.len()),
        }
    }
}
