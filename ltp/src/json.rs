//! The JSON lines `ltp` reads on stdin and writes on stdout.
//!
//! # Input: one message per line
//!
//! ```text
//! {"type":1,"body_hex":"000000c8"}                 raw: type number and body (hex, either case)
//! {"msg":"NumMsg","fields":{"num":200}}            by name, encoded with the schema
//! {"msg":"HELLO","fields":{},"xid":7}              plus any extra header field of the layout
//! {"type":1,"conn":2}                              to client 2 only (`ltp serve`)
//! ```
//!
//! `body_hex` may be left out (an empty body), and so may `fields` (no fields). `type` may be
//! given with `msg` only if it is that message's type number. Header fields left out are sent
//! with the layout's default (OpenFlow's `version` 4). `length` is computed, never given.
//! `ts` (Unix seconds) says when to send it with `--pace original`. Any other key is an
//! error, as is a number that does not fit its field.
//!
//! Every `message` event below is an input line as well, and the other events are passed
//! over, so that what `ltp` printed replays: see [`parse_input`].
//!
//! # Output: one event per line
//!
//! Every object has `event` (and, with `--timestamps`, `ts`, see [`unix_seconds`]); its
//! other keys, a stable interface:
//!
//! * `listening`: `addr`, the bound address with the real port.
//! * `connected`: `conn`, the connection's number from 1; `peer`, the other end's address.
//! * `message`: `conn`; `type`, the type number; `body_hex`, the body as lower-case hex; each
//!   extra header field of the layout by its name (`version`, `xid`); and, when the schema
//!   knows the type, `msg`, its name, with `fields`, the decoded body, or `decode_error`, why
//!   the body does not fit.
//! * `error`: `conn`; `error`, the protocol violation (the connection then closes).
//! * `disconnected`: `conn`; `reason`, why the connection ended.
//! * `summary` (`ltp connect`'s last line): `sent`, `skipped`, `unsent`, `received`.
//!
//! ```text
//! {"event":"message","conn":1,"type":1,"body_hex":"000000c8","msg":"NumMsg","fields":{"num":200}}
//! ```
//!
//! With `--format text`, [`text_line`] prints each event for people instead:
//! `[#1] message NumMsg num=200 (type 1, 4 bytes)`.
//!
//! Either way a line holds no control character: strings can carry a peer's bytes, so
//! [`json_line`] and [`text_line`] escape them.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value};

use ltprotocol::{Frame, HeaderFields, HeaderLayout, MessageType, escape_controls};

use crate::layout_file::RESERVED_FIELD_NAMES;
use crate::schema::{Schema, int_value, json_int};

/// The keys of a message event that are not extra header fields.
const MESSAGE_KEYS: [&str; 8] = [
    "event",
    "ts",
    "conn",
    "type",
    "body_hex",
    "msg",
    "fields",
    "decode_error",
];

/// What one input line asks for: see [`parse_input`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// A message to send.
    Message(Outgoing),
    /// An event of a recording other than `message` (`connected`, `disconnected`,
    /// `summary`, …), by its `event` name: nothing to send, and nothing wrong.
    Event(String),
}

/// A message read from an input line, and where and when to send it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outgoing {
    /// The frame to send: type, body and extra header fields.
    pub frame: Frame,
    /// `"conn": N` on a line that is not a recorded event: the one client of `ltp serve` to
    /// send it to (every client without it). A recorded event's `conn` is where the message
    /// arrived, not where it goes, so it is not kept here.
    pub conn: Option<u64>,
    /// `"ts"`: when the event was printed, in Unix seconds (see [`unix_seconds`]); what
    /// `--pace original` keeps the gaps of.
    pub ts: Option<f64>,
}

/// Parses one input line (of `ltp connect`'s or `ltp serve`'s stdin) into a message to send,
/// or a recorded event to pass over.
///
/// A message is written `{"type":1,"body_hex":"000000c8"}` (raw) or
/// `{"msg":"NumMsg","fields":{"num":200}}` (by name, encoded with the schema), plus optional
/// extra header fields by their layout name (`"xid":7`, `"version":4`), `"conn":N` (the
/// client to send it to) and `"ts"` (Unix seconds). `"type"` may be given with `"msg"` only
/// if it is that message's type number.
///
/// Every `message` event `ltp` prints is an input line too, so a recording replays: its
/// `"event":"message"` and `"decode_error"` are accepted, its `"conn"` is ignored (it says
/// where the message came from), and when it has both the raw `type` and `body_hex` and the
/// decoded `msg` and `fields`, the raw bytes are sent: they are exact, and `fields` is not
/// read (`msg`, when the schema knows it, must still name that type). Any other event
/// (`"event":"connected"`, …) is [`Input::Event`].
///
/// # Errors
///
/// A one-line reason: the line is not a JSON object, has an unknown key, gives neither `type`
/// nor `msg`, names a message the schema does not know, gives malformed hex, misses a field,
/// or gives a number (type, header or body field) that does not fit its field.
///
/// ```
/// use ltp::json::{Input, parse_input};
/// use ltp::schema::Schema;
/// use ltprotocol::HeaderLayout;
/// let layout = HeaderLayout::openflow();
/// let schema = Schema::openflow();
/// let recorded = r#"{"event":"message","ts":1718000000.25,"conn":3,"type":2,
///     "body_hex":"abcd","version":4,"xid":7,"msg":"ECHO_REQUEST","fields":{"data":"abcd"}}"#;
/// let Input::Message(message) = parse_input(&recorded.replace('\n', ""), &layout, &schema)?
/// else {
///     panic!("a message event is a message");
/// };
/// assert_eq!(&message.frame.body[..], b"\xab\xcd");
/// assert_eq!(message.frame.fields.get_named(&layout, "xid"), Some(7));
/// assert_eq!((message.conn, message.ts), (None, Some(1718000000.25)));
/// let other = parse_input(r#"{"event":"connected","conn":3}"#, &layout, &schema)?;
/// assert_eq!(other, Input::Event("connected".into()));
/// # Ok::<(), String>(())
/// ```
pub fn parse_input(line: &str, layout: &HeaderLayout, schema: &Schema) -> Result<Input, String> {
    // Reasons quote parts of the line (a key, a message name, a hex digit), where JSON
    // escapes can put a newline or another control character: shown escaped (`\n`), a
    // reason stays one line. Found by the `json_line` fuzz target.
    parse_line(line, layout, schema).map_err(|reason| escape_controls(&reason).into_owned())
}

/// Parses one message line into the [`Frame`] to send; see [`parse_input`], of which this is
/// the frame alone.
///
/// # Errors
///
/// As [`parse_input`], and a recorded event other than `message`, which has nothing to send.
///
/// ```
/// use ltp::json::parse_input_line;
/// use ltp::schema::Schema;
/// use ltprotocol::{HeaderLayout, MessageType};
/// let layout = HeaderLayout::openflow();
/// let line = r#"{"msg":"ECHO_REQUEST","fields":{"data":"abcd"},"xid":7}"#;
/// let frame = parse_input_line(line, &layout, &Schema::openflow())?;
/// assert_eq!(frame.message_type, MessageType::new(2));
/// assert_eq!(&frame.body[..], b"\xab\xcd");
/// assert_eq!(frame.fields.get_named(&layout, "xid"), Some(7));
/// # Ok::<(), String>(())
/// ```
pub fn parse_input_line(
    line: &str,
    layout: &HeaderLayout,
    schema: &Schema,
) -> Result<Frame, String> {
    match parse_input(line, layout, schema)? {
        Input::Message(message) => Ok(message.frame),
        Input::Event(name) => {
            Err(escape_controls(&format!("a `{name}` event has no message to send")).into_owned())
        }
    }
}

fn parse_line(line: &str, layout: &HeaderLayout, schema: &Schema) -> Result<Input, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err(format!("expected a JSON object, got {value}"));
    };
    let recorded = match object.get("event") {
        None => false,
        Some(Value::String(event)) if event == "message" => true,
        Some(Value::String(event)) => return Ok(Input::Event(event.clone())),
        Some(other) => return Err(format!("event: expected an event name, got {other}")),
    };
    let mut message_type = None;
    let mut body_hex = None;
    let mut msg = None;
    let mut fields = None;
    let mut conn = None;
    let mut ts = None;
    let mut header = HeaderFields::new();
    for (key, value) in &object {
        match key.as_str() {
            "event" | "decode_error" => {}
            "conn" => {
                let n = json_int(value).map_err(|e| format!("conn: {e}"))?;
                let n = u64::try_from(n).map_err(|_| format!("conn: {n} is not a client"))?;
                if !recorded {
                    conn = Some(n);
                }
            }
            "ts" => match value {
                Value::Number(seconds) => ts = seconds.as_f64(),
                other => return Err(format!("ts: expected Unix seconds, got {other}")),
            },
            "type" => {
                let n = json_int(value).map_err(|e| format!("type: {e}"))?;
                message_type = Some(n);
            }
            "body_hex" => match value {
                Value::String(hex) => body_hex = Some(hex),
                other => return Err(format!("body_hex: expected a hex string, got {other}")),
            },
            "msg" => match value {
                Value::String(name) => msg = Some(name),
                other => return Err(format!("msg: expected a message name, got {other}")),
            },
            "fields" => match value {
                Value::Object(map) => fields = Some(map),
                other => return Err(format!("fields: expected an object, got {other}")),
            },
            "length" => return Err("`length` is computed from the body: leave it out".into()),
            name => {
                let (id, spec) = layout
                    .field(name)
                    .and_then(|id| Some((id, layout.field_spec(id)?)))
                    .ok_or_else(|| unknown_key(name, layout))?;
                let n = json_int(value).map_err(|e| format!("header field `{name}`: {e}"))?;
                if !spec.int().holds(n) {
                    return Err(format!(
                        "header field `{name}`: {n} does not fit {}",
                        spec.int()
                    ));
                }
                header.set(id, n);
            }
        }
    }
    if fields.is_some() && msg.is_none() {
        return Err("fields needs msg, the message name".into());
    }
    let (message_type, body) = match (message_type, body_hex, msg) {
        // The raw bytes are exact: a recorded event's `msg` and `fields` only describe them.
        (Some(message_type), Some(hex), msg) => {
            if let Some(name) = msg
                && let Some(known) = schema.message_named(name)
                && known.message_type().value() != message_type
            {
                return Err(format!(
                    "type {message_type} does not match msg `{name}` (type {})",
                    known.message_type()
                ));
            }
            let body = from_hex(hex).map_err(|e| format!("body_hex: {e}"))?;
            (message_type, body)
        }
        (_, Some(_), Some(_)) => {
            return Err("give either body_hex or msg and fields, not both".into());
        }
        (given, None, Some(name)) => {
            let empty = Map::new();
            let (schema_type, body) =
                schema.encode(name, fields.unwrap_or(&empty), layout.byte_order())?;
            if let Some(given) = given.filter(|&t| t != schema_type.value()) {
                return Err(format!(
                    "type {given} does not match msg `{name}` (type {schema_type})"
                ));
            }
            (schema_type.value(), body)
        }
        (given, hex, None) => {
            let message_type = given.ok_or("a line needs \"type\" or \"msg\"")?;
            let body = match hex {
                Some(hex) => from_hex(hex).map_err(|e| format!("body_hex: {e}"))?,
                None => Vec::new(),
            };
            (message_type, body)
        }
    };
    let type_int = layout.type_field().int();
    if !type_int.holds(message_type) {
        return Err(format!(
            "type {message_type} does not fit the layout's {type_int} type field"
        ));
    }
    let mut frame = Frame::new(MessageType::new(message_type), Bytes::from(body));
    frame.fields = header;
    Ok(Input::Message(Outgoing { frame, conn, ts }))
}

/// The JSON object for a received message:
/// `{"event":"message","conn":1,"type":1,"body_hex":"000000c8","msg":"NumMsg","fields":{"num":200}}`;
/// `"msg"`/`"fields"` only when the schema knows the type; if the schema knows the type but
/// decoding fails, `"decode_error":"…"` instead of `"fields"`; each extra header field of the
/// layout as its own key (`"xid":7`, `"version":4`).
///
/// A header field the frame does not carry is shown with the layout's default; one named
/// like a key above is left out (a TOML layout cannot declare one).
///
/// ```
/// use bytes::Bytes;
/// use ltp::json::message_event;
/// use ltp::schema::Schema;
/// use ltprotocol::{Frame, HeaderLayout, MessageType};
/// let frame = Frame::new(MessageType::new(1), Bytes::from_static(&[0, 0, 0, 200]));
/// let event = message_event(1, &frame, &HeaderLayout::ltprotocol(), &Schema::demo());
/// let expected = serde_json::json!({"event": "message", "conn": 1, "type": 1,
///     "body_hex": "000000c8", "msg": "NumMsg", "fields": {"num": 200}});
/// assert_eq!(event, expected);
/// ```
pub fn message_event(conn: u64, frame: &Frame, layout: &HeaderLayout, schema: &Schema) -> Value {
    let mut object = Map::new();
    object.insert("event".into(), "message".into());
    object.insert("conn".into(), conn.into());
    object.insert("type".into(), int_value(frame.message_type.value()));
    object.insert("body_hex".into(), to_hex(&frame.body).into());
    for spec in layout.extra_fields() {
        let name = spec.name();
        if MESSAGE_KEYS.contains(&name) || RESERVED_FIELD_NAMES.contains(&name) {
            continue;
        }
        let value = frame
            .fields
            .get_named(layout, name)
            .unwrap_or(spec.default_value());
        object.insert(name.into(), int_value(value));
    }
    match schema.decode(frame.message_type, &frame.body, layout.byte_order()) {
        None => {}
        Some(Ok((name, fields))) => {
            object.insert("msg".into(), name.into());
            object.insert("fields".into(), fields.into());
        }
        Some(Err(reason)) => {
            if let Some(name) = schema.name_of(frame.message_type) {
                object.insert("msg".into(), name.into());
            }
            object.insert("decode_error".into(), reason.into());
        }
    }
    Value::Object(object)
}

/// An event as one JSON line (for `--format json`), with no control character in it.
///
/// serde_json escapes C0 controls in strings (`\u001b`) but writes DEL and C1 controls (such
/// as U+009B, a CSI to some terminals) as they are; here they are escaped too, `\u009b`,
/// which a JSON reader decodes to the same string. A peer's text reaches events (a decoded
/// string field, a disconnect reason), and the line may be read on a terminal.
///
/// ```
/// use ltp::json::json_line;
/// use serde_json::{Value, json};
/// let event = json!({"event":"message","fields":{"str":"\x1b[2J\u{9b}31m\x7f"}});
/// let line = json_line(&event);
/// assert_eq!(line, r#"{"event":"message","fields":{"str":"\u001b[2J\u009b31m\u007f"}}"#);
/// assert_eq!(serde_json::from_str::<Value>(&line)?, event);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn json_line(event: &Value) -> String {
    let line = event.to_string();
    if !line.contains(char::is_control) {
        return line;
    }
    // Compact JSON has no whitespace between tokens, so a control character left can only
    // be inside a string, where `\uXXXX` means the same character. DEL and C1 are all
    // below U+FFFF: one escape each.
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if c.is_control() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// A readable one-line text form of any event object (for `--format text`):
///
/// ```text
/// listening on 127.0.0.1:9999
/// [#1] connected 127.0.0.1:50312
/// [#1] message NumMsg num=200 (type 1, 4 bytes)
/// [#1] error: length 0 is smaller than the 3-byte header
/// [#1] disconnected: closed by peer
/// summary: 3 sent, 1 skipped, 0 unsent, 2 received
/// ```
///
/// An event with a `ts` (`--timestamps`) starts with it: `1718000000.25 [#1] connected …`.
/// Unknown event kinds, or events missing a key their form needs, print as compact JSON
/// ([`json_line`]). Control characters anywhere in the line (a peer's text in a reason, an
/// error or a string field) are shown escaped, `\x1b` or `\u{9b}` ([`escape_controls`]), so
/// the line stays one line and cannot drive the terminal.
///
/// Extra header fields follow the sizes: `(type 0, 0 bytes, version=4 xid=1)`; a message the
/// schema does not know shows its body, `[#1] message type 9 body=0102 (2 bytes)`.
///
/// ```
/// use ltp::json::text_line;
/// use serde_json::json;
/// let event = json!({"event":"message","conn":1,"type":1,"body_hex":"000000c8",
///                    "msg":"NumMsg","fields":{"num":200}});
/// assert_eq!(text_line(&event), "[#1] message NumMsg num=200 (type 1, 4 bytes)");
/// assert_eq!(text_line(&json!({"event":"bye"})), r#"{"event":"bye"}"#);
/// let event = json!({"event":"disconnected","conn":2,"reason":"rejected: \x1b]0;hi\x07"});
/// assert_eq!(text_line(&event), r"[#2] disconnected: rejected: \x1b]0;hi\x07");
/// let event = json!({"event":"connected","ts":1718000000.25,"conn":1,"peer":"127.0.0.1:9"});
/// assert_eq!(text_line(&event), "1718000000.25 [#1] connected 127.0.0.1:9");
/// ```
pub fn text_line(event: &Value) -> String {
    let Some(text) = text_form(event) else {
        return json_line(event);
    };
    let text = match event.get("ts") {
        Some(Value::Number(ts)) => format!("{ts} {text}"),
        _ => text,
    };
    match escape_controls(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

/// A point in time as the `ts` of an event: Unix seconds, a JSON number with microseconds
/// (`1718000000.123456`), which `jq` and any JSON reader do arithmetic on as they are. A
/// time before 1970 reads as 0.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let time = UNIX_EPOCH + Duration::from_micros(1_718_000_000_123_456);
/// assert_eq!(ltp::json::unix_seconds(time).to_string(), "1718000000.123456");
/// ```
pub fn unix_seconds(time: SystemTime) -> Value {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Through the decimal text, so that the number printed is that text, not the float
    // nearest to a sum of seconds and microseconds with more digits than either.
    let text = format!("{}.{:06}", since.as_secs(), since.subsec_micros());
    text.parse::<f64>().map_or(Value::Null, Value::from)
}

/// The `pcap` key of a `shutdown` or `summary` line, as text: empty without one.
fn capture_text(pcap: Option<&Value>) -> String {
    let Some(pcap) = pcap else {
        return String::new();
    };
    let files = pcap["files"].as_array().map_or(0, Vec::len);
    format!(
        "; capture: {} packets ({} bytes) in {files} file{}, {} packets dropped",
        plain(&pcap["frames"]),
        plain(&pcap["bytes"]),
        if files == 1 { "" } else { "s" },
        plain(&pcap["dropped_frames"]),
    )
}

fn text_form(event: &Value) -> Option<String> {
    let object = event.as_object()?;
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let prefix = object
        .get("conn")
        .map(|conn| format!("[#{}] ", plain(conn)))
        .unwrap_or_default();
    Some(match text("event")? {
        "listening" => format!("listening on {}", text("addr")?),
        "connected" => format!("{prefix}connected {}", text("peer")?),
        "disconnected" => format!("{prefix}disconnected: {}", text("reason")?),
        "error" => format!("{prefix}error: {}", text("error")?),
        "connect_failed" => {
            let attempt = plain(object.get("attempt")?);
            let retry = match object.get("retry_in_ms") {
                Some(Value::Number(ms)) => format!("retrying in {ms} ms"),
                _ => "giving up".to_owned(),
            };
            format!(
                "connect attempt {attempt} failed: {}; {retry}",
                text("error")?
            )
        }
        "shutdown" => {
            let mut line = format!(
                "shut down: {} connections, {} forced, {} frames unsent",
                plain(object.get("connections")?),
                plain(object.get("forced")?),
                plain(object.get("unsent_frames")?)
            );
            if let (Some(sent), Some(skipped)) = (object.get("sent"), object.get("skipped")) {
                line += &format!("; stdin: {sent} sent, {skipped} skipped");
            }
            line + &capture_text(object.get("pcap"))
        }
        "summary" => {
            let line = format!(
                "summary: {} sent, {} skipped, {} unsent, {} received",
                plain(object.get("sent")?),
                plain(object.get("skipped")?),
                plain(object.get("unsent")?),
                plain(object.get("received")?)
            );
            line + &capture_text(object.get("pcap"))
        }
        "message" => {
            let message_type = plain(object.get("type")?);
            let body_hex = text("body_hex")?;
            let size = format!("{} bytes", body_hex.len() / 2);
            let header: Vec<String> = object
                .iter()
                .filter(|(key, _)| !MESSAGE_KEYS.contains(&key.as_str()))
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            let header = if header.is_empty() {
                String::new()
            } else {
                format!(", {}", header.join(" "))
            };
            match (text("msg"), object.get("fields"), text("decode_error")) {
                (Some(name), Some(Value::Object(fields)), _) => {
                    let mut line = format!("{prefix}message {name}");
                    for (key, value) in fields {
                        line.push_str(&format!(" {key}={value}"));
                    }
                    line + &format!(" (type {message_type}, {size}{header})")
                }
                (Some(name), _, Some(error)) => format!(
                    "{prefix}message {name} body={body_hex} (type {message_type}, {size}{header}): \
                     cannot decode: {error}"
                ),
                _ => {
                    format!("{prefix}message type {message_type} body={body_hex} ({size}{header})")
                }
            }
        }
        _ => return None,
    })
}

/// A JSON value as text: strings without quotes, anything else as compact JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn unknown_key(name: &str, layout: &HeaderLayout) -> String {
    let mut expected = vec!["type", "body_hex", "msg", "fields"];
    expected.extend(layout.extra_fields().iter().map(|f| f.name()));
    expected.extend(["conn", "ts", "event", "decode_error"]);
    format!("unknown key `{name}` (expected {})", expected.join(", "))
}

/// Bytes as lower-case hex, two digits per byte.
///
/// ```
/// assert_eq!(ltp::json::to_hex(&[0, 0xc8]), "00c8");
/// ```
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Hex digits (either case, no separators) as bytes.
///
/// # Errors
///
/// A one-line reason: an odd number of digits, or a character that is not a hex digit.
///
/// ```
/// assert_eq!(ltp::json::from_hex("00C8"), Ok(vec![0, 0xc8]));
/// assert!(ltp::json::from_hex("0g").is_err());
/// ```
pub fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digit = |(i, c): (usize, char)| {
        c.to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("`{c}` at position {i} is not a hex digit"))
    };
    let digits = hex
        .chars()
        .enumerate()
        .map(digit)
        .collect::<Result<Vec<u8>, _>>()?;
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    Ok(digits
        .chunks_exact(2)
        .map(|pair| pair.iter().fold(0, |acc, d| acc << 4 | d))
        .collect())
}
