//! `Body` and `BodyReader` over borrowed bytes: fields are read in place, and a field that
//! keeps bytes is a slice of the backing only when that pins at most `MAX_PIN_RATIO` times its
//! size; otherwise, or without a backing, it is a copy.

use bytes::{Bytes, BytesMut};
use ltprotocol::{
    Body, BodyErrorKind, BodyReader, ByteOrder, MAX_PIN_RATIO, Message, MessageType, Protocol,
    Unknown, Wire,
};
use proptest::prelude::*;

const CHUNK: usize = 256 * 1024;

/// A message with a field that keeps bytes.
#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 3)]
struct Tagged {
    tag: u16,
    data: Bytes,
}

#[derive(Debug, PartialEq, Protocol)]
enum Tags {
    Tagged(Tagged),
    #[ltp(unknown)]
    Other(Unknown),
}

/// A chunk whose every byte differs from its neighbours, so a wrong slice shows.
fn chunk(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Whether `kept` lies inside `chunk`'s memory: a slice of it, not a copy.
fn lies_in(kept: &Bytes, chunk: &Bytes) -> bool {
    if kept.is_empty() {
        return false;
    }
    let range = chunk.as_ptr_range();
    let kept = kept.as_ptr_range();
    range.start <= kept.start && kept.end <= range.end
}

#[test]
fn small_field_from_a_large_chunk_is_copied() {
    let chunk = chunk(CHUNK);
    let body = Body::in_chunk(&chunk[1000..1016], &chunk, CHUNK);
    let kept = body.to_bytes();
    assert_eq!(kept, chunk[1000..1016]);
    assert!(!lies_in(&kept, &chunk));
}

#[test]
fn large_field_from_a_chunk_is_a_slice_of_it() {
    let chunk = chunk(CHUNK);
    let body = Body::in_chunk(&chunk[1000..9192], &chunk, CHUNK);
    let kept = body.to_bytes();
    assert_eq!(kept, chunk[1000..9192]);
    assert_eq!(kept.as_ptr(), chunk[1000..].as_ptr());
}

#[test]
fn a_field_of_exactly_one_64th_of_the_footprint_is_a_slice_and_one_byte_less_a_copy() {
    let chunk = chunk(CHUNK);
    let at_ratio = CHUNK / MAX_PIN_RATIO;
    let body = Body::in_chunk(&chunk, &chunk, CHUNK);
    assert!(lies_in(&body.bytes_of(&chunk[..at_ratio]), &chunk));
    assert!(!lies_in(&body.bytes_of(&chunk[..at_ratio - 1]), &chunk));
}

#[test]
fn the_footprint_counts_memory_beyond_the_chunk() {
    let chunk = chunk(4096);
    // 4 KiB of a 4 KiB chunk is the whole chunk, but its allocation holds 1 MiB.
    let body = Body::in_chunk(&chunk, &chunk, 1 << 20);
    assert!(!lies_in(&body.to_bytes(), &chunk));
    // A footprint below the chunk's length counts the chunk's length.
    let body = Body::in_chunk(&chunk[..100], &chunk, 0);
    assert!(!lies_in(&body.bytes_of(&chunk[..63]), &chunk));
    assert!(lies_in(&body.bytes_of(&chunk[..64]), &chunk));
}

#[test]
fn empty_fields_are_empty_bytes() {
    let chunk = chunk(CHUNK);
    let body = Body::in_chunk(&chunk[10..10], &chunk, CHUNK);
    assert!(body.is_empty());
    assert_eq!(body.to_bytes(), Bytes::new());
    let body = Body::in_chunk(&chunk, &chunk, CHUNK);
    assert_eq!(body.bytes_of(&chunk[5..5]), Bytes::new());
    assert_eq!(Body::new(&[]).to_bytes(), Bytes::new());
}

#[test]
fn a_sub_slice_outside_the_body_is_copied_without_panic() {
    let chunk = chunk(CHUNK);
    let body = Body::in_chunk(&chunk[..CHUNK / 2], &chunk, CHUNK);
    // In the chunk, but past the body's end, or straddling it.
    let past = body.bytes_of(&chunk[CHUNK / 2..]);
    assert_eq!(past, chunk[CHUNK / 2..]);
    assert!(!lies_in(&past, &chunk));
    let straddling = body.bytes_of(&chunk[CHUNK / 4..CHUNK * 3 / 4]);
    assert!(!lies_in(&straddling, &chunk));
    // Elsewhere in memory.
    let other = vec![1u8; CHUNK];
    assert_eq!(body.bytes_of(&other), other);
}

#[test]
fn a_body_outside_its_claimed_chunk_is_a_plain_borrowed_body() {
    let chunk = chunk(CHUNK);
    let other = chunk.to_vec();
    let body = Body::in_chunk(&other, &chunk, CHUNK);
    assert_eq!(body.as_slice(), &chunk[..]);
    let kept = body.to_bytes();
    assert_eq!(kept, chunk);
    assert!(!lies_in(&kept, &chunk));
    // Overlapping the chunk's end is outside it too.
    let wider = Bytes::from(other);
    let narrow = wider.slice(..CHUNK / 2);
    let body = Body::in_chunk(&wider[CHUNK / 4..], &narrow, CHUNK);
    assert!(!lies_in(&body.to_bytes(), &wider));
}

#[test]
fn a_body_without_backing_copies_what_it_keeps() {
    let data = vec![7u8; CHUNK];
    let body = Body::new(&data);
    let kept = body.to_bytes();
    assert_eq!(kept, data);
    assert_ne!(kept.as_ptr(), data.as_ptr());
    let body = Body::from(&data[..]);
    assert_eq!(body.len(), CHUNK);
}

#[test]
fn a_body_backed_by_its_own_bytes_slices_fields_of_a_64th_of_it_or_more() {
    let bytes = chunk(6400);
    let body = Body::from_bytes(&bytes);
    assert_eq!(body.to_bytes().as_ptr(), bytes.as_ptr());
    assert!(lies_in(&body.bytes_of(&bytes[..100]), &bytes));
    assert!(!lies_in(&body.bytes_of(&bytes[..99]), &bytes));
    assert_eq!(Body::from(&bytes).as_slice(), &bytes[..]);
}

#[test]
fn body_reader_reads_borrowed_bytes_in_place() {
    let data = [0, 0, 0, 200, 1, 0, b'h', b'i', b'!'];
    let mut r = BodyReader::new(&data[..], ByteOrder::Big);
    assert_eq!(u32::read(&mut r).unwrap(), 200);
    assert_eq!(r.with_order(ByteOrder::Little, u16::read).unwrap(), 1);
    assert_eq!(r.remaining(), 3);
    assert_eq!(r.rest(), b"hi!");
    let hi = r.take_slice(2).unwrap();
    assert_eq!(hi.as_ptr(), data[6..].as_ptr());
    // Without backing, `take` copies.
    let rest = r.take(1).unwrap();
    assert_eq!(rest, &b"!"[..]);
    r.finish().unwrap();
    assert_eq!(r.take_rest(), Bytes::new());
    assert_eq!(r.take_slice(0).unwrap(), b"");
}

#[test]
fn body_reader_refusing_a_field_keeps_its_place() {
    let data = Bytes::from_static(&[1, 2, 3]);
    let mut r = BodyReader::new(&data, ByteOrder::Big);
    let too_short = BodyErrorKind::TooShort {
        needed: 4,
        remaining: 3,
    };
    assert_eq!(r.take_slice(4).unwrap_err().kind(), &too_short);
    assert_eq!(r.take(4).unwrap_err().kind(), &too_short);
    assert_eq!(r.take_array::<4>().unwrap_err().kind(), &too_short);
    assert_eq!(r.remaining(), 3);
    assert_eq!(r.take_array::<1>().unwrap(), [1]);
    assert_eq!(
        r.finish().unwrap_err().kind(),
        &BodyErrorKind::TrailingBytes { count: 2 }
    );
    // Backed by its own `Bytes`, the rest (1/3 of it) is a slice of it.
    let rest = r.take_rest();
    assert_eq!(rest.as_ptr(), data[1..].as_ptr());
}

#[test]
fn strings_and_vecs_are_read_from_the_slice() {
    #[derive(Debug, PartialEq, Message)]
    #[ltp(message_type = 4)]
    struct Text {
        text: String,
    }
    #[derive(Debug, PartialEq, Message)]
    #[ltp(message_type = 5)]
    struct Raw {
        data: Vec<u8>,
    }
    let chunk = chunk(CHUNK);
    let body = Body::in_chunk(&chunk[..200], &chunk, CHUNK);
    assert_eq!(
        Raw::decode_body(body, ByteOrder::Big).unwrap().data,
        &chunk[..200]
    );
    let text = b"hello";
    assert_eq!(
        Text::decode_body(Body::new(text), ByteOrder::Big).unwrap(),
        Text {
            text: "hello".into()
        }
    );
}

#[test]
fn a_derived_bytes_field_follows_the_pinning_rule() {
    let mut chunk = BytesMut::zeroed(CHUNK);
    chunk[..2].copy_from_slice(&[0, 9]);
    let chunk = chunk.freeze();
    // 16 bytes of data: copied.
    let small = Tagged::decode_body(Body::in_chunk(&chunk[..18], &chunk, CHUNK), ByteOrder::Big);
    let small = small.unwrap();
    assert_eq!((small.tag, small.data.len()), (9, 16));
    assert!(!lies_in(&small.data, &chunk));
    // 8 KiB of data: a slice.
    let large = Tags::decode(
        Tagged::MESSAGE_TYPE,
        Body::in_chunk(&chunk[..2 + 8192], &chunk, CHUNK),
        ByteOrder::Big,
    );
    let Ok(Tags::Tagged(large)) = large else {
        panic!("{large:?}");
    };
    assert!(lies_in(&large.data, &chunk));
}

proptest! {
    /// Wherever a message lies in a chunk, and whatever the chunk's footprint, it decodes as
    /// from a plain slice, and its `Bytes` field is a slice of the chunk exactly when the rule
    /// says so.
    #[test]
    fn a_message_decodes_alike_from_a_chunk_and_keeps_bytes_by_the_rule(
        data_len in 0usize..5000,
        before in 0usize..3000,
        after in 0usize..3000,
        extra_footprint in prop_oneof![Just(0usize), 0usize..1_000_000],
        tag: u16,
    ) {
        let msg = Tagged { tag, data: Bytes::from(vec![0xab; data_len]) };
        let mut buf = BytesMut::from(&vec![0x55; before][..]);
        msg.encode_body(&mut buf, ByteOrder::Little);
        buf.extend_from_slice(&vec![0x66; after]);
        let chunk = buf.freeze();
        let footprint = chunk.len() + extra_footprint;
        let body = &chunk[before..chunk.len() - after];
        let from_chunk =
            Tagged::decode_body(Body::in_chunk(body, &chunk, footprint), ByteOrder::Little)
                .unwrap();
        prop_assert_eq!(&from_chunk, &msg);
        prop_assert_eq!(&Tagged::decode_body(Body::new(body), ByteOrder::Little).unwrap(), &msg);
        let sliced = data_len > 0 && data_len * MAX_PIN_RATIO >= footprint;
        prop_assert_eq!(lies_in(&from_chunk.data, &chunk), sliced);
        let unknown = Unknown::decode(
            MessageType::new(1),
            Body::in_chunk(body, &chunk, footprint),
            ByteOrder::Little,
        )
        .unwrap();
        prop_assert_eq!(&unknown.body[..], body);
        prop_assert_eq!(lies_in(&unknown.body, &chunk), body.len() * MAX_PIN_RATIO >= footprint);
    }
}
