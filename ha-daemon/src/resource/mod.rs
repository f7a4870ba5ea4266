//! Resources: what a node starts when it becomes primary and stops when it gives that up.
//!
//! Every kind of resource is an [`Agent`] with `validate`, `start`, `stop` and `monitor`.
//! The contract every agent keeps (the engine relies on it):
//!
//! - `validate` checks the settings and the machine (commands exist, paths are absolute)
//!   without changing anything; the engine validates every resource before any starts.
//! - `start` on a running resource and `stop` on a stopped one succeed and do nothing
//!   (idempotent), so a retry after a timeout or a daemon crash is always safe.
//! - Every call may be cancelled by the engine's timeout (the future is dropped): an
//!   agent that runs a program runs it with [`command::Invocation`], which kills the
//!   child when its future is dropped, so no orphan keeps running after a timeout.
//! - `monitor` reports [`Health`]; it never changes anything.
//!
//! - [`agent`]: the [`Agent`] trait, [`Health`] and [`AgentError`].
//! - [`command`]: running a program with a timeout-safe child, capturing its output.
//! - [`group`]: the resource group executor: runs the pure [`crate::core::plan`] with
//!   timeouts and tracing spans and returns the [`group::Timeline`].
//! - [`supervise`]: the survey at daemon start (adopt a running group) and the
//!   monitoring loop that restarts failed members.

pub mod agent;
pub mod build;
pub mod command;
pub mod drbd;
pub mod exec;
#[cfg(test)]
mod fake;
pub mod group;
pub mod lxc;
pub mod mount;
pub mod supervise;
pub mod vip;

pub use agent::{Agent, AgentError, Health};
