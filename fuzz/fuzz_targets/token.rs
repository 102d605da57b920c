#![no_main]
//! See streetgate::fuzzing::token for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::token(data));
