//! Replays every input the fuzzers kept (`fuzz/corpus/decode_stream` and
//! `fuzz/corpus/decode_message`) through the fuzz targets' own entry points, so that CI
//! checks each input ever found without cargo-fuzz: a crash found by fuzzing, once added to
//! the corpus, stays a regression test here.

use std::path::Path;

/// Replays `target`'s corpus from `fuzz/corpus/`.
fn replay(target: &str, run: fn(&[u8])) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    ltprotocol::fuzzing::replay_corpus(&corpus, target, run);
}

#[test]
fn decode_stream_corpus() {
    replay("decode_stream", ltprotocol::fuzzing::decode_stream);
}

#[test]
fn decode_message_corpus() {
    replay("decode_message", ltprotocol::fuzzing::decode_message);
}
