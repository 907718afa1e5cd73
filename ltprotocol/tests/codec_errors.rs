//! Every way a byte stream or a frame can be refused, with the values each error carries.

use std::io;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use ltprotocol::codec::DEFAULT_MAX_INBOUND;
use ltprotocol::{
    EncodeError, Frame, FrameCodec, FrameError, HeaderLayout, Int, LengthCounts, MessageType,
};
use tokio_test::io::Builder;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

const NUM_MSG_200: &[u8] = b"\x00\x07\x01\x00\x00\x00\xc8";

fn frame(message_type: i128, body: &'static [u8]) -> Frame {
    Frame::new(MessageType::new(message_type), Bytes::from_static(body))
}

/// Decodes from `bytes` in one go, returning the first error (and checking it comes before any
/// frame).
fn first_error(codec: &mut FrameCodec, bytes: &[u8]) -> FrameError {
    let mut buf = BytesMut::from(bytes);
    match codec.decode(&mut buf) {
        Err(err) => err,
        Ok(got) => panic!("expected an error, got {got:?}"),
    }
}

/// A layout with a signed length field of `int` at offset 0 and a `u8` type right after it.
fn signed_length_layout(int: Int) -> HeaderLayout {
    HeaderLayout::builder()
        .length(0, int)
        .message_type(int.width(), Int::U8)
        .build()
        .unwrap()
}

// ---- FrameError::TooShort ------------------------------------------------------------------

#[test]
fn decode_rejects_length_shorter_than_header() {
    for declared in 0u8..=2 {
        let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
        let err = first_error(&mut codec, &[0, declared, 1, 0x41, 0x41]);
        assert!(
            matches!(
                err,
                FrameError::TooShort { declared: d, frame_len: f, header_len: 3 }
                    if d == i128::from(declared) && f == i128::from(declared)
            ),
            "{declared}: {err:?}"
        );
    }
}

#[test]
fn too_short_names_the_length_and_the_header_size() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let err = first_error(&mut codec, b"\x00\x00\x01");
    assert_eq!(
        err.to_string(),
        "length 0 is smaller than the 3-byte header"
    );
    let mut codec = FrameCodec::new(HeaderLayout::openflow());
    let err = first_error(&mut codec, b"\x04\x00\x00\x07\x00\x00\x00\x01");
    assert!(matches!(
        err,
        FrameError::TooShort {
            declared: 7,
            frame_len: 7,
            header_len: 8
        }
    ));
    assert_eq!(
        err.to_string(),
        "length 7 is smaller than the 8-byte header"
    );
}

#[test]
fn too_short_is_checked_after_the_adjustment() {
    // Whole frame = raw - 2: raw 4 declares a 2-byte frame, shorter than the header.
    let layout = HeaderLayout::builder()
        .length_counts(LengthCounts::Adjusted(-2))
        .build()
        .unwrap();
    let mut codec = FrameCodec::new(layout);
    let err = first_error(&mut codec, b"\x00\x04\x01\x00");
    assert!(
        matches!(
            err,
            FrameError::TooShort {
                declared: 4,
                frame_len: 2,
                header_len: 3
            }
        ),
        "{err:?}"
    );
}

// ---- FrameError::NegativeLength ------------------------------------------------------------

#[test]
fn decode_rejects_negative_i16_length_of_the_ancestor_probe() {
    // The ancestor, with 'h', delivered a garbage body of five 0x41 for this input.
    let mut codec = FrameCodec::new(signed_length_layout(Int::I16));
    let mut probe = b"\xff\xfd\x01".to_vec();
    probe.extend_from_slice(&[0x41; 8]);
    let err = first_error(&mut codec, &probe);
    assert!(
        matches!(err, FrameError::NegativeLength { declared: -3 }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "length -3 is negative");
}

#[test]
fn decode_rejects_negative_lengths_for_every_signed_struct_code() {
    for code in ['b', 'h', 'i', 'l', 'q'] {
        let int = Int::from_struct_code(code).unwrap();
        let mut header = vec![0u8; int.width() + 1];
        // -3 in two's complement, big-endian: ff .. ff fd.
        header[..int.width()].fill(0xff);
        header[int.width() - 1] = 0xfd;
        header[int.width()] = 1;
        // Byte by byte: nothing until the header is complete, then the error, never a frame.
        let mut codec = FrameCodec::new(signed_length_layout(int));
        let mut buf = BytesMut::new();
        let mut result = Ok(None);
        for byte in header.iter().chain(&[0x41; 8]) {
            buf.extend_from_slice(&[*byte]);
            result = codec.decode(&mut buf);
            if !matches!(result, Ok(None)) {
                break;
            }
        }
        assert_eq!(
            buf.len(),
            header.len(),
            "{code}: error once the header is whole"
        );
        assert!(
            matches!(result, Err(FrameError::NegativeLength { declared: -3 })),
            "{code}: {result:?}"
        );
    }
}

#[test]
fn decode_rejects_the_most_negative_length() {
    let mut codec = FrameCodec::new(signed_length_layout(Int::I64));
    let err = first_error(&mut codec, b"\x80\x00\x00\x00\x00\x00\x00\x00\x01");
    assert!(
        matches!(err, FrameError::NegativeLength { declared } if declared == i128::from(i64::MIN)),
        "{err:?}"
    );
}

// ---- FrameError::TooLong -------------------------------------------------------------------

#[test]
fn decode_rejects_length_over_max_inbound_from_the_header_alone() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol()).max_inbound(1024);
    assert_eq!(codec.inbound_limit(), 1024);
    // Only the header (0x07d0 = 2000) has arrived: the error comes before any body byte.
    let mut buf = BytesMut::with_capacity(3);
    buf.extend_from_slice(b"\x07\xd0\x01");
    let capacity = buf.capacity();
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::TooLong {
                declared: 2000,
                frame_len: 2000,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(buf.capacity(), capacity, "no room was made for the body");
    assert!(!codec.is_mid_frame());
    assert_eq!(
        err.to_string(),
        "length 2000 exceeds the maximum frame length 1024"
    );
}

#[test]
fn decode_accepts_a_frame_exactly_at_max_inbound() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol()).max_inbound(1024);
    let mut buf = BytesMut::from(&b"\x04\x00\x01"[..]);
    buf.extend_from_slice(&[0; 1021]);
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(frame.body.len(), 1021);
    let err = first_error(&mut codec, b"\x04\x01\x01");
    assert!(matches!(
        err,
        FrameError::TooLong {
            declared: 1025,
            max: 1024,
            ..
        }
    ));
}

#[test]
fn decode_rejects_a_4_gib_u64_length_with_the_default_8_mib_maximum() {
    let layout = HeaderLayout::builder()
        .length(0, Int::U64)
        .message_type(8, Int::U8)
        .build()
        .unwrap();
    let mut codec = FrameCodec::new(layout);
    assert_eq!(codec.inbound_limit(), DEFAULT_MAX_INBOUND);
    assert_eq!(DEFAULT_MAX_INBOUND, 8 * 1024 * 1024);
    // 2^32 = 00 00 00 01 00 00 00 00.
    let err = first_error(&mut codec, b"\x00\x00\x00\x01\x00\x00\x00\x00\x01");
    assert!(
        matches!(
            err,
            FrameError::TooLong { declared: 0x1_0000_0000, frame_len: 0x1_0000_0000, max }
                if max == DEFAULT_MAX_INBOUND
        ),
        "{err:?}"
    );
}

#[test]
fn decode_rejects_the_largest_u32_and_u64_lengths_with_the_default_maximum() {
    let u32_layout = HeaderLayout::builder()
        .length(0, Int::U32)
        .message_type(4, Int::U8)
        .build()
        .unwrap();
    let err = first_error(&mut FrameCodec::new(u32_layout), b"\xff\xff\xff\xff\x01");
    assert!(
        matches!(err, FrameError::TooLong { declared: 0xffff_ffff, max, .. } if max == DEFAULT_MAX_INBOUND),
        "{err:?}"
    );
    let u64_layout = HeaderLayout::builder()
        .length(0, Int::U64)
        .message_type(8, Int::U8)
        .build()
        .unwrap();
    let err = first_error(&mut FrameCodec::new(u64_layout), &[0xff; 9]);
    assert!(
        matches!(err, FrameError::TooLong { declared, .. } if declared == i128::from(u64::MAX)),
        "{err:?}"
    );
}

#[test]
fn max_inbound_applies_to_the_whole_frame_after_adjustment() {
    // The length counts the body only: raw 1022 is a 1025-byte frame, over 1024.
    let layout = HeaderLayout::builder()
        .length_counts(LengthCounts::Body)
        .build()
        .unwrap();
    let mut codec = FrameCodec::new(layout).max_inbound(1024);
    let err = first_error(&mut codec, b"\x03\xfe\x01");
    assert!(
        matches!(
            err,
            FrameError::TooLong {
                declared: 1022,
                frame_len: 1025,
                max: 1024
            }
        ),
        "{err:?}"
    );
}

// ---- FrameError::Truncated -----------------------------------------------------------------

#[test]
fn eof_mid_header_is_truncated_in_header() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut buf = BytesMut::from(&b"\x00"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                missing: 2,
                received: 1,
                in_header: true
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "stream ended 2 bytes short of a complete header"
    );
    let mut codec = FrameCodec::new(HeaderLayout::openflow());
    let mut buf = BytesMut::from(&b"\x04\x00\x00"[..]);
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                missing: 5,
                received: 3,
                in_header: true
            }
        ),
        "{err:?}"
    );
}

#[test]
fn eof_mid_body_is_truncated_with_missing_and_received_counts() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut buf = BytesMut::from(&NUM_MSG_200[..5]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                missing: 2,
                received: 5,
                in_header: false
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "stream ended 2 bytes short of a complete frame"
    );
}

#[test]
fn eof_right_after_a_complete_header_is_truncated_in_body() {
    // decode_eof alone (no decode before it) reads the header, then reports the body missing.
    let mut codec = FrameCodec::new(HeaderLayout::openflow());
    let mut buf = BytesMut::from(&b"\x04\x06\x00\x20\x00\x00\x00\x02"[..]);
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                missing: 24,
                received: 8,
                in_header: false
            }
        ),
        "{err:?}"
    );
}

#[test]
fn eof_yields_complete_frames_before_the_truncated_one() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut buf = BytesMut::from(&b"\x00\x03\x09\x00\x07\x01\x00"[..]);
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(frame(9, b"")));
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                missing: 3,
                received: 4,
                in_header: false
            }
        ),
        "{err:?}"
    );
}

#[test]
fn eof_on_a_frame_boundary_is_clean() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut buf = BytesMut::from(NUM_MSG_200);
    assert_eq!(
        codec.decode_eof(&mut buf).unwrap(),
        Some(frame(1, &[0, 0, 0, 200]))
    );
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

#[tokio::test]
async fn framed_read_ending_mid_frame_yields_truncated_then_ends() {
    let mock = Builder::new()
        .read(NUM_MSG_200)
        .read(b"\x00\x0f\x02hello")
        .build();
    let mut reader = FramedRead::new(mock, FrameCodec::new(HeaderLayout::ltprotocol()));
    let first = reader.next().await.unwrap().unwrap();
    assert_eq!(first, frame(1, &[0, 0, 0, 200]));
    let err = reader.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                missing: 7,
                received: 8,
                in_header: false
            }
        ),
        "{err:?}"
    );
    assert!(reader.next().await.is_none());
}

#[tokio::test]
async fn framed_read_ending_mid_header_yields_truncated_in_header() {
    let mock = Builder::new().read(b"\x04\x00\x00\x08\x00").build();
    let mut reader = FramedRead::new(mock, FrameCodec::new(HeaderLayout::openflow()));
    let err = reader.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                missing: 3,
                received: 5,
                in_header: true
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn framed_read_stops_at_the_first_corrupt_length() {
    // A good frame, then length 1, then a good frame that must never be delivered, all in
    // one read.
    let wire = [NUM_MSG_200, b"\x00\x01\x01", NUM_MSG_200].concat();
    let mock = Builder::new().read(&wire).build();
    let mut reader = FramedRead::new(mock, FrameCodec::new(HeaderLayout::ltprotocol()));
    assert_eq!(
        reader.next().await.unwrap().unwrap(),
        frame(1, &[0, 0, 0, 200])
    );
    let err = reader.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, FrameError::TooShort { declared: 1, .. }),
        "{err:?}"
    );
    assert!(reader.next().await.is_none());
}

// ---- FrameError::Io ------------------------------------------------------------------------

#[tokio::test]
async fn framed_read_passes_a_read_error_through_as_io() {
    let mock = Builder::new()
        .read(&NUM_MSG_200[..4])
        .read_error(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
        .build();
    let mut reader = FramedRead::new(mock, FrameCodec::new(HeaderLayout::ltprotocol()));
    let err = reader.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, FrameError::Io(io) if io.kind() == io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "read failed");
}

// ---- EncodeError ---------------------------------------------------------------------------

/// Encodes `frame` into a buffer already holding a frame and checks that buffer is untouched.
fn encode_error(codec: &mut FrameCodec, frame: &Frame) -> EncodeError {
    let mut dst = BytesMut::from(NUM_MSG_200);
    let err = codec.encode(frame, &mut dst).unwrap_err();
    assert_eq!(&dst[..], NUM_MSG_200, "dst changed by a refused {frame:?}");
    err
}

#[test]
fn encode_refuses_type_out_of_the_type_field_range() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let err = encode_error(&mut codec, &frame(256, b"x"));
    assert!(
        matches!(err, EncodeError::TypeOutOfRange { message_type, int: Int::U8 } if message_type.value() == 256),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "message type 256 does not fit a u8 type field"
    );
    let err = encode_error(&mut codec, &frame(-1, b""));
    assert!(
        matches!(err, EncodeError::TypeOutOfRange { message_type, int: Int::U8 } if message_type.value() == -1),
        "{err:?}"
    );
}

#[test]
fn encode_refuses_type_out_of_a_signed_type_field_range() {
    let layout = HeaderLayout::builder()
        .message_type(2, Int::I8)
        .build()
        .unwrap();
    let mut codec = FrameCodec::new(layout);
    let err = encode_error(&mut codec, &frame(128, b""));
    assert!(
        matches!(err, EncodeError::TypeOutOfRange { message_type, int: Int::I8 } if message_type.value() == 128),
        "{err:?}"
    );
    let err = encode_error(&mut codec, &frame(-129, b""));
    assert!(matches!(err, EncodeError::TypeOutOfRange { .. }), "{err:?}");
}

#[test]
fn encode_refuses_xid_over_u32_max() {
    let layout = HeaderLayout::openflow();
    let xid = layout.field("xid").unwrap();
    let mut codec = FrameCodec::new(layout);
    let too_big = i128::from(u32::MAX) + 1;
    let err = encode_error(&mut codec, &frame(0, b"").with_field(xid, too_big));
    assert!(
        matches!(
            &err,
            EncodeError::FieldOutOfRange { field, value: 0x1_0000_0000, int: Int::U32 }
                if field == "xid"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "value 4294967296 does not fit header field `xid` (u32)"
    );
    // u32::MAX itself fits.
    let mut dst = BytesMut::new();
    codec
        .encode(
            &frame(0, b"").with_field(xid, i128::from(u32::MAX)),
            &mut dst,
        )
        .unwrap();
    assert_eq!(&dst[..], b"\x04\x00\x00\x08\xff\xff\xff\xff");
}

#[test]
fn encode_refuses_a_frame_over_the_field_maximum() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    assert_eq!(codec.outbound_limit(), 65_535);
    let err = encode_error(
        &mut codec,
        &Frame::new(MessageType::new(1), Bytes::from(vec![0; 65_533])),
    );
    assert!(
        matches!(
            err,
            EncodeError::TooLarge {
                length: 65_536,
                max: 65_535
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "frame of 65536 bytes exceeds the maximum frame length 65535"
    );
}

#[test]
fn encode_refuses_a_frame_over_max_outbound() {
    let mut codec = FrameCodec::new(HeaderLayout::openflow()).max_outbound(100);
    let err = encode_error(&mut codec, &frame(0, &[0; 93]));
    assert!(
        matches!(
            err,
            EncodeError::TooLarge {
                length: 101,
                max: 100
            }
        ),
        "{err:?}"
    );
}

#[test]
fn encode_refuses_a_frame_too_small_for_a_positive_adjustment() {
    // Whole frame = raw + 10: a 3-byte frame needs raw -7, which a u16 cannot hold.
    let layout = HeaderLayout::builder()
        .length_counts(LengthCounts::Adjusted(10))
        .build()
        .unwrap();
    let mut codec = FrameCodec::new(layout);
    let err = encode_error(&mut codec, &frame(1, b""));
    assert!(
        matches!(
            err,
            EncodeError::LengthOutOfRange {
                length: 3,
                raw: -7,
                int: Int::U16
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "frame of 3 bytes gives length field value -7, which a u16 cannot hold"
    );
    // From 10 bytes on, it fits: raw 0.
    let mut dst = BytesMut::new();
    codec.encode(&frame(1, b"1234567"), &mut dst).unwrap();
    assert_eq!(&dst[..], b"\x00\x00\x011234567");
}

#[test]
fn encode_never_writes_a_negative_length_into_a_signed_field() {
    // Whole frame = raw + 10 with an i16 length: a 3-byte frame would need raw -7, which an
    // i16 holds, but every decoder refuses negative lengths; the encoder must refuse it too.
    let layout = HeaderLayout::builder()
        .length(0, Int::I16)
        .length_counts(LengthCounts::Adjusted(10))
        .build()
        .unwrap();
    let mut codec = FrameCodec::new(layout);
    let err = encode_error(&mut codec, &frame(1, b""));
    assert!(
        matches!(
            err,
            EncodeError::LengthOutOfRange {
                length: 3,
                raw: -7,
                int: Int::I16
            }
        ),
        "{err:?}"
    );
}

#[test]
fn type_error_is_reported_before_anything_is_reserved_or_written() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut dst = BytesMut::new();
    let err = codec.encode(&frame(300, b"abc"), &mut dst).unwrap_err();
    assert!(matches!(err, EncodeError::TypeOutOfRange { .. }));
    assert!(dst.is_empty());
}

#[tokio::test]
async fn framed_write_passes_a_write_error_through_as_io() {
    let mock = Builder::new()
        .write_error(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
        .build();
    let mut writer = FramedWrite::new(mock, FrameCodec::new(HeaderLayout::ltprotocol()));
    let err = writer.send(frame(1, &[0, 0, 0, 200])).await.unwrap_err();
    assert!(
        matches!(&err, EncodeError::Io(io) if io.kind() == io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "write failed");
}

#[tokio::test]
async fn framed_write_sends_exactly_the_golden_bytes() {
    let mock = Builder::new().write(NUM_MSG_200).build();
    let mut writer = FramedWrite::new(mock, FrameCodec::new(HeaderLayout::ltprotocol()));
    writer.send(frame(1, &[0, 0, 0, 200])).await.unwrap();
}
