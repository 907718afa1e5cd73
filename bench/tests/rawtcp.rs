//! `baseline-rawtcp` end to end: the built binary as sink and as client, and a client that
//! catches a sink whose count is wrong.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: a guard that turns a hang into a failure, not a timing assertion.
const HANG: Duration = Duration::from_secs(60);

fn rawtcp(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baseline-rawtcp"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs the binary to its end (killed and failed past [`HANG`]).
fn run(args: &[&str]) -> Output {
    let mut child = rawtcp(args);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG {
            child.kill().unwrap();
            panic!("baseline-rawtcp {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// The result line: the last line of stdout.
fn result(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

#[test]
fn throughput_sends_whole_frames_worth_and_the_sink_confirms_them() {
    // 3 frames over 2 connections: shares of 2 and 1, 1 MiB + the 5-byte u32 header each.
    let output = run(&[
        "throughput",
        "--layout",
        "u32",
        "--body-size",
        "1048576",
        "--messages",
        "3",
        "--connections",
        "2",
    ]);
    assert!(output.status.success(), "{output:?}");
    let result = result(&output);
    assert_eq!(result["event"], "result");
    assert_eq!(result["implementation"], "rawtcp");
    assert_eq!(result["target"], "in-process");
    assert_eq!(result["layout"], "u32");
    assert_eq!(result["messages"], 3);
    assert_eq!(result["verified"], true);
    assert!(result["wire_mb_per_sec"].as_f64().unwrap() > 0.0);
}

/// A sink in a thread for one connection: reads to the end, answers `count(bytes read)`, and
/// hands back how many bytes it read.
fn one_shot_sink(count: fn(u64) -> u64) -> (String, std::thread::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sink = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(HANG)).unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        let got = got.len() as u64;
        stream.write_all(&count(got).to_be_bytes()).unwrap();
        got
    });
    (addr, sink)
}

#[test]
fn a_timed_run_stops_at_a_whole_number_of_frames() {
    let (addr, sink) = one_shot_sink(|n| n);
    let output = run(&[
        "throughput",
        "--target",
        &addr,
        "--body-size",
        "65532",
        "--duration",
        "0.05",
    ]);
    let got = sink.join().unwrap();
    assert!(output.status.success(), "{output:?}");
    let result = result(&output);
    assert_eq!(result["verified"], true);
    assert_eq!(got % 65_535, 0, "{got} bytes");
    assert_eq!(result["messages"], got / 65_535);
}

#[test]
fn serve_prints_its_address_and_answers_the_byte_count_at_end_of_stream() {
    let mut sink = rawtcp(&["serve", "--listen", "127.0.0.1:0", "--layout", "u32"]);
    let mut line = String::new();
    BufReader::new(sink.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(listening["event"], "listening");
    let mut stream = TcpStream::connect(listening["addr"].as_str().unwrap()).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    // Not a multiple of anything: the sink counts bytes, not frames.
    stream.write_all(&vec![7; 300_001]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    sink.kill().unwrap();
    sink.wait().unwrap();
    assert_eq!(answer, 300_001u64.to_be_bytes());
}

#[test]
fn a_sink_that_miscounts_fails_the_run() {
    let (addr, liar) = one_shot_sink(|n| n + 1);
    let output = run(&[
        "throughput",
        "--target",
        &addr,
        "--body-size",
        "16",
        "--messages",
        "10",
    ]);
    assert_eq!(liar.join().unwrap(), 190);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let result = result(&output);
    assert_eq!(result["verified"], false);
    assert_eq!(
        result["problems"][0],
        "throughput: the sink counted 191 bytes, expected 190"
    );
}

#[test]
fn only_serve_and_throughput_exist() {
    let output = run(&["pingpong"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}
