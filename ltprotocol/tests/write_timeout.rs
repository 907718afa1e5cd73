//! The write timeout is about progress: a peer that reads slowly but steadily receives a
//! frame far larger than what the kernels buffer, however long the whole frame takes; a peer
//! that stops reading is timed out.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::within;
use ltprotocol::{
    DisconnectReason, Event, EventStream, HeaderLayout, Int, MessageType, Server, TimeoutKind,
    Timeouts, Unknown,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Far more than the sender's socket buffer (at most 4 MiB here) and the reader's (64 KiB).
const BIG: usize = 12 * 1024 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A `u32` length, then a `u8` type: room for a 12 MiB frame.
fn layout() -> HeaderLayout {
    HeaderLayout::builder()
        .length(0, Int::U32)
        .message_type(4, Int::U8)
        .build()
        .unwrap()
}

/// A server with a 1 s write timeout that sends a 12 MiB frame, then a one-byte sentinel,
/// to each client as it connects.
async fn big_sender() -> (Server<Unknown>, EventStream<Unknown>) {
    let mut builder = Server::<Unknown>::builder(layout());
    builder.max_outbound(BIG + 5).timeouts(Timeouts {
        write: Some(WRITE_TIMEOUT),
        ..Timeouts::default()
    });
    let server = within(builder.bind("127.0.0.1:0")).await.unwrap();
    let events = server.events();
    (server, events)
}

/// Connects with a 64 KiB receive buffer, so that the reader's pace sets the sender's.
async fn small_window_client(server: &Server<Unknown>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    within(socket.connect(server.local_addr().as_tcp().unwrap()))
        .await
        .unwrap()
}

async fn send_big_then_sentinel(events: &mut EventStream<Unknown>) {
    let Some(Event::Connected(conn)) = within(events.next()).await else {
        panic!("expected a connection");
    };
    tokio::spawn(async move {
        let big = Unknown {
            message_type: MessageType::new(1),
            body: Bytes::from(vec![0x5a; BIG]),
        };
        let sentinel = Unknown {
            message_type: MessageType::new(2),
            body: Bytes::from_static(b"!"),
        };
        let _ = conn.send(&big).await;
        let _ = conn.send(&sentinel).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_reader_receives_a_large_frame_without_a_timeout() {
    let (server, mut events) = big_sender().await;
    let mut client = small_window_client(&server).await;
    send_big_then_sentinel(&mut events).await;
    // 64 KiB every 20 ms, about 3 MB/s: the frame takes seconds beyond the buffers, each
    // write a few milliseconds.
    let mut received = 0usize;
    let mut tail = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let wanted = 5 + BIG + 5 + 1;
    within(async {
        while received < wanted {
            let n = client.read(&mut chunk).await.unwrap();
            assert_ne!(n, 0, "closed after {received} bytes");
            received += n;
            tail.extend_from_slice(&chunk[..n]);
            tail.drain(..tail.len().saturating_sub(6));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(received, wanted);
    // The sentinel came after the frame: nothing timed out in between.
    assert_eq!(tail, b"\x00\x00\x00\x06\x02!");
    assert_eq!(server.len(), 1, "the connection is still up");
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_timed_out() {
    let (server, mut events) = big_sender().await;
    let _client = small_window_client(&server).await;
    send_big_then_sentinel(&mut events).await;
    let reason = within(async {
        loop {
            if let Some(Event::Disconnected { reason, .. }) = events.next().await {
                return reason;
            }
        }
    })
    .await;
    assert!(
        matches!(
            reason,
            DisconnectReason::TimedOut {
                kind: TimeoutKind::Write,
                after: WRITE_TIMEOUT,
            }
        ),
        "{reason:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}
