#![no_main]
//! See streetgate::fuzzing::path for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::path(data));
