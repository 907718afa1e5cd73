//! Slow-trickle and vanished peers: 200 connections that each declare a 16 MiB frame and send
//! a byte a second are all closed by the frame read timeout, while the server's memory stays
//! far below what they declared; a peer that stops talking is shed by the idle timeout or the
//! keepalive.

mod common;

use std::time::Duration;

use common::{connect, expect_closed, num_bytes, rss_bytes, within, write_raw};
use ltprotocol::{
    DisconnectReason, Event, Frame, HeaderLayout, Int, Keepalive, MessageType, Server, TimeoutKind,
    Timeouts, Unknown,
};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_peers_are_closed_by_the_frame_read_timeout_with_bounded_memory() {
    const PEERS: usize = 200;
    const DECLARED: u32 = 16 * 1024 * 1024;
    let layout = HeaderLayout::builder()
        .length(0, Int::U32)
        .message_type(4, Int::U8)
        .build()
        .unwrap();
    let server = Server::<Unknown>::builder(layout)
        .max_inbound(DECLARED as usize)
        .timeouts(Timeouts {
            frame_read: Some(Duration::from_secs(3)),
            ..Timeouts::default()
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let addr = server.local_addr().as_tcp().unwrap();
    let before = rss_bytes();

    let mut peers = Vec::with_capacity(PEERS);
    for _ in 0..PEERS {
        let mut stream = connect(addr).await;
        let mut header = DECLARED.to_be_bytes().to_vec();
        header.push(1);
        write_raw(&mut stream, &header).await;
        peers.push(stream);
    }
    // A byte a second from everyone, until the server has closed them all.
    let trickle = tokio::spawn(async move {
        for _ in 0..10 {
            for stream in &mut peers {
                let _ = stream.write_all(&[0x41]).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        peers
    });

    let mut closed = 0;
    let mut peak = 0;
    while closed < PEERS {
        match within(events.next()).await.expect("events") {
            Event::Disconnected { reason, .. } => {
                assert!(
                    matches!(
                        reason,
                        DisconnectReason::TimedOut {
                            kind: TimeoutKind::FrameRead,
                            ..
                        }
                    ),
                    "{reason:?}"
                );
                closed += 1;
            }
            Event::Message { message, .. } => panic!("delivered {message:?}"),
            _ => {}
        }
        peak = peak.max(rss_bytes());
    }
    let grown = peak.saturating_sub(before);
    // Declared: 200 × 16 MiB = 3.2 GiB. Held: a small read buffer and the task per peer.
    eprintln!("rss before {before}, peak {peak}: grew {grown} bytes for {PEERS} trickling peers");
    assert!(
        grown < 64 * 1024 * 1024,
        "memory grew by {grown} bytes for {PEERS} trickling peers"
    );
    let mut peers = within(trickle).await.unwrap();
    for stream in &mut peers {
        expect_closed(stream).await;
    }
    assert_eq!(server.len(), 0);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_peer_that_goes_quiet_is_shed_by_the_idle_timeout() {
    let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
        .timeouts(Timeouts {
            idle: Some(Duration::from_millis(500)),
            ..Timeouts::default()
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let mut quiet = connect(server.local_addr().as_tcp().unwrap()).await;
    write_raw(&mut quiet, &num_bytes(1)).await;
    let reason = loop {
        if let Event::Disconnected { reason, .. } = within(events.next()).await.unwrap() {
            break reason;
        }
    };
    assert!(
        matches!(
            reason,
            DisconnectReason::TimedOut {
                kind: TimeoutKind::Idle,
                ..
            }
        ),
        "{reason:?}"
    );
    expect_closed(&mut quiet).await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_peer_that_ignores_keepalive_probes_is_disconnected() {
    let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
        .keepalive(Keepalive {
            idle: Duration::from_millis(300),
            timeout: Duration::from_millis(300),
            probe: Frame::new(MessageType::new(9), bytes::Bytes::from_static(b"ping")),
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let mut silent = connect(server.local_addr().as_tcp().unwrap()).await;
    // The probe arrives; we never answer.
    let (message_type, body) = common::read_frame(&mut silent).await;
    assert_eq!((message_type, &body[..]), (9, &b"ping"[..]));
    let reason = loop {
        if let Event::Disconnected { reason, .. } = within(events.next()).await.unwrap() {
            break reason;
        }
    };
    assert!(
        matches!(
            reason,
            DisconnectReason::TimedOut {
                kind: TimeoutKind::Keepalive,
                ..
            }
        ),
        "{reason:?}"
    );

    // A peer that answers probes (with anything) stays.
    let mut lively = connect(server.local_addr().as_tcp().unwrap()).await;
    for _ in 0..3 {
        let (message_type, _) = common::read_frame(&mut lively).await;
        assert_eq!(message_type, 9);
        write_raw(&mut lively, &num_bytes(0)).await;
    }
    assert_eq!(server.len(), 1);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_by_the_write_timeout() {
    let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
        .outbox_capacity(64 * 1024 * 1024)
        .timeouts(Timeouts {
            write: Some(Duration::from_millis(500)),
            ..Timeouts::default()
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let _stuck = connect(server.local_addr().as_tcp().unwrap()).await;
    let conn = loop {
        if let Event::Connected(conn) = within(events.next()).await.unwrap() {
            break conn;
        }
    };
    let big = Unknown {
        message_type: MessageType::new(1),
        body: vec![0u8; 60_000].into(),
    };
    // Far more than the kernel's socket buffers hold: the writer stalls, then times out.
    for _ in 0..500 {
        if conn.try_send(&big).is_err() {
            break;
        }
    }
    let reason = loop {
        if let Event::Disconnected { reason, .. } = within(events.next()).await.unwrap() {
            break reason;
        }
    };
    assert!(
        matches!(
            reason,
            DisconnectReason::TimedOut {
                kind: TimeoutKind::Write,
                ..
            }
        ),
        "{reason:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}
