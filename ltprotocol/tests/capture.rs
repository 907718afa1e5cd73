//! The library's session capture (feature `pcap`) read back by the real `tshark`: a server on
//! a Unix-domain socket, whose streams get the documented synthetic addresses, captures the
//! exact bytes both ways with the TCP stream's opening and end. Without tshark the test
//! prints a note and passes, unless `LTP_REQUIRE_TSHARK=1` (CI).

mod common;
mod tshark_support;

use std::time::Duration;

use common::{Demo, NumMsg, within};
use ltprotocol::capture::Capture;
use ltprotocol::transport::UnixConnector;
use ltprotocol::{Event, HeaderLayout, ReconnectingClient, Server};
use tshark_support::{have_tshark, tshark};

#[tokio::test]
async fn a_unix_socket_session_is_captured_with_synthetic_addresses() {
    if !have_tshark() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ltp-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let file = dir.join("unix.pcapng");
    let capture = Capture::to_file(&file).unwrap();
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .capture(capture.clone())
        .bind_unix(&path)
        .unwrap();
    let mut server_events = server.events();
    tokio::spawn(async move {
        while let Some(event) = server_events.next().await {
            if let Event::Message { conn, message, .. } = event {
                let _ = conn.send(&message).await;
            }
        }
    });
    let (client, mut events) = ReconnectingClient::<Demo>::builder(HeaderLayout::ltprotocol())
        .connect(UnixConnector::new(&path));
    within(client.wait_connected()).await.unwrap();
    client.send(&NumMsg { num: 200 }).await.unwrap();
    within(async {
        loop {
            if let Some(Event::Message { .. }) = events.next().await {
                return;
            }
        }
    })
    .await;
    within(client.close(Duration::from_secs(5))).await;
    within(server.shutdown(Duration::from_secs(5))).await;
    let summary = within(capture.finish()).await;
    assert!(summary.error.is_none(), "{summary:?}");
    assert_eq!(summary.dropped_frames, 0);
    assert_eq!(summary.bytes, 14);
    // SYN, SYN-ACK, ACK, a message each way, a FIN each way.
    assert_eq!(summary.frames, 7);

    let file = file.to_str().unwrap();
    let fields = tshark(&[
        "-r",
        file,
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.flags.str",
    ]);
    let first: Vec<&str> = fields.lines().next().unwrap().split('\t').collect();
    assert_eq!(first, ["127.1.0.1", "49152", "··········S·"], "{fields}");
    assert_eq!(
        fields.lines().filter(|l| l.ends_with('F')).count(),
        2,
        "{fields}"
    );
    let follow = tshark(&["-r", file, "-q", "-z", "follow,tcp,raw,0"]);
    assert!(follow.contains("Node 0: 127.1.0.1:49152"), "{follow}");
    assert!(follow.contains("Node 1: 127.0.0.1:1"), "{follow}");
    assert!(
        follow.contains("\n000701000000c8\n\t000701000000c8\n"),
        "{follow}"
    );
    let problems = tshark(&[
        "-r",
        file,
        "-Y",
        r#"_ws.malformed || _ws.expert.severity >= "Warning""#,
    ]);
    assert_eq!(problems, "");
    let _ = std::fs::remove_dir_all(&dir);
}
