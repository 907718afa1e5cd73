//! Typed message bodies: the [`Body`] decoders borrow, the [`Wire`] encoding of body fields,
//! the [`Message`] trait (a type number plus a body), and their errors.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::MessageType;
use crate::layout::ByteOrder;

/// Writes a message body; integers follow [`order`](Self::order).
///
/// ```
/// use bytes::BytesMut;
/// use ltprotocol::{BodyWriter, ByteOrder, Wire};
/// let mut buf = BytesMut::new();
/// let mut w = BodyWriter::new(&mut buf, ByteOrder::Big);
/// 200u32.write(&mut w);
/// w.with_order(ByteOrder::Little, |w| 1u16.write(w));
/// assert_eq!(&buf[..], &[0, 0, 0, 200, 1, 0]);
/// ```
#[derive(Debug)]
pub struct BodyWriter<'a> {
    buf: &'a mut BytesMut,
    order: ByteOrder,
}

impl<'a> BodyWriter<'a> {
    /// A writer appending to `buf`.
    pub fn new(buf: &'a mut BytesMut, order: ByteOrder) -> Self {
        Self { buf, order }
    }

    /// The byte order integers are written in.
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// Runs `f` with integers written in `order`, then restores the previous order.
    pub fn with_order<R>(&mut self, order: ByteOrder, f: impl FnOnce(&mut Self) -> R) -> R {
        let previous = std::mem::replace(&mut self.order, order);
        let result = f(self);
        self.order = previous;
        result
    }

    /// Appends raw bytes.
    pub fn put_slice(&mut self, bytes: &[u8]) {
        self.buf.put_slice(bytes);
    }

    /// The buffer, for custom [`Wire`] implementations.
    pub fn buf(&mut self) -> &mut BytesMut {
        self.buf
    }
}

/// How many times its own size a kept field may pin: a `Bytes` field or an `Unknown` body cut
/// from a frame's buffer keeps that whole buffer alive, so one smaller than
/// `footprint / MAX_PIN_RATIO` is copied instead. With a 256 KiB read chunk, kept fields of
/// 4 KiB and more are slices of it and smaller ones are copies; either way a kept field holds
/// at most 64 times its own size (a 16-byte body kept for long costs 16 bytes, not 256 KiB).
///
/// This is `Body`'s own rule, wherever it decodes. Inside a connection the runtime also bounds
/// what all the bodies it delivered may pin together: past 1 MiB of read chunks still held,
/// later bodies are copied out whatever their size, until the application lets go.
pub const MAX_PIN_RATIO: usize = 64;

/// A frame's body as decoders see it: a borrowed slice, with the `Bytes` it lies in (if any),
/// from which fields that keep bytes (`Bytes` fields, `Unknown` bodies) are cut without
/// copying — unless that would pin far more memory than they hold, in which case they are
/// copied: a kept field never pins more than [`MAX_PIN_RATIO`] (64) times its own size.
///
/// Integers, strings and `Vec<u8>` fields are read straight from the slice whatever the
/// backing; only [`to_bytes`](Self::to_bytes) and [`bytes_of`](Self::bytes_of) follow the rule.
///
/// ```
/// use bytes::Bytes;
/// use ltprotocol::{Body, ByteOrder, Message, MessageType, Protocol, Unknown};
///
/// #[derive(Debug, PartialEq, Message)]
/// #[ltp(message_type = 1)]
/// pub struct NumMsg { pub num: u32 }
///
/// #[derive(Debug, PartialEq, Protocol)]
/// pub enum Demo { Num(NumMsg), #[ltp(unknown)] Other(Unknown) }
///
/// // Borrowed bytes: nothing is kept, nothing is copied.
/// let num = Demo::decode(MessageType::new(1), Body::new(&[0, 0, 0, 200]), ByteOrder::Big)?;
/// assert_eq!(num, Demo::Num(NumMsg { num: 200 }));
///
/// // Two frames' bodies in one read chunk: a small kept body is copied out of it, so it
/// // does not keep the chunk alive; a large one is a slice of it.
/// let chunk = Bytes::from(vec![7u8; 4_096]);
/// let small = Body::in_chunk(&chunk[..16], &chunk, chunk.len());
/// let large = Body::in_chunk(&chunk[16..], &chunk, chunk.len());
/// let inside = |b: &Bytes| chunk.as_ptr_range().contains(&b.as_ptr());
/// assert!(!inside(&small.to_bytes()));
/// assert!(inside(&large.to_bytes()));
/// # Ok::<(), ltprotocol::DecodeError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Body<'a> {
    bytes: &'a [u8],
    /// The `Bytes` that `bytes`, unless empty, lies in: every constructor checks it and
    /// narrowing keeps it, so `Bytes::slice_ref` of a non-empty sub-slice of `bytes` cannot
    /// panic.
    backing: Option<&'a Bytes>,
    /// The memory a slice of `backing` keeps alive, at least `backing.len()`.
    footprint: usize,
}

impl<'a> Body<'a> {
    /// A body without backing: kept fields are copied.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            backing: None,
            footprint: 0,
        }
    }

    /// A body backed by itself, with a footprint of its own length, so kept fields of at
    /// least 1/64 of it are slices of it. When `bytes` is itself a slice of a larger buffer,
    /// [`in_chunk`](Self::in_chunk) with that buffer's size applies the rule to the memory
    /// really held.
    #[inline]
    pub fn from_bytes(bytes: &'a Bytes) -> Self {
        Self {
            bytes,
            backing: Some(bytes),
            footprint: bytes.len(),
        }
    }

    /// A body lying in `chunk`, a buffer of many frames; `footprint` is the memory the chunk's
    /// allocation holds (`chunk.len()` is used when it is larger), which a slice of it keeps
    /// alive. When `bytes` does not lie inside `chunk`, this is [`new`](Self::new).
    #[inline]
    pub fn in_chunk(bytes: &'a [u8], chunk: &'a Bytes, footprint: usize) -> Self {
        if lies_in(bytes, chunk) {
            Self {
                bytes,
                backing: Some(chunk),
                footprint: footprint.max(chunk.len()),
            }
        } else {
            Self::new(bytes)
        }
    }

    /// A body lying in `chunk`, whose kept fields are always slices of it: for a reader
    /// that accounts itself for the chunks its bodies hold (a connection does). When `bytes`
    /// does not lie inside `chunk`, this is [`new`](Self::new).
    #[inline]
    pub(crate) fn in_accounted_chunk(bytes: &'a [u8], chunk: &'a Bytes) -> Self {
        if lies_in(bytes, chunk) {
            Self {
                bytes,
                backing: Some(chunk),
                footprint: 0,
            }
        } else {
            Self::new(bytes)
        }
    }

    /// The body's bytes.
    #[inline]
    pub fn as_slice(&self) -> &'a [u8] {
        self.bytes
    }

    /// The body's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the body is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The whole body as `Bytes`: a slice of the backing, or a copy when that would pin more
    /// than [`MAX_PIN_RATIO`] times its size.
    #[inline]
    pub fn to_bytes(&self) -> Bytes {
        self.bytes_of(self.bytes)
    }

    /// `sub`, a sub-slice of this body, as `Bytes`: a slice of the backing, or a copy when
    /// that would pin more than [`MAX_PIN_RATIO`] times its size. A `sub` that does not lie
    /// in the body is copied.
    #[inline]
    pub fn bytes_of(&self, sub: &'a [u8]) -> Bytes {
        if sub.is_empty() {
            return Bytes::new();
        }
        match self.backing {
            Some(backing)
                if sub.len().saturating_mul(MAX_PIN_RATIO) >= self.footprint
                    && lies_in(sub, self.bytes) =>
            {
                // `sub` is not empty and lies in `bytes`, which then lies in `backing` (see the
                // field), so this does not panic.
                backing.slice_ref(sub)
            }
            _ => Bytes::copy_from_slice(sub),
        }
    }

    /// The same backing over `bytes`, a sub-slice of this body.
    #[inline]
    fn narrow(&self, bytes: &'a [u8]) -> Self {
        Self { bytes, ..*self }
    }
}

impl fmt::Debug for Body<'_> {
    // Not derived: that would print the whole backing chunk.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("bytes", &self.bytes)
            .field("backed", &self.backing.is_some())
            .field("footprint", &self.footprint)
            .finish()
    }
}

impl<'a> From<&'a Bytes> for Body<'a> {
    #[inline]
    fn from(bytes: &'a Bytes) -> Self {
        Self::from_bytes(bytes)
    }
}

impl<'a> From<&'a [u8]> for Body<'a> {
    #[inline]
    fn from(bytes: &'a [u8]) -> Self {
        Self::new(bytes)
    }
}

/// Whether `inner` lies inside `outer`, by address; safe code cannot prove more.
#[inline]
fn lies_in(inner: &[u8], outer: &[u8]) -> bool {
    let (start, outer_start) = (inner.as_ptr().addr(), outer.as_ptr().addr());
    // Neither end overflows: both slices are in memory.
    start >= outer_start && start + inner.len() <= outer_start + outer.len()
}

/// Reads a message body front to back; integers follow [`order`](Self::order). Integers,
/// strings and `Vec<u8>` are read from the borrowed slice; `Bytes` fields are cut from the
/// [`Body`]'s backing by its pinning rule (a slice, or a copy when a slice would pin far more
/// than it holds).
///
/// ```
/// use ltprotocol::{Body, BodyReader, ByteOrder, Wire};
/// let mut r = BodyReader::new(Body::new(&[0, 0, 0, 200, b'h', b'i']), ByteOrder::Big);
/// assert_eq!(u32::read(&mut r)?, 200);
/// assert_eq!(r.rest(), b"hi");
/// assert_eq!(String::read(&mut r)?, "hi");
/// r.finish()?;
/// # Ok::<(), ltprotocol::BodyError>(())
/// ```
#[derive(Debug)]
pub struct BodyReader<'a> {
    /// What is left to read.
    body: Body<'a>,
    order: ByteOrder,
}

impl<'a> BodyReader<'a> {
    /// A reader over `body`: a [`Body`], a `&Bytes` or a `&[u8]`.
    #[inline]
    pub fn new(body: impl Into<Body<'a>>, order: ByteOrder) -> Self {
        Self {
            body: body.into(),
            order,
        }
    }

    /// The byte order integers are read in.
    #[inline]
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// Runs `f` with integers read in `order`, then restores the previous order.
    pub fn with_order<R>(&mut self, order: ByteOrder, f: impl FnOnce(&mut Self) -> R) -> R {
        let previous = std::mem::replace(&mut self.order, order);
        let result = f(self);
        self.order = previous;
        result
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.body.len()
    }

    /// What is left, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        self.body.as_slice()
    }

    /// The next `n` bytes, borrowed.
    ///
    /// # Errors
    ///
    /// [`BodyErrorKind::TooShort`] when fewer than `n` bytes are left.
    #[inline]
    pub fn take_slice(&mut self, n: usize) -> Result<&'a [u8], BodyError> {
        match self.body.as_slice().split_at_checked(n) {
            Some((head, tail)) => {
                self.body = self.body.narrow(tail);
                Ok(head)
            }
            None => Err(self.too_short(n)),
        }
    }

    /// The next `n` bytes as `Bytes`, by the [`Body`]'s pinning rule.
    ///
    /// # Errors
    ///
    /// [`BodyErrorKind::TooShort`] when fewer than `n` bytes are left.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<Bytes, BodyError> {
        let body = self.body;
        self.take_slice(n).map(|head| body.bytes_of(head))
    }

    /// The next `N` bytes as an array.
    ///
    /// # Errors
    ///
    /// [`BodyErrorKind::TooShort`] when fewer than `N` bytes are left.
    #[inline]
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], BodyError> {
        match self.body.as_slice().split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.body = self.body.narrow(tail);
                Ok(*head)
            }
            None => Err(self.too_short(N)),
        }
    }

    /// Everything that is left as `Bytes`, by the [`Body`]'s pinning rule.
    #[inline]
    pub fn take_rest(&mut self) -> Bytes {
        let body = self.body;
        body.bytes_of(self.take_rest_slice())
    }

    /// Checks that the whole body was read.
    ///
    /// # Errors
    ///
    /// [`BodyErrorKind::TrailingBytes`] when bytes are left.
    #[inline]
    pub fn finish(&self) -> Result<(), BodyError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(BodyErrorKind::TrailingBytes {
                count: self.body.len(),
            }
            .into())
        }
    }

    /// Everything that is left, borrowed.
    #[inline]
    fn take_rest_slice(&mut self) -> &'a [u8] {
        let rest = self.body.as_slice();
        self.body = self.body.narrow(&[]);
        rest
    }

    fn too_short(&self, needed: usize) -> BodyError {
        BodyErrorKind::TooShort {
            needed,
            remaining: self.body.len(),
        }
        .into()
    }
}

/// What was wrong with a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyErrorKind {
    /// A field needed more bytes than were left.
    #[error("body too short: a field needs {needed} bytes, {remaining} left")]
    TooShort {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A string field is not UTF-8.
    #[error("invalid UTF-8 after {valid_up_to} bytes")]
    InvalidUtf8 {
        /// The length of the valid prefix.
        valid_up_to: usize,
    },
    /// A `bool` byte other than 0 or 1.
    #[error("invalid bool byte {value:#04x}")]
    InvalidBool {
        /// The byte.
        value: u8,
    },
    /// Bytes left after the last field.
    #[error("{count} trailing bytes after the last field")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A custom [`Wire`] implementation refused the bytes.
    #[error("{reason}")]
    Invalid {
        /// Why.
        reason: &'static str,
    },
}

/// A body field that could not be read: what was wrong, and in which field.
///
/// ```
/// use ltprotocol::{Body, BodyErrorKind, BodyReader, ByteOrder, Wire};
/// let mut r = BodyReader::new(Body::new(&[1, 2]), ByteOrder::Big);
/// let err = u32::read(&mut r).unwrap_err();
/// assert_eq!(err.kind(), &BodyErrorKind::TooShort { needed: 4, remaining: 2 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    kind: BodyErrorKind,
    field: Option<&'static str>,
}

impl BodyError {
    /// What was wrong.
    pub fn kind(&self) -> &BodyErrorKind {
        &self.kind
    }

    /// The field being read, when known.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    /// Names the field being read; the derive calls it for every field, so the outermost
    /// field's name is the one kept.
    pub fn in_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
}

impl From<BodyErrorKind> for BodyError {
    fn from(kind: BodyErrorKind) -> Self {
        Self { kind, field: None }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.kind),
            None => fmt::Display::fmt(&self.kind, f),
        }
    }
}

impl std::error::Error for BodyError {}

/// A frame whose type a known message claims, but whose body does not decode as that message.
///
/// ```
/// use ltprotocol::{Body, ByteOrder, DecodeError, Message};
/// # #[derive(Debug, ltprotocol::Message)]
/// # #[ltp(message_type = 1)]
/// # struct NumMsg { num: u32 }
/// let err: DecodeError = NumMsg::decode_body(Body::new(&[0, 1]), ByteOrder::Big).unwrap_err();
/// assert_eq!(err.message_type.value(), 1);
/// assert_eq!(err.to_string(), "cannot decode NumMsg (type 1)");
/// // The cause sits in `source()`, as for every error of this crate:
/// assert_eq!(err.source.to_string(), "field `num`: body too short: a field needs 4 bytes, 2 left");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {message} (type {message_type})")]
pub struct DecodeError {
    /// The frame's type number.
    pub message_type: MessageType,
    /// The name of the message type that claimed it.
    pub message: &'static str,
    /// What was wrong, and where.
    pub source: BodyError,
}

/// A value that can be a message body field: integers (in the body's byte order unless the
/// field says otherwise), `f32`/`f64` (IEEE 754), `bool` (one byte, 0 or 1), byte arrays,
/// nested `#[derive(Wire)]` structs, and the trailing `String`, `Bytes` and `Vec<u8>` that take
/// the rest of the body.
///
/// ```
/// use bytes::BytesMut;
/// use ltprotocol::{BodyReader, BodyWriter, ByteOrder, Wire};
/// let mut buf = BytesMut::new();
/// (-2i16).write(&mut BodyWriter::new(&mut buf, ByteOrder::Little));
/// assert_eq!(&buf[..], &[0xfe, 0xff]);
/// let mut r = BodyReader::new(&buf[..], ByteOrder::Little);
/// assert_eq!(i16::read(&mut r)?, -2);
/// # Ok::<(), ltprotocol::BodyError>(())
/// ```
pub trait Wire: Sized {
    /// Appends the value.
    fn write(&self, w: &mut BodyWriter<'_>);

    /// Reads a value from the front of the reader.
    ///
    /// # Errors
    ///
    /// A [`BodyError`] when the bytes do not hold a value of this type.
    fn read(r: &mut BodyReader<'_>) -> Result<Self, BodyError>;

    /// How many bytes [`write`](Self::write) appends, or a good guess; used to reserve.
    fn size_hint(&self) -> usize {
        0
    }
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn write(&self, w: &mut BodyWriter<'_>) {
                match w.order() {
                    ByteOrder::Big => w.put_slice(&self.to_be_bytes()),
                    ByteOrder::Little => w.put_slice(&self.to_le_bytes()),
                }
            }

            #[inline]
            fn read(r: &mut BodyReader<'_>) -> Result<Self, BodyError> {
                let bytes = r.take_array::<{ std::mem::size_of::<$t>() }>()?;
                Ok(match r.order() {
                    ByteOrder::Big => <$t>::from_be_bytes(bytes),
                    ByteOrder::Little => <$t>::from_le_bytes(bytes),
                })
            }

            fn size_hint(&self) -> usize {
                std::mem::size_of::<$t>()
            }
        }
    )*};
}
wire_int!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, f32, f64);

impl Wire for bool {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.put_slice(&[u8::from(*self)]);
    }

    #[inline]
    fn read(r: &mut BodyReader<'_>) -> Result<Self, BodyError> {
        match r.take_array::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            [value] => Err(BodyErrorKind::InvalidBool { value }.into()),
        }
    }

    fn size_hint(&self) -> usize {
        1
    }
}

impl<const N: usize> Wire for [u8; N] {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.put_slice(self);
    }

    #[inline]
    fn read(r: &mut BodyReader<'_>) -> Result<Self, BodyError> {
        r.take_array::<N>()
    }

    fn size_hint(&self) -> usize {
        N
    }
}

/// The rest of the body: a slice of the [`Body`]'s backing, or a copy when a slice would pin
/// more than [`MAX_PIN_RATIO`] times its size.
impl Wire for Bytes {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.put_slice(self);
    }

    #[inline]
    fn read(r: &mut BodyReader<'_>) -> Result<Self, BodyError> {
        Ok(r.take_rest())
    }

    fn size_hint(&self) -> usize {
        self.len()
    }
}

/// The rest of the body.
impl Wire for Vec<u8> {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.put_slice(self);
    }

    #[inline]
    fn read(r: &mut BodyReader<'_>) -> Result<Self, BodyError> {
        Ok(r.take_rest_slice().to_vec())
    }

    fn size_hint(&self) -> usize {
        self.len()
    }
}

/// The rest of the body, which must be UTF-8.
impl Wire for String {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.put_slice(self.as_bytes());
    }

    #[inline]
    fn read(r: &mut BodyReader<'_>) -> Result<Self, BodyError> {
        match std::str::from_utf8(r.take_rest_slice()) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(BodyErrorKind::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            }
            .into()),
        }
    }

    fn size_hint(&self) -> usize {
        self.len()
    }
}

/// One message type: its type number and its body. Derive it:
///
/// ```
/// use ltprotocol::{ByteOrder, Message};
///
/// #[derive(Debug, PartialEq, Message)]
/// #[ltp(message_type = 1)]
/// struct NumMsg {
///     num: u32,
/// }
///
/// let mut body = bytes::BytesMut::new();
/// NumMsg { num: 200 }.encode_body(&mut body, ByteOrder::Big);
/// assert_eq!(&body[..], &[0, 0, 0, 200]);
/// assert_eq!(NumMsg::decode_body(&body[..], ByteOrder::Big)?, NumMsg { num: 200 });
/// assert_eq!(NumMsg::MESSAGE_TYPE.value(), 1);
/// # Ok::<(), ltprotocol::DecodeError>(())
/// ```
pub trait Message: Wire {
    /// The type number that identifies this message on the wire.
    const MESSAGE_TYPE: MessageType;
    /// The message's name, for logs and errors.
    const NAME: &'static str;

    /// Appends the body.
    fn encode_body(&self, buf: &mut BytesMut, order: ByteOrder) {
        self.write(&mut BodyWriter::new(buf, order));
    }

    /// Decodes a whole body (a [`Body`], a `&Bytes` or a `&[u8]`); bytes left over are an
    /// error.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming this type when the body does not decode.
    #[inline]
    fn decode_body<'a>(body: impl Into<Body<'a>>, order: ByteOrder) -> Result<Self, DecodeError> {
        let mut r = BodyReader::new(body, order);
        Self::read(&mut r)
            .and_then(|value| r.finish().map(|()| value))
            .map_err(|source| DecodeError {
                message_type: Self::MESSAGE_TYPE,
                message: Self::NAME,
                source,
            })
    }
}
