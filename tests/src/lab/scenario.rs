//! The lab's scenarios: each drives a [`Lab`], checks what must hold, and returns what
//! it measured (printed by `cargo xtask lab --scenario NAME`, asserted by the
//! end-to-end tests). An `Err` names the first thing that did not hold.

use std::fmt;
use std::time::Duration;

use ha_daemon::io::clock::monotonic_ns;
use serde_json::Value;

use super::probe::{self, Outage, Prober, Probes};
use super::{Lab, LabOptions, NODES, VIP};
use crate::daemon::event_type;

/// How often the client probes the VIP.
pub const PROBE_EVERY: Duration = Duration::from_millis(1);

/// Fails with `message` unless `condition`.
fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// One step of a takeover as the new holder's daemon timed it.
#[derive(Clone, Debug)]
pub struct Step {
    /// The resource.
    pub resource: String,
    /// `start` or `stop`.
    pub call: String,
    /// From the start of the run.
    pub offset_ms: f64,
    /// How long it took.
    pub duration_ms: f64,
}

/// What the crash of the primary showed.
#[derive(Clone, Debug)]
pub struct Crash {
    /// The node that crashed.
    pub old: usize,
    /// From the crash to the survivor's `peer_lost`.
    pub detection_ms: f64,
    /// From the crash to the survivor's claim (its decision to take over).
    pub decision_ms: Option<f64>,
    /// From the crash to the start of the survivor's acquire run (after the fence and
    /// the epoch's write).
    pub run_started_ms: Option<f64>,
    /// From the crash to the end of the survivor's acquire run.
    pub acquired_ms: f64,
    /// The acquire run, step by step (fence included, before it).
    pub steps: Vec<Step>,
    /// The client's view.
    pub outage: Outage,
    /// Everything the client saw.
    pub probes: Probes,
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (old, new) = (NODES[self.old], NODES[1 - self.old]);
        writeln!(
            f,
            "crash of {old} (SIGKILL of its daemon, its interfaces down) at +0 ms"
        )?;
        writeln!(
            f,
            "  {new} reports peer lost        +{:8.1} ms",
            self.detection_ms
        )?;
        if let Some(decision) = self.decision_ms {
            writeln!(f, "  {new} decides to take over     +{decision:8.1} ms")?;
        }
        if let Some(started) = self.run_started_ms {
            writeln!(
                f,
                "  {new} fenced {old}, stored its epoch, starts the group +{started:8.1} ms"
            )?;
        }
        writeln!(f, "  {new} acquire run (offsets from its start):")?;
        for step in &self.steps {
            writeln!(
                f,
                "      {:<6} {:<5} at +{:8.1} ms  took {:8.1} ms",
                step.resource, step.call, step.offset_ms, step.duration_ms
            )?;
        }
        writeln!(
            f,
            "  {new} holds the group          +{:8.1} ms",
            self.acquired_ms
        )?;
        writeln!(
            f,
            "  client (ICMP echo to {VIP} every {} ms): last answer from {old}, first from {new}: \
             outage {:.1} ms ({} probes unanswered; {} sent, {} answered)",
            PROBE_EVERY.as_millis(),
            self.outage.duration().as_secs_f64() * 1e3,
            self.outage.unanswered,
            self.probes.sent,
            self.probes.answers.len()
        )
    }
}

/// The scenarios by name (`cargo xtask lab --scenario NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    /// Only build the lab and start the cluster (with `--keep`: to explore).
    None,
    /// The primary crashes: see [`crash`].
    Crash,
}

impl Name {
    /// The lab this scenario needs.
    pub fn options(self) -> LabOptions {
        LabOptions::default()
    }

    /// Runs the scenario on a started cluster whose holder is `holder`; prints its
    /// report; returns the client-observed outage in ms when it measures one.
    pub fn run(self, lab: &mut Lab, holder: usize) -> Result<Option<f64>, String> {
        match self {
            Self::None => Ok(None),
            Self::Crash => {
                let report = crash(lab, holder)?;
                println!("{report}");
                Ok(Some(report.outage.duration().as_secs_f64() * 1e3))
            }
        }
    }
}

/// The primary crashes (its daemon SIGKILLed, its interfaces down). Checks: the other
/// node holds the whole group (by the system's word: DRBD Primary, mounted, container
/// running, VIP), the client reaches the VIP there and never both nodes, and a file
/// written through the old primary's container before the crash is read through the
/// new one's.
pub fn crash(lab: &mut Lab, old: usize) -> Result<Crash, String> {
    let new = 1 - old;
    let (old_mac, new_mac) = (lab.mac(old), lab.mac(new));
    let proof = format!("written through the container on {}", NODES[old]);
    let wrote = lab.in_container(old, &format!("echo '{proof}' > /root/proof && sync"));
    ensure(wrote.status.success(), || {
        format!("writing in {}'s container: {wrote:?}", NODES[old])
    })?;
    let prober = Prober::start(&lab.lan.client, VIP, PROBE_EVERY);
    super::pause(Duration::from_secs(1));
    let crashed_ns = monotonic_ns();
    lab.crash(old);
    lab.wait_running(new, Duration::from_secs(60));
    let acquired_ns = monotonic_ns();
    super::pause(Duration::from_millis(300));
    let probes = prober.stop()?;
    let outage = probe::outage(&probes.answers, old_mac, new_mac)?;

    let group = lab.group_on(new);
    ensure(group.all(), || {
        format!("{} runs only {group:?}", NODES[new])
    })?;
    let role = lab.drbd(new).adm_ok(&["role", "r0"]);
    ensure(role.starts_with("Primary/"), || {
        format!("DRBD on {} is {role}", NODES[new])
    })?;
    let read = lab.in_container(new, "cat /root/proof");
    let text = String::from_utf8_lossy(&read.stdout);
    ensure(text.trim() == proof, || {
        format!("the file on {} reads {text:?}: {read:?}", NODES[new])
    })?;

    let lines = lab.daemon(new).map(|d| d.collect_all()).unwrap_or_default();
    let after = |line: &&Value| line["monotonic_ns"].as_u64() >= Some(crashed_ns);
    let lost_ns = lines
        .iter()
        .filter(after)
        .find(|line| event_type(line) == Some("peer_lost"))
        .and_then(|line| line["monotonic_ns"].as_u64())
        .ok_or("the survivor never reported peer_lost")?;
    let status = lab.status(new).ok_or("the survivor does not answer")?;
    let failover = &status["cluster"]["last_failover"];
    let decision_ms = failover["decided_ns"]
        .as_u64()
        .map(|ns| ms(ns.saturating_sub(crashed_ns)));
    Ok(Crash {
        old,
        detection_ms: ms(lost_ns.saturating_sub(crashed_ns)),
        decision_ms,
        run_started_ms: failover["run"]["started_ns"]
            .as_u64()
            .map(|ns| ms(ns.saturating_sub(crashed_ns))),
        acquired_ms: ms(failover["done_ns"]
            .as_u64()
            .unwrap_or(acquired_ns)
            .saturating_sub(crashed_ns)),
        steps: steps(&failover["run"]["timeline"]),
        outage,
        probes,
    })
}

/// The steps of a run's timeline.
pub fn steps(timeline: &Value) -> Vec<Step> {
    timeline["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| Step {
            resource: step["resource"].as_str().unwrap_or("?").to_owned(),
            call: step["call"].as_str().unwrap_or("?").to_owned(),
            offset_ms: step["offset_ms"].as_f64().unwrap_or_default(),
            duration_ms: step["duration_ms"].as_f64().unwrap_or_default(),
        })
        .collect()
}

/// The cluster's roles as both daemons state them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Nodes that say they are primary.
    pub holders: Vec<usize>,
    /// The highest epoch either states.
    pub epoch: u64,
}

impl Roles {
    /// Reads both nodes' status.
    pub fn now(lab: &Lab) -> Self {
        let statuses = [lab.status(0), lab.status(1)];
        Self {
            holders: super::holders(&statuses),
            epoch: statuses
                .iter()
                .flatten()
                .filter_map(|s| s["cluster"]["epoch"].as_u64())
                .max()
                .unwrap_or(0),
        }
    }
}

/// Watches the cluster for `span` (every 200 ms): the roles must stay `expected` (no
/// role change, no new epoch), the group must run on its holder and nowhere else (by the
/// system's word), and `extra` must hold at every look. Returns how many looks it took.
fn steady(
    lab: &Lab,
    span: Duration,
    expected: &Roles,
    extra: impl Fn(&Lab) -> Result<(), String>,
) -> Result<u32, String> {
    let holder = expected.holders[0];
    let until = std::time::Instant::now() + span;
    let mut looks = 0;
    while std::time::Instant::now() < until {
        let roles = Roles::now(lab);
        ensure(&roles == expected, || {
            format!("the roles changed: {roles:?}, expected {expected:?}")
        })?;
        let (held, other) = (lab.group_on(holder), lab.group_on(1 - holder));
        ensure(held.all() && other.none(), || {
            format!(
                "the group runs {held:?} on {} (holder) and {other:?} on {}",
                NODES[holder],
                NODES[1 - holder]
            )
        })?;
        extra(lab)?;
        looks += 1;
        super::pause(Duration::from_millis(200));
    }
    Ok(looks)
}

/// The link states (`up`) of `node` by name, from its status.
fn links_up(lab: &Lab, node: usize) -> Vec<(String, bool)> {
    lab.status(node)
        .and_then(|s| s["detection"]["links"].as_array().cloned())
        .into_iter()
        .flatten()
        .map(|link| {
            (
                link["name"].as_str().unwrap_or("?").to_owned(),
                link["up"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Whether `node` sees link `name` as `up` and its peer alive.
fn sees(lab: &Lab, node: usize, name: &str, up: bool) -> bool {
    let alive = lab
        .status(node)
        .is_some_and(|s| s["detection"]["peer"] == "alive");
    alive && links_up(lab, node).contains(&(name.to_owned(), up))
}

/// Which link a [`link_cut`] cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The back-to-back link (replication and heartbeats): `repl0` of the holder down.
    BackToBack,
    /// The LAN between the nodes only: the bridge stops forwarding between their
    /// ports; both still reach the client and the witness.
    Lan,
}

impl Cut {
    fn link(self) -> &'static str {
        match self {
            Self::BackToBack => "repl",
            Self::Lan => "lan",
        }
    }
}

/// What a link cut showed.
#[derive(Clone, Debug)]
pub struct LinkCut {
    /// Which.
    pub cut: Cut,
    /// From the cut until both nodes reported the link down (peer still alive).
    pub degraded_ms: f64,
    /// Looks at a steady cluster while the link was down.
    pub looks: u32,
    /// From the restore until both reported the link up again.
    pub restored_ms: f64,
}

impl fmt::Display for LinkCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:?} link cut: both nodes report link `{}` down, peer alive, after {:.0} ms",
            self.cut,
            self.cut.link(),
            self.degraded_ms
        )?;
        writeln!(
            f,
            "  no role change, group only on its holder: {} looks over 3 s",
            self.looks
        )?;
        writeln!(
            f,
            "  restored: link up on both after {:.0} ms",
            self.restored_ms
        )
    }
}

/// The LAN filter of [`Cut::Lan`] in the bridge namespace.
const LAN_CUT: &str = "table bridge halab {\n\
    chain forward {\n\
        type filter hook forward priority 0; policy accept;\n\
        iifname \"port-a\" oifname \"port-b\" drop\n\
        iifname \"port-b\" oifname \"port-a\" drop\n\
    }\n\
}\n";

/// One link fails: both nodes report it down (degraded), nobody changes role, the group
/// keeps running on its holder only; restored, the link comes back on both.
pub fn link_cut(lab: &mut Lab, holder: usize, cut: Cut) -> Result<LinkCut, String> {
    let expected = Roles::now(lab);
    ensure(expected.holders == [holder], || format!("{expected:?}"))?;
    let link = cut.link();
    let set = |lab: &Lab, up: bool| match cut {
        Cut::BackToBack => lab.set_link(holder, super::REPL_IF, up),
        Cut::Lan if up => {
            let _ = lab
                .lan
                .bridge
                .exec("nft", &["delete", "table", "bridge", "halab"]);
        }
        Cut::Lan => crate::nft::load(&lab.lan.bridge, LAN_CUT),
    };
    set(lab, false);
    let degraded = lab.wait_until(Duration::from_secs(5), "degraded on both", |_| {
        (0..2).all(|node| sees(lab, node, link, false))
    });
    let looks = steady(lab, Duration::from_secs(3), &expected, |lab| {
        ensure((0..2).all(|node| sees(lab, node, link, false)), || {
            format!("link {link} not reported down with the peer alive on both")
        })
    });
    let restore = std::time::Instant::now();
    set(lab, true);
    let looks = looks?;
    lab.wait_until(Duration::from_secs(10), "link up again on both", |_| {
        (0..2).all(|node| sees(lab, node, link, true))
    });
    Ok(LinkCut {
        cut,
        degraded_ms: degraded.as_secs_f64() * 1e3,
        looks,
        restored_ms: restore.elapsed().as_secs_f64() * 1e3,
    })
}
