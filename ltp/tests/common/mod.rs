//! What the end-to-end tests of `ltp` share: the built binary run as a child process ([`Ltp`])
//! over 127.0.0.1 on ports the kernel picks. Every child is stopped by its own PID
//! (`Child::kill`, or `kill -TERM PID` for a graceful shutdown) and waited for; every wait
//! has a generous guard that turns a hang into a failure, and nothing asserts on timing.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A generous guard that turns a hang into a failure (the test machine is busy).
pub(crate) const HANG: Duration = Duration::from_secs(60);

/// A file of `ltp/examples-data/`.
pub(crate) fn example(path: &str) -> String {
    format!("{}/examples-data/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A file of `ltp/tests/data/`.
pub(crate) fn data(path: &str) -> String {
    format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A running `ltp` child: stdin piped, stdout read line by line on a thread, stderr gathered
/// on another. Dropping it kills the child by its own handle and waits for it.
pub(crate) struct Ltp {
    pub(crate) what: String,
    pub(crate) child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) lines: mpsc::Receiver<String>,
    /// Every stdout line received so far, in order.
    pub(crate) seen: Vec<String>,
    pub(crate) stderr: Option<JoinHandle<String>>,
    pub(crate) exited: bool,
}

/// What a finished `ltp` child left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<String>,
    pub(crate) stderr: String,
}

impl Finished {
    /// The stdout lines as JSON events.
    pub(crate) fn events(&self) -> Vec<Value> {
        events(&self.stdout)
    }

    /// The `message` events of stdout.
    pub(crate) fn messages(&self) -> Vec<Value> {
        messages(&self.stdout)
    }

    /// Panics (showing everything) unless the exit code is `code`.
    pub(crate) fn assert_code(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout.join("\n"),
            self.stderr
        );
    }
}

pub(crate) fn events(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect()
}

pub(crate) fn messages(lines: &[String]) -> Vec<Value> {
    events(lines)
        .into_iter()
        .filter(|event| event["event"] == "message")
        .collect()
}

impl Ltp {
    /// Runs `ltp ARGS` (`LTP_LOG` unset: warnings on stderr).
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_env(args, &[])
    }

    /// Runs `ltp ARGS` with extra environment variables.
    pub(crate) fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_with(args, env, Stdio::piped())
    }

    /// Runs `ltp ARGS` with extra environment variables and `stdin` (piped, or a file).
    pub(crate) fn spawn_with(args: &[&str], env: &[(&str, &str)], stdin: Stdio) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ltp"));
        command
            .args(args)
            .env_remove("LTP_LOG")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run ltp {args:?}: {err}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            what: format!("ltp {}", args.join(" ")),
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
            exited: false,
        }
    }

    /// Writes one line to the child's stdin.
    pub(crate) fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|err| panic!("{}: cannot write stdin: {err}", self.what));
    }

    /// Writes `input` to stdin, ignoring a child that has already exited (a usage error).
    pub(crate) fn write_all_lossy(&mut self, input: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(input.as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Closes stdin: end of input.
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line; `None` at the end of stdout. Panics after [`HANG`].
    pub(crate) fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(HANG) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: no stdout line within {HANG:?}; so far:\n{}",
                self.what,
                self.seen.join("\n")
            ),
        }
    }

    /// The next stdout event that `pick` accepts, skipping others. Panics at the end of stdout
    /// or after [`HANG`].
    pub(crate) fn wait_for(&mut self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let event: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|err| panic!("{}: not JSON ({err}): {line}", self.what));
                    if pick(&event) {
                        return event;
                    }
                }
                Err(err) => panic!(
                    "{}: no {what} ({err:?}); stdout so far:\n{}",
                    self.what,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The next `message` event.
    pub(crate) fn next_message(&mut self) -> Value {
        self.wait_for("message", |event| event["event"] == "message")
    }

    /// Sends SIGTERM to this child, by its PID.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// Closes stdin and waits for the child to exit (killing it, and failing, after
    /// [`HANG`]); returns its status and all its output.
    pub(crate) fn finish(&mut self) -> Finished {
        self.close_stdin();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("ltp can be waited for") {
                break status;
            }
            if started.elapsed() > HANG {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.exited = true;
                panic!(
                    "{} did not exit within {HANG:?}; stdout:\n{}",
                    self.what,
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.exited = true;
        // The child is gone, so its stdout ends: take what is left.
        while let Some(_line) = self.next_line() {}
        let stderr = self
            .stderr
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            status,
            stdout: self.seen.clone(),
            stderr,
        }
    }

    /// Sends SIGTERM and waits for the child to exit.
    pub(crate) fn stop(&mut self) -> Finished {
        self.terminate();
        self.finish()
    }
}

impl Drop for Ltp {
    fn drop(&mut self) {
        if !self.exited {
            // By its own handle (its PID), never by name.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `ltp serve --listen LISTEN --format json ARGS`, once it is listening; with its address.
/// `None` if it exits without listening (the port is taken).
pub(crate) fn try_serve(listen: &str, args: &[&str]) -> Option<(Ltp, String)> {
    let mut all = vec!["serve", "--listen", listen, "--format", "json"];
    all.extend_from_slice(args);
    let mut server = Ltp::spawn(&all);
    let first = server.next_line()?;
    let event: Value = serde_json::from_str(&first).expect("a JSON line");
    assert_eq!(event["event"], "listening", "{first}");
    let addr = event["addr"].as_str().expect("addr").to_owned();
    Some((server, addr))
}

/// `ltp serve` on a port of the kernel's choosing.
pub(crate) fn serve(args: &[&str]) -> (Ltp, String) {
    try_serve("127.0.0.1:0", args).expect("ltp serve listens on 127.0.0.1:0")
}

/// `ltp connect ADDR --format json ARGS`, stdin kept open.
pub(crate) fn start_connect(addr: &str, args: &[&str]) -> Ltp {
    let mut all = vec!["connect", addr, "--format", "json"];
    all.extend_from_slice(args);
    Ltp::spawn(&all)
}

/// `ltp connect ADDR --format json ARGS` with `input` on stdin, to completion.
pub(crate) fn connect(addr: &str, args: &[&str], input: &str) -> Finished {
    let mut client = start_connect(addr, args);
    client.write_all_lossy(input);
    client.finish()
}

/// `ltp ARGS` to completion with stdin closed at once.
pub(crate) fn run(args: &[&str]) -> Finished {
    let mut ltp = Ltp::spawn(args);
    ltp.finish()
}

/// The `(type, body_hex)` of message events.
pub(crate) fn bodies(messages: &[Value]) -> Vec<(u64, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m["type"].as_u64().expect("type"),
                m["body_hex"].as_str().expect("body_hex").to_owned(),
            )
        })
        .collect()
}

pub(crate) fn raw(message_type: u64, body_hex: &str) -> String {
    json!({"type": message_type, "body_hex": body_hex}).to_string()
}

/// Whether `tshark` can run here, for the tests that read captures back with it. When it
/// cannot, the test is skipped with a note, unless `LTP_REQUIRE_TSHARK=1` (CI), when it fails.
pub(crate) fn have_tshark() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("LTP_REQUIRE_TSHARK").is_none_or(|v| v != "1"),
            "tshark cannot run here and LTP_REQUIRE_TSHARK=1"
        );
        eprintln!("note: skipped: tshark is not installed (LTP_REQUIRE_TSHARK=1 fails instead)");
    }
    found
}
