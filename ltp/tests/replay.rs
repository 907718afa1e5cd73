//! Recording and replaying with `ltp`: what `ltp connect A` prints, fed to `ltp connect B`,
//! sends B the bytes A sent (header fields included), at the recorded pace with
//! `--pace original`; and `ltp serve` sending its stdin to every client or to one. The built
//! binary, over 127.0.0.1 on ports the kernel picks; the servers A and B are raw sockets here,
//! so that bytes are compared, not what `ltp` makes of them.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Instant;

use serde_json::Value;

use common::*;

/// An OpenFlow 1.3 header and body: version 4, `message_type`, the length, `xid`.
fn openflow_frame(message_type: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let length = u16::try_from(8 + body.len()).expect("a short body");
    let mut frame = vec![4, message_type];
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&xid.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// A listener on a port of the kernel's choosing, and its address.
fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address").to_string();
    (listener, addr)
}

/// Accepts one connection and reads everything until the peer closes its side.
fn accept_and_read_to_end(listener: &TcpListener) -> Vec<u8> {
    let (mut peer, _) = listener.accept().expect("ltp connects");
    peer.set_read_timeout(Some(HANG)).expect("read timeout");
    let mut received = Vec::new();
    peer.read_to_end(&mut received)
        .expect("read until ltp closes");
    received
}

/// Reads exactly `n` bytes.
fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    stream.read_exact(&mut bytes).expect("the bytes expected");
    bytes
}

#[test]
fn a_recorded_session_replays_the_same_bytes_to_another_server() {
    // What server A sends: an ECHO_REQUEST (xid 7), a FEATURES_REPLY too short for the
    // schema (its event has `decode_error`), and a type the schema does not know (xid at
    // its maximum): the recording must carry all three exactly.
    let sent_by_a = [
        openflow_frame(2, 7, b"\xab\xcd"),
        openflow_frame(6, 8, b"\x01\x02\x03"),
        openflow_frame(200, u32::MAX, b"\x00\xff"),
    ]
    .concat();
    let (server_a, addr_a) = listen();
    let a = std::thread::spawn(move || {
        let (mut peer, _) = server_a.accept().expect("ltp connects to A");
        peer.write_all(&sent_by_a).expect("A writes");
        // Until ltp closes: it has read everything by then.
        let _ = peer.read_to_end(&mut Vec::new());
        sent_by_a
    });
    let openflow = ["--layout", "openflow", "--schema", "openflow"];
    let mut args = vec![
        "connect",
        &addr_a,
        "--format",
        "json",
        "--timestamps",
        "--count",
        "3",
    ];
    args.extend_from_slice(&openflow);
    let recording = Ltp::spawn_with(&args, &[], Stdio::null()).finish();
    recording.assert_code(0);
    let sent_by_a = a.join().expect("server A");
    let events = recording.events();
    assert!(
        events.iter().all(|e| e["ts"].is_f64()),
        "{:?}",
        recording.stdout
    );
    let decode_error = messages(&recording.stdout)[1]["decode_error"].clone();
    assert!(decode_error.is_string(), "{:?}", recording.stdout);
    // Every event of the recording: `connected`, three messages, `disconnected`, `summary`.
    let session: String = recording.stdout.iter().map(|l| format!("{l}\n")).collect();

    let (server_b, addr_b) = listen();
    let b = std::thread::spawn(move || accept_and_read_to_end(&server_b));
    let mut args = vec!["connect", &addr_b, "--format", "json", "--strict"];
    args.extend_from_slice(&openflow);
    let mut replay = Ltp::spawn_env(&args, &[("LTP_LOG", "off")]);
    replay.write_all_lossy(&session);
    let out = replay.finish();
    // `--strict`: no line of the recording is bad, and the other events are passed over
    // without a word.
    out.assert_code(0);
    assert_eq!(out.stderr, "", "nothing to say");
    assert_eq!(b.join().expect("server B"), sent_by_a, "B got A's bytes");
    let summary = out.events().pop().expect("a summary");
    assert_eq!(summary["sent"], 3);
    assert_eq!(summary["skipped"], 0);
}

#[test]
fn pace_original_keeps_the_recorded_gaps() {
    let lines = [
        r#"{"event":"connected","ts":1000.0,"conn":1,"peer":"127.0.0.1:1"}"#,
        r#"{"event":"message","ts":1000.5,"conn":1,"type":1,"body_hex":"01"}"#,
        // Without a ts: sent at once, after the one before.
        r#"{"type":1,"body_hex":"02"}"#,
        r#"{"event":"message","ts":1002.5,"conn":1,"type":1,"body_hex":"03"}"#,
        r#"{"event":"disconnected","ts":1003.0,"conn":1,"reason":"closed by peer"}"#,
    ];
    let session: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (server, addr) = listen();
    let started = Instant::now();
    let mut replay = Ltp::spawn(&["connect", &addr, "--format", "json", "--pace", "original"]);
    replay.write_all_lossy(&session);
    replay.close_stdin();
    let (mut peer, _) = server.accept().expect("ltp connects");
    peer.set_read_timeout(Some(HANG)).expect("read timeout");
    // `00 04 01 01`: the 3-byte ltprotocol header, then the body.
    assert_eq!(read_exactly(&mut peer, 4), b"\x00\x04\x01\x01");
    assert_eq!(read_exactly(&mut peer, 4), b"\x00\x04\x01\x02");
    assert_eq!(read_exactly(&mut peer, 4), b"\x00\x04\x01\x03");
    // The third was due 2 s after the first was read, which was after the start: a lower
    // bound only, whatever the load.
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs_f64() >= 2.0, "sent after {elapsed:?}");
    drop(peer);
    replay.finish().assert_code(0);
}

/// `ltp serve --format json ARGS` and `n` raw clients, each with the `conn` the server gave
/// it (from its `connected` event, matched by the client's address).
fn serve_with_clients(args: &[&str], n: usize) -> (Ltp, Vec<(u64, TcpStream)>) {
    let (mut server, addr) = serve(args);
    let mut clients = Vec::new();
    for _ in 0..n {
        let stream = TcpStream::connect(&addr).expect("connect to ltp serve");
        stream.set_read_timeout(Some(HANG)).expect("read timeout");
        let local = stream.local_addr().expect("local address").to_string();
        let connected = server.wait_for("connected", |e| e["event"] == "connected");
        assert_eq!(connected["peer"], local.as_str(), "in order of connecting");
        let conn = connected["conn"].as_u64().expect("conn");
        clients.push((conn, stream));
    }
    (server, clients)
}

#[test]
fn serve_sends_each_stdin_line_to_every_client_or_to_the_one_named_by_conn() {
    let (mut server, mut clients) = serve_with_clients(&["--schema", "demo"], 3);
    server.write_line(r#"{"msg":"NumMsg","fields":{"num":200}}"#);
    for (_, client) in &mut clients {
        assert_eq!(read_exactly(client, 7), b"\x00\x07\x01\x00\x00\x00\xc8");
    }
    // To the second client only; then a broadcast as the sentinel: the others get the
    // sentinel next, so the unicast never reached them.
    let second = clients[1].0;
    server.write_line(&format!(
        r#"{{"type":2,"body_hex":"6869","conn":{second}}}"#
    ));
    server.write_line(&raw(1, "0000002a"));
    for (conn, client) in &mut clients {
        if *conn == second {
            assert_eq!(read_exactly(client, 5), b"\x00\x05\x02hi");
        }
        assert_eq!(read_exactly(client, 7), b"\x00\x07\x01\x00\x00\x00\x2a");
    }

    // The end of stdin does not stop serving: what a client sends is still printed.
    server.close_stdin();
    let (conn, client) = &mut clients[0];
    client.write_all(b"\x00\x04\x01\x07").expect("write");
    let got = server.next_message();
    assert_eq!(
        (got["conn"].as_u64(), &got["body_hex"]),
        (Some(*conn), &Value::from("07"))
    );
    let out = server.stop();
    out.assert_code(0);
    let shutdown = out.events().pop().expect("a last line");
    assert_eq!(shutdown["event"], "shutdown");
    assert_eq!(
        (shutdown["sent"].as_u64(), shutdown["skipped"].as_u64()),
        (Some(3), Some(0))
    );
}

#[test]
fn serve_skips_a_line_for_an_unknown_client_and_exits_1() {
    let (mut server, mut clients) = serve_with_clients(&[], 1);
    server.write_line(&raw(1, "01"));
    server.write_line(r#"{"type":1,"body_hex":"02","conn":99}"#);
    server.write_line(&raw(1, "03"));
    let (_, client) = &mut clients[0];
    assert_eq!(read_exactly(client, 4), b"\x00\x04\x01\x01");
    // The sentinel: the skipped line came between.
    assert_eq!(read_exactly(client, 4), b"\x00\x04\x01\x03");
    let out = server.stop();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("ltp: stdin line 2: no client 99 is connected; skipped"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ltp: 1 stdin line was skipped"),
        "{}",
        out.stderr
    );
}

#[test]
fn serve_strict_shuts_down_at_a_bad_line_with_exit_2() {
    let (mut server, mut clients) = serve_with_clients(&["--strict"], 1);
    server.write_line(&raw(1, "01"));
    let (_, client) = &mut clients[0];
    assert_eq!(read_exactly(client, 4), b"\x00\x04\x01\x01");
    server.write_line(r#"{"type":1,"conn":99}"#);
    let out = server.finish();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("ltp: stdin line 2: no client 99 is connected"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.events().pop().expect("a last line")["event"],
        "shutdown"
    );
}
