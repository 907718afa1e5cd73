//! OpenFlow 1.3 messages against bytes worked out by hand from the specification (and, for
//! ECHO_REQUEST and FEATURES_REPLY, captured from Open vSwitch 3.1): encoding gives exactly
//! these bytes, and decoding them gives the message back.

use bytes::{Bytes, BytesMut};
use ltprotocol::openflow::{
    BarrierReply, BarrierRequest, EchoReply, EchoRequest, Error, FeaturesReply, FeaturesRequest,
    FlowMod, Hello, MultipartRequest, OpenFlow13, PacketIn, PortStatus,
};
use ltprotocol::{
    Body, Encode, FrameCodec, HeaderFields, HeaderLayout, MessageType, Protocol, Unknown,
};
use tokio_util::codec::Decoder;

/// Encodes `msg` with `xid`, compares with `wire`, decodes `wire` and compares with `msg`.
fn golden(msg: OpenFlow13, xid: u32, wire: &[u8]) {
    let layout = HeaderLayout::openflow();
    let mut codec = FrameCodec::new(layout.clone());
    let fields = HeaderFields::new().with(layout.field("xid").unwrap(), i128::from(xid));
    let mut out = BytesMut::new();
    codec.encode_message_with(&msg, &fields, &mut out).unwrap();
    assert_eq!(&out[..], wire, "encoding {}", msg.name());
    let mut input = BytesMut::from(wire);
    let frame = codec.decode(&mut input).unwrap().unwrap();
    assert_eq!(
        frame.fields.get_named(&layout, "xid"),
        Some(i128::from(xid))
    );
    assert_eq!(frame.fields.get_named(&layout, "version"), Some(4));
    let decoded = OpenFlow13::decode(
        frame.message_type,
        Body::from(&frame.body),
        layout.byte_order(),
    )
    .unwrap();
    assert_eq!(decoded, msg);
    assert_eq!(decoded.message_type(), msg.message_type());
}

#[test]
fn hello_with_a_version_bitmap() {
    let hello = Hello::with_versions(&[4]);
    assert_eq!(hello.versions(), Some(vec![4]));
    golden(
        hello.into(),
        1,
        b"\x04\x00\x00\x10\x00\x00\x00\x01\x00\x01\x00\x08\x00\x00\x00\x10",
    );
    golden(
        Hello::default().into(),
        1,
        b"\x04\x00\x00\x08\x00\x00\x00\x01",
    );
}

#[test]
fn error_hello_failed() {
    let error = Error {
        err_type: 0,
        code: 0,
        data: Bytes::from_static(b"v?"),
    };
    golden(
        error.into(),
        5,
        b"\x04\x01\x00\x0e\x00\x00\x00\x05\x00\x00\x00\x00v?",
    );
}

#[test]
fn echo_request_and_reply() {
    // Open vSwitch's keepalive probe: xid 0, no data.
    golden(
        EchoRequest::default().into(),
        0,
        b"\x04\x02\x00\x08\x00\x00\x00\x00",
    );
    let reply = EchoReply {
        data: Bytes::from_static(b"ab"),
    };
    golden(reply.into(), 3, b"\x04\x03\x00\x0a\x00\x00\x00\x03ab");
}

#[test]
fn features_request_and_reply_from_open_vswitch() {
    golden(
        FeaturesRequest.into(),
        2,
        b"\x04\x05\x00\x08\x00\x00\x00\x02",
    );
    let reply = FeaturesReply {
        datapath_id: 0xa1,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        pad: [0; 2],
        capabilities: 0x4f,
        reserved: 0,
    };
    golden(
        reply.into(),
        2,
        b"\x04\x06\x00\x20\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\xa1\
          \x00\x00\x00\x00\xfe\x00\x00\x00\x00\x00\x00\x4f\x00\x00\x00\x00",
    );
}

#[test]
fn barrier_request_and_reply() {
    golden(
        BarrierRequest.into(),
        9,
        b"\x04\x14\x00\x08\x00\x00\x00\x09",
    );
    golden(BarrierReply.into(), 9, b"\x04\x15\x00\x08\x00\x00\x00\x09");
}

#[test]
fn multipart_desc_request() {
    golden(
        MultipartRequest::new(0).into(),
        7,
        b"\x04\x12\x00\x10\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00",
    );
}

#[test]
fn table_miss_flow_mod_sends_everything_to_the_controller() {
    let mut wire = Vec::new();
    wire.extend_from_slice(b"\x04\x0e\x00\x50\x00\x00\x00\x0b"); // header: 80 bytes, xid 11
    wire.extend_from_slice(&[0; 16]); // cookie, cookie mask
    wire.extend_from_slice(b"\x00\x00\x00\x00\x00\x00\x00\x00"); // table 0, ADD, timeouts, priority 0
    wire.extend_from_slice(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"); // buffer, out port, out group: none
    wire.extend_from_slice(b"\x00\x00\x00\x00"); // flags, pad
    wire.extend_from_slice(b"\x00\x01\x00\x04\x00\x00\x00\x00"); // OXM match, empty, padded
    wire.extend_from_slice(b"\x00\x04\x00\x18\x00\x00\x00\x00"); // APPLY_ACTIONS, 24 bytes
    wire.extend_from_slice(b"\x00\x00\x00\x10\xff\xff\xff\xfd\xff\xff\x00\x00\x00\x00\x00\x00"); // OUTPUT CONTROLLER, NO_BUFFER
    golden(FlowMod::table_miss_to_controller().into(), 11, &wire);
}

#[test]
fn packet_in_carries_its_ingress_port() {
    let mut rest = Vec::new();
    rest.extend_from_slice(b"\x00\x01\x00\x0c\x80\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00"); // match: in_port 1
    rest.extend_from_slice(b"\x00\x00"); // pad
    rest.extend_from_slice(&[0xaa; 6]); // the packet's first bytes
    let packet_in = PacketIn {
        buffer_id: 0xffff_ffff,
        total_len: 42,
        reason: 0,
        table_id: 0,
        cookie: 0,
        rest: rest.clone().into(),
    };
    assert_eq!(packet_in.in_port(), Some(1));
    let mut wire = b"\x04\x0a\x00\x30\x00\x00\x00\x00\xff\xff\xff\xff\x00\x2a\x00\x00".to_vec();
    wire.extend_from_slice(&[0; 8]);
    wire.extend_from_slice(&rest);
    golden(packet_in.into(), 0, &wire);
}

#[test]
fn port_status_add() {
    let status = PortStatus {
        reason: 0,
        pad: [0; 7],
        desc: Bytes::from_static(&[0, 0, 0, 1]),
    };
    golden(
        status.into(),
        0,
        b"\x04\x0c\x00\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
    );
}

#[test]
fn unknown_openflow_types_stay_raw() {
    let role_request = Unknown {
        message_type: MessageType::new(24),
        body: Bytes::from_static(&[0; 16]),
    };
    let mut wire = b"\x04\x18\x00\x18\x00\x00\x00\x04".to_vec();
    wire.extend_from_slice(&[0; 16]);
    golden(OpenFlow13::Other(role_request), 4, &wire);
}
