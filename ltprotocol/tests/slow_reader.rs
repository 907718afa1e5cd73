//! A client that stops reading is dropped as a slow reader when a broadcast finds its outbox
//! full, while a client that reads keeps receiving every broadcast, in order.

mod common;

use std::time::Duration;

use common::{
    NumMsg, Recorder, SEQ_TYPE, Seen, connect, demo_server, hang_up_on_eof, read_frame, seq_msg,
    start_server, until, within,
};
use ltprotocol::DisconnectReason;
use tokio::sync::watch;

const OUTBOX: usize = 64 * 1024;
/// Body padding of each broadcast frame: 8 KiB frames fill kernel buffers and the outbox in
/// hundreds of broadcasts rather than hundreds of thousands.
const PAD: usize = 8 * 1024 - 7;
/// At most this many broadcasts are unread by the reading client at any time, so its outbox
/// (never more than `WINDOW` frames) cannot fill, however slowly its task is scheduled.
const WINDOW: u32 = 4;
/// Bounds the test if the slow reader were never dropped.
const MAX_BROADCASTS: u32 = 50_000;
/// Broadcasts after the slow reader was dropped.
const AFTER: u32 = 20;

#[tokio::test]
async fn slow_reader_is_dropped_while_others_keep_receiving() {
    // The window keeps the reading client's outbox far below its capacity.
    const _: () = assert!(WINDOW as usize * (PAD + 7) * 2 <= OUTBOX);

    let (handler, mut seen) = Recorder::silent();
    let server = start_server(demo_server().outbox_capacity(OUTBOX), handler).await;
    let slow = connect(server.local_addr().as_tcp().unwrap()).await;
    let slow_peer = slow.local_addr().unwrap();
    let mut reader = connect(server.local_addr().as_tcp().unwrap()).await;
    let reader_peer = reader.local_addr().unwrap();
    until(|| server.len() == 2).await;

    // The reading client: checks every sequence number in turn and acknowledges it; stops
    // at the end marker (a NumMsg carrying how many came before it).
    let (acked_tx, mut acked) = watch::channel(0u32);
    let reading = tokio::spawn(async move {
        let mut next = 0u32;
        loop {
            let (message_type, body) = read_frame(&mut reader).await;
            if message_type == 1 {
                let end = u32::from_be_bytes(body.as_slice().try_into().unwrap());
                assert_eq!(end, next, "end marker after {next} broadcasts");
                return (next, reader);
            }
            assert_eq!(message_type, SEQ_TYPE);
            assert_eq!(body.len(), 4 + PAD);
            let seq = u32::from_be_bytes(body[..4].try_into().unwrap());
            assert_eq!(seq, next, "broadcasts out of order or lost");
            next += 1;
            acked_tx.send_replace(next);
        }
    });

    let mut seq = 0u32;
    let mut dropped = None;
    while dropped.is_none() {
        assert!(
            seq < MAX_BROADCASTS,
            "the slow reader was not dropped after {seq} broadcasts"
        );
        within(acked.wait_for(|acked| acked + WINDOW > seq))
            .await
            .expect("reader ended early");
        let reached = server.broadcast(&seq_msg(seq, PAD)).unwrap();
        assert!((1..=2).contains(&reached), "{reached}");
        seq += 1;
        while let Ok(event) = seen.try_recv() {
            if let Seen::Disconnected(conn, reason) = event {
                assert_eq!(
                    conn.peer().as_tcp(),
                    Some(slow_peer),
                    "only the slow reader may be dropped"
                );
                dropped = Some(reason);
            }
        }
    }
    let reason = dropped.unwrap();
    assert!(
        matches!(reason, DisconnectReason::SlowReader { capacity: OUTBOX }),
        "{reason:?}"
    );
    until(|| server.len() == 1).await;
    assert_eq!(server.connections()[0].peer().as_tcp(), Some(reader_peer));

    // The reader keeps receiving, in order, without a gap.
    for _ in 0..AFTER {
        within(acked.wait_for(|acked| acked + WINDOW > seq))
            .await
            .expect("reader ended early");
        assert_eq!(server.broadcast(&seq_msg(seq, PAD)).unwrap(), 1);
        seq += 1;
    }
    assert_eq!(server.broadcast(&NumMsg { num: seq }).unwrap(), 1);
    let (received, reader) = within(reading).await.unwrap();
    assert_eq!(received, seq);
    assert!(seq > AFTER);

    drop(slow);
    hang_up_on_eof(reader);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.forced, 0);
}
