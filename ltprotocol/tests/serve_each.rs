//! `Server::serve_each`: a handler of its own for each connection, made when it is accepted,
//! hears that connection's `connected`, messages and `disconnected`, and keeps that
//! connection's state in its fields; a panic while making one closes that connection only
//! and gives its place back.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{
    Demo, NumMsg, connect, demo_server, expect_closed, hang_up_on_eof, num_bytes, read_num, until,
    within, write_raw,
};
use ltprotocol::{ConnectionHandle, ConnectionId, DisconnectReason, Handler, HeaderFields, Server};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What the per-connection handlers report: which connection they were made for and what
/// they heard.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Connected(ConnectionId),
    Disconnected(ConnectionId, u32),
}

/// Answers each `NumMsg(n)` with `n` plus how many this connection sent before it: the count
/// is the handler's own field.
struct Counting {
    made_for: ConnectionId,
    seen: AtomicU32,
    heard: mpsc::UnboundedSender<Heard>,
}

impl Handler<Demo> for Counting {
    async fn connected(&self, conn: &ConnectionHandle) {
        assert_eq!(
            conn.id(),
            self.made_for,
            "called on another connection's handler"
        );
        let _ = self.heard.send(Heard::Connected(conn.id()));
    }

    async fn message(&self, conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
        assert_eq!(
            conn.id(),
            self.made_for,
            "called on another connection's handler"
        );
        if let Demo::Num(NumMsg { num }) = msg {
            let before = self.seen.load(Ordering::Relaxed);
            self.seen.store(before + 1, Ordering::Relaxed);
            let _ = conn.send(&Demo::Num(NumMsg { num: num + before })).await;
        }
    }

    async fn disconnected(&self, conn: &ConnectionHandle, _reason: &DisconnectReason) {
        let seen = self.seen.load(Ordering::Relaxed);
        let _ = self.heard.send(Heard::Disconnected(conn.id(), seen));
    }
}

/// Serves `server` with a `Counting` per connection; `make` panics for the `panic_on`-th
/// connection (from 1), if any.
fn serve_counting(server: &Server<Demo>, panic_on: Option<u32>) -> mpsc::UnboundedReceiver<Heard> {
    let (tx, rx) = mpsc::unbounded_channel();
    let serving = server.clone();
    let mut made = 0;
    tokio::spawn(async move {
        let served = serving
            .serve_each(move |conn: &ConnectionHandle| {
                made += 1;
                assert_ne!(Some(made), panic_on, "making a handler failed on purpose");
                Counting {
                    made_for: conn.id(),
                    seen: AtomicU32::new(0),
                    heard: tx.clone(),
                }
            })
            .await;
        served.expect("serve_each");
    });
    rx
}

async fn ask(stream: &mut TcpStream, num: u32) -> u32 {
    write_raw(stream, &num_bytes(num)).await;
    read_num(stream).await
}

async fn next(heard: &mut mpsc::UnboundedReceiver<Heard>) -> Heard {
    within(heard.recv()).await.expect("a handler reported")
}

#[tokio::test]
async fn each_connection_has_a_handler_of_its_own() {
    let server = demo_server().bind("127.0.0.1:0").await.unwrap();
    let mut heard = serve_counting(&server, None);
    let mut a = connect(server.local_addr().as_tcp().unwrap()).await;
    let Heard::Connected(a_id) = next(&mut heard).await else {
        panic!("expected a connect");
    };
    let mut b = connect(server.local_addr().as_tcp().unwrap()).await;
    let Heard::Connected(b_id) = next(&mut heard).await else {
        panic!("expected a connect");
    };
    assert_ne!(a_id, b_id);

    // Each count is the connection's own.
    assert_eq!(ask(&mut a, 100).await, 100);
    assert_eq!(ask(&mut a, 100).await, 101);
    assert_eq!(ask(&mut b, 200).await, 200);
    assert_eq!(ask(&mut a, 100).await, 102);
    assert_eq!(ask(&mut b, 200).await, 201);

    // `disconnected` runs on the same handler: it still has its count.
    drop(a);
    assert_eq!(next(&mut heard).await, Heard::Disconnected(a_id, 3));
    assert_eq!(ask(&mut b, 200).await, 202);
    hang_up_on_eof(b);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.connections, report.forced), (1, 0));
    assert_eq!(next(&mut heard).await, Heard::Disconnected(b_id, 3));
}

#[tokio::test]
async fn a_panic_making_a_handler_closes_that_connection_only() {
    // Two connections at most: unless the refused one gives its place back, the third is
    // refused too.
    let server = demo_server()
        .max_connections(2)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut heard = serve_counting(&server, Some(2));
    let mut first = connect(server.local_addr().as_tcp().unwrap()).await;
    assert!(matches!(next(&mut heard).await, Heard::Connected(_)));

    let mut doomed = connect(server.local_addr().as_tcp().unwrap()).await;
    expect_closed(&mut doomed).await;
    // Never made, so never told anything: no `connected`, no `disconnected`.
    until(|| server.len() == 1).await;

    assert_eq!(ask(&mut first, 7).await, 7);
    // The refused connection's place is free again: a third one is served.
    let mut third = connect(server.local_addr().as_tcp().unwrap()).await;
    assert!(matches!(next(&mut heard).await, Heard::Connected(_)));
    assert_eq!(ask(&mut third, 9).await, 9);
    assert_eq!(ask(&mut first, 7).await, 8);
    assert_eq!(server.len(), 2);
    assert!(heard.try_recv().is_err(), "only the two served were heard");

    hang_up_on_eof(first);
    hang_up_on_eof(third);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.connections, report.forced), (2, 0));
}
