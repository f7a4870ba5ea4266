//! The failure detector: evidence per link in, link and peer state changes out.
//!
//! Pure and deterministic: time is a parameter, there are no clock reads and no I/O. The
//! per-link rules (dead time, hysteresis, dampening) live in [`super::link`]; this module
//! combines the links into the peer's state:
//!
//! - **Lost**: every link is silent for its dead time, or has no carrier. Only silence
//!   decides this, never a link's hysteresis or dampening, so a peer whose evidence
//!   stopped at `t0` is lost at `t0 + dead_after` (`dead_after_min` on a clean link),
//!   however much its links flapped before.
//! - **Alive**: a fresh heartbeat on some link. Coming back from *Lost* (or at start-up)
//!   also needs a link that is up, i.e. has met its `rise`.
//! - **Daemon down**: some link is alive, but no heartbeat is fresh on any link: our
//!   echoes come back or DRBD traffic flows, so the peer's kernel (and maybe its
//!   resources) still run. Report it; never take over on it.
//!
//! Unauthenticated evidence (kernel heartbeat counts, echoes, replication) may keep the
//! peer from being lost, but never makes it *alive* on its own: becoming alive (from
//! start-up, lost or daemon down) needs a fresh verified heartbeat. A kernel heartbeat count
//! is evidence at all only within `unverified_grace` of the newest verified heartbeat on
//! any link: it stands for packets our daemon has not verified *yet* (a stalled daemon
//! catches up within the grace), not for packets that never verify. Forged heartbeats
//! (wrong key, the peer's address) therefore keep a lost peer from being lost for at
//! most `unverified_grace + dead_after`, then are ignored. Echoes and replication traffic
//! (the peer's kernel and DRBD) keep it "daemon down", which delays a takeover and can
//! never cause one.
//!
//! Degraded: at least one link up and at least one down ([`Event::Degraded`], reported
//! again when the set of down links changes); [`Event::AllLinksUp`] ends it.
//!
//! # Call order
//!
//! The quinn/firezone pattern. For every batch of inputs:
//!
//! 1. feed everything known up to now: [`Detector::handle_evidence`] with each
//!    evidence's own timestamp (kernel or socket time, which may be *earlier* than the
//!    last `now`: a daemon that was descheduled still sees that packets arrived), and
//!    [`Detector::handle_carrier`] for netlink carrier changes;
//! 2. [`Detector::handle_timeout`]`(now)` once [`Detector::poll_timeout`] is due (calling
//!    it more often is harmless);
//! 3. drain [`Detector::poll_event`] until `None`;
//! 4. sleep until [`Detector::poll_timeout`] or the next input.
//!
//! Feeding evidence before the timeout matters: silence is judged only in
//! `handle_timeout` and `handle_carrier`, never in `handle_evidence`, so evidence fed in
//! any order within a batch never causes a false "link down". Time never goes backwards:
//! the detector's time is the latest instant it was given, and an earlier `now` counts as
//! that.

use std::collections::VecDeque;

use super::detector_config::{ConfigError, DetectorConfig};
use super::evidence::{Evidence, EvidenceKind, LinkId, LinkSet};
use super::link::{DownReason, Link, LinkStatus};
use super::time::Instant;
use super::wire::{LINK_SLOTS, LinkHearing};

/// The peer's state, as the detector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Nothing decided yet (start-up).
    Unknown,
    /// Fresh heartbeats on some link.
    Alive,
    /// No fresh heartbeat anywhere, but other evidence on some link: its kernel lives.
    DaemonDown,
    /// No evidence on any link for its dead time.
    Lost,
}

/// A change the detector reports. Each carries the evidence that decided it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// `link` met its `rise` with `evidence`.
    LinkUp {
        /// The link.
        link: LinkId,
        /// Detector time of the change.
        at: Instant,
        /// The evidence that completed the rise.
        evidence: Evidence,
        /// The (dampened) rise that was required.
        rise: u32,
    },
    /// `link` went down.
    LinkDown {
        /// The link.
        link: LinkId,
        /// Detector time of the change.
        at: Instant,
        /// Silence (with the last evidence and the dead time) or carrier loss.
        reason: DownReason,
    },
    /// Some links are up, these are down.
    Degraded {
        /// Detector time of the change.
        at: Instant,
        /// The links that are down.
        down: LinkSet,
    },
    /// Every link is up again after [`Event::Degraded`].
    AllLinksUp {
        /// Detector time of the change.
        at: Instant,
    },
    /// The peer's daemon is alive.
    PeerAlive {
        /// Detector time of the change.
        at: Instant,
        /// The fresh heartbeat that shows it.
        heartbeat: Evidence,
    },
    /// The peer's daemon is silent everywhere, but its kernel is not.
    PeerDaemonDown {
        /// Detector time of the change.
        at: Instant,
        /// The newest evidence on a link that is still alive.
        alive_by: Evidence,
        /// The newest heartbeat ever received, if any.
        last_heartbeat: Option<Evidence>,
    },
    /// Every link is silent (or without carrier): the peer is gone.
    PeerLost {
        /// Detector time of the change.
        at: Instant,
        /// The newest evidence on any link, if any ever arrived.
        last_evidence: Option<Evidence>,
        /// Links that are down because our carrier is gone rather than silent.
        carrier_down: LinkSet,
    },
}

/// The link is not one the detector was created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not configured")]
pub struct UnknownLink(pub LinkId);

/// The failure detector for one peer over a fixed set of links. See the module doc for
/// the rules and the call order.
#[derive(Clone, Debug)]
pub struct Detector {
    config: DetectorConfig,
    links: [Option<Link>; LINK_SLOTS],
    now: Instant,
    peer: PeerState,
    verified_any: Option<Instant>,
    /// Kernel heartbeat counts outside the grace after a verified heartbeat.
    ignored_unverified: u64,
    degraded: Option<LinkSet>,
    events: VecDeque<Event>,
}

impl Detector {
    /// A detector for the peer over `links`, started at `now`, with every link down and
    /// the peer [`PeerState::Unknown`]. If nothing arrives, the peer is reported lost
    /// after `dead_after_max`.
    pub fn new(config: DetectorConfig, links: LinkSet, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        if links.is_empty() {
            return Err(ConfigError::new("links", "must name at least one link"));
        }
        let links = std::array::from_fn(|slot| {
            let link = u8::try_from(slot).ok().and_then(LinkId::new)?;
            links.contains(link).then(|| Link::new(link, now, &config))
        });
        Ok(Self {
            config,
            links,
            now,
            peer: PeerState::Unknown,
            verified_any: None,
            ignored_unverified: 0,
            degraded: None,
            events: VecDeque::new(),
        })
    }

    /// Evidence of `kind` from the peer on `link`, seen at `at`. May bring a link up and
    /// the peer back, never takes anything down.
    pub fn handle_evidence(
        &mut self,
        at: Instant,
        link: LinkId,
        kind: EvidenceKind,
    ) -> Result<(), UnknownLink> {
        let now = self.advance(at);
        let config = self.config;
        let unverified = kind == EvidenceKind::KernelHeartbeat
            && self
                .verified_any
                .is_none_or(|verified| at > verified.saturating_add(config.unverified_grace));
        if unverified {
            self.link_mut(link)?;
            self.ignored_unverified += 1;
            return Ok(());
        }
        let state = self.link_mut(link)?;
        let evidence = Evidence { link, kind, at };
        let rose = state.record(evidence, now, &config);
        if kind == EvidenceKind::VerifiedHeartbeat {
            self.verified_any = self.verified_any.max(Some(at));
        }
        self.refresh(now);
        if let Some(rise) = rose {
            self.events.push_back(Event::LinkUp {
                link,
                at: now,
                evidence,
                rise,
            });
        }
        self.update_degraded(now);
        self.update_peer(now, false);
        Ok(())
    }

    /// A verified heartbeat numbered `seq` from the peer on `link`, received at `at`:
    /// [`Detector::handle_evidence`] with [`EvidenceKind::VerifiedHeartbeat`], and the
    /// sequence number lets the link count loss exactly (late is not lost).
    pub fn handle_heartbeat(
        &mut self,
        at: Instant,
        link: LinkId,
        seq: u64,
    ) -> Result<(), UnknownLink> {
        let config = self.config;
        self.link_mut(link)?.observe_heartbeat_seq(at, seq, &config);
        self.handle_evidence(at, link, EvidenceKind::VerifiedHeartbeat)
    }

    /// Our carrier on `link` went up or down at `at` (from netlink). Carrier loss takes
    /// the link down at once; then everything is evaluated as in
    /// [`Detector::handle_timeout`].
    pub fn handle_carrier(
        &mut self,
        at: Instant,
        link: LinkId,
        up: bool,
    ) -> Result<(), UnknownLink> {
        let now = self.advance(at);
        let config = self.config;
        if let Some(reason) = self.link_mut(link)?.set_carrier(now, up, &config) {
            self.events.push_back(Event::LinkDown {
                link,
                at: now,
                reason,
            });
        }
        self.evaluate(now);
        Ok(())
    }

    /// Time has reached `now`: take silent links down and update the peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        self.evaluate(now);
    }

    /// When [`Detector::handle_timeout`] must be called next, if anything can change
    /// without new input. May be at or before the latest time given (then call it now).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links.iter().flatten().filter_map(Link::deadline).min()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The peer's current state.
    pub fn peer_state(&self) -> PeerState {
        self.peer
    }

    /// A snapshot of `link` as of the detector's time; `None` if it is not configured.
    pub fn link_status(&self, link: LinkId) -> Option<LinkStatus> {
        let state = self.links.get(usize::from(link.slot()))?.as_ref()?;
        Some(state.status(self.now, &self.config))
    }

    /// What we hear from the peer on every link slot, for our next heartbeat.
    pub fn hearing(&self) -> [LinkHearing; LINK_SLOTS] {
        self.links.each_ref().map(|link| match link {
            None => LinkHearing::Unused,
            Some(link) if link.state().is_up() => LinkHearing::Up,
            Some(_) => LinkHearing::Down,
        })
    }

    /// Kernel heartbeat counts ignored because no verified heartbeat came within
    /// `unverified_grace` before them (forged, or from a peer with another key).
    pub fn ignored_unverified(&self) -> u64 {
        self.ignored_unverified
    }

    /// The latest time the detector was given.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The configuration in force.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    fn advance(&mut self, to: Instant) -> Instant {
        self.now = self.now.max(to);
        self.now
    }

    fn link_mut(&mut self, link: LinkId) -> Result<&mut Link, UnknownLink> {
        self.links
            .get_mut(usize::from(link.slot()))
            .and_then(Option::as_mut)
            .ok_or(UnknownLink(link))
    }

    fn refresh(&mut self, now: Instant) {
        for link in self.links.iter_mut().flatten() {
            link.refresh(now, self.verified_any, &self.config);
        }
    }

    fn evaluate(&mut self, now: Instant) {
        self.refresh(now);
        for (slot, link) in self.links.iter_mut().enumerate() {
            let Some(link) = link else { continue };
            if let Some(reason) = link.check_silence(now, &self.config) {
                let id = u8::try_from(slot).ok().and_then(LinkId::new);
                if let Some(link) = id {
                    self.events.push_back(Event::LinkDown {
                        link,
                        at: now,
                        reason,
                    });
                }
            }
        }
        self.update_degraded(now);
        self.update_peer(now, true);
    }

    fn configured(&self) -> impl Iterator<Item = (LinkId, &Link)> {
        self.links.iter().enumerate().filter_map(|(slot, link)| {
            let id = u8::try_from(slot).ok().and_then(LinkId::new)?;
            Some((id, link.as_ref()?))
        })
    }

    fn update_degraded(&mut self, now: Instant) {
        let (up, down) = self.configured().fold(
            (LinkSet::empty(), LinkSet::empty()),
            |(up, down), (id, link)| {
                if link.state().is_up() {
                    (up.with(id), down)
                } else {
                    (up, down.with(id))
                }
            },
        );
        let degraded = (!up.is_empty() && !down.is_empty()).then_some(down);
        if degraded == self.degraded {
            return;
        }
        match degraded {
            Some(down) => self.events.push_back(Event::Degraded { at: now, down }),
            None if down.is_empty() => self.events.push_back(Event::AllLinksUp { at: now }),
            None => {}
        }
        self.degraded = degraded;
    }

    /// Moves the peer to the state the links imply. With `allow_down` false (evidence)
    /// only moves towards life: Unknown/Lost to Alive/DaemonDown, DaemonDown to Alive.
    fn update_peer(&mut self, now: Instant, allow_down: bool) {
        let was = self.peer;
        let any_alive = self.configured().any(|(_, link)| link.is_alive());
        let any_up = self.configured().any(|(_, link)| link.state().is_up());
        let newest = |links: &mut dyn Iterator<Item = Evidence>| links.max_by_key(|e| e.at);
        let heartbeat = newest(
            &mut self
                .configured()
                .filter_map(|(_, link)| link.fresh_heartbeat()),
        );
        let alive_by = newest(
            &mut self
                .configured()
                .filter(|(_, link)| link.is_alive())
                .filter_map(|(_, link)| link.newest()),
        );
        let returning = matches!(was, PeerState::Unknown | PeerState::Lost);
        let verified_fresh = self
            .configured()
            .any(|(_, link)| link.verified_is_fresh(now));
        let (next, event) = match (any_alive, heartbeat, alive_by) {
            (false, _, _) => {
                let last_evidence =
                    newest(&mut self.configured().filter_map(|(_, link)| link.newest()));
                let carrier_down = self
                    .configured()
                    .filter(|(_, link)| !link.carrier_up())
                    .map(|(id, _)| id)
                    .collect();
                let event = Event::PeerLost {
                    at: now,
                    last_evidence,
                    carrier_down,
                };
                (PeerState::Lost, event)
            }
            // Coming back needs a link that met its rise.
            (true, _, _) if returning && !any_up => return,
            // Becoming alive needs a verified heartbeat: kernel counts (forgeable) may
            // keep an alive peer alive within the grace, never make it alive.
            (true, Some(_), _) if was != PeerState::Alive && !verified_fresh => return,
            (true, Some(heartbeat), _) => {
                (PeerState::Alive, Event::PeerAlive { at: now, heartbeat })
            }
            (true, None, Some(alive_by)) => {
                let last_heartbeat = newest(
                    &mut self
                        .configured()
                        .filter_map(|(_, link)| link.newest_heartbeat()),
                );
                let event = Event::PeerDaemonDown {
                    at: now,
                    alive_by,
                    last_heartbeat,
                };
                (PeerState::DaemonDown, event)
            }
            // Alive only through the start-up window of links never heard: no change.
            (true, None, None) => return,
        };
        let towards_life = matches!(
            (was, next),
            (
                PeerState::Unknown | PeerState::Lost,
                PeerState::Alive | PeerState::DaemonDown
            ) | (PeerState::DaemonDown, PeerState::Alive)
        );
        if next == was || !(allow_down || towards_life) {
            return;
        }
        self.peer = next;
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::test_sim::{Sim, link, ms};

    fn config() -> DetectorConfig {
        DetectorConfig::default()
    }

    #[test]
    fn new_refuses_no_links_and_an_invalid_config() {
        let error = Detector::new(config(), LinkSet::empty(), Instant::ZERO).unwrap_err();
        assert_eq!(error.field, "links");
        let mut config = config();
        config.rise = 0;
        assert_eq!(
            Detector::new(config, LinkSet::first(1), Instant::ZERO)
                .unwrap_err()
                .to_string(),
            "`rise` must be at least 1"
        );
    }

    #[test]
    fn unknown_links_are_errors() {
        let mut detector = Detector::new(config(), LinkSet::first(2), Instant::ZERO).unwrap();
        assert_eq!(
            detector.handle_evidence(ms(1), link(2), EvidenceKind::Echo),
            Err(UnknownLink(link(2)))
        );
        assert_eq!(
            detector.handle_carrier(ms(1), link(7), false),
            Err(UnknownLink(link(7)))
        );
        assert_eq!(detector.link_status(link(2)), None);
        assert_eq!(detector.poll_event(), None);
    }

    #[test]
    fn silence_from_the_start_is_peer_lost_after_dead_after_max() {
        let mut sim = Sim::new(config(), 2);
        sim.run_until(ms(10_000));
        assert_eq!(
            sim.events,
            [Event::PeerLost {
                at: ms(250),
                last_evidence: None,
                carrier_down: LinkSet::empty()
            }]
        );
    }

    #[test]
    fn two_links_come_up_and_the_peer_is_alive() {
        let mut sim = Sim::new(config(), 2);
        sim.heartbeats(ms(5), 2);
        sim.heartbeats(ms(10), 2);
        assert_eq!(sim.events, []);
        sim.heartbeats(ms(15), 2);
        let heartbeat = |slot| Evidence {
            link: link(slot),
            kind: EvidenceKind::VerifiedHeartbeat,
            at: ms(15),
        };
        assert_eq!(
            sim.events,
            [
                Event::LinkUp {
                    link: link(0),
                    at: ms(15),
                    evidence: heartbeat(0),
                    rise: 3
                },
                Event::Degraded {
                    at: ms(15),
                    down: LinkSet::empty().with(link(1))
                },
                Event::PeerAlive {
                    at: ms(15),
                    heartbeat: heartbeat(0)
                },
                Event::LinkUp {
                    link: link(1),
                    at: ms(15),
                    evidence: heartbeat(1),
                    rise: 3
                },
                Event::AllLinksUp { at: ms(15) },
            ]
        );
        assert_eq!(sim.peer(), PeerState::Alive);
    }

    #[test]
    fn one_silent_link_is_degraded_not_lost() {
        let mut sim = Sim::new(config(), 2);
        let last = sim.clean_history(ms(5), 2_000, 2);
        sim.events.clear();
        for i in 1..=1_000u32 {
            sim.evidence(
                last.saturating_add(config().interval * i),
                1,
                EvidenceKind::VerifiedHeartbeat,
            );
        }
        let down_at = last.saturating_add(config().dead_after_min);
        assert_eq!(
            sim.events,
            [
                Event::LinkDown {
                    link: link(0),
                    at: down_at,
                    reason: DownReason::Silence {
                        last_evidence: Evidence {
                            link: link(0),
                            kind: EvidenceKind::VerifiedHeartbeat,
                            at: last
                        },
                        dead_after: config().dead_after_min,
                    },
                },
                Event::Degraded {
                    at: down_at,
                    down: LinkSet::empty().with(link(0))
                },
            ]
        );
        assert_eq!(sim.peer(), PeerState::Alive);
    }

    #[test]
    fn every_link_silent_is_peer_lost_with_the_last_evidence() {
        let mut sim = Sim::new(config(), 2);
        let last = sim.clean_history(ms(5), 2_000, 2);
        sim.events.clear();
        sim.run_until(ms(60_000));
        let lost_at = last.saturating_add(config().dead_after_min);
        assert_eq!(sim.peer_lost_at(), Some(lost_at));
        assert_eq!(
            sim.events.last(),
            Some(&Event::PeerLost {
                at: lost_at,
                last_evidence: Some(Evidence {
                    link: link(1),
                    kind: EvidenceKind::VerifiedHeartbeat,
                    at: last
                }),
                carrier_down: LinkSet::empty(),
            })
        );
        assert_eq!(sim.count(|e| matches!(e, Event::LinkDown { .. })), 2);
        assert_eq!(
            sim.count(|e| matches!(e, Event::Degraded { .. })),
            0,
            "both links at once"
        );
        assert_eq!(sim.detector.poll_timeout(), None, "nothing left to time");
    }

    #[test]
    fn carrier_loss_on_every_link_is_peer_lost_at_once() {
        let mut sim = Sim::new(config(), 2);
        let last = sim.clean_history(ms(5), 100, 2);
        sim.detector.handle_carrier(last, link(0), false).unwrap();
        sim.drain();
        assert_eq!(sim.peer(), PeerState::Alive);
        sim.detector.handle_carrier(last, link(1), false).unwrap();
        sim.drain();
        assert_eq!(sim.peer_lost_at(), Some(last));
        assert!(matches!(
            sim.events.last(),
            Some(Event::PeerLost { carrier_down, .. }) if *carrier_down == LinkSet::first(2)
        ));
    }

    #[test]
    fn echoes_without_heartbeats_are_daemon_down_then_lost_then_alive_after_rise() {
        let config = config();
        let mut sim = Sim::new(config, 1);
        let last = sim.clean_history(ms(5), 2_000, 1);
        for i in 1..=200u32 {
            sim.evidence(
                last.saturating_add(config.interval * i),
                0,
                EvidenceKind::Echo,
            );
        }
        let daemon_down = sim.events.iter().find_map(|event| match *event {
            Event::PeerDaemonDown {
                at,
                alive_by,
                last_heartbeat,
            } => Some((at, alive_by.kind, last_heartbeat)),
            _ => None,
        });
        let (at, kind, last_heartbeat) = daemon_down.expect("daemon down reported");
        assert!(at <= last.saturating_add(config.dead_after_max), "{at}");
        assert_eq!(kind, EvidenceKind::Echo);
        assert_eq!(last_heartbeat.map(|heartbeat| heartbeat.at), Some(last));
        assert_eq!(
            sim.peer_lost_at(),
            None,
            "a live kernel is never a lost peer"
        );
        assert!(sim.detector.link_status(link(0)).unwrap().state.is_up());

        let echoes_end = last.saturating_add(config.interval * 200);
        sim.run_until(echoes_end.saturating_add(Duration::from_secs(1)));
        assert_eq!(sim.peer(), PeerState::Lost);
        let lost_at = sim.peer_lost_at().unwrap();
        assert!(lost_at <= echoes_end.saturating_add(config.dead_after_max));

        let back = ms(30_000);
        sim.heartbeats(back, 1);
        sim.heartbeats(back.saturating_add(config.interval), 1);
        assert_eq!(sim.peer(), PeerState::Lost, "not before rise");
        sim.heartbeats(back.saturating_add(config.interval * 2), 1);
        assert_eq!(sim.peer(), PeerState::Alive);
    }

    #[test]
    fn forged_kernel_heartbeats_delay_peer_lost_only_for_grace_plus_dead_after() {
        let config = config();
        let mut sim = Sim::new(config, 1);
        let last = sim.clean_history(ms(5), 2_000, 1);
        // The peer is gone; a forger keeps sending heartbeats that the kernel counts but
        // that never verify.
        for i in 1..=1_000u32 {
            sim.evidence(
                last.saturating_add(config.interval * i),
                0,
                EvidenceKind::KernelHeartbeat,
            );
        }
        let bound = last
            .saturating_add(config.unverified_grace)
            .saturating_add(config.dead_after_max);
        let lost_at = sim.events.iter().find_map(|event| match *event {
            Event::PeerLost { at, .. } => Some(at),
            _ => None,
        });
        assert!(
            lost_at.is_some_and(|at| at <= bound),
            "{lost_at:?} > {bound}"
        );
        assert_eq!(sim.peer(), PeerState::Lost);
        assert!(sim.detector.ignored_unverified() > 0);
        assert_eq!(
            sim.count(|e| matches!(e, Event::PeerAlive { .. })),
            1,
            "only the first"
        );
    }

    /// A forger whose packets pause longer than the dead time (the peer is lost) and
    /// then resume, still within the grace of the last verified heartbeat, meets `rise`
    /// on kernel counts alone: the peer must stay lost.
    #[test]
    fn kernel_heartbeats_after_a_loss_never_bring_the_peer_back() {
        let config = config();
        let mut sim = Sim::new(config, 1);
        let last = sim.clean_history(ms(5), 2_000, 1);
        let resumed = last.saturating_add(config.unverified_grace / 2);
        sim.run_until(resumed);
        assert_eq!(sim.peer(), PeerState::Lost);
        for i in 0..20u32 {
            sim.evidence(
                resumed.saturating_add(config.interval * i),
                0,
                EvidenceKind::KernelHeartbeat,
            );
        }
        assert_eq!(
            sim.peer(),
            PeerState::Lost,
            "kernel counts revived the peer"
        );
        assert_eq!(sim.count(|e| matches!(e, Event::PeerAlive { .. })), 1);
    }

    #[test]
    fn kernel_heartbeats_never_bring_an_unverified_peer_alive() {
        let config = config();
        let mut sim = Sim::new(config, 1);
        for i in 1..=100 {
            sim.evidence(ms(5 * i), 0, EvidenceKind::KernelHeartbeat);
        }
        assert_eq!(
            sim.peer(),
            PeerState::Lost,
            "nothing verified: not even daemon-down"
        );
        assert_eq!(sim.detector.ignored_unverified(), 100);
        for i in 0..config.rise {
            sim.evidence(
                ms(505 + 5 * u64::from(i)),
                0,
                EvidenceKind::VerifiedHeartbeat,
            );
        }
        assert_eq!(sim.peer(), PeerState::Alive);
    }

    #[test]
    fn a_stalled_daemon_fed_kernel_timestamps_late_sees_no_silence() {
        let config = config();
        let mut sim = Sim::new(config, 2);
        let last = sim.clean_history(ms(5), 2_000, 2);
        sim.events.clear();
        // 300 ms without running; afterwards the maps and sockets are read, evidence
        // first, then the timeout.
        let stall_end = last.saturating_add(Duration::from_millis(300));
        for i in 1..=60u32 {
            let at = last.saturating_add(config.interval * i);
            for slot in 0..2 {
                sim.detector
                    .handle_evidence(at, link(slot), EvidenceKind::KernelHeartbeat)
                    .unwrap();
            }
        }
        sim.detector.handle_timeout(stall_end);
        sim.drain();
        assert_eq!(sim.events, [], "no false link down, no false peer lost");
        assert_eq!(sim.peer(), PeerState::Alive);
    }

    #[test]
    fn evidence_never_takes_anything_down() {
        let mut sim = Sim::new(config(), 2);
        let last = sim.clean_history(ms(5), 200, 2);
        sim.events.clear();
        // Link 0's evidence read first, far ahead of link 1's (which is still to be fed).
        let late = last.saturating_add(Duration::from_secs(1));
        sim.detector
            .handle_evidence(late, link(0), EvidenceKind::VerifiedHeartbeat)
            .unwrap();
        sim.drain();
        assert_eq!(sim.events, []);
        sim.detector.handle_timeout(late);
        sim.drain();
        assert!(
            matches!(sim.events[..], [Event::LinkDown { link: l, .. }, Event::Degraded { .. }] if l == link(1))
        );
    }

    #[test]
    fn hearing_and_status_report_the_links() {
        let mut sim = Sim::new(config(), 2);
        assert_eq!(
            sim.detector.hearing()[..3],
            [LinkHearing::Down, LinkHearing::Down, LinkHearing::Unused]
        );
        for i in 1..=3 {
            sim.evidence(ms(5 * i), 1, EvidenceKind::VerifiedHeartbeat);
        }
        assert_eq!(
            sim.detector.hearing()[..3],
            [LinkHearing::Down, LinkHearing::Up, LinkHearing::Unused]
        );
        let status = sim.detector.link_status(link(1)).unwrap();
        assert!(status.carrier_up);
        assert_eq!(status.rise_required, 3);
        assert_eq!(status.penalty, 1.0, "one transition");
        assert!(
            status.loss.is_some_and(|loss| loss > 0.0),
            "two gaps are little evidence"
        );
        assert_eq!(status.newest_evidence.map(|e| e.at), Some(ms(15)));
        assert_eq!(sim.detector.now(), ms(15));
        assert_eq!(sim.detector.config(), &config());
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut sim = Sim::new(config(), 1);
        sim.clean_history(ms(5), 10, 1);
        sim.detector.handle_timeout(ms(1));
        assert_eq!(sim.detector.now(), ms(50));
    }
}
