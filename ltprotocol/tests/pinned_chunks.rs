//! Issue #18, item 10, at the connection: bodies a handler keeps do not pin read chunks without
//! bound. A 5,000-byte `Unknown` body is large enough for `Body`'s own rule (1/64 of a 256 KiB
//! chunk) to make it a slice of the chunk it arrived in, which it keeps alive whole. A handler
//! that keeps one such body out of every ~240 KB of traffic would, on its own, keep a whole
//! chunk per body: 400 bodies, about 100 MiB. The connection counts the chunks its delivered
//! bodies still hold and, past 1 MiB of them, copies later bodies out instead, so the server's
//! memory grows by about what the kept bodies hold.

mod common;

use std::sync::{Arc, Mutex};

use common::{Demo, SEQ_TYPE, connect, demo_server, frame_bytes, rss_bytes, start_server, until};
use ltprotocol::{ConnectionHandle, Handler, HeaderFields, Unknown};
use tokio::io::AsyncWriteExt;

/// How many bodies the handler keeps.
const KEPT: usize = 400;
/// The size of each kept body: a slice of its chunk by `Body`'s rule.
const KEPT_BODY: usize = 5_000;
/// Frames the handler drops, sent after each kept one: about one 256 KiB read chunk per kept
/// body in all.
const DROPPED_PER_KEPT: usize = 4;
const DROPPED_BODY: usize = 60_000;

/// Keeps every frame of type [`SEQ_TYPE`], drops the others.
struct Keeper(Mutex<Vec<Unknown>>);

impl Handler<Demo> for Keeper {
    async fn message(&self, _conn: &ConnectionHandle, message: Demo, _fields: &HeaderFields) {
        if let Demo::Other(unknown) = message
            && unknown.message_type == SEQ_TYPE.into()
        {
            self.0.lock().unwrap().push(unknown);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_bodies_pin_a_bounded_amount_of_read_chunks_per_connection() {
    let keeper = Arc::new(Keeper(Mutex::new(Vec::with_capacity(KEPT))));
    let server = start_server(&demo_server(), Arc::clone(&keeper)).await;

    // One round: a kept frame, then frames the handler drops.
    let mut round = frame_bytes(SEQ_TYPE, &[0x5a; KEPT_BODY]);
    for _ in 0..DROPPED_PER_KEPT {
        round.extend_from_slice(&frame_bytes(9, &[0xa5; DROPPED_BODY]));
    }
    let before = rss_bytes();

    let mut peer = connect(server.local_addr().as_tcp().unwrap()).await;
    for _ in 0..KEPT {
        peer.write_all(&round).await.unwrap();
    }
    peer.flush().await.unwrap();
    until(|| keeper.0.lock().unwrap().len() == KEPT).await;

    // The connection is still open: whatever the kept bodies pin is still pinned.
    let grown = rss_bytes().saturating_sub(before);
    let kept = keeper.0.lock().unwrap();
    assert!(
        kept.iter()
            .all(|unknown| unknown.body[..] == [0x5a; KEPT_BODY])
    );
    // 400 × 5,000 B kept, plus at most 1 MiB of pinned chunks, plus the read buffers of the
    // moment; a chunk per body would be about 100 MiB.
    assert!(
        grown < 32 * 1024 * 1024,
        "the server's memory grew by {grown} bytes for {} bytes of kept bodies",
        KEPT * KEPT_BODY
    );
}
