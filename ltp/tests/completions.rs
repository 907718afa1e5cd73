//! `ltp completions SHELL` and `ltp man` end to end: the built binary's scripts are accepted
//! by the shells (`bash -n`, and `zsh -n` and `fish --no-execute` where those shells are
//! installed; a missing one is skipped with a note), bash's completes subcommands and only a
//! subcommand's own options, and the man pages name every subcommand and render with `man`
//! (where installed) without a warning.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A generous guard that turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);

/// Every subcommand at every depth, as its man page's name.
const PAGES: [&str; 16] = [
    "ltp",
    "ltp-serve",
    "ltp-connect",
    "ltp-demo",
    "ltp-demo-server",
    "ltp-demo-client",
    "ltp-bench",
    "ltp-bench-serve",
    "ltp-bench-throughput",
    "ltp-bench-pingpong",
    "ltp-bench-fanout",
    "ltp-bench-conns",
    "ltp-bench-soak",
    "ltp-dissector",
    "ltp-completions",
    "ltp-man",
];

/// Runs `program ARGS` to completion (killing it, by its own handle, if it hangs).
fn run_program(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    let started = Instant::now();
    while child
        .try_wait()
        .expect("the child can be waited for")
        .is_none()
    {
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the child's output")
}

/// `ltp ARGS`, which must succeed: its stdout.
fn ltp_stdout(args: &[&str]) -> String {
    let out = run_program(env!("CARGO_BIN_EXE_ltp"), args, &[]);
    assert!(
        out.status.success(),
        "ltp {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A fresh directory for this test under Cargo's temporary directory for tests.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("completions-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// `ltp completions SHELL` written to a file: its path.
fn script(shell: &str) -> PathBuf {
    let path = scratch(shell).join(format!("ltp.{shell}"));
    std::fs::write(&path, ltp_stdout(&["completions", shell])).expect("the script is written");
    path
}

/// Whether `shell` is installed (`SHELL --version` runs); prints a note when it is not.
fn installed(shell: &str) -> bool {
    let found = Command::new(shell)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        println!("note: {shell} is not installed: its completion script is not checked");
    }
    found
}

fn assert_accepted(shell: &str, check: &[&str], path: &Path) {
    let path = path.to_str().expect("a UTF-8 path");
    let args: Vec<&str> = check.iter().copied().chain([path]).collect();
    let out = run_program(shell, &args, &[]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{shell} {check:?} refuses the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What bash's completion offers for the last of `words`, as one word per line.
fn bash_completes(path: &Path, words: &[&str]) -> BTreeSet<String> {
    let (current, previous) = match words {
        [.., previous, current] => (*current, *previous),
        _ => panic!("at least two words"),
    };
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _ltp ltp '{current}' '{previous}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
    );
    let out = run_program("bash", &["--norc", "--noprofile", "-c", &line], &[]);
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_accepts_the_script_and_completes_subcommands_and_their_own_options() {
    let path = script("bash");
    assert_accepted("bash", &["-n"], &path);

    let top = bash_completes(&path, &["ltp", ""]);
    for sub in ["serve", "connect", "demo", "bench", "completions", "man"] {
        assert!(top.contains(sub), "`ltp <TAB>` lacks {sub}: {top:?}");
    }
    assert_eq!(
        bash_completes(&path, &["ltp", "bench", "th"]),
        BTreeSet::from(["throughput".to_owned()])
    );
    // fanout takes --connections and --ca, not --client (throughput's).
    assert_eq!(
        bash_completes(&path, &["ltp", "bench", "fanout", "--c"]),
        BTreeSet::from(["--connections".to_owned(), "--ca".to_owned()])
    );
    let shells = bash_completes(&path, &["ltp", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(shell), "{shells:?}");
    }
}

#[test]
fn zsh_accepts_its_script() {
    if installed("zsh") {
        assert_accepted("zsh", &["-n"], &script("zsh"));
    }
}

#[test]
fn fish_accepts_its_script() {
    if installed("fish") {
        assert_accepted("fish", &["--no-execute"], &script("fish"));
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = run_program(env!("CARGO_BIN_EXE_ltp"), &["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'tcsh'"));
}

/// roff's spelling of `text`: a hyphen is `\-`.
fn roff(text: &str) -> String {
    text.replace('-', "\\-")
}

#[test]
fn the_man_page_names_every_subcommand() {
    let page = ltp_stdout(&["man"]);
    assert!(page.contains(".TH ltp 1"), "{page}");
    assert!(page.contains(".SH SYNOPSIS"), "{page}");
    for name in ["serve", "connect", "demo", "bench", "completions", "man"] {
        let reference = roff(&format!("ltp-{name}(1)"));
        assert!(page.contains(&reference), "ltp(1) lacks {reference}");
    }
    let conns = ltp_stdout(&["man", "bench", "conns"]);
    assert!(conns.contains(".TH ltp-bench-conns 1"), "{conns}");
    assert!(conns.contains(&roff("--server-pid")), "{conns}");
    assert!(!conns.contains(&roff("--client")), "{conns}");
}

#[test]
fn man_of_an_unknown_subcommand_is_a_usage_error() {
    let out = run_program(env!("CARGO_BIN_EXE_ltp"), &["man", "bench", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`ltp bench` has no subcommand `nope`"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn man_dir_writes_a_page_per_subcommand_that_man_renders() {
    let dir = scratch("man").join("man1");
    ltp_stdout(&["man", "--dir", dir.to_str().expect("a UTF-8 path")]);
    let written: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("the directory was made")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let expected: BTreeSet<String> = PAGES.iter().map(|page| format!("{page}.1")).collect();
    assert_eq!(written, expected);

    let man_found = Command::new("man")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !man_found {
        println!("note: man is not installed: the pages are not rendered");
        return;
    }
    for page in PAGES {
        let file = dir.join(format!("{page}.1"));
        let file = file.to_str().expect("a UTF-8 path");
        let out = run_program(
            "man",
            &["--warnings", "-P", "cat", "-l", file],
            &[("MANWIDTH", "100")],
        );
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "man -l {page}.1: {stderr}");
        assert!(stderr.is_empty(), "man -l {page}.1 warns: {stderr}");
        assert!(stdout.contains("NAME"), "{stdout}");
        assert!(stdout.contains(page), "{stdout}");
    }
}
