//! Both application styles, a `Handler` and an event stream, hear each connection's
//! `connected`, messages and `disconnected` in order; a panicking handler ends its own
//! connection only.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    Demo, NumMsg, PANIC_NUM, Recorder, Seen, connect, demo_client, demo_server, disconnect_of,
    expect_closed, hang_up_on_eof, next_seen, num_bytes, read_num, start_event_server,
    start_server, within, write_raw,
};
use ltprotocol::{
    Backoff, ConnectionHandle, DisconnectReason, Event, Handler, HeaderFields, MessageType, Unknown,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

async fn exchange(stream: &mut TcpStream, num: u32) {
    write_raw(stream, &num_bytes(num)).await;
    assert_eq!(read_num(stream).await, num);
}

#[tokio::test]
async fn panicking_handler_ends_only_its_connection() {
    let (handler, mut seen) = Recorder::echo();
    let server = start_server(&demo_server(), handler).await;
    let mut doomed = connect(server.local_addr().as_tcp().unwrap()).await;
    let mut other = connect(server.local_addr().as_tcp().unwrap()).await;
    exchange(&mut doomed, 1).await;
    exchange(&mut other, 2).await;

    write_raw(&mut doomed, &num_bytes(PANIC_NUM)).await;
    let reason = disconnect_of(&mut seen, doomed.local_addr().unwrap()).await;
    assert!(
        matches!(reason, DisconnectReason::HandlerPanicked),
        "{reason:?}"
    );
    expect_closed(&mut doomed).await;

    exchange(&mut other, 3).await;
    let mut late = connect(server.local_addr().as_tcp().unwrap()).await;
    exchange(&mut late, 4).await;
    exchange(&mut other, 5).await;
    assert_eq!(server.len(), 2);
    hang_up_on_eof(other);
    hang_up_on_eof(late);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.connections, report.forced), (2, 0));
}

/// Echoes, but panics in `connected` for the first connection.
struct PanicOnFirstConnect {
    panicked: AtomicBool,
    disconnects: mpsc::UnboundedSender<DisconnectReason>,
}

impl Handler<Demo> for PanicOnFirstConnect {
    async fn connected(&self, _conn: &ConnectionHandle) {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("test handler panics on its first connection, as asked");
        }
    }

    async fn message(&self, conn: &ConnectionHandle, message: Demo, _fields: &HeaderFields) {
        let _ = conn.send(&message).await;
    }

    async fn disconnected(&self, _conn: &ConnectionHandle, reason: &DisconnectReason) {
        let _ = self.disconnects.send(reason.clone());
    }
}

#[tokio::test]
async fn panic_in_connected_ends_that_connection_only() {
    let (tx, mut disconnects) = mpsc::unbounded_channel();
    let handler = PanicOnFirstConnect {
        panicked: AtomicBool::new(false),
        disconnects: tx,
    };
    let server = start_server(&demo_server(), handler).await;
    let mut first = connect(server.local_addr().as_tcp().unwrap()).await;
    let reason = within(disconnects.recv()).await.unwrap();
    assert!(
        matches!(reason, DisconnectReason::HandlerPanicked),
        "{reason:?}"
    );
    expect_closed(&mut first).await;

    let mut second = connect(server.local_addr().as_tcp().unwrap()).await;
    exchange(&mut second, 1).await;
    hang_up_on_eof(second);
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn handler_hears_connected_messages_then_disconnected_in_order() {
    let (handler, mut seen) = Recorder::silent();
    let server = start_server(&demo_server(), handler).await;
    let mut client = connect(server.local_addr().as_tcp().unwrap()).await;
    let me = client.local_addr().unwrap();
    let mut wire = num_bytes(1);
    wire.extend_from_slice(&num_bytes(2));
    wire.extend_from_slice(&common::frame_bytes(2, b"hello world!"));
    wire.extend_from_slice(&common::frame_bytes(9, b"?"));
    write_raw(&mut client, &wire).await;
    within(client.shutdown()).await.unwrap();

    let Seen::Connected(conn) = next_seen(&mut seen).await else {
        panic!("expected connected first");
    };
    assert_eq!(conn.peer().as_tcp(), Some(me));
    assert_eq!(conn.to_string(), me.to_string());
    assert_eq!(*conn.local_addr(), server.local_addr());
    let expected = [
        Demo::Num(NumMsg { num: 1 }),
        Demo::Num(NumMsg { num: 2 }),
        Demo::Str(common::StrMsg {
            text: "hello world!".into(),
        }),
        Demo::Other(Unknown {
            message_type: MessageType::new(9),
            body: "?".into(),
        }),
    ];
    for want in expected {
        match next_seen(&mut seen).await {
            Seen::Message(on, got) => {
                assert_eq!(on.id(), conn.id());
                assert_eq!(got, want);
            }
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
    match next_seen(&mut seen).await {
        Seen::Disconnected(on, reason) => {
            assert_eq!(on.id(), conn.id());
            assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason:?}");
        }
        other => panic!("expected disconnected, got {other:?}"),
    }
    assert!(!conn.is_connected());
    assert_eq!(conn.received(), 4);
    expect_closed(&mut client).await;
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn stream_hears_connected_messages_then_disconnected_in_order() {
    let (server, mut events) = start_event_server(&demo_server()).await;
    let mut client = connect(server.local_addr().as_tcp().unwrap()).await;
    let me = client.local_addr().unwrap();
    let mut wire = num_bytes(1);
    wire.extend_from_slice(&num_bytes(2));
    wire.extend_from_slice(&num_bytes(3));
    write_raw(&mut client, &wire).await;

    let Some(Event::Connected(conn)) = within(events.next()).await else {
        panic!("expected connected first");
    };
    assert_eq!(conn.to_string(), me.to_string());
    assert!(conn.is_connected());
    for num in 1..=3 {
        match within(events.next()).await {
            Some(Event::Message {
                conn: on,
                message,
                fields,
            }) => {
                assert_eq!(on.id(), conn.id());
                assert_eq!(message, Demo::Num(NumMsg { num }));
                assert!(fields.is_empty());
            }
            other => panic!("expected NumMsg {num}, got {other:?}"),
        }
    }
    // The handle answers, as in the handler style.
    conn.send(&NumMsg { num: 4 }).await.unwrap();
    assert_eq!(read_num(&mut client).await, 4);

    drop(client);
    match within(events.next()).await {
        Some(Event::Disconnected {
            conn: on, reason, ..
        }) => {
            assert_eq!(on.id(), conn.id());
            assert!(
                matches!(
                    reason,
                    DisconnectReason::PeerClosed | DisconnectReason::Io(_)
                ),
                "{reason:?}"
            );
        }
        other => panic!("expected disconnected, got {other:?}"),
    }
    assert!(!conn.is_connected());
    assert!(matches!(
        conn.send(&NumMsg { num: 5 }).await,
        Err(ltprotocol::SendError::Closed { .. })
    ));
    server.shutdown(Duration::from_secs(10)).await;
    // The stream ends after shutdown.
    assert!(within(events.next()).await.is_none());
}

/// What a client handler heard, in order.
#[derive(Debug, PartialEq)]
enum Heard {
    Connecting(u32),
    Connected,
    Message(Demo),
    Disconnected(String),
    ConnectFailed(u32, Option<Duration>),
}

struct ClientRecorder(mpsc::UnboundedSender<Heard>);

impl Handler<Demo> for ClientRecorder {
    async fn connecting(&self, attempt: u32) {
        let _ = self.0.send(Heard::Connecting(attempt));
    }

    async fn connected(&self, _conn: &ConnectionHandle) {
        let _ = self.0.send(Heard::Connected);
    }

    async fn message(&self, _conn: &ConnectionHandle, message: Demo, _fields: &HeaderFields) {
        let _ = self.0.send(Heard::Message(message));
    }

    async fn disconnected(&self, _conn: &ConnectionHandle, reason: &DisconnectReason) {
        let _ = self.0.send(Heard::Disconnected(reason.to_string()));
    }

    async fn connect_failed(&self, attempt: u32, _error: &io::Error, retry_in: Option<Duration>) {
        let _ = self.0.send(Heard::ConnectFailed(attempt, retry_in));
    }
}

#[tokio::test]
async fn client_handler_hears_its_connection_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, mut heard) = mpsc::unbounded_channel();
    let initial = Duration::from_millis(50);
    let client = demo_client()
        .backoff(Backoff {
            initial,
            jitter: 0.0,
            ..Backoff::default()
        })
        .connect_with_handler(
            listener.local_addr().unwrap().to_string(),
            ClientRecorder(tx),
        );
    let (mut server_side, _) = within(listener.accept()).await.unwrap();
    drop(listener);
    write_raw(&mut server_side, &num_bytes(5)).await;
    within(server_side.shutdown()).await.unwrap();

    assert_eq!(within(heard.recv()).await, Some(Heard::Connecting(1)));
    assert_eq!(within(heard.recv()).await, Some(Heard::Connected));
    assert_eq!(
        within(heard.recv()).await,
        Some(Heard::Message(Demo::Num(NumMsg { num: 5 })))
    );
    assert_eq!(
        within(heard.recv()).await,
        Some(Heard::Disconnected("closed by peer".into()))
    );
    // The connection ended before it lasted: a failed attempt, then the waits grow.
    assert_eq!(
        within(heard.recv()).await,
        Some(Heard::ConnectFailed(1, Some(initial)))
    );
    assert_eq!(within(heard.recv()).await, Some(Heard::Connecting(2)));
    assert_eq!(
        within(heard.recv()).await,
        Some(Heard::ConnectFailed(2, Some(initial * 2)))
    );
    drop(server_side);
    let report = within(client.close(Duration::from_secs(10))).await;
    assert_eq!(report.unsent_frames, 0);
}

/// Per-connection state: each connection counts its own messages, the count is answered back
/// and is gone with the connection; each type is a state of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_keeps_its_own_state() {
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicU32);

    struct Numbering {
        totals: mpsc::UnboundedSender<(std::net::SocketAddr, u32)>,
    }

    impl Handler<Demo> for Numbering {
        async fn message(&self, conn: &ConnectionHandle, _msg: Demo, _fields: &HeaderFields) {
            let n = conn.state::<Count>().0.fetch_add(1, Ordering::Relaxed) + 1;
            // Another type is another state, made on first use.
            let label = conn.state::<std::sync::Mutex<String>>();
            label.lock().unwrap().push('.');
            assert_eq!(label.lock().unwrap().len(), n as usize);
            let _ = conn.send(&NumMsg { num: n }).await;
        }

        async fn disconnected(&self, conn: &ConnectionHandle, _reason: &DisconnectReason) {
            let total = conn.state::<Count>().0.load(Ordering::Relaxed);
            let _ = self.totals.send((conn.peer().as_tcp().unwrap(), total));
        }
    }

    let (totals, mut totals_rx) = mpsc::unbounded_channel();
    let server = start_server(&demo_server(), Numbering { totals }).await;
    let mut first = connect(server.local_addr().as_tcp().unwrap()).await;
    let mut second = connect(server.local_addr().as_tcp().unwrap()).await;
    for round in 1..=5u32 {
        write_raw(&mut second, &num_bytes(100)).await;
        assert_eq!(read_num(&mut second).await, round);
        if round <= 3 {
            write_raw(&mut first, &num_bytes(100)).await;
            assert_eq!(read_num(&mut first).await, round);
        }
    }
    let (first_addr, second_addr) = (first.local_addr().unwrap(), second.local_addr().unwrap());
    drop(first);
    drop(second);
    let mut seen = std::collections::HashMap::new();
    while seen.len() < 2 {
        let (peer, total) = within(totals_rx.recv()).await.unwrap();
        seen.insert(peer, total);
    }
    assert_eq!(seen[&first_addr], 3);
    assert_eq!(seen[&second_addr], 5);
    // A new connection starts from nothing.
    let mut third = connect(server.local_addr().as_tcp().unwrap()).await;
    write_raw(&mut third, &num_bytes(100)).await;
    assert_eq!(read_num(&mut third).await, 1);
    server.shutdown(Duration::from_secs(10)).await;
}

/// `inspect` sees every frame in place before it is decoded: the frames it consumes never
/// reach `message`, the others arrive decoded as usual, in order, on the same connection.
#[tokio::test]
async fn inspect_consumes_frames_in_place_and_lets_the_rest_through() {
    struct Evens {
        consumed: std::sync::atomic::AtomicU32,
    }

    impl Handler<Demo> for Evens {
        fn inspect(
            &self,
            _conn: &ConnectionHandle,
            frame: ltprotocol::FrameRef<'_>,
        ) -> ltprotocol::Inspected {
            let num = <[u8; 4]>::try_from(frame.body).map(u32::from_be_bytes);
            match (frame.message_type.value(), num) {
                (1, Ok(num)) if num % 2 == 0 => {
                    self.consumed.fetch_add(1, Ordering::Relaxed);
                    ltprotocol::Inspected::Consumed
                }
                _ => ltprotocol::Inspected::Deliver,
            }
        }

        async fn message(&self, conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
            if let Demo::Num(num) = msg {
                let consumed = self.consumed.load(Ordering::Relaxed);
                let _ = conn
                    .send(&NumMsg {
                        num: num.num * 100 + consumed,
                    })
                    .await;
            }
        }
    }

    let handler = std::sync::Arc::new(Evens {
        consumed: std::sync::atomic::AtomicU32::new(0),
    });
    let server = start_server(&demo_server(), handler.clone()).await;
    let mut client = connect(server.local_addr().as_tcp().unwrap()).await;
    // All ten in one write, so they are inspected from one read buffer.
    let burst: Vec<u8> = (1..=10).flat_map(num_bytes).collect();
    write_raw(&mut client, &burst).await;
    // Each odd number comes back with how many evens had been consumed before it.
    for (odd, consumed_before) in [(1, 0), (3, 1), (5, 2), (7, 3), (9, 4)] {
        assert_eq!(read_num(&mut client).await, odd * 100 + consumed_before);
    }
    assert_eq!(handler.consumed.load(Ordering::Relaxed), 5);
    server.shutdown(Duration::from_secs(10)).await;
}

/// Messages that need no waiting and messages that do are taken by the same async `message`,
/// in order, from one read; a frame `inspect` consumed never reaches it. The handler is an
/// `Arc<H>`, whose impl forwards both.
#[tokio::test]
async fn messages_from_one_read_are_handled_in_order_whether_or_not_they_wait() {
    struct Sum {
        total: std::sync::atomic::AtomicU32,
        awaited: std::sync::atomic::AtomicU32,
    }

    impl Handler<Demo> for Sum {
        fn inspect(
            &self,
            _conn: &ConnectionHandle,
            frame: ltprotocol::FrameRef<'_>,
        ) -> ltprotocol::Inspected {
            // NumMsg 1000 is dropped before decoding.
            if frame.body == 1000u32.to_be_bytes() {
                ltprotocol::Inspected::Consumed
            } else {
                ltprotocol::Inspected::Deliver
            }
        }

        async fn message(&self, conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
            let Demo::Num(NumMsg { num }) = msg else {
                return;
            };
            if num < 100 {
                self.total.fetch_add(num, Ordering::Relaxed);
                return;
            }
            self.awaited.fetch_add(1, Ordering::Relaxed);
            // The sum of the small numbers before this one, in order.
            let total = self.total.load(Ordering::Relaxed);
            let _ = conn.send(&NumMsg { num: num + total }).await;
        }
    }

    let handler = std::sync::Arc::new(Sum {
        total: std::sync::atomic::AtomicU32::new(0),
        awaited: std::sync::atomic::AtomicU32::new(0),
    });
    let server = start_server(&demo_server(), handler.clone()).await;
    let mut client = connect(server.local_addr().as_tcp().unwrap()).await;
    // One write, one read buffer: 1..=10 added up, 1000 consumed in place, 500 and 600
    // answered.
    let burst: Vec<u8> = (1..=5)
        .chain([1000, 500])
        .chain(6..=10)
        .chain([600])
        .flat_map(num_bytes)
        .collect();
    write_raw(&mut client, &burst).await;
    assert_eq!(read_num(&mut client).await, 500 + 15);
    assert_eq!(read_num(&mut client).await, 600 + 55);
    assert_eq!(handler.total.load(Ordering::Relaxed), 55);
    assert_eq!(handler.awaited.load(Ordering::Relaxed), 2);
    server.shutdown(Duration::from_secs(10)).await;
}

/// A request that `message` starts (polling it once, to send it) gets its reply even when the
/// reply is already in the same read, right behind the message that started it: the reply is
/// routed to the request, and the handler sees only the frames after it.
#[tokio::test]
async fn a_request_started_in_message_gets_its_reply_from_the_same_read() {
    use std::sync::{Arc, Mutex};

    use futures::FutureExt;
    use ltprotocol::{Correlation, HeaderLayout, ReplyStream, Server};

    const START: i128 = 10;
    const REPLY: i128 = 12;
    const LATER: i128 = 13;

    #[derive(Default)]
    struct Starter {
        stream: Mutex<Option<ReplyStream>>,
        seen: Mutex<Vec<i128>>,
    }

    impl Handler<Unknown> for Starter {
        async fn message(&self, conn: &ConnectionHandle, msg: Unknown, _fields: &HeaderFields) {
            if msg.message_type.value() == START {
                let ask = Unknown {
                    message_type: MessageType::new(11),
                    body: bytes::Bytes::new(),
                };
                let started = conn.request_stream(&ask, |_| true).now_or_never();
                *self.stream.lock().unwrap() = started.and_then(Result::ok);
            } else {
                self.seen.lock().unwrap().push(msg.message_type.value());
            }
        }
    }

    let layout = HeaderLayout::openflow();
    let server = Server::<Unknown>::builder(layout.clone())
        .correlation(Correlation::new(&layout, "xid").unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let handler = Arc::new(Starter::default());
    let serving = server.clone();
    let serving_handler = handler.clone();
    tokio::spawn(async move { serving.serve(serving_handler).await });

    // OpenFlow headers without bodies: version 4, type, length 8, xid. A connection's first
    // request gets xid 1, so the reply can be written before the request is even made.
    let frame = |message_type: i128, xid: u32| {
        let mut frame = vec![4, u8::try_from(message_type).unwrap(), 0, 8];
        frame.extend_from_slice(&xid.to_be_bytes());
        frame
    };
    let mut client = TcpStream::connect(server.local_addr().as_tcp().unwrap())
        .await
        .unwrap();
    let burst = [frame(START, 0), frame(REPLY, 1), frame(LATER, 0)].concat();
    client.write_all(&burst).await.unwrap();

    within(async {
        while handler.seen.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(*handler.seen.lock().unwrap(), vec![LATER]);
    let mut stream = handler
        .stream
        .lock()
        .unwrap()
        .take()
        .expect("message started the request");
    let reply = within(stream.next())
        .await
        .expect("the reply reached the request")
        .unwrap();
    assert_eq!(reply.message_type.value(), REPLY);
    server.shutdown(Duration::from_secs(10)).await;
}
