//! The eBPF programs are the binary target (`src/main.rs`), built for `bpfel-unknown-none`
//! by `ha-daemon/build.rs`. This library target exists so that ha-daemon can name this
//! package as a build dependency, which makes cargo rebuild the object when it changes.
#![no_std]

use aya_ebpf as _;
use ha_common as _;
