//! Framing, typed messages, servers and reconnecting clients for TCP protocols whose every
//! message starts with a header carrying its **length** and **type**.
//!
//! The default wire format is byte-compatible with the Python package `ltprotocol` 0.2.1:
//! big-endian, a `u16` length counting the whole message (header included), then a `u8` type.
//! Any other fixed header works too: other widths and signs, little-endian, lengths that
//! count the body only, and extra fields such as OpenFlow's `version` and `xid`.
//!
//! # Layout
//!
//! Bottom to top, each layer using only the one below:
//!
//! * [`layout`]: [`HeaderLayout`], where the header's fields sit; presets
//!   [`HeaderLayout::ltprotocol`] and [`HeaderLayout::openflow`].
//! * [`codec`]: [`FrameCodec`], a tokio-util `Decoder`/`Encoder` between bytes and [`Frame`]s,
//!   with limits checked from the header alone and typed errors.
//! * [`message`] and [`protocol`]: [`Message`] (a type number and a body, usually derived)
//!   and [`Protocol`] (an enum of messages decoded by type number, with an [`Unknown`] arm).
//! * `tls` (feature `tls`, on by default): TLS and mutual TLS for the same servers and
//!   clients, through tokio-rustls.
//!
//! # Quick start: the ancestor's example protocol
//!
//! ```
//! use bytes::BytesMut;
//! use ltprotocol::{FrameCodec, HeaderLayout, Message, Protocol, Unknown};
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
//! let msg = Demo::decode(first.message_type, first.body, layout.byte_order())?;
//! assert_eq!(msg, Demo::Num(NumMsg { num: 200 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

// Lets the derives' `::ltprotocol::…` paths resolve inside this crate too.
#[allow(unused_extern_crates)]
extern crate self as ltprotocol;

pub mod client;
pub mod codec;
pub mod connection;
#[cfg(feature = "derive")]
pub mod demo;
pub mod event;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
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
mod transport;

pub use client::{Backoff, ClientBuilder, CloseReport, ReconnectingClient};
pub use codec::{EncodeError, EncodedFrame, FrameCodec, FrameError};
pub use connection::{
    AutoReply, ConnectionHandle, ConnectionId, DisconnectReason, Keepalive, SendError, TimeoutKind,
    Timeouts,
};
pub use event::{Event, EventStream, Handled, Handler, Inspected};
pub use frame::{Frame, FrameRef, HeaderFields, MessageType};
pub use handshake::{Handshake, HandshakeContext, HandshakeError};
pub use layout::{
    ByteOrder, FieldId, FieldSpec, HeaderLayout, HeaderLayoutBuilder, Int, LayoutError,
    LengthCounts, MAX_EXTRA_FIELDS, MAX_HEADER_LEN,
};
pub use message::{BodyError, BodyErrorKind, BodyReader, BodyWriter, DecodeError, Message, Wire};
pub use protocol::{Encode, Protocol, Unknown};
pub use request::{Correlation, ReplyStream, RequestError};
pub use server::{Server, ServerBuilder, ShutdownReport};

/// Formats an error with its chain of causes, `outer: inner: innermost`, as logs and the CLI
/// show them (each error's own `Display` speaks for one level only).
///
/// ```
/// use ltprotocol::{error_chain, FrameCodec, HeaderLayout};
/// use tokio_util::codec::Decoder;
/// let mut wire = bytes::BytesMut::from(&b"\x00\x00\x01"[..]);
/// let err = FrameCodec::new(HeaderLayout::ltprotocol()).decode(&mut wire).unwrap_err();
/// assert_eq!(error_chain(&err), "length 0 is smaller than the 3-byte header");
/// ```
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// `#[derive(Message)]`, `#[derive(Wire)]` and `#[derive(Protocol)]`; see the traits of the
/// same names.
#[cfg(feature = "derive")]
pub use ltprotocol_derive::{Message, Protocol, Wire};
