//! A reconnecting client waits between attempts as its `Backoff` says: growing by the
//! factor up to the cap, back to the start after a connection that lasted (and even then
//! never sooner than the first wait), and giving up after `max_attempts`.

mod common;

use std::time::Duration;

use common::{
    Demo, NumMsg, demo_client, num_bytes, read_num, refusing_addr, within, within_real, write_raw,
};
use ltprotocol::{Backoff, Event, EventStream, SendError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---- the policy as a pure sequence -----------------------------------------------------------

#[test]
fn default_policy_doubles_from_half_a_second_up_to_thirty() {
    let backoff = Backoff {
        jitter: 0.0,
        ..Backoff::default()
    };
    let waits: Vec<_> = (1..=10).map(|n| backoff.delay(n, 0.9).unwrap()).collect();
    let expected: Vec<_> = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
        .map(secs)
        .to_vec();
    assert_eq!(waits, expected);
    assert_eq!(backoff.delay(u32::MAX, 0.5), Some(secs(30.0)));
}

#[test]
fn jitter_spreads_each_wait_within_its_fraction_and_never_past_the_cap() {
    let backoff = Backoff::default();
    for failures in 1..=12 {
        let base = backoff.base_delay(failures);
        assert_eq!(
            backoff.delay(failures, 0.5),
            Some(base),
            "unit 0.5 is no jitter"
        );
        let low = backoff.delay(failures, 0.0).unwrap();
        assert_eq!(low, base.mul_f64(0.8), "{failures}");
        for unit in [0.0, 0.1, 0.25, 0.5, 0.75, 0.999_999] {
            let got = backoff.delay(failures, unit).unwrap();
            assert!(
                got >= low && got <= base.mul_f64(1.2),
                "{failures} {unit}: {got:?}"
            );
            assert!(got <= backoff.max, "{failures} {unit}: {got:?}");
        }
    }
    // Out-of-range units are clamped, not trusted.
    assert_eq!(backoff.delay(1, f64::NAN), backoff.delay(1, 0.5));
    assert_eq!(backoff.delay(1, -3.0), backoff.delay(1, 0.0));
}

#[test]
fn twisted_policy_grows_by_e_up_to_an_hour() {
    let backoff = Backoff {
        jitter: 0.0,
        ..Backoff::twisted()
    };
    assert_eq!(backoff.delay(1, 0.5), Some(secs(1.0)));
    let second = backoff.delay(2, 0.5).unwrap().as_secs_f64();
    assert!((second - std::f64::consts::E).abs() < 1e-6, "{second}");
    assert_eq!(backoff.delay(20, 0.5), Some(secs(3600.0)));
}

#[test]
fn max_attempts_ends_the_sequence() {
    let backoff = Backoff {
        jitter: 0.0,
        max_attempts: Some(3),
        ..Backoff::default()
    };
    assert_eq!(backoff.delay(1, 0.5), Some(secs(0.5)));
    assert_eq!(backoff.delay(2, 0.5), Some(secs(1.0)));
    assert_eq!(backoff.delay(3, 0.5), None);
    assert_eq!(backoff.delay(4, 0.5), None);
}

#[test]
fn a_factor_below_one_never_shrinks_the_wait() {
    let backoff = Backoff {
        factor: 0.5,
        jitter: 0.0,
        ..Backoff::default()
    };
    assert_eq!(backoff.delay(5, 0.5), Some(secs(0.5)));
}

// ---- a client following the policy -----------------------------------------------------------

/// Takes events until a `ConnectFailed`; returns its attempt number and `retry_in`. Panics on
/// a `Connected` (nothing should be listening).
async fn next_failure(events: &mut EventStream<Demo>) -> (u32, Option<Duration>) {
    loop {
        match events.next().await.expect("event stream ended") {
            Event::ConnectFailed {
                attempt, retry_in, ..
            } => return (attempt, retry_in),
            Event::Connecting { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_wait_as_the_policy_says_paused_clock() {
    // Nothing listens. The paused clock skips the waits; every attempt fails at once
    // (refused, or, if the clock jumps past the connect timeout first, timed out: a
    // failure either way), so the sequence of waits is exact.
    let (_refusing, addr) = refusing_addr();
    let (client, mut events) = demo_client()
        .backoff(Backoff {
            jitter: 0.0,
            ..Backoff::default()
        })
        .connect(addr.to_string());
    let expected = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
    for (attempt, wait) in (1..).zip(expected) {
        let failure = within_real(next_failure(&mut events)).await;
        assert_eq!(failure, (attempt, Some(secs(wait))));
    }
    let report = within_real(client.close(Duration::from_secs(5))).await;
    assert_eq!(report.unsent_frames, 0);
}

/// Tiny waits, exact in binary: 1/64 s doubling up to 1/8 s.
fn tiny_backoff(reset_after: Duration) -> Backoff {
    Backoff {
        initial: Duration::from_micros(15_625),
        factor: 2.0,
        max: Duration::from_millis(125),
        jitter: 0.0,
        max_attempts: None,
        reset_after,
    }
}

fn tiny(attempt: u32) -> Duration {
    let waits = [15_625, 31_250, 62_500];
    Duration::from_micros(waits.get(attempt as usize - 1).copied().unwrap_or(125_000))
}

/// Lets three attempts fail, then listens on the client's address; returns the listener
/// and the number of the attempt that will connect.
async fn fail_three_then_listen(
    refusing: tokio::net::TcpSocket,
    events: &mut EventStream<Demo>,
) -> (TcpListener, u32) {
    for attempt in 1..=3 {
        let failure = within(next_failure(events)).await;
        assert_eq!(failure, (attempt, Some(tiny(attempt))));
    }
    let listener = refusing.listen(16).unwrap();
    // Attempts made before `listen` may still fail; they follow the policy too.
    let connecting = within(async {
        loop {
            match events.next().await.expect("event stream ended") {
                Event::Connecting { attempt } => break attempt,
                Event::ConnectFailed {
                    attempt, retry_in, ..
                } => assert_eq!(retry_in, Some(tiny(attempt))),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    (listener, connecting)
}

/// Waits for the client's `Connected` event, skipping failures of attempts made before the
/// listener was up; returns the number of the attempt that connected (`attempt` is the
/// last one announced).
async fn connected(events: &mut EventStream<Demo>, mut attempt: u32) -> u32 {
    within(async {
        loop {
            match events.next().await.expect("event stream ended") {
                Event::Connected(_) => return attempt,
                Event::Connecting { attempt: n } => attempt = n,
                Event::ConnectFailed {
                    attempt, retry_in, ..
                } => assert_eq!(retry_in, Some(tiny(attempt))),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_connection_that_delivered_a_message_but_ended_soon_does_not_reset_the_backoff() {
    let (refusing, addr) = refusing_addr();
    let (client, mut events) = demo_client()
        .backoff(tiny_backoff(Duration::from_secs(3600)))
        .connect(addr.to_string());
    let (listener, connecting) = fail_three_then_listen(refusing, &mut events).await;
    let (mut stream, _) = within(listener.accept()).await.unwrap();
    let attempt = connected(&mut events, connecting).await;
    // Nothing will listen once this connection ends.
    drop(listener);
    write_raw(&mut stream, &num_bytes(1)).await;
    within(stream.shutdown()).await.unwrap();
    let got = within(async {
        loop {
            if let Event::Message { message, .. } = events.next().await.expect("ended") {
                return message;
            }
        }
    })
    .await;
    assert_eq!(got, Demo::Num(NumMsg { num: 1 }));
    // A "busy" message then a close is a failed attempt: the waits keep growing.
    let failure = within(async {
        loop {
            match events.next().await.expect("ended") {
                Event::Disconnected { .. } | Event::Connecting { .. } => {}
                Event::ConnectFailed {
                    attempt, retry_in, ..
                } => return (attempt, retry_in),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(failure, (attempt, Some(tiny(attempt))));
    assert_eq!(
        within(next_failure(&mut events)).await,
        (attempt + 1, Some(tiny(attempt + 1)))
    );
    drop(stream);
    within(client.close(Duration::from_secs(10))).await;
}

/// A server that accepts, sends one "busy" frame and closes, again and again: counts the
/// connections it accepted until `stop`.
async fn busy_server(listener: TcpListener, stop: tokio::sync::oneshot::Receiver<()>) -> u32 {
    let mut accepted = 0;
    let serve = async {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            accepted += 1;
            let _ = stream.write_all(&num_bytes(503)).await;
            let _ = stream.shutdown().await;
        }
    };
    tokio::select! {
        () = serve => {}
        _ = stop => {}
    }
    accepted
}

/// Counts the connections a client makes to [`busy_server`] in `window` of real time.
async fn attempts_against_a_busy_server(backoff: Backoff, window: Duration) -> u32 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(busy_server(listener, stopped));
    let (client, _events) = demo_client().backoff(backoff).connect(addr.to_string());
    tokio::time::sleep(window).await;
    let _ = stop.send(());
    let accepted = within(server).await.unwrap();
    within(client.close(Duration::from_secs(10))).await;
    accepted
}

#[tokio::test]
async fn a_server_that_says_busy_and_closes_is_not_hammered() {
    // 100 ms doubling, ±20 %: at most 5 attempts fit in 2 s (waits of at least 80, 160,
    // 320 and 640 ms). Fewer on a loaded machine, never more; without backoff, hundreds.
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        ..Backoff::default()
    };
    let attempts = attempts_against_a_busy_server(backoff, Duration::from_secs(2)).await;
    assert!((1..=6).contains(&attempts), "{attempts} connections in 2 s");
}

#[tokio::test]
async fn even_a_lasting_connection_is_followed_by_the_first_wait() {
    // Every connection "lasts" (reset after zero): each lost one is followed by the first
    // wait, at least 80 ms, so at most 26 attempts fit in 2 s; without it, hundreds.
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        reset_after: Duration::ZERO,
        ..Backoff::default()
    };
    let attempts = attempts_against_a_busy_server(backoff, Duration::from_secs(2)).await;
    assert!(
        (1..=27).contains(&attempts),
        "{attempts} connections in 2 s"
    );
}

#[tokio::test]
async fn a_connection_that_lasted_resets_the_backoff() {
    let reset_after = Duration::from_millis(100);
    let (refusing, addr) = refusing_addr();
    let (client, mut events) = demo_client()
        .backoff(tiny_backoff(reset_after))
        .connect(addr.to_string());
    let (listener, connecting) = fail_three_then_listen(refusing, &mut events).await;
    let (mut stream, _) = within(listener.accept()).await.unwrap();
    // The client's clock for this connection started before its `Connected` event.
    connected(&mut events, connecting).await;
    drop(listener);
    // Not an assertion on time: the connection merely has to outlive `reset_after`.
    tokio::time::sleep(reset_after * 3).await;
    within(stream.shutdown()).await.unwrap();
    let failure = within(async {
        loop {
            match events.next().await.expect("ended") {
                Event::Disconnected { .. } | Event::Connecting { .. } => {}
                Event::ConnectFailed {
                    attempt, retry_in, ..
                } => return (attempt, retry_in),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(failure, (1, Some(tiny(1))));
    drop(stream);
    within(client.close(Duration::from_secs(10))).await;
}

#[tokio::test]
async fn a_connection_closed_at_once_does_not_reset_the_backoff() {
    let (refusing, addr) = refusing_addr();
    let (client, mut events) = demo_client()
        .backoff(tiny_backoff(Duration::from_secs(3600)))
        .connect(addr.to_string());
    let (listener, connecting) = fail_three_then_listen(refusing, &mut events).await;
    let (stream, _) = within(listener.accept()).await.unwrap();
    let attempt = connected(&mut events, connecting).await;
    assert!(attempt >= 4, "{attempt}");
    drop(listener);
    drop(stream);
    // The connection counts as a failed attempt, and the waits keep growing.
    let failure = within(async {
        loop {
            match events.next().await.expect("ended") {
                Event::Disconnected { .. } => {}
                Event::ConnectFailed {
                    attempt, retry_in, ..
                } => return (attempt, retry_in),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(failure, (attempt, Some(tiny(attempt))));
    assert_eq!(
        within(next_failure(&mut events)).await,
        (attempt + 1, Some(tiny(attempt + 1)))
    );
    within(client.close(Duration::from_secs(10))).await;
}

#[tokio::test]
async fn client_gives_up_after_max_attempts() {
    let (_refusing, addr) = refusing_addr();
    let (client, mut events) = demo_client()
        .backoff(Backoff {
            max_attempts: Some(3),
            ..tiny_backoff(Duration::from_secs(3600))
        })
        .connect(addr.to_string());
    client.send(&NumMsg { num: 1 }).await.unwrap();
    assert_eq!(within(next_failure(&mut events)).await, (1, Some(tiny(1))));
    assert_eq!(within(next_failure(&mut events)).await, (2, Some(tiny(2))));
    assert_eq!(within(next_failure(&mut events)).await, (3, None));
    // The client stopped: its events end, it never connects, and sends are refused.
    assert!(within(events.next()).await.is_none());
    assert!(within(client.wait_connected()).await.is_none());
    assert!(matches!(
        client.send(&NumMsg { num: 2 }).await,
        Err(SendError::Closed { .. })
    ));
    let report = within(client.close(Duration::from_secs(10))).await;
    assert_eq!(report.unsent_frames, 1);
}

#[tokio::test]
async fn queued_message_is_sent_once_the_server_appears() {
    let (refusing, addr) = refusing_addr();
    let (client, mut events) = demo_client()
        .backoff(tiny_backoff(Duration::from_secs(3600)))
        .connect(addr.to_string());
    client.send(&NumMsg { num: 42 }).await.unwrap();
    let (listener, connecting) = fail_three_then_listen(refusing, &mut events).await;
    let (mut stream, _) = within(listener.accept()).await.unwrap();
    assert_eq!(read_num(&mut stream).await, 42);
    connected(&mut events, connecting).await;
    drop(stream);
    drop(listener);
    within(client.close(Duration::from_secs(10))).await;
}
