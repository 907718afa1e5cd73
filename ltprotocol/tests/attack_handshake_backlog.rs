//! A peer that answers HELLO, then streams frames with other xids while the handshake waits
//! for its FEATURES_REPLY, cannot make the server set aside more than the handshake's
//! backlog: the handshake fails with `BacklogFull` after 1,024 frames, the peer is cut off,
//! and a well-behaved switch connecting meanwhile completes its handshake.

mod common;

use std::time::Duration;

use common::{within, write_raw};
use ltprotocol::openflow::{self, OpenFlow13};
use ltprotocol::{DisconnectReason, Event, HandshakeError, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// OpenFlow 1.3 HELLO, xid 1.
const HELLO: [u8; 8] = [0x04, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01];

/// Reads one OpenFlow frame: (type, xid, body).
async fn read_openflow(stream: &mut TcpStream) -> (u8, u32, Vec<u8>) {
    let mut header = [0u8; 8];
    within(stream.read_exact(&mut header)).await.unwrap();
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0u8; len - 8];
    within(stream.read_exact(&mut body)).await.unwrap();
    let xid = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (header[1], xid, body)
}

/// Connects as a switch: takes the controller's HELLO, answers with its own, and returns
/// the xid of the FEATURES_REQUEST that follows.
async fn hello(addr: std::net::SocketAddr) -> (TcpStream, u32) {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    let (hello_type, _, _) = read_openflow(&mut stream).await;
    assert_eq!(hello_type, 0, "HELLO first");
    write_raw(&mut stream, &HELLO).await;
    let (features_type, xid, _) = read_openflow(&mut stream).await;
    assert_eq!(features_type, 5, "then FEATURES_REQUEST");
    (stream, xid)
}

/// A FEATURES_REPLY for `xid`, datapath id 0xa1.
fn features_reply(xid: u32) -> Vec<u8> {
    let mut frame = vec![0x04, 0x06, 0x00, 0x20];
    frame.extend_from_slice(&xid.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xa1]);
    frame.extend_from_slice(&[0, 0, 0, 0, 0xfe, 0, 0, 0, 0, 0, 0, 0x4f, 0, 0, 0, 0]);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_streaming_during_the_handshake_is_cut_off_at_the_backlog() {
    // Past the point where a bounded server has long closed the connection (1,024 frames of
    // 8 bytes, plus what the kernels buffer): an unbounded one reads all of it.
    const FLOOD_LIMIT: usize = 48 * 1024 * 1024;
    let mut builder = openflow::controller::<Server<OpenFlow13>>();
    // Long enough that only the backlog can end the attack within it.
    builder.handshake_timeout(Duration::from_secs(60));
    let server = within(builder.bind("127.0.0.1:0")).await.unwrap();
    let addr = server.local_addr().as_tcp().unwrap();
    let mut events = server.events();

    let (mut attacker, request_xid) = hello(addr).await;
    let flood = tokio::spawn(async move {
        // PACKET_IN headers with an xid that never answers the request, in 64 KiB writes.
        let other_xid = request_xid.wrapping_add(1000).max(1).to_be_bytes();
        let frame = [
            0x04,
            0x0a,
            0x00,
            0x08,
            other_xid[0],
            other_xid[1],
            other_xid[2],
            other_xid[3],
        ];
        let chunk: Vec<u8> = frame.iter().copied().cycle().take(64 * 1024).collect();
        let mut written = 0;
        while written < FLOOD_LIMIT {
            match attacker.write_all(&chunk).await {
                Ok(()) => written += chunk.len(),
                Err(_) => break,
            }
        }
        written
    });

    // A switch that behaves completes its handshake meanwhile.
    let (mut good, xid) = hello(addr).await;
    write_raw(&mut good, &features_reply(xid)).await;

    let mut good_connected = false;
    let mut attacker_reason = None;
    within(async {
        while !good_connected || attacker_reason.is_none() {
            match events.next().await.expect("events ended") {
                Event::Connected(conn) => {
                    let info = conn.handshake_output::<openflow::SwitchInfo>().unwrap();
                    assert_eq!(info.datapath_id, Some(0xa1));
                    good_connected = true;
                }
                Event::Disconnected { reason, .. } => attacker_reason = Some(reason),
                _ => {}
            }
        }
    })
    .await;
    let written = within(flood).await.unwrap();
    assert!(
        written < FLOOD_LIMIT,
        "the server kept reading: {written} bytes taken during the handshake"
    );
    let Some(DisconnectReason::Handshake(err)) = attacker_reason else {
        panic!("expected a failed handshake, got {attacker_reason:?}");
    };
    assert!(
        matches!(
            *err,
            HandshakeError::BacklogFull {
                frames: 1025,
                max_frames: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    // The good switch is still served.
    assert_eq!(server.len(), 1);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_backlog_is_bounded_in_bytes_too() {
    let mut builder = openflow::controller::<Server<OpenFlow13>>();
    builder.handshake_backlog(ltprotocol::HandshakeBacklog {
        frames: 100_000,
        bytes: 64 * 1024,
    });
    let server = within(builder.bind("127.0.0.1:0")).await.unwrap();
    let mut events = server.events();
    let (mut attacker, request_xid) = hello(server.local_addr().as_tcp().unwrap()).await;
    // PACKET_INs of 1,008 bytes with another xid: the 66th passes 64 KiB.
    let mut frame = vec![0x04, 0x0a, 0x03, 0xf0];
    frame.extend_from_slice(&request_xid.wrapping_add(1).max(1).to_be_bytes());
    frame.resize(1008, 0x55);
    for _ in 0..66 {
        write_raw(&mut attacker, &frame).await;
    }
    let reason = within(async {
        loop {
            if let Event::Disconnected { reason, .. } = events.next().await.expect("ended") {
                return reason;
            }
        }
    })
    .await;
    let DisconnectReason::Handshake(err) = reason else {
        panic!("expected a failed handshake, got {reason:?}");
    };
    assert!(
        matches!(
            *err,
            HandshakeError::BacklogFull {
                frames: 66,
                bytes: 66_528,
                max_bytes: 65_536,
                ..
            }
        ),
        "{err:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}
