//! A minimal OpenFlow 1.3 controller: greets each switch (HELLO, FEATURES), prints its
//! datapath id, asks for its description, and prints every asynchronous message it sends
//! (PACKET_IN, PORT_STATUS, …). Echo requests are answered and quiet switches probed by the
//! library.
//!
//! Run: `cargo run -p ltprotocol --example openflow_controller [ADDR]` (default
//! 127.0.0.1:6653), then point a switch at it, e.g.
//! `ovs-vsctl set-controller br0 tcp:127.0.0.1:6653`.

use std::time::Duration;

use ltprotocol::openflow::{self, MultipartRequest, OpenFlow13, SwitchInfo};
use ltprotocol::{
    ConnectionHandle, DisconnectReason, Handler, HeaderFields, HeaderLayout, Protocol, Server,
};

struct Controller;

impl Handler<OpenFlow13> for Controller {
    async fn connected(&self, switch: &ConnectionHandle) {
        let info = switch.handshake_output::<SwitchInfo>();
        let dpid = info.and_then(|i| i.datapath_id).unwrap_or_default();
        println!("switch {dpid:#018x} connected from {switch}");
        let switch = switch.clone();
        // Requests wait for their replies, so they run beside the message callbacks.
        tokio::spawn(async move {
            let Ok(mut parts) = switch
                .request_stream(&MultipartRequest::new(0), openflow::is_last_part)
                .await
            else {
                return;
            };
            while let Some(Ok(part)) = parts.next().await {
                let order = HeaderLayout::openflow().byte_order();
                if let Ok(OpenFlow13::MultipartReply(desc)) =
                    OpenFlow13::decode(part.message_type, part.body, order)
                {
                    let text: String = desc
                        .body
                        .split(|b| *b == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(" | ");
                    println!("switch {dpid:#018x}: {text}");
                }
            }
        });
    }

    async fn message(&self, switch: &ConnectionHandle, msg: OpenFlow13, fields: HeaderFields) {
        let layout = HeaderLayout::openflow();
        let xid = fields.get_named(&layout, "xid").unwrap_or_default();
        println!("{switch}: {} (xid {xid})", msg.name());
    }

    async fn disconnected(&self, switch: &ConnectionHandle, reason: &DisconnectReason) {
        println!("{switch} disconnected: {}", ltprotocol::error_chain(reason));
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6653".into());
    let server = openflow::controller::<Server<OpenFlow13>>()
        .bind(&addr)
        .await?;
    println!("controller listening on {}", server.local_addr());
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(Controller).await });
    tokio::signal::ctrl_c().await?;
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
