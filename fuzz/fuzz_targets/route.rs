#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ptth_fuzz::route(data));
