//! Unit tests of each rule, one core driven by hand.

use std::time::Duration;

use super::*;
use crate::core::evidence::{Evidence, EvidenceKind, LinkId, LinkSet};

fn ms(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}

fn settings(node: u16, peer: u16) -> ClusterSettings {
    let mut s = ClusterSettings::new(node, peer, Duration::from_millis(250));
    s.witness_interval = Duration::from_millis(100);
    s.witness_timeout = Duration::from_millis(50);
    s.isolation_timeout = Duration::from_millis(300);
    s.acquire_timeout = Duration::from_millis(200);
    s.release_timeout = Duration::from_millis(100);
    s.switchover_timeout = Duration::from_millis(500);
    s.failback_delay = Duration::from_millis(1000);
    s.failure_timeout = Duration::from_millis(2000);
    // Off unless a test is about it: most tests lose a peer never heard.
    s.startup_wait = Duration::ZERO;
    s
}

struct Node {
    core: Cluster,
    now: Instant,
}

fn evidence(at: Instant) -> Evidence {
    Evidence {
        link: LinkId::new(0).expect("slot 0"),
        kind: EvidenceKind::VerifiedHeartbeat,
        at,
    }
}

impl Node {
    fn new(settings: ClusterSettings, epoch: u64, found: Found) -> Self {
        let core = Cluster::new(settings, ms(0), epoch, found).expect("valid settings");
        Self { core, now: ms(0) }
    }

    fn at(&mut self, t: u64) -> &mut Self {
        self.now = ms(t);
        self.core.handle_timeout(self.now);
        self
    }

    fn lost(&mut self) -> &mut Self {
        let event = detector::Event::PeerLost {
            at: self.now,
            last_evidence: None,
            carrier_down: LinkSet::empty(),
        };
        self.core.handle_detector(self.now, &event);
        self
    }

    fn alive(&mut self) -> &mut Self {
        let event = detector::Event::PeerAlive {
            at: self.now,
            heartbeat: evidence(self.now),
        };
        self.core.handle_detector(self.now, &event);
        self
    }

    fn daemon_down(&mut self) -> &mut Self {
        let event = detector::Event::PeerDaemonDown {
            at: self.now,
            alive_by: evidence(self.now),
            last_heartbeat: None,
        };
        self.core.handle_detector(self.now, &event);
        self
    }

    fn peer(&mut self, role: Role, epoch: u64, flags: Flags) -> &mut Self {
        let advert = Advert {
            role,
            epoch,
            flags,
            health: ResourceHealth::Healthy,
        };
        self.core.handle_peer_advert(self.now, advert);
        self
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    /// Runs timers up to `t` at their due times; returns the actions.
    fn run_to(&mut self, t: u64) -> Vec<Action> {
        while let Some(due) = self.core.poll_timeout().filter(|&due| due <= ms(t)) {
            self.now = due.max(self.now);
            self.core.handle_timeout(self.now);
            assert!(
                self.core.poll_timeout().is_none_or(|next| next > self.now),
                "timer still due after handling: would spin"
            );
            if !self.core.actions.is_empty() {
                return self.actions();
            }
        }
        self.now = ms(t);
        self.core.handle_timeout(self.now);
        self.actions()
    }
}

const PERSIST_1: Action = Action::PersistEpoch { epoch: 1 };

#[test]
fn settings_are_validated() {
    assert_eq!(settings(1, 1).validate(), Err(SettingsError::SameNodeId(1)));
    let mut s = settings(1, 2);
    s.preferred_node = Some(3);
    assert_eq!(s.validate(), Err(SettingsError::UnknownPreferredNode(3)));
    assert_eq!(settings(1, 2).takeover_hold(), Duration::from_millis(800));
}

#[test]
fn takeover_after_peer_loss_probes_persists_announces_holds_then_acquires() {
    let mut node = Node::new(settings(2, 1), 0, Found::Stopped);
    node.at(10).lost();
    assert_eq!(node.actions(), [Action::ProbeWitness]);
    node.at(20).core.handle_witness(ms(20), true);
    assert_eq!(node.actions(), [PERSIST_1]);
    assert_eq!(
        node.core.advertised().role,
        Role::Secondary,
        "not before persisted"
    );
    node.at(25).core.handle_epoch_persisted(ms(25), 1);
    assert_eq!(node.core.advertised().role, Role::Primary);
    assert_eq!(node.core.advertised().epoch, 1);
    assert!(!node.core.holds_group());
    let hold = node.core.settings().takeover_hold();
    let acquire_at = ms(25).saturating_add(hold);
    let mut actions = Vec::new();
    while !actions.contains(&Action::Acquire {
        epoch: 1,
        reason: AcquireReason::PeerLost,
    }) {
        for action in node.run_to(2_000) {
            if action == Action::ProbeWitness {
                node.core.handle_witness(node.now, true);
            }
            actions.push(action);
        }
        assert!(node.now <= ms(2_000), "no acquire: {actions:?}");
    }
    assert_eq!(node.now, acquire_at, "exactly after the hold");
    assert!(node.core.holds_group());
    node.core.handle_group(node.now, GroupResult::Acquired);
    assert!(node.events().contains(&Event::Primary {
        at: acquire_at,
        epoch: 1
    }));
}

#[test]
fn the_last_advert_of_a_lost_primary_is_no_split_brain() {
    let mut s = settings(2, 1);
    s.fence = true;
    let mut node = Node::new(s, 4, Found::Stopped);
    node.at(5).alive().peer(Role::Primary, 4, Flags::empty());
    node.at(10).lost().core.handle_witness(ms(10), true);
    node.core.handle_epoch_persisted(ms(11), 5);
    node.core.handle_fence(ms(30), true);
    node.core.handle_group(ms(40), GroupResult::Acquired);
    assert!(node.core.holds_group());
    let events = node.events();
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::SplitBrain { .. })),
        "{events:?}"
    );
}

#[test]
fn a_fenced_takeover_needs_no_hold_and_a_failed_fence_aborts() {
    for fenced in [true, false] {
        let mut s = settings(2, 1);
        s.fence = true;
        let mut node = Node::new(s, 4, Found::Stopped);
        node.at(10).lost().core.handle_witness(ms(10), true);
        node.core.handle_epoch_persisted(ms(11), 5);
        assert_eq!(
            node.actions(),
            [
                Action::ProbeWitness,
                Action::PersistEpoch { epoch: 5 },
                Action::FencePeer
            ]
        );
        node.core.handle_fence(ms(30), fenced);
        if fenced {
            assert_eq!(
                node.actions(),
                [Action::Acquire {
                    epoch: 5,
                    reason: AcquireReason::PeerLost
                }]
            );
        } else {
            assert_eq!(node.actions(), []);
            assert!(node.events().contains(&Event::ClaimAbandoned {
                at: ms(30),
                epoch: 5,
                cause: Abandon::FenceFailed
            }));
            assert_eq!(node.core.advertised().role, Role::Secondary);
        }
    }
}

#[test]
fn peer_daemon_down_is_never_a_reason_and_aborts_a_claim() {
    let mut node = Node::new(settings(2, 1), 0, Found::Stopped);
    node.at(10).daemon_down();
    assert_eq!(node.run_to(60_000), []);
    let now = node.now;
    node.lost().core.handle_witness(now, true);
    node.core.handle_epoch_persisted(node.now, 1);
    assert_eq!(node.actions(), [Action::ProbeWitness, PERSIST_1]);
    node.daemon_down();
    assert!(!node.core.holds_group());
    assert_eq!(node.core.advertised().role, Role::Secondary);
    assert!(node.events().iter().any(|e| matches!(
        e,
        Event::ClaimAbandoned {
            cause: Abandon::PeerDaemonDown,
            ..
        }
    )));
    assert_eq!(node.run_to(120_000), []);
}

#[test]
fn an_isolated_secondary_never_claims_and_claims_once_the_witness_answers() {
    let mut node = Node::new(settings(2, 1), 0, Found::Stopped);
    node.at(10).lost();
    assert_eq!(node.actions(), [Action::ProbeWitness]);
    assert_eq!(node.run_to(1_000), [Action::ProbeWitness], "the next one");
    assert_eq!(node.now, ms(160), "the first timed out at 60 ms");
    node.core.handle_witness(node.now, false);
    assert!(node.events().contains(&Event::TakeoverBlocked {
        at: ms(60),
        cause: Abandon::Isolated
    }));
    for _ in 0..5 {
        let actions = node.run_to(5_000);
        assert_eq!(actions, [Action::ProbeWitness]);
        node.core.handle_witness(node.now, false);
        assert_eq!(node.actions(), [], "no claim while isolated");
    }
    node.run_to(5_000);
    node.core.handle_witness(node.now, true);
    assert_eq!(node.actions(), [PERSIST_1]);
}

#[test]
fn an_isolated_primary_releases_after_isolation_timeout_not_before() {
    let mut node = Node::new(settings(1, 2), 3, Found::Running);
    node.at(10).lost();
    node.actions();
    node.core.handle_witness(ms(20), false);
    let release = Action::Release {
        reason: ReleaseReason::Isolated,
    };
    loop {
        let actions = node.run_to(1_000);
        if actions.contains(&release) {
            break;
        }
        assert_eq!(actions, [Action::ProbeWitness]);
        assert!(node.core.holds_group());
        node.core.handle_witness(node.now, false);
    }
    assert_eq!(node.now, ms(320), "isolated since 20 ms, for 300 ms");
    assert!(node.core.holds_group(), "until the release is confirmed");
    node.core.handle_group(ms(330), GroupResult::Released);
    assert!(!node.core.holds_group());
    assert_eq!(node.core.advertised().role, Role::Secondary);
}

#[test]
fn a_primary_that_reaches_the_witness_keeps_the_group() {
    let mut node = Node::new(settings(1, 2), 3, Found::Running);
    node.at(10).lost();
    for _ in 0..50 {
        for action in node.run_to(10_000) {
            assert_eq!(action, Action::ProbeWitness);
            node.core.handle_witness(node.now, true);
        }
    }
    assert!(node.core.holds_group());
}

#[test]
fn standby_maintenance_and_an_unusable_disk_block_a_takeover() {
    type Setup = fn(&mut Node);
    let setups: [(Setup, bool); 3] = [
        (
            |n| {
                n.core
                    .handle_command(ms(1), Command::Standby(true))
                    .unwrap()
            },
            true,
        ),
        (|n| n.core.handle_disk(ms(1), false), true),
        (
            |n| {
                n.core
                    .handle_command(ms(1), Command::Maintenance(true))
                    .unwrap()
            },
            false,
        ),
    ];
    for (setup, probes) in setups {
        let mut node = Node::new(settings(2, 1), 0, Found::Stopped);
        setup(&mut node);
        node.at(10).lost();
        let actions = node.actions();
        assert_eq!(actions.contains(&Action::ProbeWitness), probes);
        node.core.handle_witness(ms(20), true);
        assert_eq!(
            node.run_to(10_000)
                .iter()
                .filter(|a| **a != Action::ProbeWitness)
                .count(),
            0
        );
        assert!(!node.core.holds_group());
    }
}

#[test]
fn both_primary_the_lower_epoch_releases_at_once_tie_lower_id() {
    let mut low = Node::new(settings(1, 2), 3, Found::Running);
    low.at(5).alive().peer(Role::Primary, 4, Flags::empty());
    assert_eq!(
        low.actions(),
        [Action::Release {
            reason: ReleaseReason::Outranked
        }]
    );
    let mut tie_low = Node::new(settings(1, 2), 4, Found::Running);
    tie_low.at(5).alive().peer(Role::Primary, 4, Flags::empty());
    assert_eq!(tie_low.actions().len(), 1, "node 1 gives way on a tie");
    let mut tie_high = Node::new(settings(2, 1), 4, Found::Running);
    tie_high
        .at(5)
        .alive()
        .peer(Role::Primary, 4, Flags::empty());
    assert_eq!(tie_high.actions(), []);
    assert!(tie_high.events().contains(&Event::SplitBrain {
        at: ms(5),
        ours: 4,
        peers: 4,
        we_yield: false
    }));
}

#[test]
fn an_acquire_under_way_is_released_when_it_ends_if_outranked() {
    let mut s = settings(1, 2);
    s.fence = true;
    let mut node = Node::new(s, 0, Found::Stopped);
    node.at(10).lost().core.handle_witness(ms(10), true);
    node.core.handle_epoch_persisted(ms(11), 1);
    node.core.handle_fence(ms(12), true);
    node.actions();
    node.at(20).peer(Role::Primary, 2, Flags::empty());
    assert_eq!(node.actions(), []);
    node.core.handle_group(ms(30), GroupResult::Acquired);
    assert_eq!(
        node.actions(),
        [Action::Release {
            reason: ReleaseReason::Outranked
        }]
    );
}

#[test]
fn with_both_alive_the_designated_node_claims_and_acquires_only_when_acknowledged() {
    let mut node = Node::new(settings(1, 2), 0, Found::Stopped);
    node.at(10).alive().peer(Role::Secondary, 0, Flags::empty());
    assert_eq!(node.actions(), [PERSIST_1]);
    node.core.handle_epoch_persisted(ms(11), 1);
    assert_eq!(node.actions(), [], "the peer has not seen the claim");
    node.peer(Role::Secondary, 0, Flags::empty());
    assert_eq!(node.actions(), []);
    node.peer(Role::Secondary, 1, Flags::empty());
    assert_eq!(
        node.actions(),
        [Action::Acquire {
            epoch: 1,
            reason: AcquireReason::NoOwner
        }]
    );
    let mut other = Node::new(settings(2, 1), 0, Found::Stopped);
    other
        .at(10)
        .alive()
        .peer(Role::Secondary, 0, Flags::empty());
    assert_eq!(other.actions(), [], "node 2 is not designated");
    other.peer(Role::Primary, 1, Flags::empty());
    assert_eq!(
        other.actions(),
        [PERSIST_1],
        "adopts and persists the epoch"
    );
    assert_eq!(
        other.core.advertised().epoch,
        1,
        "which acknowledges the claim"
    );
}

#[test]
fn no_automatic_failback_by_default_and_failback_after_the_delay_when_preferred() {
    let mut node = Node::new(settings(1, 2), 5, Found::Stopped);
    node.at(10).alive().peer(Role::Primary, 5, Flags::empty());
    assert_eq!(node.run_to(60_000), []);
    assert_eq!(node.core.advertised().flags, Flags::empty());

    let mut s = settings(1, 2);
    s.preferred_node = Some(1);
    let mut node = Node::new(s, 5, Found::Stopped);
    node.at(10).alive().peer(Role::Primary, 5, Flags::empty());
    node.run_to(1_009);
    assert_eq!(node.core.advertised().flags, Flags::empty());
    node.run_to(1_010);
    assert_eq!(node.core.advertised().flags, Flags::SWITCHOVER_REQUEST);
    assert!(node.events().contains(&Event::Switchover {
        at: ms(1_010),
        step: SwitchoverStep::Requested {
            reason: SwitchoverReason::Failback
        }
    }));
}

#[test]
fn a_locally_failed_group_is_handed_to_a_healthy_peer() {
    let mut node = Node::new(settings(1, 2), 5, Found::Running);
    node.at(10).alive().peer(Role::Secondary, 5, Flags::empty());
    node.core.handle_group(ms(20), GroupResult::Failed);
    assert_eq!(node.core.advertised().health, ResourceHealth::Failed);
    assert!(
        node.core
            .advertised()
            .flags
            .contains(Flags::SWITCHOVER_REQUEST)
    );
    node.at(30).peer(Role::Secondary, 5, Flags::SWITCHOVER_ACK);
    assert_eq!(
        node.actions(),
        [Action::Release {
            reason: ReleaseReason::Switchover
        }]
    );
}

#[test]
fn a_switchover_without_acknowledgement_times_out_with_us_still_owner() {
    let mut node = Node::new(settings(1, 2), 5, Found::Running);
    node.at(10).alive().peer(Role::Secondary, 5, Flags::empty());
    node.core
        .handle_command(ms(10), Command::Switchover { to: None })
        .unwrap();
    assert_eq!(node.run_to(10_000), []);
    assert!(node.core.holds_group());
    assert!(node.events().contains(&Event::Switchover {
        at: ms(510),
        step: SwitchoverStep::Failed { owner: Owner::Us }
    }));
    assert_eq!(node.core.advertised().flags, Flags::empty());
}

#[test]
fn commands_are_refused_with_a_reason() {
    let mut node = Node::new(settings(1, 2), 5, Found::Running);
    let switch = |to| Command::Switchover { to };
    assert_eq!(
        node.core.handle_command(ms(1), switch(Some(9))),
        Err(CommandError::UnknownNode(9))
    );
    assert_eq!(
        node.core.handle_command(ms(1), switch(Some(1))),
        Err(CommandError::AlreadyThere(1))
    );
    assert_eq!(
        node.core.handle_command(ms(1), switch(None)),
        Err(CommandError::PeerNotAlive)
    );
    node.alive().peer(Role::Secondary, 5, Flags::STANDBY);
    assert_eq!(
        node.core.handle_command(ms(1), switch(None)),
        Err(CommandError::NotEligible(2))
    );
    let mut secondary = Node::new(settings(1, 2), 5, Found::Stopped);
    secondary
        .alive()
        .peer(Role::Secondary, 6, Flags::MAINTENANCE);
    secondary.actions();
    assert_eq!(
        secondary.core.handle_command(ms(1), switch(None)),
        Err(CommandError::Busy),
        "node 1 is claiming as the designated node"
    );
    secondary
        .core
        .handle_command(ms(1), Command::Maintenance(true))
        .unwrap();
    assert_eq!(
        secondary.core.handle_command(ms(1), switch(None)),
        Err(CommandError::Maintenance)
    );
}

#[test]
fn maintenance_takes_no_action_and_ends_with_a_survey() {
    let mut node = Node::new(settings(1, 2), 5, Found::Running);
    node.core
        .handle_command(ms(1), Command::Maintenance(true))
        .unwrap();
    node.at(10).lost();
    node.peer(Role::Primary, 9, Flags::empty());
    assert_eq!(node.run_to(60_000), []);
    assert_eq!(node.core.poll_timeout(), None);
    assert!(node.core.advertised().flags.contains(Flags::MAINTENANCE));
    node.core
        .handle_command(node.now, Command::Maintenance(false))
        .unwrap();
    assert_eq!(node.actions(), [Action::SurveyGroup]);
    assert_eq!(node.core.advertised().health, ResourceHealth::Unknown);
    node.core.handle_survey(node.now, Found::Stopped);
    assert!(!node.core.holds_group());
    assert_eq!(
        node.actions(),
        [Action::PersistEpoch { epoch: 9 }, Action::ProbeWitness],
        "adopts the peer's epoch; the peer is still lost"
    );
}

#[test]
fn a_holder_that_finds_part_of_its_group_stopped_after_maintenance_starts_it_in_place() {
    let mut holder = Node::new(settings(1, 2), 5, Found::Running);
    holder
        .at(10)
        .alive()
        .peer(Role::Secondary, 5, Flags::empty());
    holder.actions();
    holder
        .core
        .handle_command(holder.now, Command::Maintenance(true))
        .unwrap();
    holder
        .core
        .handle_command(holder.now, Command::Maintenance(false))
        .unwrap();
    assert_eq!(holder.actions(), [Action::SurveyGroup]);
    holder.core.handle_survey(holder.now, Found::Partial);
    assert_eq!(
        holder.actions(),
        [Action::Acquire {
            epoch: 5,
            reason: AcquireReason::Repair
        }],
        "started again under the epoch it holds, not released"
    );
    assert!(holder.core.holds_group());

    // A secondary that finds part of the group running cleans it up, as at start.
    let mut secondary = Node::new(settings(2, 1), 5, Found::Stopped);
    secondary
        .at(10)
        .alive()
        .peer(Role::Primary, 5, Flags::empty());
    secondary.actions();
    for on in [true, false] {
        secondary
            .core
            .handle_command(secondary.now, Command::Maintenance(on))
            .unwrap();
    }
    assert_eq!(secondary.actions(), [Action::SurveyGroup]);
    secondary.core.handle_survey(secondary.now, Found::Partial);
    assert_eq!(
        secondary.actions(),
        [Action::Release {
            reason: ReleaseReason::Partial
        }]
    );
}

#[test]
fn a_partly_running_group_is_released_at_start() {
    let mut node = Node::new(settings(1, 2), 5, Found::Partial);
    assert_eq!(
        node.actions(),
        [Action::Release {
            reason: ReleaseReason::Partial
        }]
    );
    assert!(node.core.holds_group());
}

#[test]
fn an_unannounced_claim_never_acknowledges_a_concurrent_claim() {
    // Both nodes think they are designated (stale standby flags) and claim epoch 2.
    let mut node = Node::new(settings(2, 1), 1, Found::Stopped);
    node.at(10).alive().peer(Role::Secondary, 1, Flags::STANDBY);
    node.core
        .handle_command(ms(10), Command::Standby(false))
        .unwrap();
    assert_eq!(node.actions(), [Action::PersistEpoch { epoch: 2 }]);
    assert_eq!(
        (node.core.advertised().role, node.core.advertised().epoch),
        (Role::Secondary, 1),
        "not an acknowledgement of a claim at 2"
    );
    node.peer(Role::Primary, 2, Flags::empty());
    assert_eq!(
        node.core.advertised().epoch,
        1,
        "we outrank node 1: still claiming"
    );
    node.core.handle_epoch_persisted(ms(12), 2);
    assert_eq!(node.core.advertised().role, Role::Primary);
    assert_eq!(node.actions(), [], "no acquire before node 1 acknowledges");
    node.peer(Role::Secondary, 2, Flags::empty());
    assert_eq!(
        node.actions(),
        [Action::Acquire {
            epoch: 2,
            reason: AcquireReason::NoOwner
        }]
    );
}

/// A node whose peer is "lost" without ever having been heard, with the witness
/// answering every probe: runs to `t` and returns the actions other than probes.
fn lost_from_start(node: &mut Node, t: u64) -> Vec<Action> {
    let mut done = Vec::new();
    for _ in 0..1_000 {
        let actions = node.run_to(t);
        if actions.is_empty() {
            break;
        }
        for action in actions {
            if action == Action::ProbeWitness {
                node.core.handle_witness(node.now, true);
            } else {
                done.push(action);
            }
        }
    }
    done.extend(
        node.actions()
            .into_iter()
            .filter(|a| *a != Action::ProbeWitness),
    );
    done
}

#[test]
fn a_peer_never_heard_is_not_fenced_or_taken_over_before_the_startup_wait() {
    let mut s = settings(2, 1);
    s.fence = true;
    s.startup_wait = Duration::from_millis(5_000);
    let mut node = Node::new(s, 0, Found::Stopped);
    node.at(300).lost();
    assert_eq!(lost_from_start(&mut node, 4_999), [], "no claim, no fence");
    assert!(!node.core.holds_group());
    assert_eq!(node.core.blocked(), Some(Abandon::StartupWait));
    assert_eq!(node.core.startup_wait_until(), Some(ms(5_000)));
    assert!(node.events().contains(&Event::TakeoverBlocked {
        at: ms(300),
        cause: Abandon::StartupWait
    }));
    assert_eq!(
        node.core.poll_timeout(),
        Some(ms(5_000)),
        "the wait's end is a timer"
    );
    // The wait passed: the takeover goes on as after any peer loss (witness, fence).
    let actions = lost_from_start(&mut node, 5_000);
    assert_eq!(actions, [PERSIST_1]);
    node.core.handle_epoch_persisted(ms(5_000), 1);
    assert_eq!(node.actions(), [Action::FencePeer]);
    assert_eq!(node.core.startup_wait_until(), None);
    assert_eq!(node.core.blocked(), None);
}

#[test]
fn the_startup_wait_still_needs_the_witness_afterwards() {
    let mut s = settings(2, 1);
    s.startup_wait = Duration::from_millis(1_000);
    let mut node = Node::new(s, 0, Found::Stopped);
    node.at(100).lost();
    for _ in 0..100 {
        for action in node.run_to(3_000) {
            assert_eq!(action, Action::ProbeWitness, "no claim without the witness");
            node.core.handle_witness(node.now, false);
        }
    }
    assert!(!node.core.holds_group());
    assert_eq!(node.core.blocked(), Some(Abandon::Isolated));
}

#[test]
fn a_peer_heard_since_start_ends_the_wait_and_its_loss_is_acted_on_at_once() {
    let mut s = settings(2, 1);
    s.startup_wait = Duration::from_millis(60_000);
    let mut node = Node::new(s, 0, Found::Stopped);
    node.at(100).peer(Role::Primary, 3, Flags::empty()).alive();
    assert_eq!(node.core.startup_wait_until(), None);
    assert_eq!(
        node.actions(),
        [Action::PersistEpoch { epoch: 3 }],
        "its epoch adopted"
    );
    node.at(500).lost();
    assert_eq!(
        lost_from_start(&mut node, 600),
        [Action::PersistEpoch { epoch: 4 }]
    );
}

#[test]
fn a_peer_advert_alone_counts_as_heard() {
    let mut s = settings(2, 1);
    s.startup_wait = Duration::from_millis(60_000);
    let mut node = Node::new(s, 0, Found::Stopped);
    node.at(100).peer(Role::Secondary, 0, Flags::empty());
    assert_eq!(node.core.startup_wait_until(), None);
}

#[test]
fn a_group_running_at_start_is_kept_through_the_startup_wait_and_after() {
    let mut s = settings(1, 2);
    s.startup_wait = Duration::from_millis(5_000);
    let mut node = Node::new(s, 3, Found::Running);
    node.at(300).lost();
    assert_eq!(lost_from_start(&mut node, 20_000), []);
    assert!(node.core.holds_group());
    assert_eq!(node.core.advertised().role, Role::Primary);
    assert_eq!(node.core.advertised().epoch, 3);
}

#[test]
fn a_lost_peer_heard_again_is_returning_and_not_claimed_on() {
    let mut s = settings(2, 1);
    s.fence = true;
    let mut node = Node::new(s, 0, Found::Stopped);
    node.at(10).lost();
    node.at(20).peer(Role::Secondary, 0, Flags::empty());
    assert_eq!(lost_from_start(&mut node, 2_000), [], "no claim, no fence");
    node.alive();
    assert_eq!(node.core.peer.state, PeerState::Alive);
}

#[test]
fn a_primary_that_hears_its_lost_peer_again_is_not_isolated() {
    let mut node = Node::new(settings(1, 2), 3, Found::Running);
    node.at(10).lost();
    node.actions();
    node.core.handle_witness(ms(20), false);
    node.at(30).peer(Role::Secondary, 3, Flags::empty());
    for _ in 0..50 {
        for action in node.run_to(5_000) {
            assert_eq!(action, Action::ProbeWitness, "no release");
            node.core.handle_witness(node.now, false);
        }
    }
    assert!(node.core.holds_group());
}

#[test]
fn the_operator_can_end_the_startup_wait_and_the_witness_is_still_needed() {
    let mut s = settings(2, 1);
    s.startup_wait = Duration::from_millis(60_000);
    let mut node = Node::new(s, 0, Found::Stopped);
    node.at(300).lost();
    let answer = |node: &mut Node, t: u64, reachable: bool| -> Vec<Action> {
        let mut others = Vec::new();
        for action in node.run_to(t) {
            if action == Action::ProbeWitness {
                node.core.handle_witness(node.now, reachable);
            } else {
                others.push(action);
            }
        }
        others.extend(
            node.actions()
                .into_iter()
                .filter(|a| *a != Action::ProbeWitness),
        );
        others
    };
    for t in (400..=1_000).step_by(100) {
        assert_eq!(answer(&mut node, t, false), []);
    }
    node.core
        .handle_command(ms(1_000), Command::EndStartupWait)
        .expect("a wait is under way");
    assert_eq!(node.core.startup_wait_until(), None);
    assert_eq!(node.actions(), [], "isolated: no claim");
    let mut claimed = Vec::new();
    for t in (1_100..=2_000).step_by(100) {
        claimed.extend(answer(&mut node, t, true));
    }
    assert_eq!(
        claimed,
        [PERSIST_1],
        "the witness answered: the claim starts"
    );
    assert_eq!(
        node.core.handle_command(ms(2_000), Command::EndStartupWait),
        Err(CommandError::NoStartupWait)
    );
}
