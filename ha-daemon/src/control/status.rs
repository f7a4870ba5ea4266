//! The status snapshot `ha-daemon status` prints, and its table. Pure: the snapshot is
//! built from the detector's [`LinkStatus`] and the time it was taken.

use std::fmt::{self, Write as _};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::link::{DownReason, LinkState, LinkStatus};
use crate::core::time::Instant;

/// What the daemon reports about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The cluster.
    pub cluster_id: u32,
    /// This node.
    pub node_id: u16,
    /// The peer.
    pub peer_node_id: u16,
    /// `ebpf` or `userspace` (degraded), as the daemon's `started` line says.
    pub evidence: String,
    /// Seconds since the daemon started.
    pub uptime_s: f64,
    /// The failure detector's view.
    pub detection: DetectionStatus,
    /// The resource group as monitored just now (`None` without resources).
    pub resources: Option<serde_json::Value>,
    /// The cluster core's view (`None` without `[cluster]`: the daemon only watches).
    #[serde(default)]
    pub cluster: Option<ClusterStatus>,
}

/// The cluster core's view of the roles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// `primary` (holding the group, or acquiring or releasing it) or `secondary`.
    pub role: String,
    /// The highest epoch known.
    pub epoch: u64,
    /// Who holds the group: `us`, `peer` or `nobody`.
    pub owner: String,
    /// Standby is on here.
    pub standby: bool,
    /// Maintenance is on here.
    pub maintenance: bool,
    /// This node takes part in a switchover.
    pub switchover: bool,
    /// The group's health here, as advertised: `healthy`, `failed`, `unknown`.
    pub health: String,
    /// The last acquire run here, with its decision time.
    pub last_failover: Option<FailoverReport>,
    /// Why a takeover on peer loss is blocked now (`startup_wait`, `isolated`,
    /// `not_eligible`, ...), if it is.
    #[serde(default)]
    pub takeover_blocked: Option<String>,
    /// What is left of the start-up wait (the peer not heard since start), ms.
    #[serde(default)]
    pub startup_wait_left_ms: Option<u64>,
    /// The DRBD disk of every `drbd` member (empty without one).
    #[serde(default)]
    pub disks: Vec<DiskReport>,
}

/// One DRBD disk as the cluster core sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskReport {
    /// What was found, e.g. `r0: UpToDate` or `r0: volume 0 Inconsistent`.
    pub state: String,
    /// It can take a promotion (takeover or switchover to this node).
    pub usable: bool,
}

/// The last acquire: when it was decided, the run (`{"action": "acquire", "epoch",
/// "reason", "result", "started_ns", "timeline"}`) and when it ended (CLOCK_MONOTONIC
/// ns).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverReport {
    /// When the claim started (the decision), if this run of the daemon saw it.
    pub decided_ns: Option<u64>,
    /// The run.
    pub run: serde_json::Value,
    /// When the run ended.
    pub done_ns: u64,
}

/// The detector's view of the peer and of every link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionStatus {
    /// `unknown`, `alive`, `daemon_down` or `lost`.
    pub peer: String,
    /// Every link, in link-slot order.
    pub links: Vec<LinkReport>,
}

/// One link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkReport {
    /// The link's name.
    pub name: String,
    /// Its interface.
    pub interface: String,
    /// Up (evidence within the dead time and `rise` met).
    pub up: bool,
    /// Why it is down: `startup`, `silence` or `carrier_loss`; `None` when up.
    pub down_reason: Option<String>,
    /// Whether our interface has carrier.
    pub carrier: bool,
    /// The dead time in force, ms.
    pub dead_after_ms: f64,
    /// The loss probability behind it (`None` before any measurement).
    pub loss: Option<f64>,
    /// The jitter allowance behind it, ms.
    pub jitter_ms: f64,
    /// Age of the newest evidence of any kind, ms (`None` before any).
    pub evidence_age_ms: Option<f64>,
    /// Its kind, e.g. `verified_heartbeat`, `echo`, `replication`.
    pub evidence_kind: Option<String>,
    /// Good intervals the link needs to come up (grows with flap dampening).
    pub rise_required: u32,
}

impl LinkReport {
    /// The report of link `name` on `interface` with `status`, as of `now`.
    pub fn new(name: &str, interface: &str, status: &LinkStatus, now: Instant) -> Self {
        let down_reason = match status.state {
            LinkState::Up { .. } => None,
            LinkState::Down { reason, .. } => Some(
                match reason {
                    DownReason::Startup => "startup",
                    DownReason::Silence { .. } => "silence",
                    DownReason::CarrierLoss => "carrier_loss",
                }
                .to_owned(),
            ),
        };
        LinkReport {
            name: name.to_owned(),
            interface: interface.to_owned(),
            up: status.state.is_up(),
            down_reason,
            carrier: status.carrier_up,
            dead_after_ms: millis(status.dead_after),
            loss: status.loss,
            jitter_ms: millis(status.jitter),
            evidence_age_ms: status
                .newest_evidence
                .map(|evidence| millis(now.saturating_duration_since(evidence.at))),
            evidence_kind: status.newest_evidence.and_then(|evidence| {
                serde_json::to_value(evidence.kind)
                    .ok()
                    .and_then(|kind| kind.as_str().map(str::to_owned))
            }),
            rise_required: status.rise_required,
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

impl fmt::Display for Status {
    /// The human table of `ha-daemon status`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cluster {} node {} (peer {}): peer {}, evidence {}, up {:.0} s",
            self.cluster_id,
            self.node_id,
            self.peer_node_id,
            self.detection.peer,
            self.evidence,
            self.uptime_s
        )?;
        writeln!(
            f,
            "{:<12} {:<12} {:<18} {:>8} {:>8} {:>9} {:>10} {:>5}",
            "link", "interface", "state", "dead ms", "loss", "jitter ms", "evidence", "rise"
        )?;
        for link in &self.detection.links {
            let state = match (&link.down_reason, link.carrier) {
                (None, _) => "up".to_owned(),
                (Some(reason), true) => format!("down ({reason})"),
                (Some(reason), false) => format!("down ({reason}, no carrier)"),
            };
            let mut age = String::new();
            match link.evidence_age_ms {
                Some(ms) => {
                    let _ = write!(age, "{ms:.1} ms");
                }
                None => age.push_str("none"),
            }
            let loss = link
                .loss
                .map_or("-".to_owned(), |loss| format!("{loss:.4}"));
            writeln!(
                f,
                "{:<12} {:<12} {:<18} {:>8.1} {:>8} {:>9.1} {:>10} {:>5}",
                link.name,
                link.interface,
                state,
                link.dead_after_ms,
                loss,
                link.jitter_ms,
                age,
                link.rise_required
            )?;
        }
        if let Some(cluster) = &self.cluster {
            let mut flags: Vec<&str> = Vec::new();
            for (on, name) in [
                (cluster.standby, "standby"),
                (cluster.maintenance, "maintenance"),
                (cluster.switchover, "switchover"),
            ] {
                if on {
                    flags.push(name);
                }
            }
            writeln!(
                f,
                "role {}, epoch {}, owner {}, group {}{}",
                cluster.role,
                cluster.epoch,
                cluster.owner,
                cluster.health,
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(", {}", flags.join(", "))
                }
            )?;
            if let Some(left) = cluster.startup_wait_left_ms {
                writeln!(
                    f,
                    "start-up wait: peer not heard since start; no fence or takeover for {:.1} s",
                    left as f64 / 1e3
                )?;
            }
            for disk in &cluster.disks {
                let usable = if disk.usable { "usable" } else { "NOT usable" };
                writeln!(f, "disk {}: {usable}", disk.state)?;
            }
            if let Some(cause) = &cluster.takeover_blocked {
                writeln!(f, "takeover blocked: {cause}")?;
            }
            if let Some(failover) = &cluster.last_failover {
                let run = &failover.run;
                let took = failover
                    .decided_ns
                    .map(|at| failover.done_ns.saturating_sub(at) as f64 / 1e6);
                writeln!(
                    f,
                    "last acquire: epoch {}, {}, {}{}",
                    run["epoch"],
                    run["reason"].as_str().unwrap_or("?"),
                    run["result"]["type"].as_str().unwrap_or("?"),
                    took.map_or(String::new(), |ms| format!(", {ms:.1} ms from decision"))
                )?;
            }
        }
        match &self.resources {
            Some(resources) => {
                writeln!(
                    f,
                    "resources: {}",
                    resources["state"].as_str().unwrap_or("?")
                )?;
                for member in resources["members"].as_array().into_iter().flatten() {
                    writeln!(
                        f,
                        "  {:<16} {:<5} {}",
                        member["resource"].as_str().unwrap_or("?"),
                        member["agent"].as_str().unwrap_or("?"),
                        member["health"].as_str().unwrap_or("?")
                    )?;
                }
                Ok(())
            }
            None => writeln!(f, "resources: none configured"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::evidence::{Evidence, EvidenceKind, LinkId};

    fn status(state: LinkState, newest: Option<Evidence>) -> LinkStatus {
        LinkStatus {
            state,
            carrier_up: true,
            newest_evidence: newest,
            dead_after: Duration::from_millis(17),
            rise_required: 3,
            penalty: 0.0,
            loss: Some(0.001),
            jitter: Duration::from_micros(1500),
        }
    }

    #[test]
    fn a_link_report_carries_state_times_and_evidence() {
        let link = LinkId::new(0).unwrap();
        let evidence = Evidence {
            link,
            kind: EvidenceKind::VerifiedHeartbeat,
            at: Instant::from_nanos(1_000_000_000),
        };
        let now = Instant::from_nanos(1_004_000_000);
        let up = status(
            LinkState::Up {
                since: Instant::ZERO,
            },
            Some(evidence),
        );
        let report = LinkReport::new("b2b", "eth1", &up, now);
        assert!(report.up);
        assert_eq!(report.down_reason, None);
        assert_eq!(report.dead_after_ms, 17.0);
        assert_eq!(report.evidence_age_ms, Some(4.0));
        assert_eq!(report.evidence_kind.as_deref(), Some("verified_heartbeat"));
        let down = status(
            LinkState::Down {
                since: Instant::ZERO,
                reason: DownReason::CarrierLoss,
                rising_since: None,
            },
            None,
        );
        let report = LinkReport::new("lan", "eth0", &down, now);
        assert!(!report.up);
        assert_eq!(report.down_reason.as_deref(), Some("carrier_loss"));
        assert_eq!(report.evidence_age_ms, None);
        let table = Status {
            cluster_id: 7,
            node_id: 1,
            peer_node_id: 2,
            evidence: "ebpf".to_owned(),
            uptime_s: 3.0,
            detection: DetectionStatus {
                peer: "alive".to_owned(),
                links: vec![report],
            },
            resources: None,
            cluster: Some(ClusterStatus {
                role: "primary".to_owned(),
                epoch: 4,
                owner: "us".to_owned(),
                standby: false,
                maintenance: true,
                switchover: false,
                health: "healthy".to_owned(),
                last_failover: None,
                takeover_blocked: Some("startup_wait".to_owned()),
                startup_wait_left_ms: Some(2_500),
                disks: vec![DiskReport {
                    state: "r0: volume 0 Inconsistent".to_owned(),
                    usable: false,
                }],
            }),
        }
        .to_string();
        assert!(
            table.contains("role primary, epoch 4, owner us, group healthy, maintenance"),
            "{table}"
        );
        assert!(table.contains("peer alive"), "{table}");
        assert!(table.contains("takeover blocked: startup_wait"), "{table}");
        assert!(table.contains("for 2.5 s"), "{table}");
        assert!(
            table.contains("disk r0: volume 0 Inconsistent: NOT usable"),
            "{table}"
        );
        assert!(table.contains("down (carrier_loss)"), "{table}");
        assert!(table.contains("resources: none configured"), "{table}");
    }
}
