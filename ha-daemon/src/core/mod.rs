//! The pure core: every decision the daemon makes, as plain data and functions.
//!
//! Rule: nothing under `core` does I/O or reads a clock. No sockets, files, processes,
//! tokio, `Instant::now` or `SystemTime::now`. Time enters as a parameter ([`time::Instant`],
//! nanoseconds on the CLOCK_MONOTONIC base that the kernel also stamps evidence with);
//! timers leave as data (`poll_timeout`). The I/O drivers in [`crate::io`] feed the core
//! and carry out what it returns, so everything here is deterministic and is tested with
//! simulated time.
//!
//! - [`time`]: [`time::Instant`], the time value.
//! - [`wire`]: heartbeat encode/decode with HMAC-SHA256, [`wire::ReplayGuard`],
//!   [`wire::RejectCounts`].
//! - [`estimator`]: loss and jitter of a periodic evidence stream, and the adaptive dead
//!   time they imply (the math is in its doc).
//! - [`dampening`]: flap penalty with a half-life, and the `rise` it implies.
//! - [`evidence`]: links ([`evidence::LinkId`], [`evidence::LinkSet`]) and the evidence
//!   that arrives on them.
//! - [`icmp`]: the witness probe's echo request and reply matching.
//! - [`link`]: one link's state, hysteresis and dead time.
//! - [`plan`]: the resource group's steps: start up, stop down, roll back a failed start,
//!   restart a failed member.
//! - [`supervision`]: monitoring results judged: adopt a running group at start, restart
//!   a failed member, give up after its restarts.
//! - [`cluster`]: the role machine of one node: claims, epochs, witness, isolation,
//!   switchover and operator commands, over the detector's view of the peer.
//! - [`detector`]: the failure detector, links combined into the peer's state, with the
//!   `handle_*` / `poll_*` call order; [`detector_config`] holds its settings.

pub mod announce;
pub mod cluster;
pub mod dampening;
pub mod detector;
pub mod detector_config;
pub mod drbd_events;
pub mod estimator;
pub mod evidence;
pub mod icmp;
pub mod link;
pub mod plan;
pub mod supervision;
pub mod time;
pub mod wire;

#[cfg(test)]
mod cluster_sim;
#[cfg(test)]
mod detector_props;
#[cfg(test)]
mod test_sim;
