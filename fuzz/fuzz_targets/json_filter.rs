#![no_main]
//! See streetgate::fuzzing::json_filter for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::json_filter(data));
