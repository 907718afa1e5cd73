//! Codec throughput in frames per second. Run with `cargo bench -p ltprotocol --bench codec`
//! (quicker: `cargo bench -p ltprotocol --bench codec -- --warm-up-time 1 --measurement-time 3`).
//!
//! - `encode/<preset>`: encode `FRAMES` frames with 16-byte bodies into one reused buffer;
//! - `decode/<preset>`: decode a buffer of `FRAMES` such frames (the copy into a fresh read
//!   buffer is set-up, outside the timing);
//! - `typed/*`: the same with typed messages: `encode_message` of `NumMsg`, and decoding frames
//!   then `Demo::decode` into the protocol enum.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use ltprotocol::{Body, Frame, FrameCodec, HeaderLayout, Message, MessageType, Protocol, Unknown};
use tokio_util::codec::{Decoder, Encoder};

/// Frames per iteration.
const FRAMES: usize = 1_000;
/// Body size of the raw-frame benches.
const BODY: usize = 16;

#[derive(Debug, PartialEq, Message)]
#[ltp(message_type = 1)]
struct NumMsg {
    num: u32,
}

#[derive(Debug, PartialEq, Message)]
#[ltp(message_type = 2)]
struct StrMsg {
    text: String,
}

#[derive(Debug, PartialEq, Protocol)]
enum Demo {
    Num(NumMsg),
    Str(StrMsg),
    #[ltp(unknown)]
    Other(Unknown),
}

fn presets() -> [(&'static str, HeaderLayout); 2] {
    [
        ("ltprotocol", HeaderLayout::ltprotocol()),
        ("openflow", HeaderLayout::openflow()),
    ]
}

/// `FRAMES` frames with 16-byte bodies; OpenFlow frames carry an xid.
fn frames(layout: &HeaderLayout) -> Vec<Frame> {
    let xid = layout.field("xid");
    (0..FRAMES)
        .map(|i| {
            let body = Bytes::from(vec![i as u8; BODY]);
            let frame = Frame::new(MessageType::new((i % 7) as i128), body);
            match xid {
                Some(xid) => frame.with_field(xid, i as i128),
                None => frame,
            }
        })
        .collect()
}

fn encode_all(layout: &HeaderLayout, frames: &[Frame]) -> Bytes {
    let mut codec = FrameCodec::new(layout.clone());
    let mut wire = BytesMut::new();
    for frame in frames {
        codec.encode(frame, &mut wire).expect("encodes");
    }
    wire.freeze()
}

/// Decodes every frame in `buf`, returning how many there were.
fn decode_all(codec: &mut FrameCodec, buf: &mut BytesMut) -> usize {
    let mut count = 0;
    while let Some(frame) = codec.decode(buf).expect("decodes") {
        black_box(&frame);
        count += 1;
    }
    count
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for (name, layout) in presets() {
        let frames = frames(&layout);
        let mut codec = FrameCodec::new(layout.clone());
        let mut buf = BytesMut::with_capacity(FRAMES * (layout.header_len() + BODY));
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                for frame in &frames {
                    codec.encode(frame, &mut buf).expect("encodes");
                }
                black_box(&buf);
            });
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for (name, layout) in presets() {
        let wire = encode_all(&layout, &frames(&layout));
        let mut codec = FrameCodec::new(layout);
        group.bench_function(name, |b| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| {
                    let count = decode_all(&mut codec, &mut buf);
                    assert_eq!(count, FRAMES);
                    buf
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn typed(c: &mut Criterion) {
    let layout = HeaderLayout::ltprotocol();
    let order = layout.byte_order();
    let mut group = c.benchmark_group("typed");
    group.throughput(Throughput::Elements(FRAMES as u64));

    let codec = FrameCodec::new(layout.clone());
    let mut buf = BytesMut::with_capacity(FRAMES * 7);
    group.bench_function("encode_num_msg", |b| {
        b.iter(|| {
            buf.clear();
            for i in 0..FRAMES as u32 {
                codec
                    .encode_message(&NumMsg { num: i }, &mut buf)
                    .expect("encodes");
            }
            black_box(&buf);
        });
    });

    let mut wire = BytesMut::new();
    for i in 0..FRAMES as u32 {
        codec
            .encode_message(&NumMsg { num: i }, &mut wire)
            .expect("encodes");
    }
    let wire = wire.freeze();
    let mut decoder = FrameCodec::new(layout);
    group.bench_function("decode_num_msg_into_demo", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| {
                let mut sum = 0u64;
                while let Some(frame) = decoder.decode(&mut buf).expect("decodes") {
                    match Demo::decode(frame.message_type, Body::from(&frame.body), order)
                        .expect("a NumMsg")
                    {
                        Demo::Num(NumMsg { num }) => sum += u64::from(num),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                assert_eq!(sum, (FRAMES as u64 - 1) * FRAMES as u64 / 2);
                buf
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

// What `criterion_group!` and `criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    encode(&mut criterion);
    decode(&mut criterion);
    typed(&mut criterion);
    criterion.final_summary();
}
