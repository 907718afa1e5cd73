//! Random layouts, frames and splits: what is encoded decodes to the same frames however the
//! stream is cut, and random bytes never make the decoder panic.

use bytes::{Bytes, BytesMut};
use ltprotocol::{
    ByteOrder, EncodeError, Frame, FrameCodec, HeaderLayout, Int, LengthCounts, MessageType,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// Any integer kind.
fn int() -> impl Strategy<Value = Int> {
    prop::sample::select(Int::ALL.to_vec())
}

/// A value that fits `int`, with its extremes and zero well represented.
fn value_in(int: Int) -> impl Strategy<Value = i128> {
    prop_oneof![
        1 => Just(int.min_value()),
        1 => Just(int.max_value()),
        1 => Just(0),
        5 => int.min_value()..=int.max_value(),
    ]
}

fn byte_order() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(ByteOrder::Big), Just(ByteOrder::Little)]
}

fn length_counts() -> impl Strategy<Value = LengthCounts> {
    prop_oneof![
        Just(LengthCounts::Frame),
        Just(LengthCounts::Body),
        (-4i64..=40).prop_map(LengthCounts::Adjusted),
    ]
}

/// A random valid layout: a length, a type and 0 to 3 extra fields of random kinds, laid out in
/// a random order with random gaps (so never overlapping), maybe reserved bytes at the end, a
/// random byte order and length meaning; whatever `build()` refuses is filtered out.
fn layout() -> impl Strategy<Value = HeaderLayout> {
    (int(), int(), prop::collection::vec(int(), 0..=3))
        .prop_flat_map(|(length, message_type, extras)| {
            let count = extras.len() + 2;
            let defaults: Vec<_> = extras.iter().map(|&int| value_in(int)).collect();
            let order: Vec<usize> = (0..count).collect();
            (
                Just((length, message_type, extras)),
                defaults,
                Just(order).prop_shuffle(),
                prop::collection::vec(0usize..3, count),
                0usize..3,
                byte_order(),
                length_counts(),
            )
        })
        .prop_filter_map(
            "the builder refused the layout",
            |((length, message_type, extras), defaults, order, gaps, reserved, bo, counts)| {
                let kinds: Vec<Int> = [length, message_type]
                    .into_iter()
                    .chain(extras.iter().copied())
                    .collect();
                let mut offsets = vec![0; kinds.len()];
                let mut end = 0;
                for (&field, gap) in order.iter().zip(gaps) {
                    end += gap;
                    offsets[field] = end;
                    end += kinds[field].width();
                }
                let mut builder = HeaderLayout::builder();
                builder
                    .length(offsets[0], length)
                    .message_type(offsets[1], message_type)
                    .byte_order(bo)
                    .length_counts(counts);
                for (i, (&int, default)) in extras.iter().zip(defaults).enumerate() {
                    builder.field_with_default(&format!("extra{i}"), offsets[i + 2], int, default);
                }
                if reserved > 0 {
                    builder.header_len(end + reserved);
                }
                builder.build().ok()
            },
        )
}

/// The body sizes a frame of `layout` can have, capped at 299: at least what makes the raw
/// length non-negative, at most what the length field can describe.
fn body_len_range(layout: &HeaderLayout) -> Option<std::ops::RangeInclusive<usize>> {
    let header = layout.header_len();
    let min_frame = usize::try_from(layout.length_adjustment().max(0)).unwrap_or(usize::MAX);
    let low = min_frame.saturating_sub(header);
    let high = layout.max_frame_len().saturating_sub(header).min(299);
    (low <= high).then_some(low..=high)
}

/// A frame that `layout` can carry: a type within the type field, every extra field set to a
/// value within it, a body that fits.
fn frame(layout: &HeaderLayout) -> impl Strategy<Value = Frame> + use<> {
    frame_with_body(layout, body_len_range(layout).unwrap_or(0..=0))
}

/// A frame like [`frame`]'s, with a body of any length in `body`.
fn frame_with_body(
    layout: &HeaderLayout,
    body: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Frame> + use<> {
    let fields: Vec<_> = layout
        .extra_fields()
        .iter()
        .map(|spec| value_in(spec.int()))
        .collect();
    let ids: Vec<_> = layout
        .extra_fields()
        .iter()
        .map(|spec| layout.field(spec.name()).unwrap())
        .collect();
    (
        value_in(layout.type_field().int()),
        fields,
        body_bytes(body),
    )
        .prop_map(move |(message_type, values, body)| {
            let mut frame = Frame::new(MessageType::new(message_type), Bytes::from(body));
            for (&id, value) in ids.iter().zip(values) {
                frame = frame.with_field(id, value);
            }
            frame
        })
}

/// A body whose length lies in `len`, short ones (the edge cases of adjusted lengths) favoured.
fn body_bytes(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    let (low, high) = (*len.start(), *len.end());
    let short = low..=high.min(low + 16);
    prop_oneof![3 => short, 2 => len].prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))
}

/// A layout with 1 to 8 frames it can carry.
fn layout_and_frames() -> impl Strategy<Value = (HeaderLayout, Vec<Frame>)> {
    layout()
        .prop_filter("no body size fits", |layout| {
            body_len_range(layout).is_some()
        })
        .prop_flat_map(|layout| {
            let frames = prop::collection::vec(frame(&layout), 1..=8);
            (Just(layout), frames)
        })
}

/// Chunk sizes, used in turn until the input runs out; 0 means a decode call with nothing new.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![1 => Just(0usize), 6 => 1usize..=16, 2 => 17usize..=400],
        1..=12,
    )
}

/// Everything a decoder makes of `input` fed in `chunks`: the frames, then the first error if
/// any (as its message, so two outcomes compare), after which it stops.
fn decode_chunked(
    codec: &mut FrameCodec,
    input: &[u8],
    chunks: &[usize],
) -> (Vec<Frame>, Option<String>) {
    let mut frames = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = input;
    // Zero-sized chunks test a decode call with nothing new; all zeros would never finish.
    let chunks = if chunks.iter().all(|&n| n == 0) {
        &[1][..]
    } else {
        chunks
    };
    let mut sizes = chunks.iter().cycle();
    let limit = codec.inbound_limit();
    let header = codec.layout().header_len();
    let mut check = |frame: Frame| {
        assert!(
            header + frame.body.len() <= limit,
            "a frame of {} bytes passed the limit {limit}",
            header + frame.body.len()
        );
        frames.push(frame);
    };
    loop {
        let take = (*sizes.next().unwrap_or(&1)).min(rest.len());
        let (now, later) = rest.split_at(take);
        buf.extend_from_slice(now);
        rest = later;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => check(frame),
                Ok(None) => break,
                Err(err) => return (frames, Some(err.to_string())),
            }
        }
        if rest.is_empty() {
            break;
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => check(frame),
            Ok(None) => {
                assert!(buf.is_empty(), "decode_eof ended with bytes left");
                return (frames, None);
            }
            Err(err) => return (frames, Some(err.to_string())),
        }
    }
}

proptest! {
    #[test]
    fn encoded_frames_decode_to_the_same_frames_under_any_chunking(
        (layout, frames) in layout_and_frames(),
        chunks in chunking(),
    ) {
        let mut codec = FrameCodec::new(layout.clone());
        let mut wire = BytesMut::new();
        for frame in &frames {
            codec.encode(frame, &mut wire).unwrap();
        }
        let expected_len: usize = frames.iter().map(|f| layout.header_len() + f.body.len()).sum();
        prop_assert_eq!(wire.len(), expected_len);
        let (got, err) = decode_chunked(&mut FrameCodec::new(layout), &wire, &chunks);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn each_encoded_frame_declares_its_own_length(
        (layout, frames) in layout_and_frames(),
    ) {
        let mut codec = FrameCodec::new(layout.clone());
        let spec = layout.length_field();
        for frame in frames {
            let mut wire = BytesMut::new();
            codec.encode(&frame, &mut wire).unwrap();
            let raw = spec.int().read(&wire[spec.offset()..], layout.byte_order()).unwrap();
            prop_assert!(raw >= 0);
            prop_assert_eq!(layout.frame_len_of(raw), wire.len() as i128);
            let ty = layout.type_field();
            let message_type = ty.int().read(&wire[ty.offset()..], layout.byte_order()).unwrap();
            prop_assert_eq!(message_type, frame.message_type.value());
        }
    }

    #[test]
    fn whatever_the_encoder_accepts_the_decoder_gives_back(
        (layout, frames) in layout().prop_flat_map(|layout| {
            let frames = prop::collection::vec(frame_with_body(&layout, 0..=299), 1..=8);
            (Just(layout), frames)
        }),
    ) {
        let mut encoder = FrameCodec::new(layout.clone());
        let mut decoder = FrameCodec::new(layout);
        for frame in frames {
            let mut wire = BytesMut::new();
            match encoder.encode(&frame, &mut wire) {
                Ok(()) => {
                    let got = decoder.decode(&mut wire);
                    prop_assert!(
                        matches!(&got, Ok(Some(f)) if *f == frame),
                        "encoded {:?} as {:02x?}, decoded {:?}", frame, &wire[..], got
                    );
                    prop_assert!(wire.is_empty());
                }
                Err(err) => {
                    prop_assert!(
                        matches!(err, EncodeError::TooLarge { .. } | EncodeError::LengthOutOfRange { .. }),
                        "{:?}", err
                    );
                    prop_assert!(wire.is_empty());
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(
        layout in layout(),
        input in prop::collection::vec(any::<u8>(), 0..512),
        chunks in chunking(),
        max_inbound in prop::option::of(0usize..2048),
    ) {
        let make = || {
            let codec = FrameCodec::new(layout.clone());
            match max_inbound {
                Some(max) => codec.max_inbound(max),
                None => codec,
            }
        };
        let chunked = decode_chunked(&mut make(), &input, &chunks);
        // And the same outcome as the whole input in one piece.
        let whole = decode_chunked(&mut make(), &input, &[input.len().max(1)]);
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn random_bytes_after_valid_frames_never_lose_the_valid_frames(
        (layout, frames) in layout_and_frames(),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
        chunks in chunking(),
    ) {
        let mut codec = FrameCodec::new(layout.clone());
        let mut wire = BytesMut::new();
        for frame in &frames {
            codec.encode(frame, &mut wire).unwrap();
        }
        wire.extend_from_slice(&garbage);
        let (got, _err) = decode_chunked(&mut FrameCodec::new(layout), &wire, &chunks);
        prop_assert!(got.len() >= frames.len());
        prop_assert_eq!(&got[..frames.len()], &frames[..]);
    }
}

#[test]
fn the_layout_strategy_reaches_every_kind_and_length_meaning() {
    // A sanity check on the generator itself: over a few hundred layouts, every length kind
    // and type kind appears, both byte orders, every length meaning, and extra fields.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = layout();
    let mut length_kinds = std::collections::HashSet::new();
    let mut type_kinds = std::collections::HashSet::new();
    let mut orders = std::collections::HashSet::new();
    let mut adjustments = std::collections::HashSet::new();
    let mut max_extras = 0;
    for _ in 0..500 {
        let layout = strategy.new_tree(&mut runner).unwrap().current();
        length_kinds.insert(layout.length_field().int());
        type_kinds.insert(layout.type_field().int());
        orders.insert(layout.byte_order());
        adjustments.insert(layout.length_adjustment().signum());
        max_extras = max_extras.max(layout.extra_fields().len());
    }
    assert_eq!(length_kinds.len(), 8);
    assert_eq!(type_kinds.len(), 8);
    assert_eq!(orders.len(), 2);
    assert_eq!(
        adjustments.len(),
        3,
        "negative, zero and positive adjustments"
    );
    assert_eq!(max_extras, 3);
}
