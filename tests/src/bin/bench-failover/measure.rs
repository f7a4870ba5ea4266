//! The measurements on a running [`Cluster`]: one failover, a stretch of heartbeat
//! loss, a stretch of CPU starvation, and one crash of the full group.

use std::time::{Duration, Instant};

use ha_daemon::io::clock::monotonic_ns;
use ha_tests::lab::probe::{self, Prober};
use ha_tests::lab::scenario::{self, PROBE_EVERY};
use ha_tests::lab::{self, Lab, LabOptions, NODES, VIP};
use ha_tests::peers::{VipChanges, VipWatch, vip_changes};

use crate::systems::{Cluster, Fault, System, settle};

/// The longest a failover may take before the run counts as failed.
const FAILOVER_LIMIT: Duration = Duration::from_secs(40);

/// One failover as the client saw it.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct Failover {
    /// Last answer from the old holder to the first from the new one, ms.
    pub(crate) outage_ms: f64,
    /// Probes unanswered in between.
    pub(crate) unanswered: u64,
    /// Our daemon's `peer_lost` on the new holder after the fault, ms (ours only; none
    /// when the peer was not lost, e.g. a lan0 cut with the back-to-back link up).
    pub(crate) detection_ms: Option<f64>,
}

/// Lets the cluster settle, then faults the holder with `fault` and measures the
/// client-observed outage.
pub(crate) fn failover(cluster: &mut Cluster, fault: Fault) -> Result<Failover, String> {
    lab::pause(settle(cluster.system));
    let holder = cluster.single_holder(Duration::from_secs(30))?;
    let new = 1 - holder;
    let (old_mac, new_mac) = (cluster.lab.mac(holder), cluster.lab.mac(new));
    let prober = Prober::start(&cluster.lab.lan.client, VIP, PROBE_EVERY);
    lab::pause(Duration::from_secs(1));
    if !prober.answers_so_far().iter().any(|a| a.mac == old_mac) {
        prober.stop()?;
        return Err(format!(
            "spurious move or no answer: the client got no answer from the holder {} \
             in the second before the fault",
            NODES[holder]
        ));
    }
    let fault_ns = monotonic_ns();
    cluster.fault(holder, fault);
    let began = Instant::now();
    loop {
        let moved = prober
            .answers_so_far()
            .iter()
            .any(|a| a.mac == new_mac && a.received_ns > fault_ns);
        if moved {
            break;
        }
        if began.elapsed() > FAILOVER_LIMIT {
            prober.stop()?;
            return Err(format!(
                "{} s after the fault, the client got no answer from {} (VIP there: {})",
                FAILOVER_LIMIT.as_secs(),
                NODES[new],
                cluster.vip_on(new)
            ));
        }
        lab::pause(Duration::from_millis(20));
    }
    lab::pause(Duration::from_millis(300));
    let probes = prober.stop()?;
    if let Some(early) = probes
        .answers
        .iter()
        .find(|a| a.mac == new_mac && a.received_ns <= fault_ns)
    {
        return Err(format!(
            "spurious move: {} answered request {} before the fault",
            NODES[new], early.seq
        ));
    }
    let outage = probe::outage(&probes.answers, old_mac, new_mac)?;
    let detection_ms = match cluster.system {
        System::Ours { .. } => cluster.peer_lost_ms(new, fault_ns),
        _ => None,
    };
    Ok(Failover {
        outage_ms: outage.duration().as_secs_f64() * 1e3,
        unanswered: outage.unanswered,
        detection_ms,
    })
}

/// What a stretch of adversity did to the VIP.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct Weather {
    /// Loss in % (none for starvation).
    pub(crate) loss_percent: Option<u32>,
    /// How long, s.
    pub(crate) span_s: u64,
    /// VIP gains and losses on the nodes, and time on both.
    pub(crate) changes: VipChanges,
    /// Our daemons' `peer_lost` events meanwhile (ours only): false alarms, each one
    /// a takeover or a fence of the other node.
    pub(crate) peer_lost: Option<usize>,
}

/// Random loss of `percent` % of what both nodes send on both links (the lab's loss
/// ruleset) for `span`, watching the VIP on both nodes.
pub(crate) fn flapping(
    cluster: &mut Cluster,
    percent: u32,
    span: Duration,
) -> Result<Weather, String> {
    cluster.heal()?;
    let start = [cluster.vip_on(0), cluster.vip_on(1)];
    let watch = VipWatch::start(names(&cluster.lab), VIP)?;
    let start_ns = monotonic_ns();
    let ruleset = scenario::loss_ruleset(percent);
    for node in 0..2 {
        ha_tests::nft::load(cluster.lab.ns(node), &ruleset);
    }
    lab::pause(span);
    let end_ns = monotonic_ns();
    for node in 0..2 {
        let _ = cluster
            .lab
            .ns(node)
            .exec("nft", &["delete", "table", "inet", "halab"]);
    }
    let events: Vec<_> = watch
        .events()
        .into_iter()
        .filter(|e| e.at_ns <= end_ns)
        .collect();
    Ok(Weather {
        loss_percent: Some(percent),
        span_s: span.as_secs(),
        changes: vip_changes(start, &events, end_ns),
        peer_lost: cluster.peer_losses(start_ns, end_ns),
    })
}

/// How long after the starvation its effects are still counted.
const STARVE_TAIL: Duration = Duration::from_secs(2);

/// Busy loops on every core (threads of this process, ordinary priority) for `span`:
/// VIP changes meanwhile and [`STARVE_TAIL`] after.
pub(crate) fn starvation(cluster: &mut Cluster, span: Duration) -> Result<Weather, String> {
    cluster.heal()?;
    let start = [cluster.vip_on(0), cluster.vip_on(1)];
    let watch = VipWatch::start(names(&cluster.lab), VIP)?;
    let start_ns = monotonic_ns();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let until = Instant::now() + span;
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
        })
        .collect();
    for spinner in spinners {
        let _ = spinner.join();
    }
    lab::pause(STARVE_TAIL);
    let end_ns = monotonic_ns();
    Ok(Weather {
        loss_percent: None,
        span_s: span.as_secs(),
        changes: vip_changes(start, &watch.events(), end_ns),
        peer_lost: cluster.peer_losses(start_ns, end_ns),
    })
}

fn names(lab: &Lab) -> [&str; 2] {
    [lab.ns(0).name(), lab.ns(1).name()]
}

/// One crash of the primary in the full lab (DRBD, filesystem, container, VIP; fenced,
/// heartbeat 5 ms): the lab's crash scenario.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct FullGroup {
    /// Client-observed outage, ms.
    pub(crate) outage_ms: f64,
    /// The survivor's `peer_lost`, ms after the crash.
    pub(crate) detection_ms: f64,
}

/// Builds the full lab, starts it and crashes the primary once.
pub(crate) fn full_group() -> Result<FullGroup, String> {
    let mut lab = Lab::new(&LabOptions::default());
    let holder = lab.start_cluster();
    let crash = scenario::crash(&mut lab, holder)?;
    Ok(FullGroup {
        outage_ms: crash.outage.duration().as_secs_f64() * 1e3,
        detection_ms: crash.detection_ms,
    })
}
