//! [`HeaderLayoutBuilder`]: any fixed-size header, checked once when built.

use super::{
    ByteOrder, FieldSpec, HeaderLayout, Int, LayoutError, LayoutInner, LengthCounts,
    MAX_EXTRA_FIELDS, MAX_HEADER_LEN, spec,
};

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
    pub(super) fn new() -> Self {
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
