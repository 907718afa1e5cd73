//! The CLI's parsers without a network: TOML layouts and schemas, JSON input lines, events.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value, json};
use tokio_util::codec::{Decoder, Encoder};

use ltp::ConfigError;
use ltp::json::{Input, message_event, parse_input, parse_input_line, text_line};
use ltp::layout_file::{load_layout, parse_layout_toml};
use ltp::lines::{LineError, LineReader};
use ltp::schema::Schema;
use ltprotocol::{ByteOrder, Frame, FrameCodec, HeaderLayout, MessageType};

fn example(path: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "examples-data", path]
        .iter()
        .collect();
    path.to_string_lossy().into_owned()
}

fn encode(layout: &HeaderLayout, frame: &Frame) -> Vec<u8> {
    let mut wire = BytesMut::new();
    FrameCodec::new(layout.clone())
        .encode(frame, &mut wire)
        .expect("frame encodes");
    wire.to_vec()
}

/// The `File` error's line and problem, or a panic showing what came instead.
fn file_error(result: Result<impl std::fmt::Debug, ConfigError>) -> (usize, String) {
    match result {
        Err(ConfigError::File {
            file,
            line,
            problem,
        }) => {
            assert_eq!(file, "t.toml");
            (line, problem)
        }
        other => panic!("expected a file error, got {other:?}"),
    }
}

fn layout_error(text: &str) -> (usize, String) {
    file_error(parse_layout_toml(text, "t.toml"))
}

fn schema_error(text: &str) -> (usize, String) {
    file_error(Schema::parse_toml(text, "t.toml"))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

// ---- layouts ----

#[test]
fn layout_presets_load_by_name() {
    let ltprotocol = load_layout("ltprotocol").unwrap();
    assert_eq!(ltprotocol.header_len(), 3);
    assert_eq!(ltprotocol.preset_name(), Some("ltprotocol"));
    let openflow = load_layout("openflow").unwrap();
    assert_eq!(openflow.header_len(), 8);
    assert!(openflow.field("xid").is_some());
}

#[test]
fn layout_name_that_is_no_preset_nor_file_is_invalid() {
    let err = load_layout("openflw").unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "unknown layout `openflw`: expected ltprotocol, openflow or a TOML file"
    );
}

#[test]
fn layout_file_that_cannot_be_read_names_the_file() {
    let err = load_layout("no/such/layout.toml").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Unreadable { file, .. } if file == "no/such/layout.toml"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("no/such/layout.toml: cannot read: ")
    );
}

#[test]
fn openflow_layout_file_behaves_as_the_preset() {
    let file = load_layout(&example("layouts/openflow.toml")).unwrap();
    let preset = HeaderLayout::openflow();
    assert_eq!(file.header_len(), preset.header_len());
    assert_eq!(file.length_field(), preset.length_field());
    assert_eq!(file.type_field(), preset.type_field());
    assert_eq!(file.extra_fields(), preset.extra_fields());
    assert_eq!(file.byte_order(), preset.byte_order());
    assert_eq!(file.length_adjustment(), preset.length_adjustment());

    let hello = |layout: &HeaderLayout| {
        Frame::new(MessageType::new(0), Bytes::new()).with_field(layout.field("xid").unwrap(), 1)
    };
    let golden = b"\x04\x00\x00\x08\x00\x00\x00\x01";
    assert_eq!(encode(&file, &hello(&file)), golden);
    assert_eq!(encode(&preset, &hello(&preset)), golden);
}

#[test]
fn ltprotocol_layout_file_with_struct_codes_behaves_as_the_preset() {
    let file = load_layout(&example("layouts/ltprotocol.toml")).unwrap();
    let preset = HeaderLayout::ltprotocol();
    assert_eq!(file.header_len(), 3);
    assert_eq!(file.length_field(), preset.length_field());
    assert_eq!(file.type_field(), preset.type_field());
    let num = Frame::new(MessageType::new(1), Bytes::from_static(&[0, 0, 0, 200]));
    assert_eq!(encode(&file, &num), b"\x00\x07\x01\x00\x00\x00\xc8");
}

#[test]
fn little_endian_body_counting_layout_file_encodes_and_decodes() {
    let layout = load_layout(&example("layouts/little_body.toml")).unwrap();
    assert_eq!(layout.header_len(), 12);
    assert_eq!(layout.length_adjustment(), 12);
    assert_eq!(layout.byte_order(), ByteOrder::Little);
    let seq = layout.field("seq").unwrap();
    let frame = Frame::new(MessageType::new(0x0102), Bytes::from_static(b"ab")).with_field(seq, 5);
    let wire = encode(&layout, &frame);
    assert_eq!(wire, b"\x02\x00\x00\x00\x02\x01\x05\x00\x00\x00\x00\x00ab");
    let decoded = FrameCodec::new(layout)
        .decode(&mut BytesMut::from(&wire[..]))
        .unwrap()
        .unwrap();
    assert_eq!(decoded.message_type, MessageType::new(0x0102));
    assert_eq!(decoded.fields.get(seq), Some(5));
}

#[test]
fn layout_defaults_are_the_ancestors() {
    let layout = parse_layout_toml("", "t.toml").unwrap();
    let preset = HeaderLayout::ltprotocol();
    assert_eq!(layout.header_len(), 3);
    assert_eq!(layout.length_field(), preset.length_field());
    assert_eq!(layout.type_field(), preset.type_field());
    let adjusted = parse_layout_toml("length_counts = -1\n", "t.toml").unwrap();
    assert_eq!(adjusted.length_adjustment(), -1);
}

#[test]
fn layout_overlap_is_reported_at_the_second_field() {
    let text = "[length]\noffset = 0\ntype = \"u16\"\n\n[type]\noffset = 1\ntype = \"u8\"\n";
    let (line, problem) = layout_error(text);
    assert_eq!(line, 5);
    assert_eq!(
        problem,
        "field `length` (bytes 0..2) overlaps field `type` (bytes 1..2)"
    );

    let text = "[[field]]\nname = \"a\"\noffset = 3\ntype = \"u8\"\n\
                [[field]]\nname = \"b\"\noffset = 3\ntype = \"u16\"\n";
    assert_eq!(layout_error(text).0, 5);
}

#[test]
fn layout_with_too_many_fields_is_refused_at_the_first_past_the_maximum() {
    // 10,000 one-byte fields, none overlapping, in a header under 64 KiB: refused by their
    // count, before any pair of them is compared.
    let text: String = (0..10_000)
        .map(|i| {
            format!(
                "[[field]]\nname = \"f{i}\"\noffset = {}\ntype = \"u8\"\n",
                3 + i
            )
        })
        .collect();
    let (line, problem) = layout_error(&text);
    // Four lines per field: the 65th field's table starts on line 4 * 64 + 1.
    assert_eq!(line, 257);
    assert_eq!(
        problem,
        "10000 extra header fields; a layout may have at most 64"
    );
}

#[test]
fn layout_unknown_type_or_struct_code_is_reported_at_its_table() {
    let (line, problem) = layout_error("# comment\n[length]\noffset = 0\ntype = \"u24\"\n");
    assert_eq!(line, 2);
    assert_eq!(
        problem,
        "field `length`: unknown type `u24` (expected u8, i8, u16, i16, u32, i32, u64 or i64)"
    );
    let (line, problem) = layout_error(
        "[type]\noffset = 2\ntype = \"u8\"\n[[field]]\nname = \"x\"\noffset = 3\nstruct = \"Z\"\n",
    );
    assert_eq!(line, 4);
    assert!(
        problem.starts_with("field `x`: unknown struct code `Z`"),
        "{problem}"
    );
    let (_, problem) = layout_error("[type]\noffset = 2\ntype = \"u8\"\nstruct = \"B\"\n");
    assert_eq!(problem, "field `type`: give `type` or `struct`, not both");
    let (_, problem) = layout_error("[type]\noffset = 2\n");
    assert_eq!(problem, "field `type`: missing `type` (or `struct`)");
}

#[test]
fn layout_unknown_keys_are_named_with_their_line() {
    let (line, problem) = layout_error("byte_order = \"big\"\nheader_length = 8\n");
    assert_eq!(line, 2);
    assert!(
        problem.contains("unknown field `header_length`"),
        "{problem}"
    );
    let (line, problem) = layout_error("[length]\noffset = 0\ntype = \"u16\"\nsigned = true\n");
    assert_eq!(line, 4);
    assert!(problem.contains("unknown field `signed`"), "{problem}");
}

#[test]
fn layout_syntax_errors_carry_their_line() {
    let (line, problem) = layout_error("byte_order = \"big\"\n\n[length\noffset = 0\n");
    assert_eq!(line, 3);
    assert!(!problem.contains('\n'), "{problem}");
}

#[test]
fn layout_bad_values_carry_their_line() {
    let (line, problem) = layout_error("\nbyte_order = \"middle\"\n");
    assert_eq!(line, 2);
    assert!(problem.contains("middle"), "{problem}");
    let (line, problem) = layout_error("\n\nlength_counts = \"header\"\n");
    assert_eq!(line, 3);
    assert!(problem.starts_with("length_counts: expected"), "{problem}");
    let (line, problem) = layout_error("header_len = 2\n");
    assert_eq!(line, 1);
    assert_eq!(
        problem,
        "field `type` ends at byte 3, past the 2-byte header"
    );
    let (line, problem) =
        layout_error("[[field]]\nname = \"v\"\noffset = 3\ntype = \"u8\"\ndefault = 256\n");
    assert_eq!(line, 1);
    assert_eq!(problem, "default 256 of field `v` does not fit a u8 field");
    let (line, problem) = layout_error(
        "[[field]]\nname = \"v\"\noffset = 3\ntype = \"u8\"\n\n[[field]]\nname = \"v\"\noffset = 4\ntype = \"u8\"\n",
    );
    assert_eq!(line, 6);
    assert_eq!(problem, "two header fields are named `v`");
    let (line, problem) = layout_error("[[field]]\noffset = 3\ntype = \"u8\"\nname = \"conn\"\n");
    assert_eq!(line, 4);
    assert_eq!(problem, "field name `conn` is reserved for the JSON lines");
    // `ts`: the timestamp of `--timestamps`, read back by `--pace original`.
    let (line, problem) = layout_error("[[field]]\noffset = 3\ntype = \"u8\"\nname = \"ts\"\n");
    assert_eq!(line, 4);
    assert_eq!(problem, "field name `ts` is reserved for the JSON lines");
}

#[test]
fn layout_file_errors_name_the_path_given() {
    let dir = std::env::temp_dir().join(format!("ltp-parsers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[length]\noffset = 0\ntype = \"u16\"\n[type]\noffset = 0\ntype = \"u8\"\n",
    )
    .unwrap();
    let path = path.to_string_lossy().into_owned();
    let err = load_layout(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{path}:4: field `length` (bytes 0..2) overlaps field `type` (bytes 0..1)")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- schemas ----

#[test]
fn schema_presets_load_by_name() {
    assert_eq!(
        Schema::load("demo").unwrap().name_of(MessageType::new(2)),
        Some("StrMsg")
    );
    let openflow = Schema::load("openflow").unwrap();
    for (value, name) in [
        (0, "HELLO"),
        (1, "ERROR"),
        (2, "ECHO_REQUEST"),
        (3, "ECHO_REPLY"),
        (5, "FEATURES_REQUEST"),
        (6, "FEATURES_REPLY"),
        (20, "BARRIER_REQUEST"),
    ] {
        assert_eq!(openflow.name_of(MessageType::new(value)), Some(name));
    }
    let none = Schema::load("none").unwrap();
    assert!(none.is_empty());
    assert!(
        none.decode(MessageType::new(1), &[], ByteOrder::Big)
            .is_none()
    );
    let err = Schema::load("dmeo").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown schema `dmeo`: expected demo, openflow, none or a TOML file"
    );
}

#[test]
fn example_schema_files_equal_the_built_in_ones() {
    let demo = Schema::load(&example("schemas/demo.toml")).unwrap();
    assert_eq!(demo.messages(), Schema::demo().messages());
    let openflow = Schema::load(&example("schemas/openflow.toml")).unwrap();
    assert_eq!(openflow.messages(), Schema::openflow().messages());
}

#[test]
fn demo_schema_decodes_the_ancestors_messages() {
    let demo = Schema::demo();
    let (name, fields) = demo
        .decode(MessageType::new(1), &[0, 0, 0, 0xc8], ByteOrder::Big)
        .unwrap()
        .unwrap();
    assert_eq!(name, "NumMsg");
    assert_eq!(Value::Object(fields), json!({"num": 200}));
    let (name, fields) = demo
        .decode(MessageType::new(2), b"hello world!", ByteOrder::Big)
        .unwrap()
        .unwrap();
    assert_eq!(name, "StrMsg");
    assert_eq!(Value::Object(fields), json!({"str": "hello world!"}));
    assert!(
        demo.decode(MessageType::new(3), &[], ByteOrder::Big)
            .is_none()
    );
}

#[test]
fn decode_failures_name_the_field() {
    let demo = Schema::demo();
    let decode = |t: i128, body: &[u8]| {
        demo.decode(MessageType::new(t), body, ByteOrder::Big)
            .unwrap()
            .unwrap_err()
    };
    assert_eq!(
        decode(1, &[0, 0]),
        "field `num` (u32) needs 4 bytes, 2 left"
    );
    assert_eq!(
        decode(1, &[0, 0, 0, 1, 9]),
        "1 bytes left after the last field `num`"
    );
    assert_eq!(decode(2, b"ok\xff"), "field `str`: invalid UTF-8 at byte 2");
    let openflow = Schema::openflow();
    let err = openflow
        .decode(MessageType::new(5), &[1], ByteOrder::Big)
        .unwrap()
        .unwrap_err();
    assert_eq!(err, "1 bytes in a body that has no fields");
}

#[test]
fn openflow_features_reply_decodes_its_fixed_fields() {
    let body = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa1, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x4f, 0x00, 0x00, 0x00, 0x00,
    ];
    let schema = Schema::openflow();
    let (name, fields) = schema
        .decode(MessageType::new(6), &body, ByteOrder::Big)
        .unwrap()
        .unwrap();
    assert_eq!(name, "FEATURES_REPLY");
    assert_eq!(
        Value::Object(fields.clone()),
        json!({"datapath_id": 161, "n_buffers": 0, "n_tables": 254, "auxiliary_id": 0,
               "capabilities": 0x4f, "reserved": 0})
    );
    let (message_type, encoded) = schema
        .encode("FEATURES_REPLY", &fields, ByteOrder::Big)
        .unwrap();
    assert_eq!(
        (message_type, &encoded[..]),
        (MessageType::new(6), &body[..])
    );
}

#[test]
fn openflow_trailing_bytes_fields_may_be_left_out() {
    let schema = Schema::openflow();
    let hello = schema.encode("HELLO", &Map::new(), ByteOrder::Big).unwrap();
    assert_eq!(hello, (MessageType::new(0), Vec::new()));
    let fields = object(json!({"err_type": 1, "code": 2, "data": "ff"}));
    let error = schema.encode("ERROR", &fields, ByteOrder::Big).unwrap();
    assert_eq!(error.1, [0, 1, 0, 2, 0xff]);
}

#[test]
fn every_field_kind_round_trips_through_json() {
    let schema = Schema::load(&example("schemas/telemetry.toml")).unwrap();
    let reading = object(json!({
        "sensor": 65_535, "channel": 255, "gain": -128, "offset": -32_768,
        "seq": 4_294_967_295_u64, "delta": -2_147_483_648_i64,
        "timestamp_ns": u64::MAX, "drift_ns": i64::MIN,
        "value": 0.1, "precise": -2.5e-300, "ok": true,
        "mac": "0a1b2c3d4e5f", "unit": "°C",
    }));
    for order in [ByteOrder::Big, ByteOrder::Little] {
        let (message_type, body) = schema.encode("Reading", &reading, order).unwrap();
        assert_eq!(message_type, MessageType::new(16));
        // 2+1+1+2+4+4+8+8+4+8+1+3+6 fixed bytes, then the UTF-8 of "°C".
        assert_eq!(body.len(), 52 + 3);
        let (name, fields) = schema.decode(message_type, &body, order).unwrap().unwrap();
        assert_eq!(name, "Reading");
        assert_eq!(fields, reading, "{order:?}");
    }
    let (_, body) = schema.encode("Reading", &reading, ByteOrder::Big).unwrap();
    assert_eq!(body[..2], [0xff, 0xff]);
    assert_eq!(body[6..10], [0xff, 0xff, 0xff, 0xff]); // seq is little-endian in any layout
    assert_eq!(body[10..14], [0x80, 0, 0, 0]);
    assert_eq!(body[42], 1);
    assert_eq!(body[43..46], [0, 0, 0]); // padding
    assert_eq!(body[46..52], [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]);

    let blob = object(json!({"id": 7, "data": "00ff"}));
    let (_, body) = schema.encode("Blob", &blob, ByteOrder::Big).unwrap();
    assert_eq!(body, [0, 0, 0, 7, 0, 0xff]);
    let decoded = schema
        .decode(MessageType::new(17), &body, ByteOrder::Big)
        .unwrap()
        .unwrap();
    assert_eq!(decoded.1, blob);
    let ping = schema
        .decode(MessageType::new(18), &[], ByteOrder::Big)
        .unwrap()
        .unwrap();
    assert_eq!((ping.0.as_str(), ping.1.len()), ("Ping", 0));
}

#[test]
fn non_finite_floats_and_bad_bools_are_handled() {
    let text = "[[message]]\nname = \"F\"\ntype = 1\nfields = [\n\
                { name = \"a\", type = \"f32\" }, { name = \"b\", type = \"f64\" },\n\
                { name = \"ok\", type = \"bool\" },\n]\n";
    let schema = Schema::parse_toml(text, "t.toml").unwrap();
    let fields = object(json!({"a": "NaN", "b": "-inf", "ok": false}));
    let (_, body) = schema.encode("F", &fields, ByteOrder::Big).unwrap();
    let decoded = schema
        .decode(MessageType::new(1), &body, ByteOrder::Big)
        .unwrap()
        .unwrap();
    assert_eq!(decoded.1, fields);
    let mut bad = body;
    bad[12] = 2;
    let err = schema
        .decode(MessageType::new(1), &bad, ByteOrder::Big)
        .unwrap()
        .unwrap_err();
    assert_eq!(err, "field `ok`: byte 02 is not a bool (0 or 1)");
    let too_big = object(json!({"a": 1e300, "b": 0, "ok": true}));
    let err = schema.encode("F", &too_big, ByteOrder::Big).unwrap_err();
    assert_eq!(err, "F field `a`: 1e+300 does not fit f32");
}

#[test]
fn encode_errors_name_the_field() {
    let schema = Schema::load(&example("schemas/telemetry.toml")).unwrap();
    let encode = |msg: &str, fields: Value| {
        schema
            .encode(msg, &object(fields), ByteOrder::Big)
            .unwrap_err()
    };
    assert_eq!(
        encode("Nope", json!({})),
        "unknown message `Nope` (known: Reading, Blob, Ping)"
    );
    assert_eq!(
        encode("Blob", json!({"data": ""})),
        "Blob: missing field `id` (u32)"
    );
    assert_eq!(
        encode("Blob", json!({"id": 1, "size": 2})),
        "Blob has no field `size` (its fields: id, data)"
    );
    assert_eq!(
        encode("Ping", json!({"reserved": 1})),
        "Ping has no field `reserved` (it has none)"
    );
    assert_eq!(
        encode("Blob", json!({"id": 4_294_967_296_u64})),
        "Blob field `id`: 4294967296 does not fit u32"
    );
    assert_eq!(
        encode("Blob", json!({"id": -1})),
        "Blob field `id`: -1 does not fit u32"
    );
    assert_eq!(
        encode("Blob", json!({"id": "1"})),
        "Blob field `id`: expected an integer, got \"1\""
    );
    assert_eq!(
        encode("Blob", json!({"id": 1, "data": "abc"})),
        "Blob field `data`: odd number of hex digits (3)"
    );
    let mut reading = object(json!({
        "sensor": 0, "channel": 0, "gain": 0, "offset": 0, "seq": 0, "delta": 0,
        "timestamp_ns": 0, "drift_ns": 0, "value": 0, "precise": 0, "ok": 1,
        "mac": "000000000000",
    }));
    let err = schema
        .encode("Reading", &reading, ByteOrder::Big)
        .unwrap_err();
    assert_eq!(err, "Reading field `ok`: expected true or false, got 1");
    reading.insert("ok".into(), true.into());
    reading.insert("mac".into(), "00".into());
    let err = schema
        .encode("Reading", &reading, ByteOrder::Big)
        .unwrap_err();
    assert_eq!(err, "Reading field `mac`: expected 6 bytes of hex, got 1");
    assert_eq!(
        Schema::empty()
            .encode("NumMsg", &Map::new(), ByteOrder::Big)
            .unwrap_err(),
        "unknown message `NumMsg`: the schema knows no messages"
    );
}

#[test]
fn schema_file_errors_carry_their_line() {
    let (line, problem) = schema_error(
        "[[message]]\nname = \"A\"\ntype = 1\n\n[[message]]\nname = \"A\"\ntype = 2\n",
    );
    assert_eq!(
        (line, problem.as_str()),
        (6, "message name `A` is used twice")
    );
    let (line, problem) = schema_error(
        "[[message]]\nname = \"A\"\ntype = 1\n\n[[message]]\nname = \"B\"\ntype = 1\n",
    );
    assert_eq!(
        (line, problem.as_str()),
        (7, "type 1 is already used by `A`")
    );
    let (line, problem) = schema_error(
        "[[message]]\nname = \"A\"\ntype = 1\nfields = [\n  { name = \"s\", type = \"string\" },\n  { name = \"n\", type = \"u8\" },\n]\n",
    );
    assert_eq!(line, 6);
    assert_eq!(
        problem,
        "field `s` (string) fills the rest of the body, so it must be the last field"
    );
    let (line, problem) = schema_error(
        "[[message]]\nname = \"A\"\ntype = 1\nfields = [\n  { name = \"n\", type = \"u8\" },\n  { name = \"n\", type = \"u8\" },\n]\n",
    );
    assert_eq!(
        (line, problem.as_str()),
        (6, "field `n` is declared twice in `A`")
    );
    let (line, problem) = schema_error(
        "[[message]]\nname = \"A\"\ntype = 1\n[[message.fields]]\nname = \"n\"\ntype = \"uint8\"\n",
    );
    assert_eq!(line, 6);
    assert!(
        problem.starts_with("field `n`: unknown type `uint8` (expected u8,"),
        "{problem}"
    );
    let (line, problem) = schema_error(
        "[[message]]\nname = \"A\"\ntype = 1\n[[message.fields]]\nname = \"s\"\ntype = \"string\"\nbyte_order = \"little\"\n",
    );
    assert_eq!(line, 7);
    assert_eq!(
        problem,
        "field `s`: byte_order applies to numbers, not string"
    );
    let (line, problem) = schema_error("[[message]]\nname = \"A\"\ntype = 1\nid = 3\n");
    assert_eq!(line, 4);
    assert!(problem.contains("unknown field `id`"), "{problem}");
    let (line, problem) = schema_error("[[message]]\nname = \"A\"\n");
    assert_eq!(line, 1);
    assert!(problem.contains("missing field `type`"), "{problem}");
    let (line, _) = schema_error("[[message]]\nname = \"A\"\ntype = = 1\n");
    assert_eq!(line, 3);
}

#[test]
fn schema_fixed_fields_are_bounded_in_total_not_only_each() {
    // A thousand pads of the largest size, 16 GiB in all for every line that names the
    // message: refused at the second, the first past 16 MiB together.
    let mut text = "[[message]]\nname = \"Pads\"\ntype = 1\n".to_owned();
    for i in 0..1_000 {
        text += &format!("[[message.fields]]\nname = \"p{i}\"\ntype = \"pad:16777216\"\n");
    }
    let (line, problem) = schema_error(&text);
    assert_eq!(line, 9);
    assert_eq!(
        problem,
        "field `p1`: the fixed-size fields of `Pads` take 33554432 bytes up to here, more than \
         the 16777216 a message may"
    );
    // Exactly the maximum together is allowed, and encodes to a body of that size.
    let text = "[[message]]\nname = \"Full\"\ntype = 1\nfields = [\n\
                { name = \"pad\", type = \"pad:16777212\" },\n\
                { name = \"n\", type = \"u32\" },\n]\n";
    let schema = Schema::parse_toml(text, "t.toml").expect("16 MiB in all is allowed");
    let (_, body) = schema
        .encode("Full", &object(json!({"n": 7})), ByteOrder::Big)
        .expect("encodes");
    assert_eq!(body.len(), 16 * 1024 * 1024);
    // The trailing `string` and `bytes` are not fixed: they take what the line gives.
    let text = "[[message]]\nname = \"Tail\"\ntype = 1\nfields = [\n\
                { name = \"pad\", type = \"pad:16777216\" },\n\
                { name = \"rest\", type = \"bytes\" },\n]\n";
    assert!(Schema::parse_toml(text, "t.toml").is_ok());
}

// ---- JSON lines ----

#[test]
fn input_line_by_type_and_hex() {
    let layout = HeaderLayout::ltprotocol();
    let frame = parse_input_line(
        r#"{"type":1,"body_hex":"000000C8"}"#,
        &layout,
        &Schema::empty(),
    )
    .unwrap();
    assert_eq!(
        frame,
        Frame::new(MessageType::new(1), Bytes::from_static(&[0, 0, 0, 200]))
    );
    let empty = parse_input_line(r#"{"type":9}"#, &layout, &Schema::empty()).unwrap();
    assert_eq!(empty, Frame::new(MessageType::new(9), Bytes::new()));
}

#[test]
fn input_line_by_message_name_and_fields() {
    let layout = HeaderLayout::ltprotocol();
    let demo = Schema::demo();
    let frame =
        parse_input_line(r#"{"msg":"NumMsg","fields":{"num":200}}"#, &layout, &demo).unwrap();
    assert_eq!(encode(&layout, &frame), b"\x00\x07\x01\x00\x00\x00\xc8");
    let frame = parse_input_line(
        r#"{"msg":"StrMsg","type":2,"fields":{"str":"hello world!"}}"#,
        &layout,
        &demo,
    )
    .unwrap();
    assert_eq!(frame.message_type, MessageType::new(2));
    assert_eq!(&frame.body[..], b"hello world!");
}

#[test]
fn input_line_sets_header_fields_by_name() {
    let layout = HeaderLayout::openflow();
    let schema = Schema::openflow();
    let frame = parse_input_line(r#"{"msg":"HELLO","xid":1}"#, &layout, &schema).unwrap();
    assert_eq!(encode(&layout, &frame), b"\x04\x00\x00\x08\x00\x00\x00\x01");
    let frame = parse_input_line(
        r#"{"type":2,"body_hex":"ab","xid":4294967295,"version":1}"#,
        &layout,
        &schema,
    )
    .unwrap();
    assert_eq!(
        encode(&layout, &frame),
        b"\x01\x02\x00\x09\xff\xff\xff\xff\xab"
    );
}

#[test]
fn input_line_errors_are_one_line_reasons() {
    let ltprotocol = HeaderLayout::ltprotocol();
    let openflow = HeaderLayout::openflow();
    let demo = Schema::demo();
    let err = |line: &str, layout: &HeaderLayout| {
        let reason = parse_input_line(line, layout, &demo).unwrap_err();
        assert!(!reason.contains('\n'), "{reason}");
        reason
    };
    assert!(err("{\"type\":1", &ltprotocol).starts_with("invalid JSON: "));
    assert_eq!(err("[1]", &ltprotocol), "expected a JSON object, got [1]");
    assert_eq!(err("{}", &ltprotocol), "a line needs \"type\" or \"msg\"");
    assert_eq!(
        err(r#"{"msg":"Num"}"#, &ltprotocol),
        "unknown message `Num` (known: NumMsg, StrMsg)"
    );
    assert_eq!(
        err(r#"{"type":1,"body_hex":"00zz"}"#, &ltprotocol),
        "body_hex: `z` at position 2 is not a hex digit"
    );
    assert_eq!(
        err(r#"{"type":1,"body_hex":"000"}"#, &ltprotocol),
        "body_hex: odd number of hex digits (3)"
    );
    assert_eq!(
        err(r#"{"msg":"NumMsg","fields":{}}"#, &ltprotocol),
        "NumMsg: missing field `num` (u32)"
    );
    assert_eq!(
        err(r#"{"msg":"NumMsg","fields":{"num":-1}}"#, &ltprotocol),
        "NumMsg field `num`: -1 does not fit u32"
    );
    assert_eq!(
        err(r#"{"type":256}"#, &ltprotocol),
        "type 256 does not fit the layout's u8 type field"
    );
    assert_eq!(
        err(r#"{"type":1.5}"#, &ltprotocol),
        "type: expected an integer, got 1.5"
    );
    assert_eq!(
        err(
            r#"{"msg":"NumMsg","type":2,"fields":{"num":1}}"#,
            &ltprotocol
        ),
        "type 2 does not match msg `NumMsg` (type 1)"
    );
    assert_eq!(
        err(r#"{"msg":"NumMsg","body_hex":"00"}"#, &ltprotocol),
        "give either body_hex or msg and fields, not both"
    );
    assert_eq!(
        err(r#"{"type":1,"fields":{"num":1}}"#, &ltprotocol),
        "fields needs msg, the message name"
    );
    assert_eq!(
        err(r#"{"type":1,"xid":1}"#, &ltprotocol),
        "unknown key `xid` (expected type, body_hex, msg, fields, conn, ts, event, decode_error)"
    );
    assert_eq!(
        err(r#"{"type":1,"xdi":1}"#, &openflow),
        "unknown key `xdi` (expected type, body_hex, msg, fields, version, xid, conn, ts, event, \
         decode_error)"
    );
    assert_eq!(
        err(r#"{"type":1,"xid":4294967296}"#, &openflow),
        "header field `xid`: 4294967296 does not fit u32"
    );
    assert_eq!(
        err(r#"{"type":1,"length":7}"#, &ltprotocol),
        "`length` is computed from the body: leave it out"
    );
}

#[test]
fn a_printed_message_event_is_an_input_line_for_its_raw_bytes() {
    let layout = HeaderLayout::openflow();
    let schema = Schema::openflow();
    let line = r#"{"event":"message","ts":1718000000.5,"conn":3,"type":2,"body_hex":"abcd","version":4,"xid":7,"msg":"ECHO_REQUEST","fields":{"data":"abcd"}}"#;
    let Input::Message(message) = parse_input(line, &layout, &schema).unwrap() else {
        panic!("a message event is a message");
    };
    assert_eq!(
        encode(&layout, &message.frame),
        b"\x04\x02\x00\x0a\x00\x00\x00\x07\xab\xcd"
    );
    // A recorded `conn` is where the message arrived, not where it goes.
    assert_eq!(message.conn, None);
    assert_eq!(message.ts, Some(1_718_000_000.5));

    // The raw bytes are exact: sent as they are, whatever `fields` says, even bytes the
    // schema cannot decode (`decode_error`), or with a schema that does not know `msg`.
    let mismatch = r#"{"event":"message","type":2,"body_hex":"01","msg":"ECHO_REQUEST","fields":{"data":"ffff"}}"#;
    let frame = parse_input_line(mismatch, &layout, &schema).unwrap();
    assert_eq!(&frame.body[..], b"\x01");
    let undecodable = r#"{"event":"message","conn":1,"type":1,"body_hex":"0001","msg":"NumMsg","decode_error":"field `num` (u32) needs 4 bytes, 2 left"}"#;
    let demo = HeaderLayout::ltprotocol();
    let frame = parse_input_line(undecodable, &demo, &Schema::demo()).unwrap();
    assert_eq!(encode(&demo, &frame), b"\x00\x05\x01\x00\x01");
    let frame = parse_input_line(undecodable, &demo, &Schema::empty()).unwrap();
    assert_eq!(&frame.body[..], b"\x00\x01");
    // But `msg` must name the type when the schema knows it.
    assert_eq!(
        parse_input_line(
            r#"{"type":2,"body_hex":"00","msg":"NumMsg"}"#,
            &demo,
            &Schema::demo()
        )
        .unwrap_err(),
        "type 2 does not match msg `NumMsg` (type 1)"
    );
}

#[test]
fn other_recorded_events_are_passed_over_and_conn_picks_a_client() {
    let layout = HeaderLayout::ltprotocol();
    let schema = Schema::demo();
    for line in [
        r#"{"event":"listening","addr":"127.0.0.1:9999"}"#,
        r#"{"event":"connected","ts":1.5,"conn":1,"peer":"127.0.0.1:4"}"#,
        r#"{"event":"connect_failed","attempt":1,"error":"refused","retry_in_ms":null}"#,
        r#"{"event":"disconnected","conn":1,"reason":"closed by peer","unsent_frames":0}"#,
        r#"{"event":"summary","sent":1,"skipped":0,"unsent":0,"received":1}"#,
    ] {
        let name = serde_json::from_str::<Value>(line).unwrap()["event"].clone();
        assert_eq!(
            parse_input(line, &layout, &schema),
            Ok(Input::Event(name.as_str().unwrap().to_owned())),
            "{line}"
        );
    }
    assert_eq!(
        parse_input_line(r#"{"event":"connected"}"#, &layout, &schema).unwrap_err(),
        "a `connected` event has no message to send"
    );
    assert_eq!(
        parse_input(r#"{"event":7}"#, &layout, &schema).unwrap_err(),
        "event: expected an event name, got 7"
    );
    // A line written to be sent (no `event`) picks a client of `ltp serve` with `conn`.
    let Input::Message(message) =
        parse_input(r#"{"type":1,"conn":2,"ts":3}"#, &layout, &schema).unwrap()
    else {
        panic!("a message");
    };
    assert_eq!((message.conn, message.ts), (Some(2), Some(3.0)));
    assert_eq!(
        parse_input(r#"{"type":1,"conn":-1}"#, &layout, &schema).unwrap_err(),
        "conn: -1 is not a client"
    );
    assert_eq!(
        parse_input(r#"{"type":1,"ts":"noon"}"#, &layout, &schema).unwrap_err(),
        r#"ts: expected Unix seconds, got "noon""#
    );
}

#[test]
fn message_event_has_the_documented_keys() {
    let ltprotocol = HeaderLayout::ltprotocol();
    let num = Frame::new(MessageType::new(1), Bytes::from_static(&[0, 0, 0, 0xc8]));
    let event = message_event(1, &num, &ltprotocol, &Schema::demo());
    assert_eq!(
        event,
        json!({"event":"message","conn":1,"type":1,"body_hex":"000000c8",
               "msg":"NumMsg","fields":{"num":200}})
    );

    let unknown = message_event(2, &num, &ltprotocol, &Schema::empty());
    assert_eq!(keys(&unknown), ["body_hex", "conn", "event", "type"]);

    let short = Frame::new(MessageType::new(1), Bytes::from_static(&[0, 1]));
    let event = message_event(3, &short, &ltprotocol, &Schema::demo());
    assert_eq!(
        event,
        json!({"event":"message","conn":3,"type":1,"body_hex":"0001","msg":"NumMsg",
               "decode_error":"field `num` (u32) needs 4 bytes, 2 left"})
    );

    let openflow = HeaderLayout::openflow();
    let mut wire = BytesMut::from(&b"\x04\x02\x00\x0a\x00\x00\x00\x07\xab\xcd"[..]);
    let echo = FrameCodec::new(openflow.clone())
        .decode(&mut wire)
        .unwrap()
        .unwrap();
    let event = message_event(4, &echo, &openflow, &Schema::openflow());
    assert_eq!(
        event,
        json!({"event":"message","conn":4,"type":2,"body_hex":"abcd","version":4,"xid":7,
               "msg":"ECHO_REQUEST","fields":{"data":"abcd"}})
    );
}

#[test]
fn message_event_and_input_line_round_trip() {
    let layout = HeaderLayout::openflow();
    let schema = Schema::openflow();
    let line = r#"{"msg":"FEATURES_REPLY","xid":9,"fields":{"datapath_id":18446744073709551615,"n_buffers":256,"n_tables":254,"auxiliary_id":0,"capabilities":79,"reserved":0}}"#;
    let frame = parse_input_line(line, &layout, &schema).unwrap();
    let event = object(message_event(1, &frame, &layout, &schema));
    let mut again = event.clone();
    for key in ["event", "conn", "body_hex", "type"] {
        again.remove(key);
    }
    let frame_again =
        parse_input_line(&Value::Object(again).to_string(), &layout, &schema).unwrap();
    assert_eq!(encode(&layout, &frame_again), encode(&layout, &frame));
    assert_eq!(event["fields"]["datapath_id"], json!(u64::MAX));
    assert_eq!(event["version"], json!(4));
}

#[test]
fn text_lines_are_readable() {
    let cases = [
        (
            json!({"event":"listening","addr":"127.0.0.1:9999"}),
            "listening on 127.0.0.1:9999",
        ),
        (
            json!({"event":"connected","conn":1,"peer":"127.0.0.1:50312"}),
            "[#1] connected 127.0.0.1:50312",
        ),
        (
            json!({"event":"disconnected","conn":1,"reason":"closed by peer"}),
            "[#1] disconnected: closed by peer",
        ),
        (
            json!({"event":"error","conn":1,"error":"length 0 is smaller than the 3-byte header"}),
            "[#1] error: length 0 is smaller than the 3-byte header",
        ),
        (
            json!({"event":"message","conn":1,"type":1,"body_hex":"000000c8","msg":"NumMsg",
                   "fields":{"num":200}}),
            "[#1] message NumMsg num=200 (type 1, 4 bytes)",
        ),
        (
            json!({"event":"message","conn":2,"type":2,"body_hex":"6869","msg":"StrMsg",
                   "fields":{"str":"hi"}}),
            "[#2] message StrMsg str=\"hi\" (type 2, 2 bytes)",
        ),
        (
            json!({"event":"message","conn":1,"type":0,"body_hex":"","version":4,"xid":1,
                   "msg":"HELLO","fields":{"elements":""}}),
            "[#1] message HELLO elements=\"\" (type 0, 0 bytes, version=4 xid=1)",
        ),
        (
            json!({"event":"message","conn":1,"type":9,"body_hex":"0102"}),
            "[#1] message type 9 body=0102 (2 bytes)",
        ),
        (
            json!({"event":"message","conn":3,"type":1,"body_hex":"0001","msg":"NumMsg",
                   "decode_error":"field `num` (u32) needs 4 bytes, 2 left"}),
            "[#3] message NumMsg body=0001 (type 1, 2 bytes): cannot decode: \
             field `num` (u32) needs 4 bytes, 2 left",
        ),
        (
            json!({"event":"report","count":3}),
            r#"{"event":"report","count":3}"#,
        ),
        (json!({"event":"connected"}), r#"{"event":"connected"}"#),
        (json!([1, 2]), "[1,2]"),
    ];
    for (event, text) in cases {
        assert_eq!(text_line(&event), text);
    }
}

#[test]
fn message_events_print_as_text() {
    let layout = HeaderLayout::ltprotocol();
    let frame = Frame::new(MessageType::new(2), Bytes::from_static(b"hello world!"));
    let event = message_event(1, &frame, &layout, &Schema::demo());
    assert_eq!(
        text_line(&event),
        "[#1] message StrMsg str=\"hello world!\" (type 2, 12 bytes)"
    );
}

// ---- stdin lines ----

/// Every line of `input` (any `AsyncRead`), read `chunk` bytes at a time with `limit`.
fn read_lines(
    input: impl tokio::io::AsyncRead + Unpin,
    chunk: usize,
    limit: usize,
) -> Vec<(u64, Result<String, LineError>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let reader = tokio::io::BufReader::with_capacity(chunk, input);
        let mut lines = LineReader::new(reader, limit);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.expect("reads") {
            out.push((line.number, line.text.map(str::to_owned)));
        }
        out
    })
}

#[test]
fn lines_are_the_same_whatever_the_chunking() {
    let input: &[u8] = b"one\r\n\nthree is long\nfour\nfive";
    let expected = vec![
        (1, Ok("one".to_owned())),
        (2, Ok(String::new())),
        (3, Err(LineError::TooLong { limit: 8 })),
        (4, Ok("four".to_owned())),
        (5, Ok("five".to_owned())),
    ];
    for chunk in 1..=input.len() {
        assert_eq!(read_lines(input, chunk, 8), expected, "chunks of {chunk}");
    }
}

#[test]
fn line_limit_is_inclusive_and_excludes_the_newline() {
    let read = |input: &'static [u8]| read_lines(input, 2, 5);
    assert_eq!(read(b"12345\n"), vec![(1, Ok("12345".to_owned()))]);
    let too_long = Err(LineError::TooLong { limit: 5 });
    assert_eq!(
        read(b"123456\n7"),
        vec![(1, too_long.clone()), (2, Ok("7".to_owned()))]
    );
    // A last line past the limit, with no newline, is reported too.
    assert_eq!(
        read(b"ok\n123456"),
        vec![(1, Ok("ok".to_owned())), (2, too_long)]
    );
}

#[test]
fn an_over_long_line_is_skipped_as_it_streams_and_reading_resumes() {
    // 64 MiB with no newline, read with a 1 KiB limit, then a short line.
    let endless = tokio::io::AsyncReadExt::take(tokio::io::repeat(b'a'), 64 << 20);
    let input = tokio::io::AsyncReadExt::chain(endless, &b"\nok\n"[..]);
    assert_eq!(
        read_lines(input, 8 * 1024, 1024),
        vec![
            (1, Err(LineError::TooLong { limit: 1024 })),
            (2, Ok("ok".to_owned()))
        ]
    );
}

#[test]
fn invalid_utf8_is_a_skipped_line_not_an_error() {
    assert_eq!(
        read_lines(&b"a\xffb\nc\n"[..], 3, 10),
        vec![
            (1, Err(LineError::NotUtf8 { valid_up_to: 1 })),
            (2, Ok("c".to_owned()))
        ]
    );
    assert_eq!(read_lines(&b""[..], 3, 10), vec![]);
}
