//! A reconnecting client keeps what is sent while the server is down and delivers it, in
//! order and once, to the next server; each connection starts with a fresh decoder; its
//! queue is bounded.

mod common;

use std::time::Duration;

use common::{
    Demo, NumMsg, bind_again, demo_client, demo_server, num_bytes, read_num, refusing_addr,
    start_event_server, within, write_raw,
};
use ltprotocol::{
    Backoff, ConnectionId, DisconnectReason, Event, EventStream, FrameError, SendError,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn quick_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        ..Backoff::default()
    }
}

/// Takes events until one matches `pick`, which returns what the test wants from it.
async fn wait_for<T>(
    events: &mut EventStream<Demo>,
    mut pick: impl FnMut(Event<Demo>) -> Option<T>,
) -> T {
    within(async {
        loop {
            let event = events.next().await.expect("event stream ended");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
}

/// Expects the server to receive exactly `NumMsg`s `from..to`, in order, skipping only
/// `Connected` events.
async fn expect_nums(events: &mut EventStream<Demo>, from: u32, to: u32) {
    for expected in from..to {
        let got = wait_for(events, |event| match event {
            Event::Connected(_) => None,
            Event::Message { message, .. } => Some(message),
            other => panic!("expected NumMsg {expected}, got {other:?}"),
        })
        .await;
        assert_eq!(got, Demo::Num(NumMsg { num: expected }));
    }
}

#[tokio::test]
async fn queued_messages_arrive_in_order_after_reconnect() {
    const WHILE_UP: u32 = 10;
    const WHILE_DOWN: u32 = 25;
    let builder = demo_server();
    let (mut server, mut server_events) = start_event_server(&builder).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let (client, mut client_events) = demo_client()
        .backoff(quick_backoff())
        .connect(addr.to_string());

    let mut sent = 0u32;
    let mut received = 0u32;
    for round in 0..3 {
        within(client.wait_connected())
            .await
            .expect("client gave up");
        for _ in 0..WHILE_UP {
            client.send(&NumMsg { num: sent }).await.unwrap();
            sent += 1;
        }
        expect_nums(&mut server_events, received, sent).await;
        received = sent;

        // Take the server down; once the client has seen its connection end, what it
        // sends is queued for the next one.
        let report = within(server.shutdown(Duration::from_secs(10))).await;
        assert_eq!((report.connections, report.forced), (1, 0), "round {round}");
        wait_for(&mut client_events, |event| match event {
            Event::Disconnected { reason, .. } => Some(reason),
            _ => None,
        })
        .await;
        // The old server got nothing more.
        while let Some(event) = within(server_events.next()).await {
            assert!(
                matches!(event, Event::Disconnected { .. }),
                "round {round}: {event:?}"
            );
        }
        for _ in 0..WHILE_DOWN {
            client.send(&NumMsg { num: sent }).await.unwrap();
            sent += 1;
        }

        // Bring it back on the same port: the queue arrives, in order, exactly once.
        server = bind_again(&builder, addr).await;
        server_events = server.events();
        expect_nums(&mut server_events, received, sent).await;
        received = sent;
    }

    // Nothing was duplicated: after a last message, the client's goodbye comes next.
    client.send(&NumMsg { num: sent }).await.unwrap();
    sent += 1;
    expect_nums(&mut server_events, received, sent).await;
    let closing = tokio::spawn({
        let client = client.clone();
        async move { client.close(Duration::from_secs(20)).await }
    });
    let reason = wait_for(&mut server_events, |event| match event {
        Event::Disconnected { reason, .. } => Some(reason),
        other => panic!("expected the client's goodbye, got {other:?}"),
    })
    .await;
    assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason:?}");
    let report = within(closing).await.unwrap();
    assert_eq!(report.unsent_frames, 0);
    assert!(report.graceful);
    assert!(matches!(
        client.send(&NumMsg { num: 0 }).await,
        Err(SendError::Closed { .. })
    ));
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn frame_cut_by_disconnect_does_not_leak_into_next_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .connect(listener.local_addr().unwrap().to_string());

    // First connection: half a NumMsg, then close.
    let (mut first, _) = within(listener.accept()).await.unwrap();
    write_raw(&mut first, &num_bytes(7)[..4]).await;
    within(first.shutdown()).await.unwrap();
    let reason = wait_for(&mut events, |event| match event {
        Event::Message { message, .. } => panic!("a cut frame was delivered: {message:?}"),
        Event::Disconnected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    let DisconnectReason::Protocol(err) = &reason else {
        panic!("expected a protocol error, got {reason:?}");
    };
    assert!(
        matches!(
            **err,
            FrameError::Truncated {
                missing: 3,
                received: 4,
                in_header: false
            }
        ),
        "{err:?}"
    );
    drop(first);
    // Queued while disconnected.
    client.send(&NumMsg { num: 100 }).await.unwrap();

    // Second connection: whole frames decode cleanly from the first byte.
    let (mut second, _) = within(listener.accept()).await.unwrap();
    assert_eq!(read_num(&mut second).await, 100);
    let mut both = num_bytes(7);
    both.extend_from_slice(&num_bytes(8));
    write_raw(&mut second, &both).await;
    for expected in [7, 8] {
        let got = wait_for(&mut events, |event| match event {
            Event::Message { message, .. } => Some(message),
            Event::Disconnected { reason, .. } => panic!("disconnected: {reason:?}"),
            _ => None,
        })
        .await;
        assert_eq!(got, Demo::Num(NumMsg { num: expected }));
    }
    assert!(client.is_connected());
    drop(second);
    drop(listener);
    let report = within(client.close(Duration::from_secs(10))).await;
    assert_eq!(report.unsent_frames, 0);
}

#[tokio::test]
async fn try_send_fails_with_queue_full_past_the_bound_while_disconnected() {
    const FRAMES: usize = 10;
    // Nothing listens: the client never connects.
    let (_refusing, addr) = refusing_addr();
    let (client, _events) = demo_client()
        .backoff(quick_backoff())
        .outbox_capacity(FRAMES * 7)
        .connect(addr.to_string());
    for num in 0..FRAMES as u32 {
        client.try_send(&NumMsg { num }).unwrap();
    }
    let err = client.try_send(&NumMsg { num: 99 }).unwrap_err();
    assert!(
        matches!(err, SendError::QueueFull { id, capacity } if id == ConnectionId::new(0) && capacity == FRAMES * 7),
        "{err:?}"
    );
    assert!(!client.is_connected());

    let report = within(client.close(Duration::from_millis(300))).await;
    assert_eq!(report.unsent_frames, FRAMES);
    assert!(!report.graceful);
    assert!(matches!(
        client.send(&NumMsg { num: 0 }).await,
        Err(SendError::Closed { .. })
    ));
    assert!(within(client.wait_connected()).await.is_none());
}
