//! Watching a held resource group: monitor every member at an interval, restart a
//! failed member (with the members above it) while it has restarts left, and report.
//! The decisions are [`Supervisor::judge`]'s; this is the loop around it.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::core::plan::{Call, Outcome, Purpose};
use crate::core::supervision::{Supervisor, Survey, Verdict};
use crate::io::clock;
use crate::resource::group::{ResourceGroup, StepRecord, Timeline};

/// How a held group is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupervisionSettings {
    /// Time between monitoring rounds.
    pub monitor_interval: Duration,
    /// Restarts of one member allowed within `restart_window` before the group is failed.
    pub max_restarts: u32,
    /// Restarts older than this are forgiven.
    pub restart_window: Duration,
}

impl SupervisionSettings {
    /// Defaults: monitor every 10 s, at most 3 restarts of a member within 10 minutes.
    pub const DEFAULT: SupervisionSettings = SupervisionSettings {
        monitor_interval: Duration::from_secs(10),
        max_restarts: 3,
        restart_window: Duration::from_secs(600),
    };
}

/// What the supervisor reports, as the daemon prints it (one JSON object per line).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupReport {
    /// The group as found by monitoring, with each member's health.
    Survey(SurveyReport),
    /// A member failed monitoring and was restarted (with the members above it).
    Restarted {
        /// The member's name.
        resource: String,
        /// Its health that caused the restart.
        health: String,
        /// The restart, step by step.
        timeline: TimelineReport,
    },
    /// A member failed and has no restarts left, or its restart failed: the group has
    /// failed here and is no longer watched; the cluster logic decides what follows.
    Failed {
        /// The member's name.
        resource: String,
        /// Why.
        reason: String,
    },
}

/// The group as found by monitoring.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SurveyReport {
    /// `running`, `stopped` or `partial`.
    pub state: &'static str,
    /// Every member, in start order.
    pub members: Vec<MemberReport>,
}

/// One member in a [`SurveyReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberReport {
    /// Its name.
    pub resource: String,
    /// Its agent kind.
    pub agent: &'static str,
    /// `running`, `stopped` or `failed: REASON`.
    pub health: String,
}

/// A [`Timeline`] as printed: durations in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineReport {
    /// The steps in the order they ran.
    pub steps: Vec<StepReport>,
    /// How the run ended, e.g. `Started` or `StartFailed { failed: 2, .. }`.
    pub outcome: String,
    /// Total milliseconds.
    pub total_ms: f64,
}

/// One step of a [`TimelineReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    /// The resource's name.
    pub resource: String,
    /// Its agent kind.
    pub agent: &'static str,
    /// `start` or `stop`.
    pub call: &'static str,
    /// `start`, `stop`, `rollback` or `restart`.
    pub purpose: &'static str,
    /// Milliseconds from the start of the run.
    pub offset_ms: f64,
    /// Milliseconds it took.
    pub duration_ms: f64,
    /// What went wrong, if it failed.
    pub error: Option<String>,
}

impl From<&Timeline> for TimelineReport {
    fn from(timeline: &Timeline) -> Self {
        TimelineReport {
            steps: timeline.steps.iter().map(StepReport::from).collect(),
            outcome: format!("{:?}", timeline.outcome),
            total_ms: millis(timeline.total),
        }
    }
}

impl From<&StepRecord> for StepReport {
    fn from(step: &StepRecord) -> Self {
        StepReport {
            resource: step.resource.clone(),
            agent: step.agent,
            call: match step.call {
                Call::Start => "start",
                Call::Stop => "stop",
            },
            purpose: match step.purpose {
                Purpose::Start => "start",
                Purpose::Stop => "stop",
                Purpose::Rollback => "rollback",
                Purpose::Restart => "restart",
            },
            offset_ms: millis(step.offset),
            duration_ms: millis(step.duration),
            error: step.error.clone(),
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Monitors every member once and classifies the group. Changes nothing: this is how
/// the daemon adopts a group that is already running when it starts.
pub async fn survey(group: &ResourceGroup) -> (Survey, SurveyReport) {
    let healths = group.monitor().await;
    let survey = Survey::of(&healths);
    let state = match survey {
        Survey::Running => "running",
        Survey::Stopped => "stopped",
        Survey::Partial(_) => "partial",
    };
    let members = group
        .members()
        .iter()
        .zip(&healths)
        .map(|(member, health)| MemberReport {
            resource: member.name.clone(),
            agent: member.agent.kind(),
            health: health.to_string(),
        })
        .collect();
    (survey, SurveyReport { state, members })
}

/// Watches a running group until it fails for good or `reports` is closed: monitors at
/// the interval, restarts failed members, and sends what happened to `reports`.
pub async fn supervise(
    group: &ResourceGroup,
    settings: SupervisionSettings,
    reports: mpsc::UnboundedSender<GroupReport>,
) {
    let mut supervisor = Supervisor::new(
        group.members().len(),
        settings.max_restarts,
        settings.restart_window,
    );
    let mut ticks = tokio::time::interval(settings.monitor_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = reports.closed() => return,
        }
        let healths = group.monitor().await;
        let name = |member: usize| group.members()[member].name.clone();
        let report = match supervisor.judge(clock::now(), &healths) {
            Verdict::Healthy => continue,
            Verdict::Restart { member, health } => {
                tracing::warn!(resource = %name(member), %health, "restarting");
                let timeline = group.restart(member).await;
                let restarted = GroupReport::Restarted {
                    resource: name(member),
                    health: health.to_string(),
                    timeline: TimelineReport::from(&timeline),
                };
                if timeline.outcome == Outcome::Started {
                    restarted
                } else {
                    let _ = reports.send(restarted);
                    failed(
                        name(member),
                        format!("restart ended {:?}", timeline.outcome),
                    )
                }
            }
            Verdict::Failed { member, health } => {
                failed(name(member), format!("{health}; no restarts left"))
            }
        };
        let done = matches!(report, GroupReport::Failed { .. });
        if reports.send(report).is_err() || done {
            return;
        }
    }
}

fn failed(resource: String, reason: String) -> GroupReport {
    tracing::error!(%resource, %reason, "resource group failed");
    GroupReport::Failed { resource, reason }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::resource::fake::Fake;
    use crate::resource::group::{Member, Timeouts};

    /// A running three-member group whose members' running flags the test holds.
    fn running_group(log: &Arc<Mutex<Vec<String>>>) -> (ResourceGroup, Vec<Arc<Mutex<bool>>>) {
        let mut flags = Vec::new();
        let members = ["drbd", "mount", "lxc"]
            .into_iter()
            .map(|name| {
                let fake = Fake::new(name, log);
                *fake.running.lock().unwrap() = true;
                flags.push(Arc::clone(&fake.running));
                Member {
                    name: name.to_owned(),
                    agent: Box::new(fake),
                    timeouts: Timeouts::DEFAULT,
                }
            })
            .collect();
        (ResourceGroup::new(members), flags)
    }

    #[tokio::test]
    async fn a_running_group_is_adopted_without_any_call() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (group, _flags) = running_group(&log);
        let (survey, report) = survey(&group).await;
        assert_eq!(survey, Survey::Running);
        assert_eq!(report.state, "running");
        assert_eq!(report.members.len(), 3);
        assert!(
            log.lock().unwrap().is_empty(),
            "adoption ran {:?}",
            log.lock().unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashed_member_is_restarted_with_those_above_it_then_the_group_fails() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (group, flags) = running_group(&log);
        let settings = SupervisionSettings {
            monitor_interval: Duration::from_secs(1),
            max_restarts: 1,
            restart_window: Duration::from_secs(600),
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watch = async {
            *flags[1].lock().unwrap() = false;
            let first = rx.recv().await.unwrap();
            let GroupReport::Restarted {
                resource, timeline, ..
            } = &first
            else {
                panic!("expected a restart: {first:?}");
            };
            assert_eq!(resource, "mount");
            assert_eq!(timeline.outcome, "Started");
            assert_eq!(
                *log.lock().unwrap(),
                ["stop lxc", "stop mount", "start mount", "start lxc"]
            );
            *flags[1].lock().unwrap() = false;
            let second = rx.recv().await.unwrap();
            assert!(
                matches!(&second, GroupReport::Failed { resource, .. } if resource == "mount"),
                "{second:?}"
            );
        };
        // Supervision ends by itself once the group failed.
        tokio::join!(supervise(&group, settings, tx), watch);
    }
}
