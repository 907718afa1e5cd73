//! `ltp dissector`: a Wireshark Lua dissector written from a header layout and a schema.
//!
//! [`lua_dissector`] returns the script's text; load it with `wireshark -X lua_script:FILE`
//! (or `tshark`), or copy it into Wireshark's personal Lua plugins folder. The dissector:
//!
//! * shows the header's `length`, `type` (with the schema's message names as its value
//!   string) and extra fields (`xid`…), each in the layout's byte order;
//! * shows a known message's body fields by name and type as the schema declares them; a body
//!   that does not fit its fields (too short, bytes left after the last field, a bool other
//!   than 0 or 1) gets an expert info (group *Malformed*, severity *Error*) and the bytes it
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
//! `<proto>.expert.{bad_length,short_body,trailing_bytes,bad_bool,unknown_type}` for the
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
#[derive(Debug, Default)]
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

/// The Lua expression reading an integer of kind `int` at `offset` of TvbRange-able `tvb`,
/// as a Lua number (64-bit values through `UInt64`/`Int64`, exact up to 2^53).
fn read_int_expr(tvb: &str, offset: &str, int: Int, order: ByteOrder) -> String {
    let le = if order == ByteOrder::Little {
        "le_"
    } else {
        ""
    };
    let width = int.width();
    match (int.width(), int.is_signed()) {
        (8, false) => format!("{tvb}({offset}, 8):{le}uint64():tonumber()"),
        (8, true) => format!("{tvb}({offset}, 8):{le}int64():tonumber()"),
        (_, false) => format!("{tvb}({offset}, {width}):{le}uint()"),
        (_, true) => format!("{tvb}({offset}, {width}):{le}int()"),
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
/// ```
pub fn lua_dissector(layout: &HeaderLayout, schema: &Schema, options: &DissectorOptions) -> String {
    let order = layout.byte_order();
    let add = if order == ByteOrder::Little {
        "add_le"
    } else {
        "add"
    };
    let mut names = FilterNames::new(&options.name);
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };

    line("-- A Wireshark dissector written by `ltp dissector` from a header layout and a schema.");
    line("-- Load it with `wireshark -X lua_script:THIS_FILE` (or tshark), or put it in");
    line("-- Wireshark's personal Lua plugins folder. Regenerate it rather than editing it.");
    line("");
    let proto_name = lua_string(&options.name);
    let description = lua_string(&format!("{} (written by ltp dissector)", options.name));
    line(&format!("local proto = Proto({proto_name}, {description})"));
    line(&format!("local HEADER_LEN = {}", layout.header_len()));
    line(&format!(
        "local LENGTH_ADJUSTMENT = {}",
        layout.length_adjustment()
    ));
    line(&format!("local MAX_PDU_LEN = {MAX_PDU_LEN}"));
    line("");

    // Header fields.
    let length = layout.length_field();
    let message_type = layout.type_field();
    let mut value_string = String::from("{");
    for msg in schema.messages() {
        let value = msg.message_type().value();
        if message_type.int().width() <= 4 && message_type.int().holds(value) {
            let _ = write!(value_string, " [{value}] = {},", lua_string(msg.name()));
        }
    }
    value_string.push_str(" }");
    let declare_int = |names: &mut FilterNames, key: &str, label: &str, int: Int, vs: &str| {
        let abbrev = names.claim(&[key]);
        let extra = if vs.is_empty() {
            String::new()
        } else {
            format!(", {vs}")
        };
        format!(
            "{}({}, {}, base.DEC{extra})",
            int_constructor(int),
            lua_string(&abbrev),
            lua_string(label)
        )
    };
    let length_decl = declare_int(&mut names, "length", "Length", length.int(), "");
    let type_vs = if message_type.int().width() <= 4 {
        value_string.as_str()
    } else {
        ""
    };
    let type_decl = declare_int(&mut names, "type", "Type", message_type.int(), type_vs);
    let msg_abbrev = names.claim(&["msg"]);
    let body_abbrev = names.claim(&["body"]);
    line("local F = {}");
    line(&format!("F.length = {length_decl}"));
    line(&format!("F.type = {type_decl}"));
    line(&format!(
        "F.msg = ProtoField.string({}, \"Message\")",
        lua_string(&msg_abbrev)
    ));
    line(&format!(
        "F.body = ProtoField.bytes({}, \"Undecoded bytes\")",
        lua_string(&body_abbrev)
    ));
    line("local HEADER_FIELDS = {");
    line(&format!(
        "  {{ pf = F.length, offset = {}, width = {} }},",
        length.offset(),
        length.int().width()
    ));
    line(&format!(
        "  {{ pf = F.type, offset = {}, width = {} }},",
        message_type.offset(),
        message_type.int().width()
    ));
    let mut extras: Vec<&FieldSpec> = layout.extra_fields().iter().collect();
    extras.sort_by_key(|f| f.offset());
    for field in &extras {
        let decl = declare_int(&mut names, field.name(), field.name(), field.int(), "");
        line(&format!(
            "  {{ pf = {decl}, offset = {}, width = {} }},",
            field.offset(),
            field.int().width()
        ));
    }
    line("}");
    line("");

    // Experts.
    let experts: [(&str, &str, &str, &str); 5] = [
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
        (
            "unknown_type",
            "Type unknown to the schema",
            "UNDECODED",
            "NOTE",
        ),
    ];
    line("local E = {}");
    for (key, text, group, severity) in experts {
        let abbrev = names.claim(&["expert", key]);
        line(&format!(
            "E.{key} = ProtoExpert.new({}, {}, expert.group.{group}, expert.severity.{severity})",
            lua_string(&abbrev),
            lua_string(text)
        ));
    }
    line("");

    // Messages.
    line("-- Body fields per type number (as a decimal string); width nil: the rest of the body.");
    line("local MESSAGES = {}");
    for msg in schema.messages() {
        let key = msg.message_type().value().to_string();
        line(&format!("MESSAGES[{}] = {{", lua_string(&key)));
        line(&format!("  name = {},", lua_string(msg.name())));
        line("  fields = {");
        for field in msg.fields() {
            let kind = field.kind();
            let abbrev = names.claim(&[msg.name(), field.name()]);
            let label = match kind {
                FieldKind::Pad(_) => format!("{} (padding)", field.name()),
                _ => field.name().to_owned(),
            };
            let le = field.byte_order().unwrap_or(order) == ByteOrder::Little && kind.is_number();
            let width = kind
                .width()
                .map_or_else(|| "nil".to_owned(), |w| w.to_string());
            line(&format!(
                "    {{ pf = {}, name = {}, kind = {}, width = {width}, le = {le} }},",
                body_field_decl(&abbrev, &label, kind),
                lua_string(field.name()),
                lua_string(&kind.to_string()),
            ));
        }
        line("  },");
        line("}");
    }
    line("");
    line("local field_list = { F.length, F.type, F.msg, F.body }");
    line("for _, h in ipairs(HEADER_FIELDS) do");
    line("  if h.pf ~= F.length and h.pf ~= F.type then table.insert(field_list, h.pf) end");
    line("end");
    line("for _, m in pairs(MESSAGES) do");
    line("  for _, f in ipairs(m.fields) do table.insert(field_list, f.pf) end");
    line("end");
    line("proto.fields = field_list");
    line(
        "proto.experts = { E.bad_length, E.short_body, E.trailing_bytes, E.bad_bool, E.unknown_type }",
    );
    line("");

    // Runtime.
    line("-- The whole frame's length, from the length field.");
    line("local function frame_len(tvb, base)");
    line(&format!(
        "  return {} + LENGTH_ADJUSTMENT",
        read_int_expr(
            "tvb",
            &format!("base + {}", length.offset()),
            length.int(),
            order
        )
    ));
    line("end");
    line("");
    line("-- dissect_tcp_pdus calls this with at least HEADER_LEN bytes at offset. A bad length");
    line("-- takes the rest of the segment, which dissect_pdu then flags.");
    line("local function get_pdu_len(tvb, pinfo, offset)");
    line("  local len = frame_len(tvb, offset)");
    line("  if len < HEADER_LEN or len > MAX_PDU_LEN then return tvb:len() - offset end");
    line("  return len");
    line("end");
    line("");
    line("local function dissect_body(tvb, tree, msg)");
    line("  local total = tvb:len()");
    line("  local offset = HEADER_LEN");
    line("  for _, field in ipairs(msg.fields) do");
    line("    local left = total - offset");
    line("    if field.width == nil then");
    line("      if field.kind == \"string\" then");
    line("        tree:add_packet_field(field.pf, tvb:range(offset, left), ENC_UTF_8)");
    line("      else");
    line("        tree:add(field.pf, tvb:range(offset, left))");
    line("      end");
    line("      offset = total");
    line("    elseif left < field.width then");
    line("      tree:add_proto_expert_info(E.short_body, string.format(");
    line(
        "        \"%s: field %s (%s) needs %d bytes, %d left\", msg.name, field.name, field.kind, field.width, left))",
    );
    line("      if left > 0 then tree:add(F.body, tvb:range(offset, left)) end");
    line("      return");
    line("    else");
    line("      local range = tvb:range(offset, field.width)");
    line("      local item");
    line(
        "      if field.le then item = tree:add_le(field.pf, range) else item = tree:add(field.pf, range) end",
    );
    line("      if field.kind == \"bool\" and range:uint() > 1 then");
    line("        item:add_proto_expert_info(E.bad_bool, string.format(");
    line(
        "          \"%s: field %s is %d, not a bool (0 or 1)\", msg.name, field.name, range:uint()))",
    );
    line("      end");
    line("      offset = offset + field.width");
    line("    end");
    line("  end");
    line("  if offset < total then");
    line("    tree:add_proto_expert_info(E.trailing_bytes, string.format(");
    line("      \"%s: %d bytes left after the last field\", msg.name, total - offset))");
    line("    tree:add(F.body, tvb:range(offset, total - offset))");
    line("  end");
    line("end");
    line("");
    line("local function dissect_pdu(tvb, pinfo, tree)");
    line("  local total = tvb:len()");
    line("  local item = tree:add(proto, tvb:range(0, total))");
    line("  for _, h in ipairs(HEADER_FIELDS) do");
    line(&format!(
        "    item:{add}(h.pf, tvb:range(h.offset, h.width))"
    ));
    line("  end");
    line("  local len = frame_len(tvb, 0)");
    line("  if len < HEADER_LEN or len > MAX_PDU_LEN then");
    line("    item:add_proto_expert_info(E.bad_length, string.format(");
    line(
        "      \"the length field declares a %.0f-byte frame, outside %d..%d\", len, HEADER_LEN, MAX_PDU_LEN))",
    );
    line(
        "    if total > HEADER_LEN then item:add(F.body, tvb:range(HEADER_LEN, total - HEADER_LEN)) end",
    );
    line("    pinfo.cols.info:append(\" [bad length]\")");
    line("    return total");
    line("  end");
    line(&format!(
        "  local key = {}",
        type_key_expr(message_type, order)
    ));
    line("  local msg = MESSAGES[key]");
    line("  if msg == nil then");
    line("    item:append_text(\", type \" .. key)");
    line("    pinfo.cols.info:append(\" type=\" .. key)");
    line(
        "    item:add_proto_expert_info(E.unknown_type, \"type \" .. key .. \" is not in the schema\")",
    );
    line(
        "    if total > HEADER_LEN then item:add(F.body, tvb:range(HEADER_LEN, total - HEADER_LEN)) end",
    );
    line("    return total");
    line("  end");
    line(&format!(
        "  item:add(F.msg, tvb:range({}, {}), msg.name):set_generated()",
        message_type.offset(),
        message_type.int().width()
    ));
    line("  item:append_text(\", \" .. msg.name)");
    line("  pinfo.cols.info:append(\" \" .. msg.name)");
    line("  dissect_body(tvb, item, msg)");
    line("  return total");
    line("end");
    line("");
    line("function proto.dissector(tvb, pinfo, tree)");
    line("  pinfo.cols.protocol:set(proto.name)");
    line("  pinfo.cols.info:set(\"\")");
    line("  return dissect_tcp_pdus(tvb, tree, HEADER_LEN, get_pdu_len, dissect_pdu, true)");
    line("end");
    line("");
    line("local tcp_port = DissectorTable.get(\"tcp.port\")");
    line("tcp_port:add_for_decode_as(proto)");
    for port in &options.ports {
        line(&format!("tcp_port:add({port}, proto)"));
    }
    out
}
