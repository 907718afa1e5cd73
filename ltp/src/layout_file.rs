//! Header layouts from the command line: a preset name or a TOML file, turned into a
//! [`HeaderLayout`].
//!
//! `--layout ltprotocol` (the default) and `--layout openflow` are the library's presets; any
//! other value is a TOML file. This one describes the same header as the `openflow` preset:
//!
//! ```toml
//! byte_order = "big"        # or "little"; default "big"
//! length_counts = "frame"   # "frame" (header included), "body", or an integer adjustment
//!                           # (whole frame = length field + adjustment); default "frame"
//! header_len = 8            # optional; default: one past the last field's last byte
//!
//! [length]                  # the length field; default: offset 0, u16
//! offset = 2
//! type = "u16"              # u8 i8 u16 i16 u32 i32 u64 i64, or instead
//!                           # struct = "H", a Python struct code: b B h H i I l L q Q
//!
//! [type]                    # the type field; default: offset 2, u8
//! offset = 1
//! type = "u8"
//!
//! [[field]]                 # up to 64 extra fields, each shown and set by name
//! name = "version"
//! offset = 0
//! type = "u8"
//! default = 4               # sent when a message gives no value; default 0
//!
//! [[field]]
//! name = "xid"
//! offset = 4
//! type = "u32"
//! ```
//!
//! A field gives exactly one of `type` and `struct`. Offsets count bytes from the start of the
//! frame; the header is at most 65,536 bytes and has at most 64 extra fields
//! ([`MAX_HEADER_LEN`](ltprotocol::MAX_HEADER_LEN),
//! [`MAX_EXTRA_FIELDS`](ltprotocol::MAX_EXTRA_FIELDS)). Extra field names must differ from `length`, `type` and the keys of the JSON lines
//! (`event`, `conn`, `body_hex`, `msg`, `fields`, `decode_error`). Every problem, including an
//! unknown key, is reported as `FILE:LINE: PROBLEM`; `ltp/examples-data/layouts/` has samples.

use serde::Deserialize;
use toml::Spanned;

use ltprotocol::{ByteOrder, HeaderLayout, HeaderLayoutBuilder, Int, LayoutError, LengthCounts};

use crate::error::ConfigError;

/// Keys of [`message_event`](crate::json::message_event)'s objects and of input lines that an
/// extra header field may not be named after (`length` and `type` the library refuses itself).
pub const RESERVED_FIELD_NAMES: [&str; 7] = [
    "event",
    "conn",
    "ts",
    "body_hex",
    "msg",
    "fields",
    "decode_error",
];

/// The layout named by `--layout`: `ltprotocol`, `openflow`, or the path of a TOML file.
///
/// # Errors
///
/// [`ConfigError::Unreadable`] for a file that cannot be read, [`ConfigError::File`] for one
/// that is not a valid layout, [`ConfigError::Invalid`] for a name that is neither a preset
/// nor an existing file.
///
/// ```
/// use ltp::layout_file::load_layout;
/// assert_eq!(load_layout("openflow")?.header_len(), 8);
/// assert!(load_layout("nonesuch").is_err());
/// # Ok::<(), ltp::ConfigError>(())
/// ```
pub fn load_layout(spec: &str) -> Result<HeaderLayout, ConfigError> {
    match spec {
        "ltprotocol" => Ok(HeaderLayout::ltprotocol()),
        "openflow" => Ok(HeaderLayout::openflow()),
        path => {
            let text = read_config(path, "layout", "ltprotocol, openflow")?;
            parse_layout_toml(&text, path)
        }
    }
}

/// Builds a layout from the TOML text of `file` (named in errors only).
///
/// # Errors
///
/// [`ConfigError::File`] with the line of the problem: a TOML syntax error, an unknown key, a
/// missing or ill-typed value, or a layout the library refuses ([`LayoutError`]: overlapping
/// fields, a field past `header_len`, a default that does not fit, …).
///
/// ```
/// use ltp::layout_file::parse_layout_toml;
/// let text = "[length]\noffset = 0\ntype = \"u32\"\n[type]\noffset = 4\nstruct = \"h\"\n";
/// assert_eq!(parse_layout_toml(text, "ancestor.toml")?.header_len(), 6);
/// let err = parse_layout_toml("[type]\noffset = 1\ntype = \"u8\"\n", "bad.toml").unwrap_err();
/// assert!(err.to_string().starts_with("bad.toml:1: field `length` (bytes 0..2) overlaps"));
/// # Ok::<(), ltp::ConfigError>(())
/// ```
pub fn parse_layout_toml(text: &str, file: &str) -> Result<HeaderLayout, ConfigError> {
    let doc: LayoutDoc =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    let at = |span: std::ops::Range<usize>, problem: String| {
        ConfigError::at(file, text, span.start, problem)
    };

    let mut builder = HeaderLayout::builder();
    if let Some(order) = doc.byte_order {
        builder.byte_order(order.into());
    }
    if let Some(counts) = &doc.length_counts {
        builder.length_counts(length_counts(counts).map_err(|p| at(counts.span(), p))?);
    }
    if let Some(header_len) = doc.header_len {
        builder.header_len(header_len);
    }
    if let Some(length) = &doc.length {
        let (offset, int) =
            int_field(length.get_ref(), "length").map_err(|p| at(length.span(), p))?;
        builder.length(offset, int);
    }
    if let Some(message_type) = &doc.message_type {
        let (offset, int) =
            int_field(message_type.get_ref(), "type").map_err(|p| at(message_type.span(), p))?;
        builder.message_type(offset, int);
    }
    for extra in &doc.field {
        let spec = extra.get_ref();
        let name = spec.name.get_ref();
        if RESERVED_FIELD_NAMES.contains(&name.as_str()) {
            return Err(at(
                spec.name.span(),
                format!("field name `{name}` is reserved for the JSON lines"),
            ));
        }
        let shape = IntField {
            offset: spec.offset,
            int: spec.int.clone(),
            struct_code: spec.struct_code.clone(),
        };
        let (offset, int) = int_field(&shape, name).map_err(|p| at(extra.span(), p))?;
        builder.field_with_default(name, offset, int, i128::from(spec.default));
    }
    build(&builder, &doc).map_err(|(span, problem)| ConfigError::at_span(file, text, span, problem))
}

/// Reads a configuration file; a bare word that names no file is reported as an unknown
/// preset of `what` rather than as a missing file.
pub(crate) fn read_config(path: &str, what: &str, presets: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|err| {
        let bare_word = !path.contains(['/', '\\', '.']);
        if err.kind() == std::io::ErrorKind::NotFound && bare_word {
            ConfigError::Invalid(format!(
                "unknown {what} `{path}`: expected {presets} or a TOML file"
            ))
        } else {
            ConfigError::Unreadable {
                file: path.to_owned(),
                reason: err.to_string(),
            }
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutDoc {
    byte_order: Option<OrderName>,
    length_counts: Option<Spanned<toml::Value>>,
    header_len: Option<usize>,
    length: Option<Spanned<IntField>>,
    #[serde(rename = "type")]
    message_type: Option<Spanned<IntField>>,
    #[serde(default)]
    field: Vec<Spanned<ExtraField>>,
}

/// A byte order as written in TOML files: `"big"` or `"little"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OrderName {
    Big,
    Little,
}

impl From<OrderName> for ByteOrder {
    fn from(order: OrderName) -> Self {
        match order {
            OrderName::Big => Self::Big,
            OrderName::Little => Self::Little,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntField {
    offset: usize,
    #[serde(rename = "type")]
    int: Option<Spanned<String>>,
    #[serde(rename = "struct")]
    struct_code: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraField {
    name: Spanned<String>,
    offset: usize,
    #[serde(rename = "type")]
    int: Option<Spanned<String>>,
    #[serde(rename = "struct")]
    struct_code: Option<Spanned<String>>,
    #[serde(default)]
    default: i64,
}

/// The integer kind named by a Rust-style name (`"u16"`).
pub(crate) fn int_named(name: &str) -> Option<Int> {
    Int::ALL.into_iter().find(|int| int.name() == name)
}

fn int_field(field: &IntField, name: &str) -> Result<(usize, Int), String> {
    let int = match (&field.int, &field.struct_code) {
        (Some(int), None) => int_named(int.get_ref()).ok_or_else(|| {
            format!(
                "field `{name}`: unknown type `{}` (expected u8, i8, u16, i16, u32, i32, u64 or i64)",
                int.get_ref()
            )
        })?,
        (None, Some(code)) => {
            let mut chars = code.get_ref().chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Int::from_struct_code(c),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "field `{name}`: unknown struct code `{}` (expected one of b B h H i I l L q Q)",
                    code.get_ref()
                )
            })?
        }
        (Some(_), Some(_)) => {
            return Err(format!("field `{name}`: give `type` or `struct`, not both"));
        }
        (None, None) => return Err(format!("field `{name}`: missing `type` (or `struct`)")),
    };
    Ok((field.offset, int))
}

fn length_counts(value: &Spanned<toml::Value>) -> Result<LengthCounts, String> {
    match value.get_ref() {
        toml::Value::String(s) if s == "frame" => Ok(LengthCounts::Frame),
        toml::Value::String(s) if s == "body" => Ok(LengthCounts::Body),
        toml::Value::Integer(adjustment) => Ok(LengthCounts::Adjusted(*adjustment)),
        other => Err(format!(
            "length_counts: expected \"frame\", \"body\" or an integer adjustment, got {other}"
        )),
    }
}

/// Builds the layout; on failure, the span of the table the [`LayoutError`] is about.
fn build(
    builder: &HeaderLayoutBuilder,
    doc: &LayoutDoc,
) -> Result<HeaderLayout, (Option<std::ops::Range<usize>>, String)> {
    builder.build().map_err(|err| {
        let span_of = |name: &str| match name {
            "length" => doc.length.as_ref().map(Spanned::span),
            "type" => doc.message_type.as_ref().map(Spanned::span),
            // The last field of that name: for a duplicate, the second declaration.
            _ => doc
                .field
                .iter()
                .rev()
                .find(|f| f.get_ref().name.get_ref() == name)
                .map(Spanned::span),
        };
        let span = match &err {
            LayoutError::Overlap { second, .. } => span_of(second),
            LayoutError::FieldPastHeader { field, .. }
            | LayoutError::DefaultOutOfRange { field, .. }
            | LayoutError::InvalidWidth { field, .. } => span_of(field),
            LayoutError::DuplicateName { name } => span_of(name),
            // The first field past the maximum.
            LayoutError::TooManyFields { max, .. } => doc.field.get(*max).map(Spanned::span),
            LayoutError::NoValidLength { .. } => doc
                .length_counts
                .as_ref()
                .map(Spanned::span)
                .or_else(|| doc.length.as_ref().map(Spanned::span)),
            _ => None,
        };
        (span, err.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first ```toml block of this file's module documentation.
    fn doc_example() -> String {
        let source = include_str!("layout_file.rs");
        let block = source
            .lines()
            .map_while(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .skip_while(|l| *l != "```toml")
            .skip(1)
            .take_while(|l| *l != "```");
        block.map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn module_doc_example_is_the_openflow_preset() {
        let layout = parse_layout_toml(&doc_example(), "doc").unwrap();
        let preset = HeaderLayout::openflow();
        assert_eq!(layout.header_len(), preset.header_len());
        assert_eq!(layout.length_field(), preset.length_field());
        assert_eq!(layout.type_field(), preset.type_field());
        assert_eq!(layout.extra_fields(), preset.extra_fields());
    }

    #[test]
    fn struct_codes_and_names_agree() {
        for int in Int::ALL {
            assert_eq!(int_named(int.name()), Some(int));
        }
        assert_eq!(int_named("u24"), None);
    }

    #[test]
    fn length_counts_accepts_words_and_integers() {
        let parse = |v: toml::Value| length_counts(&Spanned::new(0..0, v));
        assert_eq!(parse("body".into()), Ok(LengthCounts::Body));
        assert_eq!(parse("frame".into()), Ok(LengthCounts::Frame));
        assert_eq!(
            parse(toml::Value::Integer(-4)),
            Ok(LengthCounts::Adjusted(-4))
        );
        assert!(parse("header".into()).is_err());
    }
}
