//! The cluster core's inputs and outputs, as plain data: what we advertise, what the
//! runtime reports back, what the operator asks, and what the core asks for and reports.

use crate::core::time::Instant;
use crate::core::wire::{Flags, Heartbeat, ResourceHealth, Role};

/// What a node tells its peer in every heartbeat: the role, epoch, flags and health
/// fields of [`Heartbeat`].
///
/// Invariant kept by [`super::Cluster::advertised`]: `role` is [`Role::Primary`] from
/// the moment a claim is announced (its epoch persisted) until the group is confirmed
/// released, so a `Secondary` advert always means "not holding the group, not claiming".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Holding or claiming the group.
    pub role: Role,
    /// The claim's epoch when primary; the highest epoch known when secondary.
    pub epoch: u64,
    /// Standby, maintenance, switchover request/acknowledgement.
    pub flags: Flags,
    /// The group's health on the sender.
    pub health: ResourceHealth,
}

impl From<&Heartbeat> for Advert {
    fn from(heartbeat: &Heartbeat) -> Self {
        Self {
            role: heartbeat.role,
            epoch: heartbeat.epoch,
            flags: heartbeat.flags,
            health: heartbeat.health,
        }
    }
}

/// The local resource group as found by monitoring every member (at start, and after
/// maintenance ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// Every member runs: adopted as it is (primary at the persisted epoch).
    Running,
    /// Every member is stopped.
    Stopped,
    /// Some run, some do not: released (idempotently) before anything else.
    Partial,
}

/// How a group run the core asked for ended, or what supervision concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupResult {
    /// The [`Action::Acquire`] run started every member.
    Acquired,
    /// The acquire run failed; `rolled_back` says whether the rollback left every member
    /// stopped (if not, the group counts as still held here).
    AcquireFailed {
        /// The rollback stopped everything it had started.
        rolled_back: bool,
    },
    /// The [`Action::Release`] run stopped every member.
    Released,
    /// The release run failed: some member still runs, the group counts as held.
    ReleaseFailed,
    /// Supervision gave up on a member of the running group (restarts used up).
    Failed,
}

/// An operator command (from the control socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Move the group to the other node (`to`: the node that should end up holding it;
    /// `None` means "the node that does not hold it now").
    Switchover {
        /// The node that should hold the group afterwards.
        to: Option<u16>,
    },
    /// Standby on (this node will not hold the group) or off.
    Standby(bool),
    /// Maintenance on (monitor only: no action at all) or off.
    Maintenance(bool),
    /// End the start-up wait now: the operator knows the peer is not starting (it is
    /// down for repair, say). A takeover still needs the witness and the fence.
    EndStartupWait,
}

/// What an accepted switchover will do ([`super::Cluster::check_switchover`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SwitchoverPlan {
    /// The node that holds the group now and releases it.
    pub holder: u16,
    /// The node that acquires it.
    pub target: u16,
    /// The epoch the target's tenure will have (at least).
    pub epoch: u64,
}

/// Why an operator command was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandError {
    /// `to` names neither node.
    #[error("switchover: node {0} is not in this cluster")]
    UnknownNode(u16),
    /// The target already holds the group.
    #[error("switchover: node {0} already holds the group")]
    AlreadyThere(u16),
    /// The cluster is in maintenance: no actions.
    #[error("switchover: maintenance is on")]
    Maintenance,
    /// A switchover or a takeover is already under way.
    #[error("switchover: another switchover or takeover is under way")]
    Busy,
    /// The peer is not alive, so there is no handshake partner.
    #[error("switchover: the peer is not alive")]
    PeerNotAlive,
    /// Nobody holds the group, so there is nothing to move.
    #[error("switchover: no node holds the group")]
    NoOwner,
    /// No start-up wait is under way (the peer was heard, or the wait passed).
    #[error(
        "end-startup-wait: no start-up wait is under way (the peer was heard or the wait passed)"
    )]
    NoStartupWait,
    /// The receiving node is in standby, maintenance, failed, or has no usable disk.
    #[error(
        "switchover: node {0} cannot take the group (standby, maintenance, failed or disk not usable)"
    )]
    NotEligible(u16),
}

/// Why the core acquires the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcquireReason {
    /// The peer is lost on every link and the witness answers.
    PeerLost,
    /// Both nodes are alive and nobody holds the group: this node is the designated one.
    NoOwner,
    /// The receiving end of a switchover (operator, standby, failure handover).
    Switchover,
    /// Maintenance ended on the holder and part of the group was found stopped: the
    /// group is started in place (starting a running member does nothing), under the
    /// epoch it already holds.
    Repair,
}

/// Why the core releases the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The peer and the witness are lost for `isolation_timeout`.
    Isolated,
    /// Both nodes claim the group and the peer outranks us (higher epoch, or the same
    /// epoch and a higher node id).
    Outranked,
    /// The handing end of a switchover.
    Switchover,
    /// Standby was turned on and no peer could take the group.
    Standby,
    /// Found partly running (start, end of maintenance): cleaned up.
    Partial,
}

/// Why a switchover was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchoverReason {
    /// An operator command on this node.
    Operator,
    /// The peer asked (an operator command there, or its failback).
    PeerRequest,
    /// Standby was turned on here.
    Standby,
    /// The group failed here and the peer is healthy.
    LocalFailure,
    /// This is the preferred node and `failback_delay` passed.
    Failback,
}

/// Who holds the group, as far as this node knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// This node.
    Us,
    /// The peer.
    Peer,
    /// Nobody.
    Nobody,
}

/// What the runtime must do. Every action except [`Action::SurveyGroup`] and
/// [`Action::ProbeWitness`] has a matching result input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Probe the witness; report with `handle_witness`.
    ProbeWitness,
    /// Run the fence command against the peer; report with `handle_fence`.
    FencePeer,
    /// Write this epoch atomically (write, fsync, rename); report with
    /// `handle_epoch_persisted`. No acquire is issued before it is confirmed.
    PersistEpoch {
        /// The epoch.
        epoch: u64,
    },
    /// Start the group; report with `handle_group`.
    Acquire {
        /// The epoch of this tenure.
        epoch: u64,
        /// Why.
        reason: AcquireReason,
    },
    /// Stop the group; report with `handle_group`.
    Release {
        /// Why.
        reason: ReleaseReason,
    },
    /// Monitor every member and report with `handle_survey`.
    SurveyGroup,
}

/// Why a claim on the group was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Abandon {
    /// The peer claims or holds the group with a higher rank.
    Outranked,
    /// The peer is lost and the witness does not answer.
    Isolated,
    /// The fence command failed.
    FenceFailed,
    /// The peer's daemon is down but its kernel lives: it may still hold the group.
    PeerDaemonDown,
    /// Standby, maintenance, or the disk became unusable.
    NotEligible,
    /// The peer did not acknowledge in time.
    Timeout,
    /// The peer has not been heard since this node started and `startup_wait` has not
    /// passed: it may still be starting.
    StartupWait,
}

/// A state change, for the `events` stream, the logs and the drill timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The peer is lost but we do not take over; `cause` says why.
    TakeoverBlocked {
        /// When.
        at: Instant,
        /// Standby, maintenance, disk, failure mark (`NotEligible`), no witness
        /// (`Isolated`), or the peer not heard yet since start (`StartupWait`).
        cause: Abandon,
    },
    /// We started a claim on the group at `epoch`.
    Claiming {
        /// When.
        at: Instant,
        /// The claim's epoch.
        epoch: u64,
        /// Why.
        reason: AcquireReason,
    },
    /// We gave up a claim before acquiring.
    ClaimAbandoned {
        /// When.
        at: Instant,
        /// The claim's epoch.
        epoch: u64,
        /// Why.
        cause: Abandon,
    },
    /// We asked the runtime to start the group.
    Acquiring {
        /// When.
        at: Instant,
        /// The epoch.
        epoch: u64,
        /// Why.
        reason: AcquireReason,
    },
    /// The group runs here: we are primary.
    Primary {
        /// When.
        at: Instant,
        /// The epoch.
        epoch: u64,
    },
    /// Starting the group failed.
    AcquireFailed {
        /// When.
        at: Instant,
        /// Whether the rollback stopped everything (else we still hold the group).
        rolled_back: bool,
    },
    /// We asked the runtime to stop the group.
    Releasing {
        /// When.
        at: Instant,
        /// Why.
        reason: ReleaseReason,
    },
    /// The group is stopped here: we are secondary.
    Secondary {
        /// When.
        at: Instant,
    },
    /// Stopping the group failed: we still hold it.
    ReleaseFailed {
        /// When.
        at: Instant,
    },
    /// The group failed here (supervision gave up).
    GroupFailed {
        /// When.
        at: Instant,
    },
    /// Both nodes claim the group.
    SplitBrain {
        /// When.
        at: Instant,
        /// Our epoch.
        ours: u64,
        /// The peer's epoch.
        peers: u64,
        /// Whether we are the one that gives way.
        we_yield: bool,
    },
    /// The peer is lost and the witness does not answer (`true`), or answers again.
    Isolation {
        /// When.
        at: Instant,
        /// Isolated or not.
        isolated: bool,
    },
    /// A switchover step on this node.
    Switchover {
        /// When.
        at: Instant,
        /// The step.
        step: SwitchoverStep,
    },
}

/// The steps of a switchover as one node sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SwitchoverStep {
    /// We ask the peer to take the group (as primary), or to hand it to us (as
    /// secondary).
    Requested {
        /// Why.
        reason: SwitchoverReason,
    },
    /// We acknowledged the peer's request: we will take the group.
    Acknowledged,
    /// We released the group for the peer.
    Released,
    /// The group changed hands; `owner` holds it.
    Completed {
        /// The new holder.
        owner: Owner,
    },
    /// The switchover stopped; `owner` is the one clear holder (or nobody).
    Failed {
        /// Who holds the group now.
        owner: Owner,
    },
}
