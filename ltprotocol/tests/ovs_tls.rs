//! Against a real Open vSwitch over mutual TLS, with certificates made by the test (a CA with
//! `CA:TRUE`; leaves with SAN IP:127.0.0.1 and DNS:localhost, EKU serverAuth and clientAuth,
//! since `ovs-pki`'s certificates carry no IP and fail rustls's checks), written into OVS's
//! temporary directory and given to it with `ovs-vsctl set-ssl KEY CERT CACERT`: OVS connects
//! to our controller through `ssl:`, and our reconnecting client connects to OVS's `pssl:`.
//!
//! Skipped (with a message) when Open vSwitch is not installed, unless `LTP_REQUIRE_OVS=1`,
//! which CI sets after installing it.

mod ovs_support;
mod tls_support;

use std::time::Duration;

use ltprotocol::openflow::{self, BarrierReply, BarrierRequest, OpenFlow13, SwitchInfo};
use ltprotocol::tls::{ClientAuth, ServerTls};
use ltprotocol::{Backoff, Message, ReconnectingClient, Server};
use ovs_support::{Ovs, free_port, next_connected, within};
use tls_support::{CertFiles, Leaf, Pki};

/// Gives OVS its key, certificate and our CA.
fn set_ssl(ovs: &Ovs, pki: &Pki, files: &CertFiles) {
    let key = files.key.to_string_lossy();
    let cert = files.cert.to_string_lossy();
    let ca = pki.ca_file();
    ovs.run(
        "ovs-vsctl",
        &["set-ssl", &key, &cert, &ca.to_string_lossy()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_connects_to_our_controller_over_mutual_tls() {
    if !Ovs::available() {
        return;
    }
    let ovs = Ovs::start();
    let pki = Pki::new_in("ctl", &ovs.dir);
    let ours = pki.issue(&Leaf::local("controller"));
    let tls = ServerTls::builder(&ours.cert, &ours.key)
        .client_auth(pki.ca_file(), ClientAuth::Required)
        .build()
        .unwrap();
    let server = openflow::controller::<Server<OpenFlow13>>()
        .tls(tls)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().as_tcp().unwrap().port();
    let mut events = server.events();
    set_ssl(&ovs, &pki, &pki.issue(&Leaf::local("ovs")));
    ovs.set_controller(&[&format!("ssl:127.0.0.1:{port}")]);

    // TLS, then the OpenFlow handshake, then `Connected`, with OVS's identity known.
    let switch = within("OVS to connect over TLS", 30, next_connected(&mut events)).await;
    assert!(switch.is_tls());
    let who = switch.peer_identity().expect("OVS's verified certificate");
    assert_eq!(who.common_name.as_deref(), Some("ovs"));
    let info = switch
        .handshake_output::<SwitchInfo>()
        .expect("handshake output");
    assert_eq!(info.version, 4);
    assert_eq!(info.datapath_id, Some(0xa1));

    let reply = within("BARRIER_REPLY", 20, switch.request(&BarrierRequest))
        .await
        .unwrap();
    assert_eq!(reply.message_type, BarrierReply::MESSAGE_TYPE);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_client_connects_to_ovs_pssl_over_mutual_tls() {
    if !Ovs::available() {
        return;
    }
    let ovs = Ovs::start();
    let pki = Pki::new_in("sw", &ovs.dir);
    set_ssl(&ovs, &pki, &pki.issue(&Leaf::local("ovs")));
    let port = free_port().await;
    ovs.set_controller(&[&format!("pssl:{port}:127.0.0.1")]);

    let mut builder = openflow::controller::<ReconnectingClient<OpenFlow13>>();
    builder
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            ..Backoff::default()
        })
        // OVS insists on a client certificate from its CA; the server name is 127.0.0.1,
        // from the address.
        .tls(pki.client_tls_with_cert(&pki, &Leaf::local("controller")));
    // OVS may take a moment to open its listener: the client retries by itself.
    let (client, mut events) = builder.connect(format!("127.0.0.1:{port}"));
    let conn = within(
        "the handshake with OVS over TLS",
        30,
        next_connected(&mut events),
    )
    .await;
    assert!(conn.is_tls());
    assert_eq!(
        conn.peer_identity()
            .and_then(|who| who.common_name.as_deref()),
        Some("ovs")
    );
    assert_eq!(
        conn.handshake_output::<SwitchInfo>()
            .and_then(|i| i.datapath_id),
        Some(0xa1)
    );
    let reply = within("BARRIER_REPLY", 20, conn.request(&BarrierRequest))
        .await
        .unwrap();
    assert_eq!(reply.message_type, BarrierReply::MESSAGE_TYPE);
    let report = client.close(Duration::from_secs(5)).await;
    assert_eq!(report.unsent_frames, 0);
}
