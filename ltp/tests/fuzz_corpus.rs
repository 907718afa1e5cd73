//! Replays every input the fuzzers kept for the `ltp` parsers (`fuzz/corpus/layout_toml`,
//! `schema_toml` and `json_line`) through the fuzz targets' own entry points, which live in
//! `fuzz/src/ltp_targets.rs` and are included here by path: CI checks each input ever found
//! without cargo-fuzz.

use std::path::{Path, PathBuf};

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/ltp_targets.rs"]
mod ltp_targets;

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
