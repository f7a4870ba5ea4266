//! The resource group's plan: which agent call comes next when the group starts, stops
//! or restarts a failed member, and how that run ended. Pure: the executor
//! ([`crate::resource::group`]) asks [`Plan::next_step`], runs it, and reports with
//! [`Plan::record`].
//!
//! Members are numbered in start order (for the usual group: 0 drbd, 1 mount, 2 lxc,
//! 3 vip); a member depends on every member below it. Invariants, for every run and every
//! pattern of failures (property-tested below):
//!
//! - a member is started only while every member below it is running, and stopped only
//!   while every member above it is stopped: starts go up, stops go down;
//! - a failed start is rolled back: the failed member itself (its start may have half
//!   happened; stop is idempotent) and then every member this run started, in reverse,
//!   so a failed start leaves the group as it found it;
//! - a failed stop ends the run at once: the members below the one that would not stop
//!   stay running, because it still needs them (a mount that cannot be unmounted must
//!   keep its DRBD device Primary). The caller must treat the group as still held here.

use std::collections::VecDeque;

/// An agent call the plan asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `Agent::start`.
    Start,
    /// `Agent::stop`.
    Stop,
}

/// Why a step runs, for the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Part of starting the group (takeover, switchover).
    Start,
    /// Part of stopping the group (release).
    Stop,
    /// Undoing a start after a later member failed to start.
    Rollback,
    /// Stopping and starting again a member that failed monitoring, with the members
    /// above it.
    Restart,
}

/// One agent call on one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of the member in start order.
    pub member: usize,
    /// The call.
    pub call: Call,
    /// Why.
    pub purpose: Purpose,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every member the run was to start is running.
    Started,
    /// Every member the run was to stop is stopped.
    Stopped,
    /// Member `failed` did not start. The members this run started were rolled back,
    /// unless `rollback_failed` names the member whose stop failed during the rollback
    /// (it and the members below it are then still running).
    StartFailed {
        /// The member whose start failed.
        failed: usize,
        /// The member whose rollback stop failed, if any.
        rollback_failed: Option<usize>,
    },
    /// Member `failed` did not stop; it and every member below it are still running.
    StopFailed {
        /// The member whose stop failed.
        failed: usize,
    },
}

/// A run over a resource group of `size` members, in progress.
#[derive(Clone, Debug)]
pub struct Plan {
    steps: VecDeque<Step>,
    /// Lowest member this run starts; a rollback stops down to it.
    start_from: usize,
    failed_start: Option<usize>,
    outcome: Option<Outcome>,
}

impl Plan {
    /// Starts members `0..size` in order.
    pub fn start(size: usize) -> Self {
        Plan::new(Vec::new(), 0, size, Purpose::Start)
    }

    /// Stops members `size-1` down to 0.
    pub fn stop(size: usize) -> Self {
        let stops = (0..size).rev().map(|member| Step {
            member,
            call: Call::Stop,
            purpose: Purpose::Stop,
        });
        Plan::new(stops.collect(), size, size, Purpose::Start)
    }

    /// Restarts `member` of a group of `size`: stops the members above it and itself,
    /// top down, then starts them again bottom up. The members below stay untouched.
    ///
    /// Panics if `member >= size` (a caller bug).
    pub fn restart(size: usize, member: usize) -> Self {
        assert!(member < size, "member {member} outside a group of {size}");
        let stops = (member..size).rev().map(|member| Step {
            member,
            call: Call::Stop,
            purpose: Purpose::Restart,
        });
        Plan::new(stops.collect(), member, size, Purpose::Restart)
    }

    fn new(stops: Vec<Step>, start_from: usize, size: usize, purpose: Purpose) -> Self {
        let starts = (start_from..size).map(|member| Step {
            member,
            call: Call::Start,
            purpose,
        });
        let steps: VecDeque<Step> = stops.into_iter().chain(starts).collect();
        let outcome = steps.is_empty().then_some(Outcome::Started);
        Plan {
            steps,
            start_from,
            failed_start: None,
            outcome,
        }
    }

    /// The step to run next, or `None` when the run is over (see [`Plan::outcome`]).
    pub fn next_step(&self) -> Option<Step> {
        self.steps.front().copied()
    }

    /// Records the result of the step [`Plan::next_step`] returned.
    ///
    /// Panics if `step` is not that step (a caller bug).
    pub fn record(&mut self, step: Step, succeeded: bool) {
        assert_eq!(
            self.steps.pop_front(),
            Some(step),
            "recorded a step out of order"
        );
        if succeeded {
            if self.steps.is_empty() {
                self.outcome = Some(self.finished_outcome(step));
            }
            return;
        }
        self.steps.clear();
        match (step.call, step.purpose) {
            (Call::Start, _) => {
                self.failed_start = Some(step.member);
                let rollback = (self.start_from..=step.member).rev().map(|member| Step {
                    member,
                    call: Call::Stop,
                    purpose: Purpose::Rollback,
                });
                self.steps.extend(rollback);
            }
            (Call::Stop, Purpose::Rollback) => {
                self.outcome = Some(Outcome::StartFailed {
                    failed: self.failed_start.unwrap_or(step.member),
                    rollback_failed: Some(step.member),
                });
            }
            (Call::Stop, _) => {
                self.outcome = Some(Outcome::StopFailed {
                    failed: step.member,
                });
            }
        }
    }

    fn finished_outcome(&self, last: Step) -> Outcome {
        match (self.failed_start, last.call) {
            (Some(failed), _) => Outcome::StartFailed {
                failed,
                rollback_failed: None,
            },
            (None, Call::Start) => Outcome::Started,
            (None, Call::Stop) => Outcome::Stopped,
        }
    }

    /// How the run ended, once [`Plan::next_step`] returns `None`.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Runs `plan` against a model of which members are running; `fails(step_index)`
    /// decides which steps fail. Checks the ordering invariants at every step and
    /// returns the final running set, the steps run, and the outcome.
    fn simulate(
        mut plan: Plan,
        mut running: Vec<bool>,
        fails: impl Fn(usize) -> bool,
    ) -> (Vec<bool>, Vec<Step>, Outcome) {
        let mut steps = Vec::new();
        while let Some(step) = plan.next_step() {
            let index = steps.len();
            assert!(index < 100, "plan does not end");
            match step.call {
                Call::Start => assert!(
                    running[..step.member].iter().all(|&up| up),
                    "started {} with a member below it stopped: {running:?}",
                    step.member
                ),
                Call::Stop => assert!(
                    running[step.member + 1..].iter().all(|&up| !up),
                    "stopped {} with a member above it running: {running:?}",
                    step.member
                ),
            }
            let ok = !fails(index);
            if ok {
                running[step.member] = step.call == Call::Start;
            } else if step.call == Call::Start {
                // A failed start may leave the member half up: the model says running.
                running[step.member] = true;
            }
            plan.record(step, ok);
            steps.push(step);
        }
        (
            running,
            steps,
            plan.outcome().expect("an ended plan has an outcome"),
        )
    }

    fn step(member: usize, call: Call, purpose: Purpose) -> Step {
        Step {
            member,
            call,
            purpose,
        }
    }

    #[test]
    fn a_clean_start_goes_up_and_a_clean_stop_goes_down() {
        let (running, steps, outcome) = simulate(Plan::start(3), vec![false; 3], |_| false);
        assert_eq!(running, vec![true; 3]);
        assert_eq!(outcome, Outcome::Started);
        let members: Vec<usize> = steps.iter().map(|s| s.member).collect();
        assert_eq!(members, vec![0, 1, 2]);

        let (running, steps, outcome) = simulate(Plan::stop(3), vec![true; 3], |_| false);
        assert_eq!(running, vec![false; 3]);
        assert_eq!(outcome, Outcome::Stopped);
        let members: Vec<usize> = steps.iter().map(|s| s.member).collect();
        assert_eq!(members, vec![2, 1, 0]);
    }

    #[test]
    fn the_third_start_failing_rolls_back_three_then_two_then_one() {
        let (running, steps, outcome) = simulate(Plan::start(4), vec![false; 4], |i| i == 2);
        assert_eq!(
            steps,
            vec![
                step(0, Call::Start, Purpose::Start),
                step(1, Call::Start, Purpose::Start),
                step(2, Call::Start, Purpose::Start),
                step(2, Call::Stop, Purpose::Rollback),
                step(1, Call::Stop, Purpose::Rollback),
                step(0, Call::Stop, Purpose::Rollback),
            ]
        );
        assert_eq!(
            outcome,
            Outcome::StartFailed {
                failed: 2,
                rollback_failed: None
            }
        );
        assert_eq!(running, vec![false; 4]);
    }

    #[test]
    fn a_failed_stop_keeps_the_members_below_it() {
        let (running, steps, outcome) = simulate(Plan::stop(4), vec![true; 4], |i| i == 1);
        assert_eq!(steps.len(), 2);
        assert_eq!(outcome, Outcome::StopFailed { failed: 2 });
        assert_eq!(running, vec![true, true, true, false]);
    }

    #[test]
    fn a_restart_touches_only_the_member_and_those_above_it() {
        let (running, steps, outcome) = simulate(Plan::restart(4, 1), vec![true; 4], |_| false);
        let order: Vec<(usize, Call)> = steps.iter().map(|s| (s.member, s.call)).collect();
        assert_eq!(
            order,
            vec![
                (3, Call::Stop),
                (2, Call::Stop),
                (1, Call::Stop),
                (1, Call::Start),
                (2, Call::Start),
                (3, Call::Start)
            ]
        );
        assert!(steps.iter().all(|s| s.purpose == Purpose::Restart));
        assert_eq!(outcome, Outcome::Started);
        assert_eq!(running, vec![true; 4]);
    }

    #[test]
    fn an_empty_group_is_started_at_once() {
        assert_eq!(Plan::start(0).next_step(), None);
        assert_eq!(Plan::start(0).outcome(), Some(Outcome::Started));
    }

    proptest! {
        /// Whatever fails: starts and stops respect the order (checked in `simulate`),
        /// a start that fails with a clean rollback leaves everything it touched
        /// stopped, and a failed stop leaves the failed member and all below running.
        #[test]
        fn every_failure_pattern_keeps_the_invariants(
            size in 1usize..6,
            restart_at in 0usize..6,
            kind in 0u8..3,
            failures in proptest::collection::vec(any::<bool>(), 0..20),
        ) {
            let fails = |i: usize| failures.get(i).copied().unwrap_or(false);
            let (plan, before) = match kind {
                0 => (Plan::start(size), vec![false; size]),
                1 => (Plan::stop(size), vec![true; size]),
                // The member that failed monitoring may be half up: the model says running.
                _ => (Plan::restart(size, restart_at % size), vec![true; size]),
            };
            let (running, _steps, outcome) = simulate(plan, before.clone(), fails);
            match outcome {
                Outcome::Started => prop_assert_eq!(running, vec![true; size]),
                Outcome::Stopped => prop_assert_eq!(running, vec![false; size]),
                Outcome::StartFailed { failed, rollback_failed: None } => {
                    let from = if kind == 0 { 0 } else { restart_at % size };
                    prop_assert!(failed >= from);
                    prop_assert!(running[from..].iter().all(|&up| !up), "{:?}", running);
                    prop_assert_eq!(&running[..from], &before[..from]);
                }
                Outcome::StartFailed { rollback_failed: Some(member), .. }
                | Outcome::StopFailed { failed: member } => {
                    prop_assert!(running[..=member].iter().all(|&up| up), "{:?}", running);
                    prop_assert!(running[member + 1..].iter().all(|&up| !up), "{:?}", running);
                }
            }
        }
    }
}
