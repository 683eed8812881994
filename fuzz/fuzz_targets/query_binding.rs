//! libFuzzer entry for `switchyard_fuzz_targets::query_binding`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_targets::query_binding(data));
