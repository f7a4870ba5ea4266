//! One link to the peer: its evidence, its up/down state with hysteresis, its adaptive
//! dead time and its flap dampening.
//!
//! Rules (DESIGN.md "Detection"):
//!
//! - Evidence is any sign of life from the peer on this link: its heartbeats (seen by
//!   the kernel, or verified by the daemon), our echoes reflected by its kernel, and its
//!   DRBD replication traffic. The link's silence is measured from the newest evidence of
//!   any kind.
//! - Up → Down when the silence reaches the current dead time (checked by the detector at
//!   its timeouts), or at once on carrier loss.
//! - Down → Up only after `rise` consecutive good intervals: evidence for a span of
//!   `(rise − 1)` intervals with no gap longer than `1.5·T + J` (`J` the measured jitter),
//!   all after the carrier came back and each still fresh. `rise` grows with the
//!   dampening penalty ([`super::dampening`]).
//! - The dead time adapts to the measured loss and jitter ([`super::estimator`]): the
//!   larger of the estimates for the heartbeat stream and for the echo stream, so it holds
//!   whichever stream carries the link. Replication traffic is bursty and only refreshes
//!   the link; it never feeds an estimate. Before any estimate, the dead time is
//!   `dead_after_max`.

use std::time::Duration;

use super::dampening::Dampening;
use super::detector_config::DetectorConfig;
use super::estimator::StreamEstimator;
use super::evidence::{Evidence, EvidenceKind, LinkId};
use super::time::{Instant, nanos};
/// Why a link is down.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DownReason {
    /// No evidence yet since the detector started.
    Startup,
    /// No evidence for `dead_after` since `last_evidence`.
    Silence {
        /// The newest evidence before the silence.
        last_evidence: Evidence,
        /// The dead time in force when the link went down.
        dead_after: Duration,
    },
    /// Our side of the link lost carrier.
    CarrierLoss,
}

/// The state of a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkState {
    /// Evidence arrives within the dead time.
    Up {
        /// When the link came up.
        since: Instant,
    },
    /// Not trusted to carry evidence (yet).
    Down {
        /// When the link went down.
        since: Instant,
        /// Why.
        reason: DownReason,
        /// Start of the current run of good intervals, if evidence arrives again.
        rising_since: Option<Instant>,
    },
}

impl LinkState {
    /// Whether the link is up.
    pub const fn is_up(&self) -> bool {
        matches!(self, Self::Up { .. })
    }
}

/// A snapshot of one link, for `status`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkStatus {
    /// Up or down, and why.
    pub state: LinkState,
    /// Whether our interface has carrier.
    pub carrier_up: bool,
    /// The newest evidence of any kind.
    pub newest_evidence: Option<Evidence>,
    /// The current dead time.
    pub dead_after: Duration,
    /// Good intervals the link needs to come up now (dampened `rise`).
    pub rise_required: u32,
    /// Current flap penalty.
    pub penalty: f64,
    /// Loss probability used for the dead time; `None` before any measurement.
    pub loss: Option<f64>,
    /// Jitter allowance used for the dead time.
    pub jitter: Duration,
}

/// The state machine of one link. Owned and driven by the detector.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    id: LinkId,
    state: LinkState,
    started: Instant,
    carrier_up: bool,
    carrier_changed: Instant,
    newest: Option<Evidence>,
    verified: Option<Instant>,
    kernel_heartbeat: Option<Instant>,
    heartbeats: StreamEstimator,
    echoes: StreamEstimator,
    dead_after: Duration,
    dampening: Dampening,
    /// Evidence (or the start, before any) within `dead_after` and carrier up, as of the
    /// detector's last check.
    alive: bool,
    /// The effective newest heartbeat, if it is within `dead_after` and carrier is up.
    fresh_heartbeat: Option<Evidence>,
}

impl Link {
    pub(crate) fn new(id: LinkId, now: Instant, config: &DetectorConfig) -> Self {
        Self {
            id,
            state: LinkState::Down {
                since: now,
                reason: DownReason::Startup,
                rising_since: None,
            },
            started: now,
            carrier_up: true,
            carrier_changed: now,
            newest: None,
            verified: None,
            kernel_heartbeat: None,
            heartbeats: StreamEstimator::new(),
            echoes: StreamEstimator::new(),
            dead_after: config.dead_after_max,
            dampening: Dampening::new(),
            alive: true,
            fresh_heartbeat: None,
        }
    }

    pub(crate) fn state(&self) -> LinkState {
        self.state
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive
    }

    pub(crate) fn fresh_heartbeat(&self) -> Option<Evidence> {
        self.fresh_heartbeat
    }

    /// Whether a verified heartbeat arrived within the dead time, with carrier up.
    pub(crate) fn verified_is_fresh(&self, now: Instant) -> bool {
        self.carrier_up
            && self
                .verified
                .is_some_and(|at| now < at.saturating_add(self.dead_after))
    }

    pub(crate) fn newest(&self) -> Option<Evidence> {
        self.newest
    }

    pub(crate) fn carrier_up(&self) -> bool {
        self.carrier_up
    }

    /// The newest heartbeat of either kind, fresh or not, as received (no grace cap).
    pub(crate) fn newest_heartbeat(&self) -> Option<Evidence> {
        let verified = self
            .verified
            .map(|at| self.evidence(EvidenceKind::VerifiedHeartbeat, at));
        let kernel = self
            .kernel_heartbeat
            .map(|at| self.evidence(EvidenceKind::KernelHeartbeat, at));
        verified
            .into_iter()
            .chain(kernel)
            .max_by_key(|heartbeat| heartbeat.at)
    }

    /// Feeds the loss estimate with heartbeat number `seq`, received at `at` (a verified
    /// heartbeat, recorded as evidence by [`Link::record`] too). From the first one on,
    /// heartbeat loss is counted from sequence gaps, which a late or batched read cannot
    /// fake.
    pub(crate) fn observe_heartbeat_seq(&mut self, at: Instant, seq: u64, config: &DetectorConfig) {
        let max_lost = nanos(self.dead_after).div_ceil(nanos(config.interval).max(1));
        self.heartbeats
            .observe_sequenced(at, seq, config.interval, max_lost);
    }

    /// Records evidence seen at `evidence.at`, with the detector's time at `now`.
    /// Returns the `rise` that was met if this made the link come up.
    pub(crate) fn record(
        &mut self,
        evidence: Evidence,
        now: Instant,
        config: &DetectorConfig,
    ) -> Option<u32> {
        let at = evidence.at;
        let max_lost = nanos(self.dead_after).div_ceil(nanos(config.interval).max(1));
        match evidence.kind {
            EvidenceKind::KernelHeartbeat => {
                self.kernel_heartbeat = self.kernel_heartbeat.max(Some(at));
                // The kernel's newest stamp is read by polling, so packets between two
                // reads are invisible here: only estimate from it when nothing better
                // (each verified heartbeat, with its own receive time) has come.
                if self.verified.is_none() {
                    self.heartbeats.observe(at, config.interval, max_lost);
                }
            }
            EvidenceKind::VerifiedHeartbeat => {
                self.verified = self.verified.max(Some(at));
                if !self.heartbeats.is_sequenced() {
                    self.heartbeats.observe(at, config.interval, max_lost);
                }
            }
            EvidenceKind::Echo => self.echoes.observe(at, config.interval, max_lost),
            EvidenceKind::Replication => {}
        }
        self.dead_after = self.estimate_dead_after(config);

        let previous = self.newest;
        if previous.is_some_and(|newest| newest.at >= at) {
            return None;
        }
        self.newest = Some(evidence);
        let fresh = now < at.saturating_add(self.dead_after);
        if !self.carrier_up || at < self.carrier_changed || !fresh {
            return None;
        }
        let LinkState::Down {
            since,
            reason,
            rising_since,
        } = self.state
        else {
            return None;
        };
        let good_gap = config.interval * 3 / 2 + self.jitter();
        let continues = previous.is_some_and(|previous| {
            previous.at >= self.carrier_changed
                && at.saturating_duration_since(previous.at) <= good_gap
        });
        let rising_since = match rising_since {
            Some(start) if continues => start,
            Some(_) | None => at,
        };
        let rise = self
            .dampening
            .rise_required(at, config.rise, &config.dampening);
        if at.saturating_duration_since(rising_since) >= config.interval * rise.saturating_sub(1) {
            self.state = LinkState::Up { since: now };
            self.dampening.record_transition(now, &config.dampening);
            Some(rise)
        } else {
            self.state = LinkState::Down {
                since,
                reason,
                rising_since: Some(rising_since),
            };
            None
        }
    }

    /// Applies a carrier change at `now`. Returns the reason if this took the link down.
    pub(crate) fn set_carrier(
        &mut self,
        now: Instant,
        up: bool,
        config: &DetectorConfig,
    ) -> Option<DownReason> {
        if up == self.carrier_up {
            return None;
        }
        self.carrier_up = up;
        self.carrier_changed = now;
        match self.state {
            LinkState::Up { .. } => {
                self.state = LinkState::Down {
                    since: now,
                    reason: DownReason::CarrierLoss,
                    rising_since: None,
                };
                self.dampening.record_transition(now, &config.dampening);
                Some(DownReason::CarrierLoss)
            }
            LinkState::Down { since, reason, .. } => {
                self.state = LinkState::Down {
                    since,
                    reason,
                    rising_since: None,
                };
                None
            }
        }
    }

    /// Re-evaluates freshness at `now`. `verified_any` is the newest verified heartbeat on
    /// any link: a kernel heartbeat counts as a heartbeat only up to `unverified_grace`
    /// after it, so unauthenticated packets cannot keep the peer "alive" beyond that.
    pub(crate) fn refresh(
        &mut self,
        now: Instant,
        verified_any: Option<Instant>,
        config: &DetectorConfig,
    ) {
        let silence_base = self.newest.map_or(self.started, |evidence| evidence.at);
        self.alive = self.carrier_up && now < silence_base.saturating_add(self.dead_after);
        let verified = self
            .verified
            .map(|at| self.evidence(EvidenceKind::VerifiedHeartbeat, at));
        let kernel = self
            .kernel_heartbeat
            .zip(verified_any)
            .map(|(at, verified_any)| {
                let bound = verified_any.saturating_add(config.unverified_grace);
                self.evidence(EvidenceKind::KernelHeartbeat, at.min(bound))
            });
        let newest = match (verified, kernel) {
            (Some(v), Some(k)) => Some(if k.at > v.at { k } else { v }),
            (one, other) => one.or(other),
        };
        self.fresh_heartbeat = newest.filter(|heartbeat| {
            self.carrier_up && now < heartbeat.at.saturating_add(self.dead_after)
        });
    }

    /// After [`Link::refresh`] at `now`: takes an up link without fresh evidence down.
    pub(crate) fn check_silence(
        &mut self,
        now: Instant,
        config: &DetectorConfig,
    ) -> Option<DownReason> {
        if !self.state.is_up() || self.alive || !self.carrier_up {
            return None;
        }
        let reason = match self.newest {
            Some(last_evidence) => DownReason::Silence {
                last_evidence,
                dead_after: self.dead_after,
            },
            None => DownReason::Startup,
        };
        self.state = LinkState::Down {
            since: now,
            reason,
            rising_since: None,
        };
        self.dampening.record_transition(now, &config.dampening);
        Some(reason)
    }

    /// The next time [`Link::refresh`] would change something without new input.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let silence = (self.alive || self.state.is_up()).then(|| {
            self.newest
                .map_or(self.started, |evidence| evidence.at)
                .saturating_add(self.dead_after)
        });
        let heartbeat = self
            .fresh_heartbeat
            .map(|heartbeat| heartbeat.at.saturating_add(self.dead_after));
        silence.into_iter().chain(heartbeat).min()
    }

    pub(crate) fn status(&self, now: Instant, config: &DetectorConfig) -> LinkStatus {
        let loss = [&self.heartbeats, &self.echoes]
            .into_iter()
            .filter(|stream| stream.has_samples())
            .map(StreamEstimator::loss_bound)
            .reduce(f64::max);
        LinkStatus {
            state: self.state,
            carrier_up: self.carrier_up,
            newest_evidence: self.newest,
            dead_after: self.dead_after,
            rise_required: self
                .dampening
                .rise_required(now, config.rise, &config.dampening),
            penalty: self.dampening.penalty(now, &config.dampening),
            loss,
            jitter: self.jitter(),
        }
    }

    fn evidence(&self, kind: EvidenceKind, at: Instant) -> Evidence {
        Evidence {
            link: self.id,
            kind,
            at,
        }
    }

    fn jitter(&self) -> Duration {
        self.heartbeats.jitter().max(self.echoes.jitter())
    }

    /// The dead time the estimates imply. While heartbeats keep coming (the newest is
    /// within `dead_after_min` of the link's newest evidence), the link can only fall
    /// silent if the heartbeats do, so their estimate alone bounds the chance of a false
    /// "link down". Otherwise (the peer's daemon stopped, only its kernel answers) the
    /// larger estimate of the two streams counts.
    fn estimate_dead_after(&self, config: &DetectorConfig) -> Duration {
        let newest = self.newest.map(|evidence| evidence.at);
        let heartbeats_flowing = self.heartbeats.has_samples()
            && self
                .heartbeats
                .last_arrival()
                .zip(newest)
                .is_some_and(|(last, newest)| {
                    newest.saturating_duration_since(last) <= config.dead_after_min
                });
        let streams: &[&StreamEstimator] = if heartbeats_flowing {
            &[&self.heartbeats]
        } else {
            &[&self.heartbeats, &self.echoes]
        };
        streams
            .iter()
            .filter(|stream| stream.has_samples())
            .map(|stream| {
                stream.dead_time(
                    config.interval,
                    config.false_down_target,
                    config.dead_after_min,
                    config.dead_after_max,
                )
            })
            .max()
            .unwrap_or(config.dead_after_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: LinkId = match LinkId::new(0) {
        Some(link) => link,
        None => panic!("slot 0 exists"),
    };

    fn ms(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    fn config() -> DetectorConfig {
        DetectorConfig::default()
    }

    fn verified(at: Instant) -> Evidence {
        Evidence {
            link: LINK,
            kind: EvidenceKind::VerifiedHeartbeat,
            at,
        }
    }

    /// Feeds verified heartbeats at these milliseconds; returns the rises met.
    fn feed(link: &mut Link, times: impl IntoIterator<Item = u64>) -> Vec<(u64, u32)> {
        times
            .into_iter()
            .filter_map(|t| {
                link.record(verified(ms(t)), ms(t), &config())
                    .map(|rise| (t, rise))
            })
            .collect()
    }

    #[test]
    fn starts_down_and_alive_until_dead_after_max() {
        let mut link = Link::new(LINK, ms(0), &config());
        assert!(matches!(
            link.state(),
            LinkState::Down {
                reason: DownReason::Startup,
                ..
            }
        ));
        link.refresh(ms(249), None, &config());
        assert!(link.is_alive());
        assert_eq!(link.deadline(), Some(ms(250)));
        link.refresh(ms(250), None, &config());
        assert!(!link.is_alive());
        assert_eq!(link.deadline(), None);
    }

    #[test]
    fn comes_up_after_rise_consecutive_good_intervals() {
        let mut link = Link::new(LINK, ms(0), &config());
        assert_eq!(feed(&mut link, [5, 10]), []);
        assert!(
            matches!(link.state(), LinkState::Down { rising_since: Some(t), .. } if t == ms(5))
        );
        assert_eq!(feed(&mut link, [15]), [(15, 3)]);
        assert_eq!(link.state(), LinkState::Up { since: ms(15) });
    }

    #[test]
    fn a_missed_interval_restarts_the_rise() {
        let mut link = Link::new(LINK, ms(0), &config());
        assert_eq!(feed(&mut link, [5, 10, 30, 35]), []);
        assert_eq!(feed(&mut link, [40]), [(40, 3)]);
    }

    #[test]
    fn duplicates_do_not_speed_up_the_rise() {
        let mut link = Link::new(LINK, ms(0), &config());
        let burst = [5_000u64, 5_010, 5_020, 5_030, 5_040, 5_050];
        for t in burst {
            let at = Instant::from_nanos(t * 1_000);
            let replication = Evidence {
                link: LINK,
                kind: EvidenceKind::Replication,
                at,
            };
            assert_eq!(link.record(replication, at, &config()), None);
        }
        assert!(!link.state().is_up());
    }

    #[test]
    fn goes_down_after_silence_of_its_dead_time() {
        let config = config();
        let mut link = Link::new(LINK, ms(0), &config);
        feed(&mut link, (1..=2000).map(|i| i * 5));
        assert!(link.state().is_up());
        let dead_after = link.status(ms(10_000), &config).dead_after;
        assert_eq!(dead_after, config.dead_after_min, "clean history");
        let silent_at = ms(10_000).saturating_add(dead_after);
        assert_eq!(link.deadline(), Some(silent_at));

        link.refresh(
            silent_at.saturating_sub(Duration::from_nanos(1)),
            None,
            &config,
        );
        assert_eq!(link.check_silence(silent_at, &config), None);
        link.refresh(silent_at, None, &config);
        assert_eq!(
            link.check_silence(silent_at, &config),
            Some(DownReason::Silence {
                last_evidence: verified(ms(10_000)),
                dead_after
            })
        );
        assert!(matches!(link.state(), LinkState::Down { since, .. } if since == silent_at));
        assert_eq!(link.deadline(), None);
    }

    #[test]
    fn carrier_loss_downs_at_once_and_evidence_counts_again_only_after_carrier() {
        let config = config();
        let mut link = Link::new(LINK, ms(0), &config);
        feed(&mut link, [5, 10, 15]);
        assert_eq!(
            link.set_carrier(ms(16), false, &config),
            Some(DownReason::CarrierLoss)
        );
        assert_eq!(link.set_carrier(ms(17), false, &config), None, "no change");
        link.refresh(ms(16), None, &config);
        assert!(!link.is_alive());
        assert_eq!(
            feed(&mut link, [20, 25, 30, 35]),
            [],
            "no carrier: never up"
        );
        link.refresh(ms(35), None, &config);
        assert!(
            !link.is_alive(),
            "evidence without carrier keeps nothing alive"
        );

        assert_eq!(link.set_carrier(ms(36), true, &config), None);
        assert_eq!(feed(&mut link, [40, 45]), []);
        assert_eq!(feed(&mut link, [50]), [(50, 3)]);
    }

    #[test]
    fn stale_evidence_does_not_raise_a_link() {
        let config = config();
        let mut link = Link::new(LINK, ms(0), &config);
        // Stamped long ago (a late read), handled at 10 s: too old to keep anything alive.
        for t in [5, 10, 15] {
            assert_eq!(link.record(verified(ms(t)), ms(10_000), &config), None);
        }
        assert!(!link.state().is_up());
    }

    #[test]
    fn kernel_heartbeats_count_only_within_the_grace_after_a_verified_one() {
        let config = config();
        let mut link = Link::new(LINK, ms(0), &config);
        let kernel = |t| Evidence {
            link: LINK,
            kind: EvidenceKind::KernelHeartbeat,
            at: ms(t),
        };
        for t in (1..=400).map(|i| i * 5) {
            link.record(kernel(t), ms(t), &config);
        }
        link.refresh(ms(2_000), None, &config);
        assert!(link.is_alive());
        assert_eq!(
            link.fresh_heartbeat(),
            None,
            "no verified heartbeat ever: not a heartbeat"
        );

        link.record(verified(ms(2_000)), ms(2_000), &config);
        for t in (401..=1000).map(|i| i * 5) {
            link.record(kernel(t), ms(t), &config);
        }
        let grace_end = ms(2_000).saturating_add(config.unverified_grace);
        link.refresh(ms(3_000), Some(ms(2_000)), &config);
        assert_eq!(link.fresh_heartbeat(), Some(kernel(3_000)));
        link.refresh(ms(5_000), Some(ms(2_000)), &config);
        assert!(link.is_alive());
        assert_eq!(
            link.fresh_heartbeat(),
            None,
            "kernel counts beyond the grace are not heartbeats"
        );
        assert_eq!(link.newest_heartbeat(), Some(kernel(5_000)));
        let dead_after = link.status(ms(5_000), &config).dead_after;
        link.refresh(
            grace_end
                .saturating_add(dead_after)
                .saturating_sub(Duration::from_nanos(1)),
            Some(ms(2_000)),
            &config,
        );
        assert!(link.fresh_heartbeat().is_some());
    }
}
