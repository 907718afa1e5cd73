//! A small OpenFlow 1.3 controller: accepts any number of switches, greets each (HELLO,
//! FEATURES), installs a table-miss flow that sends unmatched packets to it, and prints one
//! JSON line per event on stdout. The library answers echo requests and probes quiet switches.
//!
//! Run: `cargo run --release -p ltprotocol --example openflow_controller -- --listen 127.0.0.1:6653`,
//! then point a switch at it, e.g. `ovs-vsctl set-controller br0 tcp:127.0.0.1:6653`.
//!
//! ```text
//! {"event":"listening","addr":"127.0.0.1:6653"}
//! {"event":"switch_connected","dpid":"00000000000000a1","version":4,"n_tables":254}
//! {"event":"packet_in","dpid":"00000000000000a1","in_port":4294967294,"len":14}
//! {"event":"port_status","dpid":"00000000000000a1","reason":"add"}
//! {"event":"switch_disconnected","dpid":"00000000000000a1","reason":"closed by peer"}
//! ```

use std::time::Duration;

use ltprotocol::openflow::{self, FlowMod, OpenFlow13, SwitchInfo};
use ltprotocol::{ConnectionHandle, DisconnectReason, Handler, HeaderFields, Server};

struct Controller;

fn dpid(switch: &ConnectionHandle) -> String {
    let dpid = switch
        .handshake_output::<SwitchInfo>()
        .and_then(|info| info.datapath_id)
        .unwrap_or_default();
    format!("{dpid:016x}")
}

/// One JSON object per line; strings here never need escaping beyond what `{:?}` gives.
fn emit(line: String) {
    println!("{line}");
}

impl Handler<OpenFlow13> for Controller {
    async fn connected(&self, switch: &ConnectionHandle) {
        let info = switch.handshake_output::<SwitchInfo>();
        emit(format!(
            r#"{{"event":"switch_connected","dpid":"{}","version":{},"n_tables":{}}}"#,
            dpid(switch),
            info.map_or(0, |i| i.version),
            info.and_then(|i| i.n_tables).unwrap_or_default(),
        ));
        // A fresh xid: an ERROR the switch returns for this FLOW_MOD carries it.
        if let Err(err) = switch
            .send_fresh(&FlowMod::table_miss_to_controller())
            .await
        {
            eprintln!("cannot install the table-miss flow on {switch}: {err}");
        }
    }

    async fn message(&self, switch: &ConnectionHandle, msg: OpenFlow13, _fields: &HeaderFields) {
        match msg {
            OpenFlow13::PacketIn(packet_in) => emit(format!(
                r#"{{"event":"packet_in","dpid":"{}","in_port":{},"len":{}}}"#,
                dpid(switch),
                packet_in
                    .in_port()
                    .map_or("null".to_owned(), |p| p.to_string()),
                packet_in.total_len,
            )),
            OpenFlow13::PortStatus(status) => {
                let reason = match status.reason {
                    0 => "add",
                    1 => "delete",
                    _ => "modify",
                };
                emit(format!(
                    r#"{{"event":"port_status","dpid":"{}","reason":"{reason}"}}"#,
                    dpid(switch)
                ));
            }
            // Echo replies to our keepalive probes and anything else: nothing to show.
            _ => {}
        }
    }

    async fn disconnected(&self, switch: &ConnectionHandle, reason: &DisconnectReason) {
        emit(format!(
            r#"{{"event":"switch_disconnected","dpid":"{}","reason":{:?}}}"#,
            dpid(switch),
            ltprotocol::error_chain(reason)
        ));
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:6653".to_owned();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!("usage: openflow_controller [--listen ADDR]");
                std::process::exit(2);
            }
        }
    }
    let server = openflow::controller::<Server<OpenFlow13>>()
        .bind(&listen)
        .await?;
    emit(format!(
        r#"{{"event":"listening","addr":"{}"}}"#,
        server.local_addr()
    ));
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(Controller).await });
    tokio::signal::ctrl_c().await?;
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
