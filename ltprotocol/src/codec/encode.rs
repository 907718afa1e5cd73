//! The encoding half of [`FrameCodec`]: header and body written in one pass, the length
//! filled in last, and [`EncodedFrame`], a message encoded once for many connections.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::FrameCodec;
use crate::frame::{Frame, HeaderFields, MessageType};
use crate::layout::{FieldId, HeaderLayout, Int};
use crate::protocol::Encode;

/// Why a frame could not be encoded. Nothing is written to the destination buffer when
/// encoding fails: a frame is never truncated to fit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The whole frame is longer than the outbound maximum (which is never more than the
    /// length field can describe).
    #[error("frame of {length} bytes exceeds the maximum frame length {max}")]
    TooLarge {
        /// The whole frame's length.
        length: usize,
        /// The outbound maximum (see [`FrameCodec::max_outbound`]).
        max: usize,
    },
    /// The frame's length cannot be expressed in the length field (a layout whose adjustment
    /// exceeds this small a frame).
    #[error("frame of {length} bytes gives length field value {raw}, which a {int} cannot hold")]
    LengthOutOfRange {
        /// The whole frame's length.
        length: usize,
        /// The value the length field would need.
        raw: i128,
        /// The length field's kind.
        int: Int,
    },
    /// The message type does not fit the type field.
    #[error("message type {message_type} does not fit a {int} type field")]
    TypeOutOfRange {
        /// The type number.
        message_type: MessageType,
        /// The type field's kind.
        int: Int,
    },
    /// An extra header field's value does not fit it.
    #[error("value {value} does not fit header field `{field}` ({int})")]
    FieldOutOfRange {
        /// The field's name.
        field: String,
        /// The value.
        value: i128,
        /// The field's kind.
        int: Int,
    },
    /// Writing to the stream failed.
    #[error("write failed")]
    Io(#[from] io::Error),
}

impl FrameCodec {
    /// Encodes a frame whose body is written by `body` straight into `dst`: no intermediate
    /// buffer. Used to encode typed messages; [`Encoder<Frame>`] calls it with a copy of the
    /// frame's body.
    ///
    /// # Errors
    ///
    /// An [`EncodeError`] when the type or a header field does not fit its field, or the whole
    /// frame exceeds the outbound maximum; `dst` is then left as it was.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use ltprotocol::{FrameCodec, HeaderFields, HeaderLayout, MessageType};
    ///
    /// let layout = HeaderLayout::openflow();
    /// let codec = FrameCodec::new(layout.clone());
    /// let fields = HeaderFields::new().with(layout.field("xid").unwrap(), 1);
    /// let mut wire = BytesMut::new();
    /// codec.encode_with(MessageType::new(0), &fields, &mut wire, |_body| {})?;
    /// assert_eq!(&wire[..], b"\x04\x00\x00\x08\x00\x00\x00\x01");
    /// # Ok::<(), ltprotocol::EncodeError>(())
    /// ```
    pub fn encode_with(
        &self,
        message_type: MessageType,
        fields: &HeaderFields,
        dst: &mut BytesMut,
        body: impl FnOnce(&mut BytesMut),
    ) -> Result<(), EncodeError> {
        let layout = &self.layout;
        let type_int = layout.type_field().int();
        if !type_int.holds(message_type.value()) {
            return Err(EncodeError::TypeOutOfRange {
                message_type,
                int: type_int,
            });
        }
        let start = dst.len();
        let header_len = layout.header_len();
        dst.reserve(header_len);
        dst.put_bytes(0, header_len);
        body(dst);
        let length = dst.len() - start;
        match self.write_header(message_type, fields, length, dst.get_mut(start..)) {
            Ok(()) => Ok(()),
            Err(err) => {
                dst.truncate(start);
                Err(err)
            }
        }
    }

    /// Encodes a typed message (a [`Message`](crate::Message), a [`Protocol`](crate::Protocol)
    /// value or an [`Unknown`](crate::Unknown)) with default header fields.
    ///
    /// # Errors
    ///
    /// As [`encode_with`](Self::encode_with).
    pub fn encode_message<M: Encode + ?Sized>(
        &self,
        msg: &M,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.encode_message_with(msg, &HeaderFields::new(), dst)
    }

    /// Encodes a typed message with the given extra header fields (OpenFlow's `xid`, say).
    ///
    /// # Errors
    ///
    /// As [`encode_with`](Self::encode_with).
    pub fn encode_message_with<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let order = self.layout.byte_order();
        dst.reserve(self.layout.header_len() + msg.body_size_hint());
        self.encode_with(msg.message_type(), fields, dst, |buf| {
            msg.encode_body(buf, order);
        })
    }

    /// Encodes a message once, for sending to many connections of this layout with
    /// [`ConnectionHandle::send_encoded`](crate::ConnectionHandle::send_encoded).
    ///
    /// ```
    /// use ltprotocol::{FrameCodec, HeaderFields, HeaderLayout, MessageType, Unknown};
    /// let codec = FrameCodec::new(HeaderLayout::ltprotocol());
    /// let msg = Unknown { message_type: MessageType::new(9), body: "hi".into() };
    /// let frame = codec.encode_once(&msg, &HeaderFields::new())?;
    /// assert_eq!(frame.as_bytes(), b"\x00\x05\x09hi");
    /// # Ok::<(), ltprotocol::EncodeError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`encode_with`](Self::encode_with).
    pub fn encode_once<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<EncodedFrame, EncodeError> {
        Ok(EncodedFrame {
            bytes: self.encode_to_bytes(msg, fields)?,
            layout: self.layout.clone(),
        })
    }

    /// Encodes a message into a buffer of its own: what every queued send holds.
    pub(crate) fn encode_to_bytes<M: Encode + ?Sized>(
        &self,
        msg: &M,
        fields: &HeaderFields,
    ) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode_message_with(msg, fields, &mut buf)?;
        Ok(buf.freeze())
    }

    #[inline(always)]
    fn write_header(
        &self,
        message_type: MessageType,
        fields: &HeaderFields,
        length: usize,
        header: Option<&mut [u8]>,
    ) -> Result<(), EncodeError> {
        let layout = &self.layout;
        let order = layout.byte_order();
        if length > self.max_outbound {
            return Err(EncodeError::TooLarge {
                length,
                max: self.max_outbound,
            });
        }
        let length_field = layout.length_field();
        let raw = layout.raw_len_of(length);
        // A negative raw length is refused even where a signed field holds it: every decoder
        // refuses it (`FrameError::NegativeLength`).
        if raw < 0 || !length_field.int().holds(raw) {
            return Err(EncodeError::LengthOutOfRange {
                length,
                raw,
                int: length_field.int(),
            });
        }
        let type_field = layout.type_field();
        let values = [
            (length_field.offset(), length_field.int(), raw),
            (type_field.offset(), type_field.int(), message_type.value()),
        ];
        // `encode_with` put `header_len` bytes at `start`, so the slice is at least that long
        // and every field lies inside it (checked when the layout was built); a `None` here
        // would be a bug of ours, reported as an I/O error rather than a panic.
        let missing = || io::Error::other("header slice shorter than the layout's header");
        let header = header.ok_or_else(missing)?;
        for (index, spec) in layout.extra_fields().iter().enumerate() {
            let value = fields.get(FieldId(index)).unwrap_or(spec.default_value());
            if !spec.int().holds(value) {
                return Err(EncodeError::FieldOutOfRange {
                    field: spec.name().to_owned(),
                    value,
                    int: spec.int(),
                });
            }
            let out = header.get_mut(spec.offset()..).ok_or_else(missing)?;
            spec.int().write(value, out, order).ok_or_else(missing)?;
        }
        for (offset, int, value) in values {
            let out = header.get_mut(offset..).ok_or_else(missing)?;
            int.write(value, out, order).ok_or_else(missing)?;
        }
        Ok(())
    }
}

/// A message encoded once, header and body, ready to be queued on any number of
/// connections of the same header layout without encoding it again: what a broadcast does
/// inside, for a group the application chooses. Cheap to clone.
///
/// Made by [`FrameCodec::encode_once`] or [`Server::encode`](crate::Server::encode); sent
/// with [`ConnectionHandle::send_encoded`](crate::ConnectionHandle::send_encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    bytes: Bytes,
    layout: HeaderLayout,
}

impl EncodedFrame {
    /// The frame's bytes, header included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The frame's bytes as a shared buffer.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The layout it was encoded for.
    pub fn layout(&self) -> &HeaderLayout {
        &self.layout
    }

    /// Its length in bytes, header included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a frame has at least its header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        Encoder::<&Frame>::encode(self, &frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = EncodeError;

    #[inline]
    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.reserve(self.layout.header_len() + frame.body.len());
        self.encode_with(frame.message_type, &frame.fields, dst, |buf| {
            buf.put_slice(&frame.body);
        })
    }
}
