#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| likwid_access::fuzzing::greeting(data));
