//! `tshark` for the tests that read captures back (feature `pcap`): whether it can run here,
//! and running it.
#![allow(dead_code)]

use std::process::Command;

/// Whether `tshark` can run here. When it cannot, the test is skipped with a note, unless
/// `LTP_REQUIRE_TSHARK=1` (CI), when it fails.
pub(crate) fn have_tshark() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("LTP_REQUIRE_TSHARK").is_none_or(|v| v != "1"),
            "tshark is missing and LTP_REQUIRE_TSHARK=1"
        );
        eprintln!("note: skipped: tshark is not installed");
    }
    found
}

/// Runs `tshark` with `args`; its standard output. Panics, with its stderr, if it fails.
pub(crate) fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}
