//! A handler that spends the task's whole cooperative budget (tokio's per-poll allowance)
//! before answering: the connection must yield and carry on, answering every message, not
//! spin between "there is work" and "no budget to do it". The server runs on its own thread,
//! so a connection stuck spinning fails this test by timeout instead of hanging it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use common::{Demo, GUARD, demo_server, num_bytes};
use ltprotocol::{ConnectionHandle, Handler, HeaderFields};

/// Spends the budget without yielding, then echoes.
struct Spender;

impl Handler<Demo> for Spender {
    async fn message(&self, conn: &ConnectionHandle, message: Demo, _fields: &HeaderFields) {
        while tokio::task::coop::has_budget_remaining() {
            let _ = futures::FutureExt::now_or_never(tokio::task::coop::consume_budget());
        }
        // Queued without waiting (the outbox has room): the writer then finds no budget.
        let _ = conn.send(&message).await;
    }
}

fn serve_on_own_thread(flavor_multi: bool) -> std::net::SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = if flavor_multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("a runtime");
        runtime.block_on(async move {
            let server = demo_server().bind("127.0.0.1:0").await.expect("bind");
            tx.send(server.local_addr().as_tcp().unwrap())
                .expect("the test waits");
            server.serve(Spender).await.expect("serve");
        });
    });
    rx.recv_timeout(GUARD).expect("the server starts")
}

#[test]
fn a_handler_that_spends_the_budget_is_still_answered() {
    for multi in [false, true] {
        let addr = serve_on_own_thread(multi);
        let mut peer = TcpStream::connect(addr).expect("connect");
        peer.set_read_timeout(Some(GUARD)).expect("timeout");
        for num in 0..20u32 {
            let frame = num_bytes(num);
            peer.write_all(&frame).expect("write");
            let mut echoed = vec![0u8; frame.len()];
            peer.read_exact(&mut echoed)
                .unwrap_or_else(|err| panic!("no echo of {num} (multi-thread {multi}): {err}"));
            assert_eq!(echoed, frame);
        }
        // Idle for a moment, then again: the idle wait must also yield when it must.
        std::thread::sleep(Duration::from_millis(50));
        let frame = num_bytes(99);
        peer.write_all(&frame).expect("write");
        let mut echoed = vec![0u8; frame.len()];
        peer.read_exact(&mut echoed).expect("the echo after idling");
        assert_eq!(echoed, frame);
    }
}
