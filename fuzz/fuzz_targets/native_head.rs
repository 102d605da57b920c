#![no_main]
//! See streetgate::fuzzing::native_head for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::native_head(data));
