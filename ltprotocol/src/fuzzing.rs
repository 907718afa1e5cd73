//! Entry points of the fuzz targets in `fuzz/` (`decode_stream`, `decode_message`), shared
//! with `tests/fuzz_corpus.rs`, which replays every input the fuzzers kept as a plain test.
//!
//! Each entry point takes arbitrary bytes and panics when an invariant breaks; anything else
//! (an invalid layout, a framing error, a body that does not decode) is an expected outcome.
//! Not part of the public API: no stability promise.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::{FrameCodec, FrameError};
use crate::frame::{Frame, MessageType};
use crate::layout::{ByteOrder, FieldSpec, HeaderLayout, Int, LengthCounts};
#[cfg(any(feature = "demo", feature = "openflow"))]
use crate::message::{Body, MAX_PIN_RATIO};

/// How far past its input the decoder's buffer may ever grow: 64 KiB of slack (the bytes
/// crate's reuse of a buffer's original capacity) on top of twice the input.
const BUFFER_SLACK: usize = 64 * 1024;

/// Reads the fuzzer's bytes front to back; past the end every read gives zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.byte();
        }
        u64::from_le_bytes(bytes)
    }

    /// An offset or size: usually small (so that layouts are often valid), once in 256 any
    /// 64-bit value (to try the builder's arithmetic).
    fn size(&mut self, small: u8) -> usize {
        match self.byte() {
            0xff => usize::try_from(self.u64()).unwrap_or(usize::MAX),
            b => usize::from(b % small),
        }
    }

    fn int(&mut self) -> Int {
        let index = usize::from(self.byte() % 8);
        Int::ALL.get(index).copied().unwrap_or(Int::U16)
    }

    fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// A layout and an inbound maximum from the front of the input, through the public builder;
/// `None` when the builder refuses the layout.
fn arbitrary_codec(input: &mut Input<'_>) -> Option<FrameCodec> {
    let flags = input.byte();
    let mut builder = HeaderLayout::builder();
    let length_offset = input.size(16);
    let length_int = input.int();
    builder.length(length_offset, length_int);
    let type_offset = input.size(16);
    let type_int = input.int();
    builder.message_type(type_offset, type_int);
    // Names collide on purpose now and then (with each other and with `length` and `type`).
    const NAMES: [&str; 6] = ["version", "xid", "seq", "flags", "length", "type"];
    for _ in 0..(flags & 3) {
        let name = NAMES
            .get(usize::from(input.byte() % 6))
            .copied()
            .unwrap_or("seq");
        let offset = input.size(24);
        let int = input.int();
        let default = i128::from(input.byte() as i8) * 3;
        builder.field_with_default(name, offset, int, default);
    }
    if flags & 4 != 0 {
        builder.byte_order(ByteOrder::Little);
    }
    let counts = match (flags >> 3) & 3 {
        0 => LengthCounts::Frame,
        1 => LengthCounts::Body,
        _ => LengthCounts::Adjusted(match input.byte() {
            0x80 => input.u64() as i64,
            b => i64::from(b as i8),
        }),
    };
    builder.length_counts(counts);
    if flags & 0x20 != 0 {
        builder.header_len(input.size(32));
    }
    let layout = builder.build().ok()?;
    check_layout(&layout);
    let codec = FrameCodec::new(layout);
    Some(match input.byte() {
        0 => codec,
        b => {
            let max = (usize::from(b) << 8 | usize::from(input.byte())) * usize::from(b % 8 + 1);
            let codec = codec.max_inbound(max);
            let expected = max
                .min(codec.layout().max_frame_len())
                .max(codec.layout().header_len());
            assert_eq!(codec.inbound_limit(), expected, "inbound limit clamp");
            codec
        }
    })
}

/// What a built layout promises: every field inside the header, no two overlapping, a length
/// field that can describe at least one legal frame.
fn check_layout(layout: &HeaderLayout) {
    let header_len = layout.header_len();
    let fields = all_fields(layout);
    for (i, a) in fields.iter().enumerate() {
        assert!(
            a.offset()
                .checked_add(a.int().width())
                .is_some_and(|end| end <= header_len),
            "field `{}` outside the {header_len}-byte header: {layout:?}",
            a.name()
        );
        for b in fields.iter().skip(i + 1) {
            assert!(
                a.end() <= b.offset() || b.end() <= a.offset(),
                "fields `{}` and `{}` overlap: {layout:?}",
                a.name(),
                b.name()
            );
            assert_ne!(a.name(), b.name(), "duplicate field name: {layout:?}");
        }
    }
    let largest = layout.length_field().int().max_value() + i128::from(layout.length_adjustment());
    assert!(largest >= header_len as i128, "no legal length: {layout:?}");
    assert!(
        layout.max_frame_len() >= header_len,
        "max frame below header: {layout:?}"
    );
}

fn all_fields(layout: &HeaderLayout) -> Vec<&FieldSpec> {
    let mut fields = vec![layout.length_field(), layout.type_field()];
    fields.extend(layout.extra_fields());
    fields
}

/// Reads an integer field straight from the bytes, independently of [`Int::read`].
fn read_field(spec: &FieldSpec, header: &[u8], order: ByteOrder) -> i128 {
    let width = spec.int().width();
    let bytes = header
        .get(spec.offset()..spec.offset() + width)
        .unwrap_or_else(|| panic!("field `{}` outside a complete header", spec.name()));
    let mut bits: u128 = 0;
    let mut push = |b: &u8| bits = bits << 8 | u128::from(*b);
    match order {
        ByteOrder::Big => bytes.iter().for_each(&mut push),
        ByteOrder::Little => bytes.iter().rev().for_each(&mut push),
    }
    let bit_width = 8 * width as u32;
    let sign_bit = 1u128 << (bit_width - 1);
    if spec.int().is_signed() && bits & sign_bit != 0 {
        bits as i128 - (1i128 << bit_width)
    } else {
        bits as i128
    }
}

/// How a stream ends, by a simple whole-buffer reading of the layout.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// After the last frame, nothing.
    Clean,
    /// Fewer bytes than a header (`received` of them).
    InHeader { received: usize },
    /// A header declaring `frame_len` bytes, of which `received` arrived.
    InBody { frame_len: usize, received: usize },
    /// A negative length.
    Negative { declared: i128 },
    /// A whole frame shorter than the header.
    TooShort { declared: i128 },
    /// A whole frame over the inbound maximum.
    TooLong { declared: i128 },
}

/// The frames (start, length) in `stream` and how it ends, by the layout's definition.
fn reference_frames(
    layout: &HeaderLayout,
    limit: usize,
    stream: &[u8],
) -> (Vec<(usize, usize)>, End) {
    let header_len = layout.header_len();
    let order = layout.byte_order();
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let rest = stream.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return (frames, End::Clean);
        }
        if rest.len() < header_len {
            return (
                frames,
                End::InHeader {
                    received: rest.len(),
                },
            );
        }
        let declared = read_field(layout.length_field(), rest, order);
        if declared < 0 {
            return (frames, End::Negative { declared });
        }
        let frame_len = declared + i128::from(layout.length_adjustment());
        if frame_len < header_len as i128 {
            return (frames, End::TooShort { declared });
        }
        if frame_len > limit as i128 {
            return (frames, End::TooLong { declared });
        }
        let frame_len = usize::try_from(frame_len).unwrap_or(usize::MAX);
        if rest.len() < frame_len {
            return (
                frames,
                End::InBody {
                    frame_len,
                    received: rest.len(),
                },
            );
        }
        frames.push((pos, frame_len));
        pos += frame_len;
    }
}

/// Chunk sizes for feeding a stream: all at once, a byte at a time, or pseudo-random sizes.
struct Chunks {
    mode: u8,
    state: u32,
}

impl Chunks {
    fn new(seed: u8) -> Self {
        Self {
            mode: seed & 3,
            state: 0x9e37_79b9 ^ u32::from(seed),
        }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let r = self.state as usize;
        match self.mode {
            0 => usize::MAX,
            1 => 1,
            2 => 1 + r % 8,
            _ => 1 + r % 512,
        }
    }
}

/// Fuzz target `decode_stream`: an arbitrary valid layout and inbound maximum from the front
/// of the input, then the rest as a byte stream fed to [`FrameCodec`] in arbitrary chunks and
/// ended with `decode_eof`.
///
/// Checks: no panic; the buffer never grows past twice the input plus 64 KiB; the frames and
/// the final error are those of a whole-buffer reading of the layout, whatever the chunking;
/// every frame re-encodes to the bytes it came from (reserved header bytes aside, which
/// encode as zeros).
pub fn decode_stream(data: &[u8]) {
    let mut input = Input { data };
    let Some(mut codec) = arbitrary_codec(&mut input) else {
        return;
    };
    let mut chunks = Chunks::new(input.byte());
    let stream = input.rest();
    let layout = codec.layout().clone();
    let header_len = layout.header_len();
    let (expected, end) = reference_frames(&layout, codec.inbound_limit(), stream);
    let capacity_bound = 2 * data.len() + BUFFER_SLACK;

    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut decoded = 0;
    let mut failure = None;
    'feed: while fed < stream.len() {
        let take = chunks.next().min(stream.len() - fed);
        buf.extend_from_slice(stream.get(fed..fed + take).unwrap_or_default());
        fed += take;
        loop {
            let result = codec.decode(&mut buf);
            assert!(
                buf.capacity() <= capacity_bound,
                "buffer capacity {} over {capacity_bound} after {fed} of {} bytes",
                buf.capacity(),
                stream.len()
            );
            match result {
                Ok(Some(frame)) => {
                    check_frame(&layout, &expected, decoded, stream, &frame);
                    decoded += 1;
                }
                Ok(None) => break,
                Err(err) => {
                    failure = Some(err);
                    break 'feed;
                }
            }
        }
    }
    if failure.is_none() {
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(frame)) => {
                    check_frame(&layout, &expected, decoded, stream, &frame);
                    decoded += 1;
                }
                Ok(None) => break,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
    }
    assert_eq!(decoded, expected.len(), "frame count ({end:?})");
    let error = failure.as_ref().map(|err| (err, err.to_string()));
    match (&end, error) {
        (End::Clean, None) => assert!(buf.is_empty() && !codec.is_mid_frame()),
        (
            End::InHeader { received },
            Some((
                FrameError::Truncated {
                    missing,
                    received: r,
                    in_header: true,
                },
                _,
            )),
        ) => {
            assert_eq!((*r, *missing), (*received, header_len - received));
        }
        (
            End::InBody {
                frame_len,
                received,
            },
            Some((
                FrameError::Truncated {
                    missing,
                    received: r,
                    in_header: false,
                },
                _,
            )),
        ) => {
            assert_eq!((*r, *missing), (*received, frame_len - received));
        }
        (End::Negative { declared }, Some((FrameError::NegativeLength { declared: d }, _))) => {
            assert_eq!(declared, d);
        }
        (
            End::TooShort { declared },
            Some((
                FrameError::TooShort {
                    declared: d,
                    header_len: h,
                    ..
                },
                _,
            )),
        ) => {
            assert_eq!((declared, *h), (d, header_len));
        }
        (
            End::TooLong { declared },
            Some((
                FrameError::TooLong {
                    declared: d, max, ..
                },
                _,
            )),
        ) => {
            assert_eq!((declared, *max), (d, codec.inbound_limit()));
        }
        (end, error) => panic!("stream should end {end:?}, decoder said {error:?}"),
    }
}

/// Checks frame number `index` against the reference reading, and that it re-encodes to the
/// same bytes.
fn check_frame(
    layout: &HeaderLayout,
    expected: &[(usize, usize)],
    index: usize,
    stream: &[u8],
    frame: &Frame,
) {
    let &(start, frame_len) = expected
        .get(index)
        .unwrap_or_else(|| panic!("frame {index} beyond the {} expected", expected.len()));
    let original = stream.get(start..start + frame_len).unwrap_or_default();
    let header_len = layout.header_len();
    let order = layout.byte_order();
    assert_eq!(
        frame.body.len() + header_len,
        frame_len,
        "frame {index} length"
    );
    assert_eq!(
        &frame.body[..],
        original.get(header_len..).unwrap_or_default()
    );
    let message_type = read_field(layout.type_field(), original, order);
    assert_eq!(frame.message_type, MessageType::new(message_type));
    for (id, spec) in layout.extra_fields().iter().enumerate() {
        let value = read_field(spec, original, order);
        assert_eq!(
            frame.fields.get_named(layout, spec.name()),
            Some(value),
            "field {id}"
        );
    }

    let mut encoder = FrameCodec::new(layout.clone());
    let mut wire = BytesMut::new();
    if let Err(err) = encoder.encode(frame, &mut wire) {
        panic!("decoded frame {index} does not re-encode: {err}");
    }
    assert_eq!(wire.len(), frame_len, "re-encoded frame {index} length");
    let mut reserved = vec![true; header_len];
    for spec in all_fields(layout) {
        for byte in reserved
            .iter_mut()
            .skip(spec.offset())
            .take(spec.int().width())
        {
            *byte = false;
        }
    }
    for (i, (&ours, &theirs)) in wire.iter().zip(original).enumerate() {
        if reserved.get(i).copied().unwrap_or(false) {
            assert_eq!(ours, 0, "reserved header byte {i} of frame {index}");
        } else {
            assert_eq!(ours, theirs, "byte {i} of re-encoded frame {index}");
        }
    }
}

/// Fuzz target `decode_message`: the input after two bytes is a body, decoded as every type
/// number the example protocols know (and the one the first two bytes name) with both byte
/// orders, as `demo::Demo` (feature `demo`) and `openflow::OpenFlow13` (feature `openflow`).
///
/// Checks: no panic; a type a protocol does not know decodes as its unknown arm; a decode
/// error names the type; whatever decodes re-encodes to the same body.
#[cfg_attr(
    not(any(feature = "demo", feature = "openflow")),
    allow(
        unused_variables,
        reason = "without the example protocols there is nothing to decode"
    )
)]
pub fn decode_message(data: &[u8]) {
    let mut input = Input { data };
    let chosen = i128::from(i16::from_le_bytes([input.byte(), input.byte()]));
    let body = Bytes::copy_from_slice(input.rest());
    let types = (-1..=26).chain([chosen, 255, 256, i128::from(u64::MAX)]);
    for order in [ByteOrder::Big, ByteOrder::Little] {
        for message_type in types.clone() {
            let message_type = MessageType::new(message_type);
            #[cfg(feature = "demo")]
            if let Some(msg) = check_protocol::<crate::demo::Demo>(message_type, &body, order) {
                let _ = msg.to_string();
            }
            #[cfg(feature = "openflow")]
            if let Some(crate::openflow::OpenFlow13::Hello(hello)) =
                check_protocol::<crate::openflow::OpenFlow13>(message_type, &body, order)
            {
                let _ = hello.versions();
            }
        }
    }
    #[cfg(feature = "openflow")]
    {
        let frame = Frame::new(MessageType::new(chosen), body);
        let _ = crate::openflow::is_last_part(&frame);
    }
}

/// Decodes `body` as `P`; what decodes must re-encode to `body`. The body is decoded three
/// ways, which must agree: backed by itself (kept fields are slices), borrowed (kept fields
/// are copies), and as part of a chunk far larger than itself (small kept fields are copies).
#[cfg(any(feature = "demo", feature = "openflow"))]
fn check_protocol<P: crate::Protocol + Debug>(
    message_type: MessageType,
    body: &Bytes,
    order: ByteOrder,
) -> Option<P> {
    let footprint = body.len().saturating_mul(2 * MAX_PIN_RATIO);
    let decoded = P::decode(message_type, Body::from(body), order);
    for other in [Body::new(body), Body::in_chunk(body, body, footprint)] {
        let other = P::decode(message_type, other, order);
        assert_eq!(format!("{other:?}"), format!("{decoded:?}"), "{other:?}");
    }
    match decoded {
        Ok(msg) => {
            assert_eq!(msg.message_type(), message_type, "{msg:?}");
            let mut out = BytesMut::new();
            msg.encode_body(&mut out, order);
            assert_eq!(&out[..], &body[..], "{msg:?} re-encoded ({order:?})");
            let _ = (msg.name(), format!("{msg:?}"));
            Some(msg)
        }
        Err(err) => {
            assert!(
                P::is_known(message_type),
                "unknown type {message_type} failed: {err}"
            );
            assert_eq!(err.message_type, message_type);
            let _ = (err.to_string(), err.source.to_string());
            None
        }
    }
}

/// Runs every file of `corpus/target` through `run` (each panic is printed as it happens),
/// then panics naming every input that failed: the fuzz corpora replayed as plain tests, here
/// and in `ltp`.
///
/// # Panics
///
/// When the directory cannot be read or is empty, or any input panics.
pub fn replay_corpus(corpus: &std::path::Path, target: &str, run: fn(&[u8])) {
    let dir = corpus.join(target);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    let failed: Vec<String> = files
        .into_iter()
        .filter(|path| {
            let data =
                std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} inputs fail: {failed:#?}",
        failed.len()
    );
}
