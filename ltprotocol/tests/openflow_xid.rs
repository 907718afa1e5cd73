//! Every message an OpenFlow controller originates carries a fresh xid (as os-ken does):
//! its HELLO, its FEATURES_REQUEST, a FLOW_MOD sent with `send_fresh` and its keepalive
//! probes, so that an ERROR the switch returns names which one it refuses; replies keep the
//! request's xid. A switch played by hand over a real socket on 127.0.0.1 reads them.

mod common;

use std::time::Duration;

use common::within;
use ltprotocol::openflow::{self, FlowMod, OpenFlow13};
use ltprotocol::{ConnectionHandle, Handler, HeaderFields, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends the table-miss FLOW_MOD once connected, with a fresh xid.
struct Controller;

impl Handler<OpenFlow13> for Controller {
    async fn connected(&self, switch: &ConnectionHandle) {
        let xid = switch
            .send_fresh(&FlowMod::table_miss_to_controller())
            .await
            .expect("queued");
        assert!(xid.is_some_and(|xid| xid != 0), "{xid:?}");
    }

    async fn message(&self, _: &ConnectionHandle, _: OpenFlow13, _: &HeaderFields) {}
}

/// One OpenFlow message off the socket: (type, xid, body).
async fn read_message(socket: &mut TcpStream) -> (u8, u32, Vec<u8>) {
    let mut header = [0u8; 8];
    socket.read_exact(&mut header).await.expect("a header");
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0; len - 8];
    socket.read_exact(&mut body).await.expect("a body");
    let xid = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (header[1], xid, body)
}

fn message(kind: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + body.len()).unwrap();
    let mut out = vec![4, kind];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&xid.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn a_controller_gives_every_message_it_originates_a_fresh_xid() {
    let mut builder = openflow::controller::<Server<OpenFlow13>>();
    let mut keepalive = openflow::keepalive();
    keepalive.idle = Duration::from_millis(200);
    keepalive.timeout = Duration::from_secs(30);
    builder.keepalive(keepalive);
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(Controller).await });

    let mut switch = TcpStream::connect(server.local_addr().to_string())
        .await
        .unwrap();
    let mut xids = Vec::new();
    within(async {
        let (kind, hello_xid, _) = read_message(&mut switch).await;
        assert_eq!(kind, 0, "HELLO first");
        xids.push(hello_xid);
        // Our HELLO, a bitmap offering 1.3.
        let bitmap = [0, 1, 0, 8, 0, 0, 0, 0x10];
        switch.write_all(&message(0, 77, &bitmap)).await.unwrap();
        let (kind, features_xid, _) = read_message(&mut switch).await;
        assert_eq!(kind, 5, "FEATURES_REQUEST");
        xids.push(features_xid);
        let mut features = 0xa1u64.to_be_bytes().to_vec();
        features.extend_from_slice(&[0, 0, 1, 0, 254, 0, 0, 0, 0, 0, 0, 0x4f, 0, 0, 0, 0]);
        switch
            .write_all(&message(6, features_xid, &features))
            .await
            .unwrap();
        let (kind, flow_mod_xid, _) = read_message(&mut switch).await;
        assert_eq!(kind, 14, "FLOW_MOD");
        xids.push(flow_mod_xid);
        // Quiet: the keepalive's ECHO_REQUEST, twice, each with its own xid.
        for _ in 0..2 {
            let (kind, echo_xid, _) = read_message(&mut switch).await;
            assert_eq!(kind, 2, "ECHO_REQUEST");
            xids.push(echo_xid);
            // An ECHO_REQUEST of ours is answered with our xid.
            switch.write_all(&message(2, 4242, b"hi")).await.unwrap();
            let (kind, reply_xid, body) = read_message(&mut switch).await;
            assert_eq!((kind, reply_xid, &body[..]), (3, 4242, &b"hi"[..]));
        }
    })
    .await;
    assert!(xids.iter().all(|&xid| xid != 0), "{xids:?}");
    let mut distinct = xids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), xids.len(), "every xid fresh: {xids:?}");
    drop(switch);
    within(server.shutdown(Duration::from_secs(5))).await;
}
