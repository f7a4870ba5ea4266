//! Time as a value: [`Instant`] is a point on the CLOCK_MONOTONIC time base, in
//! nanoseconds, passed into the core by the caller.
//!
//! The kernel stamps evidence with `bpf_ktime_get_ns()` and `io::clock` reads the same
//! clock, so kernel and userspace times compare directly. Nothing in this module reads a
//! clock. Spans are [`std::time::Duration`]; all arithmetic saturates instead of
//! overflowing or panicking.

use std::fmt;
use std::time::Duration;

/// A point in time: nanoseconds on the CLOCK_MONOTONIC time base (the base of
/// `bpf_ktime_get_ns`).
///
/// Invariant kept by the caller, not by the type: the instants handed to one core object
/// come from one clock, so they are comparable. Arithmetic saturates at `0` and
/// `u64::MAX` (about 584 years of uptime), so it never panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the time base (boot, for CLOCK_MONOTONIC).
    pub const ZERO: Self = Self(0);

    /// The instant `ns` nanoseconds after the origin.
    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + span`, saturating at the largest representable instant.
    pub fn saturating_add(self, span: Duration) -> Self {
        Self(self.0.saturating_add(nanos(span)))
    }

    /// `self - span`, saturating at [`Instant::ZERO`].
    pub fn saturating_sub(self, span: Duration) -> Self {
        Self(self.0.saturating_sub(nanos(span)))
    }

    /// The span from `earlier` to `self`; zero when `earlier` is later than `self`.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Instant {
    /// Seconds with nanosecond precision, e.g. `12.000500000s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// `span` in whole nanoseconds, saturating at `u64::MAX` (spans that long never occur
/// in configuration, which is validated to milliseconds and seconds).
pub fn nanos(span: Duration) -> u64 {
    u64::try_from(span.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_sub_saturate() {
        let t = Instant::from_nanos(10);
        assert_eq!(t.saturating_add(Duration::from_nanos(5)).as_nanos(), 15);
        assert_eq!(t.saturating_sub(Duration::from_nanos(50)), Instant::ZERO);
        let late = Instant::from_nanos(u64::MAX - 1);
        assert_eq!(
            late.saturating_add(Duration::from_secs(1)).as_nanos(),
            u64::MAX
        );
        assert_eq!(
            late.saturating_add(Duration::MAX).as_nanos(),
            u64::MAX,
            "a Duration larger than u64 nanoseconds saturates"
        );
    }

    #[test]
    fn duration_since_is_zero_when_earlier_is_later() {
        let a = Instant::from_nanos(1_000);
        let b = Instant::from_nanos(4_000);
        assert_eq!(b.saturating_duration_since(a), Duration::from_nanos(3_000));
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    }

    #[test]
    fn displays_seconds_with_nanoseconds() {
        assert_eq!(
            Instant::from_nanos(12_000_500_000).to_string(),
            "12.000500000s"
        );
        assert_eq!(Instant::ZERO.to_string(), "0.000000000s");
    }

    #[test]
    fn nanos_saturates() {
        assert_eq!(nanos(Duration::from_millis(5)), 5_000_000);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
