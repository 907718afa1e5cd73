//! [`Frame`]: one message as it crossed the wire, its type number, extra header fields and body.

use std::fmt;

use bytes::Bytes;

use crate::layout::{FieldId, HeaderLayout};

/// A message type number, as read from the type field.
///
/// Wide enough for every field kind: a signed field's −1 and an unsigned field's 255 stay
/// distinct. Debug output shows the number in decimal and hex.
///
/// ```
/// use ltprotocol::MessageType;
/// let hello = MessageType::new(0);
/// assert_eq!(MessageType::from(2u8).value(), 2);
/// assert_ne!(MessageType::from(-1i8), MessageType::from(255u8));
/// assert_eq!(format!("{:?}", MessageType::new(10)), "MessageType(10 = 0xa)");
/// # let _ = hello;
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageType(i128);

impl MessageType {
    /// A type number.
    pub const fn new(value: i128) -> Self {
        Self(value)
    }

    /// The number.
    pub const fn value(self) -> i128 {
        self.0
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "MessageType({})", self.0)
        } else {
            write!(f, "MessageType({} = {:#x})", self.0, self.0)
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

macro_rules! message_type_from {
    ($($t:ty),*) => {$(
        impl From<$t> for MessageType {
            fn from(value: $t) -> Self {
                Self(i128::from(value))
            }
        }
    )*};
}
message_type_from!(u8, i8, u16, i16, u32, i32, u64, i64);

const INLINE_FIELDS: usize = 4;

/// The values of a frame's extra header fields (OpenFlow's `version` and `xid`, say), in the
/// order the layout declares them.
///
/// Up to four fields live inline, so receiving and sending frames with them allocates nothing.
/// A field the application does not set is sent with the layout's default for it.
///
/// ```
/// use ltprotocol::{HeaderFields, HeaderLayout};
/// let layout = HeaderLayout::openflow();
/// let xid = layout.field("xid").unwrap();
/// let mut fields = HeaderFields::new();
/// fields.set(xid, 7);
/// assert_eq!(fields.get(xid), Some(7));
/// assert_eq!(fields.get(layout.field("version").unwrap()), None);
/// ```
#[derive(Clone, Default)]
pub struct HeaderFields {
    /// The low 64 bits of the first fields' values.
    inline: [u64; INLINE_FIELDS],
    /// Bit `i` says whether `inline[i]` is set.
    inline_set: u8,
    /// Bit `i` says that `inline[i]` is an unsigned value above `i64::MAX`; otherwise it is
    /// read as an `i64`.
    inline_high: u8,
    /// Fields past the inline ones, and values no 8-byte field holds (`spill[i]` is field
    /// `i`). Boxed so that a frame stays small: moving frames is the receive path's main cost.
    spill: Option<Box<Spill>>,
}

/// The spilled fields, by field index (one pointer in [`HeaderFields`], not three).
#[derive(Clone, Default)]
struct Spill(Vec<Option<i128>>);

impl HeaderFields {
    /// No field set.
    pub const fn new() -> Self {
        Self {
            inline: [0; INLINE_FIELDS],
            inline_set: 0,
            inline_high: 0,
            spill: None,
        }
    }

    /// The value of a field, if set (every field of a received frame is set).
    pub fn get(&self, id: FieldId) -> Option<i128> {
        let index = id.index();
        if index < INLINE_FIELDS && self.inline_set & (1 << index) != 0 {
            let bits = self.inline.get(index).copied()?;
            return Some(if self.inline_high & (1 << index) != 0 {
                i128::from(bits)
            } else {
                i128::from(bits as i64)
            });
        }
        self.spill.as_ref()?.0.get(index).copied().flatten()
    }

    /// The value of a field by name, looked up in `layout`.
    ///
    /// ```
    /// use ltprotocol::{HeaderFields, HeaderLayout};
    /// let layout = HeaderLayout::openflow();
    /// let fields = HeaderFields::new().with(layout.field("xid").unwrap(), 9);
    /// assert_eq!(fields.get_named(&layout, "xid"), Some(9));
    /// assert_eq!(fields.get_named(&layout, "nope"), None);
    /// ```
    pub fn get_named(&self, layout: &HeaderLayout, name: &str) -> Option<i128> {
        self.get(layout.field(name)?)
    }

    /// Sets a field's value. Whether it fits the field is checked when the frame is encoded.
    pub fn set(&mut self, id: FieldId, value: i128) {
        let index = id.index();
        let inline = if index < INLINE_FIELDS {
            // Every value of an 8-byte or smaller field, signed or not, lives inline.
            if let Ok(v) = i64::try_from(value) {
                Some((v as u64, false))
            } else {
                u64::try_from(value).ok().map(|v| (v, true))
            }
        } else {
            None
        };
        match (inline, self.inline.get_mut(index)) {
            (Some((bits, high)), Some(slot)) => {
                *slot = bits;
                self.inline_set |= 1 << index;
                if high {
                    self.inline_high |= 1 << index;
                } else {
                    self.inline_high &= !(1 << index);
                }
                if let Some(slot) = self.spill.as_mut().and_then(|s| s.0.get_mut(index)) {
                    *slot = None;
                }
            }
            (_, inline_slot) => {
                if let Some(slot) = inline_slot {
                    *slot = 0;
                    self.inline_set &= !(1 << index);
                    self.inline_high &= !(1 << index);
                }
                let spill = &mut self.spill.get_or_insert_with(Box::default).0;
                if spill.len() <= index {
                    spill.resize(index + 1, None);
                }
                if let Some(slot) = spill.get_mut(index) {
                    *slot = Some(value);
                }
            }
        }
    }

    /// Sets a field and returns the set, for chaining.
    pub fn with(mut self, id: FieldId, value: i128) -> Self {
        self.set(id, value);
        self
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Every set field as `(id, value)`, in layout order.
    pub fn iter(&self) -> impl Iterator<Item = (FieldId, i128)> + '_ {
        let len = self
            .spill
            .as_ref()
            .map_or(0, |spill| spill.0.len())
            .max(INLINE_FIELDS);
        (0..len).filter_map(|i| self.get(FieldId(i)).map(|v| (FieldId(i), v)))
    }
}

impl PartialEq for HeaderFields {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HeaderFields {}

impl std::hash::Hash for HeaderFields {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for (id, value) in self.iter() {
            id.index().hash(state);
            value.hash(state);
        }
    }
}

impl fmt::Debug for HeaderFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(id, v)| (id.index(), v)))
            .finish()
    }
}

/// One message as it crosses the wire: its type number, its extra header fields and its body.
///
/// The length field is not stored: the codec computes it when it encodes and checks it when it
/// decodes. A received body is a [`Bytes`] slice of the read chunk it arrived in, not a copy,
/// and keeps that whole chunk alive while it is held. Through a [`Body`](crate::Body), a kept
/// field or `Unknown` body smaller than 1/[`MAX_PIN_RATIO`](crate::MAX_PIN_RATIO) of its chunk
/// is copied instead; and a connection counts the chunks its delivered bodies still hold, and
/// past 1 MiB of them copies later bodies out until the application lets go. Frames cut by a
/// [`FrameCodec`](crate::FrameCodec) of your own are slices of your buffer, with neither rule:
/// copy a small body you keep for long (`Bytes::copy_from_slice`).
///
/// ```
/// use bytes::Bytes;
/// use ltprotocol::{Frame, MessageType};
/// let frame = Frame::new(MessageType::new(1), Bytes::from_static(&[0, 0, 0, 200]));
/// assert_eq!(frame.body.len(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The value of the type field.
    pub message_type: MessageType,
    /// The extra header fields; empty for layouts that have none.
    pub fields: HeaderFields,
    /// Everything after the header.
    pub body: Bytes,
}

/// A received frame seen in place, in the connection's read buffer, before anything is
/// allocated for it: what [`Handler::inspect`](crate::Handler::inspect) is given.
///
/// ```
/// use bytes::Bytes;
/// use ltprotocol::{Frame, MessageType};
/// let frame = Frame::new(MessageType::new(1), Bytes::from_static(b"abc"));
/// let view = frame.view();
/// assert_eq!((view.message_type.value(), view.body), (1, &b"abc"[..]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The value of the type field.
    pub message_type: MessageType,
    /// The extra header fields; empty for layouts that have none.
    pub fields: &'a HeaderFields,
    /// Everything after the header.
    pub body: &'a [u8],
}

impl Frame {
    /// This frame as a [`FrameRef`].
    pub fn view(&self) -> FrameRef<'_> {
        FrameRef {
            message_type: self.message_type,
            fields: &self.fields,
            body: &self.body,
        }
    }

    /// A frame with no extra header field set (each is sent with its layout default).
    pub fn new(message_type: MessageType, body: Bytes) -> Self {
        Self {
            message_type,
            fields: HeaderFields::new(),
            body,
        }
    }

    /// Sets an extra header field and returns the frame, for chaining.
    pub fn with_field(mut self, id: FieldId, value: i128) -> Self {
        self.fields.set(id, value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_value_round_trips_inline_or_spilled() {
        let values = [
            0,
            -1,
            1,
            i128::from(i64::MIN),
            i128::from(i64::MAX),
            i128::from(i64::MAX) + 1,
            i128::from(u64::MAX),
            i128::from(u64::MAX) + 1,
            i128::from(i64::MIN) - 1,
            i128::MIN,
            i128::MAX,
        ];
        for index in 0..7 {
            for &first in &values {
                for &second in &values {
                    let mut fields = HeaderFields::new();
                    fields.set(FieldId(index), first);
                    assert_eq!(fields.get(FieldId(index)), Some(first));
                    fields.set(FieldId(index), second);
                    assert_eq!(fields.get(FieldId(index)), Some(second), "field {index}");
                    // However it got there, equal contents are equal and hash alike.
                    let fresh = HeaderFields::new().with(FieldId(index), second);
                    assert_eq!(fields, fresh);
                    let state = std::hash::RandomState::new();
                    assert_eq!(
                        std::hash::BuildHasher::hash_one(&state, &fields),
                        std::hash::BuildHasher::hash_one(&state, &fresh)
                    );
                    assert_eq!(
                        fields.iter().collect::<Vec<_>>(),
                        vec![(FieldId(index), second)]
                    );
                    assert!(!fields.is_empty());
                }
            }
        }
        assert!(HeaderFields::new().is_empty());
        assert!(std::mem::size_of::<HeaderFields>() <= 48);
    }
}
