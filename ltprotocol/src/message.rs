//! Typed message bodies: the [`Wire`] encoding of body fields, the [`Message`] trait (a type
//! number plus a body), and their errors.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

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

/// Reads a message body front to back; integers follow [`order`](Self::order). Trailing
/// `Bytes` fields are zero-copy slices of the body.
///
/// ```
/// use bytes::Bytes;
/// use ltprotocol::{BodyReader, ByteOrder, Wire};
/// let mut r = BodyReader::new(Bytes::from_static(&[0, 0, 0, 200, b'h', b'i']), ByteOrder::Big);
/// assert_eq!(u32::read(&mut r)?, 200);
/// assert_eq!(String::read(&mut r)?, "hi");
/// r.finish()?;
/// # Ok::<(), ltprotocol::BodyError>(())
/// ```
#[derive(Debug)]
pub struct BodyReader {
    body: Bytes,
    order: ByteOrder,
}

impl BodyReader {
    /// A reader over `body`.
    pub fn new(body: Bytes, order: ByteOrder) -> Self {
        Self { body, order }
    }

    /// The byte order integers are read in.
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

    /// The next `n` bytes, without copying.
    ///
    /// # Errors
    ///
    /// [`BodyErrorKind::TooShort`] when fewer than `n` bytes are left.
    pub fn take(&mut self, n: usize) -> Result<Bytes, BodyError> {
        self.check(n)?;
        Ok(self.body.split_to(n))
    }

    /// The next `N` bytes as an array.
    ///
    /// # Errors
    ///
    /// [`BodyErrorKind::TooShort`] when fewer than `N` bytes are left.
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], BodyError> {
        self.check(N)?;
        let mut out = [0u8; N];
        self.body.copy_to_slice(&mut out);
        Ok(out)
    }

    /// Everything that is left, without copying.
    pub fn take_rest(&mut self) -> Bytes {
        std::mem::take(&mut self.body)
    }

    /// Checks that the whole body was read.
    ///
    /// # Errors
    ///
    /// [`BodyErrorKind::TrailingBytes`] when bytes are left.
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

    fn check(&self, needed: usize) -> Result<(), BodyError> {
        if self.body.len() < needed {
            Err(BodyErrorKind::TooShort {
                needed,
                remaining: self.body.len(),
            }
            .into())
        } else {
            Ok(())
        }
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
/// use bytes::Bytes;
/// use ltprotocol::{BodyErrorKind, BodyReader, ByteOrder, Wire};
/// let mut r = BodyReader::new(Bytes::from_static(&[1, 2]), ByteOrder::Big);
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
/// use bytes::Bytes;
/// use ltprotocol::{ByteOrder, DecodeError, Message};
/// # #[derive(Debug, ltprotocol::Message)]
/// # #[ltp(message_type = 1)]
/// # struct NumMsg { num: u32 }
/// let err: DecodeError =
///     NumMsg::decode_body(Bytes::from_static(&[0, 1]), ByteOrder::Big).unwrap_err();
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
/// let mut r = BodyReader::new(buf.freeze(), ByteOrder::Little);
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
    fn read(r: &mut BodyReader) -> Result<Self, BodyError>;

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

            fn read(r: &mut BodyReader) -> Result<Self, BodyError> {
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

    fn read(r: &mut BodyReader) -> Result<Self, BodyError> {
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

    fn read(r: &mut BodyReader) -> Result<Self, BodyError> {
        r.take_array::<N>()
    }

    fn size_hint(&self) -> usize {
        N
    }
}

/// The rest of the body, without copying.
impl Wire for Bytes {
    fn write(&self, w: &mut BodyWriter<'_>) {
        w.put_slice(self);
    }

    fn read(r: &mut BodyReader) -> Result<Self, BodyError> {
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

    fn read(r: &mut BodyReader) -> Result<Self, BodyError> {
        Ok(r.take_rest().to_vec())
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

    fn read(r: &mut BodyReader) -> Result<Self, BodyError> {
        let rest = r.take_rest();
        match std::str::from_utf8(&rest) {
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
/// assert_eq!(NumMsg::decode_body(body.freeze(), ByteOrder::Big)?, NumMsg { num: 200 });
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

    /// Decodes a whole body; bytes left over are an error.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming this type when the body does not decode.
    fn decode_body(body: Bytes, order: ByteOrder) -> Result<Self, DecodeError> {
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
