#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agentgather::fuzzing::log_recovery(data));
