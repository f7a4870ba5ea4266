//! [`DrbdWatch`]: follows one DRBD resource live with `drbdsetup events2 RES` and
//! publishes its folded [`ResourceState`] on a tokio watch channel.
//!
//! Invariants: one `drbdsetup` child per watch, killed when the watch is dropped (the
//! reading task owns the kill-on-drop child and is aborted on drop). Every line is
//! folded in order; a malformed line is logged and skipped (the rest of the stream is
//! still good). Until `exists -` the published state is partial
//! (`state.dump_complete()` is false and `assess()` says so). When the child exits the
//! last state stays published with `ended` set; the owner starts a new watch if it
//! wants to go on.

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{DrbdError, DrbdSettings};
use crate::core::drbd_events::line::parse_line;
use crate::core::drbd_events::state::ResourceState;
use crate::resource::command::Invocation;

/// What the watch publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    /// The state folded from every line so far.
    pub state: ResourceState,
    /// Why the stream ended (`drbdsetup` exited or its output broke), once it has.
    pub ended: Option<String>,
}

/// A running `drbdsetup events2 RES` follower (see the module doc).
#[derive(Debug)]
pub struct DrbdWatch {
    receiver: watch::Receiver<Followed>,
    pid: Option<u32>,
    task: JoinHandle<()>,
}

impl DrbdWatch {
    /// Starts following `settings.resource` (needs a tokio runtime).
    pub fn start(settings: &DrbdSettings) -> Result<Self, DrbdError> {
        let resource = settings.resource.clone();
        let invocation = Invocation::new(&settings.drbdsetup, ["events2", resource.as_str()]);
        let mut child = invocation.spawn().map_err(|source| DrbdError::Spawn {
            resource: resource.clone(),
            source,
        })?;
        let pid = child.id();
        let (sender, receiver) = watch::channel(Followed {
            state: ResourceState::new(resource.as_str()),
            ended: None,
        });
        let task = match child.stdout.take() {
            Some(stdout) => tokio::task::spawn(follow(child, stdout, invocation, sender)),
            None => {
                sender.send_modify(|followed| {
                    followed.ended = Some(format!("`{invocation}`: no standard output"));
                });
                tokio::task::spawn(async move { drop(child) })
            }
        };
        Ok(DrbdWatch {
            receiver,
            pid,
            task,
        })
    }

    /// A receiver of every change (`changed().await`, then `borrow()`).
    pub fn subscribe(&self) -> watch::Receiver<Followed> {
        self.receiver.clone()
    }

    /// The state now.
    pub fn current(&self) -> Followed {
        self.receiver.borrow().clone()
    }

    /// The `drbdsetup` child's pid.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

impl Drop for DrbdWatch {
    fn drop(&mut self) {
        // The task owns the child; aborting drops it, and kill_on_drop kills it.
        self.task.abort();
    }
}

/// Reads lines until the stream ends, folding and publishing each change.
async fn follow(
    mut child: Child,
    stdout: ChildStdout,
    invocation: Invocation,
    sender: watch::Sender<Followed>,
) {
    let mut lines = BufReader::new(stdout).lines();
    let ended = loop {
        match lines.next_line().await {
            Ok(Some(text)) if text.trim().is_empty() => {}
            Ok(Some(text)) => match parse_line(&text) {
                Ok(line) => {
                    sender.send_if_modified(|followed| {
                        let before = followed.state.clone();
                        followed.state.apply(&line);
                        followed.state != before
                    });
                }
                Err(error) => tracing::warn!(%error, "skipping a malformed events2 line"),
            },
            Ok(None) => {
                break match child.wait().await {
                    Ok(status) => format!("`{invocation}` exited ({status})"),
                    Err(error) => format!("`{invocation}` ended; waiting for it: {error}"),
                };
            }
            Err(error) => break format!("reading `{invocation}`: {error}"),
        }
    };
    tracing::warn!(reason = %ended, "drbd events2 follower ended");
    sender.send_modify(|followed| followed.ended = Some(ended));
}
