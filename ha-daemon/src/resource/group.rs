//! The resource group executor: runs a [`Plan`] against the members' agents, each call
//! under its timeout and in its own tracing span, and returns the [`Timeline`] (what ran,
//! when, for how long, with what result) that the CLI and the drill print.
//!
//! The decisions (order, rollback, when to stop) are all in [`crate::core::plan`]; this
//! module only carries them out and measures.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::core::plan::{Call, Outcome, Plan, Purpose, Step};
use crate::resource::{Agent, AgentError, Health};

/// How long each agent call may take before the engine gives up on it (and, by dropping
/// its future, kills any program it ran).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `start`.
    pub start: Duration,
    /// `stop`.
    pub stop: Duration,
    /// `monitor` (and `validate`).
    pub monitor: Duration,
}

impl Timeouts {
    /// Defaults: 60 s to start or stop (a container's services, a journal replay on
    /// mount), 20 s to monitor.
    pub const DEFAULT: Timeouts = Timeouts {
        start: Duration::from_secs(60),
        stop: Duration::from_secs(60),
        monitor: Duration::from_secs(20),
    };
}

/// A member of a resource group: a named resource and its agent.
#[derive(Debug)]
pub struct Member {
    /// The resource's name from the configuration, unique in the group.
    pub name: String,
    /// Its agent.
    pub agent: Box<dyn Agent>,
    /// Its timeouts.
    pub timeouts: Timeouts,
}

/// One step as it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// The resource's name.
    pub resource: String,
    /// Its agent kind, e.g. `"drbd"`.
    pub agent: &'static str,
    /// The call.
    pub call: Call,
    /// Why it ran.
    pub purpose: Purpose,
    /// When it began, from the start of the run.
    pub offset: Duration,
    /// How long it took.
    pub duration: Duration,
    /// `None` when it succeeded, else what went wrong.
    pub error: Option<String>,
}

/// A run of the group, step by step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The steps in the order they ran.
    pub steps: Vec<StepRecord>,
    /// How the run ended.
    pub outcome: Outcome,
    /// From the first step's start to the last step's end.
    pub total: Duration,
}

/// The members of a group, in start order.
#[derive(Debug)]
pub struct ResourceGroup {
    members: Vec<Member>,
}

/// A member that failed validation.
#[derive(Debug, thiserror::Error)]
#[error("resource {resource} ({agent}): {error}")]
pub struct ValidationError {
    /// The resource's name.
    pub resource: String,
    /// Its agent kind.
    pub agent: &'static str,
    /// What is wrong.
    pub error: AgentError,
}

impl ResourceGroup {
    /// A group of these members, in start order.
    pub fn new(members: Vec<Member>) -> Self {
        ResourceGroup { members }
    }

    /// The members, in start order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Validates every member (changing nothing) and returns every failure, not only
    /// the first, so an operator fixes the configuration in one go.
    pub async fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        for member in &self.members {
            let span = tracing::info_span!("validate", resource = %member.name);
            let result = bounded(member.timeouts.monitor, "validate", member.agent.validate())
                .instrument(span)
                .await;
            if let Err(error) = result {
                errors.push(ValidationError {
                    resource: member.name.clone(),
                    agent: member.agent.kind(),
                    error,
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Starts the group bottom up, rolling back on a failed start.
    pub async fn start(&self) -> Timeline {
        self.execute(Plan::start(self.members.len())).await
    }

    /// Stops the group top down (the release).
    pub async fn stop(&self) -> Timeline {
        self.execute(Plan::stop(self.members.len())).await
    }

    /// Restarts `member` and the members above it.
    ///
    /// Panics if `member` is not a member's index (a caller bug).
    pub async fn restart(&self, member: usize) -> Timeline {
        self.execute(Plan::restart(self.members.len(), member))
            .await
    }

    /// Monitors every member, in order. A monitor that errs or times out counts as
    /// [`Health::Failed`] with the reason.
    pub async fn monitor(&self) -> Vec<Health> {
        let mut healths = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let span = tracing::debug_span!("monitor", resource = %member.name);
            let result = bounded(member.timeouts.monitor, "monitor", member.agent.monitor())
                .instrument(span)
                .await;
            healths.push(result.unwrap_or_else(|error| Health::Failed(error.to_string())));
        }
        healths
    }

    async fn execute(&self, mut plan: Plan) -> Timeline {
        let began = Instant::now();
        let mut steps = Vec::new();
        while let Some(step) = plan.next_step() {
            let record = self.run_step(step, began).await;
            plan.record(step, record.error.is_none());
            steps.push(record);
        }
        Timeline {
            steps,
            outcome: plan.outcome().unwrap_or(Outcome::Started),
            total: began.elapsed(),
        }
    }

    async fn run_step(&self, step: Step, began: Instant) -> StepRecord {
        let member = &self.members[step.member];
        let span = tracing::info_span!(
            "step",
            resource = %member.name,
            agent = member.agent.kind(),
            call = ?step.call,
            purpose = ?step.purpose,
        );
        let at = Instant::now();
        let result = match step.call {
            Call::Start => bounded(member.timeouts.start, "start", member.agent.start()),
            Call::Stop => bounded(member.timeouts.stop, "stop", member.agent.stop()),
        }
        .instrument(span.clone())
        .await;
        let duration = at.elapsed();
        let error = result.err().map(|error| error.to_string());
        span.in_scope(|| match &error {
            None => tracing::info!(duration_ms = millis(duration), "step done"),
            Some(error) => tracing::warn!(duration_ms = millis(duration), %error, "step failed"),
        });
        StepRecord {
            resource: member.name.clone(),
            agent: member.agent.kind(),
            call: step.call,
            purpose: step.purpose,
            offset: at.duration_since(began),
            duration,
            error,
        }
    }
}

/// Runs `call` for at most `limit`; on timeout its future is dropped (killing any child).
async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: BoxFuture<'_, Result<T, AgentError>>,
) -> Result<T, AgentError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(AgentError::message(format!(
            "{what} timed out after {limit:?}"
        )))
    })
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

impl fmt::Display for Timeline {
    /// One line per step: offset, resource, agent, call (and why, when not the plain
    /// start/stop), duration, result; then the outcome and the total.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            let call = match (step.call, step.purpose) {
                (Call::Start, Purpose::Start) => "start",
                (Call::Stop, Purpose::Stop) => "stop",
                (Call::Stop, Purpose::Rollback) => "stop (rollback)",
                (Call::Start, _) => "start (restart)",
                (Call::Stop, _) => "stop (restart)",
            };
            let result = step
                .error
                .as_deref()
                .map_or("ok".to_owned(), |e| format!("FAILED: {e}"));
            writeln!(
                f,
                "{:>+9.3} ms  {:<16} {:<5} {:<16} {:>9.3} ms  {result}",
                millis(step.offset),
                step.resource,
                step.agent,
                call,
                millis(step.duration),
            )?;
        }
        write!(f, "{:?} in {:.3} ms", self.outcome, millis(self.total))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::core::supervision::Survey;
    use crate::resource::fake::Fake;

    fn group(log: &Arc<Mutex<Vec<String>>>, failing: Option<&str>, hanging: bool) -> ResourceGroup {
        let members = ["drbd", "mount", "lxc", "vip"]
            .into_iter()
            .map(|name| Member {
                name: name.to_owned(),
                agent: Box::new(Fake {
                    fail_start: failing == Some(name),
                    hang_start: hanging && failing == Some(name),
                    ..Fake::new(name, log)
                }),
                timeouts: Timeouts {
                    start: Duration::from_millis(100),
                    ..Timeouts::DEFAULT
                },
            })
            .collect();
        ResourceGroup::new(members)
    }

    #[tokio::test]
    async fn a_failed_third_start_rolls_back_in_reverse_and_the_timeline_shows_it() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let group = group(&log, Some("lxc"), false);
        let timeline = group.start().await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "start drbd",
                "start mount",
                "start lxc",
                "stop lxc",
                "stop mount",
                "stop drbd"
            ]
        );
        assert_eq!(
            timeline.outcome,
            Outcome::StartFailed {
                failed: 2,
                rollback_failed: None
            }
        );
        let shown: Vec<(&str, Call, Purpose, bool)> = timeline
            .steps
            .iter()
            .map(|s| (s.resource.as_str(), s.call, s.purpose, s.error.is_none()))
            .collect();
        assert_eq!(shown[2], ("lxc", Call::Start, Purpose::Start, false));
        assert_eq!(shown[4], ("mount", Call::Stop, Purpose::Rollback, true));
        assert_eq!(shown[5], ("drbd", Call::Stop, Purpose::Rollback, true));
        assert!(
            timeline
                .steps
                .windows(2)
                .all(|w| w[0].offset <= w[1].offset)
        );
        let text = timeline.to_string();
        assert!(text.contains("FAILED: refused"), "{text}");
        assert!(text.contains("stop (rollback)"), "{text}");
        assert_eq!(Survey::of(&group.monitor().await), Survey::Stopped);
    }

    #[tokio::test]
    async fn a_start_that_hangs_times_out_and_is_rolled_back() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let timeline = group(&log, Some("mount"), true).start().await;
        let error = timeline.steps[1].error.as_deref().unwrap();
        assert!(error.contains("start timed out after 100ms"), "{error}");
        assert_eq!(
            *log.lock().unwrap(),
            ["start drbd", "start mount", "stop mount", "stop drbd"]
        );
    }

    #[tokio::test]
    async fn start_monitor_stop_round_trip() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let group = group(&log, None, false);
        assert_eq!(group.start().await.outcome, Outcome::Started);
        assert_eq!(Survey::of(&group.monitor().await), Survey::Running);
        let timeline = group.stop().await;
        assert_eq!(timeline.outcome, Outcome::Stopped);
        let order: Vec<&str> = timeline.steps.iter().map(|s| s.resource.as_str()).collect();
        assert_eq!(order, ["vip", "lxc", "mount", "drbd"]);
    }

    #[tokio::test]
    async fn validation_reports_every_failing_member_by_name() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let errors = group(&log, Some("vip"), false)
            .validate()
            .await
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "resource vip (fake): invalid: bad setting"
        );
        assert!(log.lock().unwrap().is_empty(), "validation ran an action");
    }
}
