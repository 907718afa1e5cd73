//! `ltp serve --listen unix:PATH | fd:N` and `ltp connect unix:PATH` end to end, and the
//! usage errors of `ltp connect`'s address. Children are stopped by their own PID
//! (`Child::kill`, or `kill -TERM PID` for a graceful shutdown), never by name, and every wait
//! has a generous guard that turns a hang into a failure.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A generous guard that turns a hang into a failure (the test machine is busy).
const HANG: Duration = Duration::from_secs(60);

/// `NumMsg(200)` in the default layout, as `ltp connect` reads it and on the wire.
const NUM_LINE: &str = r#"{"type":1,"body_hex":"000000c8"}"#;
const NUM_WIRE: &[u8] = b"\x00\x07\x01\x00\x00\x00\xc8";

/// A running child: stdout read line by line on a thread, stderr gathered on another.
/// Dropping it kills the child by its own handle and waits for it.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

/// What a finished child left behind.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

impl Proc {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .env_remove("LTP_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
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
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// `ltp ARGS` with stdin closed.
    fn ltp(args: &[&str]) -> Self {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_ltp"))
                .args(args)
                .stdin(Stdio::null()),
        )
    }

    /// The next stdout line. Panics at the end of stdout or after [`HANG`].
    fn next_line(&mut self) -> String {
        let line = self.lines.recv_timeout(HANG).unwrap_or_else(|err| {
            panic!(
                "no stdout line ({err:?}); so far:\n{}",
                self.seen.join("\n")
            )
        });
        self.seen.push(line.clone());
        line
    }

    /// The next stdout event of kind `event`, skipping others.
    fn wait_for(&mut self, event: &str) -> Value {
        loop {
            let line = self.next_line();
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
            if value["event"] == event {
                return value;
            }
        }
    }

    /// Sends SIGTERM to this child, by its PID.
    fn terminate(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(status.expect("kill runs").success(), "kill -TERM {pid}");
    }

    /// Waits for the child to exit (killing it, and failing, after [`HANG`]).
    fn finish(mut self) -> Finished {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                break status;
            }
            assert!(
                started.elapsed() < HANG,
                "no exit within {HANG:?}: {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The child is gone, so its stdout ends.
        while let Ok(line) = self.lines.recv_timeout(HANG) {
            self.seen.push(line);
        }
        let stderr = self.stderr.take().and_then(|t| t.join().ok());
        Finished {
            status,
            stdout: std::mem::take(&mut self.seen),
            stderr: stderr.unwrap_or_default(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // By its own handle (its PID), never by name; a no-op once it has exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ltp connect TARGET --count 1` with one `NumMsg(200)` line on stdin, to completion.
fn connect_once(target: &str) -> Finished {
    let mut client = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_ltp"))
            .args(["connect", target, "--format", "json", "--count", "1"])
            .stdin(Stdio::piped()),
    );
    let mut stdin = client.child.stdin.take().expect("piped stdin");
    writeln!(stdin, "{NUM_LINE}").expect("write stdin");
    drop(stdin);
    client.finish()
}

fn events(lines: &[String]) -> Vec<Value> {
    let parse = |line: &String| serde_json::from_str(line).expect("a JSON line");
    lines.iter().map(parse).collect()
}

/// A directory of its own under the temporary directory, removed on drop. Its path stays
/// short: a Unix socket's path has room for about 100 bytes.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ltp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn serve_on_a_unix_socket_replaces_a_stale_file_echoes_and_removes_it_at_shutdown() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("ltp.sock");
    let listen = format!("unix:{}", path.display());
    // A server that is gone left its socket file behind.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("a stale socket"));
    assert!(path.exists());

    let mut server = Proc::ltp(&[
        "serve", "--listen", &listen, "--mode", "echo", "--format", "json",
    ]);
    assert_eq!(server.wait_for("listening")["addr"], listen.as_str());

    // A second server on the live socket fails as any bind does (exit 1, one line), and
    // leaves the first one's file alone.
    let second = Proc::ltp(&["serve", "--listen", &listen]).finish();
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(second.stdout.is_empty(), "{second:?}");
    assert_eq!(
        second.stderr.lines().collect::<Vec<_>>(),
        [format!(
            "ltp: cannot listen on {listen}: a server already listens on {}",
            path.display()
        )],
    );
    assert!(path.exists());

    let client = connect_once(&listen);
    assert_eq!(client.status.code(), Some(0), "{client:?}");
    let seen = events(&client.stdout);
    assert_eq!(seen[0]["event"], "connected", "{seen:?}");
    assert_eq!(seen[0]["peer"], listen.as_str());
    assert_eq!(seen[1]["body_hex"], "000000c8", "{seen:?}");

    // The server saw the client, whose end of a Unix socket has no name (the second
    // server's probe of the socket came and went before it).
    let message = server.wait_for("message");
    assert_eq!(message["body_hex"], "000000c8");
    let connected = events(&server.seen)
        .into_iter()
        .find(|e| e["event"] == "connected" && e["conn"] == message["conn"]);
    assert_eq!(
        connected.expect("a connected line")["peer"],
        "unix:(unnamed)"
    );

    server.terminate();
    let out = server.finish();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let last = events(&out.stdout).pop();
    assert_eq!(last.expect("a shutdown line")["event"], "shutdown");
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

/// Binds a TCP listener on 127.0.0.1:0 as fd 3, prints its port, then becomes `ltp` with
/// `LISTEN_FDS=1` and `LISTEN_PID` its own PID, as systemd passes a socket.
const PASS_FD_3: &str = "
import os, socket, sys
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(16)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))
print(s.getsockname()[1], flush=True)
os.execv(sys.argv[1], sys.argv[1:])
";

#[test]
fn serve_listens_on_a_tcp_socket_passed_as_fd_3() {
    let ltp = env!("CARGO_BIN_EXE_ltp");
    let args = [
        "serve", "--listen", "fd:3", "--mode", "echo", "--format", "json",
    ];
    let mut server = Proc::spawn(
        Command::new("python3")
            .args(["-c", PASS_FD_3, ltp])
            .args(args)
            .stdin(Stdio::null()),
    );
    let port = server.next_line();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(server.wait_for("listening")["addr"], addr.as_str());

    let mut peer = TcpStream::connect(&addr).expect("connect to the passed socket");
    peer.set_read_timeout(Some(HANG)).expect("a read timeout");
    peer.write_all(NUM_WIRE).expect("write a frame");
    let mut echoed = [0u8; NUM_WIRE.len()];
    peer.read_exact(&mut echoed).expect("the echo");
    assert_eq!(echoed, NUM_WIRE);
    drop(peer);
    // The server has seen the close before it is told to stop: it stops with no connection.
    server.wait_for("disconnected");

    server.terminate();
    let out = server.finish();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        events(&out.stdout).pop(),
        Some(
            json!({"event": "shutdown", "connections": 0, "forced": 0, "unsent_frames": 0,
                    "sent": 0, "skipped": 0})
        )
    );

    // Without a socket passed, fd:3 is a failed bind: exit 1, one line.
    let out = Proc::ltp(&args).finish();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        ["ltp: cannot listen on fd:3: no such socket was passed (LISTEN_FDS, LISTEN_PID)"]
    );
}

#[test]
fn connect_to_an_address_without_a_port_or_to_an_fd_is_a_usage_error() {
    for (target, problem) in [
        (
            "127.0.0.1",
            "127.0.0.1: expected host:port or unix:PATH (a port is needed)",
        ),
        (
            "fd:3",
            "fd:3 is for listening; connect to host:port or unix:PATH",
        ),
    ] {
        let out = Proc::ltp(&["connect", target]).finish();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        // clap's error is one line, then its hint to try --help.
        let errors: Vec<_> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect();
        assert_eq!(
            errors,
            [format!(
                "error: invalid value '{target}' for '<ADDR>': {problem}"
            )],
            "{}",
            out.stderr
        );
    }
}
