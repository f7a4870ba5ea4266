//! Thin I/O drivers: the only modules that make syscalls or read clocks.

pub mod announce;
pub mod bpf_pins;
pub mod carrier;
pub mod clock;
pub mod ebpf;
pub mod epoch_file;
pub mod key_file;
pub mod link_socket;
pub mod realtime;
pub mod witness;
