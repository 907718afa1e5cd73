//! Help hygiene of the built binary: each subcommand's `--help` lists exactly the options it
//! uses, and an option given to a subcommand that does not use it is a usage error (exit
//! code 2, clap's message naming it) rather than silently ignored. `serve` and `connect` are
//! left to their own tests.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A generous guard that turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);

/// Runs `ltp ARGS` to completion (killing it, by its own handle, if it hangs).
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ltp"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ltp starts");
    let started = Instant::now();
    while child.try_wait().expect("ltp can be waited for").is_none() {
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ltp {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("ltp's output")
}

/// The long options `ltp ARGS --help` lists: the first `--name` of each line that starts
/// (after its indent) with an option: `-h, --help`, `--listen <LISTEN>`.
fn listed_options(args: &[&str]) -> BTreeSet<String> {
    let mut with_help = args.to_vec();
    with_help.push("--help");
    let out = run(&with_help);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ltp {with_help:?}: {out:?}");
    help.lines()
        .map(str::trim_start)
        .filter(|line| {
            line.starts_with("--") || (line.starts_with('-') && line.get(2..6) == Some(", --"))
        })
        .filter_map(|line| {
            line.split([' ', ','])
                .find(|token| token.starts_with("--"))
                .map(str::to_owned)
        })
        .collect()
}

/// The options every subcommand has: the global `--threads` and `--help`.
const EVERYWHERE: [&str; 2] = ["--threads", "--help"];

/// Options of every load mode of `ltp bench`: where the load goes and the wire.
const TARGET_AND_WIRE: [&str; 7] = [
    "--target",
    "--tls",
    "--ca",
    "--server-name",
    "--layout",
    "--max-frame",
    "--outbox-bytes",
];

fn assert_lists(args: &[&str], own: &[&str]) {
    let listed = listed_options(args);
    let expected: BTreeSet<String> = own
        .iter()
        .chain(&EVERYWHERE)
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(listed, expected, "ltp {} --help", args.join(" "));
}

#[test]
fn demo_help_lists_rounds_only_where_it_is_used() {
    assert_lists(&["demo"], &["--rounds"]);
    assert_lists(&["demo", "server"], &["--listen"]);
    assert_lists(&["demo", "client"], &["--connect"]);
}

#[test]
fn each_bench_mode_lists_only_its_own_options() {
    let stream = [
        "--connections",
        "--body-size",
        "--messages",
        "--duration",
        "--client",
    ];
    for mode in ["throughput", "pingpong"] {
        assert_lists(&["bench", mode], &[&stream[..], &TARGET_AND_WIRE].concat());
    }
    assert_lists(
        &["bench", "fanout"],
        &[
            &["--connections", "--body-size", "--messages"][..],
            &TARGET_AND_WIRE,
        ]
        .concat(),
    );
    assert_lists(
        &["bench", "conns"],
        &[&["--connections", "--server-pid"][..], &TARGET_AND_WIRE].concat(),
    );
    assert_lists(&["bench", "soak"], &["--duration", "--connections"]);
    assert_lists(
        &["bench", "serve"],
        &[
            "--listen",
            "--tls",
            "--tls-cert",
            "--tls-key",
            "--tls-ca-out",
            "--api",
            "--layout",
            "--max-frame",
            "--outbox-bytes",
            "--pcap",
            "--pcap-max-size",
        ],
    );
}

#[test]
fn completions_and_man_list_their_own_options() {
    assert_lists(&["completions"], &[]);
    assert_lists(&["man"], &["--dir"]);
    assert_lists(
        &["dissector"],
        &["--layout", "--schema", "--port", "--name"],
    );
    let top = listed_options(&[]);
    assert!(top.contains("--version"), "{top:?}");
}

/// `ltp ARGS` is refused at parsing: exit code 2 and clap's message quoting `named`.
fn assert_refused(args: &[&str], named: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "ltp {args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "ltp {args:?}: {stderr}");
    assert!(stderr.contains(named), "ltp {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "ltp {args:?} printed to stdout");
}

#[test]
fn an_option_a_subcommand_does_not_use_is_a_usage_error() {
    assert_refused(&["demo", "server", "--rounds", "2"], "'--rounds'");
    assert_refused(&["demo", "client", "--rounds", "2"], "'--rounds'");
    assert_refused(
        &["demo", "--rounds", "2", "server"],
        "--rounds is for `ltp demo`",
    );
    assert_refused(&["demo", "--rounds", "0"], "'--rounds <N>'");
    // A global option is still taken anywhere before the subcommand's own.
    assert_lists(&["demo", "--threads", "1", "server"], &["--listen"]);
    for (mode, option, value) in [
        ("throughput", "--server-pid", "1"),
        ("pingpong", "--server-pid", "1"),
        ("fanout", "--client", "runtime"),
        ("fanout", "--duration", "1s"),
        ("fanout", "--server-pid", "1"),
        ("conns", "--messages", "5"),
        ("conns", "--body-size", "5"),
        ("conns", "--duration", "1s"),
        ("conns", "--client", "codec"),
        ("soak", "--target", "127.0.0.1:1"),
        ("soak", "--tls", ""),
        ("serve", "--connections", "2"),
        ("serve", "--target", "127.0.0.1:1"),
    ] {
        let mut args = vec!["bench", mode, option];
        if !value.is_empty() {
            args.push(value);
        }
        assert_refused(&args, &format!("'{option}'"));
    }
    // Measuring another process's memory needs that process's server as the target.
    assert_refused(&["bench", "conns", "--server-pid", "1"], "--target");
}
