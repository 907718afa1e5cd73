//! Issue #18, item 10: a retained small body must not pin its read block. Bodies are decoded in
//! place from a read chunk holding many frames; an `Unknown` (or a `Bytes` field) kept from a
//! small body is copied out of the chunk, so keeping thousands of them costs their own bytes,
//! not a 256 KiB chunk each, while a large body is still a slice of the chunk, not a copy.

use bytes::Bytes;
use ltprotocol::{Body, ByteOrder, MessageType, Protocol, Unknown};

const CHUNK: usize = 256 * 1024;
const SMALL: usize = 16;
const COUNT: usize = 1024;

/// Whether `kept` lies inside `chunk`'s memory: a slice of it, not a copy.
fn lies_in(kept: &Bytes, chunk: &Bytes) -> bool {
    let range = chunk.as_ptr_range();
    let kept = kept.as_ptr_range();
    !kept.is_empty() && range.start <= kept.start && kept.end <= range.end
}

#[test]
fn unknowns_kept_from_small_bodies_do_not_keep_their_chunk_alive() {
    let chunk: Bytes = (0..CHUNK)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    // 1,024 small bodies spread over the chunk, 256 bytes apart.
    let stride = CHUNK / COUNT;
    let kept: Vec<Unknown> = (0..COUNT)
        .map(|i| {
            let body = &chunk[i * stride..i * stride + SMALL];
            Unknown::decode(
                MessageType::new(7),
                Body::in_chunk(body, &chunk, CHUNK),
                ByteOrder::Big,
            )
            .unwrap()
        })
        .collect();
    for (i, unknown) in kept.iter().enumerate() {
        assert_eq!(
            unknown.body,
            chunk[i * stride..i * stride + SMALL],
            "body {i}"
        );
        assert!(
            !lies_in(&unknown.body, &chunk),
            "body {i} is a slice of the chunk"
        );
    }
    // No kept body shares the chunk's allocation: this handle is the only one left.
    assert!(chunk.is_unique());

    // An 8 KiB body (1/32 of the chunk) is a slice of it, which shares the allocation.
    let large = Unknown::decode(
        MessageType::new(7),
        Body::in_chunk(&chunk[..8192], &chunk, CHUNK),
        ByteOrder::Big,
    )
    .unwrap();
    assert!(lies_in(&large.body, &chunk));
    assert!(!chunk.is_unique());
    drop(large);
    assert!(chunk.is_unique());

    // Dropping the chunk leaves every kept body whole.
    drop(chunk);
    assert!(kept.iter().all(|unknown| unknown.body.len() == SMALL));
}

#[test]
fn a_derived_protocol_keeps_small_unknown_bodies_as_copies() {
    #[derive(Debug, PartialEq, ltprotocol::Message)]
    #[ltp(message_type = 1)]
    struct NumMsg {
        num: u32,
    }
    #[derive(Debug, PartialEq, Protocol)]
    enum Demo {
        Num(NumMsg),
        #[ltp(unknown)]
        Other(Unknown),
    }
    let chunk = Bytes::from(vec![0u8; CHUNK]);
    let decode = |body: &[u8]| {
        let body = Body::in_chunk(body, &chunk, CHUNK);
        match Demo::decode(MessageType::new(9), body, ByteOrder::Big).unwrap() {
            Demo::Other(unknown) => unknown.body,
            other => panic!("{other:?}"),
        }
    };
    let small = decode(&chunk[..SMALL]);
    assert!(!lies_in(&small, &chunk));
    let large = decode(&chunk[..8192]);
    assert!(lies_in(&large, &chunk));
    drop(large);
    assert!(chunk.is_unique());
    // A known type's fields are read in place; nothing is kept.
    let num = Demo::decode(
        MessageType::new(1),
        Body::in_chunk(&chunk[..4], &chunk, CHUNK),
        ByteOrder::Big,
    );
    assert_eq!(num.unwrap(), Demo::Num(NumMsg { num: 0 }));
    assert!(chunk.is_unique());
}
