//! `ltp bench` end to end: every mode with tiny sizes, in-process and against `ltp bench
//! serve`, checking the final JSON line's keys and that every REPORT was verified. No timing
//! assertions: speed is what the command reports, not what the tests judge.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The keys every result line carries (values may be null where a mode has no such figure).
const RESULT_KEYS: [&str; 20] = [
    "event",
    "implementation",
    "mode",
    "client",
    "target",
    "layout",
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
}

/// `ltp bench serve` on port 0, stopped by its own handle when dropped.
struct ServeChild {
    child: Child,
    addr: String,
}

impl ServeChild {
    fn start() -> Self {
        let mut child = ltp(&["bench", "serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::null())
            .spawn()
            .expect("ltp bench serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the listening line");
        let line: Value = serde_json::from_str(&first).expect("the listening line is JSON");
        assert_eq!(line["event"], "listening", "{line}");
        let addr = line["addr"].as_str().expect("an address").to_owned();
        Self { child, addr }
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        // By this child's own handle (its PID), never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_mode_runs_against_bench_serve() {
    let server = ServeChild::start();
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
    assert_eq!(result["deliveries"], 250);
    let result = bench(&[
        "bench",
        "throughput",
        "--target",
        target,
        "--messages",
        "2000",
        "--connections",
        "2",
    ]);
    assert_eq!(result["target"], target);
    assert_eq!(result["messages"], 2000);
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
    assert!(result["latency_us"]["p50"].is_number());
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
    assert_eq!(result["rss_scope"], "server-pid");
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
