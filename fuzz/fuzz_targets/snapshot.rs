#![no_main]
//! See streetgate::fuzzing::snapshot for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::snapshot(data));
