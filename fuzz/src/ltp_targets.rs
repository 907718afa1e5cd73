//! Entry points of the fuzz targets for the `ltp` parsers (`layout_toml`, `schema_toml`,
//! `json_line`), shared with `ltp/tests/fuzz_corpus.rs` (which includes this file by path), so
//! the corpus replays through exactly the checks the fuzzers ran.
//!
//! Each takes arbitrary bytes and panics when an invariant breaks; a refused input (with a
//! one-line reason) is an expected outcome.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

use ltp::ConfigError;
use ltp::json::{message_event, parse_input_line, text_line};
use ltp::layout_file::parse_layout_toml;
use ltp::schema::{FieldKind, MessageDef, Schema};
use ltprotocol::{ByteOrder, EncodeError, Frame, FrameCodec, HeaderLayout, MessageType};

/// The largest body the schema checks build (a `pad:16777216` field is legal).
const MAX_BODY: usize = 64 * 1024;

/// A configuration error must be one line naming the file, and the line within the text.
fn check_config_error(err: &ConfigError, text: &str) {
    let shown = err.to_string();
    assert!(!shown.contains('\n'), "multi-line error: {shown:?}");
    match err {
        ConfigError::File { file, line, .. } => {
            assert_eq!(file, "fuzz.toml");
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(line),
                "line {line} of {lines}: {shown}"
            );
        }
        other => panic!("parsing text gave a non-file error: {other:?}"),
    }
}

/// Fuzz target `layout_toml`: arbitrary UTF-8 as a layout file.
///
/// Checks: no panic; an error is one line at a line of the text; a layout keeps every field
/// inside its header with no overlap, and a small frame in it encodes and decodes back (or is
/// refused with a typed error).
pub fn layout_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let layout = match parse_layout_toml(text, "fuzz.toml") {
        Ok(layout) => layout,
        Err(err) => return check_config_error(&err, text),
    };
    let header_len = layout.header_len();
    assert!(header_len <= ltprotocol::MAX_HEADER_LEN, "header too long");
    assert!(
        layout.extra_fields().len() <= ltprotocol::MAX_EXTRA_FIELDS,
        "too many fields"
    );
    let mut fields = vec![layout.length_field(), layout.type_field()];
    fields.extend(layout.extra_fields());
    for (i, a) in fields.iter().enumerate() {
        assert!(
            a.end() <= header_len,
            "field `{}` past the header",
            a.name()
        );
        for b in fields.iter().skip(i + 1) {
            assert!(a.end() <= b.offset() || b.end() <= a.offset(), "overlap");
        }
    }
    if header_len > MAX_BODY {
        // A legal but absurd header: no frame of it fits in memory to try.
        return;
    }
    for body in [&b""[..], b"\xab\xcd\xef"] {
        round_trip_frame(
            &layout,
            Frame::new(MessageType::new(0), Bytes::from_static(body)),
        );
    }
}

/// Encodes `frame`; if that works, it decodes back to the same frame, defaults filled in.
fn round_trip_frame(layout: &HeaderLayout, frame: Frame) {
    let mut codec = FrameCodec::new(layout.clone());
    let mut wire = BytesMut::new();
    match codec.encode(&frame, &mut wire) {
        Ok(()) => {}
        Err(EncodeError::TooLarge { length, max }) => {
            assert!(length > max);
            assert!(wire.is_empty(), "a refused frame left bytes behind");
            return;
        }
        Err(EncodeError::LengthOutOfRange { raw, int, .. }) => {
            assert!(raw < 0 || !int.holds(raw));
            assert!(wire.is_empty(), "a refused frame left bytes behind");
            return;
        }
        Err(err) => panic!("{frame:?} refused: {err}"),
    }
    assert_eq!(wire.len(), layout.header_len() + frame.body.len());
    let decoded = match codec.decode_eof(&mut wire) {
        Ok(Some(decoded)) => decoded,
        other => panic!("an encoded frame decodes as {other:?}"),
    };
    assert!(wire.is_empty(), "bytes left after the frame");
    assert_eq!(decoded.message_type, frame.message_type);
    assert_eq!(decoded.body, frame.body);
    for spec in layout.extra_fields() {
        let sent = frame
            .fields
            .get_named(layout, spec.name())
            .unwrap_or(spec.default_value());
        assert_eq!(decoded.fields.get_named(layout, spec.name()), Some(sent));
    }
}

/// Fuzz target `schema_toml`: arbitrary UTF-8 as a schema file.
///
/// Checks: no panic; an error is one line at a line of the text; for each message of a
/// schema, bodies of its size decode (or are refused), what decodes encodes back to a body of
/// the same size that decodes to the same fields (and to the same bytes when the message has
/// no padding and no floats).
pub fn schema_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = match Schema::parse_toml(text, "fuzz.toml") {
        Ok(schema) => schema,
        Err(err) => return check_config_error(&err, text),
    };
    for def in schema.messages() {
        assert_eq!(
            schema.name_of(def.message_type()),
            Some(def.name()),
            "type index"
        );
        assert!(schema.message_named(def.name()).is_some(), "name index");
        let fixed = def
            .fields()
            .iter()
            .map(|f| f.kind().width().unwrap_or(0))
            .fold(0usize, usize::saturating_add);
        assert!(
            fixed <= ltp::schema::MAX_FIXED_LEN,
            "fixed fields past the bound"
        );
        if fixed > MAX_BODY {
            continue;
        }
        let mut bodies = vec![
            Vec::new(),
            vec![0; fixed],
            vec![1; fixed],
            vec![1; fixed + 3],
            data.get(..fixed).unwrap_or(data).to_vec(),
        ];
        bodies.push(data.iter().rev().copied().take(fixed + 1).collect());
        for body in &bodies {
            for order in [ByteOrder::Big, ByteOrder::Little] {
                check_schema_body(def, body, order);
            }
        }
        if let Ok(body) = def.encode(&Map::new(), ByteOrder::Big) {
            assert!(
                def.decode(&body, ByteOrder::Big).is_ok(),
                "{}: an encoded empty message does not decode",
                def.name()
            );
        }
    }
}

fn check_schema_body(def: &MessageDef, body: &[u8], order: ByteOrder) {
    let Ok(fields) = def.decode(body, order) else {
        return;
    };
    let again = match def.encode(&fields, order) {
        Ok(again) => again,
        Err(err) => panic!(
            "{}: decoded fields {fields:?} do not encode: {err}",
            def.name()
        ),
    };
    assert_eq!(again.len(), body.len(), "{}: re-encoded size", def.name());
    match def.decode(&again, order) {
        Ok(twice) => assert_eq!(twice, fields, "{}: fields after a round trip", def.name()),
        Err(err) => panic!("{}: a re-encoded body does not decode: {err}", def.name()),
    }
    let exact = def.fields().iter().all(|f| {
        !matches!(
            f.kind(),
            FieldKind::Pad(_) | FieldKind::F32 | FieldKind::F64
        )
    });
    if exact {
        assert_eq!(again, body, "{}: re-encoded body", def.name());
    }
}

/// A little-endian layout with a signed length counting the body, a signed type, two extra
/// fields and a reserved byte.
const CUSTOM_LAYOUT: &str = r#"
byte_order = "little"
length_counts = "body"
header_len = 16
[length]
offset = 0
type = "i32"
[type]
offset = 4
struct = "h"
[[field]]
name = "seq"
offset = 6
type = "i64"
[[field]]
name = "flag"
offset = 14
type = "u8"
default = 7
"#;

/// Every field kind, byte order overrides, a negative type and one too wide for an `i16`.
const CUSTOM_SCHEMA: &str = r#"
[[message]]
name = "Reading"
type = 16
fields = [
  { name = "sensor", type = "u16" },
  { name = "gain", type = "i8" },
  { name = "seq", type = "u32", byte_order = "big" },
  { name = "drift", type = "i64" },
  { name = "big", type = "u64" },
  { name = "value", type = "f32" },
  { name = "precise", type = "f64", byte_order = "big" },
  { name = "ok", type = "bool" },
  { name = "reserved", type = "pad:3" },
  { name = "mac", type = "bytes:6" },
  { name = "unit", type = "string" },
]
[[message]]
name = "Blob"
type = -2
fields = [ { name = "id", type = "i16" }, { name = "data", type = "bytes" } ]
[[message]]
name = "Wide"
type = 70000
[[message]]
name = "Ping"
type = 0
"#;

/// The (layout, schema) pairs `json_line` picks from with its first byte.
fn configs() -> &'static [(HeaderLayout, Schema)] {
    static CONFIGS: OnceLock<Vec<(HeaderLayout, Schema)>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let custom = (
            parse_layout_toml(CUSTOM_LAYOUT, "custom.toml"),
            Schema::parse_toml(CUSTOM_SCHEMA, "custom.toml"),
        );
        let (Ok(layout), Ok(schema)) = custom else {
            panic!("the custom layout or schema does not parse: {custom:?}");
        };
        vec![
            (HeaderLayout::ltprotocol(), Schema::demo()),
            (HeaderLayout::openflow(), Schema::openflow()),
            (layout, schema),
            (HeaderLayout::ltprotocol(), Schema::empty()),
        ]
    })
}

/// Fuzz target `json_line`: the first byte picks a layout and schema (demo, OpenFlow, a
/// custom one with every field kind, or none), the rest is an input line.
///
/// Checks: no panic; an error is one line; a parsed frame encodes (or is refused as too
/// large) and decodes back to itself; its `message` event and text line are one line each;
/// decoded fields encode back to the same body but for its padding (written as zeros), and
/// show the same fields again; the event as printed, and the event less its output-only keys,
/// are input lines for the same frame.
pub fn json_line(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(line) = std::str::from_utf8(rest) else {
        return;
    };
    let configs = configs();
    let Some((layout, schema)) = configs.get(usize::from(selector) % configs.len()) else {
        return;
    };
    let frame = match parse_input_line(line, layout, schema) {
        Ok(frame) => frame,
        Err(reason) => {
            assert!(!reason.contains('\n'), "multi-line error: {reason:?}");
            return;
        }
    };
    assert!(layout.type_field().int().holds(frame.message_type.value()));

    let mut codec = FrameCodec::new(layout.clone());
    let mut wire = BytesMut::new();
    match codec.encode(&frame, &mut wire) {
        Ok(()) => {}
        Err(EncodeError::TooLarge { length, max }) => {
            assert!(length > max);
            return;
        }
        Err(err) => panic!("a parsed line does not encode: {err} ({frame:?})"),
    }
    let decoded = match codec.decode_eof(&mut wire) {
        Ok(Some(decoded)) => decoded,
        other => panic!("an encoded line decodes as {other:?}"),
    };
    assert!(wire.is_empty(), "bytes left after the frame");
    assert_eq!(decoded.message_type, frame.message_type);
    assert_eq!(decoded.body, frame.body);
    for spec in layout.extra_fields() {
        let sent = frame
            .fields
            .get_named(layout, spec.name())
            .unwrap_or(spec.default_value());
        assert_eq!(decoded.fields.get_named(layout, spec.name()), Some(sent));
    }

    let event = message_event(1, &decoded, layout, schema);
    let shown = event.to_string();
    assert!(!shown.contains('\n'), "multi-line event: {shown}");
    // What reaches stdout carries no control character (a peer's string field could), and
    // the JSON line is the same event to a JSON reader.
    let text = text_line(&event);
    assert!(
        !text.contains(char::is_control),
        "control in text: {text:?}"
    );
    let json = ltp::json::json_line(&event);
    assert!(
        !json.contains(char::is_control),
        "control in JSON: {json:?}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&json).ok(),
        Some(event.clone())
    );

    // A line with both the raw `type` and `body_hex` (a recorded event) is sent as those
    // bytes, whatever its `msg` says: only a line without them is built from the schema.
    let given = serde_json::from_str::<Value>(line).ok();
    let raw = given
        .as_ref()
        .is_some_and(|v| v.get("type").is_some() && v.get("body_hex").is_some());
    let by_name = given.and_then(|v| v.get("msg").cloned()).filter(|_| !raw);
    match (event.get("msg"), event.get("fields")) {
        (Some(Value::String(name)), Some(Value::Object(fields))) => {
            let again = schema.encode(name, fields, layout.byte_order());
            let (message_type, body) =
                again.unwrap_or_else(|err| panic!("decoded fields do not encode: {err}"));
            assert_eq!(message_type, decoded.message_type);
            // Padding is skipped when decoding and written as zeros when encoding: the
            // bodies may differ there only, and the re-encoded one shows the same fields.
            assert_eq!(
                body.len(),
                decoded.body.len(),
                "fields {fields:?} re-encoded"
            );
            for (again, received) in body.iter().zip(decoded.body.iter()) {
                assert!(
                    again == received || *again == 0,
                    "fields {fields:?} re-encoded: {body:?} against {:?}",
                    decoded.body
                );
            }
            let again = Frame {
                message_type,
                fields: decoded.fields.clone(),
                body: Bytes::copy_from_slice(&body),
            };
            let shown_again = message_event(1, &again, layout, schema);
            assert_eq!(
                shown_again.get("fields"),
                Some(&Value::Object(fields.clone())),
                "fields {fields:?} re-encoded"
            );
        }
        _ => assert!(
            by_name.is_none(),
            "a body built from the schema does not decode: {shown}"
        ),
    }

    // The event as printed is an input line for the same frame (a recording replays).
    match parse_input_line(&json, layout, schema) {
        Ok(replayed) => {
            assert_eq!(replayed.message_type, decoded.message_type);
            assert_eq!(replayed.body, decoded.body);
            for (id, value) in decoded.fields.iter() {
                assert_eq!(replayed.fields.get(id), Some(value), "{json}");
            }
        }
        Err(err) => panic!("the event {json} does not replay: {err}"),
    }

    // The event, less its output-only keys, is an input line for the same frame.
    let Value::Object(mut object) = event else {
        panic!("an event is not an object: {shown}");
    };
    for key in ["event", "conn", "msg", "fields", "decode_error"] {
        object.remove(key);
    }
    let again = Value::Object(object).to_string();
    match parse_input_line(&again, layout, schema) {
        Ok(frame) => {
            assert_eq!(frame.message_type, decoded.message_type);
            assert_eq!(frame.body, decoded.body);
            for (id, value) in decoded.fields.iter() {
                assert_eq!(frame.fields.get(id), Some(value), "{again}");
            }
        }
        Err(err) => panic!("the event as an input line {again} fails: {err}"),
    }
}
