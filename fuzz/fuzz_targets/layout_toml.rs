//! Fuzz target `layout_toml`: see `ltprotocol_fuzz::ltp_targets::layout_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ltprotocol_fuzz::ltp_targets::layout_toml(data));
