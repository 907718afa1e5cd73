//! [`FrameCodec`]: bytes ↔ [`Frame`]s for any [`HeaderLayout`], as a tokio-util
//! [`Decoder`] and [`Encoder`](tokio_util::codec::Encoder).
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

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use crate::frame::{Frame, HeaderFields, MessageType};
use crate::layout::{FieldId, HeaderLayout};

mod encode;
mod head_word;

pub use self::encode::{EncodeError, EncodedFrame};
use self::head_word::HeadWord;

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
///   [`Bytes`](bytes::Bytes) slices of the read buffer: no copy. Any split or coalescing of
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
