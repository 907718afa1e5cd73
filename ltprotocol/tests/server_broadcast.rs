//! A server's broadcast reaches every client exactly once, `send_to` reaches only its target,
//! and the list of connections follows clients as they come and go.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{NumMsg, Recorder, connect, demo_server, read_num, start_server, until, within};
use ltprotocol::ConnectionId;
use tokio::net::TcpStream;

const CLIENTS: usize = 200;

async fn broadcast_scenario() {
    let (handler, _seen) = Recorder::silent();
    let server = start_server(&demo_server(), handler).await;
    let addr = server.local_addr().as_tcp().unwrap();
    assert_eq!(server.len(), 0);

    // Connect every client concurrently.
    let connecting: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(async move { connect(addr).await }))
        .collect();
    let mut clients: Vec<TcpStream> = Vec::with_capacity(CLIENTS);
    for task in connecting {
        clients.push(within(task).await.expect("connect task"));
    }
    until(|| server.len() == CLIENTS).await;

    // connections(): one per client, keyed by the client's own address.
    let ids: HashMap<_, ConnectionId> = server
        .connections()
        .iter()
        .map(|conn| (conn.peer().as_tcp().unwrap(), conn.id()))
        .collect();
    assert_eq!(ids.len(), CLIENTS);
    for client in &clients {
        assert!(ids.contains_key(&client.local_addr().unwrap()));
    }

    // One broadcast, then a sentinel: every client reads exactly the broadcast, then the
    // sentinel, so the broadcast arrived once and only once.
    assert_eq!(server.broadcast(&NumMsg { num: 1 }).unwrap(), CLIENTS);
    assert_eq!(server.broadcast(&NumMsg { num: 2 }).unwrap(), CLIENTS);
    for client in &mut clients {
        assert_eq!(read_num(client).await, 1);
        assert_eq!(read_num(client).await, 2);
    }

    // send_to reaches its target only: the others see the next sentinel first.
    let target = CLIENTS / 3;
    let target_id = ids[&clients[target].local_addr().unwrap()];
    within(server.send_to(target_id, &NumMsg { num: 3 }))
        .await
        .unwrap();
    assert_eq!(server.broadcast(&NumMsg { num: 4 }).unwrap(), CLIENTS);
    for (i, client) in clients.iter_mut().enumerate() {
        if i == target {
            assert_eq!(read_num(client).await, 3);
        }
        assert_eq!(read_num(client).await, 4, "client {i}");
    }

    // Half the clients leave: the list follows.
    let leaving: Vec<TcpStream> = clients.drain(..CLIENTS / 2).collect();
    drop(leaving);
    until(|| server.len() == CLIENTS / 2).await;
    let mut left: Vec<_> = server
        .connections()
        .iter()
        .map(|c| c.peer().as_tcp().unwrap())
        .collect();
    let mut expected: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    left.sort();
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(server.broadcast(&NumMsg { num: 5 }).unwrap(), CLIENTS / 2);
    for client in &mut clients {
        assert_eq!(read_num(client).await, 5);
    }

    // send_to a connection that left fails.
    let gone = ids
        .values()
        .find(|id| server.connection(**id).is_none())
        .copied()
        .unwrap();
    assert!(matches!(
        server.send_to(gone, &NumMsg { num: 6 }).await,
        Err(ltprotocol::SendError::Closed { id }) if id == gone
    ));

    drop(clients);
    until(|| server.is_empty()).await;
    assert!(server.connections().is_empty());
    assert_eq!(server.broadcast(&NumMsg { num: 7 }).unwrap(), 0);
    let report = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.connections, 0);
    assert_eq!(report.unsent_frames, 0);
}

#[tokio::test]
async fn broadcast_reaches_every_client_once() {
    broadcast_scenario().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_client_once_multi_thread() {
    broadcast_scenario().await;
}

/// A message encoded once goes to a group the application picks (every other client, here)
/// and to everyone with `broadcast_encoded`, byte for byte as `broadcast` sends it; a frame
/// encoded for another layout is refused, not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_once_reaches_a_chosen_group_and_everyone() {
    let (handler, _seen) = Recorder::silent();
    let server = start_server(&demo_server(), handler).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(connect(addr).await);
    }
    until(|| server.len() == clients.len()).await;

    let five = server.encode(&NumMsg { num: 5 }).unwrap();
    let mut plain = bytes::BytesMut::new();
    server
        .codec()
        .encode_message_with(
            &NumMsg { num: 5 },
            &ltprotocol::HeaderFields::new(),
            &mut plain,
        )
        .unwrap();
    assert_eq!(five.as_bytes(), &plain[..]);

    // The odd clients, by their address, each sent the frame three times.
    let odd: Vec<_> = clients
        .iter()
        .skip(1)
        .step_by(2)
        .map(|c| c.local_addr().unwrap())
        .collect();
    let group: Vec<_> = server
        .connections()
        .into_iter()
        .filter(|conn| conn.peer().as_tcp().is_some_and(|peer| odd.contains(&peer)))
        .collect();
    assert_eq!(group.len(), 5);
    for _ in 0..3 {
        for conn in &group {
            within(conn.send_encoded(&five)).await.unwrap();
        }
    }
    assert_eq!(
        server.broadcast_encoded(&server.encode(&NumMsg { num: 9 }).unwrap()),
        10
    );
    for (i, client) in clients.iter_mut().enumerate() {
        if i % 2 == 1 {
            for _ in 0..3 {
                assert_eq!(read_num(client).await, 5);
            }
        }
        assert_eq!(read_num(client).await, 9);
    }

    // Another layout's frame reaches nobody.
    let foreign = ltprotocol::FrameCodec::new(ltprotocol::HeaderLayout::openflow())
        .encode_once(&NumMsg { num: 5 }, &ltprotocol::HeaderFields::new())
        .unwrap();
    let conn = group.first().unwrap();
    assert!(matches!(
        conn.try_send_encoded(&foreign),
        Err(ltprotocol::SendError::LayoutMismatch { id }) if id == conn.id()
    ));
    assert_eq!(server.broadcast_encoded(&foreign), 0);
    assert_eq!(server.broadcast(&NumMsg { num: 10 }).unwrap(), 10);
    for client in &mut clients {
        assert_eq!(read_num(client).await, 10);
    }
    server.shutdown(Duration::from_secs(10)).await;
}
