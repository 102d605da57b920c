#![no_main]
//! See streetgate::fuzzing::chunked_body for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::chunked_body(data));
