//! The role machine of one node: who holds the resource group, decided from the
//! detector's view of the peer, the peer's heartbeat contents, the witness, the group's
//! results and the operator. Pure: time is a parameter, actions leave as data.
//!
//! # Rules
//!
//! - **Claims.** A node acquires the group only through a claim: it raises its epoch
//!   ([`Action::PersistEpoch`]; nothing more happens until `handle_epoch_persisted`
//!   confirms it), then *announces* it (its [`Advert`] says `Primary` at the new epoch),
//!   and acquires only when one of these holds:
//!   - *acknowledged*: the peer's latest advert is `Secondary` at an epoch at least the
//!     claim's. A secondary adopts the highest epoch it sees, so such an advert was sent
//!     after the peer saw our claim, while it did not hold the group (a `Secondary` advert
//!     always means "not holding, not claiming");
//!   - *peer lost*: the detector reports the peer lost on every link
//!     ([`crate::core::detector::Event::PeerLost`]; `PeerDaemonDown` is never a reason and
//!     aborts a claim), the witness answered after the loss, and either the fence
//!     command succeeded (when configured; its failure aborts) or the
//!     [`ClusterSettings::takeover_hold`] passed since both the announcement and the
//!     witness's answer, long enough for an isolated peer to have released.
//! - **Takeover** on peer loss needs: not in standby or maintenance, our disk usable, no
//!   failure mark, the witness reachable, and the peer heard since this node started or
//!   [`ClusterSettings::startup_wait`] passed since then. Otherwise
//!   [`Event::TakeoverBlocked`].
//! - **Start-up wait.** A node that has not heard its peer (a verified advert, or the
//!   detector's `PeerAlive`) since it started neither fences nor takes over until
//!   `startup_wait` has passed: booted together, the slower peer is still starting, not
//!   lost. A group found running at start is kept meanwhile (the isolation rule still
//!   applies to it). The wait ends early when the peer is heard, or when the operator
//!   ends it ([`Command::EndStartupWait`]: the peer is known not to be starting).
//! - **Returning peer.** A peer whose advert arrived after the detector called it lost
//!   is coming back (its links are rising): no claim starts on that loss, and a primary
//!   that hears it is not isolated from it (no isolation release).
//! - **Isolation.** While the peer is lost the witness is probed every
//!   `witness_interval`. A primary whose probes fail for `isolation_timeout` releases.
//!   A node without the witness never claims.
//! - **Both claim.** When the peer's advert says `Primary` and so do we, the lower epoch
//!   (on a tie, the lower node id) gives way at once: abandons its claim, or releases
//!   (after its acquire ends, if one is under way).
//! - **No owner.** Both alive, neither holding nor switching: the designated node
//!   (preferred if eligible, else the lowest eligible id) claims.
//! - **No automatic failback** unless `preferred_node` is set: then the preferred node,
//!   eligible, with a healthy peer holding the group, pulls it after `failback_delay`.
//! - **Local failure.** A group that failed here is handed to the peer by a switchover
//!   when the peer can take it; a failed acquire or group marks this node ineligible for
//!   `failure_timeout`.
//! - **Maintenance** stops every action (even witness probes); when it ends the group
//!   is surveyed ([`Action::SurveyGroup`]) and the survey replaces what the core knew,
//!   except that a holder which finds part of its group stopped (an operator's hand
//!   during maintenance) starts it again in place, under the epoch it holds
//!   ([`AcquireReason::Repair`]), rather than releasing it.
//! - **Standby**: no claims; a primary hands the group over (or releases it if the peer
//!   cannot take it).
//!
//! # Switchover (over the heartbeat flags)
//!
//! The primary sets `SWITCHOVER_REQUEST` ("take the group"); the secondary, if it can
//! take it, sets `SWITCHOVER_ACK`; the primary releases, then advertises `Secondary` with
//! the request still set and acquires nothing while it is; the secondary claims (the
//! acknowledged path above) and acquires. An operator on the secondary sets the request
//! as a secondary ("hand it to me"), and the primary answers with its own request. Every
//! step has `switchover_timeout`; a timeout or failure drops the flags and reports
//! [`SwitchoverStep::Failed`] with the one holder (or nobody). Two holders are impossible
//! because the secondary acquires only through an acknowledged claim.
//!
//! # Call order
//!
//! Feed inputs with `handle_*` (time never goes backwards; an earlier `now` counts as the
//! latest), call [`Cluster::handle_timeout`] when [`Cluster::poll_timeout`] is due, then
//! drain [`Cluster::poll_action`] and [`Cluster::poll_event`], and put
//! [`Cluster::advertised`] in every heartbeat sent from then on.

mod decide;
pub mod disk;
mod rules;
mod settings;
#[cfg(test)]
mod tests;
mod vocab;

use std::collections::VecDeque;

pub use settings::{ClusterSettings, SettingsError};
pub use vocab::{
    Abandon, AcquireReason, Action, Advert, Command, CommandError, Event, Found, GroupResult,
    Owner, ReleaseReason, SwitchoverPlan, SwitchoverReason, SwitchoverStep,
};

use crate::core::detector::{self, PeerState};
use crate::core::time::Instant;
use crate::core::wire::{Flags, ResourceHealth, Role};

/// Where this node is with the group. The epoch of a claim or a tenure lives in its
/// state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not holding, not claiming.
    Secondary,
    /// Working towards an acquire; the group is stopped here.
    Claiming(Claim),
    /// An acquire run is under way; `then` is a release decided meanwhile.
    Acquiring {
        epoch: u64,
        reason: AcquireReason,
        then: Option<ReleaseReason>,
    },
    /// The group runs here (or, after a failed release, partly runs: still held).
    Primary { epoch: u64 },
    /// A release run is under way.
    Releasing { epoch: u64 },
}

/// A claim in progress. Invariants: `announced` is set only after the epoch is
/// persisted; `witness_ok` is the first witness answer since the claim met a lost peer;
/// `prior < epoch` is what we advertise until the claim is announced, so an unannounced
/// claim never looks like an acknowledgement of a peer's claim at `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    epoch: u64,
    prior: u64,
    reason: AcquireReason,
    started: Instant,
    announced: Option<Instant>,
    witness_ok: Option<Instant>,
    fence: Fence,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fence {
    Idle,
    Pending,
    Done,
}

/// The switchover this node takes part in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Switchover {
    /// We hold (held) the group and hand it over. `from` is our tenure's epoch.
    Push {
        reason: SwitchoverReason,
        phase: Push,
        from: u64,
        deadline: Instant,
    },
    /// We are secondary and asked the primary to hand the group to us.
    Pull {
        reason: SwitchoverReason,
        deadline: Instant,
    },
    /// We acknowledged the peer's request and will take the group.
    Receive { deadline: Instant },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Push {
    Requested,
    Releasing,
    Released,
}

/// What we know of the peer.
#[derive(Clone, Copy, Debug)]
struct Peer {
    state: PeerState,
    since: Instant,
    advert: Option<Advert>,
    /// When the latest advert arrived.
    heard_at: Option<Instant>,
}

/// Witness probing while the peer is lost.
#[derive(Clone, Copy, Debug, Default)]
struct Witness {
    pending: Option<Instant>,
    last: Option<(Instant, bool)>,
    isolated_since: Option<Instant>,
}

/// One node's cluster core. See the module doc for the rules and the call order.
#[derive(Clone, Debug)]
pub struct Cluster {
    settings: ClusterSettings,
    now: Instant,
    /// Highest epoch known (ours, claimed, or the peer's); only rises.
    epoch: u64,
    state: State,
    peer: Peer,
    witness: Witness,
    switchover: Option<Switchover>,
    standby: bool,
    maintenance: bool,
    awaiting_survey: bool,
    disk_usable: bool,
    group_failed: bool,
    failed_until: Option<Instant>,
    failback_since: Option<Instant>,
    blocked: Option<Abandon>,
    conflict: Option<(u64, u64)>,
    /// When this core started (the start-up wait counts from here).
    started: Instant,
    /// The peer was heard (a verified advert or `PeerAlive`) since `started`.
    heard_peer: bool,
    /// The operator ended the start-up wait.
    startup_wait_ended: bool,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Cluster {
    /// The core at `now`, with the epoch read from disk and the group as `found` by a
    /// survey: running is adopted as primary at `epoch`, partial is released first.
    /// The disk counts as usable until `handle_disk` says otherwise.
    pub fn new(
        settings: ClusterSettings,
        now: Instant,
        epoch: u64,
        found: Found,
    ) -> Result<Self, SettingsError> {
        settings.validate()?;
        let mut cluster = Self {
            settings,
            now,
            epoch,
            state: State::Secondary,
            peer: Peer {
                state: PeerState::Unknown,
                since: now,
                advert: None,
                heard_at: None,
            },
            witness: Witness::default(),
            switchover: None,
            standby: false,
            maintenance: false,
            awaiting_survey: false,
            disk_usable: true,
            group_failed: false,
            failed_until: None,
            failback_since: None,
            blocked: None,
            conflict: None,
            started: now,
            heard_peer: false,
            startup_wait_ended: false,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        cluster.adopt(found);
        Ok(cluster)
    }

    /// A detector event. Only the peer's state matters here (link events are reported by
    /// the detector itself).
    pub fn handle_detector(&mut self, now: Instant, event: &detector::Event) {
        let now = self.advance(now);
        let state = match event {
            detector::Event::PeerAlive { .. } => PeerState::Alive,
            detector::Event::PeerDaemonDown { .. } => PeerState::DaemonDown,
            detector::Event::PeerLost { .. } => PeerState::Lost,
            detector::Event::LinkUp { .. }
            | detector::Event::LinkDown { .. }
            | detector::Event::Degraded { .. }
            | detector::Event::AllLinksUp { .. } => return,
        };
        self.heard_peer |= state == PeerState::Alive;
        if state != self.peer.state {
            self.peer.state = state;
            self.peer.since = now;
            self.blocked = None;
        }
        self.evaluate(now);
    }

    /// The contents of a verified, fresh heartbeat from the peer. Acted on even before
    /// the detector calls the peer alive: it is authentic.
    pub fn handle_peer_advert(&mut self, now: Instant, advert: Advert) {
        let now = self.advance(now);
        self.peer.advert = Some(advert);
        self.peer.heard_at = Some(now);
        self.heard_peer = true;
        self.evaluate(now);
    }

    /// A witness probe's result.
    pub fn handle_witness(&mut self, now: Instant, reachable: bool) {
        let now = self.advance(now);
        if self.peer.state == PeerState::Lost {
            self.witness.pending = None;
            self.record_witness(now, reachable);
        }
        self.evaluate(now);
    }

    /// Whether our DRBD disk is usable for a promotion (see [`disk::disk_verdict`]).
    pub fn handle_disk(&mut self, now: Instant, usable: bool) {
        let now = self.advance(now);
        self.disk_usable = usable;
        self.evaluate(now);
    }

    /// `epoch` is durably written. Announces the claim it belongs to.
    pub fn handle_epoch_persisted(&mut self, now: Instant, epoch: u64) {
        let now = self.advance(now);
        if let State::Claiming(claim) = &mut self.state
            && claim.epoch == epoch
            && claim.announced.is_none()
        {
            claim.announced = Some(now);
        }
        self.evaluate(now);
    }

    /// The fence command's result (`true`: the peer is off).
    pub fn handle_fence(&mut self, now: Instant, fenced: bool) {
        let now = self.advance(now);
        if let State::Claiming(claim) = self.state
            && claim.fence == Fence::Pending
        {
            if fenced {
                self.state = State::Claiming(Claim {
                    fence: Fence::Done,
                    ..claim
                });
            } else {
                self.abandon(now, claim, Abandon::FenceFailed);
            }
        }
        self.evaluate(now);
    }

    /// A group run ended, or supervision gave up. Results that do not match the state
    /// (late, or from before a survey) are ignored.
    pub fn handle_group(&mut self, now: Instant, result: GroupResult) {
        let now = self.advance(now);
        match (self.state, result) {
            (State::Acquiring { epoch, then, .. }, GroupResult::Acquired) => {
                self.state = State::Primary { epoch };
                self.group_failed = false;
                self.events.push_back(Event::Primary { at: now, epoch });
                if let Some(reason) = then {
                    self.release(now, epoch, reason);
                }
            }
            (State::Acquiring { epoch, .. }, GroupResult::AcquireFailed { rolled_back }) => {
                self.events.push_back(Event::AcquireFailed {
                    at: now,
                    rolled_back,
                });
                self.failed_until = Some(now.saturating_add(self.settings.failure_timeout));
                if rolled_back {
                    self.become_secondary(now);
                } else {
                    self.state = State::Primary { epoch };
                    self.group_failed = true;
                }
            }
            (State::Releasing { .. }, GroupResult::Released) => {
                self.become_secondary(now);
                if let Some(Switchover::Push {
                    reason,
                    phase: Push::Releasing,
                    from,
                    ..
                }) = self.switchover
                {
                    self.switchover = Some(Switchover::Push {
                        reason,
                        phase: Push::Released,
                        from,
                        deadline: now.saturating_add(self.settings.switchover_timeout),
                    });
                    self.switchover_event(now, SwitchoverStep::Released);
                }
            }
            (State::Releasing { epoch }, GroupResult::ReleaseFailed) => {
                self.state = State::Primary { epoch };
                self.group_failed = true;
                self.events.push_back(Event::ReleaseFailed { at: now });
                if matches!(self.switchover, Some(Switchover::Push { .. })) {
                    self.end_switchover(now, false);
                }
            }
            (State::Primary { .. }, GroupResult::Failed) => {
                self.group_failed = true;
                self.failed_until = Some(now.saturating_add(self.settings.failure_timeout));
                self.events.push_back(Event::GroupFailed { at: now });
            }
            _ => {}
        }
        self.evaluate(now);
    }

    /// The group as found by the survey asked for with [`Action::SurveyGroup`].
    pub fn handle_survey(&mut self, now: Instant, found: Found) {
        let now = self.advance(now);
        if self.awaiting_survey {
            self.awaiting_survey = false;
            let held = matches!(self.state, State::Primary { .. });
            if held && found == Found::Partial {
                self.repair(now);
            } else {
                self.adopt(found);
            }
        }
        self.evaluate(now);
    }

    /// An operator command. A refused command changes nothing.
    pub fn handle_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        let now = self.advance(now);
        match command {
            Command::Standby(on) => self.standby = on,
            Command::Maintenance(true) => {
                self.maintenance = true;
                if let State::Claiming(claim) = self.state {
                    self.abandon(now, claim, Abandon::NotEligible);
                }
                if self.switchover.is_some() {
                    self.end_switchover(now, false);
                }
            }
            Command::Maintenance(false) => {
                if self.maintenance {
                    self.maintenance = false;
                    self.awaiting_survey = true;
                    self.actions.push_back(Action::SurveyGroup);
                }
            }
            Command::Switchover { to } => self.switchover_command(now, to)?,
            Command::EndStartupWait => {
                if self.startup_wait_until().is_none() {
                    return Err(CommandError::NoStartupWait);
                }
                self.startup_wait_ended = true;
            }
        }
        self.evaluate(now);
        Ok(())
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        self.evaluate(now);
    }

    /// When [`Cluster::handle_timeout`] must be called next, if anything can change
    /// without new input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.maintenance || self.awaiting_survey {
            return None;
        }
        let s = &self.settings;
        let mut due: Vec<Instant> = Vec::new();
        if self.peer.state == PeerState::Lost {
            match (self.witness.pending, self.witness.last) {
                (Some(sent), _) => due.push(sent.saturating_add(s.witness_timeout)),
                (None, Some((at, _))) => due.push(at.saturating_add(s.witness_interval)),
                (None, None) => {}
            }
            if let (State::Primary { .. }, Some(since), false) = (
                self.state,
                self.witness.isolated_since,
                self.peer_returning(),
            ) {
                due.push(since.saturating_add(s.isolation_timeout));
            }
            due.extend(self.startup_wait_until());
        }
        if let State::Claiming(claim) = self.state {
            due.push(self.ack_deadline(claim));
            if let (Some(announced), Some(ok), false, PeerState::Lost) =
                (claim.announced, claim.witness_ok, s.fence, self.peer.state)
            {
                due.push(announced.max(ok).saturating_add(s.takeover_hold()));
            }
        }
        // A release run has its own bound (`release_timeout`, enforced by the runtime):
        // the switchover waits for its result, not for the deadline.
        due.extend(self.switchover.and_then(|switchover| match switchover {
            Switchover::Push {
                phase: Push::Releasing,
                ..
            } => None,
            Switchover::Push { deadline, .. }
            | Switchover::Pull { deadline, .. }
            | Switchover::Receive { deadline } => Some(deadline),
        }));
        due.extend(
            self.failback_since
                .map(|since| since.saturating_add(s.failback_delay)),
        );
        due.extend(self.failed_until.filter(|_| !self.group_failed));
        due.into_iter().min()
    }

    /// The next action for the runtime, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next state change, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What our heartbeats must say from now on.
    pub fn advertised(&self) -> Advert {
        let (role, epoch) = match self.state {
            State::Secondary => (Role::Secondary, self.epoch),
            State::Claiming(claim) => match claim.announced {
                Some(_) => (Role::Primary, claim.epoch),
                None => (Role::Secondary, claim.prior),
            },
            State::Acquiring { epoch, .. }
            | State::Primary { epoch }
            | State::Releasing { epoch } => (Role::Primary, epoch),
        };
        let mut flags = Flags::empty();
        if self.standby {
            flags = flags.with(Flags::STANDBY);
        }
        if self.maintenance {
            flags = flags.with(Flags::MAINTENANCE);
        }
        flags = match self.switchover {
            Some(Switchover::Push { .. } | Switchover::Pull { .. }) => {
                flags.with(Flags::SWITCHOVER_REQUEST)
            }
            Some(Switchover::Receive { .. }) => flags.with(Flags::SWITCHOVER_ACK),
            None => flags,
        };
        let health = if self.awaiting_survey {
            ResourceHealth::Unknown
        } else if self.group_failed || self.failed_until.is_some() {
            ResourceHealth::Failed
        } else {
            ResourceHealth::Healthy
        };
        Advert {
            role,
            epoch,
            flags,
            health,
        }
    }

    /// Whether the group is (or may be) active here: from the acquire until the release
    /// is confirmed.
    pub fn holds_group(&self) -> bool {
        matches!(
            self.state,
            State::Acquiring { .. } | State::Primary { .. } | State::Releasing { .. }
        )
    }

    /// Who holds the group, as far as this node knows.
    pub fn owner(&self) -> Owner {
        if self.holds_group() {
            Owner::Us
        } else if self
            .peer
            .advert
            .is_some_and(|peer| peer.role == Role::Primary)
        {
            Owner::Peer
        } else {
            Owner::Nobody
        }
    }

    /// Until when the start-up wait keeps this node from taking over: `None` once the
    /// peer was heard or the wait passed.
    pub fn startup_wait_until(&self) -> Option<Instant> {
        let until = self.started.saturating_add(self.settings.startup_wait);
        (!self.heard_peer && !self.startup_wait_ended && self.now < until).then_some(until)
    }

    /// Why a takeover on peer loss is blocked now, if it is (the latest
    /// [`Event::TakeoverBlocked`] cause while the peer stays in the same state).
    pub fn blocked(&self) -> Option<Abandon> {
        self.blocked
    }

    /// The peer's latest advert, if one arrived.
    pub fn peer_advert(&self) -> Option<Advert> {
        self.peer.advert
    }

    /// Whether our disk is usable for a promotion (as last told by `handle_disk`).
    pub fn disk_usable(&self) -> bool {
        self.disk_usable
    }

    /// The highest epoch known.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The settings in force.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }
}
