//! Fuzz target: `decode` never panics, and accepts nothing that is not a heartbeat
//! authenticated with the cluster key (`cargo xtask fuzz`, or `cargo +nightly fuzz run
//! heartbeat_decode` in ha-daemon/).
#![no_main]

use ha_daemon::core::wire::{self, HeartbeatKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = HeartbeatKey::new(b"fuzz-cluster-key-0123456789").expect("valid key");
    if let Ok(heartbeat) = wire::decode(data, &key, 7, 1) {
        // Only an authentic heartbeat decodes: re-encoding gives back the same bytes.
        assert_eq!(wire::encode(&heartbeat, &key).as_slice(), data);
    }
});
