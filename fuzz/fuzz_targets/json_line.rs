//! Fuzz target `json_line`: see `ltprotocol_fuzz::ltp_targets::json_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ltprotocol_fuzz::ltp_targets::json_line(data));
