//! Header layouts: where the length, the type and any extra fields sit in a frame's header.
//!
//! A [`HeaderLayout`] is built once and shared (cloning it bumps a reference count). The two
//! presets cover the ancestor's format and OpenFlow; [`HeaderLayout::builder`] describes any
//! other fixed-size header.

mod builder;
mod int;

use std::fmt;
use std::sync::Arc;

pub use self::builder::HeaderLayoutBuilder;
pub use self::int::{ByteOrder, Int};

/// What the length field counts. The codec always works with the whole frame's length:
/// `whole frame = raw length field + adjustment`.
///
/// | variant | adjustment | Netty's `lengthAdjustment` |
/// |---|---|---|
/// | `Frame` | 0 | −(offset + width) |
/// | `Body` | header size | header size − (offset + width) |
/// | `Adjusted(a)` | `a` | `a` − (offset + width) |
///
/// ```
/// use ltprotocol::{HeaderLayout, LengthCounts};
/// // The ancestor's layout: the length counts the whole message, header included.
/// assert_eq!(HeaderLayout::ltprotocol().length_adjustment(), 0);
/// let body_only = HeaderLayout::builder().length_counts(LengthCounts::Body).build()?;
/// assert_eq!(body_only.length_adjustment(), 3);
/// # Ok::<(), ltprotocol::LayoutError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LengthCounts {
    /// The whole message, header included (the ancestor and OpenFlow). This is the default.
    #[default]
    Frame,
    /// The body only: the whole frame is the length plus the header size.
    Body,
    /// The whole frame is the length field's value plus this adjustment.
    Adjusted(i64),
}

/// One integer field of a header: its name, offset, kind and the value sent when the
/// application gives none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    name: Arc<str>,
    offset: usize,
    int: Int,
    default: i128,
}

impl FieldSpec {
    /// The field's name (`"length"`, `"type"`, or the name given to an extra field).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field's offset from the start of the frame, in bytes.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The field's width and sign.
    #[inline]
    pub fn int(&self) -> Int {
        self.int
    }

    /// The value written when a frame is sent without one (0 unless the layout says otherwise).
    pub fn default_value(&self) -> i128 {
        self.default
    }

    /// One past the field's last byte.
    pub fn end(&self) -> usize {
        self.offset + self.int.width()
    }
}

/// A handle on one extra header field of a layout, found by name with
/// [`HeaderLayout::field`]; it indexes [`HeaderFields`](crate::HeaderFields).
///
/// ```
/// use ltprotocol::HeaderLayout;
/// let openflow = HeaderLayout::openflow();
/// let xid = openflow.field("xid").unwrap();
/// assert_eq!(openflow.field_spec(xid).unwrap().offset(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub(crate) usize);

impl FieldId {
    /// The field's position among the layout's extra fields, in the order they were declared.
    pub fn index(self) -> usize {
        self.0
    }
}

/// Why a [`HeaderLayoutBuilder`] refused to build a layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Two fields share at least one byte.
    #[error(
        "field `{first}` (bytes {first_start}..{first_end}) overlaps field `{second}` (bytes {second_start}..{second_end})"
    )]
    Overlap {
        /// The field declared first.
        first: String,
        /// Its first byte.
        first_start: usize,
        /// One past its last byte.
        first_end: usize,
        /// The field that overlaps it.
        second: String,
        /// Its first byte.
        second_start: usize,
        /// One past its last byte.
        second_end: usize,
    },
    /// An explicit header size leaves a field partly or wholly outside the header.
    #[error("field `{field}` ends at byte {end}, past the {header_len}-byte header")]
    FieldPastHeader {
        /// The field that does not fit.
        field: String,
        /// One past its last byte.
        end: usize,
        /// The header size that was asked for.
        header_len: usize,
    },
    /// A field width other than 1, 2, 4 or 8 bytes.
    #[error("field `{field}` has width {width}; widths are 1, 2, 4 or 8 bytes")]
    InvalidWidth {
        /// The field.
        field: String,
        /// The width that was asked for.
        width: usize,
    },
    /// The header would be longer than [`MAX_HEADER_LEN`].
    #[error("a {header_len}-byte header is longer than the largest allowed, {max} bytes")]
    HeaderTooLong {
        /// The header size the layout would have.
        header_len: usize,
        /// [`MAX_HEADER_LEN`].
        max: usize,
    },
    /// A field's offset so large that the field would end past the largest `usize`.
    #[error("field `{field}` at offset {offset} ends beyond any possible header")]
    OffsetOverflow {
        /// The field.
        field: String,
        /// Its offset.
        offset: usize,
    },
    /// Two extra fields with one name.
    #[error("two header fields are named `{name}`")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// An extra field's default value does not fit the field.
    #[error("default {value} of field `{field}` does not fit a {int} field")]
    DefaultOutOfRange {
        /// The field.
        field: String,
        /// The default that was asked for.
        value: i128,
        /// The field's kind.
        int: Int,
    },
    /// More extra fields than [`MAX_EXTRA_FIELDS`]; checked before any other field is looked
    /// at.
    #[error("{count} extra header fields; a layout may have at most {max}")]
    TooManyFields {
        /// The extra fields declared.
        count: usize,
        /// [`MAX_EXTRA_FIELDS`].
        max: usize,
    },
    /// The length adjustment makes every frame impossible: even the largest length the field
    /// can declare gives a whole frame smaller than the header.
    #[error(
        "with adjustment {adjustment}, the largest {int} length gives no frame of at least the {header_len}-byte header"
    )]
    NoValidLength {
        /// The adjustment.
        adjustment: i64,
        /// The length field's kind.
        int: Int,
        /// The header size.
        header_len: usize,
    },
}

/// The largest header a layout may have: 64 KiB. Real protocols' headers are a few bytes;
/// this bound keeps a mistaken offset from becoming a header that no frame can fill.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// The most extra fields (besides length and type) a layout may have: 64. Real headers carry
/// a handful (OpenFlow's two: `version` and `xid`); every field is read from each frame, and
/// [`HeaderLayoutBuilder::build`] compares each pair of fields for overlap, so this bound,
/// checked first, keeps both cheap whatever a layout file declares.
pub const MAX_EXTRA_FIELDS: usize = 64;

#[derive(Debug, PartialEq, Eq, Hash)]
struct LayoutInner {
    length: FieldSpec,
    message_type: FieldSpec,
    extra: Vec<FieldSpec>,
    header_len: usize,
    byte_order: ByteOrder,
    adjustment: i64,
    name: Option<&'static str>,
}

/// Where a frame header's fields sit and how they are read: the length field, the type field,
/// any extra fields, the byte order and what the length counts.
///
/// Cheap to clone (one reference count) and immutable once built.
///
/// The two presets:
/// ```text
/// ltprotocol (default)            openflow
/// +- length u16 -+- type u8 -+     +- version u8 -+- type u8 -+- length u16 -+- xid u32 -+
/// |    0..2      |    2      |     |      0       |     1     |     2..4     |   4..8    |
/// +--------------+-----------+     +--------------+-----------+--------------+-----------+
/// ```
///
/// ```
/// use ltprotocol::{ByteOrder, HeaderLayout, Int, LengthCounts};
/// let layout = HeaderLayout::builder()
///     .length(0, Int::U32)
///     .message_type(4, Int::U16)
///     .field("seq", 6, Int::U32)
///     .byte_order(ByteOrder::Little)
///     .length_counts(LengthCounts::Body)
///     .build()?;
/// assert_eq!(layout.header_len(), 10);
/// assert_eq!(layout.length_adjustment(), 10);
/// # Ok::<(), ltprotocol::LayoutError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HeaderLayout {
    inner: Arc<LayoutInner>,
}

impl HeaderLayout {
    /// The ancestor's layout, byte-compatible with ltprotocol 0.2.1's defaults: big-endian,
    /// length `u16` at offset 0 counting the whole message, type `u8` at offset 2. A 3-byte
    /// header; lengths 3 to 65,535, so bodies of at most 65,532 bytes.
    ///
    /// ```
    /// use ltprotocol::HeaderLayout;
    /// let layout = HeaderLayout::ltprotocol();
    /// assert_eq!(layout.header_len(), 3);
    /// assert_eq!(layout.max_frame_len(), 65_535);
    /// ```
    pub fn ltprotocol() -> Self {
        Self::from_inner(LayoutInner {
            length: spec("length", 0, Int::U16, 0),
            message_type: spec("type", 2, Int::U8, 0),
            extra: Vec::new(),
            header_len: 3,
            byte_order: ByteOrder::Big,
            adjustment: 0,
            name: Some("ltprotocol"),
        })
    }

    /// The OpenFlow layout (every version): `version` u8 at 0, type u8 at 1, length u16 at 2
    /// counting the whole message, `xid` u32 at 4; an 8-byte header. Frames sent without a
    /// version carry 4 (OpenFlow 1.3).
    ///
    /// ```
    /// use ltprotocol::HeaderLayout;
    /// let layout = HeaderLayout::openflow();
    /// assert_eq!(layout.header_len(), 8);
    /// assert!(layout.field("xid").is_some());
    /// ```
    pub fn openflow() -> Self {
        Self::from_inner(LayoutInner {
            length: spec("length", 2, Int::U16, 0),
            message_type: spec("type", 1, Int::U8, 0),
            extra: vec![spec("version", 0, Int::U8, 4), spec("xid", 4, Int::U32, 0)],
            header_len: 8,
            byte_order: ByteOrder::Big,
            adjustment: 0,
            name: Some("openflow"),
        })
    }

    /// A builder that starts from the ancestor's layout (length `u16` at 0, type `u8` at 2,
    /// big-endian, length counts the whole frame, no extra fields); change what differs.
    ///
    /// ```
    /// use ltprotocol::{HeaderLayout, Int};
    /// // The ancestor's LTProtocol(msgs, len_type='I', type_type='h').
    /// let layout = HeaderLayout::builder().length(0, Int::U32).message_type(4, Int::I16).build()?;
    /// assert_eq!(layout.header_len(), 6);
    /// # Ok::<(), ltprotocol::LayoutError>(())
    /// ```
    pub fn builder() -> HeaderLayoutBuilder {
        HeaderLayoutBuilder::new()
    }

    fn from_inner(inner: LayoutInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The preset's name (`"ltprotocol"`, `"openflow"`), or `None` for a built layout.
    pub fn preset_name(&self) -> Option<&'static str> {
        self.inner.name
    }

    /// The header size in bytes: the frame's smallest legal length.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.inner.header_len
    }

    /// The length field.
    #[inline]
    pub fn length_field(&self) -> &FieldSpec {
        &self.inner.length
    }

    /// The type field.
    #[inline]
    pub fn type_field(&self) -> &FieldSpec {
        &self.inner.message_type
    }

    /// The extra fields, in the order they were declared.
    #[inline]
    pub fn extra_fields(&self) -> &[FieldSpec] {
        &self.inner.extra
    }

    /// The extra field with this name.
    pub fn field(&self, name: &str) -> Option<FieldId> {
        self.inner
            .extra
            .iter()
            .position(|f| &*f.name == name)
            .map(FieldId)
    }

    /// The description of an extra field.
    pub fn field_spec(&self, id: FieldId) -> Option<&FieldSpec> {
        self.inner.extra.get(id.0)
    }

    /// The byte order of the header fields.
    #[inline]
    pub fn byte_order(&self) -> ByteOrder {
        self.inner.byte_order
    }

    /// What is added to the length field's value to get the whole frame's length.
    pub fn length_adjustment(&self) -> i64 {
        self.inner.adjustment
    }

    /// The largest whole frame the length field can describe, saturated at `usize::MAX`.
    ///
    /// This is the default maximum for frames in both directions when it is at most 65,535
    /// (both presets); see [`FrameCodec`](crate::FrameCodec) for wider fields.
    pub fn max_frame_len(&self) -> usize {
        let max = self.inner.length.int.max_value() + i128::from(self.inner.adjustment);
        usize::try_from(max).unwrap_or(usize::MAX)
    }

    /// The whole-frame length declared by a raw length field value.
    #[inline]
    pub fn frame_len_of(&self, raw: i128) -> i128 {
        raw + i128::from(self.inner.adjustment)
    }

    /// The raw length field value for a whole frame of `frame_len` bytes.
    #[inline]
    pub fn raw_len_of(&self, frame_len: usize) -> i128 {
        frame_len as i128 - i128::from(self.inner.adjustment)
    }
}

impl Default for HeaderLayout {
    /// The ancestor's layout, [`HeaderLayout::ltprotocol`].
    fn default() -> Self {
        Self::ltprotocol()
    }
}

impl fmt::Debug for HeaderLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let mut s = f.debug_struct("HeaderLayout");
        if let Some(name) = inner.name {
            s.field("preset", &name);
        }
        s.field("header_len", &inner.header_len)
            .field("length", &(inner.length.offset, inner.length.int))
            .field(
                "message_type",
                &(inner.message_type.offset, inner.message_type.int),
            )
            .field("byte_order", &inner.byte_order)
            .field("adjustment", &inner.adjustment);
        for extra in &inner.extra {
            s.field(&extra.name, &(extra.offset, extra.int));
        }
        s.finish()
    }
}

fn spec(name: &str, offset: usize, int: Int, default: i128) -> FieldSpec {
    FieldSpec {
        name: Arc::from(name),
        offset,
        int,
        default,
    }
}
