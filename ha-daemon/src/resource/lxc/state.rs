//! Container states as `lxc-info -s` prints them, and what `start` does in each. Pure.

use std::fmt;

/// A container state (lxc-info(1)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LxcState {
    /// Not running.
    Stopped,
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Being stopped.
    Stopping,
    /// Its start is being aborted.
    Aborting,
    /// Being frozen.
    Freezing,
    /// Frozen (processes suspended).
    Frozen,
    /// Just thawed.
    Thawed,
    /// A state this agent does not know, as printed.
    Unknown(String),
    /// `lxc-info` says the container "doesn't exist": it is not running and has no
    /// configuration under the lxcpath (typically: the filesystem holding it is not
    /// mounted on this node). Nothing of it can be running here.
    Undefined,
}

impl LxcState {
    fn from_word(word: &str) -> Self {
        match word {
            "STOPPED" => LxcState::Stopped,
            "STARTING" => LxcState::Starting,
            "RUNNING" => LxcState::Running,
            "STOPPING" => LxcState::Stopping,
            "ABORTING" => LxcState::Aborting,
            "FREEZING" => LxcState::Freezing,
            "FROZEN" => LxcState::Frozen,
            "THAWED" => LxcState::Thawed,
            other => LxcState::Unknown(other.to_owned()),
        }
    }
}

impl fmt::Display for LxcState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LxcState::Stopped => "STOPPED",
            LxcState::Starting => "STARTING",
            LxcState::Running => "RUNNING",
            LxcState::Stopping => "STOPPING",
            LxcState::Aborting => "ABORTING",
            LxcState::Freezing => "FREEZING",
            LxcState::Frozen => "FROZEN",
            LxcState::Thawed => "THAWED",
            LxcState::Unknown(word) => word,
            LxcState::Undefined => "UNDEFINED",
        })
    }
}

/// The state in `lxc-info -s` output (`State:          RUNNING`), or `None` when there
/// is no state line.
pub fn parse_info_state(stdout: &str) -> Option<LxcState> {
    stdout.lines().find_map(|line| {
        let word = line.trim().strip_prefix("State:")?.trim();
        (!word.is_empty()).then(|| LxcState::from_word(word))
    })
}

/// What `start` does in a state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartStep {
    /// Already running: nothing.
    Nothing,
    /// Stopped: run `lxc-start`, then wait for RUNNING.
    Launch,
    /// Already starting: wait for RUNNING.
    Wait,
    /// Frozen, stopping, aborting or unknown: starting now would fight whoever did that.
    Refuse,
}

/// The start step for a state.
pub fn start_step(state: &LxcState) -> StartStep {
    match state {
        LxcState::Running => StartStep::Nothing,
        LxcState::Stopped => StartStep::Launch,
        LxcState::Starting => StartStep::Wait,
        LxcState::Stopping
        | LxcState::Aborting
        | LxcState::Freezing
        | LxcState::Frozen
        | LxcState::Thawed
        | LxcState::Unknown(_)
        | LxcState::Undefined => StartStep::Refuse,
    }
}

/// The state a failed `lxc-info` run reports, if its error text says one: LXC prints
/// "NAME doesn't exist" only for a container that is neither running nor defined.
pub fn state_of_failed_info(stderr: &str) -> Option<LxcState> {
    stderr
        .contains("doesn't exist")
        .then_some(LxcState::Undefined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_that_does_not_exist_is_undefined_and_is_not_started() {
        assert_eq!(
            state_of_failed_info("web doesn't exist\n"),
            Some(LxcState::Undefined)
        );
        assert_eq!(state_of_failed_info("Permission denied\n"), None);
        assert_eq!(start_step(&LxcState::Undefined), StartStep::Refuse);
    }

    #[test]
    fn reads_the_state_line_of_lxc_info() {
        assert_eq!(
            parse_info_state("State:          RUNNING\n"),
            Some(LxcState::Running)
        );
        assert_eq!(
            parse_info_state("Name:           web\nState:          STOPPED\n"),
            Some(LxcState::Stopped)
        );
        assert_eq!(
            parse_info_state("State: HIBERNATING\n"),
            Some(LxcState::Unknown("HIBERNATING".into()))
        );
        assert_eq!(parse_info_state("web doesn't exist\n"), None);
        assert_eq!(parse_info_state("State:\n"), None);
    }

    #[test]
    fn states_print_as_lxc_spells_them() {
        for word in [
            "STOPPED", "STARTING", "RUNNING", "STOPPING", "ABORTING", "FREEZING", "FROZEN",
            "THAWED", "ODD",
        ] {
            assert_eq!(LxcState::from_word(word).to_string(), word);
        }
    }

    #[test]
    fn start_launches_only_a_stopped_container() {
        assert_eq!(start_step(&LxcState::Running), StartStep::Nothing);
        assert_eq!(start_step(&LxcState::Stopped), StartStep::Launch);
        assert_eq!(start_step(&LxcState::Starting), StartStep::Wait);
        assert_eq!(start_step(&LxcState::Frozen), StartStep::Refuse);
        assert_eq!(start_step(&LxcState::Stopping), StartStep::Refuse);
        assert_eq!(
            start_step(&LxcState::Unknown("X".into())),
            StartStep::Refuse
        );
    }
}
