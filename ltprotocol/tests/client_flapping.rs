//! A client under a flapping server (stopped and restarted 20 times at random intervals):
//! every message given to `send` is delivered exactly once and in order, or reported as not
//! sent. None is silently lost.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Demo, NumMsg, bind_again, demo_client, demo_server, within};
use ltprotocol::{ConnectionHandle, Handler, HeaderFields};

/// Records every number received, across server instances, in arrival order.
#[derive(Clone)]
struct Collect(Arc<Mutex<Vec<u32>>>);

impl Handler<Demo> for Collect {
    async fn message(&self, _conn: &ConnectionHandle, message: Demo, _fields: &HeaderFields) {
        if let Demo::Num(NumMsg { num }) = message {
            self.0.lock().unwrap().push(num);
        }
    }
}

/// A small xorshift, seeded per run: random intervals without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_delivered_once_in_order_or_reported_under_a_flapping_server() {
    const TOTAL: u32 = 3_000;
    let received = Collect(Arc::new(Mutex::new(Vec::new())));
    let builder = demo_server();
    let server = within(builder.bind("127.0.0.1:0")).await.unwrap();
    let addr = server.local_addr().as_tcp().unwrap();
    let serving = server.clone();
    let handler = received.clone();
    tokio::spawn(async move { serving.serve(handler).await });

    let mut client_builder = demo_client();
    client_builder.backoff(ltprotocol::Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        ..ltprotocol::Backoff::default()
    });
    let (client, _events) = client_builder.connect(addr.to_string());

    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut refused = 0;
            for num in 0..TOTAL {
                if client.send(&NumMsg { num }).await.is_err() {
                    refused += 1;
                }
                // Spread the sends over the whole flapping period.
                if num % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
            refused
        })
    };

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("seed {seed}");
    let mut server = server;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10 + next(&mut seed) % 140)).await;
        within(server.shutdown(Duration::from_secs(10))).await;
        tokio::time::sleep(Duration::from_millis(next(&mut seed) % 60)).await;
        server = bind_again(&builder, addr).await;
        let serving = server.clone();
        let handler = received.clone();
        tokio::spawn(async move { serving.serve(handler).await });
    }
    let refused = within(sender).await.unwrap();
    let report = within(client.close(Duration::from_secs(20))).await;
    within(server.shutdown(Duration::from_secs(10))).await;

    let got = received.0.lock().unwrap().clone();
    let expected: Vec<u32> = (0..got.len() as u32).collect();
    assert_eq!(got, expected, "out of order, duplicated or with a gap");
    assert_eq!(
        refused, 0,
        "send refused messages while the client was open"
    );
    assert_eq!(
        got.len() + report.unsent_frames,
        TOTAL as usize,
        "delivered {} + reported unsent {} != sent {TOTAL}",
        got.len(),
        report.unsent_frames
    );
    // The client stayed open to the end, so everything went out.
    assert_eq!(report.unsent_frames, 0);
}
