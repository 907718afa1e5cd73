//! Framing, typed messages, servers and reconnecting clients for protocols whose every
//! message starts with a header carrying its **length** and **type**, over TCP, Unix-domain
//! sockets or any other byte stream.
//!
//! The default wire format is byte-compatible with the Python package `ltprotocol` 0.2.1:
//! big-endian, a `u16` length counting the whole message (header included), then a `u8` type.
//! Any other fixed header works too: other widths and signs, little-endian, lengths that
//! count the body only, and extra fields such as OpenFlow's `version` and `xid`.
//!
//! # Layout
//!
//! Bottom to top, a bullet per module. First the sans-IO core (bytes in, frames and messages
//! out; no sockets, clock or tasks):
//!
//! * [`layout`]: [`HeaderLayout`], where the header's fields sit; presets
//!   [`HeaderLayout::ltprotocol`] and [`HeaderLayout::openflow`].
//! * [`codec`]: [`FrameCodec`], a tokio-util `Decoder`/`Encoder` between bytes and frames, with
//!   limits checked from the header alone and typed errors ([`FrameError`], [`EncodeError`]).
//! * [`frame`]: [`Frame`], one message as it crossed the wire (its [`MessageType`],
//!   [`HeaderFields`] and body), and [`FrameRef`], the same seen in place.
//! * [`message`]: [`Message`], a type number and a body (usually derived), its fields'
//!   [`Wire`] format, and [`Body`], the borrowed body messages decode from in place.
//! * [`protocol`]: [`Protocol`], an enum of messages decoded by type number with an
//!   [`Unknown`] arm, and [`ProtocolCodec`], its typed codec for `Framed`.
//!
//! Then the runtime, over any byte stream:
//!
//! * [`transport`]: the streams connections run over ([`Stream`]: TCP, Unix, in-memory, any
//!   `AsyncRead + AsyncWrite`), where they come from ([`Listener`], [`transport::Connector`])
//!   and who is at the other end ([`Addr`]).
//! * [`handshake`]: the [`Handshake`] hook run on every connection and reconnection before
//!   anything queued is sent, bounded by its timeout and [`HandshakeBacklog`].
//! * [`request`]: requests paired with their replies on a header field ([`Correlation`],
//!   OpenFlow's `xid`), and multi-part replies ([`ReplyStream`]).
//! * [`connection`]: one live connection, from its handshake to its end: its
//!   [`ConnectionHandle`], why it ended ([`DisconnectReason`]), and the settings both sides
//!   share ([`Builder`], [`Timeouts`], [`Keepalive`]).
//! * [`handler`]: how the application takes what arrives: a [`Handler`] (async callbacks, the
//!   ordinary path) or a stream of [`Event`]s.
//! * [`server`]: [`Server`], bound or given a listener by its [`ServerBuilder`]: accepting,
//!   connection limits, broadcast, graceful shutdown.
//! * [`client`]: [`ReconnectingClient`], made by its [`ClientBuilder`]: connects in the
//!   background, reconnects with [`Backoff`], and queues what is sent meanwhile.
//! * `tls` (feature `tls`): TLS and mutual TLS for the same servers and clients, through
//!   tokio-rustls.
//!
//! Then what is built on the public API alone:
//!
//! * `openflow` (feature `openflow`): OpenFlow 1.3: its layout, common messages, HELLO +
//!   FEATURES handshake, echo auto-reply and keepalive.
//! * `demo` (feature `demo`): the ancestor's example protocol, `NumMsg` and `StrMsg`, as the
//!   examples, `ltp demo` and the tests use it.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `derive` | on | `#[derive(Message, Wire, Protocol)]` (the `ltprotocol-derive` crate) |
//! | `tls` | off | the `tls` module: TLS and mutual TLS (tokio-rustls; rustls's `ring` provider unless the application installs another) |
//! | `openflow` | off | the `openflow` module (and `derive`) |
//! | `demo` | off | the `demo` module (and `derive`) |
//!
//! Without `tls` nothing of rustls or ring is built. The `fuzzing` feature exposes the entry
//! points the fuzz targets share with the corpus tests: hidden from these docs, no stability
//! promise.
//!
//! # Quick start: the ancestor's example protocol (feature `demo`)
//!
//! ```
//! use bytes::BytesMut;
//! use ltprotocol::{Body, FrameCodec, HeaderLayout, Message, Protocol, Unknown};
//! use tokio_util::codec::Decoder;
//!
//! #[derive(Debug, PartialEq, Message)]
//! #[ltp(message_type = 1)]
//! pub struct NumMsg { pub num: u32 }
//!
//! #[derive(Debug, PartialEq, Message)]
//! #[ltp(message_type = 2)]
//! pub struct StrMsg { pub text: String }
//!
//! #[derive(Debug, PartialEq, Protocol)]
//! pub enum Demo { Num(NumMsg), Str(StrMsg), #[ltp(unknown)] Other(Unknown) }
//!
//! let layout = HeaderLayout::ltprotocol();
//! let mut codec = FrameCodec::new(layout.clone());
//! let mut wire = BytesMut::new();
//! codec.encode_message(&NumMsg { num: 200 }, &mut wire)?;
//! codec.encode_message(&StrMsg { text: "hello world!".into() }, &mut wire)?;
//! assert_eq!(&wire[..7], b"\x00\x07\x01\x00\x00\x00\xc8");
//! assert_eq!(&wire[7..10], b"\x00\x0f\x02");
//!
//! let first = codec.decode(&mut wire)?.unwrap();
//! let msg = Demo::decode(first.message_type, Body::from(&first.body), layout.byte_order())?;
//! assert_eq!(msg, Demo::Num(NumMsg { num: 200 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

use std::borrow::Cow;
use std::fmt::Write as _;

// Lets the derives' `::ltprotocol::…` paths resolve inside this crate too.
#[allow(unused_extern_crates)]
extern crate self as ltprotocol;

#[cfg(feature = "pcap")]
pub mod capture;
pub mod client;
pub mod codec;
pub mod connection;
#[cfg(feature = "demo")]
pub mod demo;
pub mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod handshake;
pub mod layout;
pub mod message;
#[cfg(feature = "openflow")]
pub mod openflow;
pub mod protocol;
pub mod request;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;

pub use client::{Backoff, ClientBuilder, ClientSide, CloseReport, ReconnectingClient, Target};
pub use codec::{EncodeError, EncodedFrame, FrameCodec, FrameError};
pub use connection::{
    AutoReply, Builder, ConnectionHandle, ConnectionId, DisconnectReason, Keepalive, SendError,
    TimeoutKind, Timeouts,
};
pub use frame::{Frame, FrameRef, HeaderFields, MessageType};
pub use handler::{Event, EventStream, Handler, Inspected};
pub use handshake::{Handshake, HandshakeBacklog, HandshakeContext, HandshakeError};
pub use layout::{
    ByteOrder, FieldId, FieldSpec, HeaderLayout, HeaderLayoutBuilder, Int, LayoutError,
    LengthCounts, MAX_EXTRA_FIELDS, MAX_HEADER_LEN,
};
pub use message::{
    Body, BodyError, BodyErrorKind, BodyReader, BodyWriter, DecodeError, MAX_PIN_RATIO, Message,
    Wire,
};
pub use protocol::{Encode, Protocol, ProtocolCodec, ProtocolCodecError, Unknown};
pub use request::{Correlation, ReplyStream, RequestError};
pub use server::{Server, ServerBuilder, ServerSide, ShutdownReport};
pub use transport::{Addr, Listener, Stream};

/// Formats an error with its chain of causes, `outer: inner: innermost`, as logs and the CLI
/// show them (each error's own `Display` speaks for one level only), on one line with its
/// control characters escaped by [`escape_controls`]: an error's text can quote a peer's
/// bytes (an OpenFlow error's data, a certificate's names).
///
/// ```
/// use ltprotocol::{error_chain, FrameCodec, HeaderLayout, HandshakeError};
/// use tokio_util::codec::Decoder;
/// let mut wire = bytes::BytesMut::from(&b"\x00\x00\x01"[..]);
/// let err = FrameCodec::new(HeaderLayout::ltprotocol()).decode(&mut wire).unwrap_err();
/// assert_eq!(error_chain(&err), "length 0 is smaller than the 3-byte header");
/// let err = HandshakeError::Rejected("busy\x1b[2J\n".into());
/// assert_eq!(error_chain(&err), r"busy\x1b[2J\n");
/// ```
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    match escape_controls(&out) {
        Cow::Borrowed(_) => out,
        Cow::Owned(escaped) => escaped,
    }
}

/// Shows control characters as visible escapes, so that text a peer chose (a string field,
/// an OpenFlow error's data, a certificate's names) cannot move the cursor, retitle the
/// window or clear the screen of the terminal it is printed on, nor split a log line.
///
/// Control characters are C0 (U+0000 to U+001F), DEL (U+007F) and C1 (U+0080 to U+009F;
/// some terminals read U+009B as the start of a control sequence, as they do `ESC [`). Tab,
/// line feed and carriage return become `\t`, `\n` and `\r`, the other C0 characters and DEL
/// `\x1b` style, C1 characters `\u{9b}` style. Everything else, printable Unicode and the
/// backslash included, is kept as it is, so text without control characters comes back
/// unchanged (borrowed), and escaping twice changes nothing more: the escapes are printable.
///
/// ```
/// use ltprotocol::escape_controls;
/// assert_eq!(escape_controls("\x1b[2J\u{9b}31m\x7f\x00"), r"\x1b[2J\u{9b}31m\x7f\x00");
/// assert_eq!(escape_controls("one\ttwo\r\nthree"), r"one\ttwo\r\nthree");
/// assert_eq!(escape_controls("héllo wörld ✓ \\"), "héllo wörld ✓ \\");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.contains(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            // `char::is_control` is exactly C0, DEL and C1 (general category Cc).
            // Writing to a String cannot fail.
            c if c.is_control() && u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `#[derive(Message)]`, `#[derive(Wire)]` and `#[derive(Protocol)]`; see the traits of the
/// same names.
#[cfg(feature = "derive")]
pub use ltprotocol_derive::{Message, Protocol, Wire};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_controls_leaves_no_control_character_and_keeps_the_rest() {
        for c in (0..=0x10_ffff).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let escaped = escape_controls(&text);
            assert!(
                !escaped.contains(char::is_control),
                "{c:?} gives {escaped:?}"
            );
            if !c.is_control() {
                assert_eq!(escaped, text);
            }
            assert_eq!(escape_controls(&escaped), escaped, "{c:?}: escaping twice");
        }
        assert_eq!(escape_controls("\u{80}\u{9f}\x1f"), r"\u{80}\u{9f}\x1f");
    }
}
