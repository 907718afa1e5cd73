//! Hostile lengths and garbage against a real server: each case gets the right outcome (a
//! frame, or that connection closed with the right reason) while 50 well-behaved clients keep
//! exchanging messages without an error or a loss.

mod common;

use std::sync::Arc;

use common::{
    Recorder, connect, disconnect_of, expect_closed, frame_bytes, num_bytes, read_num,
    start_server, within, write_raw,
};
use ltprotocol::{DisconnectReason, FrameError, HeaderLayout, Int, Server, Unknown};
use tokio::io::AsyncWriteExt;

/// Each well-behaved client sends `rounds` numbers and reads each echo back, in order.
async fn well_behaved(addr: std::net::SocketAddr, base: u32, rounds: u32) {
    let mut stream = connect(addr).await;
    for i in 0..rounds {
        write_raw(&mut stream, &num_bytes(base + i)).await;
        assert_eq!(read_num(&mut stream).await, base + i);
    }
}

fn protocol_error(reason: &DisconnectReason) -> &FrameError {
    match reason {
        DisconnectReason::Protocol(err) => err,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lengths_close_only_their_connection_while_others_keep_exchanging() {
    let mut builder = common::demo_server();
    builder.max_inbound(1024);
    let (recorder, mut seen) = Recorder::echo();
    let server = start_server(&builder, recorder).await;
    let addr = server.local_addr().as_tcp().unwrap();

    let good: Vec<_> = (0..50u32)
        .map(|i| tokio::spawn(well_behaved(addr, i * 1000, 40)))
        .collect();

    // Lengths shorter than the 3-byte header.
    for declared in [0u16, 1, 2] {
        let mut bad = connect(addr).await;
        let peer = bad.local_addr().unwrap();
        let mut bytes = declared.to_be_bytes().to_vec();
        bytes.push(1);
        write_raw(&mut bad, &bytes).await;
        let reason = disconnect_of(&mut seen, peer).await;
        assert!(
            matches!(
                protocol_error(&reason),
                FrameError::TooShort { declared: d, header_len: 3, .. } if *d == i128::from(declared)
            ),
            "{reason:?}"
        );
        expect_closed(&mut bad).await;
    }

    // One over the maximum: refused from the header alone.
    let mut bad = connect(addr).await;
    let peer = bad.local_addr().unwrap();
    write_raw(&mut bad, &[0x04, 0x01, 0x01]).await;
    let reason = disconnect_of(&mut seen, peer).await;
    assert!(
        matches!(
            protocol_error(&reason),
            FrameError::TooLong {
                declared: 1025,
                max: 1024,
                ..
            }
        ),
        "{reason:?}"
    );
    assert_eq!(
        ltprotocol::error_chain(&reason),
        "protocol error: length 1025 exceeds the maximum frame length 1024"
    );

    // The largest legal frame under that maximum arrives whole, split across many writes.
    let mut edge = connect(addr).await;
    let body = vec![0x5a; 1024 - 3];
    let whole = frame_bytes(2, &body);
    for chunk in whole.chunks(7) {
        edge.write_all(chunk).await.unwrap();
        edge.flush().await.unwrap();
    }
    let (message_type, echoed) = common::read_frame(&mut edge).await;
    assert_eq!((message_type, echoed.len()), (2, 1021));

    // A header split byte by byte still makes a frame.
    let mut split = connect(addr).await;
    for byte in num_bytes(77) {
        split.write_all(&[byte]).await.unwrap();
        split.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(read_num(&mut split).await, 77);

    // A valid frame followed by garbage: the frame is delivered, then the garbage closes it.
    let mut mixed = connect(addr).await;
    let peer = mixed.local_addr().unwrap();
    let mut bytes = num_bytes(5);
    bytes.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    write_raw(&mut mixed, &bytes).await;
    assert_eq!(read_num(&mut mixed).await, 5);
    let reason = disconnect_of(&mut seen, peer).await;
    assert!(matches!(
        protocol_error(&reason),
        FrameError::TooShort { declared: 0, .. }
    ));

    // Garbage from the first byte.
    let mut garbage = connect(addr).await;
    let peer = garbage.local_addr().unwrap();
    write_raw(&mut garbage, b"GET / HTTP/1.1\r\n\r\n").await;
    let reason = disconnect_of(&mut seen, peer).await;
    assert!(
        matches!(
            protocol_error(&reason),
            FrameError::TooLong {
                declared: 0x4745,
                ..
            }
        ),
        "{reason:?}"
    );

    for task in good {
        within(task).await.expect("a well-behaved client failed");
    }
    // Peers that hang up let the shutdown finish without waiting out its linger.
    drop((bad, edge, split, mixed, garbage));
    server.shutdown(std::time::Duration::from_secs(10)).await;
}

#[tokio::test]
async fn negative_lengths_in_signed_layouts_are_refused_never_delivered() {
    for int in [Int::I8, Int::I16, Int::I32, Int::I64] {
        let layout = HeaderLayout::builder()
            .length(0, int)
            .message_type(int.width(), Int::U8)
            .build()
            .unwrap();
        let server = Server::<Unknown>::builder(layout)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut events = server.events();
        let mut stream = connect(server.local_addr().as_tcp().unwrap()).await;
        // −3 in the length field's width, type 1, then eight bytes of 'A': the ancestor
        // delivered part of these as a message.
        let mut bytes = vec![0xff; int.width()];
        if let Some(last) = bytes.last_mut() {
            *last = 0xfd;
        }
        bytes.push(1);
        bytes.extend_from_slice(&[0x41; 8]);
        write_raw(&mut stream, &bytes).await;
        let reason = loop {
            match within(events.next()).await.expect("events") {
                ltprotocol::Event::Message { message, .. } => {
                    panic!("{int}: delivered {message:?}")
                }
                ltprotocol::Event::Disconnected { reason, .. } => break reason,
                _ => {}
            }
        };
        let reason = Arc::new(reason);
        assert!(
            matches!(
                protocol_error(&reason),
                FrameError::NegativeLength { declared: -3 }
            ),
            "{int}: {reason:?}"
        );
        expect_closed(&mut stream).await;
        server.shutdown(std::time::Duration::from_secs(5)).await;
    }
}
