//! Helpers shared by the runtime tests: the demo protocol, servers on `127.0.0.1:0`, raw
//! `TcpStream` peers speaking the default layout byte by byte, and `within`, the guard that
//! turns a hang into a failure.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::Location;
use std::time::Duration;

use ltprotocol::{
    ConnectionHandle, DisconnectReason, EventStream, Handler, HeaderFields, HeaderLayout, Message,
    MessageType, Protocol, ReconnectingClient, Server, ServerBuilder, Unknown,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

/// How long any single awaited step may take before the test fails as hung. Generous: a
/// guard, never a timed assertion.
pub(crate) const GUARD: Duration = Duration::from_secs(30);

/// The ancestor's example message 1: a `u32`.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 1)]
pub(crate) struct NumMsg {
    pub(crate) num: u32,
}

/// The ancestor's example message 2: a string, the rest of the body.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 2)]
pub(crate) struct StrMsg {
    pub(crate) text: String,
}

/// The ancestor's example protocol.
#[derive(Debug, Clone, PartialEq, Eq, Protocol)]
pub(crate) enum Demo {
    Num(NumMsg),
    Str(StrMsg),
    #[ltp(unknown)]
    Other(Unknown),
}

/// The type number used by the tests for padded, sequence-numbered frames ([`seq_msg`]).
pub(crate) const SEQ_TYPE: u8 = 3;

/// A frame of type [`SEQ_TYPE`] whose body is `seq` (big-endian `u32`) then `pad` bytes.
pub(crate) fn seq_msg(seq: u32, pad: usize) -> Unknown {
    let mut body = Vec::with_capacity(4 + pad);
    body.extend_from_slice(&seq.to_be_bytes());
    body.resize(4 + pad, 0xa5);
    Unknown {
        message_type: MessageType::new(i128::from(SEQ_TYPE)),
        body: body.into(),
    }
}

/// Runs `fut`, failing the test if it takes longer than [`GUARD`] (tokio time).
#[track_caller]
pub(crate) fn within<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let caller = Location::caller();
    async move {
        match tokio::time::timeout(GUARD, fut).await {
            Ok(out) => out,
            Err(_) => panic!("step at {caller} did not finish within {GUARD:?}"),
        }
    }
}

/// Like [`within`], measured on the wall clock by a helper thread: for tests that pause
/// tokio's clock, which would otherwise jump straight to the guard's deadline.
#[track_caller]
pub(crate) fn within_real<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let caller = Location::caller();
    async move {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(GUARD);
            let _ = tx.send(());
        });
        tokio::select! {
            out = fut => out,
            Ok(()) = rx => panic!("step at {caller} did not finish within {GUARD:?} (wall clock)"),
        }
    }
}

/// Polls `cond` (yielding to other tasks between checks) until it holds, under the guard.
#[track_caller]
pub(crate) fn until(mut cond: impl FnMut() -> bool) -> impl Future<Output = ()> {
    within(async move {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// A server builder for [`Demo`] with the default (ltprotocol) layout.
pub(crate) fn demo_server() -> ServerBuilder<Demo> {
    Server::<Demo>::builder(HeaderLayout::ltprotocol())
}

/// Binds `builder` on `127.0.0.1:0` and serves with `handler` on a spawned task.
pub(crate) async fn start_server<H: Handler<Demo>>(
    builder: &ServerBuilder<Demo>,
    handler: H,
) -> Server<Demo> {
    let server = within(builder.bind("127.0.0.1:0")).await.expect("bind");
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(handler).await.expect("serve") });
    server
}

/// Binds `builder` on `127.0.0.1:0` and serves in the stream style.
pub(crate) async fn start_event_server(
    builder: &ServerBuilder<Demo>,
) -> (Server<Demo>, EventStream<Demo>) {
    let server = within(builder.bind("127.0.0.1:0")).await.expect("bind");
    let events = server.events();
    (server, events)
}

/// Binds `builder` on exactly `addr`, retrying for a while if the port is still in use.
pub(crate) async fn bind_again(builder: &ServerBuilder<Demo>, addr: SocketAddr) -> Server<Demo> {
    within(async {
        let mut tries = 0;
        loop {
            match builder.bind(addr).await {
                Ok(server) => return server,
                Err(err) if err.kind() == io::ErrorKind::AddrInUse && tries < 200 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("cannot bind {addr} again: {err}"),
            }
        }
    })
    .await
}

/// A local address on which nothing listens: connecting to it is refused. The returned
/// socket holds the port (bound, not listening, without `SO_REUSEADDR`), so no other socket
/// can take it meanwhile; `listen` on it to start accepting there.
pub(crate) fn refusing_addr() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let addr = socket.local_addr().expect("local_addr");
    (socket, addr)
}

/// A client builder for [`Demo`] with the default layout.
pub(crate) fn demo_client() -> ltprotocol::ClientBuilder<Demo> {
    ReconnectingClient::<Demo>::builder(HeaderLayout::ltprotocol())
}

// ---- raw peers -------------------------------------------------------------------------------

/// Connects a raw TCP peer.
pub(crate) async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = within(TcpStream::connect(addr)).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// The bytes of one frame in the default layout: `u16` whole length, `u8` type, body.
pub(crate) fn frame_bytes(message_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(3 + body.len()).expect("frame fits a u16 length");
    let mut out = Vec::with_capacity(3 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(message_type);
    out.extend_from_slice(body);
    out
}

/// The bytes of `NumMsg { num }`.
pub(crate) fn num_bytes(num: u32) -> Vec<u8> {
    frame_bytes(1, &num.to_be_bytes())
}

/// Writes raw bytes.
pub(crate) async fn write_raw(stream: &mut TcpStream, bytes: &[u8]) {
    within(stream.write_all(bytes)).await.expect("write");
}

/// Reads one frame in the default layout: its type and body. Panics on end of stream.
pub(crate) async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    within(async {
        let mut head = [0u8; 3];
        stream.read_exact(&mut head).await.expect("read header");
        let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
        assert!(len >= 3, "frame length {len} shorter than the header");
        let mut body = vec![0u8; len - 3];
        stream.read_exact(&mut body).await.expect("read body");
        (head[2], body)
    })
    .await
}

/// Reads one frame and expects it to be `NumMsg { num }`; returns `num`.
pub(crate) async fn read_num(stream: &mut TcpStream) -> u32 {
    let (message_type, body) = read_frame(stream).await;
    assert_eq!(
        message_type, 1,
        "expected a NumMsg, got type {message_type}"
    );
    let bytes: [u8; 4] = body.as_slice().try_into().expect("NumMsg body is 4 bytes");
    u32::from_be_bytes(bytes)
}

/// Reads one sequence-numbered frame ([`seq_msg`]) and returns its number.
pub(crate) async fn read_seq(stream: &mut TcpStream) -> u32 {
    let (message_type, body) = read_frame(stream).await;
    assert_eq!(message_type, SEQ_TYPE);
    let head: [u8; 4] = body.get(..4).and_then(|b| b.try_into().ok()).expect("seq");
    u32::from_be_bytes(head)
}

/// Expects the peer to close the connection with nothing more to read: a read gives end of
/// stream (or a reset, when the peer closed with our bytes unread).
pub(crate) async fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match within(stream.read(&mut buf)).await {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected the connection closed, read {n} bytes: {:?}",
            &buf[..n]
        ),
        Err(err) => assert!(
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ),
            "expected the connection closed, got {err}"
        ),
    }
}

/// Hands `stream` to a task that reads (and discards) until the peer closes, then closes
/// too: what a well-behaved peer does when a server shuts down. Returns the bytes read.
pub(crate) fn hang_up_on_eof(mut stream: TcpStream) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(within(async move {
        let mut total = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    }))
}

// ---- recording handlers ----------------------------------------------------------------------

/// One callback, as a [`Recorder`] saw it.
#[derive(Debug)]
pub(crate) enum Seen {
    Connected(ConnectionHandle),
    Message(ConnectionHandle, Demo),
    Disconnected(ConnectionHandle, DisconnectReason),
}

/// A handler that echoes every message back, except `NumMsg { num: PANIC_NUM }`, on which it
/// panics, and reports every callback on a channel.
#[derive(Debug)]
pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<Seen>,
    echo: bool,
}

/// The message on which [`Recorder`] panics.
pub(crate) const PANIC_NUM: u32 = 666;

impl Recorder {
    /// An echoing recorder and the receiving end of what it sees.
    pub(crate) fn echo() -> (Self, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, echo: true }, rx)
    }

    /// A recorder that does not answer.
    pub(crate) fn silent() -> (Self, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, echo: false }, rx)
    }
}

impl Handler<Demo> for Recorder {
    async fn connected(&self, conn: &ConnectionHandle) {
        let _ = self.tx.send(Seen::Connected(conn.clone()));
    }

    async fn message(&self, conn: &ConnectionHandle, message: Demo, _fields: &HeaderFields) {
        if message == Demo::Num(NumMsg { num: PANIC_NUM }) {
            panic!("test handler panics on NumMsg {PANIC_NUM}, as asked");
        }
        if self.echo {
            let _ = conn.send(&message).await;
        }
        let _ = self.tx.send(Seen::Message(conn.clone(), message));
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        let _ = self
            .tx
            .send(Seen::Disconnected(conn.clone(), reason.clone()));
    }
}

/// The next thing a [`Recorder`] saw, under the guard.
pub(crate) async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    within(rx.recv()).await.expect("the handler was dropped")
}

/// Waits for the recorder to report that the connection from `peer` ended, skipping
/// anything else; returns the reason.
pub(crate) async fn disconnect_of(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    peer: SocketAddr,
) -> DisconnectReason {
    loop {
        if let Seen::Disconnected(conn, reason) = next_seen(rx).await
            && conn.peer().as_tcp() == Some(peer)
        {
            return reason;
        }
    }
}

/// Waits for the recorder to report the connection from `peer`.
pub(crate) async fn connection_of(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    peer: SocketAddr,
) -> ConnectionHandle {
    loop {
        if let Seen::Connected(conn) = next_seen(rx).await
            && conn.peer().as_tcp() == Some(peer)
        {
            return conn;
        }
    }
}

// ---- process figures -------------------------------------------------------------------------

/// The resident memory of this process, from `/proc/self/status`.
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// How many file descriptors this process has open, from `/proc/self/fd`.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}
