//! Why an `lxc` operation failed.

use std::path::PathBuf;
use std::time::Duration;

use super::state::LxcState;
use crate::io::announce::AnnounceError;
use crate::resource::command::SpawnError;

/// A failed `lxc` agent operation: the container and the cause. Prints as
/// `container NAME in LXCPATH: CAUSE`.
#[derive(Debug, thiserror::Error)]
#[error("container {name} in {}: {cause}", lxcpath.display())]
pub struct LxcError {
    /// The container's name.
    pub name: String,
    /// Its lxcpath.
    pub lxcpath: PathBuf,
    /// What went wrong; match on it.
    #[source]
    pub cause: Cause,
}

/// The cause of an [`LxcError`].
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The configured user does not exist.
    #[error("user: {0}")]
    User(String),
    /// A command could not run.
    #[error(transparent)]
    Spawn(SpawnError),
    /// `lxc-info` failed or printed no state (missing container, lxcpath not mounted).
    #[error("`{command}` {result}")]
    Info {
        /// The command line.
        command: String,
        /// Its exit and output.
        result: String,
    },
    /// The container is in a state `start` does not touch.
    #[error("not starting it while it is {0}")]
    Refused(LxcState),
    /// The container has no configuration under its lxcpath.
    #[error("no such container in its lxcpath (is the filesystem holding it mounted?)")]
    Undefined,
    /// `lxc-start` failed.
    #[error("`{command}` {result}; {hint}")]
    StartFailed {
        /// The command line.
        command: String,
        /// Its exit and output.
        result: String,
        /// Where to look next.
        hint: String,
    },
    /// The container did not reach RUNNING in time.
    #[error("not RUNNING within {timeout:?} (last: {last}); {hint}")]
    StartTimeout {
        /// The start timeout.
        timeout: Duration,
        /// The last state seen, or why none was.
        last: String,
        /// Where to look next.
        hint: String,
    },
    /// The container was not STOPPED after `lxc-stop` and `lxc-stop -k`.
    #[error("still not STOPPED (last: {last}) after {}", .attempts.join("; "))]
    StopFailed {
        /// What each stop attempt did.
        attempts: Vec<String>,
        /// The last state seen, or why none was.
        last: String,
    },
    /// A static address of the running container could not be announced; the error
    /// names the address and the bridge.
    #[error("running, but {0}")]
    Announce(#[source] AnnounceError),
    /// The container's config file could not be read.
    #[error("reading {path}: {source}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_container_then_the_cause() {
        let error = LxcError {
            name: "web".into(),
            lxcpath: "/srv/ha/lxc".into(),
            cause: Cause::StopFailed {
                attempts: vec![
                    "`lxc-stop -t 30` exited with 1".into(),
                    "`lxc-stop -k` exited with 1".into(),
                ],
                last: "RUNNING".into(),
            },
        };
        assert_eq!(
            error.to_string(),
            "container web in /srv/ha/lxc: still not STOPPED (last: RUNNING) after \
             `lxc-stop -t 30` exited with 1; `lxc-stop -k` exited with 1"
        );
    }
}
