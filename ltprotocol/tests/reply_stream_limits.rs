//! A reply stream is bounded: in parts and bytes, and in time as a whole, not only part by
//! part. One the application holds without polling never stalls its connection: reading,
//! delivery and everything else go on. A scripted peer plays the other side.

mod common;

use std::time::Duration;

use common::within;
use ltprotocol::{
    Correlation, Event, EventStream, HeaderLayout, Int, MessageType, RequestError, Server, Unknown,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `u16` length, `u8` type, `u32` seq: the correlation field.
fn layout() -> HeaderLayout {
    HeaderLayout::builder()
        .length(0, Int::U16)
        .message_type(2, Int::U8)
        .field("seq", 3, Int::U32)
        .build()
        .unwrap()
}

fn frame(message_type: u8, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(7 + body.len()).unwrap();
    let mut wire = len.to_be_bytes().to_vec();
    wire.push(message_type);
    wire.extend_from_slice(&seq.to_be_bytes());
    wire.extend_from_slice(body);
    wire
}

async fn read_frame(stream: &mut TcpStream) -> (u8, u32, Vec<u8>) {
    let mut header = [0u8; 7];
    within(stream.read_exact(&mut header)).await.unwrap();
    let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let mut body = vec![0u8; len - 7];
    within(stream.read_exact(&mut body)).await.unwrap();
    let seq = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    (header[2], seq, body)
}

/// Parts are type 2; the last one's body is "last".
fn is_last(frame: &ltprotocol::Frame) -> bool {
    &frame.body[..] == b"last"
}

/// A server correlating on `seq` with the given stream limits, a connected raw peer, and the
/// server's handle on that peer.
async fn setup(
    correlation: impl FnOnce(&mut Correlation),
) -> (
    Server<Unknown>,
    EventStream<Unknown>,
    TcpStream,
    ltprotocol::ConnectionHandle,
) {
    let layout = layout();
    let mut xid = Correlation::new(&layout, "seq").unwrap();
    correlation(&mut xid);
    let server = within(
        Server::<Unknown>::builder(layout)
            .correlation(xid)
            .bind("127.0.0.1:0"),
    )
    .await
    .unwrap();
    let mut events = server.events();
    let peer = within(TcpStream::connect(server.local_addr().as_tcp().unwrap()))
        .await
        .unwrap();
    let Some(Event::Connected(conn)) = within(events.next()).await else {
        panic!("expected a connection");
    };
    (server, events, peer, conn)
}

fn ask() -> Unknown {
    Unknown {
        message_type: MessageType::new(1),
        body: "dump".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_nobody_polls_does_not_stall_the_connection_and_stops_at_its_part_limit() {
    const PARTS: u32 = 5_000;
    const LIMIT: usize = 1_000;
    let (server, mut events, mut peer, conn) = setup(|xid| xid.max_stream_parts = LIMIT).await;
    let mut stream = within(conn.request_stream(&ask(), is_last)).await.unwrap();
    let (request_type, seq, _) = read_frame(&mut peer).await;
    assert_eq!(request_type, 1);

    // Far more parts than the stream takes, then an unrelated sentinel (seq 0).
    let mut wire = Vec::new();
    for part in 0..PARTS {
        wire.extend_from_slice(&frame(2, seq, &part.to_be_bytes()));
    }
    wire.extend_from_slice(&frame(7, 0, b"sentinel"));
    let writer = tokio::spawn(async move {
        peer.write_all(&wire).await.unwrap();
        peer
    });

    // The stream is not polled; the connection still delivers everything past its limit,
    // in order, then the sentinel.
    let mut ordinary = Vec::new();
    within(async {
        loop {
            match events.next().await.expect("events ended") {
                Event::Message { message, .. } if message.message_type == MessageType::new(7) => {
                    break;
                }
                Event::Message { message, .. } => {
                    ordinary.push(u32::from_be_bytes(message.body[..4].try_into().unwrap()));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    let past_limit: Vec<u32> = (LIMIT as u32..PARTS).collect();
    assert_eq!(ordinary, past_limit);

    // The stream kept the parts within its limit, then says why it ended.
    for part in 0..LIMIT as u32 {
        let got = within(stream.next()).await.unwrap().unwrap();
        assert_eq!(got.body[..], part.to_be_bytes());
    }
    let end = within(stream.next()).await.unwrap();
    assert!(
        matches!(
            end,
            Err(RequestError::StreamTooLarge {
                parts: 1_001,
                max_parts: LIMIT,
                ..
            })
        ),
        "{end:?}"
    );
    assert!(within(stream.next()).await.is_none());
    drop(within(writer).await.unwrap());
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_bounded_in_bytes() {
    let (server, _events, mut peer, conn) = setup(|xid| xid.max_stream_bytes = 10_000).await;
    let mut stream = within(conn.request_stream(&ask(), is_last)).await.unwrap();
    let (_, seq, _) = read_frame(&mut peer).await;
    for _ in 0..3 {
        within(peer.write_all(&frame(2, seq, &[0x42; 4_000])))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        within(stream.next()).await.unwrap().unwrap();
    }
    let end = within(stream.next()).await.unwrap();
    assert!(
        matches!(
            end,
            Err(RequestError::StreamTooLarge {
                parts: 3,
                bytes: 12_000,
                max_bytes: 10_000,
                ..
            })
        ),
        "{end:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_trickles_ends_at_its_overall_deadline() {
    let deadline = Duration::from_secs(1);
    let (server, _events, mut peer, conn) = setup(|xid| {
        xid.timeout = Duration::from_secs(30);
        xid.stream_deadline = deadline;
    })
    .await;
    let mut stream = within(conn.request_stream(&ask(), is_last)).await.unwrap();
    let (_, seq, _) = read_frame(&mut peer).await;
    // A part every 50 ms, each well within the per-part timeout, forever.
    let trickle = tokio::spawn(async move {
        loop {
            if peer.write_all(&frame(2, seq, b"more")).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut parts = 0;
    let end = within(async {
        loop {
            match stream.next().await.expect("ended without a reason") {
                Ok(_) => parts += 1,
                Err(err) => return err,
            }
        }
    })
    .await;
    assert!(parts > 0);
    assert!(
        matches!(end, RequestError::TimedOut { after, .. } if after == deadline),
        "{end:?}"
    );
    trickle.abort();
    server.shutdown(Duration::from_secs(5)).await;
}
