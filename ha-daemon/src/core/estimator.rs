//! Loss and jitter of one periodic evidence stream on one link, and the dead time they
//! imply.
//!
//! # The math
//!
//! The peer sends a packet every `T` (the heartbeat interval). Model: each packet is lost
//! independently with probability `p`, and arrivals wobble around the schedule by at
//! most `J`. Right after a packet arrives, the link stays silent for longer than
//! `m·T + J` only if the next `m` packets are all lost, which has probability `p^m`.
//! So the dead time
//!
//! ```text
//! D = m·T + J,   m = ⌈ ln(target) / ln(p) ⌉   (m = 1 when p = 0)
//! ```
//!
//! keeps the chance that any one inter-arrival gap ends in a false "link down" at or below
//! `target`. `D` is then clamped to `[dead_after_min, dead_after_max]`: on a clean link
//! detection stays at the minimum, on a lossy link the dead time grows instead of
//! flapping, and it never grows past what the operator allowed.
//!
//! `p` and `J` are not known; they are estimated from the gaps between arrivals. When
//! packets carry sequence numbers (verified heartbeats), a gap of `k` sequence numbers is
//! `k − 1` lost packets and one received, and `|g − k·T|` is one jitter sample: a packet
//! that arrives late is jitter, not loss. Without them (echoes, kernel timestamps), a
//! gap `g` is taken as `k = round(g / T)` intervals; a packet more than `T/2` late then
//! counts as lost, so those streams overestimate loss on a jittery host, which only
//! makes `D` larger.
//!
//! - `p` is the larger of a *fast* EWMA (α = 1/32, about the last 64 packets: a sudden
//!   onset of loss grows `D` within a fraction of a second) and the Wilson upper bound
//!   (z = 2) of a *slow* average (the running mean of the first 1024 packets, then an
//!   EWMA with α = 1/1024). The upper bound keeps a short lucky run from shrinking `D`:
//!   on a fresh link it is wide and `D` starts near `dead_after_max`; after about 1000
//!   clean packets (5 s at 5 ms) it is below 1 % and `D` reaches `dead_after_min` for
//!   the default target of 10⁻⁶.
//! - `J` is four times the EWMA (α = 1/16) of the absolute deviation, as TCP's
//!   retransmission timeout uses four mean deviations (RFC 6298), or the largest
//!   deviation seen recently (decaying by half in about 700 packets), whichever is
//!   more: lateness on a loaded host comes in rare long stalls, which an average hides
//!   and a dead time below them turns into false alarms. A deviation longer than the
//!   dead time itself was an outage (reported, dampened), not jitter, and does not
//!   count. A deviation is at most
//!   `T/2` by construction; larger wobble shows up as loss, which only makes `D` larger.
//!
//! This is phi-accrual in spirit (a tail probability of the silence, compared against a
//! threshold), but with a loss model instead of a normal distribution, whose tails are
//! far too light for the geometric gaps that loss produces.
//!
//! Arrivals closer than `T/2` to the previous one are the same packet seen twice (kernel
//! and socket) or a burst, and are ignored; so are arrivals older than the newest one.
//! A gap longer than the current dead time counts at most `⌈D/T⌉` lost packets: it was an
//! outage (reported as "link down" and dampened), not a sample of random loss.

use std::time::Duration;

use super::time::{Instant, nanos};

const FAST_ALPHA: f64 = 1.0 / 32.0;
const SLOW_WINDOW: u32 = 1024;
const JITTER_ALPHA: f64 = 1.0 / 16.0;
/// Per-sample decay of the peak deviation: it halves in about 700 samples (3.5 s at
/// 5 ms).
const PEAK_DECAY: f64 = 1.0 - 1.0 / 1024.0;
const WILSON_Z: f64 = 2.0;
/// A loss estimate this close to 1 means "no useful bound": use the longest dead time.
const HOPELESS_LOSS: f64 = 0.999_999;

/// Estimates loss rate and jitter of one periodic stream (the peer's heartbeats, or our
/// echoes coming back) from arrival times.
///
/// Invariants: `0 ≤ fast, slow ≤ 1`; `samples ≤ SLOW_WINDOW`; `last` only moves forward.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamEstimator {
    last: Option<Instant>,
    /// Sequence number of the newest sequenced arrival; once set, loss is counted from
    /// sequence gaps and arrival times only measure jitter.
    last_seq: Option<u64>,
    fast: f64,
    slow: f64,
    samples: u32,
    mean_deviation_ns: f64,
    /// The largest recent deviation, decaying by [`PEAK_DECAY`] per sample.
    peak_deviation_ns: f64,
}

impl StreamEstimator {
    /// An estimator that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a packet of the stream arriving at `at`. `interval` is the stream's period;
    /// `max_lost` caps how many packets one gap can count as lost (see the module doc).
    pub fn observe(&mut self, at: Instant, interval: Duration, max_lost: u64) {
        let interval_ns = nanos(interval).max(1);
        let Some(last) = self.last else {
            self.last = Some(at);
            return;
        };
        if at <= last {
            return;
        }
        let gap_ns = at.as_nanos() - last.as_nanos();
        if gap_ns < interval_ns / 2 {
            return;
        }
        self.last = Some(at);
        let periods = (gap_ns + interval_ns / 2) / interval_ns;
        let deviation_ns = gap_ns.abs_diff(periods.saturating_mul(interval_ns));
        self.deviate(deviation_ns, interval_ns.saturating_mul(max_lost));
        for _ in 0..periods.saturating_sub(1).min(max_lost) {
            self.sample(1.0);
        }
        self.sample(0.0);
    }

    /// Records packet number `seq` of the stream arriving at `at`: the packets between
    /// the previous sequence number and this one were lost (at most `max_lost` counted),
    /// and the arrival's distance from the schedule (`seq` gap times `interval`) is a
    /// jitter sample. A packet that comes late but comes is jitter, never loss: unlike
    /// [`StreamEstimator::observe`], a descheduled receiver or a burst cannot fake loss.
    /// Sequence numbers not above the newest are ignored (duplicates, reordering).
    pub fn observe_sequenced(&mut self, at: Instant, seq: u64, interval: Duration, max_lost: u64) {
        let (Some(last), Some(last_seq)) = (self.last, self.last_seq) else {
            self.last = Some(self.last.map_or(at, |last| last.max(at)));
            self.last_seq = Some(seq);
            return;
        };
        if seq <= last_seq {
            return;
        }
        let periods = seq - last_seq;
        let gap_ns = at.as_nanos().saturating_sub(last.as_nanos());
        let deviation_ns = gap_ns.abs_diff(periods.saturating_mul(nanos(interval)));
        self.deviate(deviation_ns, nanos(interval).saturating_mul(max_lost));
        for _ in 0..(periods - 1).min(max_lost) {
            self.sample(1.0);
        }
        self.sample(0.0);
        self.last = Some(last.max(at));
        self.last_seq = Some(seq);
    }

    /// Whether loss is counted from sequence numbers (see
    /// [`StreamEstimator::observe_sequenced`]).
    pub fn is_sequenced(&self) -> bool {
        self.last_seq.is_some()
    }

    /// The newest arrival recorded.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.last
    }

    /// Records one jitter sample. A deviation longer than `outage_ns` (the dead time)
    /// was an outage, reported as such, not jitter, and is left out.
    fn deviate(&mut self, deviation_ns: u64, outage_ns: u64) {
        if deviation_ns > outage_ns {
            return;
        }
        let deviation = deviation_ns as f64;
        self.mean_deviation_ns += (deviation - self.mean_deviation_ns) * JITTER_ALPHA;
        self.peak_deviation_ns = (self.peak_deviation_ns * PEAK_DECAY).max(deviation);
    }

    fn sample(&mut self, lost: f64) {
        self.fast += (lost - self.fast) * FAST_ALPHA;
        self.samples = (self.samples + 1).min(SLOW_WINDOW);
        self.slow += (lost - self.slow) / f64::from(self.samples);
    }

    /// Whether at least one gap has been measured.
    pub fn has_samples(&self) -> bool {
        self.samples > 0
    }

    /// The loss probability used for the dead time: the larger of the fast estimate and
    /// the upper confidence bound of the slow one. `1.0` before any sample.
    pub fn loss_bound(&self) -> f64 {
        if self.samples == 0 {
            return 1.0;
        }
        let n = f64::from(self.samples);
        let p = self.slow.clamp(0.0, 1.0);
        let z2 = WILSON_Z * WILSON_Z;
        let spread = WILSON_Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        let upper = (p + z2 / (2.0 * n) + spread) / (1.0 + z2 / n);
        upper.max(self.fast).clamp(0.0, 1.0)
    }

    /// The jitter allowance `J`: four mean deviations of the gaps, or the largest recent
    /// deviation if that is more (see the module doc).
    pub fn jitter(&self) -> Duration {
        let allowance = (4.0 * self.mean_deviation_ns).max(self.peak_deviation_ns);
        Duration::from_nanos(allowance as u64)
    }

    /// The dead time `D = m·T + J` for `target` (see the module doc), clamped to
    /// `[min, max]`. `max` before any sample.
    pub fn dead_time(
        &self,
        interval: Duration,
        target: f64,
        min: Duration,
        max: Duration,
    ) -> Duration {
        if !self.has_samples() {
            return max;
        }
        let p = self.loss_bound();
        if p >= HOPELESS_LOSS {
            return max;
        }
        let periods = if p <= 0.0 {
            1.0
        } else {
            // A hair below the exact ratio, so that 6.000000001 stays 6.
            (target.ln() / p.ln() - 1e-9).ceil().max(1.0)
        };
        let limit = nanos(max) / nanos(interval).max(1) + 1;
        let periods = (periods.min(limit as f64)) as u32;
        interval
            .saturating_mul(periods)
            .saturating_add(self.jitter())
            .clamp(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(5);
    const MIN: Duration = Duration::from_millis(17);
    const MAX: Duration = Duration::from_millis(250);
    const TARGET: f64 = 1e-6;

    fn ms(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    fn feed(estimator: &mut StreamEstimator, arrivals: impl IntoIterator<Item = u64>) {
        for at in arrivals {
            estimator.observe(Instant::from_nanos(at), T, 100);
        }
    }

    fn dead(estimator: &StreamEstimator) -> Duration {
        estimator.dead_time(T, TARGET, MIN, MAX)
    }

    #[test]
    fn a_fresh_estimator_knows_nothing_and_uses_the_maximum() {
        let mut estimator = StreamEstimator::new();
        assert!(!estimator.has_samples());
        assert_eq!(dead(&estimator), MAX);
        estimator.observe(ms(0), T, 100);
        assert!(!estimator.has_samples(), "one arrival is no gap yet");
        assert_eq!(estimator.loss_bound(), 1.0);
    }

    #[test]
    fn a_clean_stream_reaches_the_minimum_after_about_a_thousand_packets() {
        let mut estimator = StreamEstimator::new();
        feed(&mut estimator, (0..=100).map(|i| i * 5_000_000));
        assert!(
            dead(&estimator) > MIN,
            "100 packets are not enough evidence"
        );
        feed(&mut estimator, (101..=1100).map(|i| i * 5_000_000));
        assert!(estimator.loss_bound() < 0.01, "{}", estimator.loss_bound());
        assert_eq!(estimator.jitter(), Duration::ZERO);
        assert_eq!(dead(&estimator), MIN);
    }

    #[test]
    fn loss_grows_the_dead_time_as_the_formula_says() {
        let mut estimator = StreamEstimator::new();
        // Every second packet lost, for a long time: p ≈ 0.5, m = ⌈ln 1e-6 / ln p⌉ ≈ 20+.
        feed(&mut estimator, (0..=20_000).map(|i| i * 10_000_000));
        let p = estimator.loss_bound();
        assert!((0.5..0.55).contains(&p), "{p}");
        let m = (TARGET.ln() / p.ln()).ceil() as u32;
        assert_eq!(dead(&estimator), T * m);
        assert!(dead(&estimator) > Duration::from_millis(100));
    }

    #[test]
    fn the_dead_time_never_leaves_its_bounds() {
        let mut estimator = StreamEstimator::new();
        feed(&mut estimator, (0..=2_000).map(|i| i * 45_000_000));
        assert!(estimator.loss_bound() > 0.85);
        assert_eq!(dead(&estimator), MAX);
    }

    #[test]
    fn duplicates_and_stale_arrivals_are_ignored() {
        let mut clean = StreamEstimator::new();
        feed(&mut clean, (0..=2_000).map(|i| i * 5_000_000));
        let mut doubled = StreamEstimator::new();
        // Each packet seen twice (kernel, then socket 40 µs later), plus a stale one.
        feed(
            &mut doubled,
            (0..=2_000u64).flat_map(|i| {
                let t = i * 5_000_000;
                [t, t + 40_000, t.saturating_sub(1)]
            }),
        );
        assert_eq!(doubled, clean);
    }

    #[test]
    fn jitter_is_four_mean_deviations() {
        let mut estimator = StreamEstimator::new();
        // Arrivals alternate 0.5 ms early and on time: every gap deviates by 0.5 ms.
        feed(
            &mut estimator,
            (0..=2_000).map(|i| i * 5_000_000 - if i % 2 == 1 { 500_000 } else { 0 }),
        );
        let jitter = estimator.jitter();
        assert!(
            jitter > Duration::from_micros(1_990) && jitter <= Duration::from_millis(2),
            "{jitter:?}"
        );
        // Loss bound is tiny, so D = 3·T + J = 17 ms, right at the minimum.
        assert!(dead(&estimator) <= MIN + Duration::from_micros(10));
    }

    #[test]
    fn an_outage_counts_as_a_bounded_number_of_losses() {
        let mut estimator = StreamEstimator::new();
        feed(&mut estimator, (0..=2_000).map(|i| i * 5_000_000));
        // Ten seconds of silence, then packets again: counted as at most 4 losses.
        estimator.observe(
            Instant::from_nanos(2_000 * 5_000_000 + 10_000_000_000),
            T,
            4,
        );
        assert!(estimator.loss_bound() < 0.15, "{}", estimator.loss_bound());
    }

    #[test]
    fn sudden_loss_is_seen_by_the_fast_estimate() {
        let mut estimator = StreamEstimator::new();
        feed(&mut estimator, (0..=4_000).map(|i| i * 5_000_000));
        let before = dead(&estimator);
        // 64 packets at 50 % loss.
        feed(&mut estimator, (2_001..2_033).map(|i| i * 10_000_000));
        assert!(estimator.loss_bound() > 0.35, "{}", estimator.loss_bound());
        assert!(dead(&estimator) > before * 3);
    }

    /// A receiver that reads its packets late and in bursts (what polling on a loaded
    /// VM looks like) sees every second packet 0.6 intervals late. Counted by time, that
    /// is loss; counted by sequence number it is jitter, and the dead time stays at the
    /// minimum plus that jitter instead of growing.
    #[test]
    fn late_packets_are_jitter_not_loss_when_sequenced() {
        let late = |i: u64| i * 5_000_000 + if i % 2 == 1 { 3_000_000 } else { 0 };
        let mut by_time = StreamEstimator::new();
        feed(&mut by_time, (0..=4_000).map(late));
        let mut by_seq = StreamEstimator::new();
        for i in 0..=4_000 {
            by_seq.observe_sequenced(Instant::from_nanos(late(i)), i, T, 100);
        }
        assert!(by_seq.is_sequenced());
        assert!(by_time.loss_bound() > 0.2, "{}", by_time.loss_bound());
        assert!(by_seq.loss_bound() < 0.01, "{}", by_seq.loss_bound());
        assert!(
            dead(&by_seq) < dead(&by_time),
            "{:?} {:?}",
            dead(&by_seq),
            dead(&by_time)
        );
        // Every gap is 3 ms off the schedule (8 ms, then 2 ms): J = 4 x 3 ms.
        let jitter = by_seq.jitter();
        assert!(
            jitter > Duration::from_millis(11) && jitter < Duration::from_millis(13),
            "{jitter:?}"
        );
    }

    #[test]
    fn sequence_gaps_are_loss_and_old_sequence_numbers_are_ignored() {
        let mut estimator = StreamEstimator::new();
        for i in 0..=2_000u64 {
            // Every fourth packet lost.
            if i % 4 != 3 {
                estimator.observe_sequenced(Instant::from_nanos(i * 5_000_000), i, T, 100);
            }
        }
        let loss = estimator.loss_bound();
        assert!((0.24..0.32).contains(&loss), "{loss}");
        let before = estimator.clone();
        estimator.observe_sequenced(Instant::from_nanos(20_000_000_000), 1_000, T, 100);
        assert_eq!(
            estimator, before,
            "a replayed sequence number changed the estimate"
        );
    }

    /// Rare stalls (every 200th packet 4 ms late, at 1 ms) are remembered by the peak:
    /// the dead time covers them instead of sitting at the minimum below them, and
    /// forgets them when the stream is clean again.
    #[test]
    fn rare_stalls_raise_the_jitter_allowance_until_they_stop() {
        const ONE_MS: Duration = Duration::from_millis(1);
        let stalled = |i: u64| i * 1_000_000 + if i % 200 == 199 { 4_000_000 } else { 0 };
        let mut estimator = StreamEstimator::new();
        for i in 0..4_000 {
            estimator.observe_sequenced(Instant::from_nanos(stalled(i)), i, ONE_MS, 20);
        }
        assert!(
            estimator.jitter() > Duration::from_micros(3_500),
            "{:?}",
            estimator.jitter()
        );
        for i in 4_000..12_000 {
            estimator.observe_sequenced(Instant::from_nanos(i * 1_000_000), i, ONE_MS, 20);
        }
        assert!(
            estimator.jitter() < Duration::from_micros(500),
            "{:?}",
            estimator.jitter()
        );
    }

    /// A silence longer than the dead time (the sender stopped for 300 ms) is an outage,
    /// not jitter: afterwards the dead time is where it was.
    #[test]
    fn an_outage_does_not_become_jitter() {
        let mut estimator = StreamEstimator::new();
        for i in 0..2_000 {
            estimator.observe_sequenced(Instant::from_nanos(i * 5_000_000), i, T, 4);
        }
        let before = dead(&estimator);
        estimator.observe_sequenced(
            Instant::from_nanos(2_000 * 5_000_000 + 300_000_000),
            2_000,
            T,
            4,
        );
        assert!(
            estimator.jitter() < Duration::from_millis(1),
            "{:?}",
            estimator.jitter()
        );
        assert!(dead(&estimator) <= before + Duration::from_millis(1));
    }
}
