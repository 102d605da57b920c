#![no_main]
//! See streetgate::fuzzing::config for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::config(data));
