//! libFuzzer entry for `switchyard_fuzz_targets::timeout_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_targets::timeout_header(data));
