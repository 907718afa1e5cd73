//! `ltp serve`, `ltp connect` and `ltp demo` end to end: the built binary run as child
//! processes talking over 127.0.0.1 (ports picked by the kernel: `--listen 127.0.0.1:0` and the
//! `listening` line). Every child is stopped by its own PID (`Child::kill`, or `kill -TERM PID`
//! for a graceful shutdown) and waited for; every wait has a generous guard that turns a hang
//! into a failure, and nothing asserts on timing.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;

// ---------------------------------------------------------------------------------------------
// 1. Round trips with both built-in schemas.

#[test]
fn round_trip_with_the_demo_schema() {
    let (mut server, addr) = serve(&["--mode", "echo", "--schema", "demo"]);
    let input = concat!(
        r#"{"msg":"NumMsg","fields":{"num":200}}"#,
        "\n",
        r#"{"type":2,"body_hex":"6869"}"#,
        "\n",
    );
    let out = connect(&addr, &["--schema", "demo", "--count", "2"], input);
    out.assert_code(0);
    let events = out.events();
    assert_eq!(events[0]["event"], "connected", "{events:?}");
    assert_eq!(events[0]["peer"], addr.as_str());
    let echoed = out.messages();
    assert_eq!(
        echoed,
        vec![
            json!({"event": "message", "conn": 1, "type": 1, "body_hex": "000000c8",
                   "msg": "NumMsg", "fields": {"num": 200}}),
            json!({"event": "message", "conn": 1, "type": 2, "body_hex": "6869",
                   "msg": "StrMsg", "fields": {"str": "hi"}}),
        ]
    );

    // The server printed both, with the same keys, on its own connection numbering.
    let connected = server.wait_for("connected", |e| e["event"] == "connected");
    let conn = connected["conn"].clone();
    assert!(
        connected["peer"]
            .as_str()
            .expect("peer")
            .starts_with("127.0.0.1:")
    );
    let first = server.next_message();
    assert_eq!(first["conn"], conn);
    assert_eq!(first["msg"], "NumMsg");
    assert_eq!(first["fields"], json!({"num": 200}));
    let second = server.next_message();
    assert_eq!(second["msg"], "StrMsg");
    assert_eq!(second["fields"], json!({"str": "hi"}));
    assert_eq!(second["body_hex"], "6869");
    let gone = server.wait_for("disconnected", |e| e["event"] == "disconnected");
    assert_eq!(gone["conn"], conn);
    assert!(gone["reason"].is_string(), "{gone}");
}

#[test]
fn round_trip_with_the_openflow_layout_and_schema() {
    // The server uses the presets, the client the same layout and schema as TOML files.
    let (mut server, addr) = serve(&[
        "--mode", "echo", "--layout", "openflow", "--schema", "openflow",
    ]);
    let layout = example("layouts/openflow.toml");
    let schema = example("schemas/openflow.toml");
    let input = concat!(
        r#"{"msg":"ECHO_REQUEST","fields":{"data":"abcd"},"xid":7}"#,
        "\n",
        // Out of range for the u32 xid: reported and skipped.
        r#"{"msg":"HELLO","xid":4294967296}"#,
        "\n",
        r#"{"msg":"FEATURES_REQUEST","xid":8,"version":4}"#,
        "\n",
        r#"{"type":0,"xid":9}"#,
        "\n",
    );
    let out = connect(
        &addr,
        &["--layout", &layout, "--schema", &schema, "--count", "3"],
        input,
    );
    // A line was skipped: not everything was sent.
    out.assert_code(1);
    let stderr: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("ltp: stdin line"))
        .collect();
    assert_eq!(
        stderr,
        vec!["ltp: stdin line 2: header field `xid`: 4294967296 does not fit u32; skipped"],
        "{}",
        out.stderr
    );
    let echoed = out.messages();
    assert_eq!(echoed.len(), 3, "{echoed:?}");
    assert_eq!(
        echoed[0],
        json!({"event": "message", "conn": 1, "type": 2, "body_hex": "abcd", "version": 4,
               "xid": 7, "msg": "ECHO_REQUEST", "fields": {"data": "abcd"}})
    );
    assert_eq!(echoed[1]["msg"], "FEATURES_REQUEST");
    assert_eq!(echoed[1]["xid"], 8);
    assert_eq!(echoed[1]["version"], 4);
    assert_eq!(echoed[1]["fields"], json!({}));
    assert_eq!(echoed[2]["msg"], "HELLO");
    assert_eq!(echoed[2]["xid"], 9);
    assert_eq!(echoed[2]["fields"], json!({"elements": ""}));

    let got = server.next_message();
    assert_eq!(got["msg"], "ECHO_REQUEST");
    assert_eq!(got["xid"], 7);
    assert_eq!(got["version"], 4);
    assert_eq!(server.next_message()["xid"], 8);
    assert_eq!(server.next_message()["xid"], 9);
}

// ---------------------------------------------------------------------------------------------
// 2. Echo and relay with several clients.

#[test]
fn echo_answers_each_client_with_its_own_messages_only() {
    let (_server, addr) = serve(&["--mode", "echo"]);
    let mut clients: Vec<(Ltp, Vec<(u64, String)>)> = (1..=3u8)
        .map(|n| {
            let mut client = start_connect(&addr, &["--count", "2"]);
            let sent = vec![(1, format!("{n:02x}01")), (1, format!("{n:02x}02"))];
            for (message_type, body) in &sent {
                client.write_line(&raw(*message_type, body));
            }
            (client, sent)
        })
        .collect();
    for (client, sent) in &mut clients {
        let out = client.finish();
        out.assert_code(0);
        assert_eq!(bodies(&out.messages()), *sent);
    }
}

#[test]
fn relay_reaches_every_other_client_but_not_the_sender() {
    let (mut server, addr) = serve(&["--mode", "relay"]);
    let mut a = start_connect(&addr, &["--count", "1"]);
    let mut b = start_connect(&addr, &["--count", "1"]);
    let mut c = start_connect(&addr, &["--count", "2"]);
    // All three are in the server's table before anything is relayed.
    for _ in 0..3 {
        server.wait_for("connected", |e| e["event"] == "connected");
    }
    for client in [&mut a, &mut b, &mut c] {
        client.wait_for("connected", |e| e["event"] == "connected");
    }

    a.write_line(&raw(1, "aa"));
    assert_eq!(server.next_message()["body_hex"], "aa");
    // B and C get A's message.
    assert_eq!(b.next_message()["body_hex"], "aa");
    assert_eq!(c.next_message()["body_hex"], "aa");
    // The sentinel from B: relayed after A's message, so A sees it first only if A's own
    // message never came back to it.
    b.write_line(&raw(1, "bb"));
    assert_eq!(a.next_message()["body_hex"], "bb");
    assert_eq!(c.next_message()["body_hex"], "bb");

    for (client, expected) in [
        (&mut a, vec![(1, "bb".to_owned())]),
        (&mut b, vec![(1, "aa".to_owned())]),
        (&mut c, vec![(1, "aa".to_owned()), (1, "bb".to_owned())]),
    ] {
        let out = client.finish();
        out.assert_code(0);
        assert_eq!(bodies(&out.messages()), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Invalid input lines (issue 7: one clear error line each, never a crash).

#[test]
fn invalid_input_lines_get_one_error_line_each_and_the_rest_is_sent() {
    let (mut server, addr) = serve(&["--mode", "echo", "--schema", "demo"]);
    let lines = [
        r#"{"msg":"NumMsg","fields":{"num":1}}"#,
        r#"{"msg":"NumMsg","fields":"#,
        r#"{"msg":"NoSuchMsg","fields":{}}"#,
        r#"{"msg":"NumMsg","fields":{"num":8589934592}}"#,
        r#"{"type":1,"body_hex":"0g"}"#,
        r#"{"type":2,"body_hex":"6869"}"#,
        "",
        r#"[1,2]"#,
        r#"{"type":256}"#,
        r#"{"type":1e400}"#,
        r#"{"msg":"a\nb"}"#,
        r#"{"msg":"NumMsg","fields":{"num":-1}}"#,
        r#"{"type":1,"length":3}"#,
        r#"{"type":1,"xid":3}"#,
        r#"{"type":1,"body_hex":"abc"}"#,
        r#"{"type":1,"body_hex":"000000c8"}"#,
    ];
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    // Logs off: stderr holds exactly the CLI's own lines.
    let mut client = Ltp::spawn_env(
        &[
            "connect", &addr, "--format", "json", "--schema", "demo", "--count", "3",
        ],
        &[("LTP_LOG", "off")],
    );
    client.write_all_lossy(&input);
    let out = client.finish();
    // Lines were skipped: not everything was sent.
    out.assert_code(1);

    let expected: [(usize, &str); 12] = [
        (2, "invalid JSON: "),
        (3, "unknown message `NoSuchMsg` (known: NumMsg, StrMsg)"),
        (4, "NumMsg field `num`: 8589934592 does not fit u32"),
        (5, "body_hex: `g` at position 1 is not a hex digit"),
        (8, "expected a JSON object, got [1,2]"),
        (9, "type 256 does not fit the layout's u8 type field"),
        (10, "invalid JSON: number out of range"),
        // A control character in a reason is shown escaped: still one line.
        (11, "unknown message `a\\nb`"),
        (12, "NumMsg field `num`: -1 does not fit u32"),
        (13, "`length` is computed from the body"),
        (14, "unknown key `xid`"),
        (15, "body_hex: odd number of hex digits (3)"),
    ];
    let mut stderr: Vec<&str> = out.stderr.lines().collect();
    // The last line says why the exit code is 1.
    assert_eq!(stderr.pop(), Some("ltp: 12 stdin lines were skipped"));
    assert_eq!(stderr.len(), expected.len(), "stderr:\n{}", out.stderr);
    for (line, (number, reason)) in stderr.iter().zip(expected) {
        let prefix = format!("ltp: stdin line {number}: ");
        assert!(
            line.starts_with(&prefix),
            "{line:?} should start with {prefix:?}"
        );
        assert!(line.contains(reason), "{line:?} should contain {reason:?}");
        assert!(line.ends_with("; skipped"), "{line:?}");
    }

    let sent = vec![
        (1, "00000001".to_owned()),
        (2, "6869".to_owned()),
        (1, "000000c8".to_owned()),
    ];
    assert_eq!(bodies(&out.messages()), sent);
    assert_eq!(
        out.events().last(),
        Some(&json!({"event": "summary", "sent": 3, "skipped": 12, "unsent": 0, "received": 3}))
    );
    let received: Vec<Value> = (0..3).map(|_| server.next_message()).collect();
    assert_eq!(bodies(&received), sent);
}

#[test]
fn an_over_long_stdin_line_gets_one_error_line_and_the_next_lines_are_sent() {
    let (mut server, addr) = serve(&["--mode", "echo", "--schema", "demo"]);
    // 1 MiB of hex digits: past the 1 MiB line limit of the default layout (whose frames
    // hold at most 65,532 body bytes, 131,064 hex digits).
    let long = raw(2, &"00".repeat(512 * 1024));
    let input = format!(
        "{}\n{long}\n{}\n{}\n",
        r#"{"msg":"NumMsg","fields":{"num":1}}"#,
        r#"{"type":1,"body_hex":"0g"}"#,
        r#"{"msg":"StrMsg","fields":{"str":"after"}}"#,
    );
    // Logs off: stderr holds exactly the CLI's own lines.
    let mut client = Ltp::spawn_env(
        &[
            "connect", &addr, "--format", "json", "--schema", "demo", "--count", "2",
        ],
        &[("LTP_LOG", "off")],
    );
    client.write_all_lossy(&input);
    let out = client.finish();
    out.assert_code(1);
    // One line each, numbered as read: the long line counts, and so the next is line 3.
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        [
            "ltp: stdin line 2: longer than the 1048576-byte line limit; skipped",
            "ltp: stdin line 3: body_hex: `g` at position 1 is not a hex digit; skipped",
            "ltp: 2 stdin lines were skipped",
        ],
        "stderr:\n{}",
        out.stderr
    );
    let sent = vec![(1, "00000001".to_owned()), (2, "6166746572".to_owned())];
    assert_eq!(bodies(&out.messages()), sent);
    let received: Vec<Value> = (0..2).map(|_| server.next_message()).collect();
    assert_eq!(bodies(&received), sent);
}

// ---------------------------------------------------------------------------------------------
// 4. A malformed frame closes only its own connection.

#[test]
fn a_malformed_frame_gets_an_error_line_and_the_server_keeps_serving() {
    let (mut server, addr) = serve(&["--mode", "echo", "--schema", "demo"]);
    let mut raw_peer = TcpStream::connect(&addr).expect("connect to ltp serve");
    raw_peer.set_read_timeout(Some(HANG)).expect("read timeout");
    let local = raw_peer.local_addr().expect("local address").to_string();
    // Length 0 in the 3-byte ltprotocol header (u16 length, u8 type).
    raw_peer
        .write_all(&[0, 0, 1])
        .expect("write the bad header");

    let connected = server.wait_for("connected", |e| e["event"] == "connected");
    assert_eq!(connected["peer"], local.as_str());
    let conn = connected["conn"].clone();
    let error = server.wait_for("error", |e| e["event"] != "connected");
    assert_eq!(
        error,
        json!({"event": "error", "conn": conn,
               "error": "length 0 is smaller than the 3-byte header"})
    );
    let gone = server.wait_for("disconnected", |_| true);
    assert_eq!(gone["event"], "disconnected", "{gone}");
    assert_eq!(gone["conn"], conn);
    let reason = gone["reason"].as_str().expect("reason");
    assert!(
        reason.contains("length 0 is smaller than the 3-byte header"),
        "{reason}"
    );
    // The server closed the connection: end of stream, or a reset.
    let mut rest = Vec::new();
    let _ = raw_peer.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "the server answered a bad frame with {rest:?}"
    );
    let _ = raw_peer.shutdown(Shutdown::Both);

    // Another client is served as before.
    let out = connect(
        &addr,
        &["--schema", "demo", "--count", "1"],
        "{\"msg\":\"NumMsg\",\"fields\":{\"num\":7}}\n",
    );
    out.assert_code(0);
    assert_eq!(out.messages()[0]["fields"], json!({"num": 7}));
    let got = server.next_message();
    assert_ne!(got["conn"], conn);
    assert_eq!(got["fields"], json!({"num": 7}));
}

#[test]
fn a_frame_over_max_frame_gets_an_error_line() {
    let (mut server, addr) = serve(&["--max-frame", "64"]);
    let mut raw_peer = TcpStream::connect(&addr).expect("connect to ltp serve");
    raw_peer.set_read_timeout(Some(HANG)).expect("read timeout");
    // Declares 65535 bytes and sends none of the body.
    raw_peer
        .write_all(&[0xff, 0xff, 1])
        .expect("write the header");
    let error = server.wait_for("error", |e| e["event"] == "error");
    assert_eq!(
        error["error"],
        "length 65535 exceeds the maximum frame length 64"
    );
    let gone = server.wait_for("disconnected", |_| true);
    assert_eq!(gone["event"], "disconnected", "{gone}");
    assert_eq!(gone["conn"], error["conn"]);
}

// ---------------------------------------------------------------------------------------------
// 5. Lines queued while the server is down are sent after it comes back.

#[test]
fn connect_queues_lines_across_a_server_restart() {
    let (mut first, addr) = serve(&[]);
    let mut client = start_connect(
        &addr,
        &["--backoff-initial", "0.05", "--backoff-max", "0.5"],
    );
    for n in 1..=3u8 {
        client.write_line(&raw(1, &format!("{n:02x}")));
    }
    let before: Vec<Value> = (0..3).map(|_| first.next_message()).collect();
    assert_eq!(
        bodies(&before),
        vec![
            (1, "01".to_owned()),
            (1, "02".to_owned()),
            (1, "03".to_owned())
        ]
    );

    let stopped = first.stop();
    stopped.assert_code(0);
    let last = stopped.events().pop().expect("a last line");
    assert_eq!(last["event"], "shutdown", "{last}");
    // The client noticed and is trying again.
    client.wait_for("disconnected", |e| e["event"] == "disconnected");
    client.wait_for("connect_failed", |e| e["event"] == "connect_failed");

    for n in 4..=6u8 {
        client.write_line(&raw(1, &format!("{n:02x}")));
    }

    // The same port again; its old sockets may hold it for a moment.
    let started = Instant::now();
    let (mut second, _) = loop {
        if let Some(served) = try_serve(&addr, &[]) {
            break served;
        }
        assert!(started.elapsed() < HANG, "cannot listen on {addr} again");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Wait for the queued lines to arrive before closing stdin: see
    // `connect_flushes_lines_given_before_the_server_is_up` for why.
    let after: Vec<Value> = (0..3).map(|_| second.next_message()).collect();
    let out = client.finish();
    out.assert_code(0);
    assert!(
        out.stderr.lines().all(|l| !l.contains("could not be sent")),
        "{}",
        out.stderr
    );
    let connects = out
        .events()
        .iter()
        .filter(|e| e["event"] == "connected")
        .count();
    assert!(connects >= 2, "{:?}", out.stdout);

    let stopped = second.stop();
    stopped.assert_code(0);
    // Everything the restarted server printed: no more than those three.
    let delivered = messages(&stopped.stdout);
    assert_eq!(bodies(&after), bodies(&delivered));
    assert_eq!(
        bodies(&delivered),
        vec![
            (1, "04".to_owned()),
            (1, "05".to_owned()),
            (1, "06".to_owned())
        ],
        "in order, each once, nothing from before the restart"
    );
}

/// Lines given while the server is not up yet, then the end of stdin: `connect --retry` must
/// keep trying (within `--timeout`) and send them.
///
/// A regression test: the client's backoff sleep once checked for queued frames only when it
/// began, so a line queued during the sleep, then the end of stdin, was dropped (exit 1).
#[test]
fn connect_flushes_lines_given_before_the_server_is_up() {
    // A port that was free a moment ago.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local address").to_string()
    };
    let mut client = start_connect(
        &addr,
        &[
            "--retry",
            "--backoff-initial",
            "1",
            "--backoff-max",
            "1",
            "--backoff-jitter",
            "0",
            "--timeout",
            "50",
        ],
    );
    client.wait_for("connect_failed", |e| e["event"] == "connect_failed");
    // Now inside the 1 s backoff sleep.
    std::thread::sleep(Duration::from_millis(100));
    client.write_line(&raw(1, "01"));
    client.close_stdin();
    let started = Instant::now();
    let (mut server, _) = loop {
        if let Some(served) = try_serve(&addr, &[]) {
            break served;
        }
        assert!(started.elapsed() < HANG, "cannot listen on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = client.finish();
    out.assert_code(0);
    assert_eq!(server.next_message()["body_hex"], "01");
}

// ---------------------------------------------------------------------------------------------
// 6. The ancestor's demo.

#[test]
fn demo_runs_to_completion() {
    let out = run(&["demo", "--rounds", "4"]);
    out.assert_code(0);
    let stdout = out.stdout.join("\n");
    for expected in [
        "client got: 200",
        "client got: hello world!",
        "client got: 7",
        "demo: restarting the server",
        "demo: round 4 of 4 received",
        "demo: done",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert_eq!(out.stdout.last().map(String::as_str), Some("demo: done"));
}

// ---------------------------------------------------------------------------------------------
// 7. Configuration and usage errors: exit code 2, one line.

/// Runs `ltp serve` and `ltp connect` with `args`; both must exit 2 with the one stderr line
/// `ltp: ` + `expected`.
fn assert_config_error(args: &[&str], expected: &str) {
    let mut serve = vec!["serve", "--listen", "127.0.0.1:0"];
    serve.extend_from_slice(args);
    // Never connects: the configuration is loaded first.
    let mut connect = vec!["connect", "127.0.0.1:0"];
    connect.extend_from_slice(args);
    for command in [serve, connect] {
        let out = run(&command);
        out.assert_code(2);
        assert!(out.stdout.is_empty(), "{command:?}: {:?}", out.stdout);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{command:?}: stderr:\n{}", out.stderr);
        assert!(
            lines[0].starts_with(&format!("ltp: {expected}")),
            "{command:?}: {:?} should start with {expected:?}",
            lines[0]
        );
    }
}

#[test]
fn invalid_layout_files_name_file_and_line() {
    for (file, line, problem) in [
        (
            "layout_overlapping.toml",
            6,
            "field `length` (bytes 0..2) overlaps field `type` (bytes 1..2)",
        ),
        (
            "layout_unknown_key.toml",
            8,
            "unknown field `size`, expected one of `offset`, `type`, `struct`",
        ),
        ("layout_syntax_error.toml", 4, "invalid basic string"),
        (
            "layout_reserved_name.toml",
            11,
            "field name `msg` is reserved for the JSON lines",
        ),
    ] {
        let path = data(file);
        assert_config_error(&["--layout", &path], &format!("{path}:{line}: {problem}"));
    }
}

#[test]
fn invalid_schema_files_name_file_and_line() {
    for (file, line, problem) in [
        (
            "schema_unknown_type.toml",
            5,
            "field `num`: unknown type `u33`",
        ),
        (
            "schema_duplicate_type.toml",
            9,
            "type 1 is already used by `NumMsg`",
        ),
        (
            "schema_string_not_last.toml",
            7,
            "field `str` (string) fills the rest of the body, so it must be the last field",
        ),
        ("schema_syntax_error.toml", 4, ""),
    ] {
        let path = data(file);
        assert_config_error(&["--schema", &path], &format!("{path}:{line}: {problem}"));
    }
}

#[test]
fn missing_files_and_unknown_presets_are_usage_errors() {
    assert_config_error(
        &["--layout", "/nonexistent/layout.toml"],
        "/nonexistent/layout.toml: cannot read: ",
    );
    assert_config_error(
        &["--schema", "/nonexistent/schema.toml"],
        "/nonexistent/schema.toml: cannot read: ",
    );
    assert_config_error(
        &["--layout", "nonesuch"],
        "unknown layout `nonesuch`: expected ltprotocol, openflow or a TOML file",
    );
    assert_config_error(
        &["--schema", "nonesuch"],
        "unknown schema `nonesuch`: expected demo, openflow, none or a TOML file",
    );
}

#[test]
fn bad_options_exit_2() {
    for args in [
        &["serve", "--bogus"][..],
        &["serve", "--mode", "nope"],
        &["serve", "--format", "yaml"],
        &["serve", "--max-connections", "many"],
        &["connect"],
        &["connect", "127.0.0.1:0", "--count", "x"],
        &["connect", "127.0.0.1:0", "--max-frame", "-1"],
        &["demo", "--rounds", "x"],
        &["nonesuch"],
    ] {
        let out = run(args);
        out.assert_code(2);
        assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
    }
    // Durations take units; a bad one is a usage error that names the option and the text.
    for bad in ["nan", "5min", "2 s s", "1e3"] {
        let out = run(&["connect", "127.0.0.1:0", "--backoff-initial", bad]);
        out.assert_code(2);
        assert!(
            out.stderr.contains("--backoff-initial")
                && out.stderr.contains(&format!("`{bad}` is not a duration")),
            "{bad}: {}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Text output.

#[test]
fn text_format_prints_readable_lines() {
    let mut server = Ltp::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--format",
        "text",
        "--mode",
        "echo",
        "--schema",
        "demo",
    ]);
    let first = server.next_line().expect("a first line");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_owned();
    let mut client = Ltp::spawn(&[
        "connect", &addr, "--format", "text", "--schema", "demo", "--count", "1",
    ]);
    client.write_line(r#"{"msg":"NumMsg","fields":{"num":200}}"#);
    let out = client.finish();
    out.assert_code(0);
    assert_eq!(out.stdout[0], format!("[#1] connected {addr}"));
    assert_eq!(
        out.stdout[1],
        "[#1] message NumMsg num=200 (type 1, 4 bytes)"
    );

    let connected = server.next_line().expect("connected");
    assert!(
        connected.starts_with("[#1] connected 127.0.0.1:"),
        "{connected}"
    );
    assert_eq!(
        server.next_line().as_deref(),
        Some("[#1] message NumMsg num=200 (type 1, 4 bytes)")
    );
    assert_eq!(
        server.next_line().as_deref(),
        Some("[#1] disconnected: closed by peer")
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Graceful shutdown.

#[test]
fn sigterm_shuts_serve_down_gracefully() {
    let (mut server, addr) = serve(&["--mode", "echo"]);
    let mut client = start_connect(&addr, &[]);
    client.write_line(&raw(1, "01"));
    assert_eq!(client.next_message()["body_hex"], "01");
    server.next_message();

    let out = server.stop();
    out.assert_code(0);
    let events = out.events();
    let last = events.last().expect("a last line");
    assert_eq!(
        *last,
        json!({"event": "shutdown", "connections": 1, "forced": 0, "unsent_frames": 0,
               "sent": 0, "skipped": 0})
    );
    let gone = &events[events.len() - 2];
    assert_eq!(gone["event"], "disconnected", "{gone}");
    // The client saw the server go, and stops at the end of its input.
    client.wait_for("disconnected", |e| e["event"] == "disconnected");
    let out = client.finish();
    out.assert_code(0);
}

#[test]
fn sigterm_with_no_clients_prints_shutdown_and_exits_0() {
    let (mut server, _) = serve(&[]);
    let out = server.stop();
    out.assert_code(0);
    assert_eq!(
        out.events(),
        vec![
            json!({"event": "listening", "addr": out.events()[0]["addr"]}),
            json!({"event": "shutdown", "connections": 0, "forced": 0, "unsent_frames": 0,
                   "sent": 0, "skipped": 0}),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Hostile peers during the OpenFlow handshake.

/// Reads one OpenFlow frame from a blocking socket: (type, xid).
fn read_openflow(stream: &mut TcpStream) -> (u8, u32) {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).expect("an OpenFlow header");
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0u8; len.saturating_sub(8)];
    stream.read_exact(&mut body).expect("an OpenFlow body");
    (
        header[1],
        u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
    )
}

/// The peak resident memory of a process, from `/proc/PID/status`.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

#[test]
fn a_peer_streaming_during_the_openflow_handshake_is_cut_off_with_bounded_memory() {
    // Far past what a bounded server reads (1,024 frames, then the kernels' buffers).
    const FLOOD_LIMIT: usize = 96 * 1024 * 1024;
    let (mut server, addr) = serve(&[
        "--layout",
        "openflow",
        "--schema",
        "openflow",
        "--handshake",
        "openflow",
    ]);
    let mut attacker = TcpStream::connect(&addr).expect("connect");
    attacker.set_read_timeout(Some(HANG)).expect("timeout");
    assert_eq!(read_openflow(&mut attacker).0, 0, "HELLO first");
    attacker
        .write_all(&[0x04, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01])
        .expect("HELLO");
    let (features, xid) = read_openflow(&mut attacker);
    assert_eq!(features, 5, "then FEATURES_REQUEST");
    // PACKET_IN headers whose xid answers nothing, until the server cuts us off.
    let other = xid.wrapping_add(1000).max(1).to_be_bytes();
    let frame = [
        0x04, 0x0a, 0x00, 0x08, other[0], other[1], other[2], other[3],
    ];
    let chunk: Vec<u8> = frame.iter().copied().cycle().take(64 * 1024).collect();
    let mut written = 0;
    while written < FLOOD_LIMIT && attacker.write_all(&chunk).is_ok() {
        written += chunk.len();
    }
    assert!(written < FLOOD_LIMIT, "the server read all {written} bytes");
    let gone = server.wait_for("disconnected", |e| e["event"] == "disconnected");
    let reason = gone["reason"].as_str().expect("reason");
    assert!(reason.contains("1024 frames"), "{reason}");
    let peak = peak_rss_bytes(server.child.id());
    assert!(peak < 64 * 1024 * 1024, "peak RSS {peak} bytes");

    // Still serving: a well-behaved switch gets through its handshake.
    let mut switch = TcpStream::connect(&addr).expect("connect");
    switch.set_read_timeout(Some(HANG)).expect("timeout");
    assert_eq!(read_openflow(&mut switch).0, 0);
    switch
        .write_all(&[0x04, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01])
        .expect("HELLO");
    let (_, xid) = read_openflow(&mut switch);
    let mut reply = vec![0x04, 0x06, 0x00, 0x20];
    reply.extend_from_slice(&xid.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xa1, 0, 0, 0, 0, 0xfe]);
    reply.resize(32, 0);
    switch.write_all(&reply).expect("FEATURES_REPLY");
    server.wait_for("connected", |e| e["event"] == "connected");
    drop(switch);
    server.stop().assert_code(0);
}
