//! `ltp dissector`: a Wireshark Lua dissector written from a header layout and a schema.
//!
//! [`lua_dissector`] returns the script's text; load it with `wireshark -X lua_script:FILE`
//! (or `tshark`), or copy it into Wireshark's personal Lua plugins folder. The dissector:
//!
//! * shows the header's `length`, `type` (with the schema's message names as its value
//!   string) and extra fields (`xid`…), each in the layout's byte order;
//! * shows a known message's body fields by name and type as the schema declares them; a body
//!   that does not fit its fields (too short, bytes left after the last field, a bool other
//!   than 0 or 1, a string that is not UTF-8) gets an expert info (group *Malformed*, severity *Error*) and the bytes it
//!   could not place as `<proto>.body`, never a Lua error; an unknown type's body is shown as
//!   `<proto>.body` with a *Note*;
//! * reassembles messages split across TCP segments (`dissect_tcp_pdus`), reading the
//!   length field at its offset, width, sign and byte order and adding the layout's
//!   adjustment (whole frame, body only, or any other);
//! * registers itself for "Decode As…" on `tcp.port`, and on the `--port`s given.
//!
//! Display-filter names ([`FilterNames`] computes them): `<proto>.length`, `<proto>.type`,
//! `<proto>.msg` (the message's name), `<proto>.<header field>` for each extra header field,
//! `<proto>.<message>.<field>` for each body field, `<proto>.body` for undecoded bytes, and
//! `<proto>.expert.{bad_length,short_body,trailing_bytes,bad_bool,bad_utf8,unknown_type}` for the
//! expert infos. Every part is lowercased, with any character other than `a-z`, `0-9` and
//! `_` turned into `_`; a name that collides with one before it gets `_2`, `_3`…
//!
//! Names from a schema file are user input: they reach the script only inside Lua string
//! literals escaped by [`lua_string`], so no name can end a string or inject code.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ltprotocol::{ByteOrder, FieldSpec, HeaderLayout, Int};

use crate::error::ConfigError;
use crate::schema::{FieldKind, Schema};

/// The largest whole frame the dissector accepts: a length field declaring more (or less than
/// the header) is flagged as a bad length, and the rest of the segment shown as bytes.
pub const MAX_PDU_LEN: u32 = i32::MAX as u32;

/// What `ltp dissector` writes: the protocol's name and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DissectorOptions {
    /// The protocol's name: the display filter prefix, `[a-z][a-z0-9_]*` (see
    /// [`check_proto_name`]).
    pub name: String,
    /// TCP ports the dissector registers itself on (it is always under "Decode As…").
    pub ports: Vec<u16>,
}

/// The default protocol name for a schema or layout named `spec` on the command line:
/// `ltp_` and its file stem (`demo` → `ltp_demo`, `schemas/telemetry.toml` →
/// `ltp_telemetry`), made a valid filter name.
///
/// ```
/// assert_eq!(ltp::dissector::default_proto_name("demo"), "ltp_demo");
/// assert_eq!(ltp::dissector::default_proto_name("a/My-Proto.toml"), "ltp_my_proto");
/// ```
pub fn default_proto_name(spec: &str) -> String {
    let stem = std::path::Path::new(spec)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("ltp_{}", filter_part(&stem))
}

/// Checks a `--name`: a lowercase letter, then lowercase letters, digits and `_`, at most 64
/// characters (Wireshark's rule for protocol filter names, made stricter so that it is also
/// a plain word in every context).
///
/// # Errors
///
/// [`ConfigError::Invalid`] saying what is wrong with the name.
pub fn check_proto_name(name: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "--name {}: a protocol name is a lowercase letter followed by lowercase letters, \
             digits or `_`, at most 64 characters",
            ltprotocol::escape_controls(name)
        )))
    }
}

/// A Lua string literal holding `text` exactly: double-quoted, with `\`, `"` and every byte
/// outside printable ASCII written as a `\ddd` escape, so that the literal is one line of
/// plain ASCII whatever `text` holds.
///
/// ```
/// assert_eq!(ltp::dissector::lua_string("a\"b]]\n"), r#""a\034b]]\010""#);
/// ```
pub fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\' {
            out.push(char::from(byte));
        } else {
            // Three digits, so that a digit after the escape cannot extend it.
            let _ = write!(out, "\\{byte:03}");
        }
    }
    out.push('"');
    out
}

/// One part of a filter name: lowercase, with anything but `a-z0-9_` made `_`.
fn filter_part(text: &str) -> String {
    let part: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if part.is_empty() {
        "_".to_owned()
    } else {
        part
    }
}

/// The display-filter names of a protocol's fields, each unique.
#[derive(Debug)]
pub struct FilterNames {
    proto: String,
    used: BTreeSet<String>,
}

impl FilterNames {
    /// Names under `proto` (already checked by [`check_proto_name`]).
    pub fn new(proto: &str) -> Self {
        Self {
            proto: proto.to_owned(),
            used: BTreeSet::new(),
        }
    }

    /// A unique name `<proto>.<parts joined by .>`, each part made a filter part; `_2`, `_3`…
    /// is appended to one that is taken.
    pub fn claim(&mut self, parts: &[&str]) -> String {
        let mut base = self.proto.clone();
        for part in parts {
            base.push('.');
            base.push_str(&filter_part(part));
        }
        let mut name = base.clone();
        let mut n = 2;
        while !self.used.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        name
    }
}

/// The Lua expression reading an integer of kind `int` at `offset` of `tvb`, as a Lua
/// number (64-bit values through `UInt64`/`Int64`, exact up to 2^53).
fn read_int_expr(offset: &str, int: Int, order: ByteOrder) -> String {
    let le = if order == ByteOrder::Little {
        "le_"
    } else {
        ""
    };
    match (int.width(), int.is_signed()) {
        (8, false) => format!("tvb({offset}, 8):{le}uint64():tonumber()"),
        (8, true) => format!("tvb({offset}, 8):{le}int64():tonumber()"),
        (width, false) => format!("tvb({offset}, {width}):{le}uint()"),
        (width, true) => format!("tvb({offset}, {width}):{le}int()"),
    }
}

/// The Lua expression reading the type field as a decimal string (the key of `MESSAGES`).
fn type_key_expr(field: &FieldSpec, order: ByteOrder) -> String {
    let le = if order == ByteOrder::Little {
        "le_"
    } else {
        ""
    };
    let offset = field.offset();
    let width = field.int().width();
    match (width, field.int().is_signed()) {
        (8, false) => format!("tostring(tvb({offset}, 8):{le}uint64())"),
        (8, true) => format!("tostring(tvb({offset}, 8):{le}int64())"),
        (_, false) => format!("string.format(\"%d\", tvb({offset}, {width}):{le}uint())"),
        (_, true) => format!("string.format(\"%d\", tvb({offset}, {width}):{le}int())"),
    }
}

/// The `ProtoField` constructor for an integer kind.
fn int_constructor(int: Int) -> &'static str {
    match int {
        Int::I8 => "ProtoField.int8",
        Int::U8 => "ProtoField.uint8",
        Int::I16 => "ProtoField.int16",
        Int::U16 => "ProtoField.uint16",
        Int::I32 => "ProtoField.int32",
        Int::U32 => "ProtoField.uint32",
        Int::I64 => "ProtoField.int64",
        Int::U64 => "ProtoField.uint64",
    }
}

/// A `ProtoField` declaration for a body field of `kind`.
fn body_field_decl(abbrev: &str, label: &str, kind: FieldKind) -> String {
    let abbrev = lua_string(abbrev);
    let label = lua_string(label);
    match kind {
        FieldKind::Int(int) => format!("{}({abbrev}, {label}, base.DEC)", int_constructor(int)),
        FieldKind::F32 => format!("ProtoField.float({abbrev}, {label})"),
        FieldKind::F64 => format!("ProtoField.double({abbrev}, {label})"),
        FieldKind::Bool => {
            format!(
                "ProtoField.uint8({abbrev}, {label}, base.DEC, {{ [0] = \"false\", [1] = \"true\" }})"
            )
        }
        FieldKind::String => format!("ProtoField.string({abbrev}, {label}, base.UNICODE)"),
        FieldKind::Bytes(_) | FieldKind::Pad(_) | FieldKind::RestBytes => {
            format!("ProtoField.bytes({abbrev}, {label})")
        }
    }
}

/// The fixed part of every dissector, after the generated tables and functions it uses.
const RUNTIME: &str = include_str!("dissector_runtime.lua");

/// The expert infos: key, summary, group, severity.
const EXPERTS: [(&str, &str, &str, &str); 6] = [
    ("bad_length", "Bad length", "MALFORMED", "ERROR"),
    (
        "short_body",
        "Body too short for its fields",
        "MALFORMED",
        "ERROR",
    ),
    (
        "trailing_bytes",
        "Bytes after the last field",
        "MALFORMED",
        "ERROR",
    ),
    ("bad_bool", "Bool other than 0 or 1", "MALFORMED", "ERROR"),
    ("bad_utf8", "String that is not UTF-8", "MALFORMED", "ERROR"),
    (
        "unknown_type",
        "Type unknown to the schema",
        "UNDECODED",
        "NOTE",
    ),
];

/// A script being written, line by line.
#[derive(Default)]
struct Script(String);

impl Script {
    fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }
}

/// The Wireshark Lua dissector for messages framed by `layout` and described by `schema`;
/// see the [module documentation](self).
///
/// ```
/// use ltp::dissector::{DissectorOptions, lua_dissector};
/// use ltp::schema::Schema;
/// let options = DissectorOptions { name: "ltp_demo".into(), ports: vec![9999] };
/// let lua = lua_dissector(&ltprotocol::HeaderLayout::ltprotocol(), &Schema::demo(), &options);
/// assert!(lua.contains(r#"ProtoField.uint32("ltp_demo.nummsg.num", "num", base.DEC)"#));
/// assert!(lua.contains("dissect_tcp_pdus(tvb, tree, HEADER_LEN, get_pdu_len, dissect_pdu, true)"));
/// assert!(lua.ends_with("tcp_port:add(9999, proto)\n"));
/// ```
pub fn lua_dissector(layout: &HeaderLayout, schema: &Schema, options: &DissectorOptions) -> String {
    let mut names = FilterNames::new(&options.name);
    let mut script = Script::default();
    script.line("-- A Wireshark dissector written by `ltp dissector` from a header layout and a");
    script
        .line("-- schema. Load it with `wireshark -X lua_script:THIS_FILE` (or tshark), or put it");
    script
        .line("-- in Wireshark's personal Lua plugins folder. Regenerate it rather than edit it.");
    script.line("");
    script.line(format!(
        "local proto = Proto({}, {})",
        lua_string(&options.name),
        lua_string(&format!("{} (written by ltp dissector)", options.name))
    ));
    script.line(format!("local HEADER_LEN = {}", layout.header_len()));
    script.line(format!("local MAX_PDU_LEN = {MAX_PDU_LEN}"));
    script.line("");
    write_header(&mut script, &mut names, layout, schema);
    write_experts(&mut script, &mut names);
    write_messages(&mut script, &mut names, layout.byte_order(), schema);
    script.0.push_str(RUNTIME);
    for port in &options.ports {
        script.line(format!("tcp_port:add({port}, proto)"));
    }
    script.0
}

/// `F`, `HEADER_FIELDS`, `TYPE_OFFSET`, `TYPE_WIDTH`, `frame_len` and `type_key`.
fn write_header(
    script: &mut Script,
    names: &mut FilterNames,
    layout: &HeaderLayout,
    schema: &Schema,
) {
    let order = layout.byte_order();
    let length = layout.length_field();
    let message_type = layout.type_field();
    let int_decl = |names: &mut FilterNames, key: &str, label: &str, int: Int, vs: &str| {
        format!(
            "{}({}, {}, base.DEC{vs})",
            int_constructor(int),
            lua_string(&names.claim(&[key])),
            lua_string(label)
        )
    };
    // Wireshark's value strings are for fields of up to 32 bits; F.msg names every type.
    let mut value_string = String::new();
    if message_type.int().width() <= 4 {
        value_string.push_str(", {");
        for msg in schema.messages() {
            let value = msg.message_type().value();
            if message_type.int().holds(value) {
                let _ = write!(value_string, " [{value}] = {},", lua_string(msg.name()));
            }
        }
        value_string.push_str(" }");
    }
    script.line("local F = {}");
    let length_decl = int_decl(names, "length", "Length", length.int(), "");
    script.line(format!("F.length = {length_decl}"));
    let type_decl = int_decl(names, "type", "Type", message_type.int(), &value_string);
    script.line(format!("F.type = {type_decl}"));
    let msg = lua_string(&names.claim(&["msg"]));
    script.line(format!("F.msg = ProtoField.string({msg}, \"Message\")"));
    let body = lua_string(&names.claim(&["body"]));
    script.line(format!(
        "F.body = ProtoField.bytes({body}, \"Undecoded bytes\")"
    ));
    let mut header: Vec<(String, &FieldSpec)> = vec![
        ("F.length".to_owned(), length),
        ("F.type".to_owned(), message_type),
    ];
    for field in layout.extra_fields() {
        let decl = int_decl(names, field.name(), field.name(), field.int(), "");
        header.push((decl, field));
    }
    header.sort_by_key(|(_, field)| field.offset());
    let le = order == ByteOrder::Little;
    script.line("local HEADER_FIELDS = {");
    for (pf, field) in &header {
        script.line(format!(
            "  {{ pf = {pf}, offset = {}, width = {}, le = {le} }},",
            field.offset(),
            field.int().width()
        ));
    }
    script.line("}");
    script.line(format!("local TYPE_OFFSET = {}", message_type.offset()));
    script.line(format!("local TYPE_WIDTH = {}", message_type.int().width()));
    script.line("");
    script.line("-- The whole frame's length: the length field plus the layout's adjustment.");
    script.line("local function frame_len(tvb, base)");
    let offset = format!("base + {}", length.offset());
    script.line(format!(
        "  return {} + {}",
        read_int_expr(&offset, length.int(), order),
        layout.length_adjustment()
    ));
    script.line("end");
    script.line("");
    script.line("-- The type field as a decimal string, the key of MESSAGES.");
    script.line("local function type_key(tvb)");
    script.line(format!("  return {}", type_key_expr(message_type, order)));
    script.line("end");
    script.line("");
}

/// `E`, the expert infos.
fn write_experts(script: &mut Script, names: &mut FilterNames) {
    script.line("local E = {}");
    for (key, summary, group, severity) in EXPERTS {
        let abbrev = names.claim(&["expert", key]);
        script.line(format!(
            "E.{key} = ProtoExpert.new({}, {}, expert.group.{group}, expert.severity.{severity})",
            lua_string(&abbrev),
            lua_string(summary)
        ));
    }
    script.line("");
}

/// `MESSAGES`, the body fields per type.
fn write_messages(script: &mut Script, names: &mut FilterNames, order: ByteOrder, schema: &Schema) {
    script.line("local MESSAGES = {}");
    for msg in schema.messages() {
        let key = msg.message_type().value().to_string();
        script.line(format!("MESSAGES[{}] = {{", lua_string(&key)));
        script.line(format!("  name = {},", lua_string(msg.name())));
        script.line("  fields = {");
        for field in msg.fields() {
            let kind = field.kind();
            let abbrev = names.claim(&[msg.name(), field.name()]);
            let label = match kind {
                FieldKind::Pad(_) => format!("{} (padding)", field.name()),
                _ => field.name().to_owned(),
            };
            let le = kind.is_number() && field.byte_order().unwrap_or(order) == ByteOrder::Little;
            let width = kind
                .width()
                .map_or_else(|| "nil".to_owned(), |w| w.to_string());
            script.line(format!(
                "    {{ pf = {}, name = {}, kind = {}, width = {width}, le = {le} }},",
                body_field_decl(&abbrev, &label, kind),
                lua_string(field.name()),
                lua_string(&kind.to_string()),
            ));
        }
        script.line("  },");
        script.line("}");
    }
    script.line("");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltprotocol::LengthCounts;

    /// Reads a literal written by `lua_string` back, as Lua would.
    fn unescape(literal: &str) -> Vec<u8> {
        let inner = literal
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
            .expect("quoted");
        let bytes = inner.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).expect("ASCII");
                out.push(digits.parse().expect("three decimal digits"));
                i += 4;
            } else {
                assert_ne!(bytes[i], b'"', "an unescaped quote in {literal}");
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn lua_strings_are_one_ascii_line_that_reads_back_exactly() {
        let every_char: String = (0u32..0x300).filter_map(char::from_u32).collect();
        for text in [
            "",
            "plain",
            "a\"]]\n--[[\\",
            "\u{0}\u{7f}é\r\t",
            &every_char,
        ] {
            let literal = lua_string(text);
            assert!(
                literal.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{literal}"
            );
            assert_eq!(unescape(&literal), text.as_bytes(), "{literal}");
        }
    }

    #[test]
    fn filter_names_are_lowercase_words_made_unique() {
        let mut names = FilterNames::new("p");
        assert_eq!(names.claim(&["NumMsg", "num"]), "p.nummsg.num");
        assert_eq!(names.claim(&["Num Msg", "num"]), "p.num_msg.num");
        assert_eq!(names.claim(&["num_msg", "NUM"]), "p.num_msg.num_2");
        assert_eq!(names.claim(&["num_msg", "num"]), "p.num_msg.num_3");
        assert_eq!(names.claim(&["", "é"]), "p._._");
    }

    #[test]
    fn proto_names_are_checked() {
        for good in ["ltp_demo", "a", "x2_y"] {
            assert_eq!(check_proto_name(good), Ok(()), "{good}");
        }
        let long = "a".repeat(65);
        for bad in ["", "Demo", "2x", "_x", "a-b", "a.b", "a b", long.as_str()] {
            assert!(check_proto_name(bad).is_err(), "{bad}");
        }
        assert_eq!(default_proto_name("openflow"), "ltp_openflow");
        assert_eq!(default_proto_name("dir/x.y.toml"), "ltp_x_y");
    }

    #[test]
    fn the_length_is_read_at_its_width_sign_and_order() {
        let cases = [
            (Int::U8, ByteOrder::Big, "tvb(base + 0, 1):uint()"),
            (Int::I16, ByteOrder::Little, "tvb(base + 0, 2):le_int()"),
            (Int::U32, ByteOrder::Little, "tvb(base + 0, 4):le_uint()"),
            (Int::I32, ByteOrder::Big, "tvb(base + 0, 4):int()"),
            (
                Int::U64,
                ByteOrder::Big,
                "tvb(base + 0, 8):uint64():tonumber()",
            ),
            (
                Int::I64,
                ByteOrder::Little,
                "tvb(base + 0, 8):le_int64():tonumber()",
            ),
        ];
        for (int, order, read) in cases {
            assert_eq!(
                read_int_expr("base + 0", int, order),
                read,
                "{int:?} {order:?}"
            );
        }
    }

    #[test]
    fn every_length_mode_adds_its_adjustment() {
        let options = DissectorOptions {
            name: "p".to_owned(),
            ports: Vec::new(),
        };
        let cases = [
            (LengthCounts::Frame, "+ 0\n"),
            (LengthCounts::Body, "+ 7\n"),
            (LengthCounts::Adjusted(-2), "+ -2\n"),
        ];
        for (counts, adjustment) in cases {
            let layout = HeaderLayout::builder()
                .length(3, Int::U32)
                .message_type(0, Int::U16)
                .byte_order(ByteOrder::Little)
                .length_counts(counts)
                .build()
                .expect("a valid layout");
            let lua = lua_dissector(&layout, &Schema::demo(), &options);
            let expected = format!("  return tvb(base + 3, 4):le_uint() {adjustment}");
            assert!(lua.contains(&expected), "{counts:?}:\n{lua}");
        }
    }

    #[test]
    fn every_field_kind_has_its_proto_field() {
        let cases = [
            (
                FieldKind::Int(Int::I8),
                "ProtoField.int8(\"a\", \"b\", base.DEC)",
            ),
            (
                FieldKind::Int(Int::U64),
                "ProtoField.uint64(\"a\", \"b\", base.DEC)",
            ),
            (FieldKind::F32, "ProtoField.float(\"a\", \"b\")"),
            (FieldKind::F64, "ProtoField.double(\"a\", \"b\")"),
            (FieldKind::Bytes(6), "ProtoField.bytes(\"a\", \"b\")"),
            (FieldKind::Pad(2), "ProtoField.bytes(\"a\", \"b\")"),
            (FieldKind::RestBytes, "ProtoField.bytes(\"a\", \"b\")"),
            (
                FieldKind::String,
                "ProtoField.string(\"a\", \"b\", base.UNICODE)",
            ),
        ];
        for (kind, decl) in cases {
            assert_eq!(body_field_decl("a", "b", kind), decl);
        }
        assert!(body_field_decl("a", "b", FieldKind::Bool).contains("[1] = \"true\""));
    }

    #[test]
    fn wide_type_fields_have_no_value_string_and_keys_from_uint64() {
        let layout = HeaderLayout::builder()
            .length(0, Int::U16)
            .message_type(2, Int::U64)
            .build()
            .expect("a valid layout");
        let options = DissectorOptions {
            name: "p".to_owned(),
            ports: Vec::new(),
        };
        let lua = lua_dissector(&layout, &Schema::demo(), &options);
        assert!(lua.contains("F.type = ProtoField.uint64(\"p.type\", \"Type\", base.DEC)\n"));
        assert!(lua.contains("return tostring(tvb(2, 8):uint64())"));
        assert!(lua.contains("MESSAGES[\"1\"] = {"));
    }
}
