//! `ConnectionHandle::send` against a full outbox: it waits until the peer reads, and a send
//! dropped while waiting queues nothing. Every frame accepted is delivered, in order; senders
//! that wait are served in the order they began waiting, nothing jumps the line, and a waiter
//! that gives up leaves no room behind.

mod common;

use std::time::Duration;

use common::{
    Recorder, SEQ_TYPE, connect, connection_of, demo_server, read_frame, seq_msg, start_server,
    within,
};
use ltprotocol::{MessageType, SendError, Unknown};

const OUTBOX: usize = 32 * 1024;
/// 8 KiB frames: kernel buffers and the outbox fill in hundreds of sends.
const PAD: usize = 8 * 1024 - 7;
/// The type of the frame sent by the waiting send, and of the one whose send is dropped.
const WAITED: u8 = 9;
const DROPPED: u8 = 10;
/// The types of three senders waiting in line, the second of which gives up.
const FIRST: u8 = 11;
const GIVES_UP: u8 = 12;
const THIRD: u8 = 13;

fn marker(message_type: u8) -> Unknown {
    Unknown {
        message_type: MessageType::new(i128::from(message_type)),
        body: vec![message_type; PAD].into(),
    }
}

/// Queues numbered frames with `try_send` until the outbox stays full while the peer does not
/// read (the kernel's buffers fill first, then the outbox); returns how many were queued.
async fn fill(conn: &ltprotocol::ConnectionHandle) -> u32 {
    let mut queued = 0u32;
    let mut full_in_a_row = 0;
    within(async {
        while full_in_a_row < 5 {
            match conn.try_send(&seq_msg(queued, PAD)) {
                Ok(()) => {
                    queued += 1;
                    full_in_a_row = 0;
                }
                Err(SendError::QueueFull { capacity, .. }) => {
                    assert_eq!(capacity, OUTBOX);
                    full_in_a_row += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("try_send failed: {err}"),
            }
        }
    })
    .await;
    assert!(queued > 0);
    queued
}

/// Reads frames until the end of the stream: numbered ones must come in order; returns how
/// many of them came, and the types of the others in the order they came.
async fn read_all(mut peer: tokio::net::TcpStream) -> (u32, Vec<u8>) {
    let mut next = 0u32;
    let mut frames = Vec::new();
    loop {
        let mut head = [0u8; 1];
        // End of stream ends the reading.
        if within(peer.peek(&mut head)).await.is_ok_and(|n| n == 0) {
            return (next, frames);
        }
        let (message_type, body) = read_frame(&mut peer).await;
        if message_type == SEQ_TYPE {
            let seq = u32::from_be_bytes(body[..4].try_into().unwrap());
            assert_eq!(seq, next, "frames out of order or lost");
            next += 1;
        } else {
            frames.push(message_type);
        }
    }
}

#[tokio::test]
async fn a_send_waits_for_room_and_a_dropped_one_queues_nothing() {
    let (handler, mut seen) = Recorder::silent();
    let server = start_server(demo_server().outbox_capacity(OUTBOX), handler).await;
    let peer = connect(server.local_addr().as_tcp().unwrap()).await;
    let conn = connection_of(&mut seen, peer.local_addr().unwrap()).await;
    let queued = fill(&conn).await;

    // A send that must wait: still waiting while nobody reads.
    let waiting = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(&marker(WAITED)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the send did not wait for room");
    // A send dropped while it waits (cancelled) queues nothing.
    let dropped_marker = marker(DROPPED);
    let dropped = tokio::time::timeout(Duration::from_millis(50), conn.send(&dropped_marker));
    assert!(dropped.await.is_err(), "the outbox had room again");

    // The peer reads everything: every queued frame in order, then the waited one, and
    // never the dropped one. Closing after the waited send ends the stream.
    let reading = tokio::spawn(read_all(peer));
    within(waiting)
        .await
        .expect("the waiting send's task")
        .expect("the waiting send succeeds once there is room");
    conn.close();
    let (seqs, others) = within(reading).await.expect("the reader");
    assert_eq!(seqs, queued, "every frame accepted was delivered");
    assert_eq!(others, vec![WAITED], "the dropped send queued nothing");
}

#[tokio::test]
async fn waiting_senders_are_served_in_order_and_one_that_gives_up_leaves_its_room() {
    let (handler, mut seen) = Recorder::silent();
    let server = start_server(demo_server().outbox_capacity(OUTBOX), handler).await;
    let peer = connect(server.local_addr().as_tcp().unwrap()).await;
    let conn = connection_of(&mut seen, peer.local_addr().unwrap()).await;
    let queued = fill(&conn).await;

    // Three senders join the line in turn (each polled once: it found no room and waits).
    let (first, gives_up, third) = (marker(FIRST), marker(GIVES_UP), marker(THIRD));
    let mut first = Box::pin(conn.send(&first));
    let mut gives_up = Box::pin(conn.send(&gives_up));
    let mut third = Box::pin(conn.send(&third));
    for waiter in [first.as_mut(), gives_up.as_mut(), third.as_mut()] {
        assert!(
            futures::poll!(waiter).is_pending(),
            "a send did not wait for room"
        );
    }
    // While they wait, a sender that does not wait finds no room, even for a small frame.
    assert!(matches!(
        conn.try_send(&seq_msg(u32::MAX, 0)),
        Err(SendError::QueueFull { .. })
    ));
    drop(gives_up);

    // The peer reads: the numbered frames, then the waiters' in the order they joined.
    let reading = tokio::spawn(read_all(peer));
    within(first).await.expect("the first waiter is served");
    within(third).await.expect("the third waiter is served");
    // Once everything is written, the whole budget is free again: a frame as large as the
    // outbox is accepted (the one that gave up left nothing held).
    let whole = seq_msg(queued, OUTBOX - 7);
    within(async {
        while let Err(err) = conn.try_send(&whole) {
            assert!(matches!(err, SendError::QueueFull { .. }), "{err}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    conn.close();
    let (seqs, others) = within(reading).await.expect("the reader");
    assert_eq!(
        seqs,
        queued + 1,
        "every numbered frame accepted was delivered"
    );
    assert_eq!(
        others,
        vec![FIRST, THIRD],
        "served in order, the one that gave up never"
    );
}
