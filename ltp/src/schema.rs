//! Schemas: which message types have names, and the fields of their bodies, so that `ltp` can
//! show `{"msg":"NumMsg","fields":{"num":200}}` instead of bytes and build bodies from JSON.
//!
//! `--schema demo` (the ancestor's `NumMsg` and `StrMsg`), `--schema openflow` (OpenFlow 1.3's
//! fixed-size messages) and `--schema none` (no names: every message shown by type number and
//! body bytes) are built in; any other value is a TOML file:
//!
//! ```toml
//! [[message]]
//! name = "NumMsg"                      # unique; what input lines give as "msg"
//! type = 1                             # unique type number
//! fields = [ { name = "num", type = "u32" } ]
//!
//! [[message]]
//! name = "StrMsg"
//! type = 2
//! fields = [ { name = "str", type = "string" } ]
//! ```
//!
//! Fields are laid out in order with no gaps; `[[message.fields]]` tables work as well as the
//! inline array. A field has a `name`, a `type` and, for numbers, an optional
//! `byte_order = "big" | "little"` (default: the layout's byte order).
//!
//! | `type` | bytes | JSON value |
//! |---|---|---|
//! | `u8` `i8` `u16` `i16` `u32` `i32` `u64` `i64` | 1, 2, 4, 8 | integer, exact to 64 bits |
//! | `f32` `f64` | 4, 8 | number; `"NaN"`, `"inf"`, `"-inf"` for non-finite values |
//! | `bool` | 1 | `true` (1) or `false` (0); other bytes fail to decode |
//! | `bytes:N` | N | hex string of exactly N bytes |
//! | `pad:N` | N | none: zeros when encoding, skipped when decoding, not in `fields` |
//! | `string` | the rest | UTF-8 text; last field only; may be omitted when encoding (empty) |
//! | `bytes` | the rest | hex string; last field only; may be omitted when encoding (empty) |
//!
//! N is 1 to 16,777,216, and a message's fixed-size fields (all but `string` and `bytes`) take
//! at most 16,777,216 bytes together ([`MAX_FIXED_LEN`]), so that encoding a line never
//! allocates more than that besides the line's own bytes, whatever pads a file declares.
//! Decoding fails, naming the field, on a body that is too short, has bytes after the last
//! field, or holds invalid UTF-8 or a bool other than 0 or 1. Problems in the file (unknown
//! key or type, a duplicate name or type number, `string`/`bytes` not last, fixed-size fields
//! past the bound) are reported as `FILE:LINE: PROBLEM`. `ltp/examples-data/schemas/` has samples, among them
//! `demo.toml` and `openflow.toml`, the built-in schemas as files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use ltprotocol::{ByteOrder, Int, MessageType};

use crate::error::ConfigError;
use crate::json::{from_hex, to_hex};
use crate::layout_file::{OrderName, int_named, read_config};

/// The largest N of a `bytes:N` or `pad:N` field, and the most bytes a message's fixed-size
/// fields take together: 16 MiB, twice the largest frame `ltp` accepts by default (8 MiB).
pub const MAX_FIXED_LEN: usize = 16 * 1024 * 1024;

/// A decoded message: its name and its fields by name.
pub type Decoded = (String, Map<String, Value>);

/// What a body field holds and how many bytes it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// An integer of this kind.
    Int(Int),
    /// An IEEE 754 single-precision float.
    F32,
    /// An IEEE 754 double-precision float.
    F64,
    /// One byte, 0 or 1.
    Bool,
    /// Exactly this many bytes, shown as hex (`bytes:N`).
    Bytes(usize),
    /// This many zero bytes, not shown (`pad:N`).
    Pad(usize),
    /// UTF-8 text filling the rest of the body (`string`).
    String,
    /// Bytes filling the rest of the body, shown as hex (`bytes`).
    RestBytes,
}

impl FieldKind {
    /// The kind written as `name` in a schema file (`"u32"`, `"bytes:6"`, `"string"`).
    ///
    /// ```
    /// use ltp::schema::FieldKind;
    /// use ltprotocol::Int;
    /// assert_eq!(FieldKind::parse("u32"), Some(FieldKind::Int(Int::U32)));
    /// assert_eq!(FieldKind::parse("bytes:6"), Some(FieldKind::Bytes(6)));
    /// assert_eq!(FieldKind::parse("bytes:0"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        let sized = |n: &str| {
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_FIXED_LEN).contains(n))
        };
        Some(match name {
            "f32" => Self::F32,
            "f64" => Self::F64,
            "bool" => Self::Bool,
            "string" => Self::String,
            "bytes" => Self::RestBytes,
            _ => {
                if let Some(n) = name.strip_prefix("bytes:") {
                    Self::Bytes(sized(n)?)
                } else if let Some(n) = name.strip_prefix("pad:") {
                    Self::Pad(sized(n)?)
                } else {
                    Self::Int(int_named(name)?)
                }
            }
        })
    }

    /// The size in bytes, or `None` for the kinds that fill the rest of the body.
    pub fn width(self) -> Option<usize> {
        match self {
            Self::Int(int) => Some(int.width()),
            Self::F32 => Some(4),
            Self::F64 => Some(8),
            Self::Bool => Some(1),
            Self::Bytes(n) | Self::Pad(n) => Some(n),
            Self::String | Self::RestBytes => None,
        }
    }

    /// Whether the field fills the rest of the body (`string`, `bytes`), so must be last.
    pub fn is_rest(self) -> bool {
        self.width().is_none()
    }

    /// Whether a byte order applies to the field (integers and floats).
    pub fn is_number(self) -> bool {
        matches!(self, Self::Int(_) | Self::F32 | Self::F64)
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(int) => f.write_str(int.name()),
            Self::F32 => f.write_str("f32"),
            Self::F64 => f.write_str("f64"),
            Self::Bool => f.write_str("bool"),
            Self::Bytes(n) => write!(f, "bytes:{n}"),
            Self::Pad(n) => write!(f, "pad:{n}"),
            Self::String => f.write_str("string"),
            Self::RestBytes => f.write_str("bytes"),
        }
    }
}

/// One field of a message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    name: String,
    kind: FieldKind,
    byte_order: Option<ByteOrder>,
}

impl FieldDef {
    /// The field's name, its key in `fields`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the field holds.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }

    /// The field's own byte order, if it overrides the layout's.
    pub fn byte_order(&self) -> Option<ByteOrder> {
        self.byte_order
    }
}

/// One message a schema knows: its name, type number and body fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDef {
    name: String,
    message_type: MessageType,
    fields: Vec<FieldDef>,
}

impl MessageDef {
    /// The message's name (`"NumMsg"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The message's type number.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The body's fields, in wire order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// Decodes a body into its fields (`pad:N` fields left out), integers in `order` unless a
    /// field says otherwise.
    ///
    /// # Errors
    ///
    /// A one-line reason naming the field: the body is too short for it, holds invalid UTF-8
    /// or a bool other than 0 or 1, or has bytes left after the last field.
    pub fn decode(&self, body: &[u8], order: ByteOrder) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        let mut rest = body;
        for field in &self.fields {
            let (value, used) = decode_field(field, rest, order)?;
            rest = rest.get(used..).unwrap_or_default();
            if let Some(value) = value {
                out.insert(field.name.clone(), value);
            }
        }
        if !rest.is_empty() {
            return Err(match self.fields.last() {
                Some(last) => format!(
                    "{} bytes left after the last field `{}`",
                    rest.len(),
                    last.name
                ),
                None => format!("{} bytes in a body that has no fields", rest.len()),
            });
        }
        Ok(out)
    }

    /// Encodes a body from JSON fields, integers in `order` unless a field says otherwise.
    ///
    /// # Errors
    ///
    /// A one-line reason naming the field: a key that is not a field, a missing field (only a
    /// trailing `string` or `bytes` may be left out), a value of the wrong JSON type, a number
    /// out of its field's range, hex that is malformed or of the wrong size.
    pub fn encode(&self, fields: &Map<String, Value>, order: ByteOrder) -> Result<Vec<u8>, String> {
        let shown = || {
            let names: Vec<&str> = self
                .fields
                .iter()
                .filter(|f| !matches!(f.kind, FieldKind::Pad(_)))
                .map(|f| f.name.as_str())
                .collect();
            if names.is_empty() {
                "it has none".to_owned()
            } else {
                format!("its fields: {}", names.join(", "))
            }
        };
        for key in fields.keys() {
            let known = self
                .fields
                .iter()
                .any(|f| &f.name == key && !matches!(f.kind, FieldKind::Pad(_)));
            if !known {
                return Err(format!("{} has no field `{key}` ({})", self.name, shown()));
            }
        }
        let mut body = Vec::new();
        for field in &self.fields {
            let value = fields.get(&field.name);
            match (field.kind, value) {
                (FieldKind::Pad(n), _) => body.resize(body.len() + n, 0),
                (FieldKind::String | FieldKind::RestBytes, None) => {}
                (kind, None) => {
                    return Err(format!(
                        "{}: missing field `{}` ({kind})",
                        self.name, field.name
                    ));
                }
                (_, Some(value)) => encode_field(field, value, order, &mut body)
                    .map_err(|e| format!("{} field `{}`: {e}", self.name, field.name))?,
            }
        }
        Ok(body)
    }
}

/// Names and body fields per message type; see the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct Schema {
    messages: Vec<MessageDef>,
    by_type: BTreeMap<MessageType, usize>,
    by_name: BTreeMap<String, usize>,
}

impl Schema {
    /// A schema that knows no type: every message shown by type number and body bytes.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The ancestor's example: `NumMsg` type 1 `{num: u32}`; `StrMsg` type 2 `{str: string}`.
    ///
    /// ```
    /// use ltp::schema::Schema;
    /// use ltprotocol::{ByteOrder, MessageType};
    /// let (name, fields) = Schema::demo()
    ///     .decode(MessageType::new(1), &[0, 0, 0, 200], ByteOrder::Big)
    ///     .unwrap()?;
    /// assert_eq!((name.as_str(), &fields["num"]), ("NumMsg", &200.into()));
    /// # Ok::<(), String>(())
    /// ```
    pub fn demo() -> Self {
        Self::index(vec![
            message("NumMsg", 1, &[("num", FieldKind::Int(Int::U32))]),
            message("StrMsg", 2, &[("str", FieldKind::String)]),
        ])
    }

    /// OpenFlow 1.3's messages with fixed fields: HELLO 0 (`elements`, the rest), ERROR 1,
    /// ECHO_REQUEST 2, ECHO_REPLY 3, EXPERIMENTER 4, FEATURES_REQUEST 5, FEATURES_REPLY 6,
    /// GET_CONFIG_REQUEST 7, GET_CONFIG_REPLY 8, SET_CONFIG 9, BARRIER_REQUEST 20,
    /// BARRIER_REPLY 21, ROLE_REQUEST 24, ROLE_REPLY 25. Variable parts (HELLO elements, ERROR
    /// and ECHO data) are trailing `bytes`.
    pub fn openflow() -> Self {
        use FieldKind::{Int as I, Pad, RestBytes};
        use ltprotocol::Int::{U8, U16, U32, U64};
        let config: &[(&str, FieldKind)] = &[("flags", I(U16)), ("miss_send_len", I(U16))];
        let role: &[(&str, FieldKind)] =
            &[("role", I(U32)), ("pad", Pad(4)), ("generation_id", I(U64))];
        Self::index(vec![
            message("HELLO", 0, &[("elements", RestBytes)]),
            message(
                "ERROR",
                1,
                &[("err_type", I(U16)), ("code", I(U16)), ("data", RestBytes)],
            ),
            message("ECHO_REQUEST", 2, &[("data", RestBytes)]),
            message("ECHO_REPLY", 3, &[("data", RestBytes)]),
            message(
                "EXPERIMENTER",
                4,
                &[
                    ("experimenter", I(U32)),
                    ("exp_type", I(U32)),
                    ("data", RestBytes),
                ],
            ),
            message("FEATURES_REQUEST", 5, &[]),
            message(
                "FEATURES_REPLY",
                6,
                &[
                    ("datapath_id", I(U64)),
                    ("n_buffers", I(U32)),
                    ("n_tables", I(U8)),
                    ("auxiliary_id", I(U8)),
                    ("pad", Pad(2)),
                    ("capabilities", I(U32)),
                    ("reserved", I(U32)),
                ],
            ),
            message("GET_CONFIG_REQUEST", 7, &[]),
            message("GET_CONFIG_REPLY", 8, config),
            message("SET_CONFIG", 9, config),
            message("BARRIER_REQUEST", 20, &[]),
            message("BARRIER_REPLY", 21, &[]),
            message("ROLE_REQUEST", 24, role),
            message("ROLE_REPLY", 25, role),
        ])
    }

    /// The schema named by `--schema`: `demo`, `openflow`, `none`, or the path of a TOML file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Unreadable`] for a file that cannot be read, [`ConfigError::File`] for one
    /// that is not a valid schema, [`ConfigError::Invalid`] for a name that is neither built in
    /// nor an existing file.
    pub fn load(spec: &str) -> Result<Self, ConfigError> {
        match spec {
            "demo" => Ok(Self::demo()),
            "openflow" => Ok(Self::openflow()),
            "none" => Ok(Self::empty()),
            path => {
                let text = read_config(path, "schema", "demo, openflow, none")?;
                Self::parse_toml(&text, path)
            }
        }
    }

    /// Reads a schema from the TOML text of `file` (named in errors only).
    ///
    /// # Errors
    ///
    /// [`ConfigError::File`] with the line of the problem: a TOML syntax error, an unknown key,
    /// an unknown field type, a duplicate message name, type number or field name, a `string`
    /// or `bytes` field that is not last, a `byte_order` on a field that is not a number, or
    /// fixed-size fields that take more than [`MAX_FIXED_LEN`] bytes together.
    ///
    /// ```
    /// use ltp::schema::Schema;
    /// use ltprotocol::MessageType;
    /// let text = "[[message]]\nname = \"Ping\"\ntype = 7\n";
    /// let schema = Schema::parse_toml(text, "ping.toml")?;
    /// assert_eq!(schema.name_of(MessageType::new(7)), Some("Ping"));
    /// let err = Schema::parse_toml("[[message]]\nname = \"P\"\ntype = 7\nfields = [\n\
    ///     { name = \"a\", type = \"u24\" },\n]\n", "bad.toml").unwrap_err();
    /// assert!(err.to_string().starts_with("bad.toml:5: field `a`: unknown type `u24`"));
    /// # Ok::<(), ltp::ConfigError>(())
    /// ```
    pub fn parse_toml(text: &str, file: &str) -> Result<Self, ConfigError> {
        let doc: SchemaDoc =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        let at = |span: std::ops::Range<usize>, problem: String| {
            ConfigError::at(file, text, span.start, problem)
        };
        let mut messages: Vec<MessageDef> = Vec::with_capacity(doc.message.len());
        // Names and types seen so far, looked up rather than scanned: a file of many messages
        // (or fields) costs n log n, not n².
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut types: BTreeMap<MessageType, &str> = BTreeMap::new();
        for msg in &doc.message {
            let msg = msg.get_ref();
            let name = msg.name.get_ref();
            let message_type = MessageType::new(i128::from(*msg.message_type.get_ref()));
            if name.is_empty() {
                return Err(at(msg.name.span(), "empty message name".to_owned()));
            }
            if !names.insert(name) {
                return Err(at(
                    msg.name.span(),
                    format!("message name `{name}` is used twice"),
                ));
            }
            if let Some(other) = types.insert(message_type, name) {
                return Err(at(
                    msg.message_type.span(),
                    format!("type {message_type} is already used by `{other}`"),
                ));
            }
            let mut field_names: BTreeSet<&str> = BTreeSet::new();
            let mut fields: Vec<FieldDef> = Vec::with_capacity(msg.fields.len());
            // The bytes of the fixed-size fields so far: at most MAX_FIXED_LEN before each
            // addition of at most MAX_FIXED_LEN, so no overflow.
            let mut fixed = 0usize;
            for field in &msg.fields {
                let field = field.get_ref();
                let field_name = field.name.get_ref();
                let kind_name = field.kind.get_ref();
                if field_name.is_empty() {
                    return Err(at(field.name.span(), "empty field name".to_owned()));
                }
                if !field_names.insert(field_name) {
                    return Err(at(
                        field.name.span(),
                        format!("field `{field_name}` is declared twice in `{name}`"),
                    ));
                }
                if let Some(last) = fields.last().filter(|f| f.kind.is_rest()) {
                    return Err(at(
                        field.name.span(),
                        format!(
                            "field `{}` ({}) fills the rest of the body, so it must be the last field",
                            last.name, last.kind
                        ),
                    ));
                }
                let kind = FieldKind::parse(kind_name).ok_or_else(|| {
                    at(
                        field.kind.span(),
                        format!(
                            "field `{field_name}`: unknown type `{kind_name}` (expected u8, i8, \
                             u16, i16, u32, i32, u64, i64, f32, f64, bool, bytes:N, pad:N, \
                             string or bytes)"
                        ),
                    )
                })?;
                if let Some(order) = field.byte_order.as_ref().filter(|_| !kind.is_number()) {
                    return Err(at(
                        order.span(),
                        format!("field `{field_name}`: byte_order applies to numbers, not {kind}"),
                    ));
                }
                fixed += kind.width().unwrap_or(0);
                if fixed > MAX_FIXED_LEN {
                    return Err(at(
                        field.kind.span(),
                        format!(
                            "field `{field_name}`: the fixed-size fields of `{name}` take \
                             {fixed} bytes up to here, more than the {MAX_FIXED_LEN} a message \
                             may"
                        ),
                    ));
                }
                fields.push(FieldDef {
                    name: field_name.clone(),
                    kind,
                    byte_order: field.byte_order.as_ref().map(|o| (*o.get_ref()).into()),
                });
            }
            messages.push(MessageDef {
                name: name.clone(),
                message_type,
                fields,
            });
        }
        Ok(Self::index(messages))
    }

    /// The name of a message type, if the schema knows it.
    pub fn name_of(&self, message_type: MessageType) -> Option<&str> {
        self.message_of(message_type).map(MessageDef::name)
    }

    /// The message of this type, if the schema knows it.
    pub fn message_of(&self, message_type: MessageType) -> Option<&MessageDef> {
        self.messages.get(*self.by_type.get(&message_type)?)
    }

    /// The message with this name, if the schema knows it.
    pub fn message_named(&self, name: &str) -> Option<&MessageDef> {
        self.messages.get(*self.by_name.get(name)?)
    }

    /// Every message the schema knows, in the order declared.
    pub fn messages(&self) -> &[MessageDef] {
        &self.messages
    }

    /// Whether the schema knows no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// `None` when the schema does not know the type; `Some(Err(reason))` when it knows it but
    /// the body does not fit.
    ///
    /// On success, the message's name and its fields by name (see [`MessageDef::decode`]).
    pub fn decode(
        &self,
        message_type: MessageType,
        body: &[u8],
        order: ByteOrder,
    ) -> Option<Result<Decoded, String>> {
        let msg = self.message_of(message_type)?;
        Some(
            msg.decode(body, order)
                .map(|fields| (msg.name.clone(), fields)),
        )
    }

    /// Encodes message `msg` (by name) from JSON fields; errors name the missing, extra or
    /// out-of-range field.
    ///
    /// # Errors
    ///
    /// A one-line reason: an unknown message name, or any of [`MessageDef::encode`]'s.
    ///
    /// ```
    /// use ltp::schema::Schema;
    /// use ltprotocol::{ByteOrder, MessageType};
    /// let fields = serde_json::json!({"num": 200});
    /// let (message_type, body) =
    ///     Schema::demo().encode("NumMsg", fields.as_object().unwrap(), ByteOrder::Big)?;
    /// assert_eq!((message_type, body), (MessageType::new(1), vec![0, 0, 0, 200]));
    /// # Ok::<(), String>(())
    /// ```
    pub fn encode(
        &self,
        msg: &str,
        fields: &Map<String, Value>,
        order: ByteOrder,
    ) -> Result<(MessageType, Vec<u8>), String> {
        let def = self.message_named(msg).ok_or_else(|| {
            if self.is_empty() {
                format!("unknown message `{msg}`: the schema knows no messages")
            } else {
                let names: Vec<&str> = self.messages.iter().map(MessageDef::name).collect();
                format!("unknown message `{msg}` (known: {})", names.join(", "))
            }
        })?;
        Ok((def.message_type, def.encode(fields, order)?))
    }

    /// Indexes messages already checked for unique names and type numbers.
    fn index(messages: Vec<MessageDef>) -> Self {
        let by_type = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.message_type, i))
            .collect();
        let by_name = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        Self {
            messages,
            by_type,
            by_name,
        }
    }
}

fn message(name: &str, message_type: i128, fields: &[(&str, FieldKind)]) -> MessageDef {
    MessageDef {
        name: name.to_owned(),
        message_type: MessageType::new(message_type),
        fields: fields
            .iter()
            .map(|&(name, kind)| FieldDef {
                name: name.to_owned(),
                kind,
                byte_order: None,
            })
            .collect(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaDoc {
    #[serde(default)]
    message: Vec<Spanned<MessageToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageToml {
    name: Spanned<String>,
    #[serde(rename = "type")]
    message_type: Spanned<i64>,
    #[serde(default)]
    fields: Vec<Spanned<FieldToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    byte_order: Option<Spanned<OrderName>>,
}

/// Decodes one field from the front of `rest`: its JSON value (`None` for padding) and the
/// number of bytes it took.
fn decode_field(
    field: &FieldDef,
    rest: &[u8],
    order: ByteOrder,
) -> Result<(Option<Value>, usize), String> {
    let order = field.byte_order.unwrap_or(order);
    let name = &field.name;
    let Some(width) = field.kind.width() else {
        let value = if field.kind == FieldKind::String {
            let text = std::str::from_utf8(rest).map_err(|e| {
                format!("field `{name}`: invalid UTF-8 at byte {}", e.valid_up_to())
            })?;
            Value::from(text)
        } else {
            Value::from(to_hex(rest))
        };
        return Ok((Some(value), rest.len()));
    };
    let bytes = rest.get(..width).ok_or_else(|| {
        format!(
            "field `{name}` ({}) needs {width} bytes, {} left",
            field.kind,
            rest.len()
        )
    })?;
    let value = match field.kind {
        FieldKind::Int(int) => int.read(bytes, order).map(int_value),
        FieldKind::F32 => array(bytes, order).map(|b| f32_value(f32::from_be_bytes(b))),
        FieldKind::F64 => array(bytes, order).map(|b| f64_value(f64::from_be_bytes(b))),
        FieldKind::Bool => match bytes {
            [0] => Some(Value::Bool(false)),
            [1] => Some(Value::Bool(true)),
            _ => {
                return Err(format!(
                    "field `{name}`: byte {} is not a bool (0 or 1)",
                    to_hex(bytes)
                ));
            }
        },
        FieldKind::Bytes(_) => Some(Value::from(to_hex(bytes))),
        FieldKind::Pad(_) => return Ok((None, width)),
        FieldKind::String | FieldKind::RestBytes => None,
    };
    // `bytes` holds exactly `width` bytes, the width of every fixed kind above.
    let value = value.ok_or_else(|| format!("field `{name}`: internal width mismatch"))?;
    Ok((Some(value), width))
}

/// Encodes one field's JSON value onto `body`; the reason does not name the field.
fn encode_field(
    field: &FieldDef,
    value: &Value,
    order: ByteOrder,
    body: &mut Vec<u8>,
) -> Result<(), String> {
    let order = field.byte_order.unwrap_or(order);
    match field.kind {
        FieldKind::Int(int) => {
            let n = json_int(value)?;
            if !int.holds(n) {
                return Err(format!("{n} does not fit {int}"));
            }
            let mut buf = [0u8; 8];
            let out = buf.get_mut(..int.width()).unwrap_or_default();
            int.write(n, out, order).ok_or("internal width mismatch")?;
            body.extend_from_slice(out);
        }
        FieldKind::F32 => {
            let x = json_float(value)?;
            // Rounding to the nearest f32 is the point.
            let narrow = x as f32;
            if x.is_finite() && !narrow.is_finite() {
                return Err(format!("{value} does not fit f32"));
            }
            body.extend_from_slice(&ordered(narrow.to_be_bytes(), order));
        }
        FieldKind::F64 => {
            let x = json_float(value)?;
            body.extend_from_slice(&ordered(x.to_be_bytes(), order));
        }
        FieldKind::Bool => match value {
            Value::Bool(b) => body.push(u8::from(*b)),
            other => return Err(format!("expected true or false, got {other}")),
        },
        FieldKind::Bytes(n) => {
            let bytes = json_hex(value)?;
            if bytes.len() != n {
                return Err(format!("expected {n} bytes of hex, got {}", bytes.len()));
            }
            body.extend_from_slice(&bytes);
        }
        FieldKind::RestBytes => body.extend_from_slice(&json_hex(value)?),
        FieldKind::String => match value {
            Value::String(s) => body.extend_from_slice(s.as_bytes()),
            other => return Err(format!("expected a string, got {other}")),
        },
        FieldKind::Pad(n) => body.resize(body.len() + n, 0),
    }
    Ok(())
}

/// A JSON integer, exactly: any `i64` or `u64`.
pub(crate) fn json_int(value: &Value) -> Result<i128, String> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
        .ok_or_else(|| format!("expected an integer, got {value}"))
}

/// The JSON number for an integer read from the wire; every 64-bit value is exact.
pub(crate) fn int_value(n: i128) -> Value {
    if let Ok(n) = i64::try_from(n) {
        Value::from(n)
    } else if let Ok(n) = u64::try_from(n) {
        Value::from(n)
    } else {
        Value::from(n.to_string())
    }
}

fn json_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("expected a number, got {n}")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(format!(
                "expected a number, \"NaN\", \"inf\" or \"-inf\", got {value}"
            )),
        },
        other => Err(format!("expected a number, got {other}")),
    }
}

fn json_hex(value: &Value) -> Result<Vec<u8>, String> {
    match value {
        Value::String(s) => from_hex(s),
        other => Err(format!("expected a hex string, got {other}")),
    }
}

fn f64_value(x: f64) -> Value {
    if x.is_nan() {
        Value::from("NaN")
    } else if x.is_infinite() {
        Value::from(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        Value::from(x)
    }
}

fn f32_value(x: f32) -> Value {
    // The shortest decimal that reads back as this f32 (0.1, not 0.10000000149011612).
    let widened = x.to_string().parse::<f64>().unwrap_or(f64::from(x));
    f64_value(if x.is_finite() { widened } else { f64::from(x) })
}

/// The first `N` bytes of `bytes`, as big-endian bytes whatever the wire order.
fn array<const N: usize>(bytes: &[u8], order: ByteOrder) -> Option<[u8; N]> {
    let raw: [u8; N] = bytes.get(..N)?.try_into().ok()?;
    Some(ordered(raw, order))
}

/// Big-endian bytes in `order` (or `order` bytes as big-endian: reversing is its own inverse).
fn ordered<const N: usize>(mut bytes: [u8; N], order: ByteOrder) -> [u8; N] {
    if order == ByteOrder::Little {
        bytes.reverse();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first ```toml block of this file's module documentation.
    fn doc_example() -> String {
        let source = include_str!("schema.rs");
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
    fn module_doc_example_is_the_demo_schema() {
        let schema = Schema::parse_toml(&doc_example(), "doc").unwrap();
        assert_eq!(schema.messages(), Schema::demo().messages());
    }

    #[test]
    fn field_kinds_print_as_they_parse() {
        for name in [
            "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool", "bytes:3",
            "pad:2", "string", "bytes",
        ] {
            assert_eq!(
                FieldKind::parse(name).map(|k| k.to_string()).as_deref(),
                Some(name)
            );
        }
        for bad in [
            "u24",
            "bytes:",
            "bytes:0",
            "pad:x",
            "bytes:16777217",
            "String",
        ] {
            assert_eq!(FieldKind::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn integers_beyond_i64_stay_exact() {
        assert_eq!(int_value(i128::from(u64::MAX)), Value::from(u64::MAX));
        assert_eq!(json_int(&Value::from(u64::MAX)), Ok(i128::from(u64::MAX)));
        assert_eq!(json_int(&Value::from(i64::MIN)), Ok(i128::from(i64::MIN)));
        assert!(json_int(&Value::from(1.5)).is_err());
    }

    #[test]
    fn f32_values_show_their_shortest_decimal() {
        assert_eq!(f32_value(0.1), Value::from(0.1));
        assert_eq!(f32_value(f32::NAN), Value::from("NaN"));
        assert_eq!(f32_value(f32::NEG_INFINITY), Value::from("-inf"));
    }
}
