//! libFuzzer entry for `switchyard_fuzz_targets::grpc_web_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_targets::grpc_web_frame(data));
