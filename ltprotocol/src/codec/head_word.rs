//! [`HeadWord`]: a header's length and type read from one 8-byte load.

use crate::frame::MessageType;
use crate::layout::{ByteOrder, FieldSpec, HeaderLayout, Int};

/// Reads a header's length and type fields from one 8-byte load: a pair of shifts per field
/// instead of a match on each field's width and byte order for every frame. Made once per
/// codec for layouts whose length and type fields both lie in the first 8 bytes (both
/// presets). It only answers the usual case: with fewer than 8 bytes at hand, or a length it
/// does not accept, the general read decides and explains.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeadWord {
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
    pub(super) fn new(layout: &HeaderLayout) -> Option<Self> {
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
    pub(super) fn read(&self, rest: &[u8], max_inbound: usize) -> Option<(usize, MessageType)> {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::codec::FrameCodec;
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
