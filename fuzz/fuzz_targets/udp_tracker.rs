#![no_main]
//! Fuzz target: `kpbt_proto::fuzzing::udp_tracker` (see that function for the invariants).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kpbt_proto::fuzzing::udp_tracker(data));
