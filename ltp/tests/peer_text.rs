//! A peer's bytes never reach the terminal raw: scripted raw-socket peers send text full of
//! escape sequences (ESC, CSI, OSC, BEL, DEL, NUL, C1 controls) everywhere `ltp` shows a
//! peer's text — a `StrMsg` to `ltp demo`, a schema string field to `ltp serve` and `ltp
//! connect` in both formats, an OpenFlow ERROR during `--handshake openflow` (which becomes a
//! disconnect reason and a log line) — and neither stdout nor stderr may carry a control
//! character but the newline ending each line. Logs are on (`LTP_LOG=trace`), so every log
//! line is checked too.
//!
//! Children are stopped by their own PID (`kill -TERM PID`) or handle; each wait has a
//! generous guard that turns a hang into a failure, and the end of each exchange is marked by
//! a sentinel line, never by a delay.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A generous guard that turns a hang into a failure (the test machine is busy).
const HANG: Duration = Duration::from_secs(60);

/// What a hostile peer sends: a screen clear, a window title (OSC ended by BEL), a C1 CSI
/// (U+009B) setting red, DEL, NUL, a carriage return and a backspace that would overwrite
/// what came before, C1 NEL, a tab and a newline that would fake a second line.
const EVIL: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{7f}\u{0}\r\u{8}\u{85}\tend\nfake";

/// A running `ltp`, its stdout gathered as raw bytes by one thread and its stderr by another.
struct Run {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: mpsc::Receiver<Vec<u8>>,
    stdout: Vec<u8>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    exited: bool,
}

/// What a finished `ltp` wrote.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// `ltp ARGS` with every log line on (`LTP_LOG=trace`).
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ltp"))
            .args(args)
            .env("LTP_LOG", "trace")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run ltp {args:?}: {err}"));
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            bytes
        });
        Self {
            what: format!("ltp {}", args.join(" ")),
            child,
            stdin,
            chunks,
            stdout: Vec::new(),
            stderr: Some(stderr),
            exited: false,
        }
    }

    /// Reads stdout until a whole line contains `needle`; returns that line.
    fn line_with(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            let text = String::from_utf8_lossy(&self.stdout);
            if let Some(line) = text.lines().find(|line| line.contains(needle))
                && text.contains(&format!("{line}\n"))
            {
                return line.to_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.stdout.extend_from_slice(&chunk),
                Err(err) => panic!(
                    "{}: no line with {needle:?} ({err:?}); stdout so far:\n{text}",
                    self.what
                ),
            }
        }
    }

    /// Sends SIGTERM by PID, then [`finish`](Self::finish)es.
    fn stop(self) -> Finished {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
        self.finish()
    }

    /// Closes stdin, waits for the exit (failing after [`HANG`]) and takes all the output.
    fn finish(mut self) -> Finished {
        self.stdin = None;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("ltp can be waited for") {
                break status;
            }
            assert!(
                started.elapsed() < HANG,
                "{} did not exit within {HANG:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.exited = true;
        loop {
            match self.chunks.recv_timeout(HANG) {
                Ok(chunk) => self.stdout.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("{}: stdout never ended", self.what),
            }
        }
        let stderr = self
            .stderr
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            status,
            stdout: text_of(&self.what, "stdout", &self.stdout),
            stderr: text_of(&self.what, "stderr", &stderr),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.exited {
            // By its own handle (its PID), never by name.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The output as text, after checking it is UTF-8 and free of control characters but the
/// newlines ending lines: no C0 (ESC, BEL, CR, NUL, tab...), no DEL, no C1 (U+0080 to
/// U+009F, such as U+009B, CSI).
fn text_of(what: &str, stream: &str, bytes: &[u8]) -> String {
    let text = std::str::from_utf8(bytes)
        .unwrap_or_else(|err| panic!("{what}: {stream} is not UTF-8 ({err})"));
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n')
    {
        panic!(
            "{what}: raw {c:?} on {stream} at byte {at}; {stream}:\n{}",
            text.escape_debug()
        );
    }
    text.to_owned()
}

/// Asserts that the peer's text was shown (escaped), not dropped.
fn assert_shown(what: &str, text: &str) {
    for visible in ["[2J", "]0;pwned", "31m", "end"] {
        assert!(text.contains(visible), "{what} lacks {visible:?}:\n{text}");
    }
}

/// A frame of the default layout: `[length u16][type u8][body]`, the length counting all.
fn ltprotocol_frame(message_type: u8, body: &[u8]) -> Vec<u8> {
    let length = u16::try_from(3 + body.len()).expect("a small body");
    let mut frame = length.to_be_bytes().to_vec();
    frame.push(message_type);
    frame.extend_from_slice(body);
    frame
}

fn str_msg(text: &str) -> Vec<u8> {
    ltprotocol_frame(2, text.as_bytes())
}

/// An OpenFlow 1.3 frame: version 4, type, length (all of it), xid.
fn openflow_frame(message_type: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let length = u16::try_from(8 + body.len()).expect("a small body");
    let mut frame = vec![4, message_type];
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&xid.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// OFPT_ERROR (type 1), HELLO_FAILED (type 0) INCOMPATIBLE (code 0), with `data`.
fn openflow_error(data: &str) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(data.as_bytes());
    openflow_frame(1, 1, &body)
}

/// Reads one OpenFlow frame (header and body) and returns its type.
fn read_openflow_frame(stream: &mut TcpStream) -> u8 {
    let mut header = [0; 8];
    stream.read_exact(&mut header).expect("an OpenFlow header");
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0; length.saturating_sub(8)];
    stream.read_exact(&mut body).expect("an OpenFlow body");
    header[1]
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to ltp");
    stream.set_read_timeout(Some(HANG)).expect("read timeout");
    stream
}

/// A raw listener on a port of the kernel's choosing, and its address.
fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr").to_string();
    (listener, addr)
}

#[test]
fn demo_client_escapes_a_peers_str_msg() {
    let (listener, addr) = listen();
    let mut demo = Run::spawn(&["demo", "client", "--connect", &addr]);
    let (mut peer, _) = listener.accept().expect("the demo client connects");
    peer.write_all(&str_msg(EVIL)).expect("write");
    peer.write_all(&str_msg("sentinel")).expect("write");
    demo.line_with("client got: sentinel");
    // Closed first, so that the client's graceful close does not wait for this peer.
    drop(peer);
    let out = demo.stop();
    assert_shown("stdout", &out.stdout);
    assert!(
        out.stdout.contains(r"client got: \x1b[2J"),
        "{}",
        out.stdout
    );
    assert!(out.status.success(), "{:?}\n{}", out.status, out.stderr);
}

#[test]
fn demo_server_escapes_a_peers_str_msg() {
    let mut demo = Run::spawn(&["demo", "server", "--listen", "127.0.0.1:0"]);
    let line = demo.line_with("server: listening on ");
    let addr = line.trim_start_matches("server: listening on ").to_owned();
    let mut peer = connect(&addr);
    peer.write_all(&str_msg(EVIL)).expect("write");
    peer.write_all(&str_msg("sentinel")).expect("write");
    demo.line_with("server got: sentinel");
    drop(peer);
    demo.line_with("disconnected");
    let out = demo.stop();
    assert_shown("stdout", &out.stdout);
    assert!(
        out.stdout.contains(r"server got: \x1b[2J"),
        "{}",
        out.stdout
    );
    assert!(out.status.success(), "{:?}\n{}", out.status, out.stderr);
}

#[test]
fn serve_escapes_a_peers_string_field_in_text_and_json() {
    for format in ["text", "json"] {
        let mut serve = Run::spawn(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--schema",
            "demo",
            "--format",
            format,
        ]);
        let line = serve.line_with("listening");
        let addr = match format {
            "text" => line.trim_start_matches("listening on ").to_owned(),
            _ => serde_json::from_str::<Value>(&line).expect("JSON")["addr"]
                .as_str()
                .expect("addr")
                .to_owned(),
        };
        let mut peer = connect(&addr);
        peer.write_all(&str_msg(EVIL)).expect("write");
        peer.write_all(&str_msg("sentinel")).expect("write");
        serve.line_with("sentinel");
        // Closed first, so that the graceful shutdown does not wait for this peer.
        drop(peer);
        serve.line_with("disconnected");
        let out = serve.stop();
        assert!(out.status.success(), "{format}: {:?}", out.status);
        assert_shown(format, &out.stdout);
        if format == "json" {
            // Escaped as JSON escapes: the string a JSON reader gets is the peer's, intact.
            let fields: Vec<Value> = out
                .stdout
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).expect("JSON"))
                .filter(|event| event["event"] == "message")
                .map(|event| event["fields"]["str"].clone())
                .collect();
            assert_eq!(fields, [EVIL, "sentinel"]);
        }
    }
}

#[test]
fn connect_escapes_a_peers_string_field_in_text_and_json() {
    for format in ["text", "json"] {
        let (listener, addr) = listen();
        let mut connect = Run::spawn(&[
            "connect", &addr, "--schema", "demo", "--format", format, "--count", "2",
        ]);
        let (mut peer, _) = listener.accept().expect("ltp connect connects");
        peer.write_all(&str_msg(EVIL)).expect("write");
        peer.write_all(&str_msg("sentinel")).expect("write");
        connect.line_with("sentinel");
        // Closed first, so that the client's graceful close does not wait for this peer.
        drop(peer);
        let out = connect.finish();
        assert!(
            out.status.success(),
            "{format}: {:?}\n{}",
            out.status,
            out.stderr
        );
        assert!(out.stdout.contains("sentinel"), "{}", out.stdout);
        assert_shown(format, &out.stdout);
    }
}

#[test]
fn serve_escapes_an_openflow_error_from_the_handshake_in_the_reason_and_the_logs() {
    for format in ["text", "json"] {
        let mut serve = Run::spawn(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--layout",
            "openflow",
            "--schema",
            "openflow",
            "--handshake",
            "openflow",
            "--format",
            format,
        ]);
        let line = serve.line_with("listening");
        let addr = match format {
            "text" => line.trim_start_matches("listening on ").to_owned(),
            _ => serde_json::from_str::<Value>(&line).expect("JSON")["addr"]
                .as_str()
                .expect("addr")
                .to_owned(),
        };
        let mut peer = connect(&addr);
        // The server speaks first (HELLO); the peer answers with an ERROR instead of HELLO.
        assert_eq!(read_openflow_frame(&mut peer), 0, "HELLO first");
        peer.write_all(&openflow_error(EVIL)).expect("write");
        let reason = serve.line_with("disconnected");
        assert!(reason.contains("OFPT_ERROR"), "{reason}");
        let out = serve.stop();
        assert!(out.status.success(), "{format}: {:?}", out.status);
        assert_shown(&format!("{format} stdout"), &out.stdout);
        // The server logs the reason as a warning.
        assert_shown(&format!("{format} stderr"), &out.stderr);
    }
}

#[test]
fn connect_escapes_an_openflow_error_from_the_handshake_in_its_output_and_logs() {
    for format in ["text", "json"] {
        let (listener, addr) = listen();
        let mut connect = Run::spawn(&[
            "connect",
            &addr,
            "--layout",
            "openflow",
            "--handshake",
            "openflow",
            "--max-attempts",
            "1",
            "--format",
            format,
        ]);
        let (mut peer, _) = listener.accept().expect("ltp connect connects");
        peer.set_read_timeout(Some(HANG)).expect("read timeout");
        assert_eq!(read_openflow_frame(&mut peer), 0, "HELLO first");
        peer.write_all(&openflow_error(EVIL)).expect("write");
        // `connect_failed` in JSON, `connect attempt 1 failed` in text.
        connect.line_with("failed");
        let out = connect.finish();
        assert_shown(&format!("{format} stdout"), &out.stdout);
        assert_shown(&format!("{format} stderr"), &out.stderr);
    }
}
