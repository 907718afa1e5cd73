//! Replays every input the fuzzers kept (`fuzz/corpus/decode_stream` and
//! `fuzz/corpus/decode_message`) through the fuzz targets' own entry points, so that CI
//! checks each input ever found without cargo-fuzz: a crash found by fuzzing, once added to
//! the corpus, stays a regression test here.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data =
                std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            (path, data)
        })
        .collect()
}

/// Runs every input of `target`'s corpus (each panic is printed as it happens), then fails
/// naming every input that panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let failed: Vec<String> = corpus(target)
        .into_iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| run(data)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} inputs fail: {failed:#?}",
        failed.len()
    );
}

#[test]
fn decode_stream_corpus() {
    replay("decode_stream", ltprotocol::fuzzing::decode_stream);
}

#[test]
fn decode_message_corpus() {
    replay("decode_message", ltprotocol::fuzzing::decode_message);
}
