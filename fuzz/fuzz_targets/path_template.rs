//! libFuzzer entry for `switchyard_fuzz_targets::path_template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_targets::path_template(data));
