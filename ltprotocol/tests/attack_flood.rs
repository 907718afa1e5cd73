//! Connection floods and churn: clients past the limit are refused at once and counted while
//! the admitted ones keep working, and 10,000 connect/disconnect cycles leak neither file
//! descriptors nor memory.

mod common;

use std::time::Duration;

use common::{
    Recorder, connect, expect_closed, num_bytes, open_fds, read_num, rss_bytes, start_server,
    until, write_raw,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_limit_is_refused_while_admitted_clients_keep_working() {
    let mut builder = common::demo_server();
    builder.max_connections(20);
    let (recorder, _seen) = Recorder::echo();
    let server = start_server(&builder, recorder).await;
    let addr = server.local_addr().as_tcp().unwrap();

    let mut admitted = Vec::new();
    for i in 0..20 {
        let mut stream = connect(addr).await;
        write_raw(&mut stream, &num_bytes(i)).await;
        assert_eq!(read_num(&mut stream).await, i);
        admitted.push(stream);
    }
    let mut flood = Vec::new();
    for _ in 0..80 {
        flood.push(connect(addr).await);
    }
    for stream in &mut flood {
        expect_closed(stream).await;
    }
    until(|| server.refused() == 80).await;
    for (i, stream) in admitted.iter_mut().enumerate() {
        write_raw(stream, &num_bytes(1000 + i as u32)).await;
        assert_eq!(read_num(stream).await, 1000 + i as u32);
    }
    assert_eq!(server.len(), 20);
    drop(admitted);
    server.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connect_disconnect_cycles_leak_no_descriptor_or_memory() {
    // A handler that keeps nothing: a recording one would hold every connection's events.
    let server = start_server(&common::demo_server(), Discard).await;
    let addr = server.local_addr().as_tcp().unwrap();

    // Warm up allocator pools and the runtime before measuring.
    for _ in 0..200 {
        drop(connect(addr).await);
    }
    until(|| server.is_empty()).await;
    let fds_before = open_fds();

    // Three rounds of 5,000: the allocator keeps its high-water mark after the first, so a
    // leak shows as growth between the later rounds.
    let mut rss = Vec::new();
    for _ in 0..3 {
        churn(addr, 5_000).await;
        until(|| server.is_empty()).await;
        // Closed sockets are released by the connection tasks as they end.
        until(|| open_fds() <= fds_before).await;
        rss.push(rss_bytes());
    }
    eprintln!(
        "fds {fds_before} -> {}, rss after each round {rss:?}",
        open_fds()
    );
    let growth = rss[2].saturating_sub(rss[1]);
    assert!(
        growth < 4 * 1024 * 1024,
        "memory grew by {growth} bytes over 5,000 more connections: {rss:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

/// `count` connections from 20 concurrent workers; every other one sends a frame first.
async fn churn(addr: std::net::SocketAddr, count: u32) {
    let workers: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                for i in 0..count / 20 {
                    let mut stream = connect(addr).await;
                    if i % 2 == 0 {
                        write_raw(&mut stream, &num_bytes(i)).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        common::within(worker).await.unwrap();
    }
}

/// Ignores every message.
struct Discard;

impl ltprotocol::Handler<common::Demo> for Discard {
    async fn message(
        &self,
        _conn: &ltprotocol::ConnectionHandle,
        _message: common::Demo,
        _fields: &ltprotocol::HeaderFields,
    ) {
    }
}

#[tokio::test]
async fn a_per_address_limit_refuses_more_from_one_ip_and_admits_again_when_one_leaves() {
    let mut builder = common::demo_server();
    builder.max_connections_per_ip(2);
    let (recorder, _seen) = Recorder::echo();
    let server = start_server(&builder, recorder).await;
    let addr = server.local_addr().as_tcp().unwrap();
    let mut first = connect(addr).await;
    let mut second = connect(addr).await;
    for (num, stream) in [(1, &mut first), (2, &mut second)] {
        write_raw(stream, &num_bytes(num)).await;
        assert_eq!(read_num(stream).await, num);
    }
    let mut third = connect(addr).await;
    expect_closed(&mut third).await;
    assert_eq!(server.refused(), 1);
    drop(first);
    until(|| server.len() == 1).await;
    let mut again = connect(addr).await;
    write_raw(&mut again, &num_bytes(3)).await;
    assert_eq!(read_num(&mut again).await, 3);
    drop((second, again));
    server.shutdown(Duration::from_secs(5)).await;
}
