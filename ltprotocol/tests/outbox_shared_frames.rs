//! A frame encoded once for many connections (a broadcast's) is queued in each outbox as a
//! handle to the one encoding, beside messages encoded into the outbox's own batch: the two
//! kinds count alike against the outbox's bytes, keep their order on the wire, and survive
//! writes that the kernel takes in part.

mod common;

use std::time::Duration;

use common::{
    NumMsg, Recorder, SEQ_TYPE, connect, connection_of, demo_server, read_frame, read_num, seq_msg,
    start_server, within,
};
use ltprotocol::SendError;

/// `NumMsg`'s frame: a 3-byte header and a `u32`.
const NUM_FRAME: usize = 7;

/// On a current-thread runtime the connection's writer runs only when this test awaits, so
/// the outbox fills exactly as the test queues.
#[tokio::test]
async fn shared_and_own_frames_share_the_outbox_bytes_in_order() {
    let (handler, mut seen) = Recorder::silent();
    let capacity = 4 * NUM_FRAME;
    let server = start_server(demo_server().outbox_capacity(capacity), handler).await;
    let mut peer = connect(server.local_addr().as_tcp().unwrap()).await;
    let conn = connection_of(&mut seen, peer.local_addr().unwrap()).await;

    // Nothing is awaited from here until the outbox is full: broadcast frames and messages
    // sent to this connection alone, interleaved.
    assert_eq!(server.broadcast(&NumMsg { num: 1 }).unwrap(), 1);
    conn.try_send(&NumMsg { num: 2 }).unwrap();
    let three = server.encode(&NumMsg { num: 3 }).unwrap();
    conn.try_send_encoded(&three).unwrap();
    conn.try_send(&NumMsg { num: 4 }).unwrap();
    // Four 7-byte frames fill 28 bytes, whichever way each was queued.
    let five = server.encode(&NumMsg { num: 5 }).unwrap();
    assert!(matches!(
        conn.try_send_encoded(&five),
        Err(SendError::QueueFull { capacity: c, .. }) if c == capacity
    ));
    assert!(matches!(
        conn.try_send(&NumMsg { num: 5 }),
        Err(SendError::QueueFull { .. })
    ));

    // Waiting senders are queued behind, in order, as the writer gives the room back.
    let waiting = tokio::spawn({
        let conn = conn.clone();
        async move {
            conn.send_encoded(&five).await?;
            conn.send(&NumMsg { num: 6 }).await
        }
    });
    for num in 1..=6 {
        assert_eq!(read_num(&mut peer).await, num);
    }
    within(waiting).await.unwrap().unwrap();

    // The frames written, the whole room is back: the outbox takes four frames again.
    within(async {
        while conn.try_send(&NumMsg { num: 7 }).is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for num in 8..=10 {
        conn.try_send_encoded(&server.encode(&NumMsg { num }).unwrap())
            .unwrap();
    }
    for num in 7..=10 {
        assert_eq!(read_num(&mut peer).await, num);
    }
    server.shutdown(Duration::from_secs(10)).await;
}

/// The padding of frame `seq`: 0 to 468 bytes.
fn pad_of(seq: u32) -> usize {
    (seq % 37) as usize * 13
}

/// Two peers that stop reading get the same frames, each encoded once and queued to both,
/// interleaved with frames of their own, until the kernel's buffers and the outboxes are full:
/// writes then end in the middle of frames. Once the peers read, each gets every frame
/// whole, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_frames_arrive_whole_and_in_order_after_partial_writes() {
    const FRAMES: u32 = 60_000;
    let (handler, mut seen) = Recorder::silent();
    let server = start_server(demo_server().outbox_capacity(16 * 1024), handler).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let mut peers = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..2 {
        let peer = connect(addr).await;
        conns.push(connection_of(&mut seen, peer.local_addr().unwrap()).await);
        peers.push(peer);
    }

    // Even numbers are shared by both connections, odd ones are each connection's own;
    // bodies of 4 to 472 bytes, so that frames straddle every write boundary and the
    // frames (about 14 MB to each peer) are more than the kernel's buffers hold.
    let sending = tokio::spawn({
        let server = server.clone();
        let conns = conns.clone();
        async move {
            for seq in 0..FRAMES {
                let pad = pad_of(seq);
                if seq % 2 == 0 {
                    let frame = server.encode(&seq_msg(seq, pad)).unwrap();
                    for conn in &conns {
                        conn.send_encoded(&frame).await.unwrap();
                    }
                } else {
                    for conn in &conns {
                        conn.send(&seq_msg(seq, pad)).await.unwrap();
                    }
                }
            }
        }
    });
    // Let the buffers fill before anyone reads.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let readers: Vec<_> = peers
        .into_iter()
        .map(|mut peer| {
            tokio::spawn(async move {
                for seq in 0..FRAMES {
                    let (message_type, body) = read_frame(&mut peer).await;
                    assert_eq!(message_type, SEQ_TYPE);
                    let pad = pad_of(seq);
                    assert_eq!(body.len(), 4 + pad, "frame {seq}");
                    assert_eq!(body[..4], seq.to_be_bytes(), "frame {seq}");
                }
            })
        })
        .collect();
    within(sending).await.unwrap();
    for reader in readers {
        within(reader).await.unwrap();
    }
    server.shutdown(Duration::from_secs(10)).await;
}
