//! Shared code of the fuzz targets in `fuzz_targets/`. The library's own entry points live in
//! `ltprotocol::fuzzing`; those of the `ltp` parsers in [`ltp_targets`], which
//! `ltp/tests/fuzz_corpus.rs` includes by path to replay the corpus.

pub mod ltp_targets;
