//! Test support: a seeded random number generator and a driver that runs a [`Detector`]
//! in simulated time, firing its timers exactly when they are due.

use std::time::Duration;

use super::detector::{Detector, Event, PeerState};
use super::detector_config::DetectorConfig;
use super::evidence::{EvidenceKind, LinkId, LinkSet};
use super::time::Instant;

/// SplitMix64: tiny, fast, and good enough to draw packet loss. Deterministic per seed.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0), with negligible bias for small n.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The link in `slot`.
pub(crate) fn link(slot: u8) -> LinkId {
    LinkId::new(slot).expect("test slots are below MAX_LINKS")
}

pub(crate) fn ms(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}

/// A detector in simulated time, with every event it emitted.
pub(crate) struct Sim {
    pub(crate) detector: Detector,
    pub(crate) events: Vec<Event>,
}

impl Sim {
    pub(crate) fn new(config: DetectorConfig, links: usize) -> Self {
        let detector =
            Detector::new(config, LinkSet::first(links), Instant::ZERO).expect("valid test config");
        Self {
            detector,
            events: Vec::new(),
        }
    }

    /// Fires every timer due up to `t`, at its due time.
    pub(crate) fn run_until(&mut self, t: Instant) {
        while let Some(due) = self.detector.poll_timeout().filter(|&due| due <= t) {
            self.detector.handle_timeout(due);
            let now = self.detector.now();
            assert!(
                self.detector.poll_timeout().is_none_or(|next| next > now),
                "a timer handled at {now} is still due: the runtime would spin"
            );
            self.drain();
        }
    }

    /// Runs timers up to `at`, then feeds evidence seen at `at`.
    pub(crate) fn evidence(&mut self, at: Instant, slot: u8, kind: EvidenceKind) {
        self.run_until(at);
        self.detector
            .handle_evidence(at, link(slot), kind)
            .expect("configured link");
        self.drain();
    }

    /// One clean interval: a verified heartbeat on each of the first `links` links.
    pub(crate) fn heartbeats(&mut self, at: Instant, links: u8) {
        for slot in 0..links {
            self.evidence(at, slot, EvidenceKind::VerifiedHeartbeat);
        }
    }

    /// Clean heartbeats every interval on `links` links for `count` intervals from
    /// `start`; returns the time of the last ones.
    pub(crate) fn clean_history(&mut self, start: Instant, count: u64, links: u8) -> Instant {
        let interval = self.detector.config().interval;
        let mut at = start;
        for i in 0..count {
            at = start.saturating_add(interval * u32::try_from(i).expect("short history"));
            self.heartbeats(at, links);
        }
        at
    }

    pub(crate) fn drain(&mut self) {
        while let Some(event) = self.detector.poll_event() {
            self.events.push(event);
        }
    }

    pub(crate) fn peer_lost_at(&self) -> Option<Instant> {
        self.events.iter().find_map(|event| match event {
            Event::PeerLost { at, .. } => Some(*at),
            _ => None,
        })
    }

    pub(crate) fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|event| matches(event)).count()
    }

    pub(crate) fn peer(&self) -> PeerState {
        self.detector.peer_state()
    }

    pub(crate) fn dead_after(&self, slot: u8) -> Duration {
        self.detector
            .link_status(link(slot))
            .expect("configured link")
            .dead_after
    }
}
