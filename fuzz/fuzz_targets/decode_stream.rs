//! Fuzz target `decode_stream`: see `ltprotocol::fuzzing::decode_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ltprotocol::fuzzing::decode_stream(data));
