//! [`Int`], the width and sign of a header field, and [`ByteOrder`].

use std::fmt;

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
    /// Returns `None` when `bytes` is shorter than the width. Each arm is one load and, for
    /// big-endian, a byte swap: the header is read for every frame.
    #[inline]
    pub fn read(self, bytes: &[u8], order: ByteOrder) -> Option<i128> {
        Some(match self {
            Self::I8 => i8::from_be_bytes(big_endian_field(bytes, order)?).into(),
            Self::U8 => u8::from_be_bytes(big_endian_field(bytes, order)?).into(),
            Self::I16 => i16::from_be_bytes(big_endian_field(bytes, order)?).into(),
            Self::U16 => u16::from_be_bytes(big_endian_field(bytes, order)?).into(),
            Self::I32 => i32::from_be_bytes(big_endian_field(bytes, order)?).into(),
            Self::U32 => u32::from_be_bytes(big_endian_field(bytes, order)?).into(),
            Self::I64 => i64::from_be_bytes(big_endian_field(bytes, order)?).into(),
            Self::U64 => u64::from_be_bytes(big_endian_field(bytes, order)?).into(),
        })
    }

    /// Writes `value` in this kind's width into the first bytes of `out`.
    ///
    /// The caller checks [`holds`](Self::holds) first; only the low `width` bytes are written.
    /// Two's complement makes those bytes the field's bytes for either sign.
    /// Returns `None` when `out` is shorter than the width.
    #[inline]
    pub fn write(self, value: i128, out: &mut [u8], order: ByteOrder) -> Option<()> {
        // One fixed-width store per kind, as `read` loads: a width known only at run time
        // would cost a `memcpy` call per header field.
        match self.width() {
            1 => write_field::<1>(value, out, order),
            2 => write_field::<2>(value, out, order),
            4 => write_field::<4>(value, out, order),
            _ => write_field::<8>(value, out, order),
        }
    }
}

/// Writes the low `N` bytes of `value` into the first `N` bytes of `out` in `order`;
/// `None` when `out` is shorter.
#[inline]
fn write_field<const N: usize>(value: i128, out: &mut [u8], order: ByteOrder) -> Option<()> {
    let bits = value as u64;
    let wide = match order {
        ByteOrder::Big => bits.to_be_bytes(),
        ByteOrder::Little => bits.to_le_bytes(),
    };
    let field: &[u8; N] = match order {
        ByteOrder::Big => wide.last_chunk()?,
        ByteOrder::Little => wide.first_chunk()?,
    };
    out.first_chunk_mut::<N>()?.copy_from_slice(field);
    Some(())
}

/// The first `N` bytes of `bytes`, most significant first whatever the wire `order`;
/// `None` when `bytes` is shorter.
#[inline]
fn big_endian_field<const N: usize>(bytes: &[u8], order: ByteOrder) -> Option<[u8; N]> {
    let mut field: [u8; N] = bytes.get(..N)?.try_into().ok()?;
    if order == ByteOrder::Little {
        field.reverse();
    }
    Some(field)
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
}
