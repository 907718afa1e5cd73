//! Keepalive and auto-reply, generic (not OpenFlow): a quiet peer is probed after `idle` and
//! dropped after `timeout` more, on tokio's paused clock; an auto-reply rule answers matching
//! frames at once and the application never sees them.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{connect, read_frame, within_real, write_raw};
use ltprotocol::{
    DisconnectReason, Event, Frame, HeaderLayout, Keepalive, MessageType, Server, TimeoutKind,
    Unknown,
};

fn probe() -> Keepalive {
    Keepalive {
        idle: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        probe: Frame::new(MessageType::new(9), Bytes::from_static(b"ping")),
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_peer_is_probed_then_dropped_on_the_paused_clock() {
    let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
        .keepalive(probe())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let mut peer = within_real(connect(server.local_addr().as_tcp().unwrap())).await;
    let started = tokio::time::Instant::now();
    // Five (paused) seconds of silence bring the probe.
    let (message_type, body) = within_real(read_frame(&mut peer)).await;
    assert_eq!((message_type, &body[..]), (9, &b"ping"[..]));
    assert!(started.elapsed() >= Duration::from_secs(5));
    let reason = within_real(async {
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
                kind: TimeoutKind::Keepalive,
                after,
            } if after == Duration::from_secs(10)
        ),
        "{reason:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(10));
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn an_answering_peer_stays_across_many_probes_on_the_paused_clock() {
    let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
        .keepalive(probe())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let mut peer = within_real(connect(server.local_addr().as_tcp().unwrap())).await;
    for _ in 0..5 {
        let (message_type, _) = within_real(read_frame(&mut peer)).await;
        assert_eq!(message_type, 9);
        write_raw(&mut peer, b"\x00\x03\x0a").await;
    }
    assert_eq!(server.len(), 1);
    // The answers were delivered as ordinary messages; no disconnect came before them.
    for _ in 0..5 {
        match within_real(events.next()).await {
            Some(Event::Connected(_)) => {}
            Some(Event::Message { message, .. }) => {
                assert_eq!(message.message_type, MessageType::new(10))
            }
            other => panic!("{other:?}"),
        }
    }
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn auto_reply_answers_at_once_and_the_application_never_sees_the_request() {
    let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
        .auto_reply(|frame: ltprotocol::FrameRef<'_>| {
            (frame.message_type == MessageType::new(2)).then(|| Frame {
                message_type: MessageType::new(3),
                fields: frame.fields.clone(),
                body: bytes::Bytes::copy_from_slice(frame.body),
            })
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let mut peer = connect(server.local_addr().as_tcp().unwrap()).await;
    write_raw(&mut peer, b"\x00\x05\x02hi\x00\x04\x01!").await;
    let (message_type, body) = read_frame(&mut peer).await;
    assert_eq!((message_type, &body[..]), (3, &b"hi"[..]));
    // The sentinel (type 1) is the first message the application sees.
    let first = common::within(async {
        loop {
            if let Some(Event::Message { message, .. }) = events.next().await {
                return message;
            }
        }
    })
    .await;
    assert_eq!(first.message_type, MessageType::new(1));
    server.shutdown(Duration::from_secs(5)).await;
}
