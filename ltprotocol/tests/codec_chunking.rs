//! However the stream is split or coalesced, the decoder yields the same frames; bodies are
//! slices of the read buffer; and a declared length is never reserved up front.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use ltprotocol::{Frame, FrameCodec, HeaderLayout, MessageType};
use tokio_test::io::Builder;
use tokio_util::codec::{Decoder, Encoder, FramedRead};

const NUM_MSG_200: &[u8] = b"\x00\x07\x01\x00\x00\x00\xc8";
const STR_MSG_HELLO: &[u8] = b"\x00\x0f\x02hello world!";
const NUM_MSG_7: &[u8] = b"\x00\x07\x01\x00\x00\x00\x07";
const EMPTY_TYPE_9: &[u8] = b"\x00\x03\x09";
const OF_HELLO_XID_1: &[u8] = b"\x04\x00\x00\x08\x00\x00\x00\x01";
const OF_ECHO_REQUEST_XID_7: &[u8] = b"\x04\x02\x00\x0c\x00\x00\x00\x07ping";

fn frame(message_type: i128, body: &'static [u8]) -> Frame {
    Frame::new(MessageType::new(message_type), Bytes::from_static(body))
}

fn openflow_frame(message_type: i128, xid: i128, body: &'static [u8]) -> Frame {
    let layout = HeaderLayout::openflow();
    frame(message_type, body)
        .with_field(layout.field("version").unwrap(), 4)
        .with_field(layout.field("xid").unwrap(), xid)
}

/// Bytes on the wire and the frames they decode to.
type Stream = (Vec<u8>, Vec<Frame>);

/// Four frames of the ancestor's layout, back to back, and what they decode to.
fn ltprotocol_stream() -> Stream {
    let wire = [NUM_MSG_200, EMPTY_TYPE_9, STR_MSG_HELLO, NUM_MSG_7].concat();
    let frames = vec![
        frame(1, &[0, 0, 0, 200]),
        frame(9, b""),
        frame(2, b"hello world!"),
        frame(1, &[0, 0, 0, 7]),
    ];
    (wire, frames)
}

/// Three OpenFlow frames, back to back, and what they decode to.
fn openflow_stream() -> Stream {
    let wire = [OF_HELLO_XID_1, OF_ECHO_REQUEST_XID_7, OF_HELLO_XID_1].concat();
    let frames = vec![
        openflow_frame(0, 1, b""),
        openflow_frame(2, 7, b"ping"),
        openflow_frame(0, 1, b""),
    ];
    (wire, frames)
}

/// Feeds `pieces` one after another into one decoder, draining frames after each, then
/// checks the end of the stream is clean.
fn decode_pieces<'a>(
    layout: &HeaderLayout,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Frame> {
    let mut codec = FrameCodec::new(layout.clone());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
    assert!(!codec.is_mid_frame());
    frames
}

fn presets() -> [(HeaderLayout, Stream); 2] {
    [
        (HeaderLayout::ltprotocol(), ltprotocol_stream()),
        (HeaderLayout::openflow(), openflow_stream()),
    ]
}

#[test]
fn split_at_every_offset_gives_the_same_frames() {
    for (layout, (wire, expected)) in presets() {
        for at in 0..=wire.len() {
            let (a, b) = wire.split_at(at);
            assert_eq!(decode_pieces(&layout, [a, b]), expected, "split at {at}");
        }
    }
}

#[test]
fn split_at_every_pair_of_offsets_gives_the_same_frames() {
    for (layout, (wire, expected)) in presets() {
        for first in 0..=wire.len() {
            for second in first..=wire.len() {
                let pieces = [&wire[..first], &wire[first..second], &wire[second..]];
                assert_eq!(
                    decode_pieces(&layout, pieces),
                    expected,
                    "split at {first} and {second}"
                );
            }
        }
    }
}

#[test]
fn byte_by_byte_gives_the_same_frames() {
    for (layout, (wire, expected)) in presets() {
        assert_eq!(decode_pieces(&layout, wire.chunks(1)), expected);
    }
}

#[test]
fn frames_come_out_as_soon_as_their_last_byte_arrives_and_not_before() {
    let (wire, expected) = ltprotocol_stream();
    let ends = [7, 10, 25, 32]; // cumulative frame ends
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for (i, byte) in wire.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        match codec.decode(&mut buf).unwrap() {
            Some(frame) => {
                assert!(ends.contains(&(i + 1)), "frame early at byte {}", i + 1);
                got.push(frame);
            }
            None => assert!(!ends.contains(&(i + 1)), "no frame at byte {}", i + 1),
        }
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            None,
            "two frames at byte {}",
            i + 1
        );
    }
    assert_eq!(got, expected);
}

#[test]
fn decoder_is_mid_frame_only_between_a_header_and_its_last_body_byte() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut buf = BytesMut::from(&NUM_MSG_200[..2]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(!codec.is_mid_frame());
    buf.extend_from_slice(&NUM_MSG_200[2..5]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(codec.is_mid_frame());
    buf.extend_from_slice(&NUM_MSG_200[5..]);
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(frame(1, &[0, 0, 0, 200]))
    );
    assert!(!codec.is_mid_frame());
}

#[test]
fn reset_forgets_a_partly_decoded_frame() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut old = BytesMut::from(&NUM_MSG_200[..5]);
    assert_eq!(codec.decode(&mut old).unwrap(), None);
    assert!(codec.is_mid_frame());
    codec.reset();
    assert!(!codec.is_mid_frame());
    // A new connection's bytes decode from the start.
    let mut fresh = BytesMut::from(STR_MSG_HELLO);
    assert_eq!(
        codec.decode(&mut fresh).unwrap(),
        Some(frame(2, b"hello world!"))
    );
}

#[tokio::test]
async fn framed_read_over_scripted_reads_yields_ltprotocol_frames() {
    // NumMsg(200) trickles in, then StrMsg and NumMsg(7) arrive coalesced with a split.
    let mock = Builder::new()
        .read(b"\x00")
        .read(b"\x07\x01")
        .read(b"\x00\x00")
        .read(b"\x00\xc8\x00\x0f\x02hello")
        .read(b" world!\x00\x07")
        .read(b"\x01\x00\x00\x00\x07")
        .build();
    let frames: Vec<Frame> = FramedRead::new(mock, FrameCodec::new(HeaderLayout::ltprotocol()))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        frames,
        [
            frame(1, &[0, 0, 0, 200]),
            frame(2, b"hello world!"),
            frame(1, &[0, 0, 0, 7])
        ]
    );
}

#[tokio::test]
async fn framed_read_over_scripted_reads_yields_openflow_frames() {
    // HELLO split inside the xid, ECHO_REQUEST split inside its length and body.
    let mock = Builder::new()
        .read(b"\x04\x00\x00\x08\x00\x00")
        .read(b"\x00\x01\x04\x02\x00")
        .read(b"\x0c\x00\x00\x00\x07pi")
        .read(b"ng")
        .build();
    let frames: Vec<Frame> = FramedRead::new(mock, FrameCodec::new(HeaderLayout::openflow()))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        frames,
        [openflow_frame(0, 1, b""), openflow_frame(2, 7, b"ping")]
    );
}

#[tokio::test]
async fn framed_read_one_byte_per_read_yields_the_same_frames() {
    for (layout, (wire, expected)) in presets() {
        let mut builder = Builder::new();
        for byte in wire.chunks(1) {
            builder.read(byte);
        }
        let frames: Vec<Frame> = FramedRead::new(builder.build(), FrameCodec::new(layout))
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(frames, expected);
    }
}

#[test]
fn bodies_point_into_the_read_buffer() {
    for (layout, (wire, expected)) in presets() {
        let mut buf = BytesMut::with_capacity(wire.len());
        buf.extend_from_slice(&wire);
        let start = buf.as_ptr() as usize;
        let allocation = start..start + buf.capacity();
        let mut codec = FrameCodec::new(layout);
        let mut got = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            if !frame.body.is_empty() {
                let at = frame.body.as_ptr() as usize;
                assert!(
                    allocation.contains(&at) && allocation.contains(&(at + frame.body.len() - 1)),
                    "body of {frame:?} was copied out of the read buffer"
                );
            }
            got.push(frame);
        }
        assert_eq!(got, expected);
    }
}

#[test]
fn body_offset_in_the_buffer_is_exactly_after_its_header() {
    let (wire, _) = ltprotocol_stream();
    let mut buf = BytesMut::from(&wire[..]);
    let start = buf.as_ptr() as usize;
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let first = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(first.body.as_ptr() as usize, start + 3);
    let _empty = codec.decode(&mut buf).unwrap().unwrap();
    let third = codec.decode(&mut buf).unwrap().unwrap();
    // NumMsg (7) + empty (3) + StrMsg header (3).
    assert_eq!(third.body.as_ptr() as usize, start + 13);
}

#[test]
fn decode_does_not_reserve_the_declared_length_up_front() {
    // Declares the largest frame, 65535 bytes, then sends only 10 body bytes.
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"\xff\xff\x01");
    buf.extend_from_slice(&[0x41; 10]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(codec.is_mid_frame());
    assert!(
        buf.capacity() < 16 * 1024,
        "capacity {} after 13 bytes of a 65535-byte frame",
        buf.capacity()
    );
    // A trickle keeps the buffer in proportion to what has arrived.
    for _ in 0..100 {
        buf.extend_from_slice(&[0x41; 10]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
    assert_eq!(buf.len(), 1013);
    assert!(buf.capacity() < 16 * 1024, "capacity {}", buf.capacity());
}

#[test]
fn decode_does_not_reserve_a_wide_declared_length_up_front() {
    // A u32 length declaring 8 MiB (the default inbound maximum) with 10 body bytes sent.
    let layout = HeaderLayout::builder()
        .length(0, ltprotocol::Int::U32)
        .message_type(4, ltprotocol::Int::U8)
        .build()
        .unwrap();
    let mut codec = FrameCodec::new(layout);
    assert_eq!(codec.inbound_limit(), 8 * 1024 * 1024);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(8u32 * 1024 * 1024).to_be_bytes());
    buf.extend_from_slice(&[1]);
    buf.extend_from_slice(&[0x41; 10]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() < 16 * 1024, "capacity {}", buf.capacity());
}

#[test]
fn a_large_frame_fed_in_4_kib_reads_decodes_whole() {
    let layout = HeaderLayout::ltprotocol();
    let body: Bytes = (0..65_532u32).map(|i| (i % 251) as u8).collect();
    let big = Frame::new(MessageType::new(3), body);
    let mut wire = BytesMut::new();
    FrameCodec::new(layout.clone())
        .encode(&big, &mut wire)
        .unwrap();
    wire.extend_from_slice(NUM_MSG_7);
    let got = decode_pieces(&layout, wire.chunks(4096));
    assert_eq!(got, [big, frame(1, &[0, 0, 0, 7])]);
}
