//! Deterministic simulation: two [`Cluster`] cores, each fed by a real [`Detector`],
//! over a simulated network, with simulated resource groups, witness, epoch store and
//! fence, driven by a seeded random schedule of faults and operator commands.
//!
//! Fault model (all drawn from one [`SplitMix64`] per seed):
//! - links: cut (both directions, or one way: a node's packets dropped while it still
//!   hears its peer, on one link or on every link) and healed, per-packet loss (0, 5 %
//!   or 20 %), a fixed delay per link (0–3 ms) plus up to 1 ms jitter; heartbeats
//!   every 10 ms on each of two links;
//! - a full partition (every link cut) gives the witness to at most one side (the
//!   stated assumption); a witness outage takes it from both; otherwise both reach it;
//! - node crashes (power off: the group stops at once) and restarts with the persisted
//!   epoch; the fence command powers the peer off (90 % success while chaos runs);
//! - acquire runs of 10–150 ms failing 10 % of the time (rolled back), release runs of
//!   10–120 ms; releases fail (10 %) only when fencing is configured, since without a
//!   fence a release that cannot finish is the one thing nothing can make safe (the
//!   runtime must escalate, e.g. reboot);
//! - supervision giving up on the running group, operator switchovers on either node,
//!   standby on/off, the disk becoming unusable, maintenance on/off (the end surveys the
//!   group). Maintenance suspends every guard on its node by definition, so it starts
//!   only while every link is healthy and, while it lasts, nothing that can cost a node
//!   its peer happens (see [`faults`]).
//!
//! Each run starts with a clean start-up: node 1 starts together with node 0, or
//! slowly but within the start-up wait, or well after it; nobody may fence or take over
//! on a peer never heard before the wait passed, exactly one node holds the group once
//! both run, and a node that starts while the other runs changes no role (except a
//! configured failback). Then 4 s of chaos; then everything heals, and after 4 s exactly one node must
//! hold the group; then the holder crashes and the survivor must hold it within the
//! bound (dead time + witness + persist + fence or hold + acquire); then the crashed node
//! restarts and for 3 s no node may acquire or release (except a configured failback).
//! At every step, never both nodes hold the group (from the acquire until the release
//! is confirmed), and no role change happens for the peer's loss (a claim on a lost
//! peer, a release for isolation) while both nodes and at least one link (both
//! directions, no loss) have been healthy for the detector's `dead_after_max`. A failure prints the seed; `HA_CLUSTER_SIM_SEED` replays one run,
//! `HA_CLUSTER_SIM_RUNS` sets the number of runs.

mod faults;

use std::collections::BTreeMap;
use std::time::Duration;

use faults::Link;

use super::cluster::{
    AcquireReason, Action, Advert, Cluster, ClusterSettings, Event, Found, GroupResult,
    ReleaseReason,
};
use super::detector::Detector;
use super::detector_config::DetectorConfig;
use super::evidence::{LinkId, LinkSet};
use super::test_sim::{SplitMix64, link};
use super::time::Instant;

const LINKS: usize = 2;
const INTERVAL: Duration = Duration::from_millis(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Stopped,
    Starting,
    Running,
    Stopping,
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Tick(usize),
    Deliver {
        to: usize,
        link: LinkId,
        seq: u64,
        advert: Advert,
    },
    Witness {
        node: usize,
        life: u64,
        reachable: bool,
    },
    Persisted {
        node: usize,
        life: u64,
        epoch: u64,
    },
    Fenced {
        node: usize,
        life: u64,
        ok: bool,
    },
    GroupDone {
        node: usize,
        life: u64,
        result: GroupResult,
    },
    Restart(usize),
    Surveyed {
        node: usize,
        life: u64,
    },
}

struct Node {
    core: Option<Cluster>,
    detector: Detector,
    life: u64,
    persisted: u64,
    group: Group,
    seq: u64,
    last_seq_seen: u64,
    /// Up (running its core) continuously since then.
    up_since: Option<Instant>,
    /// Maintenance is on (as the core accepted it).
    maintenance: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Startup,
    Chaos,
    Settle,
    Crashed,
    Rejoin,
}

struct World {
    seed: u64,
    rng: SplitMix64,
    now: Instant,
    counter: u64,
    queue: BTreeMap<(Instant, u64), Ev>,
    nodes: [Node; 2],
    links: [Link; LINKS],
    witness_side: Option<usize>,
    witness_down: bool,
    settings: [ClusterSettings; 2],
    detector: DetectorConfig,
    phase: Phase,
    /// Every role change and fence carried out: when, by which node.
    changes: Vec<(Instant, usize, Action)>,
    log: Vec<String>,
}

fn detector_config() -> DetectorConfig {
    DetectorConfig::for_interval(INTERVAL)
}

fn cluster_settings(
    node: u16,
    peer: u16,
    rng: &mut SplitMix64,
    fence: bool,
    preferred: Option<u16>,
) -> ClusterSettings {
    let mut s = ClusterSettings::new(node, peer, detector_config().dead_after_max);
    s.witness_interval = ms(100);
    s.witness_timeout = ms(50);
    s.isolation_timeout = ms(200 + rng.below(200));
    s.acquire_timeout = ms(200);
    s.release_timeout = ms(150);
    s.switchover_timeout = ms(500);
    s.failback_delay = ms(1_000);
    s.failure_timeout = ms(500);
    s.fence = fence;
    s.preferred_node = preferred;
    s.startup_wait = STARTUP_WAIT;
    s
}

/// The start-up wait of both nodes: twice the detector's start-up dead time
/// (`dead_after_max`, 500 ms), so a slow start can outlast the latter.
const STARTUP_WAIT: Duration = Duration::from_millis(1_000);

/// How node 1 starts after node 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Within 10 ms.
    Together,
    /// After node 0's detector called it lost (`dead_after_max`), within 90 % of the
    /// start-up wait.
    Slow,
    /// Once node 0 has surely taken over: after the start-up wait, the takeover hold
    /// and the acquire, plus up to 200 ms.
    Late,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let fence = rng.chance(0.5);
        let preferred = match rng.below(3) {
            0 => None,
            n => Some(u16::try_from(n).expect("1 or 2")),
        };
        let settings = [
            cluster_settings(1, 2, &mut rng, fence, preferred),
            cluster_settings(2, 1, &mut rng, fence, preferred),
        ];
        let links = std::array::from_fn(|_| Link::new(Duration::from_micros(rng.below(3_000))));
        let start = Instant::ZERO;
        let nodes = std::array::from_fn(|_| Node {
            core: None,
            detector: Detector::new(detector_config(), LinkSet::first(LINKS), start)
                .expect("valid"),
            life: 0,
            persisted: 0,
            group: Group::Stopped,
            seq: 0,
            last_seq_seen: 0,
            up_since: None,
            maintenance: false,
        });
        let mut world = Self {
            seed,
            rng,
            now: start,
            counter: 0,
            queue: BTreeMap::new(),
            nodes,
            links,
            witness_side: None,
            witness_down: false,
            settings,
            detector: detector_config(),
            phase: Phase::Startup,
            changes: Vec::new(),
            log: Vec::new(),
        };
        let jitter = Duration::from_micros(world.rng.below(10_000));
        world.schedule(jitter, Ev::Restart(0));
        world
    }

    /// Node 1's start after node 0's, as `start` says.
    fn start_offset(&mut self, start: Start) -> Duration {
        let wait = u64::try_from(STARTUP_WAIT.as_micros()).expect("small");
        Duration::from_micros(match start {
            Start::Together => self.rng.below(10_000),
            Start::Slow => {
                let lost = u64::try_from(self.detector.dead_after_max.as_micros()).expect("small");
                lost + self.rng.below(wait * 9 / 10 - lost)
            }
            Start::Late => {
                let hold = self.settings[0].takeover_hold() + ms(300);
                wait + u64::try_from(hold.as_micros()).expect("small") + self.rng.below(200_000)
            }
        })
    }

    fn fail(&self, what: &str) -> ! {
        let tail: Vec<&String> = self
            .log
            .iter()
            .rev()
            .filter(|l| !l.contains("ProbeWitness"))
            .take(60)
            .collect();
        panic!(
            "cluster sim seed {} failed at {}: {what}\nreplay: HA_CLUSTER_SIM_SEED={} cargo test -p ha-daemon --lib cluster_sim\nlast log lines (newest first):\n{tail:#?}",
            self.seed, self.now, self.seed
        );
    }

    fn schedule(&mut self, after: Duration, ev: Ev) {
        self.counter += 1;
        self.queue
            .insert((self.now.saturating_add(after), self.counter), ev);
    }

    fn held(&self, node: usize) -> bool {
        self.nodes[node].group != Group::Stopped
    }

    fn reaches_witness(&self, node: usize) -> bool {
        !self.witness_down && (!self.partitioned() || self.witness_side == Some(node))
    }

    fn next_time(&self) -> Option<Instant> {
        let mut next = self.queue.keys().next().map(|(t, _)| *t);
        for node in &self.nodes {
            if let Some(core) = &node.core {
                next = [next, node.detector.poll_timeout(), core.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
            }
        }
        next
    }

    /// Advances to `until`, processing everything due; checks the safety invariant
    /// after every step.
    fn run_until(&mut self, until: Instant) {
        for _ in 0..2_000_000u64 {
            let Some(t) = self.next_time().filter(|&t| t <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(t);
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let ev = entry.remove();
                self.handle(ev);
            }
            for node in 0..2 {
                if self.nodes[node].core.is_some() {
                    self.nodes[node].detector.handle_timeout(self.now);
                    if let Some(core) = &mut self.nodes[node].core {
                        core.handle_timeout(self.now);
                    }
                    self.drain(node);
                }
            }
            for node in &self.nodes {
                if let Some(core) = &node.core
                    && core.poll_timeout().is_some_and(|due| due <= self.now)
                {
                    self.fail("a cluster timer is still due after handle_timeout: it would spin");
                }
            }
            if self.held(0) && self.held(1) {
                self.fail("both nodes hold the group");
            }
        }
        self.fail("step budget exhausted (a timer spins)");
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Tick(node) => {
                if self.nodes[node].core.is_some() {
                    self.send(node);
                    self.schedule(INTERVAL, Ev::Tick(node));
                }
            }
            Ev::Deliver {
                to,
                link,
                seq,
                advert,
            } => {
                let node = &mut self.nodes[to];
                let Some(core) = &mut node.core else { return };
                node.detector
                    .handle_heartbeat(self.now, link, seq)
                    .expect("configured link");
                if seq > node.last_seq_seen {
                    node.last_seq_seen = seq;
                    core.handle_peer_advert(self.now, advert);
                }
                self.drain(to);
            }
            Ev::Witness {
                node,
                life,
                reachable,
            } => {
                if let Some(core) = self.core(node, life) {
                    core.handle_witness(now, reachable);
                    self.drain(node);
                }
            }
            Ev::Persisted { node, life, epoch } => {
                if self.nodes[node].life == life {
                    self.nodes[node].persisted = self.nodes[node].persisted.max(epoch);
                }
                if let Some(core) = self.core(node, life) {
                    core.handle_epoch_persisted(now, epoch);
                    self.drain(node);
                }
            }
            Ev::Fenced { node, life, ok } => {
                if let Some(core) = self.core(node, life) {
                    core.handle_fence(now, ok);
                    self.drain(node);
                }
            }
            Ev::GroupDone { node, life, result } => {
                if self.nodes[node].life != life || self.nodes[node].core.is_none() {
                    return;
                }
                self.nodes[node].group = match result {
                    GroupResult::Acquired | GroupResult::ReleaseFailed => Group::Running,
                    GroupResult::AcquireFailed { .. } | GroupResult::Released => Group::Stopped,
                    GroupResult::Failed => self.nodes[node].group,
                };
                self.log(format!("node {node}: {result:?}"));
                if let Some(core) = self.core(node, life) {
                    core.handle_group(now, result);
                    self.drain(node);
                }
            }
            Ev::Restart(node) => self.restart(node),
            Ev::Surveyed { node, life } => {
                let found = match self.nodes[node].group {
                    Group::Running => Found::Running,
                    Group::Stopped => Found::Stopped,
                    Group::Starting | Group::Stopping => Found::Partial,
                };
                if let Some(core) = self.core(node, life) {
                    core.handle_survey(now, found);
                    self.drain(node);
                }
            }
        }
    }

    fn core(&mut self, node: usize, life: u64) -> Option<&mut Cluster> {
        let node = &mut self.nodes[node];
        if node.life == life {
            node.core.as_mut()
        } else {
            None
        }
    }

    fn log(&mut self, line: String) {
        let line = format!("{} {line}", self.now);
        self.log.push(line);
    }

    fn send(&mut self, from: usize) {
        let to = 1 - from;
        let Some(core) = &self.nodes[from].core else {
            return;
        };
        let advert = core.advertised();
        self.nodes[from].seq += 1;
        let seq = self.nodes[from].seq;
        for slot in 0..LINKS {
            let l = self.links[slot];
            if l.cut[from] || self.rng.chance(l.loss) {
                continue;
            }
            let jitter = Duration::from_micros(self.rng.below(1_000));
            let link = link(u8::try_from(slot).expect("few links"));
            self.schedule(
                l.delay + jitter,
                Ev::Deliver {
                    to,
                    link,
                    seq,
                    advert,
                },
            );
        }
    }

    /// Feeds detector events to the core, then carries out the core's actions.
    fn drain(&mut self, node: usize) {
        let life = self.nodes[node].life;
        while let Some(event) = self.nodes[node].detector.poll_event() {
            if let Some(core) = &mut self.nodes[node].core {
                core.handle_detector(self.now, &event);
            }
        }
        loop {
            let Some(core) = &mut self.nodes[node].core else {
                return;
            };
            let Some(action) = core.poll_action() else {
                break;
            };
            self.log(format!("node {node}: {action:?}"));
            self.execute(node, life, action);
        }
        while let Some(core) = &mut self.nodes[node].core {
            let Some(event) = core.poll_event() else {
                break;
            };
            self.log(format!("node {node}: {event:?}"));
            if matches!(
                event,
                Event::Claiming {
                    reason: AcquireReason::PeerLost,
                    ..
                } | Event::Releasing {
                    reason: ReleaseReason::Isolated,
                    ..
                }
            ) && self.calm_for(self.detector.dead_after_max + INTERVAL * 3)
            {
                self.fail(&format!(
                    "node {node}: {event:?} while both nodes and a link are healthy"
                ));
            }
        }
    }

    fn execute(&mut self, node: usize, life: u64, action: Action) {
        let chaos = self.phase == Phase::Chaos;
        let fence = self.settings[node].fence;
        if matches!(
            action,
            Action::Acquire { .. } | Action::Release { .. } | Action::FencePeer
        ) {
            self.changes.push((self.now, node, action));
        }
        match action {
            Action::ProbeWitness => {
                if chaos && self.rng.chance(0.05) {
                    return; // lost probe: the core times it out
                }
                let reachable = self.reaches_witness(node);
                let after = Duration::from_micros(1_000 + self.rng.below(19_000));
                self.schedule(
                    after,
                    Ev::Witness {
                        node,
                        life,
                        reachable,
                    },
                );
            }
            Action::FencePeer => {
                let ok = !chaos || self.rng.chance(0.9);
                let after = ms(10 + self.rng.below(40));
                if ok {
                    self.crash(1 - node);
                    let back = ms(300 + self.rng.below(1_200));
                    self.schedule(back, Ev::Restart(1 - node));
                }
                self.schedule(after, Ev::Fenced { node, life, ok });
            }
            Action::PersistEpoch { epoch } => {
                let after = Duration::from_micros(500 + self.rng.below(4_500));
                self.schedule(after, Ev::Persisted { node, life, epoch });
            }
            Action::Acquire { .. } => {
                self.nodes[node].group = Group::Starting;
                let ok = !chaos || self.rng.chance(0.9);
                let result = if ok {
                    GroupResult::Acquired
                } else {
                    GroupResult::AcquireFailed { rolled_back: true }
                };
                let after = ms(10 + self.rng.below(140));
                self.schedule(after, Ev::GroupDone { node, life, result });
            }
            Action::Release { reason } => {
                self.nodes[node].group = Group::Stopping;
                let may_fail = chaos && fence && reason != ReleaseReason::Isolated;
                let result = if may_fail && self.rng.chance(0.1) {
                    GroupResult::ReleaseFailed
                } else {
                    GroupResult::Released
                };
                let after = ms(10 + self.rng.below(110));
                self.schedule(after, Ev::GroupDone { node, life, result });
            }
            Action::SurveyGroup => {
                let after = ms(5 + self.rng.below(25));
                self.schedule(after, Ev::Surveyed { node, life });
            }
        }
    }

    fn crash(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if n.core.is_none() {
            return;
        }
        n.core = None;
        n.life += 1;
        n.group = Group::Stopped;
        n.up_since = None;
        n.maintenance = false;
        self.log(format!("node {node}: crash"));
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].core.is_some() {
            return;
        }
        let settings = self.settings[node].clone();
        let n = &mut self.nodes[node];
        n.core =
            Some(Cluster::new(settings, self.now, n.persisted, Found::Stopped).expect("valid"));
        n.detector = Detector::new(self.detector, LinkSet::first(LINKS), self.now).expect("valid");
        n.last_seq_seen = 0;
        n.up_since = Some(self.now);
        self.log(format!("node {node}: restart"));
        self.schedule(INTERVAL, Ev::Tick(node));
    }

    fn command(&mut self, node: usize, command: super::cluster::Command) {
        if let Some(core) = &mut self.nodes[node].core {
            let result = core.handle_command(self.now, command);
            if let (Ok(()), super::cluster::Command::Maintenance(on)) = (result, command) {
                self.nodes[node].maintenance = on;
            }
            self.log(format!("node {node}: {command:?} -> {result:?}"));
            self.drain(node);
        }
    }

    fn holder(&self) -> Option<usize> {
        (0..2).find(|&n| self.nodes[n].group == Group::Running && self.nodes[n].core.is_some())
    }

    /// Role changes since `from`, except the switchover of a failback to `joined`
    /// when it is the preferred node (it pulls the group after `failback_delay`).
    fn changes_since(&self, from: Instant, joined: usize) -> Vec<(Instant, usize, Action)> {
        let failback = self.settings[0].preferred_node == Some(self.settings[joined].node_id);
        self.changes
            .iter()
            .filter(|(at, _, action)| {
                *at >= from
                    && !(failback
                        && matches!(
                            action,
                            Action::Release {
                                reason: ReleaseReason::Switchover
                            } | Action::Acquire {
                                reason: AcquireReason::Switchover,
                                ..
                            }
                        ))
            })
            .copied()
            .collect()
    }

    /// Both nodes start (see [`Start`]) on healthy links with the witness reachable.
    fn start_up(&mut self) -> Start {
        let start = [Start::Together, Start::Slow, Start::Late][self.rng.below(3) as usize];
        let offset = self.start_offset(start);
        self.schedule(offset, Ev::Restart(1));
        let second = Instant::ZERO.saturating_add(offset);
        self.run_until(second.saturating_add(ms(1_500)));
        let wait_end = Instant::ZERO.saturating_add(STARTUP_WAIT);
        let early: Vec<_> = self
            .changes
            .iter()
            .filter(|(at, _, action)| {
                *at < wait_end
                    && matches!(
                        action,
                        Action::FencePeer
                            | Action::Acquire {
                                reason: AcquireReason::PeerLost,
                                ..
                            }
                    )
            })
            .collect();
        if !early.is_empty() {
            self.fail(&format!(
                "{start:?} start: fence or takeover before the start-up wait passed: {early:?}"
            ));
        }
        if start != Start::Late {
            let fenced: Vec<_> = self
                .changes
                .iter()
                .filter(|(_, _, a)| *a == Action::FencePeer)
                .collect();
            if !fenced.is_empty() {
                self.fail(&format!("{start:?} start: a node was fenced: {fenced:?}"));
            }
        } else {
            let after = self.changes_since(second, 1);
            if !after.is_empty() {
                self.fail(&format!(
                    "a node that started while the other ran changed roles: {after:?}"
                ));
            }
        }
        let holders: Vec<usize> = (0..2).filter(|&n| self.held(n)).collect();
        if self.holder().is_none() || holders.len() != 1 {
            self.fail(&format!(
                "{start:?} start: holders {holders:?} (expected exactly one, running)"
            ));
        }
        start
    }

    fn run(&mut self) -> (Duration, Duration) {
        self.start_up();
        self.phase = Phase::Chaos;
        let chaos_end = self.now.saturating_add(ms(4_000));
        while self.now < chaos_end {
            let gap = ms(50 + self.rng.below(350));
            let at = self.now.saturating_add(gap).min(chaos_end);
            self.run_until(at);
            if at < chaos_end {
                self.fault();
            }
        }
        self.phase = Phase::Settle;
        self.heal();
        self.run_until(self.now.saturating_add(ms(4_000)));
        let holders: Vec<usize> = (0..2).filter(|&n| self.held(n)).collect();
        let Some(holder) = self.holder().filter(|_| holders.len() == 1) else {
            self.fail(&format!(
                "after healing, holders {holders:?} (expected exactly one, running)"
            ));
        };

        self.phase = Phase::Crashed;
        let survivor = 1 - holder;
        let dead_after = (0..LINKS)
            .filter_map(|slot| {
                let slot = u8::try_from(slot).expect("few links");
                self.nodes[survivor].detector.link_status(link(slot))
            })
            .map(|status| status.dead_after)
            .max()
            .unwrap_or(self.detector.dead_after_max);
        let s = &self.settings[survivor];
        let guard = if s.fence { ms(50) } else { s.takeover_hold() };
        // dead time, witness reply (≤ 20 ms), persist (≤ 5 ms), fence or hold, acquire
        // (≤ 150 ms), plus two heartbeat intervals of rounding.
        let bound = dead_after + ms(20) + ms(5) + guard + ms(150) + INTERVAL * 2;
        let crashed_at = self.now;
        self.crash(holder);
        let deadline = crashed_at.saturating_add(bound);
        let mut replaced = None;
        while self.now < deadline {
            self.run_until(self.now.saturating_add(ms(1)));
            if self.holder() == Some(survivor) {
                replaced = Some(self.now.saturating_duration_since(crashed_at));
                break;
            }
        }
        let Some(replaced) = replaced else {
            self.fail(&format!(
                "the dead primary was not replaced within {bound:?}"
            ));
        };

        self.phase = Phase::Rejoin;
        let rejoined = self.now;
        self.restart(holder);
        self.run_until(self.now.saturating_add(ms(3_000)));
        let unexpected = self.changes_since(rejoined, holder);
        if !unexpected.is_empty() {
            self.fail(&format!(
                "role changes while both nodes and every link are healthy: {unexpected:?}"
            ));
        }
        (replaced, bound)
    }
}

fn runs() -> u64 {
    std::env::var("HA_CLUSTER_SIM_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(200)
}

#[test]
fn two_cores_never_both_hold_the_group_and_replace_a_dead_primary_in_time() {
    let seeds: Vec<u64> = match std::env::var("HA_CLUSTER_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("HA_CLUSTER_SIM_SEED is a u64")],
        Err(_) => (0..runs()).map(|i| 0x5eed_0000 + i).collect(),
    };
    let started = std::time::Instant::now();
    let mut worst = Duration::ZERO;
    let (mut fenced, mut held) = (Duration::ZERO, Duration::ZERO);
    for &seed in &seeds {
        let mut world = World::new(seed);
        let (replaced, _bound) = world.run();
        worst = worst.max(replaced);
        if world.settings[0].fence {
            fenced = fenced.max(replaced);
        } else {
            held = held.max(replaced);
        }
    }
    let elapsed = started.elapsed();
    println!(
        "cluster sim: {} runs in {elapsed:?} ({:.0} runs/s); slowest replacement of a dead primary: {fenced:?} with fencing, {held:?} without (hold {:?})",
        seeds.len(),
        seeds.len() as f64 / elapsed.as_secs_f64(),
        World::new(0).settings[0].takeover_hold(),
    );
    assert!(worst > Duration::ZERO);
}
