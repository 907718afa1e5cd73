//! What a script gets from `ltp connect`: the exit code of each way it can end (0 sent, 1
//! not connected / gave up / unsent / skipped, 2 usage or input), the first connection tried
//! once unless `--retry`, `--strict`, the `summary` event, and `--keep-open`. The built binary,
//! over 127.0.0.1 on ports the kernel picks.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::process::Stdio;

use serde_json::{Value, json};

use common::*;

/// A port that was free a moment ago: nothing listens there, so connecting is refused.
fn refused_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").to_string()
}

/// The events of `out` named `name`.
fn named(out: &Finished, name: &str) -> Vec<Value> {
    out.events()
        .into_iter()
        .filter(|event| event["event"] == name)
        .collect()
}

/// The last stdout event, which must be the `summary`.
fn summary(out: &Finished) -> Value {
    let last = out.events().pop().expect("a last line");
    assert_eq!(last["event"], "summary", "{:?}", out.stdout);
    last
}

#[test]
fn everything_sent_exits_0_with_a_summary() {
    let (_server, addr) = serve(&["--mode", "echo"]);
    let out = connect(
        &addr,
        &["--count", "2"],
        &format!("{}\n{}\n", raw(1, "01"), raw(1, "02")),
    );
    out.assert_code(0);
    assert_eq!(
        summary(&out),
        json!({"event": "summary", "sent": 2, "skipped": 0, "unsent": 0, "received": 2})
    );
}

#[test]
fn a_refused_first_connection_fails_at_once_with_exit_1_and_one_line() {
    let addr = refused_port();
    // Logs off: stderr holds exactly the CLI's own lines.
    let mut client = Ltp::spawn_env(
        &["connect", &addr, "--format", "json"],
        &[("LTP_LOG", "off")],
    );
    // It may have given up before reading this: either way, a failure.
    client.write_all_lossy(&format!("{}\n", raw(1, "01")));
    let out = client.finish();
    out.assert_code(1);
    let failed = named(&out, "connect_failed");
    assert_eq!(failed.len(), 1, "one attempt: {:?}", out.stdout);
    assert_eq!(failed[0]["retry_in_ms"], Value::Null, "giving up");
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("ltp: cannot connect to {addr}: "))
            && first.ends_with("(--retry keeps trying)"),
        "{}",
        out.stderr
    );
    assert_eq!(summary(&out)["sent"], 0);
}

#[test]
fn no_stdin_and_no_server_is_still_exit_1() {
    // The issue's own case: `ltp connect localhost:1 --max-attempts 1 </dev/null`.
    for args in [&["--max-attempts", "1"][..], &[]] {
        let addr = refused_port();
        let mut all = vec!["connect", &addr, "--format", "json"];
        all.extend_from_slice(args);
        let out = Ltp::spawn_with(&all, &[("LTP_LOG", "off")], Stdio::null()).finish();
        out.assert_code(1);
        assert!(out.stderr.contains("cannot connect to"), "{}", out.stderr);
    }
}

#[test]
fn retry_gives_up_after_max_attempts_with_exit_1() {
    let addr = refused_port();
    let out = Ltp::spawn_with(
        &[
            "connect",
            &addr,
            "--format",
            "json",
            "--retry",
            "--max-attempts",
            "3",
            "--backoff-initial",
            "10ms",
        ],
        &[("LTP_LOG", "off")],
        Stdio::null(),
    )
    .finish();
    out.assert_code(1);
    let failed = named(&out, "connect_failed");
    let attempts: Vec<&Value> = failed.iter().map(|event| &event["attempt"]).collect();
    assert_eq!(attempts, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(failed[2]["retry_in_ms"], Value::Null);
    assert!(
        out.stderr.contains("gave up after 3 attempts"),
        "{}",
        out.stderr
    );
}

#[test]
fn retry_without_a_server_leaves_lines_unsent_with_exit_1() {
    let addr = refused_port();
    let mut client = Ltp::spawn_env(
        &[
            "connect",
            &addr,
            "--format",
            "json",
            "--retry",
            "--backoff-initial",
            "50ms",
            "--timeout",
            "500ms",
        ],
        &[("LTP_LOG", "off")],
    );
    client.write_line(&raw(1, "01"));
    client.write_line(&raw(1, "02"));
    let out = client.finish();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("ltp: no connection to {addr} within 500ms")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ltp: 2 messages could not be sent"),
        "{}",
        out.stderr
    );
    let summary = summary(&out);
    assert_eq!(
        (summary["sent"].clone(), summary["unsent"].clone()),
        (json!(0), json!(2))
    );
    // It kept trying: more than one attempt, each with a wait before the next.
    assert!(named(&out, "connect_failed").len() > 1, "{:?}", out.stdout);
}

#[test]
fn strict_stops_at_the_first_bad_line_with_exit_2() {
    let (mut server, addr) = serve(&[]);
    let input = format!("{}\nnot json\n{}\n", raw(1, "01"), raw(1, "03"));
    let out = connect(&addr, &["--strict"], &input);
    out.assert_code(2);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("ltp: stdin line 2: invalid JSON")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("skipped"), "{}", out.stderr);
    // What came before the bad line was sent; nothing after it: the server saw one message,
    // then the connection close.
    assert_eq!(server.next_message()["body_hex"], "01");
    let next = server.wait_for("the close", |e| e["event"] != "connected");
    assert_eq!(next["event"], "disconnected", "{next}");
    assert_eq!(summary(&out)["sent"], 1);
}

#[test]
fn skipped_lines_exit_1_and_all_bad_input_never_exits_0() {
    let (_server, addr) = serve(&[]);
    let out = connect(&addr, &[], "nonsense\n{\"type\":\"x\"}\n");
    out.assert_code(1);
    assert_eq!(
        summary(&out),
        json!({"event": "summary", "sent": 0, "skipped": 2, "unsent": 0, "received": 0})
    );
    assert!(
        out.stderr.contains("ltp: 2 stdin lines were skipped"),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_and_input_errors_exit_2() {
    for args in [
        &["connect", "127.0.0.1"][..],
        &["connect", "127.0.0.1:9", "--count", "1", "--keep-open"],
        &["connect", "127.0.0.1:9", "--pace", "sometimes"],
        &["serve", "--pace", "sometimes"],
    ] {
        let out = run(args);
        out.assert_code(2);
        assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
    }
    // A stdin that cannot be read (a directory) is an input error.
    let (_server, addr) = serve(&[]);
    let directory = File::open(env!("CARGO_MANIFEST_DIR")).expect("open a directory");
    let out = Ltp::spawn_with(
        &["connect", &addr, "--format", "json"],
        &[("LTP_LOG", "off")],
        Stdio::from(directory),
    )
    .finish();
    out.assert_code(2);
    assert!(
        out.stderr.starts_with("ltp: cannot read stdin: "),
        "{}",
        out.stderr
    );
}

#[test]
fn keep_open_prints_what_arrives_after_the_end_of_stdin_until_the_timeout() {
    let (mut server, addr) = serve(&[]);
    let mut client = start_connect(&addr, &["--keep-open", "--timeout", "3s"]);
    client.write_line(&raw(1, "01"));
    client.close_stdin();
    assert_eq!(server.next_message()["body_hex"], "01");
    // Stdin is closed and the message sent: a message from the server still arrives.
    server.write_line(&raw(2, "beef"));
    assert_eq!(client.next_message()["body_hex"], "beef");
    let out = client.finish();
    out.assert_code(0);
    assert_eq!(
        summary(&out),
        json!({"event": "summary", "sent": 1, "skipped": 0, "unsent": 0, "received": 1})
    );
}

#[test]
fn keep_open_ends_at_sigterm_with_exit_0() {
    let (mut server, addr) = serve(&[]);
    let mut client = start_connect(&addr, &["--keep-open"]);
    client.close_stdin();
    server.wait_for("connected", |e| e["event"] == "connected");
    server.write_line(&raw(2, "aa"));
    assert_eq!(client.next_message()["body_hex"], "aa");
    let out = client.stop();
    out.assert_code(0);
    assert_eq!(summary(&out)["received"], 1);
}
