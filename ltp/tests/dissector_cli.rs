//! `ltp dissector` end to end: the Lua script it prints, loaded by the real `tshark`, decodes
//! captures of what the built `ltp connect` sent over 127.0.0.1.
//!
//! Each test records the bytes `ltp connect` sends to a plain TCP listener of the test
//! (127.0.0.1, a port the kernel picks) and writes them as a classic pcap file (libpcap
//! format, Ethernet, IPv4 and TCP headers with the real addresses and ports, a handshake, then
//! the bytes in segments of the sizes the test chooses), which `tshark -X lua_script:…` reads
//! back. The tests skip with a note when `tshark` is missing, unless `LTP_REQUIRE_TSHARK` is
//! set (as in CI), when they fail instead.

mod common;
mod dissector_support;

use common::*;
use dissector_support::*;
use serde_json::json;

const DEMO_INPUT: &str = concat!(
    r#"{"msg":"NumMsg","fields":{"num":200}}"#,
    "\n",
    r#"{"msg":"StrMsg","fields":{"str":"hello world!"}}"#,
    "\n",
    r#"{"msg":"NumMsg","fields":{"num":7}}"#,
    "\n",
);

// ---------------------------------------------------------------------------------------------
// The demo protocol.

#[test]
fn a_demo_session_shows_num_msg_200_and_str_msg_hello_world() {
    if !have_tshark() {
        return;
    }
    let rec = record(&["--schema", "demo"], DEMO_INPUT);
    assert_eq!(rec.bytes.len(), 7 + 15 + 7, "{:?}", rec.bytes);
    // Registered on the server's port by --port: no Decode As needed. One segment per
    // message, as ltp sent them.
    let port = rec.server.port().to_string();
    let case = Case::new(
        "demo",
        &["--schema", "demo", "--port", &port],
        &rec,
        &[7, 15, 7],
    );
    let rows = case.fields(
        None,
        "ltp_demo",
        &[
            "ltp_demo.length",
            "ltp_demo.type",
            "ltp_demo.msg",
            "ltp_demo.nummsg.num",
            "ltp_demo.strmsg.str",
        ],
    );
    assert_eq!(
        rows,
        [
            "7|1|NumMsg|200|",
            "15|2|StrMsg||hello world!",
            "7|1|NumMsg|7|"
        ]
    );
    case.assert_clean(None);
    // Filters by field and by message name.
    let hello = case.fields(
        None,
        "ltp_demo.strmsg.str == \"hello world!\"",
        &["frame.number"],
    );
    assert_eq!(hello.len(), 1, "{hello:?}");
    let nums = case.fields(None, "ltp_demo.msg == \"NumMsg\"", &["ltp_demo.nummsg.num"]);
    assert_eq!(nums, ["200", "7"]);
}

#[test]
fn messages_split_across_one_to_three_byte_segments_reassemble() {
    if !have_tshark() {
        return;
    }
    let rec = record(&["--schema", "demo"], DEMO_INPUT);
    // No --port: the dissector is picked with Decode As (`-d tcp.port==PORT,ltp_demo`).
    let case = Case::new("tiny", &["--schema", "demo"], &rec, &[1, 2, 3]);
    let rows = case.fields(
        Some("ltp_demo"),
        "ltp_demo",
        &["ltp_demo.msg", "ltp_demo.nummsg.num", "ltp_demo.strmsg.str"],
    );
    assert_eq!(rows, ["NumMsg|200|", "StrMsg||hello world!", "NumMsg|7|"]);
    case.assert_clean(Some("ltp_demo"));
    // Without Decode As nor --port, the port is not ours: nothing is decoded.
    assert_eq!(
        case.fields(None, "ltp_demo", &["ltp_demo.msg"]),
        Vec::<String>::new()
    );
}

#[test]
fn several_messages_in_one_segment_are_each_decoded() {
    if !have_tshark() {
        return;
    }
    let rec = record(&["--schema", "demo"], DEMO_INPUT);
    let case = Case::new("one-segment", &["--schema", "demo"], &rec, &[4096]);
    let rows = case.fields(
        Some("ltp_demo"),
        "ltp_demo",
        &["ltp_demo.msg", "ltp_demo.nummsg.num", "ltp_demo.strmsg.str"],
    );
    assert_eq!(rows, ["NumMsg,StrMsg,NumMsg|200,7|hello world!"]);
    case.assert_clean(Some("ltp_demo"));
}

// ---------------------------------------------------------------------------------------------
// Other layouts and schemas.

#[test]
fn openflow_layout_and_schema_show_header_fields_and_bodies() {
    if !have_tshark() {
        return;
    }
    let input = [
        json!({"msg": "HELLO", "xid": 1}),
        json!({"msg": "FEATURES_REPLY", "xid": 2, "fields": {
            "datapath_id": 18_446_744_073_709_551_615_u64, "n_buffers": 256, "n_tables": 254,
            "auxiliary_id": 0, "capabilities": 79, "reserved": 0}}),
        json!({"msg": "ECHO_REQUEST", "xid": 3, "fields": {"data": "abcd"}}),
        json!({"msg": "ROLE_REQUEST", "xid": 4, "fields": {"role": 2, "generation_id": 9}}),
        // FLOW_MOD is not in the schema: its body is shown as bytes, with a note.
        json!({"type": 14, "xid": 5, "body_hex": "0102"}),
    ];
    let input: String = input.iter().map(|line| format!("{line}\n")).collect();
    let args = ["--layout", "openflow", "--schema", "openflow"];
    let rec = record(&args, &input);
    let case = Case::new("openflow", &args, &rec, &[5]);
    let rows = case.fields(
        Some("ltp_openflow"),
        "ltp_openflow",
        &[
            "ltp_openflow.version",
            "ltp_openflow.type",
            "ltp_openflow.length",
            "ltp_openflow.xid",
            "ltp_openflow.msg",
            "ltp_openflow.features_reply.datapath_id",
            "ltp_openflow.features_reply.n_tables",
            "ltp_openflow.features_reply.capabilities",
            "ltp_openflow.echo_request.data",
            "ltp_openflow.role_request.role",
            "ltp_openflow.role_request.generation_id",
            "ltp_openflow.body",
        ],
    );
    assert_eq!(
        rows,
        [
            "4|0|8|1|HELLO|||||||",
            "4|6|32|2|FEATURES_REPLY|18446744073709551615|254|79||||",
            "4|2|10|3|ECHO_REQUEST||||abcd|||",
            "4|24|24|4|ROLE_REQUEST|||||2|9|",
            "4|14|10|5||||||||0102",
        ]
    );
    // The unknown type is a note, not a problem.
    case.assert_clean(Some("ltp_openflow"));
    let notes = case.fields(
        Some("ltp_openflow"),
        "ltp_openflow.expert.unknown_type",
        &["_ws.expert.message"],
    );
    assert_eq!(notes, ["type 14 is not in the schema"]);

    // With --schema none, the same capture shows headers and bodies as bytes; the name comes
    // from the layout.
    let case = Case::new(
        "openflow-none",
        &["--layout", "openflow", "--schema", "none"],
        &rec,
        &[64],
    );
    let rows = case.fields(
        Some("ltp_openflow"),
        "ltp_openflow",
        &["ltp_openflow.type", "ltp_openflow.xid", "ltp_openflow.msg"],
    );
    assert_eq!(rows, ["0,6,2|1,2,3|", "24,14|4,5|"]);
    case.assert_clean(Some("ltp_openflow"));
}

/// A `Reading` of `schemas/telemetry.toml` with every field type, a `Blob` and a `Ping`.
fn telemetry_input() -> String {
    let lines = [
        json!({"msg": "Reading", "seq": 77, "fields": {
            "sensor": 513, "channel": 3, "gain": -2, "offset": -300, "seq": 123_456,
            "delta": -70_000, "timestamp_ns": 18_446_744_073_709_551_615_u64,
            "drift_ns": i64::MIN, "value": 0.5, "precise": -2.25, "ok": true,
            "mac": "0a0b0c0d0e0f", "unit": "°C"}}),
        json!({"msg": "Blob", "fields": {"id": 9, "data": "cafe"}}),
        json!({"msg": "Ping"}),
    ];
    lines.iter().map(|line| format!("{line}\n")).collect()
}

const TELEMETRY_FIELDS: [&str; 17] = [
    "ltp_telemetry.msg",
    "ltp_telemetry.reading.sensor",
    "ltp_telemetry.reading.channel",
    "ltp_telemetry.reading.gain",
    "ltp_telemetry.reading.offset",
    "ltp_telemetry.reading.seq",
    "ltp_telemetry.reading.delta",
    "ltp_telemetry.reading.timestamp_ns",
    "ltp_telemetry.reading.drift_ns",
    "ltp_telemetry.reading.value",
    "ltp_telemetry.reading.precise",
    "ltp_telemetry.reading.ok",
    "ltp_telemetry.reading.reserved",
    "ltp_telemetry.reading.mac",
    "ltp_telemetry.reading.unit",
    "ltp_telemetry.blob.id",
    "ltp_telemetry.blob.data",
];

#[test]
fn a_little_endian_layout_whose_length_counts_the_body_decodes_every_field_type() {
    if !have_tshark() {
        return;
    }
    let layout = example("layouts/little_body.toml");
    let schema = example("schemas/telemetry.toml");
    let args = ["--layout", layout.as_str(), "--schema", schema.as_str()];
    let rec = record(&args, &telemetry_input());
    // Little-endian u32 length at 0 counting the body: the Reading's body is 55 bytes
    // (52 of fixed-size fields, 3 of UTF-8 text).
    assert_eq!(rec.bytes.get(..4), Some(&[55, 0, 0, 0][..]));
    let case = Case::new("little-body", &args, &rec, &[2, 3]);
    let mut fields = vec![
        "ltp_telemetry.length",
        "ltp_telemetry.type",
        "ltp_telemetry.seq",
    ];
    fields.extend(TELEMETRY_FIELDS);
    let rows = case.fields(Some("ltp_telemetry"), "ltp_telemetry", &fields);
    assert_eq!(
        rows,
        [
            "55|16|77|Reading|513|3|-2|-300|123456|-70000|18446744073709551615|\
             -9223372036854775808|0.5|-2.25|1|000000|0a0b0c0d0e0f|°C||",
            "6|17|0|Blob|||||||||||||||9|cafe",
            "0|18|0|Ping||||||||||||||||",
        ]
    );
    case.assert_clean(Some("ltp_telemetry"));
}

#[test]
fn a_big_endian_layout_with_little_endian_fields_decodes_them_little_endian() {
    if !have_tshark() {
        return;
    }
    let schema = example("schemas/telemetry.toml");
    let args = ["--schema", schema.as_str()];
    // The default layout (the ancestor's: big-endian u16 length of the whole frame) has no
    // `seq` header field: the Reading's `seq` is the body's only.
    let input = telemetry_input().replacen(r#""seq":77,"#, "", 1);
    let rec = record(&args, &input);
    let case = Case::new("big-mixed", &args, &rec, &[64]);
    let rows = case.fields(Some("ltp_telemetry"), "ltp_telemetry", &TELEMETRY_FIELDS);
    assert_eq!(
        rows,
        [
            "Reading|513|3|-2|-300|123456|-70000|18446744073709551615|\
             -9223372036854775808|0.5|-2.25|1|000000|0a0b0c0d0e0f|°C||",
            // The second segment ends the Blob and holds the Ping.
            "Blob,Ping|||||||||||||||9|cafe",
        ]
    );
    case.assert_clean(Some("ltp_telemetry"));
}

#[test]
fn every_length_width_order_and_mode_reassembles() {
    if !have_tshark() {
        return;
    }
    // (what, layout TOML): each frames the demo messages differently.
    let layouts = [
        (
            "adjusted",
            // The length counts what follows it: whole frame = length + 2.
            "length_counts = 2\n[length]\noffset = 0\ntype = \"u16\"\n\
             [type]\noffset = 2\ntype = \"u16\"\n",
        ),
        (
            "u8-frame",
            "[length]\noffset = 1\ntype = \"u8\"\n[type]\noffset = 0\ntype = \"i8\"\n",
        ),
        (
            "i32-big-frame-u64-type",
            "[length]\noffset = 8\ntype = \"i32\"\n[type]\noffset = 0\ntype = \"u64\"\n",
        ),
        (
            "u64-little-body-i64-type",
            "byte_order = \"little\"\nlength_counts = \"body\"\nheader_len = 20\n\
             [length]\noffset = 8\ntype = \"u64\"\n[type]\noffset = 0\ntype = \"i64\"\n",
        ),
        (
            "u16-little-adjusted-negative",
            // The length counts the frame plus 4 bytes that are not there.
            "byte_order = \"little\"\nlength_counts = -4\n[length]\noffset = 0\ntype = \"u16\"\n\
             [type]\noffset = 2\ntype = \"u8\"\n",
        ),
    ];
    for (what, toml) in layouts {
        let dir = TempDir::new(&format!("layout-{what}"));
        let layout = dir.file("layout.toml");
        std::fs::write(&layout, toml).expect("write the layout");
        let args = ["--layout", layout.as_str(), "--schema", "demo"];
        let rec = record(&args, DEMO_INPUT);
        let case = Case::new(&format!("modes-{what}"), &args, &rec, &[1, 3, 2]);
        let rows = case.fields(
            Some("ltp_demo"),
            "ltp_demo",
            &["ltp_demo.msg", "ltp_demo.nummsg.num", "ltp_demo.strmsg.str"],
        );
        assert_eq!(
            rows,
            ["NumMsg|200|", "StrMsg||hello world!", "NumMsg|7|"],
            "{what}"
        );
        case.assert_clean(Some("ltp_demo"));
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input, hostile names, usage errors.

#[test]
fn bodies_that_do_not_fit_get_expert_infos_not_lua_errors() {
    if !have_tshark() {
        return;
    }
    let dir = TempDir::new("bad-bodies-schema");
    let schema = dir.file("schema.toml");
    std::fs::write(
        &schema,
        "[[message]]\nname = \"NumMsg\"\ntype = 1\nfields = [{ name = \"num\", type = \"u32\" }]\n\
         [[message]]\nname = \"Flag\"\ntype = 3\nfields = [{ name = \"on\", type = \"bool\" }]\n\
         [[message]]\nname = \"Text\"\ntype = 4\nfields = [{ name = \"s\", type = \"string\" }]\n",
    )
    .expect("write the schema");
    let args = ["--schema", schema.as_str()];
    let input: String = [
        raw(1, "0000"),         // too short for num
        raw(1, "000000c8ff"),   // a byte after num
        raw(3, "02"),           // a bool that is 2
        raw(9, "01"),           // a type the schema does not know
        raw(1, "000000c8"),     // good
        raw(4, "c3a9f09f9880"), // good: "é😀"
        raw(4, "68ff69"),       // not UTF-8 from byte 1
        raw(4, "6869e282"),     // a sequence cut short at byte 2
        raw(4, "eda080"),       // a surrogate
        raw(4, "f4908080"),     // past U+10FFFF
        raw(4, "c0af"),         // an overlong form
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect();
    let mut rec = record(&args, &input);
    // ltp never sends a bad length: this frame's length (1) is shorter than the header.
    rec.bytes.extend_from_slice(&[0, 1, 1, 0xee]);
    let case = Case::new("bad-bodies", &args, &rec, &[3, 1]);
    let rows = case.fields(
        Some("ltp_schema"),
        "ltp_schema",
        &[
            "ltp_schema.msg",
            "_ws.expert.severity",
            "_ws.expert.message",
            "ltp_schema.body",
        ],
    );
    let error = 0x0080_0000;
    let note = 0x0040_0000;
    assert_eq!(
        rows,
        [
            format!("NumMsg|{error}|NumMsg: field num (u32) needs 4 bytes, 2 left|0000"),
            format!("NumMsg|{error}|NumMsg: 1 bytes left after the last field|ff"),
            format!("Flag|{error}|Flag: field on is 2, not a bool (0 or 1)|"),
            format!("|{note}|type 9 is not in the schema|01"),
            "NumMsg|||".to_owned(),
            "Text|||".to_owned(),
            format!("Text|{error}|Text: field s: invalid UTF-8 at byte 1|"),
            format!("Text|{error}|Text: field s: invalid UTF-8 at byte 2|"),
            format!("Text|{error}|Text: field s: invalid UTF-8 at byte 0|"),
            format!("Text|{error}|Text: field s: invalid UTF-8 at byte 0|"),
            format!("Text|{error}|Text: field s: invalid UTF-8 at byte 0|"),
            // Its segment (3 bytes) ends with the header, and a bad length loses the framing:
            // the byte after it is left for a frame that never completes.
            format!("|{error}|the length field declares a 1-byte frame, outside 3..2147483647|"),
        ]
    );
    let details = case.tshark(Some("ltp_schema"), &["-V"]);
    assert!(!details.contains("Lua Error"), "{details}");
}

/// A message name and field names that would end a Lua string or comment if pasted in.
const EVIL_MESSAGE: &str = "Evil\"]]\n\") os.exit(1) --[[ é";
const EVIL_FIELDS: [&str; 3] = ["x\"); os.exit(1) --", "X\"); os.exit(1) --", "\\\"\t]]"];

#[test]
fn hostile_names_in_a_schema_make_a_valid_script() {
    if !have_tshark() {
        return;
    }
    let dir = TempDir::new("evil-schema");
    let schema = dir.file("evil.toml");
    let toml = format!(
        "[[message]]\nname = {}\ntype = 1\nfields = [\n  {{ name = {}, type = \"u16\" }},\n  \
         {{ name = {}, type = \"u16\" }},\n  {{ name = {}, type = \"string\" }},\n]\n",
        json!(EVIL_MESSAGE),
        json!(EVIL_FIELDS[0]),
        json!(EVIL_FIELDS[1]),
        json!(EVIL_FIELDS[2]),
    );
    std::fs::write(&schema, toml).expect("write the schema");
    let args = ["--schema", schema.as_str()];
    let line = json!({"msg": EVIL_MESSAGE, "fields": {
        EVIL_FIELDS[0]: 1, EVIL_FIELDS[1]: 2, EVIL_FIELDS[2]: "ok"}});
    let rec = record(&args, &format!("{line}\n"));
    let case = Case::new("evil", &args, &rec, &[4]);
    // Filter names: lowercase, every other character `_`; the second field, which would
    // collide with the first, gets `_2`.
    let message = "ltp_evil.evil_______os_exit_1________";
    let first = format!("{message}.x____os_exit_1____");
    let second = format!("{first}_2");
    let third = format!("{message}._____");
    let rows = case.fields(
        Some("ltp_evil"),
        "ltp_evil",
        &["ltp_evil.msg", &first, &second, &third],
    );
    assert_eq!(rows, ["Evil\"]]\\n\") os.exit(1) --[[ é|1|2|ok"]);
    case.assert_clean(Some("ltp_evil"));
    // The labels are the names, exactly.
    let details = case.tshark(Some("ltp_evil"), &["-V"]);
    assert!(details.contains("x\"); os.exit(1) --: 1"), "{details}");
    assert!(details.contains("X\"); os.exit(1) --: 2"), "{details}");
}

#[test]
fn names_are_checked_and_default_to_the_schema_or_layout() {
    let bad = run(&["dissector", "--schema", "demo", "--name", "Demo-2"]);
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("--name Demo-2: a protocol name is"),
        "{}",
        bad.stderr
    );
    assert!(bad.stdout.is_empty());
    let unknown = run(&["dissector", "--schema", "nonesuch"]);
    unknown.assert_code(2);
    assert!(
        unknown.stderr.contains("unknown schema `nonesuch`"),
        "{}",
        unknown.stderr
    );
    // Without --name: ltp_ and the schema's name, or the layout's with --schema none.
    let demo = run(&[
        "dissector",
        "--schema",
        "demo",
        "--port",
        "9999",
        "--port",
        "9998",
    ]);
    demo.assert_code(0);
    assert!(demo.stdout.contains(
        &r#"local proto = Proto("ltp_demo", "ltp_demo (written by ltp dissector)")"#.to_owned()
    ));
    let registered: Vec<&String> = demo
        .stdout
        .iter()
        .filter(|l| l.starts_with("tcp_port:add("))
        .collect();
    assert_eq!(
        registered,
        ["tcp_port:add(9999, proto)", "tcp_port:add(9998, proto)"]
    );
    let none = run(&[
        "dissector",
        "--schema",
        "none",
        "--layout",
        "openflow",
        "--name",
        "of",
    ]);
    none.assert_code(0);
    assert!(
        none.stdout
            .iter()
            .any(|l| l.starts_with(r#"local proto = Proto("of","#))
    );
    let none = run(&["dissector", "--schema", "none", "--layout", "openflow"]);
    assert!(
        none.stdout
            .iter()
            .any(|l| l.starts_with(r#"local proto = Proto("ltp_openflow","#))
    );
}

#[test]
fn random_bodies_and_types_never_raise_a_lua_error() {
    if !have_tshark() {
        return;
    }
    // Frames of the default layout (big-endian u16 length of the whole frame, u8 type) with
    // the telemetry schema's types and one it does not know, bodies of random bytes and sizes:
    // short bodies, trailing bytes, bools that are not, text that is not UTF-8.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut bytes = Vec::new();
    let frames = 300;
    for _ in 0..frames {
        let message_type = [16, 17, 18, 99][(next() % 4) as usize];
        let body_len = (next() % 80) as usize;
        let len = u16::try_from(3 + body_len).expect("small");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.push(message_type);
        bytes.extend((0..body_len).map(|_| next() as u8));
    }
    // Made here, not sent by ltp: the addresses are made up too.
    let rec = Recorded {
        client: "127.0.0.1:40000".parse().expect("an address"),
        server: "127.0.0.1:9999".parse().expect("an address"),
        bytes,
    };
    let schema = example("schemas/telemetry.toml");
    let case = Case::new(
        "random",
        &["--schema", schema.as_str()],
        &rec,
        &[1, 7, 64, 3, 200, 2],
    );
    let lengths = case.fields(
        Some("ltp_telemetry"),
        "ltp_telemetry",
        &["ltp_telemetry.length"],
    );
    let decoded: usize = lengths.iter().map(|row| row.split(',').count()).sum();
    assert_eq!(decoded, frames, "every frame is found");
    let details = case.tshark(Some("ltp_telemetry"), &["-V"]);
    assert!(!details.contains("Lua Error"), "{details}");
    // The problems are reported as expert infos.
    let problems = case.fields(
        Some("ltp_telemetry"),
        "ltp_telemetry.expert.short_body || ltp_telemetry.expert.trailing_bytes",
        &["frame.number"],
    );
    assert!(!problems.is_empty());
}
