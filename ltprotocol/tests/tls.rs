//! TLS and mutual TLS on real sockets (127.0.0.1), with certificates made at test time: round
//! trips in both styles, the peer's identity, every other feature unchanged over TLS, each
//! handshake failure with its own reason on both sides while a good client keeps working,
//! and reconnects across server restarts with nothing lost.

mod common;
mod tls_support;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{
    Demo, NumMsg, Recorder, Seen, StrMsg, bind_again, demo_client, demo_server, next_seen,
    start_event_server, start_server, until, within,
};
use ltprotocol::tls::rustls::AlertDescription;
use ltprotocol::tls::{ClientAuth, ClientTls, TlsError};
use ltprotocol::{
    Backoff, ConnectionHandle, Correlation, DisconnectReason, Event, EventStream, Frame, Handshake,
    HandshakeContext, HandshakeError, HeaderLayout, Keepalive, MessageType, ReconnectingClient,
    Server, Timeouts, Unknown,
};
use tls_support::{Leaf, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn quick_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        ..Backoff::default()
    }
}

/// Takes events until `pick` returns something.
async fn wait_for<P: std::fmt::Debug, T>(
    events: &mut EventStream<P>,
    mut pick: impl FnMut(Event<P>) -> Option<T>,
) -> T {
    within(async {
        loop {
            let event = events.next().await.expect("event stream ended");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
}

async fn next_connected<P: std::fmt::Debug>(events: &mut EventStream<P>) -> ConnectionHandle {
    wait_for(events, |event| match event {
        Event::Connected(conn) => Some(conn),
        _ => None,
    })
    .await
}

async fn next_message<P: std::fmt::Debug>(events: &mut EventStream<P>) -> P {
    wait_for(events, |event| match event {
        Event::Message { message, .. } => Some(message),
        Event::Disconnected { reason, .. } => panic!("disconnected: {reason:?}"),
        _ => None,
    })
    .await
}

async fn next_disconnect<P: std::fmt::Debug>(events: &mut EventStream<P>) -> DisconnectReason {
    wait_for(events, |event| match event {
        Event::Disconnected { reason, .. } => Some(reason),
        _ => None,
    })
    .await
}

/// The first failed attempt's error, as a client reports it.
async fn next_connect_failure<P: std::fmt::Debug>(events: &mut EventStream<P>) -> String {
    wait_for(events, |event| match event {
        Event::ConnectFailed { error, .. } => Some(error.to_string()),
        Event::Connected(conn) => panic!("connected to {conn} although TLS should fail"),
        _ => None,
    })
    .await
}

/// The TLS error inside a disconnect reason.
fn tls_error(reason: &DisconnectReason) -> &TlsError {
    match reason {
        DisconnectReason::Tls(err) => err,
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

/// A TLS client that stays connected through a failure test, then proves it still works:
/// a message goes to the echoing server and comes back.
struct Bystander {
    client: ReconnectingClient<Demo>,
    events: EventStream<Demo>,
}

impl Bystander {
    async fn start(addr: std::net::SocketAddr, tls: ClientTls) -> Self {
        let (client, mut events) = demo_client()
            .backoff(quick_backoff())
            .tls(tls)
            .connect(addr.to_string());
        next_connected(&mut events).await;
        let mut bystander = Self { client, events };
        bystander.round_trip(1).await;
        bystander
    }

    async fn round_trip(&mut self, num: u32) {
        self.client.send(&NumMsg { num }).await.unwrap();
        assert_eq!(
            next_message(&mut self.events).await,
            Demo::Num(NumMsg { num })
        );
    }

    /// The same connection still works: no disconnect since it started.
    async fn still_works(mut self) {
        self.round_trip(2).await;
        let report = within(self.client.close(Duration::from_secs(10))).await;
        assert_eq!(report.unsent_frames, 0);
    }
}

/// An echoing server, handler style; returns what its handler sees.
async fn echo_server(
    builder: &ltprotocol::ServerBuilder<Demo>,
) -> (Server<Demo>, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let (recorder, seen) = Recorder::echo();
    (start_server(builder, recorder).await, seen)
}

/// Waits for the handler to report a disconnect that was never connected: a connection that
/// failed TLS. Connections that did connect are skipped.
async fn failed_connection(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
) -> DisconnectReason {
    let mut connected = Vec::new();
    loop {
        match next_seen(seen).await {
            Seen::Connected(conn) => connected.push(conn.id()),
            Seen::Disconnected(conn, reason) if !connected.contains(&conn.id()) => {
                assert!(!conn.is_tls(), "a failed connection has no TLS session");
                return reason;
            }
            _ => {}
        }
    }
}

// ---- round trips -----------------------------------------------------------------------------

#[tokio::test]
async fn tls_round_trip_in_handler_style() {
    let pki = Pki::new("handler");
    let (server, mut seen) = echo_server(demo_server().tls(pki.server_tls())).await;
    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .tls(pki.client_tls())
        .connect(server.local_addr().as_tcp().unwrap().to_string());
    client.send(&NumMsg { num: 200 }).await.unwrap();
    client
        .send(&StrMsg {
            text: "hello world!".into(),
        })
        .await
        .unwrap();

    // The server's handler sees a TLS connection without a client identity (none asked).
    let Seen::Connected(conn) = next_seen(&mut seen).await else {
        panic!("expected connected first");
    };
    assert!(conn.is_tls());
    assert!(conn.peer_identity().is_none());

    // The client verified the server: its identity is the server certificate's.
    let to_server = next_connected(&mut events).await;
    assert!(to_server.is_tls());
    let server_identity = to_server.peer_identity().expect("the server's identity");
    assert_eq!(server_identity.common_name.as_deref(), Some("server"));
    assert!(
        server_identity.subject.contains("CN=server"),
        "{}",
        server_identity.subject
    );
    assert_eq!(server_identity.dns_names, ["localhost"]);
    assert_eq!(server_identity.ip_addresses, [IpAddr::from([127, 0, 0, 1])]);

    // Echoed back, in order.
    assert_eq!(
        next_message(&mut events).await,
        Demo::Num(NumMsg { num: 200 })
    );
    assert_eq!(
        next_message(&mut events).await,
        Demo::Str(StrMsg {
            text: "hello world!".into()
        })
    );

    // A graceful close over TLS: the server sees the peer close, nothing is left unsent.
    let report = within(client.close(Duration::from_secs(10))).await;
    assert_eq!(report.unsent_frames, 0);
    loop {
        if let Seen::Disconnected(_, reason) = next_seen(&mut seen).await {
            assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason:?}");
            break;
        }
    }
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn mutual_tls_round_trip_in_stream_style_shows_client_identity() {
    let pki = Pki::new("mutual");
    let (server, mut events) =
        start_event_server(demo_server().tls(pki.mutual_server_tls(ClientAuth::Required))).await;
    let sensor = Leaf {
        name: "sensor-7",
        sans: vec!["sensor-7.example".into(), "10.0.0.7".into()],
        expired: false,
    };
    let (client, mut client_events) = demo_client()
        .tls(pki.client_tls_with_cert(&pki, &sensor))
        .connect(server.local_addr().as_tcp().unwrap().to_string());
    client.send(&NumMsg { num: 7 }).await.unwrap();

    // The identity is known when `Connected` arrives.
    let conn = next_connected(&mut events).await;
    let who = conn.peer_identity().expect("a verified client certificate");
    assert_eq!(who.common_name.as_deref(), Some("sensor-7"));
    assert!(who.subject.contains("CN=sensor-7"), "{}", who.subject);
    assert!(
        who.subject.contains("O=ltprotocol tests"),
        "{}",
        who.subject
    );
    assert_eq!(who.dns_names, ["sensor-7.example"]);
    assert_eq!(who.ip_addresses, [IpAddr::from([10, 0, 0, 7])]);
    assert!(!who.der.is_empty());

    assert_eq!(
        next_message(&mut events).await,
        Demo::Num(NumMsg { num: 7 })
    );
    conn.send(&StrMsg { text: "ack".into() }).await.unwrap();
    assert_eq!(
        next_message(&mut client_events).await,
        Demo::Str(StrMsg { text: "ack".into() })
    );

    let report = within(client.close(Duration::from_secs(10))).await;
    assert_eq!(report.unsent_frames, 0);
    let reason = next_disconnect(&mut events).await;
    assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason:?}");
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn optional_client_auth_admits_clients_with_and_without_certificates() {
    let pki = Pki::new("optional");
    let (server, mut events) =
        start_event_server(demo_server().tls(pki.mutual_server_tls(ClientAuth::Optional))).await;
    let addr = server.local_addr().as_tcp().unwrap().to_string();

    let (anonymous, _anonymous_events) = demo_client().tls(pki.client_tls()).connect(addr.clone());
    let conn = next_connected(&mut events).await;
    assert!(conn.is_tls());
    assert!(conn.peer_identity().is_none());

    let (named, _named_events) = demo_client()
        .tls(pki.client_tls_with_cert(&pki, &Leaf::local("named")))
        .connect(addr);
    let conn = next_connected(&mut events).await;
    assert_eq!(
        conn.peer_identity()
            .and_then(|who| who.common_name.as_deref()),
        Some("named")
    );

    within(anonymous.close(Duration::from_secs(10))).await;
    within(named.close(Duration::from_secs(10))).await;
    server.shutdown(Duration::from_secs(10)).await;
}

// ---- every other feature, unchanged ------------------------------------------------------------

#[tokio::test]
async fn broadcast_send_to_and_connection_limit_work_over_tls() {
    let pki = Pki::new("fanout");
    let (server, mut events) =
        start_event_server(demo_server().max_connections(3).tls(pki.server_tls())).await;
    let addr = server.local_addr().as_tcp().unwrap().to_string();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (client, mut client_events) = demo_client().tls(pki.client_tls()).connect(addr.clone());
        next_connected(&mut client_events).await;
        next_connected(&mut events).await;
        clients.push((client, client_events));
    }
    until(|| server.len() == 3).await;

    assert_eq!(server.broadcast(&NumMsg { num: 1 }).unwrap(), 3);
    let chosen = server.connections()[1].id();
    server.send_to(chosen, &NumMsg { num: 2 }).await.unwrap();
    assert_eq!(server.broadcast(&NumMsg { num: 3 }).unwrap(), 3);
    for (client, client_events) in &mut clients {
        assert_eq!(
            next_message(client_events).await,
            Demo::Num(NumMsg { num: 1 })
        );
        let local = client.connection().expect("connected").local_addr().clone();
        let peer_ids: Vec<_> = server
            .connections()
            .into_iter()
            .filter(|c| *c.peer() == local)
            .map(|c| c.id())
            .collect();
        if peer_ids == [chosen] {
            assert_eq!(
                next_message(client_events).await,
                Demo::Num(NumMsg { num: 2 })
            );
        }
        // The sentinel: nothing else came before it.
        assert_eq!(
            next_message(client_events).await,
            Demo::Num(NumMsg { num: 3 })
        );
    }

    // Over the limit: refused at accept, before TLS; the client sees the handshake cut.
    let (fourth, mut fourth_events) = demo_client()
        .backoff(quick_backoff())
        .tls(pki.client_tls())
        .connect(addr);
    let error = next_connect_failure(&mut fourth_events).await;
    assert!(
        error.contains("closed the connection during the TLS handshake"),
        "{error}"
    );
    until(|| server.refused() >= 1).await;
    within(fourth.close(Duration::from_secs(1))).await;

    for (client, _) in clients {
        within(client.close(Duration::from_secs(10))).await;
    }
    server.shutdown(Duration::from_secs(10)).await;
}

/// Sends HELLO (type 0) with our name and returns the peer's.
struct Hello(&'static str);

impl Handshake for Hello {
    type Output = String;

    async fn run(&self, ctx: &mut HandshakeContext<'_>) -> Result<String, HandshakeError> {
        let hello = Unknown {
            message_type: MessageType::new(0),
            body: Bytes::from_static(self.0.as_bytes()),
        };
        ctx.send(&hello).await?;
        let reply = ctx.recv().await?;
        if reply.message_type != MessageType::new(0) {
            return Err(HandshakeError::Rejected(format!(
                "expected HELLO, got type {}",
                reply.message_type
            )));
        }
        Ok(String::from_utf8_lossy(&reply.body).into_owned())
    }
}

/// ECHO_REQUEST (2) → ECHO_REPLY (3), same header fields and body.
fn echo_reply(frame: ltprotocol::FrameRef<'_>) -> Option<Frame> {
    (frame.message_type == MessageType::new(2)).then(|| {
        let mut reply = Frame::new(MessageType::new(3), Bytes::copy_from_slice(frame.body));
        reply.fields = frame.fields.clone();
        reply
    })
}

#[tokio::test]
async fn handshake_request_reply_and_keepalive_work_over_tls() {
    let pki = Pki::new("openflow");
    let layout = HeaderLayout::openflow();
    let xid = Correlation::new(&layout, "xid").expect("xid");
    let server = Server::<Unknown>::builder(layout.clone())
        .tls(pki.mutual_server_tls(ClientAuth::Required))
        .correlation(xid.clone())
        .handshake(Hello("server"))
        .auto_reply(echo_reply)
        // Without the client's keepalive probes the server would drop it after 2 s of quiet.
        .timeouts(Timeouts {
            idle: Some(Duration::from_secs(2)),
            ..Timeouts::default()
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut events = server.events();
    let probe = Frame::new(MessageType::new(2), Bytes::from_static(b"probe"));
    let (client, mut client_events) = ReconnectingClient::<Unknown>::builder(layout)
        .tls(pki.client_tls_with_cert(&pki, &Leaf::local("switch")))
        .correlation(xid)
        .handshake(Hello("client"))
        .keepalive(Keepalive {
            idle: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
            probe,
        })
        .connect(server.local_addr().as_tcp().unwrap().to_string());

    // The handshake hook ran over TLS on both sides before `Connected`.
    let on_server = next_connected(&mut events).await;
    assert_eq!(
        on_server.handshake_output::<String>().map(String::as_str),
        Some("client")
    );
    assert!(on_server.peer_identity().is_some());
    let on_client = next_connected(&mut client_events).await;
    assert_eq!(
        on_client.handshake_output::<String>().map(String::as_str),
        Some("server")
    );

    // Request/reply on xid.
    let ping = Unknown {
        message_type: MessageType::new(2),
        body: Bytes::from_static(b"ping"),
    };
    let reply = within(on_client.request(&ping)).await.unwrap();
    assert_eq!(reply.message_type, MessageType::new(3));
    assert_eq!(&reply.body[..], b"ping");

    // Five seconds of application silence: the probes (answered by the auto-reply) keep the
    // connection inside the server's 2 s idle timeout.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(on_client.is_connected());
    let reply = within(on_client.request(&ping)).await.unwrap();
    assert_eq!(&reply.body[..], b"ping");
    assert!(
        client
            .connection()
            .is_some_and(|c| c.id() == on_client.id())
    );

    within(client.close(Duration::from_secs(10))).await;
    server.shutdown(Duration::from_secs(10)).await;
}

// ---- failures ------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_ca_fails_on_both_sides_while_others_keep_working() {
    let pki = Pki::new("trusted");
    let stranger = Pki::new("stranger");
    let (server, mut seen) = echo_server(demo_server().tls(pki.server_tls())).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let bystander = Bystander::start(addr, pki.client_tls()).await;

    // A client that trusts another CA rejects the server's certificate...
    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .tls(stranger.client_tls())
        .connect(addr.to_string());
    let error = next_connect_failure(&mut events).await;
    assert!(error.contains("unknown CA"), "{error}");
    // ...and the server hears why.
    let reason = failed_connection(&mut seen).await;
    assert!(
        matches!(
            tls_error(&reason),
            TlsError::PeerRejected {
                alert: AlertDescription::UnknownCA,
                ..
            }
        ),
        "{reason:?}"
    );
    within(client.close(Duration::from_secs(1))).await;
    bystander.still_works().await;
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn client_certificate_from_unknown_ca_is_rejected_while_others_keep_working() {
    let pki = Pki::new("members");
    let stranger = Pki::new("outsider");
    let (server, mut seen) =
        echo_server(demo_server().tls(pki.mutual_server_tls(ClientAuth::Required))).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let bystander =
        Bystander::start(addr, pki.client_tls_with_cert(&pki, &Leaf::local("member"))).await;

    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .tls(stranger.client_tls_with_cert(&pki, &Leaf::local("outsider")))
        .connect(addr.to_string());
    let reason = failed_connection(&mut seen).await;
    assert!(
        matches!(tls_error(&reason), TlsError::UnknownCa(_)),
        "{reason:?}"
    );
    // With TLS 1.3 the client learns it only after its side of the handshake: its short
    // connection ends with the server's alert (or, in a race, with a write or read noticing
    // the close first), and counts as a failed attempt.
    let error = next_failed_attempt(&mut events).await;
    assert!(
        error.contains("does not trust the CA of our certificate")
            || error.contains("i/o error")
            || error.contains("closed by peer"),
        "{error}"
    );
    within(client.close(Duration::from_secs(1))).await;
    bystander.still_works().await;
    server.shutdown(Duration::from_secs(10)).await;
}

/// The reason of a failed attempt, whether it failed in the handshake or right after it.
async fn next_failed_attempt<P: std::fmt::Debug>(events: &mut EventStream<P>) -> String {
    wait_for(events, |event| match event {
        Event::ConnectFailed { error, .. } => Some(error.to_string()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn client_without_certificate_is_rejected_when_one_is_required() {
    let pki = Pki::new("required");
    let (server, mut seen) =
        echo_server(demo_server().tls(pki.mutual_server_tls(ClientAuth::Required))).await;
    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .tls(pki.client_tls())
        .connect(server.local_addr().as_tcp().unwrap().to_string());
    let reason = failed_connection(&mut seen).await;
    assert!(
        matches!(tls_error(&reason), TlsError::NoCertificate(_)),
        "{reason:?}"
    );
    next_failed_attempt(&mut events).await;
    within(client.close(Duration::from_secs(1))).await;
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn wrong_server_name_fails_on_both_sides_while_others_keep_working() {
    let pki = Pki::new("names");
    let (server, mut seen) = echo_server(demo_server().tls(pki.server_tls())).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let bystander = Bystander::start(addr, pki.client_tls()).await;

    let tls = ClientTls::builder()
        .ca_file(pki.ca_file())
        .server_name("wrong.example")
        .build()
        .unwrap();
    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .tls(tls)
        .connect(addr.to_string());
    let error = next_connect_failure(&mut events).await;
    assert!(
        error.contains("not valid for wrong.example (name mismatch)"),
        "{error}"
    );
    let reason = failed_connection(&mut seen).await;
    assert!(
        matches!(
            tls_error(&reason),
            TlsError::PeerRejected {
                alert: AlertDescription::BadCertificate,
                ..
            }
        ),
        "{reason:?}"
    );
    within(client.close(Duration::from_secs(1))).await;
    bystander.still_works().await;
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn expired_certificates_fail_on_both_sides_while_others_keep_working() {
    let pki = Pki::new("clock");

    // An expired server certificate: the client says so, the server hears the alert.
    let expired = pki.issue(&Leaf::expired("old-server"));
    let old_tls = ltprotocol::tls::ServerTls::from_pem_files(&expired.cert, &expired.key).unwrap();
    let (old_server, mut old_seen) = echo_server(demo_server().tls(old_tls)).await;
    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .tls(pki.client_tls())
        .connect(old_server.local_addr().as_tcp().unwrap().to_string());
    let error = next_connect_failure(&mut events).await;
    assert!(error.contains("certificate has expired"), "{error}");
    let reason = failed_connection(&mut old_seen).await;
    assert!(
        matches!(
            tls_error(&reason),
            TlsError::PeerRejected {
                alert: AlertDescription::CertificateExpired,
                ..
            }
        ),
        "{reason:?}"
    );
    within(client.close(Duration::from_secs(1))).await;
    old_server.shutdown(Duration::from_secs(10)).await;

    // An expired client certificate on a server requiring one: the server says so, and its
    // other clients carry on.
    let (server, mut seen) =
        echo_server(demo_server().tls(pki.mutual_server_tls(ClientAuth::Required))).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let bystander = Bystander::start(
        addr,
        pki.client_tls_with_cert(&pki, &Leaf::local("current")),
    )
    .await;
    let (client, mut events) = demo_client()
        .backoff(quick_backoff())
        .tls(pki.client_tls_with_cert(&pki, &Leaf::expired("old-client")))
        .connect(addr.to_string());
    let reason = failed_connection(&mut seen).await;
    assert!(
        matches!(tls_error(&reason), TlsError::Expired(_)),
        "{reason:?}"
    );
    next_failed_attempt(&mut events).await;
    within(client.close(Duration::from_secs(1))).await;
    bystander.still_works().await;
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn plain_tcp_on_tls_port_fails_on_both_sides_while_others_keep_working() {
    let pki = Pki::new("plain-on-tls");
    let (server, mut seen) = echo_server(demo_server().tls(pki.server_tls())).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let bystander = Bystander::start(addr, pki.client_tls()).await;

    // A plain client sends a frame; the TLS server sees no TLS, and answers with an alert
    // that the plain client recognises as TLS.
    let (plain, mut events) = demo_client()
        .backoff(quick_backoff())
        .connect(addr.to_string());
    plain.send(&NumMsg { num: 200 }).await.unwrap();
    let reason = failed_connection(&mut seen).await;
    assert!(
        matches!(tls_error(&reason), TlsError::NotTls(_)),
        "{reason:?}"
    );
    assert!(
        ltprotocol::error_chain(&reason).contains("not a TLS handshake"),
        "{reason}"
    );
    let plain_reason = next_disconnect(&mut events).await;
    assert!(
        matches!(tls_error(&plain_reason), TlsError::UnexpectedTls(_)),
        "{plain_reason:?}"
    );
    let error = next_failed_attempt(&mut events).await;
    assert!(error.contains("the peer speaks TLS"), "{error}");
    within(plain.close(Duration::from_secs(1))).await;
    bystander.still_works().await;
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn tls_on_plain_port_fails_on_both_sides_while_others_keep_working() {
    let (server, mut seen) = echo_server(&demo_server()).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let (bystander, mut bystander_events) = demo_client().connect(addr.to_string());
    next_connected(&mut bystander_events).await;

    // The plain server waits for the rest of what it takes for a frame; the TLS client's
    // handshake times out, and the server recognises what it got as TLS.
    let pki = Pki::new("tls-on-plain");
    let (client, mut events) = demo_client()
        .backoff(Backoff {
            initial: Duration::from_secs(30),
            ..Backoff::default()
        })
        .tls(pki.client_tls())
        .tls_timeout(Duration::from_secs(1))
        .connect(addr.to_string());
    let error = next_connect_failure(&mut events).await;
    assert!(
        error.contains("TLS handshake timed out after 1s"),
        "{error}"
    );
    let reason = loop {
        if let Seen::Disconnected(conn, reason) = next_seen(&mut seen).await
            && conn.peer() != bystander.connection().expect("bystander").local_addr()
        {
            break reason;
        }
    };
    let TlsError::UnexpectedTls(inner) = tls_error(&reason) else {
        panic!("expected UnexpectedTls, got {reason:?}");
    };
    assert!(matches!(inner, DisconnectReason::Protocol(_)), "{inner:?}");
    within(client.close(Duration::from_secs(1))).await;

    bystander.send(&NumMsg { num: 9 }).await.unwrap();
    assert_eq!(
        next_message(&mut bystander_events).await,
        Demo::Num(NumMsg { num: 9 })
    );
    within(bystander.close(Duration::from_secs(10))).await;
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn tls_client_answered_in_plain_text_reports_not_tls() {
    // A plain server that speaks first (as an OpenFlow peer does).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain_peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream
            .write_all(b"\x00\x07\x01\x00\x00\x00\xc8")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
    let pki = Pki::new("answered-plain");
    let (client, mut events) = demo_client()
        .tls(pki.client_tls())
        .connect(addr.to_string());
    let error = next_connect_failure(&mut events).await;
    assert!(error.contains("not a TLS handshake"), "{error}");
    within(client.close(Duration::from_secs(1))).await;
    within(plain_peer).await.unwrap();
}

#[tokio::test]
async fn silent_peer_on_tls_port_times_out_while_others_keep_working() {
    let pki = Pki::new("silent");
    let (server, mut seen) = echo_server(
        demo_server()
            .tls(pki.server_tls())
            .tls_timeout(Duration::from_secs(1)),
    )
    .await;
    let addr = server.local_addr().as_tcp().unwrap();
    let bystander = Bystander::start(addr, pki.client_tls()).await;
    let mut silent = within(TcpStream::connect(addr)).await.unwrap();
    let reason = failed_connection(&mut seen).await;
    assert!(
        matches!(tls_error(&reason), TlsError::TimedOut { after } if *after == Duration::from_secs(1)),
        "{reason:?}"
    );
    common::expect_closed(&mut silent).await;
    bystander.still_works().await;
    server.shutdown(Duration::from_secs(10)).await;
}

// ---- reconnects ----------------------------------------------------------------------------------

#[tokio::test]
async fn tls_client_reconnects_across_three_server_restarts_with_nothing_lost() {
    const WHILE_UP: u32 = 20;
    const WHILE_DOWN: u32 = 30;
    let pki = Pki::new("restarts");
    let mut builder = demo_server();
    builder.tls(pki.mutual_server_tls(ClientAuth::Required));
    let (mut server, mut server_events) = start_event_server(&builder).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let (client, mut client_events) = demo_client()
        .backoff(quick_backoff())
        .tls(pki.client_tls_with_cert(&pki, &Leaf::local("roamer")))
        .connect(addr.to_string());

    let mut sent = 0u32;
    let mut received = 0u32;
    let mut connections = Vec::new();
    for round in 0..3 {
        let conn = within(client.wait_connected())
            .await
            .expect("client gave up");
        assert!(conn.is_tls());
        connections.push(conn.id());
        for _ in 0..WHILE_UP {
            client.send(&NumMsg { num: sent }).await.unwrap();
            sent += 1;
        }
        received = expect_nums(&mut server_events, received, sent).await;

        // Down: the client notices, and queues what it sends meanwhile.
        let report = within(server.shutdown(Duration::from_secs(10))).await;
        assert_eq!((report.connections, report.forced), (1, 0), "round {round}");
        next_disconnect(&mut client_events).await;
        while let Some(event) = within(server_events.next()).await {
            assert!(
                matches!(event, Event::Disconnected { .. }),
                "round {round}: {event:?}"
            );
        }
        for _ in 0..WHILE_DOWN {
            client.send(&NumMsg { num: sent }).await.unwrap();
            sent += 1;
        }

        // Up again on the same port: a fresh TLS handshake, then the queue, in order, once.
        server = bind_again(&builder, addr).await;
        server_events = server.events();
        received = expect_nums(&mut server_events, received, sent).await;
    }
    let conn = within(client.wait_connected()).await.expect("connected");
    assert!(
        !connections.contains(&conn.id()),
        "each restart is a new connection"
    );
    assert_eq!(
        conn.peer_identity()
            .and_then(|who| who.common_name.as_deref()),
        Some("server")
    );

    // Nothing duplicated: a last message, then the client's goodbye.
    client.send(&NumMsg { num: sent }).await.unwrap();
    sent += 1;
    expect_nums(&mut server_events, received, sent).await;
    let report = within(client.close(Duration::from_secs(20))).await;
    assert_eq!(report.unsent_frames, 0);
    let reason = next_disconnect(&mut server_events).await;
    assert!(matches!(reason, DisconnectReason::PeerClosed), "{reason:?}");
    server.shutdown(Duration::from_secs(10)).await;
}

/// Expects `NumMsg`s `from..to` in order, skipping connection events; returns `to`.
async fn expect_nums(events: &mut EventStream<Demo>, from: u32, to: u32) -> u32 {
    for expected in from..to {
        let got = wait_for(events, |event| match event {
            Event::Connected(conn) => {
                assert_eq!(
                    conn.peer_identity()
                        .and_then(|who| who.common_name.as_deref()),
                    Some("roamer")
                );
                None
            }
            Event::Message { message, .. } => Some(message),
            other => panic!("expected NumMsg {expected}, got {other:?}"),
        })
        .await;
        assert_eq!(got, Demo::Num(NumMsg { num: expected }));
    }
    to
}
