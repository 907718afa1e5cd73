//! `ltp connect --pcap` and `ltp serve --pcap` read back by the real `tshark`: every
//! connection one TCP stream with its handshake and FINs, the exact application bytes both
//! ways (the plaintext over TLS), rotation at `--pcap-max-size`, and OpenFlow decoded by
//! Wireshark's own `openflow_v4` dissector. Without tshark these tests print a note and pass,
//! unless `LTP_REQUIRE_TSHARK=1` (CI), which makes its absence a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::Value;

use common::*;

/// Whether tshark is here; without it (and without `LTP_REQUIRE_TSHARK=1`) a test is skipped.
/// A fresh directory of this test's own.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ltp-pcap-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// `tshark -r FILE ARGS`, its stdout; fails the test if tshark does.
fn tshark(file: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .expect("tshark runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tshark {args:?} on {}: {stderr}",
        file.display()
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// What tshark flags as malformed or as an expert warning or error: nothing, in a good capture.
fn problems(file: &Path, decode_as: &[&str]) -> String {
    let mut args = decode_as.to_vec();
    args.extend(["-Y", r#"_ws.malformed || _ws.expert.severity >= "Warning""#]);
    tshark(file, &args)
}

/// `-z follow,tcp,raw,STREAM`: the bytes each side sent, as hex (the first node's, then the
/// second's, each concatenated).
fn follow(file: &Path, stream: u32) -> (String, String) {
    let out = tshark(file, &["-q", "-z", &format!("follow,tcp,raw,{stream}")]);
    let (mut first, mut second) = (String::new(), String::new());
    let body = out
        .split("===================================================================")
        .nth(1)
        .expect("a follow section");
    for line in body.lines() {
        if line.starts_with("Follow:") || line.starts_with("Filter:") || line.starts_with("Node ") {
            continue;
        }
        if let Some(hex) = line.strip_prefix('\t') {
            second.push_str(hex.trim());
        } else {
            first.push_str(line.trim());
        }
    }
    (first, second)
}

/// `tcp.stream`, `tcp.flags.str`, `tcp.len` of every packet.
fn packets(file: &Path) -> Vec<(u32, String, usize)> {
    tshark(
        file,
        &[
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags.str",
            "-e",
            "tcp.len",
        ],
    )
    .lines()
    .map(|line| {
        let cols: Vec<&str> = line.split('\t').collect();
        (
            cols[0].parse().expect("stream"),
            cols[1].to_owned(),
            cols[2].parse().expect("len"),
        )
    })
    .collect()
}

/// The `pcap` key of the last line (`summary` or `shutdown`).
fn pcap_report(lines: &[String]) -> Value {
    let last: Value = serde_json::from_str(lines.last().expect("a last line")).expect("JSON");
    last["pcap"].clone()
}

const DEMO_INPUT: &str = concat!(
    r#"{"msg":"NumMsg","fields":{"num":200}}"#,
    "\n",
    r#"{"msg":"StrMsg","fields":{"str":"hello world!"}}"#,
    "\n",
);
/// NumMsg(200) then StrMsg("hello world!") on the wire: length, type, body.
const DEMO_HEX: &str = "000701000000c8000f0268656c6c6f20776f726c6421";

/// A demo session against an echoing `ltp serve`, captured by `ltp connect --pcap` into
/// `DIR/demo.pcapng` (a fresh directory named `name`): the directory, the file, the server's
/// address and what `ltp connect` printed.
fn capture_demo_session(name: &str) -> (PathBuf, PathBuf, String, Finished) {
    let dir = temp_dir(name);
    let file = dir.join("demo.pcapng");
    let (_server, addr) = serve(&["--mode", "echo", "--schema", "demo"]);
    let file_arg = file.to_str().expect("UTF-8 path");
    let out = connect(
        &addr,
        &["--schema", "demo", "--count", "2", "--pcap", file_arg],
        DEMO_INPUT,
    );
    out.assert_code(0);
    (dir, file, addr, out)
}

#[test]
fn a_demo_session_reads_back_as_one_tcp_stream_with_the_exact_bytes() {
    if !have_tshark() {
        return;
    }
    let (dir, file, addr, out) = capture_demo_session("demo");
    let file_arg = file.to_str().expect("UTF-8 path");
    let report = pcap_report(&out.stdout);
    assert_eq!(report["dropped_frames"], 0, "{report}");
    assert_eq!(report["bytes"], 44, "{report}");
    assert_eq!(report["files"], serde_json::json!([file_arg]));

    // Client first (it connected): what it sent, then the echo.
    assert_eq!(follow(&file, 0), (DEMO_HEX.to_owned(), DEMO_HEX.to_owned()));
    let packets = packets(&file);
    assert!(
        packets.iter().all(|(stream, _, _)| *stream == 0),
        "{packets:?}"
    );
    assert!(packets[0].1.ends_with("S·"), "a SYN first: {packets:?}");
    assert!(
        packets[1].1.contains('A') && packets[1].1.ends_with("S·"),
        "{packets:?}"
    );
    let fins = packets
        .iter()
        .filter(|(_, flags, _)| flags.ends_with('F'))
        .count();
    assert_eq!(fins, 2, "a FIN each way: {packets:?}");
    // The connection's real ports: the server's is ADDR's.
    let port = addr.rsplit(':').next().expect("port");
    let ports = tshark(&file, &["-T", "fields", "-e", "tcp.dstport", "-c", "1"]);
    assert_eq!(ports.trim(), port);
    assert_eq!(problems(&file, &[]), "");
    // The filter finds what there is: the handshake's "chat" notes.
    assert!(!tshark(&file, &["-Y", r#"_ws.expert.severity >= "Chat""#]).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The two halves of #23 together: what `ltp connect --pcap` captured, read by `tshark` with
/// the dissector `ltp dissector` wrote for the same schema.
#[test]
fn a_captured_demo_session_decodes_with_the_generated_dissector() {
    if !have_tshark() {
        return;
    }
    let (dir, file, addr, _out) = capture_demo_session("dissected");
    let port = addr.rsplit(':').next().expect("port");
    let script = run(&["dissector", "--schema", "demo", "--port", port]);
    script.assert_code(0);
    let lua = dir.join("demo.lua");
    std::fs::write(&lua, script.stdout.join("\n")).expect("write the dissector");
    let lua_arg = format!("lua_script:{}", lua.display());
    let fields = [
        "-X",
        &lua_arg,
        "-Y",
        "ltp_demo",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-e",
        "ltp_demo.msg",
        "-e",
        "ltp_demo.nummsg.num",
        "-e",
        "ltp_demo.strmsg.str",
    ];
    let rows: Vec<String> = tshark(&file, &fields).lines().map(str::to_owned).collect();
    // What the client sent, then the server's echo of it: each message where TCP put it.
    let messages: String = rows.join(";");
    assert_eq!(
        messages.matches("NumMsg").count(),
        2,
        "NumMsg sent and echoed: {rows:?}"
    );
    assert!(messages.contains("200"), "{rows:?}");
    assert_eq!(messages.matches("hello world!").count(), 2, "{rows:?}");
    let problems = tshark(
        &file,
        &[
            "-X",
            &lua_arg,
            "-Y",
            r#"_ws.malformed || _ws.expert.severity >= "Warning""#,
        ],
    );
    assert_eq!(problems, "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_served_session_is_captured_by_the_server_too() {
    if !have_tshark() {
        return;
    }
    let dir = temp_dir("served");
    let file = dir.join("served.pcapng");
    let file_arg = file.to_str().expect("UTF-8 path");
    let (mut server, addr) = serve(&["--mode", "echo", "--schema", "demo", "--pcap", file_arg]);
    for _ in 0..2 {
        connect(&addr, &["--schema", "demo", "--count", "2"], DEMO_INPUT).assert_code(0);
    }
    let done = server.stop();
    let report = pcap_report(&done.stdout);
    assert_eq!(report["dropped_frames"], 0, "{report}");
    assert_eq!(report["bytes"], 88, "{report}");
    // Two connections, two streams; the client (node 0) spoke first in each.
    for stream in 0..2 {
        assert_eq!(
            follow(&file, stream),
            (DEMO_HEX.to_owned(), DEMO_HEX.to_owned())
        );
    }
    assert_eq!(problems(&file, &[]), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tls_session_is_captured_as_plaintext() {
    if !have_tshark() {
        return;
    }
    let dir = temp_dir("tls");
    let (ca, cert, key) = certificates(&dir);
    let file = dir.join("tls.pcapng");
    let file_arg = file.to_str().expect("UTF-8 path");
    let (_server, addr) = serve(&[
        "--mode",
        "echo",
        "--schema",
        "demo",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let out = connect(
        &addr,
        &[
            "--schema", "demo", "--count", "2", "--tls", "--ca", &ca, "--pcap", file_arg,
        ],
        DEMO_INPUT,
    );
    out.assert_code(0);
    assert_eq!(follow(&file, 0), (DEMO_HEX.to_owned(), DEMO_HEX.to_owned()));
    assert_eq!(problems(&file, &[]), "");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA, and a certificate it issued for 127.0.0.1: paths of the CA, certificate and key.
fn certificates(dir: &Path) -> (String, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "pcap test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
        .expect("CA certificate");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("certificate");
    let paths = [
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    ];
    std::fs::write(&paths[0], ca.pem()).expect("write CA");
    std::fs::write(&paths[1], cert.pem()).expect("write certificate");
    std::fs::write(&paths[2], key.serialize_pem()).expect("write key");
    let [ca, cert, key] = paths.map(|p| p.to_str().expect("UTF-8 path").to_owned());
    (ca, cert, key)
}

#[test]
fn a_size_limit_rotates_into_files_that_each_open() {
    if !have_tshark() {
        return;
    }
    let dir = temp_dir("rotate");
    let file = dir.join("rot.pcapng");
    let file_arg = file.to_str().expect("UTF-8 path");
    let (_server, addr) = serve(&["--mode", "echo", "--schema", "demo"]);
    let count = 40;
    let input: String = (0..count)
        .map(|n| format!("{{\"msg\":\"NumMsg\",\"fields\":{{\"num\":{n}}}}}\n"))
        .collect();
    let out = connect(
        &addr,
        &[
            "--schema",
            "demo",
            "--count",
            &count.to_string(),
            "--pcap",
            file_arg,
            "--pcap-max-size",
            "1000",
        ],
        &input,
    );
    out.assert_code(0);
    let report = pcap_report(&out.stdout);
    let files: Vec<PathBuf> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| PathBuf::from(f.as_str().expect("a path")))
        .collect();
    assert!(files.len() >= 2, "{report}");
    assert_eq!(files[1], dir.join("rot.1.pcapng"));
    let mut bytes = 0;
    for file in &files {
        let size = std::fs::metadata(file).expect("a file").len();
        // A packet block may pass the limit only when it is the file's first.
        assert!(
            size <= 1000 || files.len() == 1,
            "{} is {size} bytes",
            file.display()
        );
        bytes += packets(file).iter().map(|(_, _, len)| len).sum::<usize>();
    }
    // Each message 7 bytes, both ways: every byte is in one of the files.
    assert_eq!(bytes, count * 7 * 2);
    assert_eq!(report["bytes"], bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn openflow_decodes_with_wiresharks_own_dissector() {
    if !have_tshark() {
        return;
    }
    let dir = temp_dir("openflow");
    let file = dir.join("of.pcapng");
    let file_arg = file.to_str().expect("UTF-8 path");
    let (_server, addr) = serve(&[
        "--mode", "echo", "--layout", "openflow", "--schema", "openflow",
    ]);
    let input = concat!(
        r#"{"msg":"HELLO","xid":1}"#,
        "\n",
        r#"{"msg":"ECHO_REQUEST","fields":{"data":"abcd"},"xid":7}"#,
        "\n",
        r#"{"msg":"FEATURES_REQUEST","xid":8}"#,
        "\n",
        r#"{"msg":"BARRIER_REQUEST","xid":9}"#,
        "\n",
    );
    let out = connect(
        &addr,
        &[
            "--layout", "openflow", "--schema", "openflow", "--count", "4", "--pcap", file_arg,
        ],
        input,
    );
    out.assert_code(0);
    let port = addr.rsplit(':').next().expect("port");
    let decode_as = format!("tcp.port=={port},openflow");
    let types = tshark(
        &file,
        &[
            "-d",
            &decode_as,
            "-Y",
            "openflow_v4",
            "-T",
            "fields",
            "-e",
            "openflow_v4.type",
            "-e",
            "openflow_v4.xid",
        ],
    );
    let decoded: Vec<(String, String)> = types
        .lines()
        .flat_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let types: Vec<&str> = cols[0].split(',').collect();
            let xids: Vec<&str> = cols[1].split(',').collect();
            types
                .into_iter()
                .zip(xids)
                .map(|(t, x)| (t.to_owned(), x.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    // HELLO (0), ECHO_REQUEST (2), FEATURES_REQUEST (5), BARRIER_REQUEST (20), each echoed.
    let count = |kind: &str| decoded.iter().filter(|(t, _)| t == kind).count();
    assert_eq!(count("0"), 2, "{decoded:?}");
    assert_eq!(count("2"), 2, "{decoded:?}");
    assert_eq!(count("5"), 2, "{decoded:?}");
    assert_eq!(count("20"), 2, "{decoded:?}");
    assert!(
        decoded.contains(&("2".to_owned(), "7".to_owned())),
        "{decoded:?}"
    );
    assert_eq!(problems(&file, &["-d", &decode_as]), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_text_format_says_what_the_capture_wrote_and_dropped() {
    // No tshark needed: only the last line is read.
    let dir = temp_dir("text");
    let file = dir.join("text.pcapng");
    let file_arg = file.to_str().expect("UTF-8 path");
    let (_server, addr) = serve(&["--mode", "echo", "--schema", "demo"]);
    let mut client = Ltp::spawn(&[
        "connect", &addr, "--format", "text", "--schema", "demo", "--count", "2", "--pcap",
        file_arg,
    ]);
    client.write_all_lossy(DEMO_INPUT);
    let out = client.finish();
    out.assert_code(0);
    let last = out.stdout.last().expect("a last line");
    // How many segments the 44 bytes took depends on how reads and writes batched them.
    let capture = last
        .strip_prefix("summary: 2 sent, 0 skipped, 0 unsent, 2 received; capture: ")
        .unwrap_or_else(|| panic!("{last}"));
    let (packets, rest) = capture.split_once(" packets ").expect("packets");
    assert!(packets.parse::<u32>().expect("a count") >= 7, "{last}");
    assert_eq!(rest, "(44 bytes) in 1 file, 0 packets dropped");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sslkeylogfile_gets_the_session_secrets_of_both_ends() {
    // No tshark needed: the key log files are read directly.
    let dir = temp_dir("keylog");
    let (ca, cert, key) = certificates(&dir);
    let server_log = dir.join("server.keys");
    let client_log = dir.join("client.keys");
    let mut server = Ltp::spawn_env(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--format",
            "json",
            "--mode",
            "echo",
            "--schema",
            "demo",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        &[("SSLKEYLOGFILE", server_log.to_str().expect("UTF-8 path"))],
    );
    let listening: Value =
        serde_json::from_str(&server.next_line().expect("a listening line")).expect("JSON");
    let addr = listening["addr"].as_str().expect("addr").to_owned();
    let mut client = Ltp::spawn_env(
        &[
            "connect", &addr, "--format", "json", "--schema", "demo", "--count", "2", "--tls",
            "--ca", &ca,
        ],
        &[("SSLKEYLOGFILE", client_log.to_str().expect("UTF-8 path"))],
    );
    client.write_all_lossy(DEMO_INPUT);
    client.finish().assert_code(0);
    server.stop();
    // One TLS 1.3 session: its secrets, named by the same client random, at both ends.
    let secrets = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .lines()
            .filter(|line| line.starts_with("CLIENT_TRAFFIC_SECRET_0 "))
            .map(|line| line.split(' ').nth(1).expect("a client random").to_owned())
            .collect()
    };
    let (on_server, on_client) = (secrets(&server_log), secrets(&client_log));
    assert_eq!(on_client.len(), 1, "{on_client:?}");
    assert_eq!(on_server, on_client);
    let _ = std::fs::remove_dir_all(&dir);
}
