//! A server drops a client that breaks the framing rules, or one past the connection limit,
//! and keeps serving everyone else.

mod common;

use std::time::Duration;

use common::{
    Recorder, connect, demo_server, disconnect_of, expect_closed, hang_up_on_eof, num_bytes,
    read_num, start_server, until, write_raw,
};
use ltprotocol::{DisconnectReason, FrameError};
use tokio::net::TcpStream;

/// Sends `NumMsg { num }` and expects it echoed back.
async fn exchange(stream: &mut TcpStream, num: u32) {
    write_raw(stream, &num_bytes(num)).await;
    assert_eq!(read_num(stream).await, num);
}

#[tokio::test]
async fn length_shorter_than_header_disconnects_with_too_short() {
    let (handler, mut seen) = Recorder::echo();
    let server = start_server(&demo_server(), handler).await;
    let mut good = connect(server.local_addr().as_tcp().unwrap()).await;
    exchange(&mut good, 1).await;

    let mut bad = connect(server.local_addr().as_tcp().unwrap()).await;
    let bad_peer = bad.local_addr().unwrap();
    write_raw(&mut bad, b"\x00\x00\x01").await;
    let reason = disconnect_of(&mut seen, bad_peer).await;
    let DisconnectReason::Protocol(err) = &reason else {
        panic!("expected a protocol error, got {reason:?}");
    };
    assert!(
        matches!(
            **err,
            FrameError::TooShort {
                declared: 0,
                frame_len: 0,
                header_len: 3
            }
        ),
        "{err:?}"
    );
    expect_closed(&mut bad).await;

    exchange(&mut good, 2).await;
    exchange(&mut good, 3).await;
    assert_eq!(server.len(), 1);
    hang_up_on_eof(good);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.connections, report.forced), (1, 0));
}

#[tokio::test]
async fn length_over_max_inbound_disconnects_with_too_long() {
    let (handler, mut seen) = Recorder::echo();
    let server = start_server(demo_server().max_inbound(100), handler).await;
    let mut good = connect(server.local_addr().as_tcp().unwrap()).await;
    exchange(&mut good, 1).await;

    let mut bad = connect(server.local_addr().as_tcp().unwrap()).await;
    let bad_peer = bad.local_addr().unwrap();
    // Declares a 200-byte frame of type 1; no body follows, none is needed to refuse it.
    write_raw(&mut bad, b"\x00\xc8\x01").await;
    let reason = disconnect_of(&mut seen, bad_peer).await;
    let DisconnectReason::Protocol(err) = &reason else {
        panic!("expected a protocol error, got {reason:?}");
    };
    assert!(
        matches!(
            **err,
            FrameError::TooLong {
                declared: 200,
                frame_len: 200,
                max: 100
            }
        ),
        "{err:?}"
    );
    expect_closed(&mut bad).await;

    // A frame of exactly the maximum still passes.
    let body = vec![7u8; 97];
    write_raw(&mut good, &common::frame_bytes(9, &body)).await;
    let (message_type, echoed) = common::read_frame(&mut good).await;
    assert_eq!((message_type, echoed), (9, body));
    exchange(&mut good, 2).await;
    hang_up_on_eof(good);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.connections, report.forced), (1, 0));
}

#[tokio::test]
async fn undecodable_body_disconnects_with_decode_error() {
    let (handler, mut seen) = Recorder::echo();
    let server = start_server(&demo_server(), handler).await;
    let mut good = connect(server.local_addr().as_tcp().unwrap()).await;
    exchange(&mut good, 1).await;

    let mut bad = connect(server.local_addr().as_tcp().unwrap()).await;
    let bad_peer = bad.local_addr().unwrap();
    // A NumMsg (type 1) with a 2-byte body: well framed, but not a u32.
    write_raw(&mut bad, b"\x00\x05\x01\x00\x01").await;
    let reason = disconnect_of(&mut seen, bad_peer).await;
    assert!(matches!(reason, DisconnectReason::Decode(_)), "{reason:?}");
    expect_closed(&mut bad).await;

    exchange(&mut good, 2).await;
    hang_up_on_eof(good);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.connections, report.forced), (1, 0));
}

#[tokio::test]
async fn connection_past_the_limit_is_closed_at_once() {
    let (handler, _seen) = Recorder::echo();
    let server = start_server(demo_server().max_connections(2), handler).await;
    let mut first = connect(server.local_addr().as_tcp().unwrap()).await;
    let mut second = connect(server.local_addr().as_tcp().unwrap()).await;
    exchange(&mut first, 1).await;
    exchange(&mut second, 2).await;
    until(|| server.len() == 2).await;

    let mut third = connect(server.local_addr().as_tcp().unwrap()).await;
    // Written before the refusal may be seen; never answered.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut third, &num_bytes(3)).await;
    expect_closed(&mut third).await;
    assert_eq!(server.refused(), 1);
    assert_eq!(server.len(), 2);

    exchange(&mut first, 4).await;
    exchange(&mut second, 5).await;
    hang_up_on_eof(first);
    hang_up_on_eof(second);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.connections, 2);
    assert_eq!(report.forced, 0);
}
