//! Servers and clients over other byte streams than TCP: Unix-domain sockets, tokio's
//! in-memory duplex (no socket at all), and a listener the application already has. Every
//! feature runs the same over each; here a handshake, request/reply and reconnecting.

mod common;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Demo, NumMsg, within};
use ltprotocol::transport::{Addr, FnConnector, Listener, UnixConnector};
use ltprotocol::{
    Correlation, Event, HeaderLayout, Int, MessageType, ReconnectingClient, Server, Unknown,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

/// A socket path of this test's own, in a fresh directory.
fn socket_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ltp-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

/// Echoes every message back to its sender.
async fn echo_server(server: &Server<Demo>) {
    let mut events = server.events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Message { conn, message, .. } = event {
                let _ = conn.send(&message).await;
            }
        }
    });
}

#[tokio::test]
async fn a_unix_socket_server_and_client_round_trip_and_show_their_peers() {
    let path = socket_path("roundtrip");
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .bind_unix(&path)
        .unwrap();
    assert_eq!(server.local_addr(), Addr::unix(&path));
    echo_server(&server).await;

    let (client, mut events) = ReconnectingClient::<Demo>::builder(HeaderLayout::ltprotocol())
        .connect(UnixConnector::new(&path));
    let conn = within(client.wait_connected()).await.unwrap();
    assert_eq!(conn.peer().to_string(), format!("unix:{}", path.display()));
    client.send(&NumMsg { num: 200 }).await.unwrap();
    let echoed = within(async {
        loop {
            if let Some(Event::Message { message, .. }) = events.next().await {
                return message;
            }
        }
    })
    .await;
    assert_eq!(echoed, Demo::Num(NumMsg { num: 200 }));
    // The server sees an unnamed client socket.
    let on_server = server.connections();
    assert_eq!(on_server.len(), 1);
    assert_eq!(on_server[0].peer().to_string(), "unix:(unnamed)");

    within(client.close(Duration::from_secs(5))).await;
    within(server.shutdown(Duration::from_secs(5))).await;
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_a_live_one_is_not() {
    let path = socket_path("stale");
    // A socket file nobody listens on any more: a crashed server's.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .bind_unix(&path)
        .unwrap();
    // A second server on the same path: the first one is alive.
    let err = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .bind_unix(&path)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    // Not a socket at all: never removed.
    let file = socket_path("not-a-socket");
    std::fs::write(&file, b"precious").unwrap();
    let err = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .bind_unix(&file)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    within(server.shutdown(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn a_listener_the_application_already_has_is_served() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .listen(listener)
        .unwrap();
    assert_eq!(server.local_addr(), Addr::Tcp(addr));
    echo_server(&server).await;
    let mut peer = within(tokio::net::TcpStream::connect(addr)).await.unwrap();
    peer.write_all(b"\x00\x07\x01\x00\x00\x00\xc8")
        .await
        .unwrap();
    let mut echoed = [0u8; 7];
    within(peer.read_exact(&mut echoed)).await.unwrap();
    assert_eq!(&echoed, b"\x00\x07\x01\x00\x00\x00\xc8");
    within(server.shutdown(Duration::from_secs(5))).await;
}

/// A listener of in-memory streams: each connection is one end of a duplex pair (or another
/// stream), the other end kept by whoever sent it through the channel [`MemoryListener::new`]
/// returns.
struct MemoryListener<S = DuplexStream> {
    incoming: mpsc::UnboundedReceiver<S>,
    count: u64,
}

impl<S> MemoryListener<S> {
    fn new() -> (Self, mpsc::UnboundedSender<S>) {
        let (tx, incoming) = mpsc::unbounded_channel();
        (Self { incoming, count: 0 }, tx)
    }
}

impl<S: ltprotocol::transport::Stream> Listener for MemoryListener<S> {
    type Stream = S;

    async fn accept(&mut self) -> std::io::Result<(S, Addr)> {
        let stream = self.incoming.recv().await.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "no more clients")
        })?;
        self.count += 1;
        Ok((stream, Addr::other(format!("memory client {}", self.count))))
    }

    fn local_addr(&self) -> std::io::Result<Addr> {
        Ok(Addr::other("memory"))
    }
}

/// A duplex stream that writes one slice per call, as streams without vectored writes do.
struct OneSliceAtATime(DuplexStream);

impl ltprotocol::transport::Stream for OneSliceAtATime {}

impl AsyncRead for OneSliceAtATime {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for OneSliceAtATime {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// `u16` length, `u8` type, `u32` seq: room for request/reply.
fn seq_layout() -> HeaderLayout {
    HeaderLayout::builder()
        .length(0, Int::U16)
        .message_type(2, Int::U8)
        .field("seq", 3, Int::U32)
        .build()
        .unwrap()
}

#[tokio::test]
async fn over_in_memory_streams_a_client_requests_reconnects_and_is_answered() {
    let layout = seq_layout();
    let (listener, dial) = MemoryListener::new();
    let server = Server::<Unknown>::builder(layout.clone())
        .listen(listener)
        .unwrap();
    assert_eq!(server.local_addr().to_string(), "memory");
    // The server answers type 1 with type 2, same seq.
    let mut events = server.events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Message {
                conn,
                message,
                fields,
            } = event
            {
                let reply = Unknown {
                    message_type: MessageType::new(2),
                    body: message.body,
                };
                let _ = conn.send_with(&reply, &fields).await;
            }
        }
    });

    let dials = Arc::new(Mutex::new(0u32));
    let connector = {
        let dials = dials.clone();
        FnConnector::new("memory", move || {
            let dial = dial.clone();
            let dials = dials.clone();
            async move {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                dial.send(theirs).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "server gone")
                })?;
                *dials.lock().unwrap() += 1;
                Ok((ours, Addr::other("memory server")))
            }
        })
    };
    let (client, _events) = ReconnectingClient::<Unknown>::builder(layout.clone())
        .correlation(Correlation::new(&layout, "seq").unwrap())
        .backoff(ltprotocol::Backoff {
            initial: Duration::from_millis(10),
            ..ltprotocol::Backoff::default()
        })
        .connect(connector);
    let conn = within(client.wait_connected()).await.unwrap();
    assert_eq!(conn.peer().to_string(), "memory server");
    let ask = Unknown {
        message_type: MessageType::new(1),
        body: "42?".into(),
    };
    let reply = within(conn.request(&ask)).await.unwrap();
    assert_eq!(
        (reply.message_type, &reply.body[..]),
        (MessageType::new(2), &b"42?"[..])
    );

    // The server drops the connection; the client makes a new stream and goes on.
    for accepted in server.connections() {
        accepted.close();
    }
    let again = within(async {
        loop {
            if let Some(conn) = client.connection()
                && conn.id() != ltprotocol::ConnectionId::new(1)
            {
                return conn;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let reply = within(again.request(&ask)).await.unwrap();
    assert_eq!(&reply.body[..], b"42?");
    assert_eq!(*dials.lock().unwrap(), 2);
    within(client.close(Duration::from_secs(5))).await;
    within(server.shutdown(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn a_duplex_stream_carries_the_ancestors_demo() {
    let (listener, dial) = MemoryListener::new();
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .listen(listener)
        .unwrap();
    echo_server(&server).await;
    let (mut peer, theirs) = tokio::io::duplex(1024);
    dial.send(theirs).unwrap();
    // StrMsg("hello world!") and back, byte for byte.
    let hello = b"\x00\x0f\x02hello world!";
    peer.write_all(hello).await.unwrap();
    let mut echoed = [0u8; 15];
    within(peer.read_exact(&mut echoed)).await.unwrap();
    assert_eq!(&echoed, hello);
    within(server.shutdown(Duration::from_secs(5))).await;
}

/// A stream that writes one slice per call (it cannot gather): frames encoded once, each
/// queued as a handle to its one encoding, still arrive whole and in order among the
/// connection's own frames, through a pipe far smaller than what is sent.
#[tokio::test]
async fn a_stream_that_cannot_gather_gets_shared_frames_whole_and_in_order() {
    const FRAMES: u32 = 5_000;
    let (listener, dial) = MemoryListener::new();
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .listen(listener)
        .unwrap();
    echo_server(&server).await;
    let (mut peer, theirs) = tokio::io::duplex(1024);
    let theirs = OneSliceAtATime(theirs);
    assert!(!theirs.is_write_vectored());
    dial.send(theirs).unwrap();
    within(async {
        while server.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let conn = server.connections().remove(0);
    let sending = tokio::spawn(async move {
        for num in 0..FRAMES {
            if num % 3 == 0 {
                conn.send(&NumMsg { num }).await.unwrap();
            } else {
                let frame = server.encode(&NumMsg { num }).unwrap();
                conn.send_encoded(&frame).await.unwrap();
            }
        }
        server
    });
    for num in 0..FRAMES {
        let mut frame = [0u8; 7];
        within(peer.read_exact(&mut frame)).await.unwrap();
        assert_eq!(frame[..3], [0, 7, 1], "frame {num}");
        assert_eq!(frame[3..], num.to_be_bytes(), "frame {num}");
    }
    let server = within(sending).await.unwrap();
    within(server.shutdown(Duration::from_secs(5))).await;
}
