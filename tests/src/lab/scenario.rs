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

/// Clean heartbeats before a crash, so the adaptive dead times have settled.
pub const SETTLE: Duration = Duration::from_secs(4);

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

/// What the crash of the primary showed. Times are from the crash, on CLOCK_MONOTONIC
/// (the daemons' event lines and the client's probes share it).
#[derive(Clone, Debug)]
pub struct Crash {
    /// The node that crashed.
    pub old: usize,
    /// The survivor's `peer_lost`.
    pub detection_ms: f64,
    /// The survivor's cluster events after the crash: (type, ms).
    pub decisions: Vec<(String, f64)>,
    /// The start of the survivor's acquire run (after the fence and the epoch's write).
    pub run_started_ms: Option<f64>,
    /// The acquire run, step by step (offsets from its start).
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
        let mut line =
            |who: &str, what: &str, at: f64| writeln!(f, "  {who}: {what:<46} +{at:7.1} ms");
        line(new, "peer lost (detector)", self.detection_ms)?;
        for (kind, at) in &self.decisions {
            let what = match kind.as_str() {
                "claiming" => "claiming: witness answers, new epoch",
                "acquiring" => "acquiring: epoch stored, old node fenced",
                "primary" => "primary: whole group running",
                other => other,
            };
            line(new, what, *at)?;
            if kind == "acquiring" {
                let start = self.run_started_ms.unwrap_or(*at);
                for step in &self.steps {
                    let what = format!(
                        "  {} {} took {:.1} ms",
                        step.resource, step.call, step.duration_ms
                    );
                    line(new, &what, start + step.offset_ms + step.duration_ms)?;
                }
            }
        }
        writeln!(
            f,
            "  client (ICMP echo to {VIP} every {} ms): last answer from {old} to first from \
             {new}: outage {:.1} ms ({} probes unanswered; {} sent, {} answered)",
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
    /// The back-to-back link, then the LAN between the nodes, fail: see [`link_cut`].
    LinkCut,
    /// The holder loses both links and the witness: see [`partition`].
    Partition,
    /// 30 % random loss on both links for 60 s: see [`loss`].
    Loss,
    /// The secondary's daemon stopped for 500 ms, then busy loops on every core for
    /// 20 s: see [`stopped_secondary`] and [`busy_cores`].
    Starve,
    /// A switchover there and back: see [`switchover`].
    Switchover,
    /// Standby and maintenance: see [`standby_and_maintenance`].
    Modes,
    /// The primary's daemon restarts: see [`restart`].
    Restart,
    /// A daemon killed between promote and mount: see [`kill_mid_takeover`].
    MidTakeover,
}

impl Name {
    /// The lab this scenario needs.
    pub fn options(self) -> LabOptions {
        match self {
            Self::Partition => LabOptions {
                fence: false,
                ..LabOptions::default()
            },
            Self::MidTakeover => LabOptions {
                stall_after_promote: true,
                ..LabOptions::default()
            },
            _ => LabOptions::default(),
        }
    }

    /// Runs the scenario on a started cluster whose holder is `holder`; prints its
    /// report; returns the client-observed outage in ms when it measures one.
    pub fn run(self, lab: &mut Lab, holder: usize) -> Result<Option<f64>, String> {
        let outage_ms = |outage: &Outage| Some(outage.duration().as_secs_f64() * 1e3);
        Ok(match self {
            Self::None => None,
            Self::Crash => {
                let report = crash(lab, holder)?;
                println!("{report}");
                outage_ms(&report.outage)
            }
            Self::LinkCut => {
                for cut in [Cut::BackToBack, Cut::Lan] {
                    println!("{}", link_cut(lab, holder, cut)?);
                }
                None
            }
            Self::Partition => {
                let isolation = Duration::from_millis(self.options().isolation_timeout_ms);
                let report = partition(lab, holder, isolation)?;
                println!("{report}");
                outage_ms(&report.outage)
            }
            Self::Loss => {
                println!("{}", loss(lab, 30, Duration::from_secs(60))?);
                None
            }
            Self::Starve => {
                println!(
                    "{}",
                    stopped_secondary(lab, holder, Duration::from_millis(500))?
                );
                println!("{}", busy_cores(lab, Duration::from_secs(20))?);
                None
            }
            Self::Switchover => {
                let moves = switchover(lab, holder)?;
                for report in &moves {
                    println!("{report}");
                }
                moves.first().and_then(|m| outage_ms(&m.outage))
            }
            Self::Modes => {
                let report = standby_and_maintenance(lab, holder)?;
                println!("{report}");
                outage_ms(&report.standby.outage)
            }
            Self::Restart => {
                println!("{}", restart(lab, holder)?);
                None
            }
            Self::MidTakeover => {
                println!("{}", kill_mid_takeover(lab, holder)?);
                None
            }
        })
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
    // Heartbeats for a while first, so the adaptive dead times settle to what a running
    // cluster has.
    super::pause(SETTLE);
    let prober = Prober::start(&lab.lan.client, VIP, PROBE_EVERY);
    super::pause(Duration::from_secs(1));
    let crashed_ns = monotonic_ns();
    lab.crash(old);
    lab.wait_running(new, Duration::from_secs(60));
    super::pause(Duration::from_millis(300));
    let probes = prober.stop()?;
    let outage = probe::outage(&probes.answers, old_mac, new_mac)?;

    let group = lab.group_on(new);
    ensure(group.all(), || {
        format!("{} runs only {group:?}", NODES[new])
    })?;
    // The power switch detaches the dead node's mount in the background.
    lab.wait_until(
        Duration::from_secs(10),
        "nothing left on the fenced node",
        |_| lab.group_on(old).none(),
    );
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
    let decisions = lines
        .iter()
        .filter(after)
        .filter_map(|line| {
            let kind = line["cluster"]["type"].as_str()?.to_owned();
            Some((kind, ms(line["monotonic_ns"].as_u64()? - crashed_ns)))
        })
        .collect();
    let status = lab.status(new).ok_or("the survivor does not answer")?;
    let failover = &status["cluster"]["last_failover"];
    Ok(Crash {
        old,
        detection_ms: ms(lost_ns.saturating_sub(crashed_ns)),
        run_started_ms: failover["run"]["started_ns"]
            .as_u64()
            .map(|ns| ms(ns.saturating_sub(crashed_ns))),
        steps: steps(&failover["run"]["timeline"]),
        decisions,
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

/// The `run` lines (`{"run": {...}}`) of `node`'s daemon with `action`, started after
/// `since_ns`.
fn runs(lab: &mut Lab, node: usize, action: &str, since_ns: u64) -> Vec<Value> {
    lab.daemon(node)
        .map(|d| d.collect_all())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|line| line.get("run").cloned())
        .filter(|run| {
            run["action"] == action && run["started_ns"].as_u64().is_some_and(|t| t >= since_ns)
        })
        .collect()
}

/// What a full partition showed.
#[derive(Clone, Debug)]
pub struct Partition {
    /// The node cut off (the holder).
    pub isolated: usize,
    /// From the cut to the isolated node's release run starting.
    pub release_started_ms: f64,
    /// From the cut until nothing of the group ran on the isolated node.
    pub released_ms: f64,
    /// From the cut until the other node ran the whole group.
    pub taken_over_ms: f64,
    /// Looks at both nodes during the partition (never the group on both).
    pub looks: u32,
    /// The client's view of the move.
    pub outage: Outage,
    /// DRBD's connection state on both nodes after the heal.
    pub drbd_after: [String; 2],
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (old, new) = (NODES[self.isolated], NODES[1 - self.isolated]);
        writeln!(
            f,
            "full partition: {old} (the holder) loses both links and the witness"
        )?;
        writeln!(
            f,
            "  {old} starts releasing        +{:8.0} ms",
            self.release_started_ms
        )?;
        writeln!(
            f,
            "  {old} runs nothing             +{:8.0} ms",
            self.released_ms
        )?;
        writeln!(
            f,
            "  {new} (witness reachable) runs the group +{:8.0} ms (no fence: after the takeover hold)",
            self.taken_over_ms
        )?;
        writeln!(
            f,
            "  never on both nodes: {} looks; client outage {:.0} ms",
            self.looks,
            self.outage.duration().as_secs_f64() * 1e3
        )?;
        writeln!(
            f,
            "  healed: exactly one primary ({new}); DRBD connection: {old} {}, {new} {}",
            self.drbd_after[self.isolated],
            self.drbd_after[1 - self.isolated]
        )
    }
}

/// The holder loses both links (so the peer and the witness). It must release its group
/// once `isolation_timeout` passed; the other node, which still reaches the witness, takes
/// over (without a fence: after its takeover hold); at no look does any member run on
/// both. Healed, exactly one node is primary and stays so.
pub fn partition(
    lab: &mut Lab,
    holder: usize,
    isolation_timeout: Duration,
) -> Result<Partition, String> {
    let (old, new) = (holder, 1 - holder);
    let (old_mac, new_mac) = (lab.mac(old), lab.mac(new));
    let prober = Prober::start(&lab.lan.client, VIP, PROBE_EVERY);
    super::pause(Duration::from_millis(500));
    let cut_ns = monotonic_ns();
    lab.set_links(old, false);
    let (mut released, mut taken_over, mut looks) = (None, None, 0);
    let limit = std::time::Instant::now() + Duration::from_secs(120);
    while released.is_none() || taken_over.is_none() {
        ensure(std::time::Instant::now() < limit, || {
            format!("after 120 s: released {released:?}, taken over {taken_over:?}")
        })?;
        let (on_old, on_new) = (lab.group_on(old), lab.group_on(new));
        let both = (on_old.vip && on_new.vip)
            || (on_old.mounted && on_new.mounted)
            || (on_old.container && on_new.container);
        ensure(!both, || {
            format!("the group runs on both: {on_old:?} and {on_new:?}")
        })?;
        looks += 1;
        let now = monotonic_ns() - cut_ns;
        if released.is_none() && on_old.none() {
            released = Some(now);
        }
        if taken_over.is_none() && on_new.all() {
            taken_over = Some(now);
        }
        super::pause(Duration::from_millis(100));
    }
    super::pause(Duration::from_millis(300));
    let probes = prober.stop()?;
    let outage = probe::outage(&probes.answers, old_mac, new_mac)?;
    let release = runs(lab, old, "release", cut_ns);
    let release_started = release
        .first()
        .and_then(|run| run["started_ns"].as_u64())
        .ok_or("the isolated node never ran a release")?;
    let release_started_ms = ms(release_started - cut_ns);
    // Detection and the witness's verdict come before the isolation timeout starts.
    let bound = isolation_timeout + Duration::from_secs(1);
    ensure(release_started_ms <= bound.as_secs_f64() * 1e3, || {
        format!("the release started {release_started_ms:.0} ms after the cut, bound {bound:?}")
    })?;

    lab.set_links(old, true);
    lab.wait_until(Duration::from_secs(30), "both hear each other", |s| {
        s.iter().flatten().count() == 2
            && s.iter()
                .flatten()
                .all(|s| s["detection"]["peer"] == "alive")
    });
    let expected = Roles::now(lab);
    ensure(expected.holders == [new], || {
        format!("after the heal: {expected:?}")
    })?;
    steady(lab, Duration::from_secs(3), &expected, |_| Ok(()))?;
    let drbd_after = [0, 1].map(|node| {
        let out = lab.drbd(node).drbdadm(&["cstate", "r0"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    });
    Ok(Partition {
        isolated: old,
        release_started_ms,
        released_ms: ms(released.unwrap_or_default()),
        taken_over_ms: ms(taken_over.unwrap_or_default()),
        looks,
        outage,
        drbd_after,
    })
}

/// Link-down events (`link_down`) the daemons reported after `since_ns`.
fn link_downs(lab: &mut Lab, since_ns: u64) -> usize {
    (0..2)
        .map(|node| {
            lab.daemon(node)
                .map(|d| d.collect_all())
                .unwrap_or_default()
                .iter()
                .filter(|line| line["monotonic_ns"].as_u64() >= Some(since_ns))
                .filter(|line| event_type(line) == Some("link_down"))
                .count()
        })
        .sum()
}

/// A stretch of adversity the cluster must ride out without a role change.
#[derive(Clone, Debug)]
pub struct Weathered {
    /// What was done.
    pub what: String,
    /// Looks at a steady cluster meanwhile.
    pub looks: u32,
    /// Link-down events both daemons reported meanwhile (flaps of single links are
    /// allowed; role changes are not).
    pub link_downs: usize,
}

impl fmt::Display for Weathered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: no role change, group only on its holder ({} looks); {} link-down events",
            self.what, self.looks, self.link_downs
        )
    }
}

/// The nftables table `inet halab` that drops `percent` % of every packet a node sends
/// on both links (output hook: lost before the peer's XDP sees it). Removed with
/// `nft delete table inet halab`.
pub fn loss_ruleset(percent: u32) -> String {
    format!(
        "table inet halab {{\n\
            chain output {{\n\
                type filter hook output priority 0; policy accept;\n\
                oifname {{ \"{}\", \"{}\" }} numgen random mod 100 < {percent} drop\n\
            }}\n\
        }}\n",
        crate::lan::Lan::IF,
        super::REPL_IF
    )
}

/// Random loss of `percent` % of every packet both nodes send on both links (nftables,
/// output hook: lost before the peer's XDP sees it) for `span`.
pub fn loss(lab: &mut Lab, percent: u32, span: Duration) -> Result<Weathered, String> {
    let expected = Roles::now(lab);
    let ruleset = loss_ruleset(percent);
    let since = monotonic_ns();
    for node in 0..2 {
        crate::nft::load(lab.ns(node), &ruleset);
    }
    let looks = steady(lab, span, &expected, |_| Ok(()));
    for node in 0..2 {
        let _ = lab
            .ns(node)
            .exec("nft", &["delete", "table", "inet", "halab"]);
    }
    Ok(Weathered {
        what: format!("{percent} % loss on both links for {} s", span.as_secs()),
        looks: looks?,
        link_downs: link_downs(lab, since),
    })
}

/// The secondary's daemon is stopped (SIGSTOP) for `stop`, then continued: it must not
/// take over when it wakes (kernel timestamps show the primary kept sending).
pub fn stopped_secondary(
    lab: &mut Lab,
    holder: usize,
    stop: Duration,
) -> Result<Weathered, String> {
    let expected = Roles::now(lab);
    let secondary = 1 - holder;
    let since = monotonic_ns();
    let daemon = lab.daemon(secondary).ok_or("the secondary has no daemon")?;
    daemon.signal(nix::sys::signal::Signal::SIGSTOP);
    super::pause(stop);
    let daemon = lab.daemon(secondary).ok_or("the secondary has no daemon")?;
    daemon.signal(nix::sys::signal::Signal::SIGCONT);
    let looks = steady(lab, Duration::from_secs(2), &expected, |_| Ok(()))?;
    Ok(Weathered {
        what: format!(
            "{}'s daemon stopped (SIGSTOP) for {} ms",
            NODES[secondary],
            stop.as_millis()
        ),
        looks,
        link_downs: link_downs(lab, since),
    })
}

/// A busy loop on every core for `span` (bounded threads of this process, ordinary
/// priority): nobody may take over.
pub fn busy_cores(lab: &mut Lab, span: Duration) -> Result<Weathered, String> {
    let expected = Roles::now(lab);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let since = monotonic_ns();
    let until = std::time::Instant::now() + span;
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while std::time::Instant::now() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
        })
        .collect();
    let looks = steady(lab, span, &expected, |_| Ok(()));
    for spinner in spinners {
        let _ = spinner.join();
    }
    Ok(Weathered {
        what: format!("busy loops on all {cores} cores for {} s", span.as_secs()),
        looks: looks?,
        link_downs: link_downs(lab, since),
    })
}

/// One move of the group by an operator command.
#[derive(Clone, Debug)]
pub struct Move {
    /// The command, as typed.
    pub command: String,
    /// From the command to the new holder running the whole group.
    pub took_ms: f64,
    /// The client's view.
    pub outage: Outage,
    /// The old holder's release run, then the new holder's acquire run.
    pub runs: [Vec<Step>; 2],
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: group moved in {:.0} ms; client outage {:.1} ms ({} probes unanswered)",
            self.command,
            self.took_ms,
            self.outage.duration().as_secs_f64() * 1e3,
            self.outage.unanswered
        )?;
        for (what, steps) in ["release", "acquire"].iter().zip(&self.runs) {
            let line: Vec<String> = steps
                .iter()
                .map(|s| format!("{} {} {:.1} ms", s.resource, s.call, s.duration_ms))
                .collect();
            writeln!(f, "  {what}: {}", line.join(", "))?;
        }
        Ok(())
    }
}

/// Waits until `ha-daemon switchover --dry-run` passes on `node`, then runs `args` on
/// its CLI, which must succeed, and waits until `to` runs the whole group and the other
/// node nothing; the client's outage from `probes` (answers after the command).
fn moved(
    lab: &mut Lab,
    node: usize,
    args: &[&str],
    to: usize,
    prober: &Prober,
) -> Result<Move, String> {
    let (old_mac, new_mac) = (lab.mac(1 - to), lab.mac(to));
    let began = std::time::Instant::now();
    let since = monotonic_ns().saturating_sub(50_000_000);
    // As an operator would: first until the preflight passes (after a move, DRBD may
    // still be resyncing the old holder).
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dry = lab.cli(node, &["switchover", "--dry-run"]);
        if dry.status.success() {
            break;
        }
        ensure(std::time::Instant::now() < until, || {
            format!(
                "the switchover preflight on {} still fails after 30 s: {}",
                NODES[node],
                String::from_utf8_lossy(&dry.stdout)
            )
        })?;
        super::pause(Duration::from_millis(100));
    }
    let since_run = monotonic_ns();
    let out = lab.cli(node, args);
    ensure(out.status.success(), || {
        format!("`ha-daemon {}` on {}: {out:?}", args.join(" "), NODES[node])
    })?;
    lab.wait_running(to, Duration::from_secs(60));
    let took_ms = began.elapsed().as_secs_f64() * 1e3;
    let away = lab.group_on(1 - to);
    ensure(away.none(), || {
        format!("{} still runs {away:?}", NODES[1 - to])
    })?;
    super::pause(Duration::from_millis(300));
    let answers: Vec<_> = prober
        .answers_so_far()
        .into_iter()
        .filter(|a| a.received_ns >= since)
        .collect();
    let run_steps = |lab: &mut Lab, node: usize, action: &str| {
        runs(lab, node, action, since_run)
            .first()
            .map(|run| steps(&run["timeline"]))
            .unwrap_or_default()
    };
    Ok(Move {
        command: format!("ha-daemon {} (on {})", args.join(" "), NODES[node]),
        took_ms,
        outage: probe::outage(&answers, old_mac, new_mac)?,
        runs: [
            run_steps(lab, 1 - to, "release"),
            run_steps(lab, to, "acquire"),
        ],
    })
}

/// A switchover there and back, asked on the holder and then on the other node.
pub fn switchover(lab: &mut Lab, holder: usize) -> Result<Vec<Move>, String> {
    let prober = Prober::start(&lab.lan.client, VIP, PROBE_EVERY);
    super::pause(Duration::from_millis(500));
    let there = moved(lab, holder, &["switchover"], 1 - holder, &prober)?;
    let back = moved(lab, holder, &["switchover"], holder, &prober)?;
    prober.stop()?;
    Ok(vec![there, back])
}

/// What standby and maintenance did.
#[derive(Clone, Debug)]
pub struct Modes {
    /// `standby on` on the holder moved the group away.
    pub standby: Move,
    /// What `switchover --to` the standby node answered (refused).
    pub refused: String,
    /// Looks at a steady cluster after `standby off` (no failback).
    pub no_failback_looks: u32,
    /// Looks during maintenance at a container stopped by hand and left stopped.
    pub maintenance_looks: u32,
    /// From `maintenance off` until the whole group ran again.
    pub resumed_ms: f64,
}

impl fmt::Display for Modes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.standby)?;
        writeln!(
            f,
            "  switchover to the standby node refused: {}",
            self.refused
        )?;
        writeln!(
            f,
            "  standby off: no failback ({} looks over 2 s)",
            self.no_failback_looks
        )?;
        writeln!(
            f,
            "maintenance on, container stopped by hand: left stopped, no role change ({} looks over 2 s)",
            self.maintenance_looks
        )?;
        writeln!(
            f,
            "maintenance off: the group runs whole again after {:.0} ms",
            self.resumed_ms
        )
    }
}

/// Standby on the holder moves the group to the other node; the standby node refuses to
/// take it; standby off does not bring it back. Maintenance on the holder: a container
/// stopped by hand stays stopped (no action at all); maintenance off: the group runs
/// whole again, on the same node.
pub fn standby_and_maintenance(lab: &mut Lab, holder: usize) -> Result<Modes, String> {
    let other = 1 - holder;
    let prober = Prober::start(&lab.lan.client, VIP, PROBE_EVERY);
    super::pause(Duration::from_millis(500));
    let standby = moved(lab, holder, &["standby", "on"], other, &prober)?;
    prober.stop()?;
    let to = (holder + 1).to_string();
    let out = lab.cli(other, &["switchover", "--to", &to]);
    let refused = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    ensure(!out.status.success(), || {
        format!("a switchover to the standby node was accepted: {out:?}")
    })?;
    let off = lab.cli(holder, &["standby", "off"]);
    ensure(off.status.success(), || format!("standby off: {off:?}"))?;
    let expected = Roles::now(lab);
    ensure(expected.holders == [other], || format!("{expected:?}"))?;
    let no_failback_looks = steady(lab, Duration::from_secs(2), &expected, |_| Ok(()))?;

    let on = lab.cli(other, &["maintenance", "on"]);
    ensure(on.status.success(), || format!("maintenance on: {on:?}"))?;
    let stopped = lab.lxc(other, "lxc-stop", &["-k"]);
    ensure(stopped.status.success(), || {
        format!("lxc-stop: {stopped:?}")
    })?;
    let mut maintenance_looks = 0;
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < until {
        let roles = Roles::now(lab);
        ensure(roles == expected, || {
            format!("roles changed in maintenance: {roles:?}")
        })?;
        let state = lab.container_state(other);
        ensure(state == "STOPPED", || {
            format!("in maintenance the container became {state}")
        })?;
        maintenance_looks += 1;
        super::pause(Duration::from_millis(200));
    }
    let resumed = std::time::Instant::now();
    let off = lab.cli(other, &["maintenance", "off"]);
    ensure(off.status.success(), || format!("maintenance off: {off:?}"))?;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let group = lab.group_on(other);
        if group.all() {
            break;
        }
        ensure(std::time::Instant::now() < until, || {
            format!(
                "30 s after maintenance off {} runs {group:?}; status {}",
                NODES[other],
                lab.status(other).unwrap_or_default()["resources"]
            )
        })?;
        super::pause(Duration::from_millis(100));
    }
    let resumed_ms = resumed.elapsed().as_secs_f64() * 1e3;
    let roles = Roles::now(lab);
    ensure(roles == expected, || {
        format!("after maintenance: {roles:?}, expected {expected:?} (same holder, same epoch)")
    })?;
    ensure(lab.group_on(holder).none(), || {
        format!("{} runs part of the group", NODES[holder])
    })?;
    Ok(Modes {
        standby,
        refused,
        no_failback_looks,
        maintenance_looks,
        resumed_ms,
    })
}

/// What restarting the primary's daemon did.
#[derive(Clone, Debug)]
pub struct Restart {
    /// What the peer's detector said while the daemon was away.
    pub peer_saw: Vec<String>,
    /// From SIGTERM until the new daemon reported the group running.
    pub back_ms: f64,
    /// The most consecutive unanswered probes from SIGTERM to the end.
    pub longest_gap: u64,
    /// Probes sent meanwhile.
    pub sent: u64,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "daemon restart on the primary (SIGTERM, start again): back with the group \
             adopted after {:.0} ms",
            self.back_ms
        )?;
        writeln!(
            f,
            "  same container, same epoch, no takeover; the peer reported: {}",
            self.peer_saw.join(", ")
        )?;
        writeln!(
            f,
            "  client: at most {} consecutive probes unanswered ({} sent)",
            self.longest_gap, self.sent
        )
    }
}

/// The primary's daemon stops (SIGTERM) and starts again: nothing is stopped or
/// restarted (same container process, same epoch), the peer does not take over (it sees
/// "daemon down": the kernel side stayed), and the client misses at most one probe.
pub fn restart(lab: &mut Lab, holder: usize) -> Result<Restart, String> {
    let expected = Roles::now(lab);
    let pid = lab.container_pid(holder);
    ensure(!pid.is_empty(), || "no container pid".to_owned())?;
    let prober = Prober::start(&lab.lan.client, VIP, PROBE_EVERY);
    super::pause(Duration::from_millis(300));
    let since = monotonic_ns();
    let began = std::time::Instant::now();
    lab.stop_daemon(holder, nix::sys::signal::Signal::SIGTERM);
    super::pause(Duration::from_millis(500));
    lab.start_daemon(holder);
    lab.wait_running(holder, Duration::from_secs(30));
    let back_ms = began.elapsed().as_secs_f64() * 1e3;
    super::pause(Duration::from_millis(500));
    let probes = prober.stop()?;
    let roles = Roles::now(lab);
    ensure(roles == expected, || {
        format!("the roles changed: {roles:?}, expected {expected:?}")
    })?;
    let after = lab.container_pid(holder);
    ensure(after == pid, || {
        format!("the container was restarted: pid {pid} -> {after}")
    })?;
    ensure(lab.group_on(1 - holder).none(), || {
        format!("{} runs part of the group", NODES[1 - holder])
    })?;
    let peer_saw: Vec<String> = lab
        .daemon(1 - holder)
        .map(|d| d.collect_all())
        .unwrap_or_default()
        .iter()
        .filter(|line| line["monotonic_ns"].as_u64() >= Some(since))
        .filter_map(|line| event_type(line).map(str::to_owned))
        .filter(|kind| kind.starts_with("peer"))
        .collect();
    ensure(!peer_saw.iter().any(|kind| kind == "peer_lost"), || {
        format!("the peer saw the restart as a loss: {peer_saw:?}")
    })?;
    let first = probes
        .answers
        .iter()
        .find(|a| a.received_ns >= since)
        .map_or(0, |a| a.seq);
    let longest_gap = longest_gap(&probes, first);
    ensure(longest_gap <= 1, || {
        format!("{longest_gap} consecutive probes went unanswered")
    })?;
    Ok(Restart {
        peer_saw,
        back_ms,
        longest_gap,
        sent: probes.sent - first,
    })
}

/// The longest run of unanswered requests from request `first` on.
fn longest_gap(probes: &Probes, first: u64) -> u64 {
    let mut answered = vec![false; usize::try_from(probes.sent).unwrap_or(0)];
    for answer in &probes.answers {
        if let Some(slot) = usize::try_from(answer.seq)
            .ok()
            .and_then(|i| answered.get_mut(i))
        {
            *slot = true;
        }
    }
    let (mut longest, mut run) = (0, 0);
    // The newest requests may still be in flight: they do not count.
    let settled = answered.len().saturating_sub(5);
    for &ok in answered
        .iter()
        .take(settled)
        .skip(usize::try_from(first).unwrap_or(0))
    {
        run = if ok { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    longest
}

/// What killing a daemon in the middle of its takeover did.
#[derive(Clone, Debug)]
pub struct MidTakeover {
    /// The node whose daemon was killed.
    pub node: usize,
    /// What ran there when it was killed.
    pub left: super::GroupOn,
    /// From the restart until it ran the whole group.
    pub recovered_ms: f64,
}

impl fmt::Display for MidTakeover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NODES[self.node];
        writeln!(
            f,
            "{name}'s daemon SIGKILLed mid-takeover (after promote, before mount): left {:?}",
            self.left
        )?;
        writeln!(
            f,
            "  restarted: {name} holds the whole group after {:.0} ms; the crashed node runs nothing",
            self.recovered_ms
        )
    }
}

/// The primary crashes; the other node's takeover is held after DRBD's promote (the
/// lab's stalling drbdadm) and its daemon is SIGKILLed there, then started again. It
/// must end with exactly one consistent owner: that node with the whole group (DRBD
/// Primary, mounted, container, VIP), the crashed one with nothing. Needs
/// [`LabOptions::stall_after_promote`].
pub fn kill_mid_takeover(lab: &mut Lab, holder: usize) -> Result<MidTakeover, String> {
    let node = 1 - holder;
    std::fs::write(lab.stall_file(node), b"").map_err(|e| format!("stall file: {e}"))?;
    lab.crash(holder);
    lab.wait_until(Duration::from_secs(30), "the promote held", |_| {
        lab.promoted_file(node).exists()
    });
    lab.stop_daemon(node, nix::sys::signal::Signal::SIGKILL);
    let _ = std::fs::remove_file(lab.stall_file(node));
    let left = lab.group_on(node);
    let role = lab.drbd(node).adm_ok(&["role", "r0"]);
    ensure(role.starts_with("Primary/") && !left.mounted, || {
        format!("not stopped between promote and mount: DRBD {role}, {left:?}")
    })?;
    let began = std::time::Instant::now();
    lab.start_daemon(node);
    lab.wait_running(node, Duration::from_secs(60));
    let recovered_ms = began.elapsed().as_secs_f64() * 1e3;
    let (here, there) = (lab.group_on(node), lab.group_on(holder));
    ensure(here.all() && there.none(), || {
        format!(
            "{} runs {here:?}, {} runs {there:?}",
            NODES[node], NODES[holder]
        )
    })?;
    let role = lab.drbd(node).adm_ok(&["role", "r0"]);
    ensure(role.starts_with("Primary/"), || format!("DRBD is {role}"))?;
    Ok(MidTakeover {
        node,
        left,
        recovered_ms,
    })
}
