//! Deterministic simulation: two [`Cluster`] cores, each fed by a real [`Detector`],
//! over a simulated network, with simulated resource groups, witness, epoch store and
//! fence, driven by a seeded random schedule of faults and operator commands.
//!
//! Fault model (all drawn from one [`SplitMix64`] per seed):
//! - links: cut (both directions) and healed, per-packet loss (0, 5 % or 20 % per
//!   direction), a fixed delay per link (0–3 ms) plus up to 1 ms jitter; heartbeats
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
//!   standby on/off, the disk becoming unusable. Maintenance is not simulated: it
//!   suspends every guard by definition.
//!
//! Each run: 4 s of chaos; then everything heals, and after 4 s exactly one node must
//! hold the group; then the holder crashes and the survivor must hold it within the
//! bound (dead time + witness + persist + fence or hold + acquire); then the crashed node
//! restarts and for 3 s no node may acquire or release (except a configured failback).
//! At every step, never both nodes hold the group (from the acquire until the release
//! is confirmed). A failure prints the seed; `HA_CLUSTER_SIM_SEED` replays one run,
//! `HA_CLUSTER_SIM_RUNS` sets the number of runs.

use std::collections::BTreeMap;
use std::time::Duration;

use super::cluster::{Action, Advert, Cluster, ClusterSettings, Found, GroupResult, ReleaseReason};
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
}

struct Node {
    core: Option<Cluster>,
    detector: Detector,
    life: u64,
    persisted: u64,
    group: Group,
    seq: u64,
    last_seq_seen: u64,
}

#[derive(Clone, Copy)]
struct Link {
    cut: bool,
    loss: f64,
    delay: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
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
    /// Actions executed during `Rejoin` that are role changes.
    rejoin_changes: Vec<(usize, Action)>,
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
    s
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
        let links = std::array::from_fn(|_| Link {
            cut: false,
            loss: 0.0,
            delay: Duration::from_micros(rng.below(3_000)),
        });
        let start = Instant::ZERO;
        let nodes = std::array::from_fn(|i| Node {
            core: Some(Cluster::new(settings[i].clone(), start, 0, Found::Stopped).expect("valid")),
            detector: Detector::new(detector_config(), LinkSet::first(LINKS), start)
                .expect("valid"),
            life: 0,
            persisted: 0,
            group: Group::Stopped,
            seq: 0,
            last_seq_seen: 0,
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
            phase: Phase::Chaos,
            rejoin_changes: Vec::new(),
            log: Vec::new(),
        };
        for node in 0..2 {
            let jitter = Duration::from_micros(world.rng.below(10_000));
            world.schedule(jitter, Ev::Tick(node));
        }
        world
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
        let partitioned = self.links.iter().all(|l| l.cut);
        !self.witness_down && (!partitioned || self.witness_side == Some(node))
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
            if l.cut || self.rng.chance(l.loss) {
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
        }
    }

    fn execute(&mut self, node: usize, life: u64, action: Action) {
        let chaos = self.phase == Phase::Chaos;
        let fence = self.settings[node].fence;
        if self.phase == Phase::Rejoin
            && matches!(action, Action::Acquire { .. } | Action::Release { .. })
        {
            self.rejoin_changes.push((node, action));
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
            Action::SurveyGroup => self.fail("no maintenance in the sim, so no survey"),
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
        self.log(format!("node {node}: restart"));
        self.schedule(INTERVAL, Ev::Tick(node));
    }

    fn command(&mut self, node: usize, command: super::cluster::Command) {
        if let Some(core) = &mut self.nodes[node].core {
            let result = core.handle_command(self.now, command);
            self.log(format!("node {node}: {command:?} -> {result:?}"));
            self.drain(node);
        }
    }

    fn fault(&mut self) {
        let node = usize::from(self.rng.chance(0.5));
        let slot = usize::try_from(self.rng.below(LINKS as u64)).expect("small");
        match self.rng.below(12) {
            0 | 1 => self.links[slot].cut = !self.links[slot].cut,
            2 => self.links[slot].loss = [0.0, 0.05, 0.2][self.rng.below(3) as usize],
            3 => {
                for l in &mut self.links {
                    l.cut = true;
                }
                self.witness_side = [None, Some(0), Some(1)][self.rng.below(3) as usize];
            }
            4 => {
                for l in &mut self.links {
                    l.cut = false;
                    l.loss = 0.0;
                }
            }
            5 => {
                self.crash(node);
                let after = ms(300 + self.rng.below(1_200));
                self.schedule(after, Ev::Restart(node));
            }
            6 => self.witness_down = !self.witness_down,
            7 => {
                if self.nodes[node].group == Group::Running {
                    let life = self.nodes[node].life;
                    self.schedule(
                        Duration::ZERO,
                        Ev::GroupDone {
                            node,
                            life,
                            result: GroupResult::Failed,
                        },
                    );
                }
            }
            8 | 9 => self.command(node, super::cluster::Command::Switchover { to: None }),
            10 => {
                let on = self.rng.chance(0.5);
                self.command(node, super::cluster::Command::Standby(on));
            }
            _ => {
                if let Some(core) = &mut self.nodes[node].core {
                    let usable = self.rng.chance(0.7);
                    core.handle_disk(self.now, usable);
                    self.drain(node);
                }
            }
        }
        self.log(format!(
            "fault: links {:?} witness_side {:?} down {}",
            self.links.map(|l| (l.cut, l.loss)),
            self.witness_side,
            self.witness_down
        ));
    }

    fn heal(&mut self) {
        for l in &mut self.links {
            l.cut = false;
            l.loss = 0.0;
        }
        self.witness_down = false;
        self.witness_side = None;
        for node in 0..2 {
            self.restart(node);
            if let Some(core) = &mut self.nodes[node].core {
                core.handle_disk(self.now, true);
            }
            self.command(node, super::cluster::Command::Standby(false));
        }
    }

    fn holder(&self) -> Option<usize> {
        (0..2).find(|&n| self.nodes[n].group == Group::Running && self.nodes[n].core.is_some())
    }

    fn run(&mut self) -> (Duration, Duration) {
        let chaos_end = Instant::ZERO.saturating_add(ms(4_000));
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
        self.restart(holder);
        self.run_until(self.now.saturating_add(ms(3_000)));
        let failback = self.settings[0].preferred_node == Some(self.settings[holder].node_id);
        let unexpected: Vec<&(usize, Action)> = self
            .rejoin_changes
            .iter()
            .filter(|(_, action)| {
                !failback
                    || !matches!(
                        action,
                        Action::Release {
                            reason: ReleaseReason::Switchover
                        } | Action::Acquire {
                            reason: super::cluster::AcquireReason::Switchover,
                            ..
                        }
                    )
            })
            .collect();
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
