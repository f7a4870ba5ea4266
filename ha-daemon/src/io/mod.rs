//! Thin I/O drivers: the only modules that make syscalls or read clocks.

pub mod clock;
pub mod ebpf;
