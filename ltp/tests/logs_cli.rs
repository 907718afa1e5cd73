//! `ltp`'s logs end to end: the built binary's stderr when it is redirected (never an escape
//! sequence), on a terminal (the level coloured, unless `NO_COLOR`), and a failed connect
//! reported once (the `connect_failed` event on stdout; the library's detail only with
//! `LTP_LOG=debug`). The failing target is a port of 127.0.0.1 that was just bound and
//! released, so nothing listens there. Stdin stays open until the failure has been reported
//! (else `ltp connect` may end at the end of stdin before its first attempt), then ends.
//! Nothing here asserts an exit code of `ltp connect` (see `cli.rs` for those) or a timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A generous guard that turns a hang into a failure (the test machine is busy).
const HANG: Duration = Duration::from_secs(60);

/// A port of 127.0.0.1 on which nothing listens: bound by the kernel's choice, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Runs `command` (stdin, stdout and stderr piped) until its stdout shows a line for which
/// `seen` holds, then writes `last_input` to its stdin and closes it, and waits for it (killing
/// it by its own handle if it hangs). Returns everything it wrote to stdout and stderr.
fn run_until(
    mut command: Command,
    what: &str,
    seen: fn(&str) -> bool,
    last_input: &[u8],
) -> (String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let mut out = String::new();
    loop {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
                if stdin.is_some() && seen(&line) {
                    // It may have exited already: a write that fails is no matter.
                    if let Some(mut input) = stdin.take() {
                        let _ = input.write_all(last_input);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if started.elapsed() > HANG {
            stop(&mut child);
            panic!("{what} hung; its stdout so far:\n{out}");
        }
    }
    drop(stdin);
    wait(&mut child, what);
    let _ = reader.join();
    (out, errors.join().unwrap_or_default())
}

/// Waits for `child`, killing it by its own handle if it hangs.
fn wait(child: &mut Child, what: &str) {
    let started = Instant::now();
    while child
        .try_wait()
        .expect("the child can be waited for")
        .is_none()
    {
        if started.elapsed() > HANG {
            stop(child);
            panic!("{what} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `ltp connect 127.0.0.1:PORT --max-attempts 1` against a closed port, with `LTP_LOG` and
/// `NO_COLOR` unset and then `env`, until its `connect_failed` event: (stdout, stderr).
fn failed_connect(env: &[(&str, &str)]) -> (String, String) {
    let target = format!("127.0.0.1:{}", closed_port());
    let args = ["connect", &target, "--max-attempts", "1"];
    let mut command = Command::new(env!("CARGO_BIN_EXE_ltp"));
    command
        .args(args)
        .env_remove("LTP_LOG")
        .env_remove("NO_COLOR");
    for (key, value) in env {
        command.env(key, value);
    }
    run_until(command, &format!("ltp {args:?}"), is_connect_failed, b"")
}

fn is_connect_failed(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|event| event["event"] == "connect_failed")
}

fn has_connect_failed_event(stdout: &str) -> bool {
    stdout.lines().any(is_connect_failed)
}

#[test]
fn a_failed_connect_is_reported_once_on_stdout() {
    let (stdout, stderr) = failed_connect(&[]);
    // The library logs "connect failed" before it hands the failure to ltp, which prints the
    // event; stderr is read to its end after ltp exits: a WARN would be there, not racing.
    assert!(has_connect_failed_event(&stdout), "stdout:\n{stdout}");
    for said_again in ["WARN", "ltprotocol::client", "connect failed", "giving up"] {
        assert!(
            !stderr.contains(said_again),
            "stderr repeats the failure ({said_again:?}):\n{stderr}"
        );
    }
}

#[test]
fn ltp_log_debug_shows_the_librarys_detail_of_a_failed_connect() {
    for spec in ["debug", "ltprotocol::client=info"] {
        let (stdout, stderr) = failed_connect(&[("LTP_LOG", spec)]);
        assert!(has_connect_failed_event(&stdout), "stdout:\n{stdout}");
        let detail = stderr
            .lines()
            .find(|line| line.contains("ltprotocol::client") && line.contains("connect failed"))
            .unwrap_or_else(|| panic!("LTP_LOG={spec}: no detail on stderr:\n{stderr}"));
        assert!(detail.contains("Connection refused"), "{detail}");
        assert!(detail.contains(" WARN "), "{detail}");
    }
}

#[test]
fn a_bad_ltp_log_is_reported_and_the_default_kept() {
    let (stdout, stderr) = failed_connect(&[("LTP_LOG", "ltprotocol=loud")]);
    assert!(has_connect_failed_event(&stdout), "stdout:\n{stdout}");
    let note = stderr
        .lines()
        .find(|line| line.starts_with("ltp: LTP_LOG=ltprotocol=loud: "))
        .unwrap_or_else(|| panic!("no note about LTP_LOG:\n{stderr}"));
    assert!(note.contains("default filter"), "{note}");
    assert!(!stderr.contains("connect failed"), "{stderr}");
}

#[test]
fn a_redirected_stderr_never_holds_an_escape_sequence() {
    // Every level on, and a terminal type that would take colours: still none in a pipe.
    let (_, stderr) = failed_connect(&[("LTP_LOG", "trace"), ("TERM", "xterm-256color")]);
    assert!(stderr.contains("DEBUG"), "no log lines to judge:\n{stderr}");
    assert!(
        stderr.contains(" WARN "),
        "no log lines to judge:\n{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "an escape sequence in:\n{stderr:?}"
    );
}

/// `ltp connect` against a closed port under `script`, which gives it a terminal (stdin,
/// stdout and stderr), with `LTP_LOG=debug`: what the terminal showed, once the library's
/// "connect failed" line is there and a ^D has ended ltp's stdin. `None` (with a note) where
/// `script` (util-linux) is missing.
fn on_a_terminal(env: &[(&str, &str)]) -> Option<String> {
    let probe = Command::new("script").arg("--version").output();
    if !probe.is_ok_and(|out| out.status.success()) {
        println!("note: `script` (util-linux) is not installed: the terminal case is not run");
        return None;
    }
    let line = format!(
        "'{}' connect 127.0.0.1:{} --max-attempts 1",
        env!("CARGO_BIN_EXE_ltp"),
        closed_port()
    );
    let mut command = Command::new("script");
    command
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .env("LTP_LOG", "debug");
    for (key, value) in env {
        command.env(key, value);
    }
    let (screen, _) = run_until(
        command,
        &format!("script -c {line}"),
        |line| line.contains("connect failed"),
        b"\x04",
    );
    Some(screen)
}

#[test]
fn on_a_terminal_only_the_level_and_timestamp_are_coloured() {
    let Some(screen) = on_a_terminal(&[]) else {
        return;
    };
    let warn = screen
        .lines()
        .find(|line| line.contains("connect failed"))
        .unwrap_or_else(|| panic!("no log line on the terminal:\n{screen:?}"));
    assert!(warn.contains("\x1b[33m WARN\x1b[0m"), "{warn:?}");
    // Past the level, the line is tracing's text, escaped: no sequence of its own.
    let (_, rest) = warn.split_once(" WARN\x1b[0m").expect("the level");
    assert!(!rest.contains('\x1b'), "{warn:?}");
}

#[test]
fn no_color_keeps_a_terminal_free_of_escape_sequences() {
    let Some(screen) = on_a_terminal(&[("NO_COLOR", "1")]) else {
        return;
    };
    assert!(screen.contains("connect failed"), "{screen:?}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
}
