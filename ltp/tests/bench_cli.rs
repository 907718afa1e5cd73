//! `ltp bench` end to end: every mode with tiny sizes, in-process and against `ltp bench
//! serve`, over plain TCP and TLS, checking the final JSON line's keys and that every REPORT
//! was verified. No timing assertions: speed is what the command reports, not what the tests
//! judge.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use ltp::bench_wire::{DATA, END, FANOUT, MAX_FANOUT_COUNT, REPORT, fanout_body, report_body};

/// The keys every result line carries (values may be null where a mode has no such figure).
const RESULT_KEYS: [&str; 21] = [
    "event",
    "implementation",
    "mode",
    "client",
    "target",
    "layout",
    "tls",
    "connections",
    "body_size",
    "messages",
    "deliveries",
    "elapsed_secs",
    "msgs_per_sec",
    "mb_per_sec",
    "wire_mb_per_sec",
    "latency_us",
    "rss_bytes",
    "rss_per_conn_bytes",
    "rss_scope",
    "verified",
    "problems",
];

/// A generous guard that turns a hang into a failure.
const HANG: Duration = Duration::from_secs(120);

fn ltp(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ltp"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `ltp ARGS` to completion (killing it, by its own handle, if it hangs).
fn run(args: &[&str]) -> Output {
    let mut child = ltp(args).spawn().expect("ltp starts");
    let started = Instant::now();
    while child.try_wait().expect("ltp can be waited for").is_none() {
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("ltp {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("ltp's output")
}

/// Runs a bench and returns its final JSON line, after checking the exit code and the keys.
fn bench(args: &[&str]) -> Value {
    let out = run(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ltp {args:?} failed: {stdout}\n{stderr}"
    );
    let last = stdout.lines().last().expect("a result line");
    let result: Value = serde_json::from_str(last).expect("the result line is JSON");
    for key in RESULT_KEYS {
        assert!(result.get(key).is_some(), "key {key} missing from {result}");
    }
    assert_eq!(result["event"], "result");
    assert_eq!(result["implementation"], "ltp");
    assert_eq!(result["verified"], true, "{result}");
    assert_eq!(result["problems"], serde_json::json!([]));
    result
}

#[test]
fn throughput_codec_path_is_verified_in_process() {
    let result = bench(&[
        "bench",
        "throughput",
        "--messages",
        "2000",
        "--connections",
        "2",
    ]);
    assert_eq!(result["mode"], "throughput");
    assert_eq!(result["client"], "codec");
    assert_eq!(result["target"], "in-process");
    assert_eq!(result["tls"], false);
    assert_eq!(result["messages"], 2000);
    assert_eq!(result["connections"], 2);
    assert_eq!(result["body_size"], 16);
    assert!(result["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(result["mb_per_sec"].is_number());
    assert!(result["latency_us"].is_null());
}

#[test]
fn throughput_runtime_path_is_verified_in_process() {
    let result = bench(&[
        "bench",
        "throughput",
        "--client",
        "runtime",
        "--messages",
        "2000",
        "--connections",
        "2",
    ]);
    assert_eq!(result["client"], "runtime");
    assert_eq!(result["messages"], 2000);
}

#[test]
fn throughput_by_duration_counts_what_it_sent() {
    let result = bench(&[
        "bench",
        "throughput",
        "--duration",
        "0.2",
        "--body-size",
        "100",
    ]);
    assert!(result["messages"].as_u64().unwrap() > 0);
    assert_eq!(result["deliveries"], result["messages"]);
}

#[test]
fn large_bodies_fit_the_u32_layout() {
    let result = bench(&[
        "bench",
        "throughput",
        "--layout",
        "u32",
        "--body-size",
        "1048576",
        "--messages",
        "20",
    ]);
    assert_eq!(result["layout"], "u32");
    assert_eq!(result["body_size"], 1_048_576);
}

#[test]
fn pingpong_reports_latency_percentiles() {
    let result = bench(&[
        "bench",
        "pingpong",
        "--messages",
        "2000",
        "--connections",
        "2",
    ]);
    assert_eq!(result["messages"], 2000);
    let latency = &result["latency_us"];
    for key in ["p50", "p99", "p999", "max"] {
        assert!(latency[key].as_f64().unwrap() > 0.0, "{latency}");
    }
    let (p50, p99) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
    );
    assert!(p50 <= p99);
}

#[test]
fn pingpong_runtime_path_is_verified() {
    let result = bench(&[
        "bench",
        "pingpong",
        "--client",
        "runtime",
        "--messages",
        "300",
    ]);
    assert_eq!(result["client"], "runtime");
}

#[test]
fn fanout_reaches_every_receiver() {
    let result = bench(&[
        "bench",
        "fanout",
        "--messages",
        "200",
        "--connections",
        "20",
    ]);
    assert_eq!(result["mode"], "fanout");
    assert_eq!(result["messages"], 200);
    assert_eq!(result["deliveries"], 4000);
}

#[test]
fn conns_measures_the_in_process_server() {
    let result = bench(&["bench", "conns", "--connections", "50"]);
    assert_eq!(result["connections"], 50);
    assert_eq!(result["rss_scope"], "server-in-process");
    assert!(result["rss_bytes"].is_number());
    assert!(result["rss_per_conn_bytes"].is_number());
    assert!(result["msgs_per_sec"].is_null());
    assert!(result["latency_us"]["p50"].is_number());
}

#[test]
fn pingpong_by_duration_reports_ordered_percentiles() {
    // Timed runs gather their round trips in a histogram of fixed size, not a list.
    let result = bench(&[
        "bench",
        "pingpong",
        "--duration",
        "500ms",
        "--connections",
        "3",
    ]);
    assert!(result["messages"].as_u64().unwrap() > 0, "{result}");
    let latency = &result["latency_us"];
    let at = |key: &str| latency[key].as_f64().unwrap_or_else(|| panic!("{latency}"));
    assert!(at("p50") > 0.0, "{latency}");
    assert!(at("p50") <= at("p99"), "{latency}");
    assert!(at("p99") <= at("p999"), "{latency}");
    assert!(at("p999") <= at("max"), "{latency}");
}

/// `ltp bench ARGS` run by bash after `ulimit LIMIT` (e.g. `-S -n 256`), to completion.
fn run_with_ulimit(limit: &str, args: &[&str]) -> Output {
    let script = format!("ulimit {limit} && exec \"$0\" \"$@\"");
    let mut child = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_ltp")])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash starts");
    let started = Instant::now();
    while child.try_wait().expect("bash can be waited for").is_none() {
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("ulimit {limit}; ltp {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("ltp's output")
}

/// This process's hard limit on open files (`ulimit -Hn`), `None` when unlimited or unknown.
fn hard_open_files_limit() -> Option<u64> {
    let out = Command::new("bash")
        .args(["-c", "ulimit -Hn"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn conns_raises_a_low_open_files_soft_limit() {
    // 300 connections in-process: 600 descriptors and spares, over a soft limit of 256.
    if hard_open_files_limit().is_some_and(|hard| hard < 1_000) {
        println!("note: the hard open-files limit is under 1,000: nothing to raise it to");
        return;
    }
    let out = run_with_ulimit("-S -n 256", &["bench", "conns", "--connections", "300"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let result: Value = serde_json::from_str(stdout.lines().last().expect("a result line"))
        .expect("the result line is JSON");
    assert_eq!(result["connections"], 300);
    assert_eq!(result["verified"], true, "{result}");
}

#[test]
fn conns_names_a_hard_limit_too_low() {
    let out = run_with_ulimit("-n 200", &["bench", "conns", "--connections", "300"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("need about 664 file descriptors"),
        "{stderr}"
    );
    assert!(stderr.contains("hard limit of 200 open files"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_options_exit_2() {
    // 65,533 + 3 bytes cannot be framed with a u16 length.
    let out = run(&[
        "bench",
        "throughput",
        "--body-size",
        "65533",
        "--messages",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--body-size 65533"), "{stderr}");
    assert!(out.stdout.is_empty());
    // More broadcasts than a server carries out (it would close the connection instead).
    let messages = (MAX_FANOUT_COUNT + 1).to_string();
    let out = run(&["bench", "fanout", "--messages", &messages]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let refusal = format!("--messages {messages}: a FANOUT broadcasts at most {MAX_FANOUT_COUNT}");
    assert!(stderr.contains(&refusal), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// `ltp bench serve` on port 0, stopped by its own handle when dropped.
struct ServeChild {
    child: Child,
    addr: String,
    /// Its stderr, gathered on a thread until it exits (see [`ServeChild::start_logged`]).
    stderr: Option<JoinHandle<String>>,
}

impl ServeChild {
    /// `ltp bench serve` with `extra` options (e.g. `--tls`), its stderr discarded.
    fn start_with(extra: &[&str]) -> Self {
        Self::start(extra, false)
    }

    /// `ltp bench serve` with `extra` options, its stderr (the logs) kept for
    /// [`stop`](Self::stop).
    fn start_logged(extra: &[&str]) -> Self {
        Self::start(extra, true)
    }

    fn start(extra: &[&str], logged: bool) -> Self {
        let mut args = vec!["bench", "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = ltp(&args)
            .env("NO_COLOR", "1")
            .stderr(if logged {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("ltp bench serve starts");
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the listening line");
        let line: Value = serde_json::from_str(&first).expect("the listening line is JSON");
        assert_eq!(line["event"], "listening", "{line}");
        let addr = line["addr"].as_str().expect("an address").to_owned();
        Self {
            child,
            addr,
            stderr,
        }
    }

    /// Stops the server (by its own handle) and returns what it logged, if it was started
    /// with [`start_logged`](Self::start_logged).
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The child is gone, so its stderr has ended.
        self.stderr
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        // By this child's own handle (its PID), never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every mode against `ltp bench serve --api API`: the in-place server (`inspect`, the
/// default) and those that take every frame through `Handler::message`, as a frame-level
/// `Unknown` (`frame`) or decoded into a derived enum (`typed`), count, report, echo and
/// broadcast alike.
#[test]
fn every_mode_runs_against_bench_serve() {
    for api in ["inspect", "frame", "typed", "typed-async"] {
        let server = ServeChild::start_with(&["--api", api]);
        let target = server.addr.as_str();
        // Fanout first: a broadcast reaches every connection the server still holds, and the
        // connections of the runs below may take a moment to be noticed closed.
        let result = bench(&[
            "bench",
            "fanout",
            "--target",
            target,
            "--messages",
            "50",
            "--connections",
            "5",
        ]);
        assert_eq!(result["deliveries"], 250, "--api {api}");
        let result = bench(&[
            "bench",
            "throughput",
            "--target",
            target,
            "--messages",
            "2000",
            "--connections",
            "2",
            "--body-size",
            "100",
        ]);
        assert_eq!(result["target"], target);
        assert_eq!(result["messages"], 2000, "--api {api}");
        // The same server again: END restarts the counters, so a second run verifies too.
        bench(&[
            "bench",
            "throughput",
            "--target",
            target,
            "--messages",
            "500",
        ]);
        let result = bench(&["bench", "pingpong", "--target", target, "--messages", "200"]);
        assert!(result["latency_us"]["p50"].is_number(), "--api {api}");
        let pid = server.child.id().to_string();
        let result = bench(&[
            "bench",
            "conns",
            "--target",
            target,
            "--connections",
            "50",
            "--server-pid",
            &pid,
        ]);
        assert_eq!(result["rss_scope"], "server-pid", "--api {api}");
    }
}

#[test]
fn an_unreachable_target_fails_instead_of_hanging() {
    // Port 1 on loopback: nothing listens there, so connecting is refused at once.
    for mode in ["throughput", "pingpong", "fanout"] {
        let out = run(&["bench", mode, "--target", "127.0.0.1:1", "--messages", "10"]);
        assert_eq!(out.status.code(), Some(1), "{mode}");
        assert!(out.stdout.is_empty(), "{mode}");
    }
}

#[test]
fn soak_loses_and_duplicates_nothing_across_reconnects() {
    let out = run(&["bench", "soak", "--duration", "5", "--connections", "20"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ltp bench soak failed: {stdout}\n{stderr}"
    );
    let last = stdout.lines().last().expect("a result line");
    let result: Value = serde_json::from_str(last).expect("the result line is JSON");
    assert_eq!(result["event"], "result");
    assert_eq!(result["mode"], "soak");
    assert_eq!(result["verified"], true, "{result}");
    assert!(result["sent"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["duplicated"], 0, "{result}");
    assert_eq!(result["relay_out_of_order"], 0, "{result}");
    assert_eq!(result["relay_duplicated"], 0, "{result}");
    assert!(result["reconnects"].as_u64().unwrap() > 0, "{result}");
}

/// A fresh directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ltp-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("a UTF-8 path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn throughput_over_tls_is_verified_in_process_on_both_paths() {
    for client in ["codec", "runtime"] {
        let result = bench(&[
            "bench",
            "throughput",
            "--tls",
            "--client",
            client,
            "--messages",
            "2000",
            "--connections",
            "2",
        ]);
        assert_eq!(result["tls"], true, "{result}");
        assert_eq!(result["client"], client);
        assert_eq!(result["messages"], 2000);
    }
    // Bodies of the largest size: each spans several TLS records.
    let result = bench(&[
        "bench",
        "throughput",
        "--tls",
        "--body-size",
        "65532",
        "--messages",
        "50",
    ]);
    assert_eq!(result["tls"], true, "{result}");
}

#[test]
fn pingpong_over_tls_reports_latency_percentiles() {
    for client in ["codec", "runtime"] {
        let result = bench(&[
            "bench",
            "pingpong",
            "--tls",
            "--client",
            client,
            "--messages",
            "300",
        ]);
        assert_eq!(result["tls"], true, "{result}");
        assert!(result["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn fanout_and_conns_over_tls_run_in_process() {
    let result = bench(&[
        "bench",
        "fanout",
        "--tls",
        "--messages",
        "100",
        "--connections",
        "10",
    ]);
    assert_eq!(result["tls"], true, "{result}");
    assert_eq!(result["deliveries"], 1000);
    let result = bench(&["bench", "conns", "--tls", "--connections", "30"]);
    assert_eq!(result["tls"], true, "{result}");
    // The client's TLS sessions live in this process too: the figure says so.
    assert_eq!(result["rss_scope"], "server-and-client-in-process");
    assert!(result["latency_us"]["p50"].is_number());
}

#[test]
fn every_mode_runs_against_bench_serve_over_tls() {
    let dir = TempDir::new("tls-split");
    let ca = dir.file("ca.pem");
    let server = ServeChild::start_with(&["--tls", "--tls-ca-out", &ca]);
    let target = server.addr.as_str();
    let tls = ["--target", target, "--tls", "--ca", ca.as_str()];
    let with_tls = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        all.extend(tls.iter().map(|&a| a.to_owned()));
        all
    };
    let run_tls = |args: &[&str]| {
        let all = with_tls(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let result = bench(&all);
        assert_eq!(result["tls"], true, "{result}");
        assert_eq!(result["target"], target);
        result
    };
    let result = run_tls(&["bench", "fanout", "--messages", "50", "--connections", "5"]);
    assert_eq!(result["deliveries"], 250);
    let result = run_tls(&[
        "bench",
        "throughput",
        "--messages",
        "2000",
        "--connections",
        "2",
    ]);
    assert_eq!(result["messages"], 2000);
    run_tls(&[
        "bench",
        "throughput",
        "--client",
        "runtime",
        "--messages",
        "500",
    ]);
    let result = run_tls(&["bench", "pingpong", "--messages", "200"]);
    assert!(result["latency_us"]["p50"].is_number());
    // The certificate names localhost too.
    let port = target.rsplit_once(':').expect("HOST:PORT").1;
    let by_name = format!("localhost:{port}");
    let result = bench(&[
        "bench",
        "pingpong",
        "--target",
        &by_name,
        "--tls",
        "--ca",
        &ca,
        "--messages",
        "50",
    ]);
    assert_eq!(result["tls"], true, "{result}");
    let pid = server.child.id().to_string();
    let result = run_tls(&[
        "bench",
        "conns",
        "--connections",
        "30",
        "--server-pid",
        &pid,
    ]);
    assert_eq!(result["rss_scope"], "server-pid");
}

#[test]
fn a_tls_server_is_refused_with_the_reason_by_an_untrusting_or_plain_client() {
    let dir = TempDir::new("tls-refused");
    let server = ServeChild::start_with(&["--tls"]);
    let target = server.addr.as_str();
    // A CA bundle that did not issue the server's certificate.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let other_ca = dir.file("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    for client in ["codec", "runtime"] {
        let out = run(&[
            "bench",
            "throughput",
            "--target",
            target,
            "--tls",
            "--ca",
            &other_ca,
            "--client",
            client,
            "--messages",
            "10",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{client}: {stderr}");
        assert!(
            stderr.contains("invalid peer certificate"),
            "{client}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // Plain TCP to a TLS port: the server's TLS alert is recognised, not misread as a frame.
    let out = run(&[
        "bench",
        "throughput",
        "--target",
        target,
        "--messages",
        "10",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("add --tls"), "{stderr}");
}

#[test]
fn tls_options_without_tls_are_usage_errors() {
    for args in [
        &[
            "bench",
            "throughput",
            "--target",
            "127.0.0.1:1",
            "--ca",
            "ca.pem",
        ][..],
        &["bench", "serve", "--tls-ca-out", "ca.pem"][..],
        &["bench", "soak", "--tls"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A raw peer of `ltp bench serve`, in the default layout: [length u16][type u8][body].

/// A connection to `addr`, reads guarded against a hang.
fn raw_connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to ltp bench serve");
    stream.set_read_timeout(Some(HANG)).expect("a read timeout");
    stream
}

fn send_frame(stream: &mut TcpStream, message_type: u8, body: &[u8]) {
    let length = u16::try_from(3 + body.len()).expect("a small frame");
    let mut frame = length.to_be_bytes().to_vec();
    frame.push(message_type);
    frame.extend_from_slice(body);
    stream.write_all(&frame).expect("the frame is written");
}

/// The next frame's type and body.
fn recv_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0; 3];
    stream.read_exact(&mut header).expect("a frame header");
    let [l0, l1, message_type] = header;
    let mut body = vec![0; usize::from(u16::from_be_bytes([l0, l1])) - 3];
    stream.read_exact(&mut body).expect("a frame body");
    (message_type, body)
}

/// A FANOUT whose count or body size the server must not trust is refused before anything is
/// allocated or sent: the connection that sent it is closed with no answer, the refusal is
/// logged with its numbers, nothing reaches the other connections, and the server goes on
/// serving them and new ones.
#[test]
fn a_hostile_fanout_is_refused_and_the_server_keeps_serving() {
    let hostile: [(u64, u32, String); 4] = [
        (
            u64::MAX,
            1,
            format!(
                "FANOUT count {} exceeds the maximum {MAX_FANOUT_COUNT}",
                u64::MAX
            ),
        ),
        (
            MAX_FANOUT_COUNT + 1,
            1,
            format!(
                "FANOUT count {} exceeds the maximum {MAX_FANOUT_COUNT}",
                MAX_FANOUT_COUNT + 1
            ),
        ),
        (
            1,
            u32::MAX,
            "FANOUT body size 4294967295: a 4294967298-byte DATA frame exceeds the maximum \
             frame length 65535"
                .to_owned(),
        ),
        // One byte over the u16 length field's 65,535.
        (
            1,
            65_533,
            "FANOUT body size 65533: a 65536-byte DATA frame exceeds the maximum frame length \
             65535"
                .to_owned(),
        ),
    ];
    // The untyped handler and the derived `Bench` enum reach FANOUT by different paths.
    for api in ["inspect", "typed"] {
        let server = ServeChild::start_logged(&["--api", api]);
        let mut receiver = raw_connect(&server.addr);
        // END → REPORT proves the receiver registered before any FANOUT.
        send_frame(&mut receiver, END, &[]);
        assert_eq!(
            recv_frame(&mut receiver),
            (REPORT, report_body(0, 0).to_vec())
        );
        for (count, size, _) in &hostile {
            let mut control = raw_connect(&server.addr);
            send_frame(&mut control, FANOUT, &fanout_body(*count, *size));
            let mut answer = Vec::new();
            control.read_to_end(&mut answer).unwrap_or_else(|err| {
                panic!("--api {api}: FANOUT({count}, {size}) kept open: {err}")
            });
            assert!(
                answer.is_empty(),
                "--api {api}: FANOUT({count}, {size}) answered {answer:?}"
            );
        }
        // Nothing was broadcast: the receiver's own END is answered before any DATA.
        send_frame(&mut receiver, END, &[]);
        assert_eq!(
            recv_frame(&mut receiver),
            (REPORT, report_body(0, 0).to_vec()),
            "--api {api}"
        );
        // A FANOUT within the bounds, from a new connection, still goes out and is reported.
        let mut control = raw_connect(&server.addr);
        send_frame(&mut control, FANOUT, &fanout_body(2, 16));
        for _ in 0..2 {
            assert_eq!(
                recv_frame(&mut receiver),
                (DATA, vec![0; 16]),
                "--api {api}"
            );
        }
        assert_eq!(recv_frame(&mut receiver), (END, Vec::new()), "--api {api}");
        assert_eq!(
            recv_frame(&mut control),
            (REPORT, report_body(2, 32).to_vec()),
            "--api {api}"
        );
        let logs = server.stop();
        for (_, _, refusal) in &hostile {
            assert!(
                logs.contains(refusal.as_str()),
                "--api {api}: {refusal:?} not in\n{logs}"
            );
        }
    }
}
