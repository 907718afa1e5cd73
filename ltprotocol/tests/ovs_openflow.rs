//! Against a real Open vSwitch (dummy datapath, run privately in a temporary directory):
//! the OpenFlow 1.3 handshake, request/reply on `xid` with asynchronous messages flowing,
//! multipart replies, keepalive, and reconnects in both directions.
//!
//! Skipped (with a message) when Open vSwitch is not installed, unless `LTP_REQUIRE_OVS=1`,
//! which CI sets after installing it.
//!
//! The controller's session is captured (feature `pcap`) and read back by `tshark` with
//! Wireshark's own OpenFlow dissector, an independent check of our encodings: every message
//! type of the session decodes, with no malformed packet and no expert warning.

mod ovs_support;
mod tshark_support;

use std::time::Duration;

use ltprotocol::capture::Capture;
use ltprotocol::openflow::{
    self, BarrierReply, BarrierRequest, FlowMod, MultipartReply, MultipartRequest, OpenFlow13,
    SwitchInfo,
};
use ltprotocol::{Body, Event, Message, Protocol, ReconnectingClient, Server};
use ovs_support::{Ovs, free_port, next_connected, within};
use tshark_support::{have_tshark, tshark};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_handshakes_matches_replies_and_keeps_ovs_connected() {
    if !Ovs::available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ltp-ovs-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("controller.pcapng");
    let capture = Capture::to_file(&file).unwrap();
    let server = openflow::controller::<Server<OpenFlow13>>()
        .capture(capture.clone())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().as_tcp().unwrap().port();
    let mut events = server.events();
    let ovs = Ovs::start();
    ovs.set_controller(&[&format!("tcp:127.0.0.1:{port}")]);

    // The handshake ran before `Connected`: HELLO both ways, then FEATURES.
    let switch = within("OVS to connect", 30, next_connected(&mut events)).await;
    let info = switch
        .handshake_output::<SwitchInfo>()
        .expect("handshake output");
    assert_eq!(info.version, 4);
    assert_eq!(info.datapath_id, Some(0xa1));
    assert_eq!(info.n_tables, Some(254));

    // Request/reply on xid.
    let reply = within("BARRIER_REPLY", 20, switch.request(&BarrierRequest))
        .await
        .unwrap();
    assert_eq!(reply.message_type, BarrierReply::MESSAGE_TYPE);

    // A multipart request: DESC, answered by one MULTIPART_REPLY without the MORE flag.
    let mut parts = switch
        .request_stream(&MultipartRequest::new(0), openflow::is_last_part)
        .await
        .unwrap();
    let part = within("MULTIPART_REPLY", 20, parts.next())
        .await
        .unwrap()
        .unwrap();
    let desc = OpenFlow13::decode(
        part.message_type,
        Body::from(&part.body),
        ltprotocol::ByteOrder::Big,
    )
    .unwrap();
    let OpenFlow13::MultipartReply(MultipartReply {
        mp_type: 0, body, ..
    }) = desc
    else {
        panic!("expected a DESC reply, got {desc:?}");
    };
    assert!(body.starts_with(b"Nicira, Inc."), "{body:?}");
    assert!(within("end of parts", 5, parts.next()).await.is_none());

    // The table-miss flow, as the example controller installs it, appears in the switch.
    switch
        .send(&FlowMod::table_miss_to_controller())
        .await
        .unwrap();
    within(
        "BARRIER after FLOW_MOD",
        20,
        switch.request(&BarrierRequest),
    )
    .await
    .unwrap();
    let flows = ovs.run("ovs-ofctl", &["-O", "OpenFlow13", "dump-flows", "br0"]);
    assert!(
        flows.contains("priority=0 actions=CONTROLLER:65535"),
        "{flows}"
    );

    // A generated packet misses every other flow and reaches us as PACKET_IN.
    ovs.run(
        "ovs-appctl",
        &[
            "ofproto/trace",
            "br0",
            "in_port=LOCAL,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02",
            "-generate",
        ],
    );
    loop {
        match within("PACKET_IN", 20, events.next()).await {
            Some(Event::Message {
                message: OpenFlow13::PacketIn(packet_in),
                ..
            }) => {
                assert_eq!(packet_in.in_port(), Some(0xffff_fffe), "OFPP_LOCAL");
                break;
            }
            Some(Event::Disconnected { reason, .. }) => panic!("disconnected: {reason:?}"),
            Some(_) => {}
            None => panic!("event stream ended"),
        }
    }

    // An asynchronous message (xid 0) arrives as an ordinary message while requests work.
    ovs.run(
        "ovs-vsctl",
        &[
            "add-port",
            "br0",
            "p1",
            "--",
            "set",
            "interface",
            "p1",
            "type=dummy",
        ],
    );
    loop {
        match within("PORT_STATUS", 20, events.next()).await {
            Some(Event::Message {
                message: OpenFlow13::PortStatus(status),
                ..
            }) => {
                assert_eq!(status.reason, 0, "OFPPR_ADD");
                break;
            }
            Some(Event::Disconnected { reason, .. }) => panic!("disconnected: {reason:?}"),
            Some(_) => {}
            None => panic!("event stream ended"),
        }
    }

    // Keepalive: 15 s of application silence span OVS's 5 s probe and 5 s deadline. Our
    // auto-reply answers its ECHO_REQUEST, so the same connection still answers afterwards,
    // and no disconnect was reported before that answer.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(switch.is_connected());
    let reply = within(
        "BARRIER_REPLY after idle",
        20,
        switch.request(&BarrierRequest),
    )
    .await
    .unwrap();
    assert_eq!(reply.message_type, BarrierReply::MESSAGE_TYPE);
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(10), events.next()).await
    {
        assert!(!matches!(event, Event::Disconnected { .. }), "{event:?}");
    }

    // Restart the controller on the same port: OVS reconnects and the handshake runs again.
    server.shutdown(Duration::from_secs(5)).await;
    let summary = within("the capture to finish", 20, capture.finish()).await;
    assert!(summary.error.is_none(), "{summary:?}");
    assert_eq!(summary.dropped_frames, 0, "{summary:?}");
    check_capture_with_wiresharks_dissector(&file, port);
    let _ = std::fs::remove_dir_all(&dir);
    let server = loop {
        match openflow::controller::<Server<OpenFlow13>>()
            .bind(("127.0.0.1", port))
            .await
        {
            Ok(server) => break server,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut events = server.events();
    let again = within("OVS to reconnect", 40, next_connected(&mut events)).await;
    assert_eq!(
        again
            .handshake_output::<SwitchInfo>()
            .and_then(|i| i.datapath_id),
        Some(0xa1)
    );
    let reply = within(
        "BARRIER_REPLY after reconnect",
        20,
        again.request(&BarrierRequest),
    )
    .await
    .unwrap();
    assert_eq!(reply.message_type, BarrierReply::MESSAGE_TYPE);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_client_handshakes_with_ovs_passive_listener() {
    if !Ovs::available() {
        return;
    }
    let ovs = Ovs::start();
    let port = free_port().await;
    ovs.set_controller(&[&format!("ptcp:{port}:127.0.0.1")]);

    let mut builder = openflow::controller::<ReconnectingClient<OpenFlow13>>();
    builder.backoff(ltprotocol::Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        ..ltprotocol::Backoff::default()
    });
    // OVS may take a moment to open its listener: the client retries by itself.
    let (client, mut events) = builder.connect(format!("127.0.0.1:{port}"));
    let conn = within("the handshake with OVS", 30, next_connected(&mut events)).await;
    assert_eq!(
        conn.handshake_output::<SwitchInfo>()
            .and_then(|i| i.datapath_id),
        Some(0xa1)
    );
    let reply = within("BARRIER_REPLY", 20, conn.request(&BarrierRequest))
        .await
        .unwrap();
    assert_eq!(reply.message_type, BarrierReply::MESSAGE_TYPE);
    let typed = OpenFlow13::decode(
        reply.message_type,
        Body::from(&reply.body),
        ltprotocol::ByteOrder::Big,
    )
    .unwrap();
    assert_eq!(typed.name(), "OFPT_BARRIER_REPLY");
    // FEATURES through request(), and DESC naming the hardware.
    let features = within(
        "FEATURES_REPLY",
        20,
        conn.request(&openflow::FeaturesRequest),
    )
    .await
    .unwrap();
    let typed = OpenFlow13::decode(
        features.message_type,
        Body::from(&features.body),
        ltprotocol::ByteOrder::Big,
    )
    .unwrap();
    assert!(
        matches!(&typed, OpenFlow13::FeaturesReply(f) if f.datapath_id == 0xa1),
        "{typed:?}"
    );
    let mut parts = conn
        .request_stream(&MultipartRequest::new(0), openflow::is_last_part)
        .await
        .unwrap();
    let desc = within("DESC", 20, parts.next()).await.unwrap().unwrap();
    // The reply's body: mp_type, flags, pad (8 bytes), then ofp_desc: mfr_desc[256], hw_desc[256].
    let hw = desc.body.get(8 + 256..8 + 512).expect("hw_desc");
    assert!(
        hw.starts_with(b"Open vSwitch"),
        "{:?}",
        String::from_utf8_lossy(hw)
    );
    let report = client.close(Duration::from_secs(5)).await;
    assert_eq!(report.unsent_frames, 0);
}

/// Reads the controller's capture with Wireshark's OpenFlow dissector (decoded as OpenFlow on
/// the test's port): the session's message types are all there, none malformed, no expert
/// warning.
fn check_capture_with_wiresharks_dissector(file: &std::path::Path, port: u16) {
    if !have_tshark() {
        return;
    }
    let file = file.to_str().unwrap();
    let decode_as = format!("tcp.port=={port},openflow");
    let types = tshark(&[
        "-r",
        file,
        "-d",
        &decode_as,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "separator=,",
        "-e",
        "openflow_v4.type",
    ]);
    let seen: std::collections::BTreeSet<u8> = types
        .lines()
        .flat_map(|line| line.split(','))
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    // HELLO 0, ECHO_REQUEST 2, ECHO_REPLY 3, FEATURES_REQUEST 5, FEATURES_REPLY 6,
    // PACKET_IN 10, PORT_STATUS 12, FLOW_MOD 14, MULTIPART_REQUEST 18, MULTIPART_REPLY 19,
    // BARRIER_REQUEST 20, BARRIER_REPLY 21.
    for expected in [0, 2, 3, 5, 6, 10, 12, 14, 18, 19, 20, 21] {
        assert!(
            seen.contains(&expected),
            "type {expected} missing: {seen:?}"
        );
    }
    let problems = tshark(&[
        "-r",
        file,
        "-d",
        &decode_as,
        "-Y",
        r#"_ws.malformed || _ws.expert.severity >= "Warning""#,
    ]);
    assert_eq!(problems, "", "malformed packets or expert warnings");
}
