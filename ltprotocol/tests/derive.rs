//! `#[derive(Wire)]`, `#[derive(Message)]` and `#[derive(Protocol)]`: round trips for every
//! field kind, golden bytes, field errors, and decoding by type number.

use bytes::{Bytes, BytesMut};
use ltprotocol::{
    Body, BodyErrorKind, BodyReader, BodyWriter, ByteOrder, DecodeError, Encode, Message,
    MessageType, Protocol, Unknown, Wire,
};

/// The ancestor's demo protocol (`tests/test_ltprotocol.py`).
#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 1)]
struct NumMsg {
    num: u32,
}

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 2)]
struct StrMsg {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Protocol)]
enum Demo {
    Num(NumMsg),
    Str(StrMsg),
    #[ltp(unknown)]
    Other(Unknown),
}

#[derive(Debug, Clone, PartialEq, Wire)]
struct Ints {
    a: u8,
    b: i8,
    c: u16,
    d: i16,
    e: u32,
    f: i32,
    g: u64,
    h: i64,
    i: u128,
    j: i128,
}

#[derive(Debug, Clone, PartialEq, Wire)]
struct Scalars {
    x: f32,
    y: f64,
    flag: bool,
    mac: [u8; 6],
}

#[derive(Debug, Clone, PartialEq, Wire)]
struct Point {
    x: i16,
    y: i16,
}

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 10)]
struct Nested {
    id: u8,
    at: Point,
    rest: Bytes,
}

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 11)]
struct WithVec {
    len: u16,
    data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 12)]
struct Pair(u16, String);

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 13)]
struct Ping;

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = 14)]
struct Mixed {
    big: u32,
    #[ltp(byte_order = "little")]
    little: u32,
    #[ltp(byte_order = "big")]
    forced_big: u16,
    #[ltp(byte_order = "little")]
    point: Point,
}

const OFPT_HELLO: u8 = 0;

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = OFPT_HELLO, name = "OFPT_HELLO")]
struct Hello;

#[derive(Debug, Clone, PartialEq, Message)]
#[ltp(message_type = -3)]
struct Negative {
    r#type: u8,
}

#[derive(Debug, Clone, PartialEq, Wire)]
struct Generic<T> {
    head: u8,
    value: T,
}

fn encode<M: Message>(msg: &M, order: ByteOrder) -> BytesMut {
    let mut body = BytesMut::new();
    msg.encode_body(&mut body, order);
    body
}

fn write_wire<T: Wire>(value: &T, order: ByteOrder) -> Bytes {
    let mut buf = BytesMut::new();
    value.write(&mut BodyWriter::new(&mut buf, order));
    buf.freeze()
}

fn read_wire<T: Wire>(bytes: Bytes, order: ByteOrder) -> T {
    let mut r = BodyReader::new(&bytes, order);
    let value = T::read(&mut r).unwrap();
    r.finish().unwrap();
    value
}

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(msg: &M, order: ByteOrder) {
    let body = encode(msg, order);
    assert_eq!(msg.size_hint(), body.len(), "size_hint of {msg:?}");
    assert_eq!(&M::decode_body(&body.freeze(), order).unwrap(), msg);
}

#[test]
fn num_msg_body_is_a_big_endian_u32() {
    let body = encode(&NumMsg { num: 200 }, ByteOrder::Big);
    assert_eq!(&body[..], b"\x00\x00\x00\xc8");
    let decoded = NumMsg::decode_body(Body::new(b"\x00\x00\x00\xc8"), ByteOrder::Big);
    assert_eq!(decoded.unwrap(), NumMsg { num: 200 });
    assert_eq!(NumMsg::MESSAGE_TYPE, MessageType::new(1));
    assert_eq!(NumMsg::NAME, "NumMsg");
}

#[test]
fn str_msg_body_is_the_whole_string() {
    let msg = StrMsg {
        text: "hello world!".into(),
    };
    assert_eq!(&encode(&msg, ByteOrder::Big)[..], b"hello world!");
    let decoded = StrMsg::decode_body(Body::new(b"hello world!"), ByteOrder::Big);
    assert_eq!(decoded.unwrap(), msg);
    assert_eq!(StrMsg::MESSAGE_TYPE.value(), 2);
    let empty = StrMsg::decode_body(Body::new(&[]), ByteOrder::Big).unwrap();
    assert_eq!(empty.text, "");
}

#[test]
fn every_integer_width_and_sign_round_trips_in_both_orders() {
    let ints = Ints {
        a: 0xfe,
        b: -2,
        c: 0x1234,
        d: -0x1234,
        e: 0x1234_5678,
        f: -0x1234_5678,
        g: 0x1234_5678_9abc_def0,
        h: i64::MIN,
        i: u128::MAX - 1,
        j: i128::MIN + 1,
    };
    for order in [ByteOrder::Big, ByteOrder::Little] {
        let bytes = write_wire(&ints, order);
        assert_eq!(bytes.len(), 1 + 1 + 2 + 2 + 4 + 4 + 8 + 8 + 16 + 16);
        assert_eq!(ints.size_hint(), bytes.len());
        assert_eq!(read_wire::<Ints>(bytes, order), ints);
    }
}

#[test]
fn integers_follow_the_body_byte_order() {
    let point = Point { x: 1, y: -2 };
    assert_eq!(&write_wire(&point, ByteOrder::Big)[..], &[0, 1, 0xff, 0xfe]);
    assert_eq!(
        &write_wire(&point, ByteOrder::Little)[..],
        &[1, 0, 0xfe, 0xff]
    );
}

#[test]
fn floats_bools_and_byte_arrays_round_trip() {
    let scalars = Scalars {
        x: 1.5,
        y: -0.25,
        flag: true,
        mac: [0, 1, 2, 3, 4, 0xff],
    };
    let bytes = write_wire(&scalars, ByteOrder::Big);
    assert_eq!(
        &bytes[..],
        b"\x3f\xc0\x00\x00\xbf\xd0\x00\x00\x00\x00\x00\x00\x01\x00\x01\x02\x03\x04\xff"
    );
    assert_eq!(scalars.size_hint(), bytes.len());
    assert_eq!(read_wire::<Scalars>(bytes, ByteOrder::Big), scalars);
    let off = Scalars {
        flag: false,
        ..scalars
    };
    let bytes = write_wire(&off, ByteOrder::Little);
    assert_eq!(read_wire::<Scalars>(bytes, ByteOrder::Little), off);
}

#[test]
fn nested_struct_and_trailing_bytes_round_trip() {
    let msg = Nested {
        id: 7,
        at: Point { x: 3, y: -1 },
        rest: Bytes::from_static(b"\x00tail"),
    };
    assert_eq!(
        &encode(&msg, ByteOrder::Big)[..],
        b"\x07\x00\x03\xff\xff\x00tail"
    );
    round_trip(&msg, ByteOrder::Big);
    round_trip(&msg, ByteOrder::Little);
    round_trip(
        &Nested {
            rest: Bytes::new(),
            ..msg
        },
        ByteOrder::Big,
    );
}

#[test]
fn trailing_vec_takes_the_rest_of_the_body() {
    let msg = WithVec {
        len: 3,
        data: vec![9, 8, 7],
    };
    assert_eq!(&encode(&msg, ByteOrder::Big)[..], &[0, 3, 9, 8, 7]);
    round_trip(&msg, ByteOrder::Big);
}

#[test]
fn tuple_struct_round_trips() {
    let msg = Pair(0x0102, "hi".into());
    assert_eq!(&encode(&msg, ByteOrder::Big)[..], b"\x01\x02hi");
    round_trip(&msg, ByteOrder::Little);
}

#[test]
fn unit_struct_is_an_empty_body() {
    assert!(encode(&Ping, ByteOrder::Big).is_empty());
    assert_eq!(Ping.size_hint(), 0);
    assert_eq!(
        Ping::decode_body(Body::new(&[]), ByteOrder::Big).unwrap(),
        Ping
    );
}

#[test]
fn byte_order_attribute_overrides_the_body_order_for_that_field() {
    let msg = Mixed {
        big: 1,
        little: 2,
        forced_big: 3,
        point: Point { x: 4, y: 5 },
    };
    let expected_big: &[u8] = &[0, 0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 5, 0];
    assert_eq!(&encode(&msg, ByteOrder::Big)[..], expected_big);
    let expected_little: &[u8] = &[1, 0, 0, 0, 2, 0, 0, 0, 0, 3, 4, 0, 5, 0];
    assert_eq!(&encode(&msg, ByteOrder::Little)[..], expected_little);
    round_trip(&msg, ByteOrder::Big);
    round_trip(&msg, ByteOrder::Little);
}

#[test]
fn byte_order_override_ends_with_its_field() {
    #[derive(Debug, PartialEq, Wire)]
    struct Two {
        #[ltp(byte_order = "little")]
        first: u16,
        second: u16,
    }
    let two = Two {
        first: 1,
        second: 1,
    };
    let bytes = write_wire(&two, ByteOrder::Big);
    assert_eq!(&bytes[..], &[1, 0, 0, 1]);
    assert_eq!(read_wire::<Two>(bytes, ByteOrder::Big), two);
}

#[test]
fn message_type_may_be_a_const_and_name_overridden() {
    assert_eq!(Hello::MESSAGE_TYPE.value(), 0);
    assert_eq!(Hello::NAME, "OFPT_HELLO");
    assert_eq!(Negative::MESSAGE_TYPE.value(), -3);
    assert_eq!(Negative::NAME, "Negative");
    round_trip(&Negative { r#type: 9 }, ByteOrder::Big);
}

#[test]
fn raw_field_names_are_reported_without_the_prefix() {
    let err = Negative::decode_body(Body::new(&[]), ByteOrder::Big).unwrap_err();
    assert_eq!(err.source.field(), Some("type"));
}

#[test]
fn generic_struct_bounds_its_parameters() {
    let value = Generic {
        head: 1,
        value: Point { x: 2, y: 3 },
    };
    let bytes = write_wire(&value, ByteOrder::Big);
    assert_eq!(&bytes[..], &[1, 0, 2, 0, 3]);
    assert_eq!(read_wire::<Generic<Point>>(bytes, ByteOrder::Big), value);
}

#[test]
fn too_short_body_names_the_field() {
    let err = NumMsg::decode_body(Body::new(&[0, 1]), ByteOrder::Big).unwrap_err();
    assert_eq!(err.message_type, MessageType::new(1));
    assert_eq!(err.message, "NumMsg");
    assert_eq!(err.source.field(), Some("num"));
    assert_eq!(
        err.source.kind(),
        &BodyErrorKind::TooShort {
            needed: 4,
            remaining: 2
        }
    );
}

#[test]
fn too_short_nested_field_names_the_outer_field() {
    let err = Nested::decode_body(Body::new(&[7, 0, 3, 0]), ByteOrder::Big).unwrap_err();
    assert_eq!(err.source.field(), Some("at"));
    assert_eq!(
        err.source.kind(),
        &BodyErrorKind::TooShort {
            needed: 2,
            remaining: 1
        }
    );
}

#[test]
fn tuple_fields_are_named_by_index() {
    let err = Pair::decode_body(Body::new(&[1]), ByteOrder::Big).unwrap_err();
    assert_eq!(err.source.field(), Some("0"));
}

#[test]
fn invalid_utf8_names_the_string_field() {
    let body = Bytes::from_static(b"ok\xff");
    let err = StrMsg::decode_body(&body, ByteOrder::Big).unwrap_err();
    assert_eq!(err.source.field(), Some("text"));
    assert_eq!(
        err.source.kind(),
        &BodyErrorKind::InvalidUtf8 { valid_up_to: 2 }
    );
    assert_eq!(err.to_string(), "cannot decode StrMsg (type 2)");
}

#[test]
fn invalid_bool_names_the_field() {
    let mut body = write_wire(
        &Scalars {
            x: 0.0,
            y: 0.0,
            flag: false,
            mac: [0; 6],
        },
        ByteOrder::Big,
    )
    .to_vec();
    body[12] = 2;
    let mut r = BodyReader::new(&body[..], ByteOrder::Big);
    let err = Scalars::read(&mut r).unwrap_err();
    assert_eq!(err.field(), Some("flag"));
    assert_eq!(err.kind(), &BodyErrorKind::InvalidBool { value: 2 });
}

#[test]
fn trailing_bytes_are_an_error() {
    let body = Bytes::from_static(&[0, 0, 0, 200, 1, 2]);
    let err = NumMsg::decode_body(&body, ByteOrder::Big).unwrap_err();
    assert_eq!(
        err.source.kind(),
        &BodyErrorKind::TrailingBytes { count: 2 }
    );
    assert_eq!(err.source.field(), None);
    let err = Ping::decode_body(Body::new(&[0]), ByteOrder::Big).unwrap_err();
    assert_eq!(
        err.source.kind(),
        &BodyErrorKind::TrailingBytes { count: 1 }
    );
}

#[test]
fn protocol_decodes_each_type_to_its_variant() {
    let num = Demo::decode(
        MessageType::new(1),
        Body::new(b"\x00\x00\x00\xc8"),
        ByteOrder::Big,
    );
    assert_eq!(num.unwrap(), Demo::Num(NumMsg { num: 200 }));
    let text = Demo::decode(
        MessageType::new(2),
        Body::new(b"hello world!"),
        ByteOrder::Big,
    );
    assert_eq!(
        text.unwrap(),
        Demo::Str(StrMsg {
            text: "hello world!".into()
        })
    );
}

#[test]
fn protocol_keeps_an_unclaimed_type_and_its_body_as_unknown() {
    let body = Bytes::from_static(b"\x01\x02\x03");
    let got = Demo::decode(MessageType::new(9), Body::from(&body), ByteOrder::Big).unwrap();
    assert_eq!(
        got,
        Demo::Other(Unknown {
            message_type: MessageType::new(9),
            body: body.clone(),
        })
    );
    assert_eq!(got.name(), "Unknown");
    assert_eq!(got.message_type(), MessageType::new(9));
    assert_eq!(got.body_size_hint(), 3);
    let mut out = BytesMut::new();
    got.encode_body(&mut out, ByteOrder::Big);
    assert_eq!(out.freeze(), body);
}

#[test]
fn protocol_reports_a_bad_body_of_a_known_type() {
    let err = Demo::decode(MessageType::new(1), Body::new(&[0]), ByteOrder::Big).unwrap_err();
    assert_eq!(
        err,
        DecodeError {
            message_type: MessageType::new(1),
            message: "NumMsg",
            source: err.source.clone(),
        }
    );
    assert_eq!(err.source.field(), Some("num"));
}

#[test]
fn protocol_encodes_through_its_variants() {
    let num = Demo::from(NumMsg { num: 200 });
    assert_eq!(num.message_type(), MessageType::new(1));
    assert_eq!(num.body_size_hint(), 4);
    let mut out = BytesMut::new();
    num.encode_body(&mut out, ByteOrder::Big);
    assert_eq!(&out[..], b"\x00\x00\x00\xc8");
    let mut out = BytesMut::new();
    num.encode_body(&mut out, ByteOrder::Little);
    assert_eq!(&out[..], b"\xc8\x00\x00\x00");

    let text = Demo::from(StrMsg { text: "hi".into() });
    assert_eq!(text.message_type(), MessageType::new(2));
    assert_eq!(text.body_size_hint(), 2);
}

#[test]
fn from_impls_pick_the_variant() {
    assert_eq!(Demo::from(NumMsg { num: 1 }), Demo::Num(NumMsg { num: 1 }));
    assert_eq!(
        Demo::from(StrMsg { text: "x".into() }),
        Demo::Str(StrMsg { text: "x".into() })
    );
    let raw = Unknown {
        message_type: MessageType::new(5),
        body: Bytes::new(),
    };
    assert_eq!(Demo::from(raw.clone()), Demo::Other(raw));
    let demo: Demo = NumMsg { num: 1 }.into();
    assert!(matches!(demo, Demo::Num(_)));
}

#[test]
fn name_is_the_message_name() {
    assert_eq!(Demo::from(NumMsg { num: 1 }).name(), "NumMsg");
    assert_eq!(Demo::from(StrMsg { text: "x".into() }).name(), "StrMsg");
}

#[test]
fn is_known_only_for_claimed_types() {
    assert!(Demo::is_known(MessageType::new(1)));
    assert!(Demo::is_known(MessageType::new(2)));
    assert!(!Demo::is_known(MessageType::new(0)));
    assert!(!Demo::is_known(MessageType::new(3)));
    assert!(!Demo::is_known(MessageType::new(-1)));
}

#[test]
fn protocol_of_many_messages_and_renamed_types() {
    #[derive(Debug, PartialEq, Protocol)]
    enum Wide {
        #[ltp(unknown)]
        Raw(ltprotocol::Unknown),
        Hello(Hello),
        Negative(Negative),
        Pair(Pair),
        Ping(Ping),
        Mixed(Mixed),
    }
    let hello = Wide::decode(MessageType::new(0), Body::new(&[]), ByteOrder::Big).unwrap();
    assert_eq!(hello, Wide::Hello(Hello));
    assert_eq!(hello.name(), "OFPT_HELLO");
    let negative = Wide::decode(MessageType::new(-3), Body::new(&[4]), ByteOrder::Big);
    assert_eq!(negative.unwrap(), Wide::Negative(Negative { r#type: 4 }));
    assert!(Wide::is_known(MessageType::new(13)));
    assert!(!Wide::is_known(MessageType::new(1)));
    let raw = Wide::decode(MessageType::new(1), Body::new(&[]), ByteOrder::Big).unwrap();
    assert!(matches!(raw, Wide::Raw(Unknown { .. })));
}

#[test]
fn protocol_with_only_the_unknown_variant_claims_nothing() {
    #[derive(Debug, PartialEq, Protocol)]
    enum Raw {
        #[ltp(unknown)]
        Any(Unknown),
    }
    assert!(!Raw::is_known(MessageType::new(1)));
    let got = Raw::decode(MessageType::new(1), Body::new(b"x"), ByteOrder::Big);
    assert_eq!(got.unwrap().name(), "Unknown");
}
