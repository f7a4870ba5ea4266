//! The decisions of [`Cluster`], re-evaluated from the current facts after every input
//! (level-triggered: a missed edge cannot leave a decision untaken).

use super::rules::{designated, outranks};
use super::{
    Abandon, AcquireReason, Action, Claim, Cluster, CommandError, Event, Fence, Found, Owner, Push,
    ReleaseReason, State, Switchover, SwitchoverPlan, SwitchoverReason, SwitchoverStep,
};
use crate::core::detector::PeerState;
use crate::core::time::Instant;
use crate::core::wire::{Flags, ResourceHealth, Role};

/// Rounds of re-evaluation after one input; each round changes the state or stops, and
/// a claim needs at most claim → acquire, so a few rounds always settle.
const ROUNDS: usize = 4;

impl Cluster {
    pub(super) fn advance(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    pub(super) fn adopt(&mut self, found: Found) {
        self.state = match found {
            Found::Running => State::Primary { epoch: self.epoch },
            Found::Stopped => State::Secondary,
            Found::Partial => {
                self.actions.push_back(Action::Release {
                    reason: ReleaseReason::Partial,
                });
                State::Releasing { epoch: self.epoch }
            }
        };
    }

    /// Starts the group again in place under the epoch this node holds (see
    /// [`AcquireReason::Repair`]).
    pub(super) fn repair(&mut self, now: Instant) {
        self.start_acquiring(now, self.epoch, AcquireReason::Repair);
    }

    pub(super) fn evaluate(&mut self, now: Instant) {
        if self
            .failed_until
            .is_some_and(|until| now >= until && !self.group_failed)
        {
            self.failed_until = None;
        }
        if self.maintenance || self.awaiting_survey {
            return;
        }
        for _ in 0..ROUNDS {
            let before = (self.state, self.switchover);
            self.resolve_conflict(now);
            self.step_witness(now);
            self.step_switchover(now);
            match self.state {
                State::Secondary => self.consider_claim(now),
                State::Claiming(claim) => self.progress_claim(now, claim),
                State::Primary { epoch } => self.consider_release(now, epoch),
                State::Acquiring { .. } | State::Releasing { .. } => {}
            }
            if before == (self.state, self.switchover) {
                break;
            }
        }
    }

    /// Adopts a higher epoch; makes the lower of two claims give way.
    fn resolve_conflict(&mut self, now: Instant) {
        let Some(peer) = self.peer.advert else { return };
        if peer.epoch > self.epoch {
            self.epoch = peer.epoch;
            if self.state == State::Secondary {
                self.actions
                    .push_back(Action::PersistEpoch { epoch: peer.epoch });
            }
        }
        // Only a peer heard now (alive, or returning: an advert since it was lost) claims
        // anything: the last advert of a lost peer says what it held before it was lost
        // (and fenced, or released for isolation).
        let heard_now = self.peer.state == PeerState::Alive
            || self.peer.heard_at.is_some_and(|at| at >= self.peer.since);
        if peer.role != Role::Primary || !heard_now {
            return;
        }
        let me = self.settings.node_id;
        let peer_rank = (peer.epoch, self.settings.peer_id);
        match self.state {
            State::Claiming(claim) if outranks(peer_rank, (claim.epoch, me)) => {
                self.abandon(now, claim, Abandon::Outranked);
            }
            State::Acquiring { epoch, .. } | State::Primary { epoch } => {
                let we_yield = outranks(peer_rank, (epoch, me));
                if self.conflict != Some((epoch, peer.epoch)) {
                    self.conflict = Some((epoch, peer.epoch));
                    self.events.push_back(Event::SplitBrain {
                        at: now,
                        ours: epoch,
                        peers: peer.epoch,
                        we_yield,
                    });
                }
                if !we_yield {
                    return;
                }
                if let State::Acquiring { epoch, reason, .. } = self.state {
                    self.state = State::Acquiring {
                        epoch,
                        reason,
                        then: Some(ReleaseReason::Outranked),
                    };
                } else {
                    self.release(now, epoch, ReleaseReason::Outranked);
                }
            }
            State::Claiming(_) | State::Secondary | State::Releasing { .. } => {}
        }
    }

    /// Probes the witness while the peer is lost; tracks isolation.
    fn step_witness(&mut self, now: Instant) {
        if self.peer.state != PeerState::Lost {
            if self.witness.isolated_since.is_some() {
                self.events.push_back(Event::Isolation {
                    at: now,
                    isolated: false,
                });
            }
            self.witness = super::Witness::default();
            return;
        }
        let s = &self.settings;
        if let Some(sent) = self.witness.pending
            && now >= sent.saturating_add(s.witness_timeout)
        {
            self.witness.pending = None;
            self.record_witness(now, false);
        }
        let due = self
            .witness
            .last
            .is_none_or(|(at, _)| now >= at.saturating_add(self.settings.witness_interval));
        if self.witness.pending.is_none() && due {
            self.witness.pending = Some(now);
            self.actions.push_back(Action::ProbeWitness);
        }
    }

    pub(super) fn record_witness(&mut self, now: Instant, reachable: bool) {
        self.witness.last = Some((now, reachable));
        match (reachable, self.witness.isolated_since) {
            (false, None) => {
                self.witness.isolated_since = Some(now);
                self.events.push_back(Event::Isolation {
                    at: now,
                    isolated: true,
                });
            }
            (true, Some(_)) => {
                self.witness.isolated_since = None;
                self.events.push_back(Event::Isolation {
                    at: now,
                    isolated: false,
                });
            }
            (false, Some(_)) | (true, None) => {}
        }
    }

    /// The witness answered since the peer was lost (`Some(at)` of the latest answer),
    /// or failed to (`None` with isolation).
    fn witness_reachable(&self) -> Option<Instant> {
        match self.witness.last {
            Some((at, true)) if at >= self.peer.since => Some(at),
            _ => None,
        }
    }

    fn isolated(&self) -> bool {
        self.witness.isolated_since.is_some()
    }

    /// The peer is lost, but an advert arrived since: it is coming back.
    pub(super) fn peer_returning(&self) -> bool {
        self.peer.state == PeerState::Lost
            && self.peer.heard_at.is_some_and(|at| at >= self.peer.since)
    }

    /// Not in standby, disk usable, no failure mark.
    fn eligible(&self) -> bool {
        !self.standby && self.disk_usable && self.failed_until.is_none() && !self.group_failed
    }

    /// The peer is alive, secondary, and able to take the group.
    fn peer_can_receive(&self) -> bool {
        self.peer.state == PeerState::Alive
            && self.peer.advert.is_some_and(|peer| {
                peer.role == Role::Secondary
                    && !peer.flags.contains(Flags::STANDBY)
                    && !peer.flags.contains(Flags::MAINTENANCE)
                    && matches!(
                        peer.health,
                        ResourceHealth::Healthy | ResourceHealth::Degraded
                    )
            })
    }

    fn consider_claim(&mut self, now: Instant) {
        if matches!(self.switchover, Some(Switchover::Push { .. })) {
            return;
        }
        let eligible = self.eligible();
        match self.peer.state {
            PeerState::Lost => {
                if matches!(self.blocked, Some(Abandon::FenceFailed | Abandon::Timeout)) {
                    // A failed fence or an unanswered claim is not retried until the
                    // peer's state changes: no fence loop.
                } else if !eligible {
                    self.block(now, Abandon::NotEligible);
                } else if self.startup_wait_until().is_some() {
                    self.block(now, Abandon::StartupWait);
                } else if self.peer_returning() {
                    // Its links are rising; the detector will call it alive.
                } else if let Some(at) = self.witness_reachable() {
                    self.claim(now, AcquireReason::PeerLost, Some(at));
                } else if self.isolated() {
                    self.block(now, Abandon::Isolated);
                }
            }
            PeerState::Alive => {
                let Some(peer) = self.peer.advert else { return };
                if peer.role != Role::Secondary || !eligible {
                    return;
                }
                let released_for_us = peer.flags.contains(Flags::SWITCHOVER_REQUEST);
                match self.switchover {
                    Some(Switchover::Receive { .. }) if released_for_us => {
                        self.claim(now, AcquireReason::Switchover, None);
                    }
                    None if !released_for_us => {
                        let peer_eligible = !peer.flags.contains(Flags::STANDBY)
                            && !peer.flags.contains(Flags::MAINTENANCE)
                            && peer.health == ResourceHealth::Healthy;
                        if designated(&self.settings, eligible, peer_eligible)
                            == Some(self.settings.node_id)
                        {
                            self.claim(now, AcquireReason::NoOwner, None);
                        }
                    }
                    _ => {}
                }
            }
            PeerState::Unknown | PeerState::DaemonDown => {}
        }
    }

    fn block(&mut self, now: Instant, cause: Abandon) {
        if self.blocked != Some(cause) {
            self.blocked = Some(cause);
            self.events
                .push_back(Event::TakeoverBlocked { at: now, cause });
        }
    }

    fn claim(&mut self, now: Instant, reason: AcquireReason, witness_ok: Option<Instant>) {
        let prior = self.epoch;
        self.blocked = None;
        self.epoch += 1;
        let epoch = self.epoch;
        self.state = State::Claiming(Claim {
            epoch,
            prior,
            reason,
            started: now,
            announced: None,
            witness_ok,
            fence: Fence::Idle,
        });
        self.actions.push_back(Action::PersistEpoch { epoch });
        self.events.push_back(Event::Claiming {
            at: now,
            epoch,
            reason,
        });
    }

    pub(super) fn ack_deadline(&self, claim: Claim) -> Instant {
        let since = match self.peer.state {
            PeerState::Lost => claim.started,
            PeerState::Unknown | PeerState::Alive | PeerState::DaemonDown => {
                claim.started.max(self.peer.since)
            }
        };
        let hold = if self.settings.fence {
            self.settings.witness_timeout
        } else {
            self.settings.takeover_hold()
        };
        since
            .saturating_add(self.settings.switchover_timeout)
            .saturating_add(hold)
    }

    fn progress_claim(&mut self, now: Instant, mut claim: Claim) {
        if !self.eligible() {
            return self.abandon(now, claim, Abandon::NotEligible);
        }
        if now >= self.ack_deadline(claim) {
            return self.abandon(now, claim, Abandon::Timeout);
        }
        match self.peer.state {
            PeerState::DaemonDown => self.abandon(now, claim, Abandon::PeerDaemonDown),
            PeerState::Lost => {
                if self.isolated() {
                    return self.abandon(now, claim, Abandon::Isolated);
                }
                if claim.witness_ok.is_none() {
                    claim.witness_ok = self.witness_reachable();
                    self.state = State::Claiming(claim);
                }
                let (Some(announced), Some(ok)) = (claim.announced, claim.witness_ok) else {
                    return;
                };
                if self.settings.fence {
                    match claim.fence {
                        Fence::Idle => {
                            claim.fence = Fence::Pending;
                            self.state = State::Claiming(claim);
                            self.actions.push_back(Action::FencePeer);
                        }
                        Fence::Pending => {}
                        Fence::Done => self.acquire(now, claim),
                    }
                } else if now
                    >= announced
                        .max(ok)
                        .saturating_add(self.settings.takeover_hold())
                {
                    self.acquire(now, claim);
                }
            }
            PeerState::Alive | PeerState::Unknown => {
                let acknowledged = self
                    .peer
                    .advert
                    .is_some_and(|peer| peer.role == Role::Secondary && peer.epoch >= claim.epoch);
                if claim.announced.is_some() && acknowledged {
                    self.acquire(now, claim);
                }
            }
        }
    }

    fn acquire(&mut self, now: Instant, claim: Claim) {
        let Claim { epoch, reason, .. } = claim;
        self.start_acquiring(now, epoch, reason);
    }

    fn start_acquiring(&mut self, now: Instant, epoch: u64, reason: AcquireReason) {
        self.state = State::Acquiring {
            epoch,
            reason,
            then: None,
        };
        self.actions.push_back(Action::Acquire { epoch, reason });
        self.events.push_back(Event::Acquiring {
            at: now,
            epoch,
            reason,
        });
    }

    pub(super) fn abandon(&mut self, now: Instant, claim: Claim, cause: Abandon) {
        self.state = State::Secondary;
        if matches!(cause, Abandon::FenceFailed | Abandon::Timeout) {
            self.block(now, cause);
        }
        self.events.push_back(Event::ClaimAbandoned {
            at: now,
            epoch: claim.epoch,
            cause,
        });
    }

    fn consider_release(&mut self, now: Instant, epoch: u64) {
        if self.peer.state == PeerState::Lost
            && !self.peer_returning()
            && self
                .witness
                .isolated_since
                .is_some_and(|since| now >= since.saturating_add(self.settings.isolation_timeout))
        {
            return self.release(now, epoch, ReleaseReason::Isolated);
        }
        if self.switchover.is_some() {
            return;
        }
        if self.standby {
            if self.peer_can_receive() {
                self.start_push(now, epoch, SwitchoverReason::Standby);
            } else {
                self.release(now, epoch, ReleaseReason::Standby);
            }
        } else if self.group_failed && self.peer_can_receive() {
            self.start_push(now, epoch, SwitchoverReason::LocalFailure);
        }
    }

    pub(super) fn release(&mut self, now: Instant, epoch: u64, reason: ReleaseReason) {
        self.state = State::Releasing { epoch };
        self.actions.push_back(Action::Release { reason });
        self.events.push_back(Event::Releasing { at: now, reason });
    }

    pub(super) fn become_secondary(&mut self, now: Instant) {
        self.state = State::Secondary;
        self.group_failed = false;
        self.events.push_back(Event::Secondary { at: now });
    }

    fn start_push(&mut self, now: Instant, from: u64, reason: SwitchoverReason) {
        self.switchover = Some(Switchover::Push {
            reason,
            phase: Push::Requested,
            from,
            deadline: now.saturating_add(self.settings.switchover_timeout),
        });
        self.switchover_event(now, SwitchoverStep::Requested { reason });
    }

    pub(super) fn switchover_event(&mut self, now: Instant, step: SwitchoverStep) {
        self.events.push_back(Event::Switchover { at: now, step });
    }

    /// Ends the switchover: completed or failed, with the holder as we know it.
    pub(super) fn end_switchover(&mut self, now: Instant, completed: bool) {
        self.switchover = None;
        let owner = self.owner();
        let step = if completed {
            SwitchoverStep::Completed { owner }
        } else {
            SwitchoverStep::Failed { owner }
        };
        self.switchover_event(now, step);
    }

    fn step_switchover(&mut self, now: Instant) {
        let peer = self.peer.advert;
        let peer_alive = self.peer.state == PeerState::Alive;
        let peer_flag = |flag| peer.is_some_and(|p| p.flags.contains(flag));
        let peer_role = peer.map(|p| p.role);
        if self.switchover.is_some() {
            self.failback_since = None;
        }
        match self.switchover {
            None => self.consider_switchover(now),
            Some(Switchover::Push {
                reason,
                phase,
                from,
                deadline,
            }) => match phase {
                Push::Requested => {
                    if self.state != (State::Primary { epoch: from })
                        || !peer_alive
                        || now >= deadline
                    {
                        self.end_switchover(now, false);
                    } else if peer_role == Some(Role::Secondary) && peer_flag(Flags::SWITCHOVER_ACK)
                    {
                        self.switchover = Some(Switchover::Push {
                            reason,
                            phase: Push::Releasing,
                            from,
                            deadline,
                        });
                        self.release(now, from, ReleaseReason::Switchover);
                    }
                }
                Push::Releasing => {}
                Push::Released => {
                    let taken = peer.is_some_and(|p| p.role == Role::Primary && p.epoch > from);
                    if taken {
                        self.end_switchover(now, true);
                    } else if now >= deadline || !peer_alive || self.state != State::Secondary {
                        self.end_switchover(now, false);
                    }
                }
            },
            Some(Switchover::Pull { deadline, .. }) => {
                if peer_role == Some(Role::Primary) && peer_flag(Flags::SWITCHOVER_REQUEST) {
                    self.receive(now);
                } else if now >= deadline || !peer_alive || self.state != State::Secondary {
                    self.end_switchover(now, false);
                }
            }
            Some(Switchover::Receive { deadline }) => {
                let cancelled = peer_role == Some(Role::Primary)
                    && !peer_flag(Flags::SWITCHOVER_REQUEST)
                    && !matches!(self.state, State::Claiming(_));
                if matches!(self.state, State::Primary { .. }) {
                    self.end_switchover(now, true);
                } else if now >= deadline
                    || !peer_alive
                    || cancelled
                    || (self.state == State::Secondary && !self.eligible())
                {
                    self.end_switchover(now, false);
                }
            }
        }
    }

    /// No switchover yet: answer the peer's request or pull (failback).
    fn consider_switchover(&mut self, now: Instant) {
        let Some(peer) = self.peer.advert else { return };
        let peer_alive = self.peer.state == PeerState::Alive;
        let requested = peer.flags.contains(Flags::SWITCHOVER_REQUEST);
        match self.state {
            State::Primary { epoch } if peer_alive && requested && peer.role == Role::Secondary => {
                if self.peer_can_receive() && !self.group_failed {
                    self.start_push(now, epoch, SwitchoverReason::PeerRequest);
                }
            }
            State::Secondary if peer_alive && requested && peer.role == Role::Primary => {
                if self.eligible() {
                    self.receive(now);
                }
            }
            State::Secondary => self.consider_failback(now, peer),
            State::Primary { .. }
            | State::Claiming(_)
            | State::Acquiring { .. }
            | State::Releasing { .. } => self.failback_since = None,
        }
    }

    fn consider_failback(&mut self, now: Instant, peer: super::Advert) {
        let wanted = self.settings.preferred_node == Some(self.settings.node_id)
            && self.eligible()
            && self.peer.state == PeerState::Alive
            && peer.role == Role::Primary
            && peer.health == ResourceHealth::Healthy
            && !peer.flags.contains(Flags::SWITCHOVER_REQUEST);
        if !wanted {
            self.failback_since = None;
            return;
        }
        let since = *self.failback_since.get_or_insert(now);
        if now >= since.saturating_add(self.settings.failback_delay) {
            self.failback_since = None;
            self.start_pull(now, SwitchoverReason::Failback);
        }
    }

    fn start_pull(&mut self, now: Instant, reason: SwitchoverReason) {
        self.switchover = Some(Switchover::Pull {
            reason,
            deadline: now.saturating_add(self.settings.switchover_timeout),
        });
        self.switchover_event(now, SwitchoverStep::Requested { reason });
    }

    fn receive(&mut self, now: Instant) {
        let s = &self.settings;
        let deadline = now
            .saturating_add(s.switchover_timeout)
            .saturating_add(s.release_timeout)
            .saturating_add(s.switchover_timeout);
        self.switchover = Some(Switchover::Receive { deadline });
        self.switchover_event(now, SwitchoverStep::Acknowledged);
    }

    pub(super) fn switchover_command(
        &mut self,
        now: Instant,
        to: Option<u16>,
    ) -> Result<(), CommandError> {
        self.check_switchover(to)?;
        match self.state {
            State::Primary { epoch } => self.start_push(now, epoch, SwitchoverReason::Operator),
            State::Secondary
            | State::Claiming(_)
            | State::Acquiring { .. }
            | State::Releasing { .. } => self.start_pull(now, SwitchoverReason::Operator),
        }
        Ok(())
    }

    /// What a switchover to `to` would do, or why it is refused; changes nothing.
    pub fn check_switchover(&self, to: Option<u16>) -> Result<SwitchoverPlan, CommandError> {
        let (me, peer_id) = (self.settings.node_id, self.settings.peer_id);
        if let Some(to) = to
            && to != me
            && to != peer_id
        {
            return Err(CommandError::UnknownNode(to));
        }
        if self.maintenance {
            return Err(CommandError::Maintenance);
        }
        let owner = match (self.state, self.owner()) {
            (State::Primary { epoch }, _) => Some(epoch),
            (State::Secondary, Owner::Peer) => None,
            (State::Secondary, Owner::Nobody | Owner::Us) => return Err(CommandError::NoOwner),
            (State::Claiming(_) | State::Acquiring { .. } | State::Releasing { .. }, _) => {
                return Err(CommandError::Busy);
            }
        };
        if self.switchover.is_some() {
            return Err(CommandError::Busy);
        }
        let holder = if owner.is_some() { me } else { peer_id };
        let target = to.unwrap_or(if owner.is_some() { peer_id } else { me });
        if target == holder {
            return Err(CommandError::AlreadyThere(target));
        }
        if self.peer.state != PeerState::Alive {
            return Err(CommandError::PeerNotAlive);
        }
        if owner.is_some() && !self.peer_can_receive() {
            return Err(CommandError::NotEligible(peer_id));
        }
        if owner.is_none() && !self.eligible() {
            return Err(CommandError::NotEligible(me));
        }
        Ok(SwitchoverPlan {
            holder,
            target,
            epoch: self.epoch + 1,
        })
    }
}
