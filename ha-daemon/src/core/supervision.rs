//! Judging what monitoring found: [`Health`] of each member, the [`Survey`] taken at
//! daemon start (adopt a running group, never restart it), and the [`Supervisor`] that
//! turns a failed member of a running group into a restart, or into a failed group once
//! the member used up its restarts. Pure: time is a parameter.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::core::time::Instant;

/// What an agent's `monitor` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// The resource is fully started and working.
    Running,
    /// The resource is cleanly stopped (nothing of it is active here).
    Stopped,
    /// The resource is neither cleanly running nor cleanly stopped; the text says why,
    /// for an operator (e.g. "address 192.0.2.10/24 present but interface eth0 is down").
    Failed(String),
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Running => f.write_str("running"),
            Health::Stopped => f.write_str("stopped"),
            Health::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

/// The group as found by monitoring every member, e.g. when the daemon starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Survey {
    /// Every member runs: the group is adopted as it is, nothing is stopped or started.
    Running,
    /// Every member is stopped.
    Stopped,
    /// Some members run and others do not (a crash mid-takeover, an operator's hand):
    /// listed by index with their health. The cluster logic decides (usually: release
    /// in reverse, which is idempotent, then take over cleanly if this node should).
    Partial(Vec<(usize, Health)>),
}

impl Survey {
    /// Classifies one round of monitoring results, member `i` at index `i`.
    pub fn of(healths: &[Health]) -> Self {
        if healths.iter().all(|h| *h == Health::Running) {
            Survey::Running
        } else if healths.iter().all(|h| *h == Health::Stopped) {
            Survey::Stopped
        } else {
            Survey::Partial(healths.iter().cloned().enumerate().collect())
        }
    }
}

/// What to do about one monitoring round of a group that should be running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every member runs.
    Healthy,
    /// Restart this member (with the members above it): it is the lowest member that is
    /// not running, and it has restarts left.
    Restart {
        /// The member.
        member: usize,
        /// Its health that caused the restart.
        health: Health,
    },
    /// This member is not running and used up its restarts: the group has failed here;
    /// the cluster logic decides whether to hand over.
    Failed {
        /// The member.
        member: usize,
        /// Its health.
        health: Health,
    },
}

/// Restart bookkeeping for a running group.
///
/// Invariant: a member is restarted at most `max_restarts` times within any `window`;
/// restarts older than `window` are forgiven, so a service that fails once a month is
/// never declared failed for good.
#[derive(Clone, Debug)]
pub struct Supervisor {
    max_restarts: u32,
    window: Duration,
    restarts: Vec<VecDeque<Instant>>,
}

impl Supervisor {
    /// A supervisor for a group of `size` members.
    pub fn new(size: usize, max_restarts: u32, window: Duration) -> Self {
        Supervisor {
            max_restarts,
            window,
            restarts: vec![VecDeque::new(); size],
        }
    }

    /// Judges one monitoring round taken at `now` (member `i`'s health at index `i`),
    /// counting a restart when it orders one.
    pub fn judge(&mut self, now: Instant, healths: &[Health]) -> Verdict {
        let Some((member, health)) = healths
            .iter()
            .enumerate()
            .find(|(_, health)| **health != Health::Running)
        else {
            return Verdict::Healthy;
        };
        let health = health.clone();
        let Some(history) = self.restarts.get_mut(member) else {
            return Verdict::Failed { member, health };
        };
        while history
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= self.window)
        {
            history.pop_front();
        }
        if history.len() < self.max_restarts as usize {
            history.push_back(now);
            Verdict::Restart { member, health }
        } else {
            Verdict::Failed { member, health }
        }
    }

    /// Forgets every restart (the group was stopped and started afresh).
    pub fn reset(&mut self) {
        self.restarts.iter_mut().for_each(VecDeque::clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: Health = Health::Running;

    fn at(seconds: u64) -> Instant {
        Instant::from_nanos(seconds * 1_000_000_000)
    }

    #[test]
    fn a_survey_adopts_only_a_fully_running_group() {
        assert_eq!(Survey::of(&[RUNNING, RUNNING]), Survey::Running);
        assert_eq!(
            Survey::of(&[Health::Stopped, Health::Stopped]),
            Survey::Stopped
        );
        assert_eq!(
            Survey::of(&[RUNNING, Health::Stopped]),
            Survey::Partial(vec![(0, RUNNING), (1, Health::Stopped)])
        );
        assert_eq!(Survey::of(&[]), Survey::Running);
    }

    #[test]
    fn the_lowest_failed_member_is_restarted_until_its_restarts_are_used_up() {
        let mut supervisor = Supervisor::new(3, 2, Duration::from_secs(600));
        let failed = Health::Failed("gone".to_owned());
        let round = [RUNNING, Health::Stopped, failed.clone()];
        let restart = Verdict::Restart {
            member: 1,
            health: Health::Stopped,
        };
        assert_eq!(supervisor.judge(at(1), &[RUNNING; 3]), Verdict::Healthy);
        assert_eq!(supervisor.judge(at(2), &round), restart);
        assert_eq!(supervisor.judge(at(3), &round), restart);
        assert_eq!(
            supervisor.judge(at(4), &round),
            Verdict::Failed {
                member: 1,
                health: Health::Stopped
            }
        );
        supervisor.reset();
        assert_eq!(supervisor.judge(at(5), &round), restart);
    }

    #[test]
    fn restarts_older_than_the_window_are_forgiven() {
        let mut supervisor = Supervisor::new(1, 1, Duration::from_secs(60));
        let round = [Health::Failed("x".to_owned())];
        assert!(matches!(
            supervisor.judge(at(0), &round),
            Verdict::Restart { .. }
        ));
        assert!(matches!(
            supervisor.judge(at(59), &round),
            Verdict::Failed { .. }
        ));
        assert!(matches!(
            supervisor.judge(at(61), &round),
            Verdict::Restart { .. }
        ));
    }

    #[test]
    fn no_restarts_allowed_fails_at_once() {
        let mut supervisor = Supervisor::new(1, 0, Duration::from_secs(60));
        assert!(matches!(
            supervisor.judge(at(0), &[Health::Stopped]),
            Verdict::Failed { member: 0, .. }
        ));
    }
}
