//! `ConnectionHandle::send` against a full outbox: it waits until the peer reads, and a send
//! dropped while waiting queues nothing. Every frame accepted is delivered, in order.

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

fn marker(message_type: u8) -> Unknown {
    Unknown {
        message_type: MessageType::new(i128::from(message_type)),
        body: vec![message_type; PAD].into(),
    }
}

#[tokio::test]
async fn a_send_waits_for_room_and_a_dropped_one_queues_nothing() {
    let (handler, mut seen) = Recorder::silent();
    let server = start_server(demo_server().outbox_capacity(OUTBOX), handler).await;
    let mut peer = connect(server.local_addr().as_tcp().unwrap()).await;
    let conn = connection_of(&mut seen, peer.local_addr().unwrap()).await;

    // The peer does not read: queue until the outbox stays full (the kernel's buffers fill
    // first, then the outbox).
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
    let reading = tokio::spawn(async move {
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
    });
    within(waiting)
        .await
        .expect("the waiting send's task")
        .expect("the waiting send succeeds once there is room");
    conn.close();
    let (seqs, others) = within(reading).await.expect("the reader");
    assert_eq!(seqs, queued, "every frame accepted was delivered");
    assert_eq!(others, vec![WAITED], "the dropped send queued nothing");
}
