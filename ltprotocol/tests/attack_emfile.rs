//! Out of file descriptors: with the process's limit lowered (`prlimit` on our own pid),
//! clients connect until `accept` fails with `EMFILE`; the server backs off instead of
//! spinning or crashing, and serves again as soon as descriptors are free.
//!
//! Alone in its file: the limit applies to the whole test process.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Recorder, num_bytes, open_fds, read_num, start_server, within, write_raw};
use tokio::net::TcpStream;

/// This process's `RLIMIT_NOFILE` as `(soft, hard)`, from `/proc/self/limits`.
fn nofile() -> (String, String) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut words = line.split_whitespace().skip(3);
    (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    )
}

fn set_soft_nofile(soft: &str, hard: &str) -> bool {
    Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={soft}:{hard}"),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_survives_running_out_of_descriptors_and_recovers() {
    let (recorder, _seen) = Recorder::echo();
    let server = start_server(&common::demo_server(), recorder).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let (soft, hard) = nofile();
    let limit = open_fds() + 64;
    if !set_soft_nofile(&limit.to_string(), &hard) {
        eprintln!("skipped: prlimit is not available to lower RLIMIT_NOFILE");
        return;
    }

    // Each connection costs two descriptors here (client and server side). Connect until the
    // client side itself runs out: by then accepts have been failing with EMFILE.
    let mut clients = Vec::new();
    loop {
        match within(TcpStream::connect(addr)).await {
            Ok(stream) => clients.push(stream),
            Err(err) => {
                assert_eq!(err.raw_os_error(), Some(24), "expected EMFILE, got {err}");
                break;
            }
        }
        assert!(clients.len() < 1_000, "the descriptor limit did not bite");
    }
    // Let the server hit EMFILE a while: it must pause between attempts, not spin or die.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let errors = server.accept_errors();
    assert!(errors > 0, "accept never failed");
    // 10 ms doubling to 1 s: about six pauses fit in the time since the first failure.
    assert!(errors < 20, "accept failed {errors} times: it spins");

    // Free descriptors: the server accepts again and serves.
    drop(clients);
    assert!(set_soft_nofile(&soft, &hard), "cannot restore the limit");
    let mut fresh = within(async {
        loop {
            match TcpStream::connect(addr).await {
                Ok(stream) => break stream,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    write_raw(&mut fresh, &num_bytes(42)).await;
    assert_eq!(read_num(&mut fresh).await, 42);
    drop(fresh);
    server.shutdown(Duration::from_secs(10)).await;
}
