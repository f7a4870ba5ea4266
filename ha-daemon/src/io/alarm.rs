//! A precise wake-up for the detection loop: a CLOCK_MONOTONIC timerfd armed at absolute
//! times and awaited through tokio's reactor.
//!
//! tokio's timers round deadlines up to whole milliseconds, so heartbeats sent on them
//! leave up to a millisecond late, and that lateness is jitter to the peer's estimator,
//! which lengthens its dead time. A timerfd fires at the nanosecond it was armed for
//! (a SCHED_FIFO thread has no timer slack), and arming it at an absolute time keeps
//! the schedule free of drift. One `timerfd_settime` per wake-up re-arms it; nothing
//! else is needed, because re-arming also resets the fd's expiration count.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd, RawFd},
};

use nix::sys::{
    time::TimeSpec,
    timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags},
};
use tokio::io::unix::AsyncFd;

use crate::core::time::Instant;

/// The timerfd, with the raw fd tokio registers.
#[derive(Debug)]
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One alarm: armed at an instant, then awaited. Invariant: `armed` is the instant the
/// timer is set for, `None` once it fired (or before the first [`Alarm::set`]).
#[derive(Debug)]
pub struct Alarm {
    timer: AsyncFd<Timer>,
    armed: Option<Instant>,
}

impl Alarm {
    /// A disarmed alarm. Must run inside a tokio runtime (it registers with the reactor).
    #[expect(
        unsafe_code,
        reason = "tokio's AsyncFd::register has an fd-validity contract"
    )]
    pub fn new() -> io::Result<Self> {
        let timer = Timer(TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?);
        // SAFETY: the TimerFd owns its fd and returns that same open fd from as_raw_fd
        // until it is dropped, and the AsyncFd owns the TimerFd, so the fd outlives the
        // registration.
        let timer = unsafe { AsyncFd::register(timer) }?;
        Ok(Self { timer, armed: None })
    }

    /// Arms the alarm for CLOCK_MONOTONIC `at` (at once if that has passed). Arming it
    /// again for the instant it is already armed for costs nothing.
    pub fn set(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // A zero time would disarm the timer: the earliest instant is 1 ns.
        let ns = at.as_nanos().max(1);
        let spec = TimeSpec::new(
            i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
            i64::try_from(ns % 1_000_000_000).unwrap_or(0),
        );
        self.timer
            .get_ref()
            .0
            .set(
                Expiration::OneShot(spec),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            )
            .map_err(io::Error::from)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Waits until the alarm fires. May return early (e.g. for an expiry that a later
    /// [`Alarm::set`] replaced): callers check the time themselves.
    pub async fn wait(&mut self) -> io::Result<()> {
        let mut ready = self.timer.readable().await?;
        // The expiration count is not read: the next `set` resets it. Only tokio's
        // cached readiness is cleared, so the next expiry wakes us again.
        ready.clear_ready();
        self.armed = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::clock;

    #[tokio::test]
    async fn fires_at_the_armed_instant_and_again_when_rearmed() {
        let mut alarm = Alarm::new().unwrap();
        for _ in 0..3 {
            let at = clock::now().saturating_add(std::time::Duration::from_millis(3));
            alarm.set(at).unwrap();
            alarm.wait().await.unwrap();
            assert!(clock::now() >= at, "fired before the armed instant");
        }
    }

    #[tokio::test]
    async fn an_instant_in_the_past_fires_at_once() {
        let mut alarm = Alarm::new().unwrap();
        alarm.set(Instant::from_nanos(0)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), alarm.wait())
            .await
            .expect("fired at once")
            .unwrap();
    }
}
