//! Header layouts: where the length, the type and any extra fields sit in a frame's header.
//!
//! A [`HeaderLayout`] is built once and shared (cloning it bumps a reference count). The two
//! presets cover the ancestor's format and OpenFlow; [`HeaderLayout::builder`] describes any
//! other fixed-size header.

use std::fmt;
use std::sync::Arc;

/// An integer field's width and sign, one per Python `struct` code the ancestor accepted.
///
/// | code | ours | | code | ours |
/// |---|---|---|---|---|
/// | `b` | [`Int::I8`] | | `B` | [`Int::U8`] |
/// | `h` | [`Int::I16`] | | `H` | [`Int::U16`] |
/// | `i`, `l` | [`Int::I32`] | | `I`, `L` | [`Int::U32`] |
/// | `q` | [`Int::I64`] | | `Q` | [`Int::U64`] |
///
/// (`l` and `L` are 4 bytes under Python's `>` prefix, not 8.)
///
/// ```
/// use ltprotocol::Int;
/// assert_eq!(Int::from_struct_code('H'), Some(Int::U16));
/// assert_eq!(Int::from_struct_code('l'), Some(Int::I32));
/// assert_eq!(Int::U16.width(), 2);
/// assert!(Int::I8.is_signed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Int {
    /// Signed, 1 byte (`b`).
    I8,
    /// Unsigned, 1 byte (`B`).
    U8,
    /// Signed, 2 bytes (`h`).
    I16,
    /// Unsigned, 2 bytes (`H`).
    U16,
    /// Signed, 4 bytes (`i`, `l`).
    I32,
    /// Unsigned, 4 bytes (`I`, `L`).
    U32,
    /// Signed, 8 bytes (`q`).
    I64,
    /// Unsigned, 8 bytes (`Q`).
    U64,
}

impl Int {
    /// Every integer kind, narrowest first.
    pub const ALL: [Self; 8] = [
        Self::I8,
        Self::U8,
        Self::I16,
        Self::U16,
        Self::I32,
        Self::U32,
        Self::I64,
        Self::U64,
    ];

    /// The kind for a Python `struct` code (`b B h H i I l L q Q`), as the ancestor's
    /// `LTProtocol(msgs, len_type, type_type)` took them; `None` for any other character.
    pub const fn from_struct_code(code: char) -> Option<Self> {
        Some(match code {
            'b' => Self::I8,
            'B' => Self::U8,
            'h' => Self::I16,
            'H' => Self::U16,
            'i' | 'l' => Self::I32,
            'I' | 'L' => Self::U32,
            'q' => Self::I64,
            'Q' => Self::U64,
            _ => return None,
        })
    }

    /// The width in bytes: 1, 2, 4 or 8.
    #[inline]
    pub const fn width(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 => 4,
            Self::I64 | Self::U64 => 8,
        }
    }

    /// Whether values of this kind can be negative.
    pub const fn is_signed(self) -> bool {
        matches!(self, Self::I8 | Self::I16 | Self::I32 | Self::I64)
    }

    /// The smallest value this kind holds.
    #[inline]
    pub const fn min_value(self) -> i128 {
        match self {
            Self::I8 => i8::MIN as i128,
            Self::I16 => i16::MIN as i128,
            Self::I32 => i32::MIN as i128,
            Self::I64 => i64::MIN as i128,
            Self::U8 | Self::U16 | Self::U32 | Self::U64 => 0,
        }
    }

    /// The largest value this kind holds.
    #[inline]
    pub const fn max_value(self) -> i128 {
        match self {
            Self::I8 => i8::MAX as i128,
            Self::U8 => u8::MAX as i128,
            Self::I16 => i16::MAX as i128,
            Self::U16 => u16::MAX as i128,
            Self::I32 => i32::MAX as i128,
            Self::U32 => u32::MAX as i128,
            Self::I64 => i64::MAX as i128,
            Self::U64 => u64::MAX as i128,
        }
    }

    /// Whether `value` fits this kind.
    #[inline]
    pub const fn holds(self, value: i128) -> bool {
        value >= self.min_value() && value <= self.max_value()
    }

    /// The lower-case Rust name of the kind (`"u16"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::I16 => "i16",
            Self::U16 => "u16",
            Self::I32 => "i32",
            Self::U32 => "u32",
            Self::I64 => "i64",
            Self::U64 => "u64",
        }
    }

    /// Reads a value of this kind from the first [`width`](Self::width) bytes of `bytes`.
    ///
    /// Returns `None` when `bytes` is shorter than the width.
    #[inline]
    pub fn read(self, bytes: &[u8], order: ByteOrder) -> Option<i128> {
        /// One fixed-width read: the compiler turns it into a load and, for big-endian, a
        /// byte swap (the header is read for every frame).
        macro_rules! fixed {
            ($t:ty) => {{
                let raw = bytes.get(..size_of::<$t>())?.try_into().ok()?;
                i128::from(match order {
                    ByteOrder::Big => <$t>::from_be_bytes(raw),
                    ByteOrder::Little => <$t>::from_le_bytes(raw),
                })
            }};
        }
        Some(match self {
            Self::I8 => fixed!(i8),
            Self::U8 => fixed!(u8),
            Self::I16 => fixed!(i16),
            Self::U16 => fixed!(u16),
            Self::I32 => fixed!(i32),
            Self::U32 => fixed!(u32),
            Self::I64 => fixed!(i64),
            Self::U64 => fixed!(u64),
        })
    }

    /// Writes `value` in this kind's width into the first bytes of `out`.
    ///
    /// The caller checks [`holds`](Self::holds) first; only the low `width` bytes are written.
    /// Returns `None` when `out` is shorter than the width.
    #[inline]
    pub fn write(self, value: i128, out: &mut [u8], order: ByteOrder) -> Option<()> {
        /// One fixed-width store, as `read`. Two's complement: the low bytes of an i128 are
        /// the field's bytes for either sign, so the cast keeps exactly them.
        macro_rules! fixed {
            ($t:ty) => {{
                let bytes = match order {
                    ByteOrder::Big => (value as $t).to_be_bytes(),
                    ByteOrder::Little => (value as $t).to_le_bytes(),
                };
                out.get_mut(..size_of::<$t>())?.copy_from_slice(&bytes);
            }};
        }
        match self {
            Self::I8 | Self::U8 => fixed!(u8),
            Self::I16 | Self::U16 => fixed!(u16),
            Self::I32 | Self::U32 => fixed!(u32),
            Self::I64 | Self::U64 => fixed!(u64),
        }
        Some(())
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The byte order of every header field (and, by default, of message body integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ByteOrder {
    /// Most significant byte first, network order. This is the default, as in the ancestor.
    #[default]
    Big,
    /// Least significant byte first.
    Little,
}

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

/// Builds a [`HeaderLayout`]; every check happens in [`build`](Self::build), never in a setter.
///
/// Starts from the ancestor's layout: length `u16` at 0, type `u8` at 2, big-endian, the
/// length counting the whole frame, the header ending after its last field.
///
/// ```
/// use ltprotocol::{HeaderLayout, Int, LayoutError};
/// let err = HeaderLayout::builder().message_type(1, Int::U8).build().unwrap_err();
/// assert!(matches!(err, LayoutError::Overlap { .. }));
/// ```
#[derive(Debug, Clone)]
pub struct HeaderLayoutBuilder {
    length: (usize, Int),
    message_type: (usize, Int),
    extra: Vec<FieldSpec>,
    header_len: Option<usize>,
    byte_order: ByteOrder,
    length_counts: LengthCounts,
    bad_width: Option<(String, usize)>,
}

impl HeaderLayoutBuilder {
    fn new() -> Self {
        Self {
            length: (0, Int::U16),
            message_type: (2, Int::U8),
            extra: Vec::new(),
            header_len: None,
            byte_order: ByteOrder::Big,
            length_counts: LengthCounts::Frame,
            bad_width: None,
        }
    }

    /// The length field's offset and kind. Default: offset 0, [`Int::U16`].
    pub fn length(&mut self, offset: usize, int: Int) -> &mut Self {
        self.length = (offset, int);
        self
    }

    /// The type field's offset and kind. Default: offset 2, [`Int::U8`].
    pub fn message_type(&mut self, offset: usize, int: Int) -> &mut Self {
        self.message_type = (offset, int);
        self
    }

    /// Like [`length`](Self::length), with the width in bytes and the sign, for layouts read
    /// from configuration; a width other than 1, 2, 4 or 8 fails in [`build`](Self::build).
    pub fn length_width(&mut self, offset: usize, width: usize, signed: bool) -> &mut Self {
        if let Some(int) = self.int_of("length", width, signed) {
            self.length = (offset, int);
        }
        self
    }

    /// Like [`message_type`](Self::message_type), with the width in bytes and the sign.
    pub fn message_type_width(&mut self, offset: usize, width: usize, signed: bool) -> &mut Self {
        if let Some(int) = self.int_of("type", width, signed) {
            self.message_type = (offset, int);
        }
        self
    }

    /// Adds an extra field (neither length nor type), read from every frame and written on
    /// every send; its default value is 0. A layout has at most [`MAX_EXTRA_FIELDS`]; more
    /// fail in [`build`](Self::build).
    pub fn field(&mut self, name: &str, offset: usize, int: Int) -> &mut Self {
        self.extra.push(spec(name, offset, int, 0));
        self
    }

    /// Adds an extra field with the value sent when the application gives none (OpenFlow's
    /// `version`, say).
    pub fn field_with_default(
        &mut self,
        name: &str,
        offset: usize,
        int: Int,
        default: i128,
    ) -> &mut Self {
        self.extra.push(spec(name, offset, int, default));
        self
    }

    /// The header size. Default: one past the last byte of the last field; a larger value
    /// leaves reserved bytes (written as zero, ignored when read).
    pub fn header_len(&mut self, header_len: usize) -> &mut Self {
        self.header_len = Some(header_len);
        self
    }

    /// The byte order of every header field. Default: [`ByteOrder::Big`].
    pub fn byte_order(&mut self, order: ByteOrder) -> &mut Self {
        self.byte_order = order;
        self
    }

    /// What the length field counts. Default: [`LengthCounts::Frame`], the whole message.
    pub fn length_counts(&mut self, counts: LengthCounts) -> &mut Self {
        self.length_counts = counts;
        self
    }

    /// Checks the layout and builds it.
    ///
    /// # Errors
    ///
    /// A [`LayoutError`] when there are more than [`MAX_EXTRA_FIELDS`] extra fields, a width
    /// is not 1, 2, 4 or 8, a default does not fit its field, an offset is too large for the
    /// field to end within `usize`, a field ends past an explicit header size, the header is
    /// longer than [`MAX_HEADER_LEN`], two fields share a name or overlap, or the adjustment
    /// leaves no legal length. The checks run in that order: those that cost one pass over
    /// the fields come before the one that compares pairs of fields.
    pub fn build(&self) -> Result<HeaderLayout, LayoutError> {
        if self.extra.len() > MAX_EXTRA_FIELDS {
            return Err(LayoutError::TooManyFields {
                count: self.extra.len(),
                max: MAX_EXTRA_FIELDS,
            });
        }
        if let Some((field, width)) = &self.bad_width {
            return Err(LayoutError::InvalidWidth {
                field: field.clone(),
                width: *width,
            });
        }
        let length = spec("length", self.length.0, self.length.1, 0);
        let message_type = spec("type", self.message_type.0, self.message_type.1, 0);
        let mut all: Vec<&FieldSpec> = vec![&length, &message_type];
        for extra in &self.extra {
            if extra.name() == "length" || extra.name() == "type" {
                return Err(LayoutError::DuplicateName {
                    name: extra.name().to_owned(),
                });
            }
            if !extra.int.holds(extra.default) {
                return Err(LayoutError::DefaultOutOfRange {
                    field: extra.name().to_owned(),
                    value: extra.default,
                    int: extra.int,
                });
            }
            all.push(extra);
        }
        // Every `end()` below is then free of overflow.
        if let Some(far) = all
            .iter()
            .find(|f| f.offset.checked_add(f.int.width()).is_none())
        {
            return Err(LayoutError::OffsetOverflow {
                field: far.name().to_owned(),
                offset: far.offset,
            });
        }
        let fields_end = all.iter().map(|f| f.end()).max().unwrap_or(0);
        let header_len = match self.header_len {
            Some(header_len) => {
                if let Some(past) = all.iter().find(|f| f.end() > header_len) {
                    return Err(LayoutError::FieldPastHeader {
                        field: past.name().to_owned(),
                        end: past.end(),
                        header_len,
                    });
                }
                header_len
            }
            None => fields_end,
        };
        if header_len > MAX_HEADER_LEN {
            return Err(LayoutError::HeaderTooLong {
                header_len,
                max: MAX_HEADER_LEN,
            });
        }
        // The one check over pairs, last: at most MAX_EXTRA_FIELDS + 2 fields, so a few
        // thousand comparisons.
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                if a.name == b.name {
                    return Err(LayoutError::DuplicateName {
                        name: a.name().to_owned(),
                    });
                }
                if a.offset < b.end() && b.offset < a.end() {
                    return Err(LayoutError::Overlap {
                        first: a.name().to_owned(),
                        first_start: a.offset,
                        first_end: a.end(),
                        second: b.name().to_owned(),
                        second_start: b.offset,
                        second_end: b.end(),
                    });
                }
            }
        }
        let adjustment = match self.length_counts {
            LengthCounts::Frame => 0,
            LengthCounts::Body => header_len as i64,
            LengthCounts::Adjusted(a) => a,
        };
        if length.int.max_value() + i128::from(adjustment) < header_len as i128 {
            return Err(LayoutError::NoValidLength {
                adjustment,
                int: length.int,
                header_len,
            });
        }
        Ok(HeaderLayout::from_inner(LayoutInner {
            length,
            message_type,
            extra: self.extra.clone(),
            header_len,
            byte_order: self.byte_order,
            adjustment,
            name: None,
        }))
    }

    fn int_of(&mut self, field: &str, width: usize, signed: bool) -> Option<Int> {
        let int = match (width, signed) {
            (1, true) => Int::I8,
            (1, false) => Int::U8,
            (2, true) => Int::I16,
            (2, false) => Int::U16,
            (4, true) => Int::I32,
            (4, false) => Int::U32,
            (8, true) => Int::I64,
            (8, false) => Int::U64,
            _ => {
                self.bad_width.get_or_insert((field.to_owned(), width));
                return None;
            }
        };
        Some(int)
    }
}

impl Default for HeaderLayoutBuilder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_round_trips_every_kind_at_its_extremes() {
        for int in Int::ALL {
            for value in [int.min_value(), int.max_value(), 0, 1] {
                for order in [ByteOrder::Big, ByteOrder::Little] {
                    let mut buf = [0u8; 8];
                    assert_eq!(int.write(value, &mut buf, order), Some(()));
                    assert_eq!(
                        int.read(&buf, order),
                        Some(value),
                        "{int} {value} {order:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn negative_values_read_back_negative() {
        assert_eq!(Int::I16.read(&[0xff, 0xfd], ByteOrder::Big), Some(-3));
        assert_eq!(Int::U16.read(&[0xff, 0xfd], ByteOrder::Big), Some(65_533));
        assert_eq!(
            Int::I32.read(&[0xfd, 0xff, 0xff, 0xff], ByteOrder::Little),
            Some(-3)
        );
    }

    #[test]
    fn struct_codes_match_python_standard_sizes() {
        let codes = "bBhHiIlLqQ";
        let widths = [1, 1, 2, 2, 4, 4, 4, 4, 8, 8];
        for (code, width) in codes.chars().zip(widths) {
            let int = Int::from_struct_code(code);
            assert_eq!(int.map(Int::width), Some(width), "{code}");
            assert_eq!(int.map(Int::is_signed), Some(code.is_ascii_lowercase()));
        }
        assert_eq!(Int::from_struct_code('x'), None);
    }

    #[test]
    fn builder_rejects_bad_layouts_with_reasons() {
        let overlap = HeaderLayout::builder().message_type(1, Int::U8).build();
        assert!(matches!(overlap, Err(LayoutError::Overlap { .. })));
        let width = HeaderLayout::builder().length_width(0, 3, false).build();
        assert!(matches!(
            width,
            Err(LayoutError::InvalidWidth { width: 3, .. })
        ));
        let short = HeaderLayout::builder().header_len(2).build();
        assert!(matches!(
            short,
            Err(LayoutError::FieldPastHeader {
                end: 3,
                header_len: 2,
                ..
            })
        ));
        let dup = HeaderLayout::builder()
            .field("seq", 3, Int::U8)
            .field("seq", 4, Int::U8)
            .build();
        assert!(matches!(dup, Err(LayoutError::DuplicateName { .. })));
        let default = HeaderLayout::builder()
            .field_with_default("v", 3, Int::U8, 256)
            .build();
        assert!(matches!(
            default,
            Err(LayoutError::DefaultOutOfRange { value: 256, .. })
        ));
        let none = HeaderLayout::builder()
            .length(0, Int::U8)
            .message_type(1, Int::U8)
            .length_counts(LengthCounts::Adjusted(-300))
            .build();
        assert!(matches!(none, Err(LayoutError::NoValidLength { .. })));
    }

    #[test]
    fn builder_rejects_offsets_whose_end_overflows() {
        // Found by the `decode_stream` fuzz target: this used to overflow in `FieldSpec::end`.
        let far = HeaderLayout::builder()
            .length(usize::MAX - 1, Int::U16)
            .build();
        assert!(matches!(
            far,
            Err(LayoutError::OffsetOverflow { offset, .. }) if offset == usize::MAX - 1
        ));
        let extra = HeaderLayout::builder()
            .field("seq", usize::MAX - 3, Int::U64)
            .build();
        assert!(matches!(extra, Err(LayoutError::OffsetOverflow { .. })));
    }

    #[test]
    fn builder_rejects_headers_past_the_maximum() {
        let far = HeaderLayout::builder()
            .field("far", MAX_HEADER_LEN, Int::U8)
            .build();
        assert!(matches!(
            far,
            Err(LayoutError::HeaderTooLong { header_len, max: MAX_HEADER_LEN })
                if header_len == MAX_HEADER_LEN + 1
        ));
        let padded = HeaderLayout::builder()
            .length(0, Int::U32)
            .message_type(4, Int::U8)
            .header_len(MAX_HEADER_LEN)
            .build();
        assert!(padded.is_ok());
    }

    #[test]
    fn body_counting_adjusts_by_header_size() {
        let layout = HeaderLayout::builder()
            .length_counts(LengthCounts::Body)
            .build()
            .unwrap_or_default();
        assert_eq!(layout.length_adjustment(), 3);
        assert_eq!(layout.max_frame_len(), 65_538);
        assert_eq!(layout.raw_len_of(10), 7);
    }
}
