#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| agentgather::fuzzing::message_input(data));
