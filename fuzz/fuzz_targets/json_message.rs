//! libFuzzer entry for `switchyard_fuzz_targets::json_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_targets::json_message(data));
