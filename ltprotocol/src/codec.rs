//! [`FrameCodec`]: bytes ↔ [`Frame`]s for any [`HeaderLayout`], as a tokio-util
//! [`Decoder`] and [`Encoder`].
//!
//! The ancestor's layout, `NumMsg(200)`:
//! ```text
//! +- length u16 -+- type u8 -+---- body ----+
//! |    00 07     |    01     |  00 00 00 c8 |  -->  Frame { type 1, body 00 00 00 c8 }
//! +--------------+-----------+--------------+
//! ```
//! OpenFlow 1.3 HELLO with xid 1:
//! ```text
//! +- version u8 -+- type u8 -+- length u16 -+--- xid u32 ---+
//! |      04      |    00     |    00 08     |  00 00 00 01  |  -->  Frame { type 0, version 4, xid 1 }
//! +--------------+-----------+--------------+---------------+
//! ```

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{Frame, HeaderFields, MessageType};
use crate::layout::{ByteOrder, FieldId, FieldSpec, HeaderLayout, Int};
use crate::protocol::Encode;

/// The default inbound maximum for layouts whose length field can describe more: 8 MiB.
pub const DEFAULT_MAX_INBOUND: usize = 8 * 1024 * 1024;

/// The most a decoder grows its buffer ahead of the bytes that have arrived, while it waits
/// for a body: it reserves at most what it already holds, and at least this much.
const MIN_BODY_RESERVE: usize = 4096;

/// Makes room in `src` for more of the frame of `frame_len` bytes at its front, within the
/// bound [`MIN_BODY_RESERVE`] states: a declared length alone never reserves memory.
pub(crate) fn reserve_for_body(src: &mut BytesMut, frame_len: usize) {
    let missing = frame_len.saturating_sub(src.len());
    if missing > 0 {
        src.reserve(missing.min(src.len().max(MIN_BODY_RESERVE)));
    }
}

/// Why a byte stream could not be cut into frames. After any of these but [`Io`](Self::Io),
/// the stream's framing is lost: close the connection (there is no safe way to resynchronise).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length field declared a whole frame smaller than the header.
    #[error("length {declared} is smaller than the {header_len}-byte header")]
    TooShort {
        /// The length field's value.
        declared: i128,
        /// The whole frame it declares, after the layout's adjustment.
        frame_len: i128,
        /// The header size.
        header_len: usize,
    },
    /// A signed length field held a negative value.
    #[error("length {declared} is negative")]
    NegativeLength {
        /// The length field's value.
        declared: i128,
    },
    /// The length field declared a whole frame over the inbound maximum; no body byte was
    /// buffered.
    #[error("length {declared} exceeds the maximum frame length {max}")]
    TooLong {
        /// The length field's value.
        declared: i128,
        /// The whole frame it declares, after the layout's adjustment.
        frame_len: i128,
        /// The inbound maximum (see [`FrameCodec::max_inbound`]).
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended {missing} bytes short of a complete {}", if *.in_header { "header" } else { "frame" })]
    Truncated {
        /// How many more bytes the frame (or, when `in_header`, at least the header) needed.
        missing: usize,
        /// How many bytes of it had arrived.
        received: usize,
        /// Whether the stream ended before the header was complete (the frame's length unknown).
        in_header: bool,
    },
    /// Reading from the stream failed.
    #[error("read failed")]
    Io(#[from] io::Error),
}

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

#[derive(Debug, Clone)]
enum DecodeState {
    /// Waiting for a complete header.
    Head,
    /// The header is read and checked; waiting for the rest of a frame of `frame_len` bytes.
    Body {
        frame_len: usize,
        message_type: MessageType,
        fields: HeaderFields,
    },
}

/// Cuts a byte stream into [`Frame`]s and writes frames back, for any [`HeaderLayout`].
///
/// - **Decoding** reads the header once, checks `header ≤ whole frame ≤ max_inbound` from the
///   header alone, then waits for the body without reserving the declared size up front (a
///   header that declares a huge frame and then trickles costs only what arrives). Bodies are
///   [`Bytes`] slices of the read buffer: no copy. Any split or coalescing of
///   the stream gives the same frames.
/// - **Encoding** writes header and body into the destination in one pass and fills in the
///   length last; a frame over `max_outbound`, a type or header field out of its field's
///   range, is refused with an [`EncodeError`] and nothing is written.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use ltprotocol::{Frame, FrameCodec, HeaderLayout, MessageType};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
/// let mut wire = BytesMut::new();
/// codec.encode(Frame::new(MessageType::new(1), Bytes::from_static(&[0, 0, 0, 200])), &mut wire)?;
/// assert_eq!(&wire[..], b"\x00\x07\x01\x00\x00\x00\xc8");
///
/// let frame = codec.decode(&mut wire)?.unwrap();
/// assert_eq!(frame.message_type, MessageType::new(1));
/// assert_eq!(&frame.body[..], &[0, 0, 0, 200]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrameCodec {
    layout: HeaderLayout,
    /// The layout's length and type fields read from one 8-byte word, when both lie in the
    /// first 8 bytes of the header.
    head_word: Option<HeadWord>,
    max_inbound: usize,
    max_outbound: usize,
    state: DecodeState,
}

/// Reads a header's length and type fields from one 8-byte load: a pair of shifts per field
/// instead of a match on each field's width and byte order for every frame. Made once per
/// codec for layouts whose length and type fields both lie in the first 8 bytes (both
/// presets). It only answers the usual case: with fewer than 8 bytes at hand, or a length it
/// does not accept, the general read decides and explains.
#[derive(Debug, Clone, Copy)]
struct HeadWord {
    big_endian: bool,
    length: WordField,
    message_type: WordField,
    adjustment: i64,
    header_len: usize,
}

/// Where one field sits in the header's first 8 bytes, read as a `u64` in the layout's byte
/// order: shifted left by `left`, its first byte is the word's top one; shifted right by
/// `right`, arithmetically if signed, it is the value.
#[derive(Debug, Clone, Copy)]
struct WordField {
    left: u32,
    right: u32,
    signed: bool,
}

impl WordField {
    fn new(offset: usize, int: Int, big_endian: bool) -> Option<Self> {
        let width = int.width();
        let end = offset.checked_add(width).filter(|&end| end <= 8)?;
        // Big-endian, the field's first byte is `offset` bytes from the top; little-endian,
        // its last byte (the most significant) is `8 - end` bytes from the top.
        let left = if big_endian { offset } else { 8 - end };
        Some(Self {
            left: u32::try_from(8 * left).ok()?,
            right: u32::try_from(8 * (8 - width)).ok()?,
            signed: int.is_signed(),
        })
    }

    #[inline(always)]
    fn get(self, word: u64) -> i128 {
        let top = word << self.left;
        if self.signed {
            // The same bits as two's complement: the shift brings the sign down with them.
            i128::from((top as i64) >> self.right)
        } else {
            i128::from(top >> self.right)
        }
    }
}

impl HeadWord {
    fn new(layout: &HeaderLayout) -> Option<Self> {
        let big_endian = matches!(layout.byte_order(), ByteOrder::Big);
        let field = |spec: &FieldSpec| WordField::new(spec.offset(), spec.int(), big_endian);
        Some(Self {
            big_endian,
            length: field(layout.length_field())?,
            message_type: field(layout.type_field())?,
            adjustment: layout.length_adjustment(),
            header_len: layout.header_len(),
        })
    }

    /// The whole-frame length and the type, if `rest` holds 8 bytes and the length is one
    /// the codec accepts (at least a header, at most `max_inbound`).
    #[inline(always)]
    fn read(&self, rest: &[u8], max_inbound: usize) -> Option<(usize, MessageType)> {
        let bytes = *rest.first_chunk::<8>()?;
        let word = if self.big_endian {
            u64::from_be_bytes(bytes)
        } else {
            u64::from_le_bytes(bytes)
        };
        let declared = self.length.get(word);
        let frame_len = declared + i128::from(self.adjustment);
        if declared < 0 || frame_len < self.header_len as i128 || frame_len > max_inbound as i128 {
            return None;
        }
        let frame_len = usize::try_from(frame_len).ok()?;
        Some((frame_len, MessageType::new(self.message_type.get(word))))
    }
}

impl FrameCodec {
    /// A codec for `layout` with the default maxima: inbound, the smaller of what the length
    /// field can describe and [`DEFAULT_MAX_INBOUND`] (8 MiB), so 65,535 for both presets;
    /// outbound, what the length field can describe.
    pub fn new(layout: HeaderLayout) -> Self {
        let field_max = layout.max_frame_len();
        Self {
            head_word: HeadWord::new(&layout),
            max_inbound: field_max.min(DEFAULT_MAX_INBOUND),
            max_outbound: field_max,
            layout,
            state: DecodeState::Head,
        }
    }

    /// Sets the largest whole frame (header included) accepted from the peer, checked from the
    /// header alone before any body byte is buffered. Clamped to what the length field can
    /// describe and to at least the header size.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use ltprotocol::{FrameCodec, FrameError, HeaderLayout};
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = FrameCodec::new(HeaderLayout::ltprotocol()).max_inbound(1024);
    /// let mut wire = BytesMut::from(&b"\x07\xd0\x01"[..]); // declares 2000 bytes
    /// let err = codec.decode(&mut wire).unwrap_err();
    /// assert!(matches!(err, FrameError::TooLong { declared: 2000, max: 1024, .. }));
    /// ```
    pub fn max_inbound(mut self, max: usize) -> Self {
        self.max_inbound = self.clamp(max);
        self
    }

    /// Sets the largest whole frame this codec encodes; larger frames are refused with
    /// [`EncodeError::TooLarge`]. Clamped to what the length field can describe and to at
    /// least the header size.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use ltprotocol::{EncodeError, Frame, FrameCodec, HeaderLayout, MessageType};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = FrameCodec::new(HeaderLayout::ltprotocol()).max_outbound(10);
    /// let frame = Frame::new(MessageType::new(1), Bytes::from_static(&[0; 8]));
    /// let err = codec.encode(frame, &mut BytesMut::new()).unwrap_err();
    /// assert!(matches!(err, EncodeError::TooLarge { length: 11, max: 10 }));
    /// ```
    pub fn max_outbound(mut self, max: usize) -> Self {
        self.max_outbound = self.clamp(max);
        self
    }

    /// Sets both maxima; see [`max_inbound`](Self::max_inbound) and
    /// [`max_outbound`](Self::max_outbound).
    pub fn max_frame_len(self, max: usize) -> Self {
        self.max_inbound(max).max_outbound(max)
    }

    /// The inbound maximum in force.
    pub fn inbound_limit(&self) -> usize {
        self.max_inbound
    }

    /// The outbound maximum in force.
    pub fn outbound_limit(&self) -> usize {
        self.max_outbound
    }

    /// The layout.
    pub fn layout(&self) -> &HeaderLayout {
        &self.layout
    }

    /// Forgets any partly decoded frame, as for a new connection.
    pub fn reset(&mut self) {
        self.state = DecodeState::Head;
    }

    /// Whether the decoder is inside a frame (has read its header but not all of its body).
    pub fn is_mid_frame(&self) -> bool {
        matches!(self.state, DecodeState::Body { .. })
    }

    fn clamp(&self, max: usize) -> usize {
        max.min(self.layout.max_frame_len())
            .max(self.layout.header_len())
    }

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

    /// The checked whole-frame length and the type of the complete header at the front of
    /// `src`. Returned in registers: the per-frame path of layouts without extra fields.
    #[inline(always)]
    fn read_length_and_type(&self, src: &[u8]) -> Result<(usize, MessageType), FrameError> {
        let layout = &self.layout;
        let order = layout.byte_order();
        let length_field = layout.length_field();
        let declared = src
            .get(length_field.offset()..)
            .and_then(|b| length_field.int().read(b, order))
            .ok_or_else(|| self.truncated_header(src))?;
        if declared < 0 {
            return Err(FrameError::NegativeLength { declared });
        }
        let frame_len = layout.frame_len_of(declared);
        let header_len = layout.header_len();
        if frame_len < header_len as i128 {
            return Err(FrameError::TooShort {
                declared,
                frame_len,
                header_len,
            });
        }
        if frame_len > self.max_inbound as i128 {
            return Err(FrameError::TooLong {
                declared,
                frame_len,
                max: self.max_inbound,
            });
        }
        // Checked against `max_inbound`, a usize, just above.
        let frame_len = usize::try_from(frame_len).map_err(|_| FrameError::TooLong {
            declared,
            frame_len,
            max: self.max_inbound,
        })?;
        let type_field = layout.type_field();
        let message_type = src
            .get(type_field.offset()..)
            .and_then(|b| type_field.int().read(b, order))
            .ok_or_else(|| self.truncated_header(src))?;
        Ok((frame_len, MessageType::new(message_type)))
    }

    /// The extra header fields of the complete header at the front of `src`.
    #[inline]
    fn read_fields(&self, src: &[u8]) -> Result<HeaderFields, FrameError> {
        let order = self.layout.byte_order();
        let mut fields = HeaderFields::new();
        for (index, spec) in self.layout.extra_fields().iter().enumerate() {
            let value = src
                .get(spec.offset()..)
                .and_then(|b| spec.int().read(b, order))
                .ok_or_else(|| self.truncated_header(src))?;
            fields.set(FieldId(index), value);
        }
        Ok(fields)
    }

    #[cold]
    fn truncated_header(&self, src: &[u8]) -> FrameError {
        FrameError::Truncated {
            missing: self.layout.header_len().saturating_sub(src.len()),
            received: src.len(),
            in_header: true,
        }
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

impl FrameCodec {
    /// The whole length and the type of the frame at the front of `src`, from its header
    /// alone (checked against the header size and the inbound maximum); `Ok(None)` while the
    /// header is incomplete. The frame itself may not all be there yet.
    ///
    /// # Errors
    ///
    /// A [`FrameError`] when the header breaks the framing rules.
    #[inline(always)]
    pub(crate) fn peek(&self, src: &[u8]) -> Result<Option<(usize, MessageType)>, FrameError> {
        if src.len() < self.layout.header_len() {
            return Ok(None);
        }
        if let Some(read) = self.head_word.and_then(|w| w.read(src, self.max_inbound)) {
            return Ok(Some(read));
        }
        self.read_length_and_type(src).map(Some)
    }

    /// [`peek`](Self::peek)'s usual case, answered in registers: the length and type of a
    /// whole header that the one-load read accepts; `None` for anything else (an incomplete
    /// header, a layout without the one-load read, a length to refuse), which `peek` decides.
    #[inline(always)]
    pub(crate) fn peek_usual(&self, src: &[u8]) -> Option<(usize, MessageType)> {
        if src.len() < self.layout.header_len() {
            return None;
        }
        self.head_word.and_then(|w| w.read(src, self.max_inbound))
    }

    /// Whether the layout has extra header fields to read.
    #[inline(always)]
    pub(crate) fn has_extra_fields(&self) -> bool {
        !self.layout.extra_fields().is_empty()
    }

    /// Like [`peek`](Self::peek), the whole length only.
    ///
    /// # Errors
    ///
    /// As [`peek`](Self::peek).
    pub(crate) fn peek_len(&self, src: &[u8]) -> Result<Option<usize>, FrameError> {
        Ok(self.peek(src)?.map(|(len, _)| len))
    }

    /// The extra header fields of the complete header at the front of `src`; `None` for
    /// layouts without extra fields (nothing to read, nothing made).
    ///
    /// # Errors
    ///
    /// A [`FrameError`] when the header is not all there.
    #[inline(always)]
    pub(crate) fn fields_of(&self, src: &[u8]) -> Result<Option<HeaderFields>, FrameError> {
        if self.layout.extra_fields().is_empty() {
            Ok(None)
        } else {
            self.read_fields(src).map(Some)
        }
    }
}

/// The extra header fields of a frame whose layout has none: lent, so that no set is made
/// for each frame.
pub(crate) static NO_FIELDS: HeaderFields = HeaderFields::new();

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if matches!(self.state, DecodeState::Head) {
            let Some((frame_len, message_type)) = self.peek(src)? else {
                return Ok(None);
            };
            self.state = DecodeState::Body {
                frame_len,
                message_type,
                fields: self.fields_of(src)?.unwrap_or_default(),
            };
        }
        let DecodeState::Body { frame_len, .. } = self.state else {
            return Ok(None);
        };
        if src.len() < frame_len {
            reserve_for_body(src, frame_len);
            return Ok(None);
        }
        let DecodeState::Body {
            message_type,
            fields,
            ..
        } = std::mem::replace(&mut self.state, DecodeState::Head)
        else {
            return Ok(None);
        };
        src.advance(self.layout.header_len());
        let body = src.split_to(frame_len - self.layout.header_len()).freeze();
        Ok(Some(Frame {
            message_type,
            fields,
            body,
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let received = src.len();
        let err = match self.state {
            DecodeState::Head => FrameError::Truncated {
                missing: self.layout.header_len().saturating_sub(received),
                received,
                in_header: true,
            },
            DecodeState::Body { frame_len, .. } => FrameError::Truncated {
                missing: frame_len.saturating_sub(received),
                received,
                in_header: false,
            },
        };
        Err(err)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::FrameCodec;
    use crate::layout::{ByteOrder, HeaderLayout, Int, LengthCounts};

    proptest! {
        // Many cases: the rare ones (a small negative length that an adjustment would make
        // look legal) must come up.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The one-load read of a header's length and type ([`HeadWord`]) agrees with the
        /// general read on any layout and any bytes: it answers the same, or leaves the case
        /// to the general read, and it never leaves a header the general read accepts with 8
        /// bytes at hand.
        #[test]
        fn one_load_read_agrees_with_the_general_read(
            length in (0usize..8, 0usize..4),
            message_type in (0usize..8, 0usize..4),
            big_endian in any::<bool>(),
            signed in (any::<bool>(), any::<bool>()),
            counts in prop_oneof![
                Just(LengthCounts::Frame),
                Just(LengthCounts::Body),
                (-20i64..20).prop_map(LengthCounts::Adjusted),
            ],
            max_inbound in 1usize..100_000,
            // Zeros and ones often: small lengths, positive and negative.
            bytes in prop::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..16),
        ) {
            let int = |(_, width): (usize, usize), signed: bool| {
                let kinds = if signed {
                    [Int::I8, Int::I16, Int::I32, Int::I64]
                } else {
                    [Int::U8, Int::U16, Int::U32, Int::U64]
                };
                kinds[width]
            };
            let mut builder = HeaderLayout::builder();
            builder
                .length(length.0, int(length, signed.0))
                .message_type(message_type.0, int(message_type, signed.1))
                .byte_order(if big_endian { ByteOrder::Big } else { ByteOrder::Little })
                .length_counts(counts);
            // Overlapping fields and impossible adjustments are refused: nothing to read.
            let Ok(layout) = builder.build() else {
                return Ok(());
            };
            let codec = FrameCodec::new(layout).max_inbound(max_inbound);
            let general = codec.read_length_and_type(&bytes).ok();
            let Some(word) = codec.head_word else {
                // Only fields past the first 8 bytes have no one-load read.
                prop_assert!(length.0 + (1 << length.1) > 8 || message_type.0 + (1 << message_type.1) > 8);
                return Ok(());
            };
            match word.read(&bytes, codec.max_inbound) {
                Some(read) => prop_assert_eq!(Some(read), general),
                None => prop_assert!(bytes.len() < 8 || general.is_none()),
            }
        }
    }
}
