//! Golden bytes, checked by hand, in both directions: a frame encodes to exactly these bytes,
//! and these bytes decode to exactly that frame (and nothing is left over).
//!
//! The byte-by-byte derivation of every non-preset case is in a comment next to it.

use bytes::{Bytes, BytesMut};
use ltprotocol::{
    ByteOrder, EncodeError, Frame, FrameCodec, HeaderFields, HeaderLayout, Int, LengthCounts,
    MessageType,
};
use tokio_util::codec::{Decoder, Encoder};

const NUM_MSG_200: &[u8] = b"\x00\x07\x01\x00\x00\x00\xc8";
const STR_MSG_HELLO: &[u8] = b"\x00\x0f\x02hello world!";
const OF_HELLO_XID_1: &[u8] = b"\x04\x00\x00\x08\x00\x00\x00\x01";
const OVS_ECHO_REQUEST: &[u8] = b"\x04\x02\x00\x08\x00\x00\x00\x00";
const OVS_FEATURES_REPLY: &[u8] = &[
    0x04, 0x06, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x02, // header: version 4, type 6, length 32, xid 2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa1, // datapath_id
    0x00, 0x00, 0x00, 0x00, // n_buffers
    0xfe, // n_tables = 254
    0x00, 0x00, 0x00, // auxiliary_id, pad
    0x00, 0x00, 0x00, 0x4f, // capabilities
    0x00, 0x00, 0x00, 0x00, // reserved
];

fn frame(message_type: i128, body: &'static [u8]) -> Frame {
    Frame::new(MessageType::new(message_type), Bytes::from_static(body))
}

fn encode(layout: &HeaderLayout, frame: &Frame) -> Vec<u8> {
    let mut codec = FrameCodec::new(layout.clone());
    let mut wire = BytesMut::new();
    codec.encode(frame, &mut wire).unwrap();
    wire.to_vec()
}

/// Decodes exactly one frame from `bytes` and checks nothing is left.
fn decode_one(layout: &HeaderLayout, bytes: &[u8]) -> Frame {
    let mut codec = FrameCodec::new(layout.clone());
    let mut wire = BytesMut::from(bytes);
    let frame = codec.decode(&mut wire).unwrap().expect("a whole frame");
    assert!(wire.is_empty(), "{} bytes left over", wire.len());
    assert!(!codec.is_mid_frame());
    assert_eq!(codec.decode_eof(&mut wire).unwrap(), None);
    frame
}

/// Both directions at once.
fn assert_golden(layout: &HeaderLayout, frame: &Frame, bytes: &[u8]) {
    assert_eq!(encode(layout, frame), bytes, "encode {frame:?}");
    assert_eq!(&decode_one(layout, bytes), frame, "decode {bytes:02x?}");
}

fn openflow_frame(message_type: i128, xid: i128, body: &'static [u8]) -> Frame {
    let layout = HeaderLayout::openflow();
    let version = layout.field("version").unwrap();
    let xid_id = layout.field("xid").unwrap();
    frame(message_type, body)
        .with_field(version, 4)
        .with_field(xid_id, xid)
}

// ---- The ancestor's layout -----------------------------------------------------------------

#[test]
fn num_msg_200_is_length_7_type_1_then_u32_be() {
    assert_golden(
        &HeaderLayout::ltprotocol(),
        &frame(1, &[0, 0, 0, 200]),
        NUM_MSG_200,
    );
}

#[test]
fn str_msg_hello_world_is_length_15_type_2_then_ascii() {
    assert_eq!(STR_MSG_HELLO.len(), 15);
    assert_golden(
        &HeaderLayout::ltprotocol(),
        &frame(2, b"hello world!"),
        STR_MSG_HELLO,
    );
}

#[test]
fn empty_body_is_a_three_byte_frame() {
    assert_golden(&HeaderLayout::ltprotocol(), &frame(9, b""), b"\x00\x03\x09");
}

#[test]
fn ancestor_demo_sequence_decodes_from_one_buffer() {
    // What the ancestor's demo server sends on connect: NumMsg(200), StrMsg, NumMsg(7).
    let mut wire = BytesMut::new();
    wire.extend_from_slice(NUM_MSG_200);
    wire.extend_from_slice(STR_MSG_HELLO);
    wire.extend_from_slice(b"\x00\x07\x01\x00\x00\x00\x07");
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut got = Vec::new();
    while let Some(frame) = codec.decode(&mut wire).unwrap() {
        got.push(frame);
    }
    assert_eq!(
        got,
        [
            frame(1, &[0, 0, 0, 200]),
            frame(2, b"hello world!"),
            frame(1, &[0, 0, 0, 7])
        ]
    );
    assert!(wire.is_empty());
}

// ---- OpenFlow -------------------------------------------------------------------------------

#[test]
fn openflow_hello_xid_1_uses_version_default_4() {
    let layout = HeaderLayout::openflow();
    let xid = layout.field("xid").unwrap();
    // Sent without a version: the layout's default, 4, goes on the wire.
    let sent = frame(0, b"").with_field(xid, 1);
    assert_eq!(encode(&layout, &sent), OF_HELLO_XID_1);
    // Received: every field is set, the version included.
    let got = decode_one(&layout, OF_HELLO_XID_1);
    assert_eq!(got, openflow_frame(0, 1, b""));
    assert_eq!(got.fields.get_named(&layout, "version"), Some(4));
    assert_eq!(got.fields.get_named(&layout, "xid"), Some(1));
    assert_eq!(got.message_type, MessageType::new(0));
    assert!(got.body.is_empty());
}

#[test]
fn openflow_hello_encodes_with_encode_with_and_no_body() {
    let layout = HeaderLayout::openflow();
    let codec = FrameCodec::new(layout.clone());
    let fields = HeaderFields::new().with(layout.field("xid").unwrap(), 1);
    let mut wire = BytesMut::new();
    codec
        .encode_with(MessageType::new(0), &fields, &mut wire, |_| {})
        .unwrap();
    assert_eq!(&wire[..], OF_HELLO_XID_1);
}

#[test]
fn ovs_echo_request_is_type_2_xid_0() {
    assert_golden(
        &HeaderLayout::openflow(),
        &openflow_frame(2, 0, b""),
        OVS_ECHO_REQUEST,
    );
}

#[test]
fn ovs_features_reply_decodes_type_6_xid_2_with_24_byte_body() {
    let layout = HeaderLayout::openflow();
    let got = decode_one(&layout, OVS_FEATURES_REPLY);
    assert_eq!(got.message_type, MessageType::new(6));
    assert_eq!(got.fields.get_named(&layout, "xid"), Some(2));
    assert_eq!(got.fields.get_named(&layout, "version"), Some(4));
    assert_eq!(got.body.len(), 24);
    assert_eq!(&got.body[..], &OVS_FEATURES_REPLY[8..]);
    // datapath id a1, 254 tables.
    assert_eq!(&got.body[..8], &[0, 0, 0, 0, 0, 0, 0, 0xa1]);
    assert_eq!(got.body[12], 0xfe);
    // And it encodes back to the captured bytes.
    assert_eq!(encode(&layout, &got), OVS_FEATURES_REPLY);
}

// ---- Other struct codes, byte orders, length meanings, extra fields ------------------------

#[test]
fn struct_codes_i_and_h_give_a_six_byte_header() {
    // LTProtocol(msgs, len_type='I', type_type='h'): length u32 @0, type i16 @4.
    let layout = HeaderLayout::builder()
        .length(0, Int::from_struct_code('I').unwrap())
        .message_type(4, Int::from_struct_code('h').unwrap())
        .build()
        .unwrap();
    assert_eq!(layout.header_len(), 6);
    // NumMsg(200): whole frame 6 + 4 = 10 = 00 00 00 0a; type 1 = 00 01; body 00 00 00 c8.
    assert_golden(
        &layout,
        &frame(1, &[0, 0, 0, 200]),
        b"\x00\x00\x00\x0a\x00\x01\x00\x00\x00\xc8",
    );
    // A negative type in the signed field: -2 = ff fe; empty body, length 6.
    assert_golden(&layout, &frame(-2, b""), b"\x00\x00\x00\x06\xff\xfe");
}

#[test]
fn struct_codes_q_and_b_give_a_nine_byte_header() {
    // len_type='Q', type_type='b': length u64 @0, type i8 @8.
    let layout = HeaderLayout::builder()
        .length(0, Int::U64)
        .message_type(8, Int::I8)
        .build()
        .unwrap();
    assert_eq!(layout.header_len(), 9);
    // Type -1 = ff, body "ab": whole frame 9 + 2 = 11 = 0x0b over eight bytes.
    assert_golden(
        &layout,
        &frame(-1, b"ab"),
        b"\x00\x00\x00\x00\x00\x00\x00\x0b\xffab",
    );
}

#[test]
fn struct_codes_l_and_big_l_are_four_bytes_like_python_standard_sizes() {
    // len_type='L' (u32), type_type='l' (i32): header 8.
    let layout = HeaderLayout::builder()
        .length(0, Int::from_struct_code('L').unwrap())
        .message_type(4, Int::from_struct_code('l').unwrap())
        .build()
        .unwrap();
    assert_eq!(layout.header_len(), 8);
    // Type 0x01020304, body "z": length 9.
    assert_golden(
        &layout,
        &frame(0x0102_0304, b"z"),
        b"\x00\x00\x00\x09\x01\x02\x03\x04z",
    );
}

#[test]
fn little_endian_header_reverses_length_and_type_bytes() {
    // u16 length LE @0, u16 type LE @2: header 4. Type 0x0102 = 02 01; body 3 bytes, length 7 = 07 00.
    let layout = HeaderLayout::builder()
        .message_type(2, Int::U16)
        .byte_order(ByteOrder::Little)
        .build()
        .unwrap();
    assert_golden(&layout, &frame(0x0102, b"abc"), b"\x07\x00\x02\x01abc");
}

#[test]
fn little_endian_default_widths_leave_frame_bodies_untouched() {
    // Default widths, little-endian: NumMsg(200) as a raw frame is 07 00 | 01 | 00 00 00 c8.
    let layout = HeaderLayout::builder()
        .byte_order(ByteOrder::Little)
        .build()
        .unwrap();
    assert_golden(
        &layout,
        &frame(1, &[0, 0, 0, 200]),
        b"\x07\x00\x01\x00\x00\x00\xc8",
    );
}

#[test]
fn length_counting_the_body_only_excludes_the_header() {
    let layout = HeaderLayout::builder()
        .length_counts(LengthCounts::Body)
        .build()
        .unwrap();
    // NumMsg(200): the length is the 4-byte body: 00 04 | 01 | 00 00 00 c8.
    assert_golden(
        &layout,
        &frame(1, &[0, 0, 0, 200]),
        b"\x00\x04\x01\x00\x00\x00\xc8",
    );
    // An empty body declares length 0, which is legal here.
    assert_golden(&layout, &frame(5, b""), b"\x00\x00\x05");
}

#[test]
fn adjusted_length_adds_the_adjustment_to_the_field() {
    // Whole frame = raw + 1 (the length counts all but one byte): "hi" → frame 5, raw 4.
    let layout = HeaderLayout::builder()
        .length_counts(LengthCounts::Adjusted(1))
        .build()
        .unwrap();
    assert_golden(&layout, &frame(3, b"hi"), b"\x00\x04\x03hi");
    // Whole frame = raw - 2 (Netty's classic): "hi" → frame 5, raw 7.
    let layout = HeaderLayout::builder()
        .length_counts(LengthCounts::Adjusted(-2))
        .build()
        .unwrap();
    assert_golden(&layout, &frame(3, b"hi"), b"\x00\x07\x03hi");
}

#[test]
fn extra_fields_and_reserved_bytes_sit_where_the_layout_says() {
    // length u16 @0, type u8 @2, seq u32 @3, flags u8 @7 (default 0x80), 2 reserved bytes: 10.
    let layout = HeaderLayout::builder()
        .field("seq", 3, Int::U32)
        .field_with_default("flags", 7, Int::U8, 0x80)
        .header_len(10)
        .build()
        .unwrap();
    let seq = layout.field("seq").unwrap();
    let flags = layout.field("flags").unwrap();
    // Type 5, seq 0x01020304, flags default, body "xy": length 12 = 00 0c.
    let sent = frame(5, b"xy").with_field(seq, 0x0102_0304);
    let wire: &[u8] = b"\x00\x0c\x05\x01\x02\x03\x04\x80\x00\x00xy";
    assert_eq!(encode(&layout, &sent), wire);
    let got = decode_one(&layout, wire);
    assert_eq!(got, sent.with_field(flags, 0x80));
    // Reserved bytes are ignored when read.
    let dirty: &[u8] = b"\x00\x0c\x05\x01\x02\x03\x04\x80\xaa\xbbxy";
    assert_eq!(decode_one(&layout, dirty), got);
}

#[test]
fn extra_fields_before_the_length_in_little_endian() {
    // magic u16 @0, type i8 @2, length u32 @3, LE, length counts the body only: header 7.
    let layout = HeaderLayout::builder()
        .field_with_default("magic", 0, Int::U16, 0xbeef)
        .message_type(2, Int::I8)
        .length(3, Int::U32)
        .byte_order(ByteOrder::Little)
        .length_counts(LengthCounts::Body)
        .build()
        .unwrap();
    assert_eq!(layout.header_len(), 7);
    let magic = layout.field("magic").unwrap();
    // magic ef be | type -3 = fd | length 3 = 03 00 00 00 | "abc".
    let wire: &[u8] = b"\xef\xbe\xfd\x03\x00\x00\x00abc";
    assert_golden(&layout, &frame(-3, b"abc").with_field(magic, 0xbeef), wire);
}

// ---- The largest legal frame ---------------------------------------------------------------

#[test]
fn largest_default_frame_is_65535_bytes_with_a_65532_byte_body() {
    let layout = HeaderLayout::ltprotocol();
    let body: Bytes = (0..65_532u32).map(|i| i as u8).collect();
    let big = Frame::new(MessageType::new(1), body);
    let wire = encode(&layout, &big);
    assert_eq!(wire.len(), 65_535);
    assert_eq!(&wire[..3], b"\xff\xff\x01");
    assert_eq!(decode_one(&layout, &wire), big);
}

#[test]
fn body_of_65533_bytes_is_refused_and_leaves_dst_unchanged() {
    let mut codec = FrameCodec::new(HeaderLayout::ltprotocol());
    let mut wire = BytesMut::from(NUM_MSG_200);
    let too_big = Frame::new(MessageType::new(1), Bytes::from(vec![0u8; 65_533]));
    let err = codec.encode(&too_big, &mut wire).unwrap_err();
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
    assert_eq!(&wire[..], NUM_MSG_200);
}

// ---- Typed messages ------------------------------------------------------------------------

mod typed {
    use super::*;
    use ltprotocol::{Body, Message, Protocol, Unknown};

    /// The ancestor's example message: type 1, body a big-endian `u32`.
    #[derive(Debug, PartialEq, Message)]
    #[ltp(message_type = 1)]
    struct NumMsg {
        num: u32,
    }

    /// The ancestor's example message: type 2, body a string filling the rest.
    #[derive(Debug, PartialEq, Message)]
    #[ltp(message_type = 2)]
    struct StrMsg {
        text: String,
    }

    /// The ancestor's `LTProtocol([NumMsg, StrMsg], 'H', 'B')`.
    #[derive(Debug, PartialEq, Protocol)]
    enum Demo {
        Num(NumMsg),
        Str(StrMsg),
        #[ltp(unknown)]
        Other(Unknown),
    }

    #[test]
    fn typed_num_msg_200_encodes_and_decodes_through_demo() {
        let layout = HeaderLayout::ltprotocol();
        let codec = FrameCodec::new(layout.clone());
        let mut wire = BytesMut::new();
        codec
            .encode_message(&NumMsg { num: 200 }, &mut wire)
            .unwrap();
        assert_eq!(&wire[..], NUM_MSG_200);
        let got = decode_one(&layout, NUM_MSG_200);
        let msg =
            Demo::decode(got.message_type, Body::from(&got.body), layout.byte_order()).unwrap();
        assert_eq!(msg, Demo::Num(NumMsg { num: 200 }));
    }

    #[test]
    fn typed_str_msg_hello_encodes_and_decodes_through_demo() {
        let layout = HeaderLayout::ltprotocol();
        let codec = FrameCodec::new(layout.clone());
        let mut wire = BytesMut::new();
        let hello = StrMsg {
            text: "hello world!".into(),
        };
        codec.encode_message(&hello, &mut wire).unwrap();
        assert_eq!(&wire[..], STR_MSG_HELLO);
        // Encoding the protocol value gives the same bytes as the message itself.
        let mut via_enum = BytesMut::new();
        codec
            .encode_message(&Demo::Str(hello), &mut via_enum)
            .unwrap();
        assert_eq!(&via_enum[..], STR_MSG_HELLO);
        let got = decode_one(&layout, STR_MSG_HELLO);
        let msg =
            Demo::decode(got.message_type, Body::from(&got.body), layout.byte_order()).unwrap();
        assert_eq!(
            msg,
            Demo::Str(StrMsg {
                text: "hello world!".into()
            })
        );
    }

    #[test]
    fn typed_unknown_type_decodes_to_the_unknown_variant_and_encodes_back() {
        let layout = HeaderLayout::ltprotocol();
        let wire: &[u8] = b"\x00\x05\x63hi";
        let got = decode_one(&layout, wire);
        let msg =
            Demo::decode(got.message_type, Body::from(&got.body), layout.byte_order()).unwrap();
        let expected = Unknown {
            message_type: MessageType::new(0x63),
            body: Bytes::from_static(b"hi"),
        };
        assert_eq!(msg, Demo::Other(expected));
        let mut again = BytesMut::new();
        FrameCodec::new(layout)
            .encode_message(&msg, &mut again)
            .unwrap();
        assert_eq!(&again[..], wire);
    }

    #[test]
    fn typed_num_msg_in_a_little_endian_layout_has_a_little_endian_body() {
        // The layout's byte order is the body's default: 07 00 | 01 | c8 00 00 00.
        let layout = HeaderLayout::builder()
            .byte_order(ByteOrder::Little)
            .build()
            .unwrap();
        let codec = FrameCodec::new(layout.clone());
        let mut wire = BytesMut::new();
        codec
            .encode_message(&NumMsg { num: 200 }, &mut wire)
            .unwrap();
        let expected: &[u8] = b"\x07\x00\x01\xc8\x00\x00\x00";
        assert_eq!(&wire[..], expected);
        let got = decode_one(&layout, expected);
        let msg =
            Demo::decode(got.message_type, Body::from(&got.body), layout.byte_order()).unwrap();
        assert_eq!(msg, Demo::Num(NumMsg { num: 200 }));
    }
}
