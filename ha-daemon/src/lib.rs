//! The ha-daemon library: everything the `ha-daemon` binary does, as modules.
//!
//! - [`cli`]: the command line, parsed into typed arguments.
//! - [`config`]: the TOML configuration file, parsed into typed, valid settings; errors
//!   name file, line and column.
//! - [`control`]: the control socket (`status`, `events`): protocol, server, client.
//! - [`core`]: the pure logic (wire format, failure detector); no I/O, time is a parameter.
//! - [`counters`]: `ha-daemon counters`, live kernel evidence counters per link.
//! - [`daemon`]: `ha-daemon run`, the daemon's main loop.
//! - [`detection`]: the detection loop, the driver around [`core::detector`].
//! - [`io`]: thin I/O drivers, the only code that makes syscalls or reads clocks
//!   ([`io::ebpf`] loads and attaches the kernel programs, [`io::clock`] reads the clock).
//! - [`operate`]: `ha-daemon resources status|start|stop`, the resource group by hand.
//! - [`resource`]: resource agents (what a primary runs) behind one [`resource::Agent`]
//!   interface.
//!
//! Rule: logic that decides anything is pure (time is a parameter, no I/O); the I/O
//! drivers are thin and only move data between the kernel and that logic.

pub mod cli;
pub mod config;
pub mod control;
pub mod core;
pub mod counters;
pub mod daemon;
pub mod detection;
pub mod io;
pub mod operate;
pub mod resource;
