//! A server's graceful shutdown writes everything queued before closing, and a client that
//! does not read cannot hold it past its deadline.

mod common;

use std::time::Duration;

use common::{
    NumMsg, Recorder, connect, connection_of, demo_server, expect_closed, read_num, read_seq,
    seq_msg, start_server, within, write_raw,
};
use tokio::net::TcpSocket;

const QUEUED: u32 = 1_000;

#[tokio::test]
async fn shutdown_writes_every_queued_frame_before_closing() {
    let (handler, mut seen) = Recorder::silent();
    let server = start_server(&demo_server(), handler).await;
    let mut client = connect(server.local_addr().as_tcp().unwrap()).await;
    let conn = connection_of(&mut seen, client.local_addr().unwrap()).await;

    for num in 0..QUEUED {
        within(server.send_to(conn.id(), &NumMsg { num }))
            .await
            .unwrap();
    }
    let reading = tokio::spawn(async move {
        for num in 0..QUEUED {
            assert_eq!(read_num(&mut client).await, num);
        }
        expect_closed(&mut client).await;
    });
    let report = within(server.shutdown(Duration::from_secs(10))).await;
    within(reading).await.unwrap();
    assert_eq!(report.connections, 1);
    assert_eq!(report.forced, 0);
    assert_eq!(report.unsent_frames, 0);
    assert!(server.is_empty());
    assert!(!conn.is_connected());
}

#[tokio::test]
async fn shutdown_drains_a_backlog_the_client_reads_only_afterwards() {
    // 1,000 frames of 8 KiB: more than the kernel buffers hold, so most are still in the
    // outbox when shutdown begins; the client starts reading only then.
    const PAD: usize = 8 * 1024 - 7;
    let (handler, mut seen) = Recorder::silent();
    let server = start_server(demo_server().outbox_capacity(16 << 20), handler).await;
    let mut client = connect(server.local_addr().as_tcp().unwrap()).await;
    let conn = connection_of(&mut seen, client.local_addr().unwrap()).await;

    for seq in 0..QUEUED {
        within(server.send_to(conn.id(), &seq_msg(seq, PAD)))
            .await
            .unwrap();
    }
    let shutting_down = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown(Duration::from_secs(20)).await }
    });
    common::until(|| server.is_shut_down()).await;
    // New frames are refused once shutdown has begun.
    assert!(matches!(
        conn.send(&NumMsg { num: 0 }).await,
        Err(ltprotocol::SendError::Closed { .. })
    ));
    for seq in 0..QUEUED {
        assert_eq!(read_seq(&mut client).await, seq);
    }
    expect_closed(&mut client).await;
    drop(client);
    let report = within(shutting_down).await.unwrap();
    assert_eq!(report.connections, 1);
    assert_eq!(report.forced, 0);
    assert_eq!(report.unsent_frames, 0);
}

/// The most payload the kernel can hold for one loopback connection whose receiver's buffer
/// is `rcvbuf` bytes: the sender's largest send buffer plus the receive buffer (doubled by
/// Linux), generously.
fn kernel_capacity(rcvbuf: usize) -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(16 << 20);
    let core_wmem_max = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(16 << 20);
    wmem_max.max(core_wmem_max) + 4 * rcvbuf
}

#[tokio::test]
async fn shutdown_forces_a_client_that_never_reads_at_the_deadline() {
    const RCVBUF: u32 = 64 * 1024;
    const PAD: usize = 60 * 1024;
    // Twice what the kernel can absorb: whatever it takes, frames stay queued.
    let backlog = 2 * kernel_capacity(RCVBUF as usize);
    let frames = u32::try_from(backlog / PAD + 1).unwrap();

    let (handler, mut seen) = Recorder::silent();
    let server = start_server(demo_server().outbox_capacity(backlog + (1 << 20)), handler).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(RCVBUF).unwrap();
    let client = within(socket.connect(server.local_addr().as_tcp().unwrap()))
        .await
        .unwrap();
    let conn = connection_of(&mut seen, client.local_addr().unwrap()).await;

    for seq in 0..frames {
        // The outbox holds the whole backlog: this never waits for room.
        within(server.send_to(conn.id(), &seq_msg(seq, PAD)))
            .await
            .unwrap();
    }
    let report = within(server.shutdown(Duration::from_secs(1))).await;
    assert_eq!(report.connections, 1);
    assert_eq!(report.forced, 1);
    assert!(
        report.unsent_frames > 0 && report.unsent_frames <= frames as usize,
        "{report:?}"
    );
    assert!(server.is_empty());
    assert!(!conn.is_connected());
    drop(client);
}

#[tokio::test]
async fn shutdown_keeps_its_deadline_when_nobody_reads_the_event_stream() {
    let mut builder = common::demo_server();
    builder.event_capacity(1);
    let (server, events) = common::start_event_server(&builder).await;
    let mut peer = connect(server.local_addr().as_tcp().unwrap()).await;
    for num in 0..5 {
        write_raw(&mut peer, &common::num_bytes(num)).await;
    }
    // The stream holds one event; the connection's callbacks now wait for room forever.
    common::until(|| server.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = within(server.shutdown(Duration::from_millis(300))).await;
    assert_eq!(report.forced, 1);
    drop(events);
}

#[tokio::test]
async fn client_close_keeps_its_deadline_when_nobody_reads_the_event_stream() {
    let (socket, addr) = common::refusing_addr();
    let mut builder = common::demo_client();
    builder.event_capacity(1).backoff(ltprotocol::Backoff {
        initial: Duration::from_millis(10),
        ..ltprotocol::Backoff::default()
    });
    let (client, events) = builder.connect(addr.to_string());
    client.send(&NumMsg { num: 1 }).await.unwrap();
    // Failed attempts fill the one-event stream; the client's callbacks then wait for room.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = within(client.close(Duration::from_millis(300))).await;
    assert!(!report.graceful);
    assert_eq!(report.unsent_frames, 1);
    drop((events, socket));
}
