//! The preflight of a switchover (run for `switchover --dry-run` and before every real
//! one): named checks, and the steps the switchover would take. Pure: built from facts
//! the daemon gathered (the core's own check, the links, the peer's advert, the DRBD
//! disks, the group's members).
//!
//! Checks, each passing or failing with a reason: the core accepts the request (a node
//! holds the group, the target is the other one, the peer is alive and can take it,
//! no maintenance here, no switchover or takeover under way); every link to the peer is
//! up; the peer is neither in standby (when it is the target) nor in maintenance, nor
//! already in a switchover; every DRBD disk is in sync with the peer (connected, both
//! UpToDate, nothing out of sync, as our side of the connection sees it).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::cluster::disk::DiskVerdict;
use crate::core::cluster::{Advert, CommandError, SwitchoverPlan};
use crate::core::wire::{Flags, ResourceHealth, Role};

/// What the preflight is built from.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// This node's id.
    pub me: u16,
    /// The peer's id.
    pub peer: u16,
    /// The core's verdict on the request.
    pub request: Result<SwitchoverPlan, CommandError>,
    /// Every link to the peer by name, and whether it is up.
    pub links: &'a [(String, bool)],
    /// The peer's latest advert.
    pub peer_advert: Option<Advert>,
    /// Every DRBD disk of the group (none without a `drbd` member).
    pub disks: &'a [DiskVerdict],
    /// The group's members in start order.
    pub members: &'a [String],
    /// The bound of each switchover step.
    pub step_timeout: Duration,
}

/// One named check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `request`, `links`, `peer` or `disk`.
    pub check: String,
    /// It passed.
    pub ok: bool,
    /// What was found, or why it failed.
    pub detail: String,
}

/// The checks and the steps of a switchover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// What the switchover would do, step by step (empty when the core refuses it).
    pub steps: Vec<String>,
}

impl Preflight {
    /// The preflight of `facts`.
    pub fn new(facts: &Facts<'_>) -> Self {
        let mut checks = Vec::new();
        let mut check = |name: &str, result: Result<String, String>| {
            let (ok, detail) = match result {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            checks.push(Check {
                check: name.to_owned(),
                ok,
                detail,
            });
        };
        check(
            "request",
            match &facts.request {
                Ok(plan) => Ok(format!(
                    "node {} holds the group, node {} takes it",
                    plan.holder, plan.target
                )),
                Err(error) => Err(error.to_string()),
            },
        );
        check("links", links(facts.links));
        let peer_is_target = facts
            .request
            .as_ref()
            .map_or(true, |plan| plan.target == facts.peer);
        check("peer", peer(facts.peer, facts.peer_advert, peer_is_target));
        check("disk", disks(facts.disks));
        let steps = match &facts.request {
            Ok(plan) => steps(facts, plan),
            Err(_) => Vec::new(),
        };
        Preflight { checks, steps }
    }

    /// Why the switchover is refused (every failed check), or `None` when all passed.
    pub fn refusal(&self) -> Option<String> {
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|check| !check.ok)
            .map(|check| check.detail.as_str())
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

fn links(links: &[(String, bool)]) -> Result<String, String> {
    let down: Vec<&str> = links
        .iter()
        .filter(|(_, up)| !up)
        .map(|(name, _)| name.as_str())
        .collect();
    if down.is_empty() {
        Ok(format!("every link to the peer is up ({})", names(links)))
    } else {
        Err(format!("link {} to the peer is down", down.join(", ")))
    }
}

fn names(links: &[(String, bool)]) -> String {
    links
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn peer(id: u16, advert: Option<Advert>, target: bool) -> Result<String, String> {
    let Some(advert) = advert else {
        return Err(format!("node {id} has not been heard"));
    };
    if advert.flags.contains(Flags::MAINTENANCE) {
        return Err(format!("node {id} is in maintenance"));
    }
    if target && advert.flags.contains(Flags::STANDBY) {
        return Err(format!("node {id} is in standby"));
    }
    if target && advert.health == ResourceHealth::Failed {
        return Err(format!("node {id} is marked failed for the group"));
    }
    if advert.flags.contains(Flags::SWITCHOVER_REQUEST)
        || advert.flags.contains(Flags::SWITCHOVER_ACK)
    {
        return Err(format!("node {id} takes part in a switchover already"));
    }
    let role = match advert.role {
        Role::Primary => "primary",
        Role::Secondary => "secondary",
    };
    Ok(format!(
        "node {id} is {role} at epoch {}, not in standby or maintenance",
        advert.epoch
    ))
}

fn disks(disks: &[DiskVerdict]) -> Result<String, String> {
    if disks.is_empty() {
        return Ok("no drbd member".to_owned());
    }
    let failed: Vec<&str> = disks
        .iter()
        .filter_map(|disk| disk.sync.as_ref().err().map(String::as_str))
        .collect();
    if failed.is_empty() {
        Ok("connected, UpToDate on both nodes, nothing out of sync".to_owned())
    } else {
        Err(failed.join("; "))
    }
}

fn steps(facts: &Facts<'_>, plan: &SwitchoverPlan) -> Vec<String> {
    let (holder, target) = (plan.holder, plan.target);
    let stops: Vec<String> = facts
        .members
        .iter()
        .rev()
        .map(|m| format!("stop {m}"))
        .collect();
    let starts: Vec<String> = facts.members.iter().map(|m| format!("start {m}")).collect();
    let mut steps = Vec::new();
    if target == facts.me {
        steps.push(format!(
            "node {target} asks node {holder} to hand the group over"
        ));
    }
    steps.extend([
        format!("node {holder} asks node {target} to take the group"),
        format!("node {target} acknowledges"),
        format!(
            "node {holder} releases the group: {}",
            list_or_nothing(&stops)
        ),
        format!("node {holder} advertises secondary: released"),
        format!(
            "node {target} raises the epoch to {}, persists it (write, fsync, rename) and announces its claim",
            plan.epoch
        ),
        format!("node {target} acquires once node {holder} acknowledges the claim"),
        format!(
            "node {target} starts the group: {}",
            list_or_nothing(&starts)
        ),
    ]);
    let mut numbered: Vec<String> = steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| format!("{}. {step}", i + 1))
        .collect();
    numbered.push(format!(
        "each step waits at most {:?}; a timeout or failure leaves one clear holder (or none, reported)",
        facts.step_timeout
    ));
    numbered
}

fn list_or_nothing(items: &[String]) -> String {
    if items.is_empty() {
        "no member".to_owned()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Preflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "preflight:")?;
        for check in &self.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            writeln!(f, "  {mark} {:<8} {}", check.check, check.detail)?;
        }
        if !self.steps.is_empty() {
            writeln!(f, "switchover steps:")?;
            for step in &self.steps {
                writeln!(f, "  {step}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(flags: Flags) -> Advert {
        Advert {
            role: Role::Secondary,
            epoch: 4,
            flags,
            health: ResourceHealth::Healthy,
        }
    }

    fn facts<'a>(links: &'a [(String, bool)], disks: &'a [DiskVerdict]) -> Facts<'a> {
        Facts {
            me: 1,
            peer: 2,
            request: Ok(SwitchoverPlan {
                holder: 1,
                target: 2,
                epoch: 5,
            }),
            links,
            peer_advert: Some(advert(Flags::empty())),
            disks,
            members: &[],
            step_timeout: Duration::from_secs(10),
        }
    }

    fn in_sync() -> DiskVerdict {
        DiskVerdict {
            usable: true,
            state: "r0: UpToDate".to_owned(),
            sync: Ok(()),
        }
    }

    #[test]
    fn all_checks_pass_and_the_steps_name_every_member_in_order() {
        let links = [("b2b".to_owned(), true), ("lan".to_owned(), true)];
        let disks = [in_sync()];
        let members = ["data".to_owned(), "fs".to_owned(), "ip".to_owned()];
        let mut facts = facts(&links, &disks);
        facts.members = &members;
        let preflight = Preflight::new(&facts);
        assert_eq!(preflight.refusal(), None, "{preflight}");
        let text = preflight.to_string();
        for wanted in [
            "ok   links    every link to the peer is up (b2b, lan)",
            "1. node 1 asks node 2 to take the group",
            "3. node 1 releases the group: stop ip, stop fs, stop data",
            "5. node 2 raises the epoch to 5",
            "7. node 2 starts the group: start data, start fs, start ip",
            "at most 10s",
        ] {
            assert!(text.contains(wanted), "{wanted:?} missing:\n{text}");
        }
    }

    #[test]
    fn every_failed_check_is_named_in_the_refusal() {
        let links = [("b2b".to_owned(), true), ("lan".to_owned(), false)];
        let disks = [DiskVerdict {
            sync: Err("r0: peer volume 0 Inconsistent".to_owned()),
            ..in_sync()
        }];
        let mut facts = facts(&links, &disks);
        facts.peer_advert = Some(advert(Flags::STANDBY));
        let refusal = Preflight::new(&facts).refusal().expect("refused");
        assert_eq!(
            refusal,
            "link lan to the peer is down; node 2 is in standby; \
             r0: peer volume 0 Inconsistent"
        );
        facts.peer_advert = Some(advert(Flags::MAINTENANCE));
        assert!(
            Preflight::new(&facts)
                .refusal()
                .expect("refused")
                .contains("node 2 is in maintenance")
        );
    }

    #[test]
    fn a_refused_request_has_no_steps_and_standby_of_a_peer_handing_over_is_fine() {
        let links = [("b2b".to_owned(), true)];
        let mut facts = facts(&links, &[]);
        facts.request = Err(CommandError::Busy);
        let preflight = Preflight::new(&facts);
        assert!(preflight.steps.is_empty());
        assert!(
            preflight
                .refusal()
                .expect("refused")
                .contains("another switchover or takeover is under way")
        );
        facts.request = Ok(SwitchoverPlan {
            holder: 2,
            target: 1,
            epoch: 5,
        });
        facts.peer_advert = Some(advert(Flags::STANDBY));
        let preflight = Preflight::new(&facts);
        assert_eq!(preflight.refusal(), None, "{preflight}");
        assert!(preflight.steps[0].contains("node 1 asks node 2 to hand the group over"));
    }
}
