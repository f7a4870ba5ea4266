//! The `exec` agent (any start/stop/monitor command triple) and the `ocf` agent
//! ([`ocf::Ocf`], OCF resource agents such as `ocf:heartbeat:Dummy`).
//!
//! Both are "scripts": one program per action whose exit code says what happened. The
//! shared part lives here, once: running an action (a private `Scripts` trait that both
//! agents implement), mapping exit codes ([`Convention`], [`monitor_health`]) and the
//! idempotent start/stop around `monitor`:
//!
//! - `start`: monitor first; Running -> nothing; otherwise run start (exit 0 = done).
//! - `stop`: monitor first; Stopped -> nothing; otherwise run stop (exit 0 = done).
//! - `monitor`: exit 0 = Running, 7 = Stopped (LSB "not running", OCF_NOT_RUNNING);
//!   OCF also 8 (running promoted) = Running; anything else Failed with the exit and
//!   stderr.
//!
//! Settings of `exec` ([`ExecSettings`]): `name` (for messages), `start`, `stop`,
//! `monitor` (argv vectors, program looked up in PATH), `user` (default: the daemon's),
//! `env` (default none). A command that starts a daemon must detach it from its
//! standard output and error (`>/dev/null 2>&1`): the agent reads both until they close.
//! Timeouts are the engine's: a dropped call kills the command it was running.

pub mod ocf;

use std::collections::BTreeMap;
use std::fmt;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::agent::{Agent, AgentError, Health};
use super::command::{self, Invocation, RunAs, SpawnError};
use ocf::OcfStatus;

/// An action of a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Monitor.
    Monitor,
    /// Validate (OCF `validate-all`).
    Validate,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::Validate => "validate",
        })
    }
}

/// How a script ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// An exit code of a plain command.
    Code(i32),
    /// An exit code of an OCF agent, named.
    Ocf(OcfStatus),
    /// Killed by a signal.
    Signal,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Ocf(status) => write!(f, "exited with {status}"),
            Exit::Signal => f.write_str("was killed by a signal"),
        }
    }
}

/// Which exit-code convention a script follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// LSB-like: 0 success / running, 7 not running.
    Lsb,
    /// OCF: 0..9 named ([`OcfStatus`]), 8 running promoted.
    Ocf,
}

impl Convention {
    /// The exit of a program that returned `code` (`None`: a signal).
    pub fn exit(self, code: Option<i32>) -> Exit {
        match (self, code) {
            (_, None) => Exit::Signal,
            (Convention::Lsb, Some(code)) => Exit::Code(code),
            (Convention::Ocf, Some(code)) => Exit::Ocf(OcfStatus::from_code(code)),
        }
    }
}

/// What a monitor exit means: 0 Running, 7 Stopped, OCF 8 Running, else Failed naming
/// the command, its exit and its stderr.
pub fn monitor_health(exit: &Exit, command: &str, stderr: &str) -> Health {
    match exit {
        Exit::Code(0) | Exit::Ocf(OcfStatus::Success | OcfStatus::RunningPromoted) => {
            Health::Running
        }
        Exit::Code(7) | Exit::Ocf(OcfStatus::NotRunning) => Health::Stopped,
        _ => Health::Failed(format!(
            "monitor `{command}` {exit}{}",
            stderr_suffix(stderr)
        )),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// Why a script action failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program ran and did not succeed.
    #[error(
        "{kind} resource {resource}: {action} `{command}` {exit}{}",
        stderr_suffix(stderr)
    )]
    Exited {
        /// `exec` or `ocf`.
        kind: &'static str,
        /// The resource.
        resource: String,
        /// The action.
        action: Action,
        /// The command line.
        command: String,
        /// How it ended.
        exit: Exit,
        /// Its standard error.
        stderr: String,
    },
    /// The program could not be run.
    #[error("{kind} resource {resource}: {action}: {source}")]
    Spawn {
        /// `exec` or `ocf`.
        kind: &'static str,
        /// The resource.
        resource: String,
        /// The action.
        action: Action,
        /// The cause.
        #[source]
        source: SpawnError,
    },
    /// The settings cannot run this action.
    #[error("{kind} resource {resource}: {action}: {reason}")]
    Settings {
        /// `exec` or `ocf`.
        kind: &'static str,
        /// The resource.
        resource: String,
        /// The action.
        action: Action,
        /// What is wrong.
        reason: String,
    },
}

/// An agent made of one program per action (implemented by [`Exec`] and [`ocf::Ocf`]).
trait Scripts {
    /// `exec` or `ocf`.
    fn kind(&self) -> &'static str;
    /// The resource name, for messages.
    fn resource(&self) -> &str;
    /// The exit convention.
    fn convention(&self) -> Convention;
    /// The program to run for `action` (an error text when the settings cannot).
    fn invocation(&self, action: Action) -> Result<Invocation, String>;
}

/// Runs `action`; returns its exit, command line and stderr.
async fn run<S: Scripts>(script: &S, action: Action) -> Result<(Exit, String, String), ExecError> {
    let invocation = script
        .invocation(action)
        .map_err(|reason| ExecError::Settings {
            kind: script.kind(),
            resource: script.resource().to_owned(),
            action,
            reason,
        })?;
    let outcome = invocation.run().await.map_err(|source| ExecError::Spawn {
        kind: script.kind(),
        resource: script.resource().to_owned(),
        action,
        source,
    })?;
    Ok((
        script.convention().exit(outcome.code),
        invocation.to_string(),
        outcome.stderr,
    ))
}

/// Runs `action` and succeeds only on exit 0.
async fn act<S: Scripts>(script: &S, action: Action) -> Result<(), ExecError> {
    let (exit, command, stderr) = run(script, action).await?;
    match exit {
        Exit::Code(0) | Exit::Ocf(OcfStatus::Success) => Ok(()),
        exit => Err(ExecError::Exited {
            kind: script.kind(),
            resource: script.resource().to_owned(),
            action,
            command,
            exit,
            stderr: stderr.trim().to_owned(),
        }),
    }
}

async fn monitor<S: Scripts>(script: &S) -> Result<Health, ExecError> {
    let (exit, command, stderr) = run(script, Action::Monitor).await?;
    Ok(monitor_health(&exit, &command, &stderr))
}

async fn start<S: Scripts>(script: &S) -> Result<(), ExecError> {
    if monitor(script).await? == Health::Running {
        return Ok(());
    }
    act(script, Action::Start).await
}

async fn stop<S: Scripts>(script: &S) -> Result<(), ExecError> {
    if monitor(script).await? == Health::Stopped {
        return Ok(());
    }
    act(script, Action::Stop).await
}

/// Implements [`Agent`] for a [`Scripts`] type, with its own `validate`.
macro_rules! script_agent {
    ($type:ty) => {
        impl Agent for $type {
            fn kind(&self) -> &'static str {
                Scripts::kind(self)
            }

            fn validate(&self) -> BoxFuture<'_, Result<(), AgentError>> {
                self.check().boxed()
            }

            fn start(&self) -> BoxFuture<'_, Result<(), AgentError>> {
                async move {
                    $crate::resource::exec::start(self)
                        .await
                        .map_err(AgentError::failed)
                }
                .boxed()
            }

            fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
                async move {
                    $crate::resource::exec::stop(self)
                        .await
                        .map_err(AgentError::failed)
                }
                .boxed()
            }

            fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
                async move {
                    $crate::resource::exec::monitor(self)
                        .await
                        .map_err(AgentError::failed)
                }
                .boxed()
            }
        }
    };
}
use script_agent;

/// Settings of one `exec` resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecSettings {
    /// The resource's name, for messages.
    pub name: String,
    /// The start command: program and arguments.
    pub start: Vec<String>,
    /// The stop command.
    pub stop: Vec<String>,
    /// The monitor command: exit 0 running, 7 stopped, anything else failed.
    pub monitor: Vec<String>,
    /// Run the commands as this user (default: the daemon's user).
    pub user: Option<String>,
    /// Variables added to the commands' environment (default none).
    pub env: BTreeMap<String, String>,
}

/// The `exec` agent (see the module doc).
#[derive(Debug)]
pub struct Exec {
    settings: ExecSettings,
}

impl Exec {
    /// An agent running the commands in `settings`.
    pub fn new(settings: ExecSettings) -> Self {
        Exec { settings }
    }

    fn argv(&self, action: Action) -> &[String] {
        match action {
            Action::Start => &self.settings.start,
            Action::Stop => &self.settings.stop,
            Action::Monitor => &self.settings.monitor,
            Action::Validate => &[],
        }
    }

    async fn check(&self) -> Result<(), AgentError> {
        let invalid = |text: String| {
            AgentError::Invalid(format!("exec resource {}: {text}", self.settings.name))
        };
        for action in [Action::Start, Action::Stop, Action::Monitor] {
            let Some(program) = self.argv(action).first() else {
                return Err(invalid(format!("the {action} command is empty")));
            };
            command::find_program(program.as_ref())
                .map_err(|error| invalid(format!("{action} command: {error}")))?;
        }
        if let Some(user) = &self.settings.user {
            RunAs::lookup(user).map_err(invalid)?;
        }
        if let Some(key) = self.settings.env.keys().find(|key| !valid_env_key(key)) {
            return Err(invalid(format!(
                "environment variable name {key:?} is not valid"
            )));
        }
        Ok(())
    }
}

/// A name a shell accepts as a variable: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_env_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Scripts for Exec {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn resource(&self) -> &str {
        &self.settings.name
    }

    fn convention(&self) -> Convention {
        Convention::Lsb
    }

    fn invocation(&self, action: Action) -> Result<Invocation, String> {
        let Some((program, args)) = self.argv(action).split_first() else {
            return Err(format!("the {action} command is empty"));
        };
        let mut invocation = Invocation::new(program, args);
        invocation.env = self
            .settings
            .env
            .iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        invocation.user = self
            .settings
            .user
            .as_deref()
            .map(RunAs::lookup)
            .transpose()?;
        Ok(invocation)
    }
}

script_agent!(Exec);

#[cfg(test)]
mod tests;
