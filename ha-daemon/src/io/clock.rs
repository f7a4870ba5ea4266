//! The one place that reads the clock.
//!
//! Evidence times from the kernel are `bpf_ktime_get_ns()` values, i.e. CLOCK_MONOTONIC
//! in nanoseconds; [`monotonic_ns`] reads the same clock so the two can be compared.

use nix::time::{ClockId, clock_gettime};

/// CLOCK_MONOTONIC now, in nanoseconds (the time base of `bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000_000
        + u64::try_from(now.tv_nsec()).unwrap_or(0)
}
