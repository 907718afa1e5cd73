//! Replays every input the fuzzers kept for the `ltp` parsers (`fuzz/corpus/layout_toml`,
//! `schema_toml` and `json_line`) through the fuzz targets' own entry points, which live in
//! `fuzz/src/ltp_targets.rs` and are included here by path: CI checks each input ever found
//! without cargo-fuzz.

use std::path::Path;

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/ltp_targets.rs"]
mod ltp_targets;

/// Replays `target`'s corpus from `fuzz/corpus/`.
fn replay(target: &str, run: fn(&[u8])) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    ltprotocol::fuzzing::replay_corpus(&corpus, target, run);
}

#[test]
fn layout_toml_corpus() {
    replay("layout_toml", ltp_targets::layout_toml);
}

#[test]
fn schema_toml_corpus() {
    replay("schema_toml", ltp_targets::schema_toml);
}

#[test]
fn json_line_corpus() {
    replay("json_line", ltp_targets::json_line);
}
