//! The one place that reads the clock.
//!
//! Evidence times from the kernel are `bpf_ktime_get_ns()` values, i.e. CLOCK_MONOTONIC
//! in nanoseconds; [`monotonic_ns`] reads the same clock so the two can be compared, and
//! [`now`] hands it to the pure core as a [`crate::core::time::Instant`]. That the two
//! agree is checked for real by the privileged test that compares kernel heartbeat
//! stamps with readings taken around the sending (`tests/tests/xdp_counts.rs`).

use nix::time::{ClockId, clock_gettime};

use crate::core::time::Instant;

/// CLOCK_MONOTONIC now, in nanoseconds (the time base of `bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    read(ClockId::CLOCK_MONOTONIC)
}

/// CLOCK_MONOTONIC now, as the core's time value.
pub fn now() -> Instant {
    Instant::from_nanos(monotonic_ns())
}

/// CLOCK_REALTIME now, in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    read(ClockId::CLOCK_REALTIME)
}

/// Converts a CLOCK_REALTIME stamp (as sockets give) to CLOCK_MONOTONIC, using the
/// current offset between the two clocks (exact unless the wall clock was stepped since
/// the stamp was taken).
pub fn realtime_to_monotonic_ns(stamp_ns: u64) -> u64 {
    let (real, mono) = (realtime_ns(), monotonic_ns());
    mono.saturating_sub(real.saturating_sub(stamp_ns))
}

fn read(clock: ClockId) -> u64 {
    let now = clock_gettime(clock).expect("the clocks read here always exist on Linux");
    u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000_000
        + u64::try_from(now.tv_nsec()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_stamps_convert_to_the_recent_past() {
        let real_now = read(ClockId::CLOCK_REALTIME);
        let mono = realtime_to_monotonic_ns(real_now - 5_000_000);
        let now = monotonic_ns();
        assert!(
            now >= mono + 5_000_000 && now < mono + 50_000_000,
            "{now} vs {mono}"
        );
    }
}
