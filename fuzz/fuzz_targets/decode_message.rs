//! Fuzz target `decode_message`: see `ltprotocol::fuzzing::decode_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ltprotocol::fuzzing::decode_message(data));
