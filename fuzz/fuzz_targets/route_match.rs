//! libFuzzer entry for `switchyard_fuzz_targets::route_match`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_targets::route_match(data));
