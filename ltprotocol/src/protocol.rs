//! [`Protocol`]: the set of message types one protocol speaks, decoded by type number;
//! [`Encode`], anything that can be sent; and [`ProtocolCodec`], the two as a tokio-util
//! codec for `Framed`.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::{EncodeError, FrameCodec, FrameError};
use crate::frame::{Frame, MessageType};
use crate::layout::{ByteOrder, HeaderLayout};
use crate::message::{Body, DecodeError, Message};

/// A message whose type no variant of a [`Protocol`] claims: its type number and body, kept
/// whole (the ancestor delivered `None`).
///
/// `Unknown` is itself a `Protocol` that claims nothing, for code that works with raw frames.
///
/// Decoded from a [`Body`], it keeps [`Body::to_bytes`]: a slice of the frame's buffer, or a
/// copy when the body is small beside that buffer, so that it does not keep the buffer alive.
///
/// ```
/// use bytes::Bytes;
/// use ltprotocol::{Body, ByteOrder, MessageType, Protocol, Unknown};
/// let raw = Unknown::decode(MessageType::new(9), Body::new(b"hi"), ByteOrder::Big)?;
/// assert_eq!(raw, Unknown { message_type: MessageType::new(9), body: Bytes::from_static(b"hi") });
/// # Ok::<(), ltprotocol::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unknown {
    /// The frame's type number.
    pub message_type: MessageType,
    /// The frame's body.
    pub body: Bytes,
}

impl From<Frame> for Unknown {
    fn from(frame: Frame) -> Self {
        Self {
            message_type: frame.message_type,
            body: frame.body,
        }
    }
}

/// Anything that can be sent: a [`Message`], a [`Protocol`] value, or an [`Unknown`].
///
/// ```
/// use ltprotocol::{ByteOrder, Encode};
/// # #[derive(Debug, ltprotocol::Message)]
/// # #[ltp(message_type = 2)]
/// # struct StrMsg { text: String }
/// let msg = StrMsg { text: "hi".into() };
/// assert_eq!(msg.message_type().value(), 2);
/// let mut body = bytes::BytesMut::new();
/// msg.encode_body(&mut body, ByteOrder::Big);
/// assert_eq!(&body[..], b"hi");
/// ```
pub trait Encode {
    /// The type number to put in the type field.
    fn message_type(&self) -> MessageType;
    /// Appends the body.
    fn encode_body(&self, buf: &mut BytesMut, order: ByteOrder);
    /// A guess of the body's size, to reserve; 0 when unknown.
    fn body_size_hint(&self) -> usize {
        0
    }
}

impl<M: Message> Encode for M {
    fn message_type(&self) -> MessageType {
        M::MESSAGE_TYPE
    }

    fn encode_body(&self, buf: &mut BytesMut, order: ByteOrder) {
        Message::encode_body(self, buf, order);
    }

    fn body_size_hint(&self) -> usize {
        self.size_hint()
    }
}

/// The message types of one protocol: decodes each received frame into the variant its type
/// number names, or into the unknown variant. Derive it on an enum of [`Message`]s with one
/// `#[ltp(unknown)]` variant holding an [`Unknown`]:
///
/// ```
/// use bytes::Bytes;
/// use ltprotocol::{Body, ByteOrder, Message, MessageType, Protocol, Unknown};
///
/// #[derive(Debug, PartialEq, Message)]
/// #[ltp(message_type = 1)]
/// pub struct NumMsg { pub num: u32 }
///
/// #[derive(Debug, PartialEq, Message)]
/// #[ltp(message_type = 2)]
/// pub struct StrMsg { pub text: String }
///
/// #[derive(Debug, PartialEq, Protocol)]
/// pub enum Demo {
///     Num(NumMsg),
///     Str(StrMsg),
///     #[ltp(unknown)]
///     Other(Unknown),
/// }
///
/// // Decoding borrows the body: fields are read in place.
/// let got = Demo::decode(MessageType::new(1), Body::new(&[0, 0, 0, 200]), ByteOrder::Big)?;
/// assert_eq!(got, Demo::Num(NumMsg { num: 200 }));
/// // An owned body lends itself; what the unknown arm keeps is a slice of it, not a copy.
/// let body = Bytes::from_static(b"raw");
/// let other = Demo::decode(MessageType::new(7), Body::from(&body), ByteOrder::Big)?;
/// assert_eq!(other, Demo::Other(Unknown { message_type: MessageType::new(7), body }));
/// assert_eq!(Demo::from(NumMsg { num: 1 }).name(), "NumMsg");
/// # Ok::<(), ltprotocol::DecodeError>(())
/// ```
pub trait Protocol: Encode + Sized + Send + 'static {
    /// Decodes a body by its type number. A type no variant claims gives the unknown variant,
    /// which keeps the body by [`Body`]'s pinning rule.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when a variant claims the type but its body does not decode.
    fn decode(
        message_type: MessageType,
        body: Body<'_>,
        order: ByteOrder,
    ) -> Result<Self, DecodeError>;

    /// The variant's message name (`"NumMsg"`), or `"Unknown"`.
    fn name(&self) -> &'static str;

    /// Whether `message_type` is claimed by a variant (not the unknown one).
    fn is_known(message_type: MessageType) -> bool;
}

/// A raw frame's type and body; send it with its own header fields
/// (`send_with(&frame, &frame.fields)`).
impl Encode for Frame {
    fn message_type(&self) -> MessageType {
        self.message_type
    }

    fn encode_body(&self, buf: &mut BytesMut, _order: ByteOrder) {
        buf.extend_from_slice(&self.body);
    }

    fn body_size_hint(&self) -> usize {
        self.body.len()
    }
}

impl Encode for Unknown {
    fn message_type(&self) -> MessageType {
        self.message_type
    }

    fn encode_body(&self, buf: &mut BytesMut, _order: ByteOrder) {
        buf.extend_from_slice(&self.body);
    }

    fn body_size_hint(&self) -> usize {
        self.body.len()
    }
}

impl Protocol for Unknown {
    #[inline(always)]
    fn decode(
        message_type: MessageType,
        body: Body<'_>,
        _order: ByteOrder,
    ) -> Result<Self, DecodeError> {
        Ok(Self {
            message_type,
            body: body.to_bytes(),
        })
    }

    fn name(&self) -> &'static str {
        "Unknown"
    }

    fn is_known(_message_type: MessageType) -> bool {
        false
    }
}

/// What the derives' generated code names; not public API.
#[doc(hidden)]
pub mod __private {
    // `Encode::encode_body` takes a `BytesMut`: the generated impls name it through here, so a
    // user crate needs no `bytes` dependency of its own.
    pub use bytes::BytesMut;
}

/// Why [`ProtocolCodec`] could not decode: the byte stream broke the framing rules, or a
/// frame of a known type carried a body that does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolCodecError {
    /// The framing is broken (or reading failed); the stream cannot go on.
    #[error("cannot read a frame")]
    Frame(#[from] FrameError),
    /// A body that does not decode as the message its type names.
    #[error("cannot decode a message")]
    Decode(#[from] DecodeError),
}

impl From<std::io::Error> for ProtocolCodecError {
    fn from(err: std::io::Error) -> Self {
        Self::Frame(FrameError::Io(err))
    }
}

/// A tokio-util codec of typed messages, for users who drive a stream with `Framed`
/// themselves: `Decoder<Item = P>` decodes each frame into the protocol's message (its extra
/// header fields are dropped: use [`FrameCodec`] and [`Protocol::decode`] to keep them), and
/// `Encoder<&M>` frames anything [`Encode`].
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use ltprotocol::demo::{Demo, NumMsg};
/// use ltprotocol::{HeaderLayout, ProtocolCodec};
/// use tokio_util::codec::Framed;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ours, theirs) = tokio::io::duplex(1024);
/// let codec = || ProtocolCodec::<Demo>::new(HeaderLayout::ltprotocol());
/// let (mut a, mut b) = (Framed::new(ours, codec()), Framed::new(theirs, codec()));
/// a.send(&NumMsg { num: 200 }).await?;
/// assert_eq!(b.next().await.transpose()?, Some(Demo::Num(NumMsg { num: 200 })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ProtocolCodec<P> {
    frames: FrameCodec,
    _protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P> Clone for ProtocolCodec<P> {
    fn clone(&self) -> Self {
        Self {
            frames: self.frames.clone(),
            _protocol: std::marker::PhantomData,
        }
    }
}

impl<P: Protocol> ProtocolCodec<P> {
    /// A codec for `layout`, with the frame codec's default limits.
    pub fn new(layout: HeaderLayout) -> Self {
        Self::with_frames(FrameCodec::new(layout))
    }

    /// A codec over `frames`, with its layout and limits.
    pub fn with_frames(frames: FrameCodec) -> Self {
        Self {
            frames,
            _protocol: std::marker::PhantomData,
        }
    }

    /// The frame codec underneath: the layout and the limits in force.
    pub fn frames(&self) -> &FrameCodec {
        &self.frames
    }
}

impl<P: Protocol> Decoder for ProtocolCodec<P> {
    type Item = P;
    type Error = ProtocolCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<P>, ProtocolCodecError> {
        let frame = self.frames.decode(src)?;
        self.decode_frame(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<P>, ProtocolCodecError> {
        let frame = self.frames.decode_eof(src)?;
        self.decode_frame(frame)
    }
}

impl<P: Protocol> ProtocolCodec<P> {
    /// Decodes a frame the frame codec cut (if it cut one) into the protocol's message.
    fn decode_frame(&self, frame: Option<Frame>) -> Result<Option<P>, ProtocolCodecError> {
        let Some(frame) = frame else {
            return Ok(None);
        };
        let order = self.frames.layout().byte_order();
        Ok(Some(P::decode(
            frame.message_type,
            Body::from(&frame.body),
            order,
        )?))
    }
}

impl<P: Protocol, M: Encode + ?Sized> Encoder<&M> for ProtocolCodec<P> {
    type Error = EncodeError;

    fn encode(&mut self, msg: &M, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.frames.encode_message(msg, dst)
    }
}
