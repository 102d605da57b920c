#![no_main]
//! See streetgate::fuzzing::csv_filter for the property.
libfuzzer_sys::fuzz_target!(|data: &[u8]| streetgate::fuzzing::csv_filter(data));
