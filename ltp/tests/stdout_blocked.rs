//! `ltp` never blocks its runtime on stdout. A reader that stops reading (a paused terminal, a
//! full pipe) makes the connections that print wait, and nothing else: the server still
//! accepts and runs handshakes on one runtime thread (`--threads 1`), shuts down on SIGTERM,
//! and once the reader reads again every line arrives, in order, down to the final
//! `shutdown`. A reader that goes away (`EPIPE`) costs nothing: the server keeps serving.
//!
//! The pipe's fill level (`FIONREAD`) says when stdout is full, so nothing here waits for a
//! delay; children are stopped by their own PID (`kill -TERM PID`) or handle, and every wait
//! has a generous guard that turns a hang into a failure.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A generous guard that turns a hang into a failure (the test machine is busy).
const HANG: Duration = Duration::from_secs(60);

/// The body of each flooding message: its line on stdout (hex) is about 120 KB, so a few fill
/// the pipe and ten more the writer's 1 MiB queue.
const FLOOD_BODY: usize = 60_000;

/// How many messages the flooding peer sends: several times what the pipe and the queue hold.
const FLOOD_COUNT: u32 = 40;

/// `ltp --threads 1 ARGS` with stdout and stderr piped; stderr is drained by a thread (logs
/// must not be what blocks), stdout is left to the test.
fn spawn(args: &[&str]) -> (Child, BufReader<ChildStdout>, JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ltp"))
        .arg("--threads")
        .arg("1")
        .args(args)
        .env_remove("LTP_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run ltp {args:?}: {err}"));
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    (child, stdout, stderr)
}

fn drain(mut stderr: ChildStderr) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    })
}

/// Reads the `listening` line and returns the address.
fn listening(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a first line");
    let event: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(event["event"], "listening", "{line}");
    event["addr"].as_str().expect("addr").to_owned()
}

/// Sends SIGTERM to `child`, by its PID.
fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {} failed", child.id());
}

/// Waits for `child` to exit, killing it (by its handle) and failing after [`HANG`].
fn wait(child: &mut Child) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("ltp can be waited for") {
            return status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ltp did not exit within {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the pipe that is the child's stdout is full: its writes then block.
///
/// Full to within a page: a pipe's buffers are pages, and the first may have been partly
/// read (the `listening` line). Each flooding line is far longer than a page, so a writer that
/// finds less than a page free blocks.
fn wait_until_full(stdout: &BufReader<ChildStdout>) {
    const PAGE: usize = 4096;
    let pipe = stdout.get_ref();
    let capacity = rustix::pipe::fcntl_getpipe_size(pipe).expect("F_GETPIPE_SZ");
    let started = Instant::now();
    loop {
        let queued = rustix::io::ioctl_fionread(pipe).expect("FIONREAD");
        if usize::try_from(queued).expect("a pipe's size") + PAGE >= capacity {
            return;
        }
        assert!(
            started.elapsed() < HANG,
            "stdout never filled ({queued} of {capacity} bytes)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An OpenFlow 1.3 frame: version 4, type, length (all of it), xid.
fn openflow_frame(message_type: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let length = u16::try_from(8 + body.len()).expect("a frame under 64 KiB");
    let mut frame = vec![4, message_type];
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&xid.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Reads one OpenFlow frame; returns its type and xid.
fn read_openflow_frame(stream: &mut TcpStream) -> (u8, u32) {
    let mut header = [0; 8];
    stream.read_exact(&mut header).expect("an OpenFlow header");
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0; length.saturating_sub(8)];
    stream.read_exact(&mut body).expect("an OpenFlow body");
    let xid = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (header[1], xid)
}

/// Connects and runs the switch's side of the handshake up to FEATURES_REQUEST: proof that
/// the server accepted this connection and ran its handshake. Returns the stream and the
/// FEATURES_REQUEST's xid.
fn connect_until_features_request(addr: &str) -> (TcpStream, u32) {
    let mut stream = TcpStream::connect(addr).expect("connect to ltp serve");
    stream.set_read_timeout(Some(HANG)).expect("read timeout");
    assert_eq!(read_openflow_frame(&mut stream).0, 0, "HELLO first");
    stream
        .write_all(&openflow_frame(0, 1, &[]))
        .expect("send HELLO");
    let (message_type, xid) = read_openflow_frame(&mut stream);
    assert_eq!(message_type, 5, "FEATURES_REQUEST after HELLO");
    (stream, xid)
}

/// FEATURES_REPLY: datapath id, buffers, tables, auxiliary id, pad, capabilities, reserved.
fn features_reply(xid: u32) -> Vec<u8> {
    let mut body = vec![0; 24];
    body[7] = 0xa1;
    body[12] = 0xfe;
    openflow_frame(6, xid, &body)
}

#[test]
fn serve_accepts_and_shuts_down_while_stdout_is_full_and_loses_no_line() {
    let (mut child, mut stdout, stderr) = spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--layout",
        "openflow",
        "--handshake",
        "openflow",
        "--shutdown-timeout",
        "1",
        "--format",
        "json",
    ]);
    let addr = listening(&mut stdout);

    // A switch floods the server with large messages (type 4, EXPERIMENTER, numbered in
    // their first 4 bytes) while nobody reads stdout. Its writes stall once the server stops
    // reading it, and fail when the server closes it at the shutdown.
    let (mut flood, xid) = connect_until_features_request(&addr);
    flood
        .write_all(&features_reply(xid))
        .expect("FEATURES_REPLY");
    let flooding = std::thread::spawn(move || {
        for seq in 0..FLOOD_COUNT {
            let mut body = vec![0x5a; FLOOD_BODY];
            body[..4].copy_from_slice(&seq.to_be_bytes());
            if flood
                .write_all(&openflow_frame(4, 100 + seq, &body))
                .is_err()
            {
                return;
            }
        }
    });

    wait_until_full(&stdout);
    // Stdout is full: every write to it blocks. A second switch is still accepted and its
    // handshake runs, on the same single runtime thread.
    let (second, _) = connect_until_features_request(&addr);

    // SIGTERM is still heard and the shutdown runs; its final line waits for the reader.
    terminate(&child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut events = Vec::new();
    loop {
        match lines.recv_timeout(HANG) {
            Ok(line) => events.push(
                serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|err| panic!("not JSON ({err}): {line:.200}")),
            ),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("stdout did not end within {HANG:?}"),
        }
    }
    let status = wait(&mut child);
    let stderr = stderr.join().unwrap_or_default();
    assert!(
        status.success(),
        "exit status {status:?}\nstderr:\n{stderr}"
    );
    drop(second);
    let _ = flooding.join();

    // Every line printed, in order: the flood's messages numbered 0, 1, 2... with no gap,
    // and the shutdown line last.
    let seqs: Vec<u32> = events
        .iter()
        .filter(|event| event["event"] == "message")
        .map(|event| {
            let hex = event["body_hex"].as_str().expect("body_hex");
            u32::from_str_radix(hex.get(..8).expect("a numbered body"), 16).expect("hex")
        })
        .collect();
    assert!(!seqs.is_empty(), "no message printed\nstderr:\n{stderr}");
    assert!(
        seqs.iter().copied().eq(0..seqs.len() as u32),
        "messages out of order or missing: {seqs:?}"
    );
    let last = events.last().expect("a last line");
    assert_eq!(last["event"], "shutdown", "{last}");
}

#[test]
fn serve_keeps_echoing_after_stdout_is_closed() {
    let (mut child, mut stdout, stderr) = spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--mode",
        "echo",
        "--format",
        "json",
    ]);
    let addr = listening(&mut stdout);
    // The reader goes away: every write to stdout now fails with EPIPE.
    drop(stdout);

    let mut client = TcpStream::connect(&addr).expect("connect to ltp serve");
    client.set_read_timeout(Some(HANG)).expect("read timeout");
    for num in 0..100u32 {
        let mut frame = vec![0, 7, 1];
        frame.extend_from_slice(&num.to_be_bytes());
        client.write_all(&frame).expect("send NumMsg");
        let mut echo = [0; 7];
        client.read_exact(&mut echo).expect("the echo");
        assert_eq!(echo[..], frame[..], "echo of {num}");
    }
    drop(client);

    terminate(&child);
    let status = wait(&mut child);
    let stderr = stderr.join().unwrap_or_default();
    assert!(
        status.success(),
        "exit status {status:?}\nstderr:\n{stderr}"
    );
    // Said once, not once per line.
    assert_eq!(
        stderr.matches("cannot write to stdout").count(),
        1,
        "stderr:\n{stderr}"
    );
}
