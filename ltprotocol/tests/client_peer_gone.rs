//! Frames a client holds when its server goes away are not written into the dead
//! connection: they are kept, reported as unsent by that connection's `disconnected`, and
//! delivered once, in order, on the next connection.

mod common;

use std::time::Duration;

use common::{Demo, NumMsg, demo_client, frame_bytes, read_frame, within, write_raw};
use ltprotocol::{
    Backoff, ConnectionHandle, DisconnectReason, Handler, Handshake, HandshakeContext,
    HandshakeError, HeaderFields, MessageType, Unknown,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Type 9 both ways before anything else: queued frames wait for it.
struct Greeting;

impl Handshake for Greeting {
    type Output = ();

    async fn run(&self, ctx: &mut HandshakeContext<'_>) -> Result<(), HandshakeError> {
        let hello = Unknown {
            message_type: MessageType::new(9),
            body: "hi".into(),
        };
        ctx.send(&hello).await?;
        let reply = ctx.recv().await?;
        if reply.message_type != MessageType::new(9) {
            return Err(HandshakeError::Rejected("no greeting".into()));
        }
        Ok(())
    }
}

/// Reports each connection's end with its unsent count; on the first connection, lingers
/// in `connected` so that the server's close has surely arrived before the connection runs.
struct Watch(mpsc::UnboundedSender<(u64, usize, DisconnectReason)>);

impl Handler<Demo> for Watch {
    async fn connected(&self, conn: &ConnectionHandle) {
        if conn.id().get() == 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn message(&self, _conn: &ConnectionHandle, _msg: Demo, _fields: &HeaderFields) {}

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        let _ = self
            .0
            .send((conn.id().get(), conn.unsent_frames(), reason.clone()));
    }
}

/// Plays the server's side of the greeting on an accepted connection.
async fn greet(listener: &TcpListener) -> TcpStream {
    let (mut stream, _) = within(listener.accept()).await.unwrap();
    let (message_type, _) = read_frame(&mut stream).await;
    assert_eq!(message_type, 9);
    write_raw(&mut stream, &frame_bytes(9, b"hi")).await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_queued_when_the_server_closes_are_kept_for_the_next_connection() {
    const QUEUED: u32 = 50;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (ends_tx, mut ends) = mpsc::unbounded_channel();
    let client = demo_client()
        .handshake(Greeting)
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            ..Backoff::default()
        })
        .connect_with_handler(listener.local_addr().unwrap().to_string(), Watch(ends_tx));
    for num in 0..QUEUED {
        client.send(&NumMsg { num }).await.unwrap();
    }

    // The first server greets and is gone at once: a crash, or a restart.
    let first = greet(&listener).await;
    drop(first);
    let (id, unsent, reason) = within(ends.recv()).await.unwrap();
    assert_eq!(id, 1);
    assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason:?}");
    assert_eq!(unsent, QUEUED as usize, "kept for the next connection");

    // The next one gets every frame, once, in order.
    let mut second = greet(&listener).await;
    let closing = tokio::spawn(async move { client.close(Duration::from_secs(10)).await });
    let mut wire = Vec::new();
    within(second.read_to_end(&mut wire)).await.unwrap();
    let expected: Vec<u8> = (0..QUEUED)
        .flat_map(|num| frame_bytes(1, &num.to_be_bytes()))
        .collect();
    assert_eq!(wire, expected);
    within(second.shutdown()).await.unwrap();
    let report = within(closing).await.unwrap();
    assert_eq!(report.unsent_frames, 0);
    let (id, unsent, _) = within(ends.recv()).await.unwrap();
    assert_eq!((id, unsent), (2, 0));
}
