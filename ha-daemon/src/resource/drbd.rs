//! The `drbd` resource agent: promotes and demotes one DRBD resource.
//!
//! - `start` = promote: `drbdadm primary RES`, nothing if already Primary.
//! - `stop` = demote: `drbdadm secondary RES`, nothing if already Secondary or not up
//!   (a resource that is not up is not Primary here, which is all `stop` promises).
//! - `monitor`: `drbdsetup events2 --now RES`, folded by [`crate::core::drbd_events`]:
//!   Running = Primary with every volume UpToDate, Stopped = Secondary, Failed otherwise
//!   with the reason ("resource r0 not up", "... volume 0 has disk Diskless").
//! - `validate`: the resource name, both programs found, and a supported DRBD version
//!   (`drbdadm --version`, else `/proc/drbd`): 8.4 or 9.
//!
//! Never `--force`: DRBD's refusals (peer is Primary, our disk not UpToDate, device held
//! open, resource not up) are the last guard against split brain; they come back as
//! `AgentError::failed(DrbdError::Refused { .. })` for callers to downcast and match on
//! [`RefusalReason`].
//!
//! DRBD 8.4 and 9: both are driven the same way (drbdadm and events2; drbd-utils 9
//! delegates to its `drbdadm-84`/`drbdsetup-84` helpers for an 8.4 module, and exits 20
//! with "execvp() failed to exec drbdadm-84" when they are missing). `drbdsetup status
//! --json` is never used: 8.4 lacks it. 8.4 does not name who holds a device open.
//!
//! Settings ([`DrbdSettings`]): `resource` (required), `drbdadm` (default
//! [`DEFAULT_DRBDADM`], looked up in PATH), `drbdsetup` (default [`DEFAULT_DRBDSETUP`]).
//! Tests point both at an emulator.
//!
//! [`watch::DrbdWatch`] follows the state live (`drbdsetup events2 RES`).

pub mod watch;

use std::path::PathBuf;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::agent::{Agent, AgentError, Health};
use super::command::{self, Invocation, Outcome, SpawnError};
use crate::core::drbd_events::line::{ParseError, parse_line};
use crate::core::drbd_events::refusal::{Refusal, RefusalReason};
use crate::core::drbd_events::state::{Assessment, ResourceState, Role};
use crate::core::drbd_events::version::{self, Version};

/// The default `drbdadm`, looked up in PATH.
pub const DEFAULT_DRBDADM: &str = "drbdadm";
/// The default `drbdsetup`, looked up in PATH.
pub const DEFAULT_DRBDSETUP: &str = "drbdsetup";
/// Where the kernel module reports its version when `drbdadm --version` does not.
const PROC_DRBD: &str = "/proc/drbd";

/// Settings of one `drbd` resource.
#[derive(Clone, Debug, PartialEq)]
pub struct DrbdSettings {
    /// The DRBD resource name (`r0`), as in the DRBD configuration.
    pub resource: String,
    /// The `drbdadm` program (default `drbdadm`, looked up in PATH).
    pub drbdadm: PathBuf,
    /// The `drbdsetup` program (default `drbdsetup`, looked up in PATH).
    pub drbdsetup: PathBuf,
}

impl DrbdSettings {
    /// Settings for `resource` with the default programs.
    pub fn new(resource: impl Into<String>) -> Self {
        DrbdSettings {
            resource: resource.into(),
            drbdadm: PathBuf::from(DEFAULT_DRBDADM),
            drbdsetup: PathBuf::from(DEFAULT_DRBDSETUP),
        }
    }
}

/// Why a `drbd` agent call failed.
#[derive(Debug, thiserror::Error)]
pub enum DrbdError {
    /// DRBD refused the state change; `refusal.reason` says why.
    #[error("drbd resource {resource}: `{command}` refused: {refusal}")]
    Refused {
        /// The resource.
        resource: String,
        /// The command line.
        command: String,
        /// The classified refusal.
        refusal: Refusal,
    },
    /// A program could not be run.
    #[error("drbd resource {resource}: {source}")]
    Spawn {
        /// The resource.
        resource: String,
        /// The cause.
        #[source]
        source: SpawnError,
    },
    /// A query (`events2 --now`, `--version`) failed.
    #[error("drbd resource {resource}: `{command}` failed with exit code {code:?}: {stderr}")]
    Query {
        /// The resource.
        resource: String,
        /// The command line.
        command: String,
        /// Its exit code.
        code: Option<i32>,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// `drbdsetup events2` printed something that is not events2 output.
    #[error("drbd resource {resource}: `{command}`: {source}")]
    Output {
        /// The resource.
        resource: String,
        /// The command line.
        command: String,
        /// The malformed line.
        #[source]
        source: ParseError,
    },
    /// `drbdsetup events2 --now` ended before the end of its dump (`exists -`).
    #[error("drbd resource {resource}: `{command}` ended before `exists -`: state incomplete")]
    Incomplete {
        /// The resource.
        resource: String,
        /// The command line.
        command: String,
    },
    /// The DRBD version could not be told, or is not supported.
    #[error("drbd resource {resource}: {reason}")]
    Version {
        /// The resource.
        resource: String,
        /// What was found.
        reason: String,
    },
}

/// The `drbd` agent (see the module doc).
#[derive(Debug)]
pub struct Drbd {
    settings: DrbdSettings,
}

impl Drbd {
    /// An agent for the resource in `settings`.
    pub fn new(settings: DrbdSettings) -> Self {
        Drbd { settings }
    }

    /// Its settings.
    pub fn settings(&self) -> &DrbdSettings {
        &self.settings
    }

    /// The resource's state now, from `drbdsetup events2 --now RES`. A resource that
    /// is not up is a state (`exists() == false`), not an error.
    pub async fn state(&self) -> Result<ResourceState, DrbdError> {
        let resource = &self.settings.resource;
        let invocation = Invocation::new(
            &self.settings.drbdsetup,
            ["events2", "--now", resource.as_str()],
        );
        let outcome = self.run(&invocation).await?;
        if !outcome.success() {
            let refusal = Refusal::classify(outcome.code, &outcome.stderr, None);
            if refusal.reason == RefusalReason::NotUp {
                return Ok(ResourceState::not_up(resource.as_str()));
            }
            return Err(self.query_error(&invocation, &outcome));
        }
        let mut state = ResourceState::new(resource.as_str());
        for line in outcome
            .stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
        {
            let line = parse_line(line).map_err(|source| DrbdError::Output {
                resource: resource.clone(),
                command: invocation.to_string(),
                source,
            })?;
            state.apply(&line);
        }
        if !state.dump_complete() {
            return Err(DrbdError::Incomplete {
                resource: resource.clone(),
                command: invocation.to_string(),
            });
        }
        Ok(state)
    }

    /// The loaded kernel module's version: `drbdadm --version`, else `/proc/drbd`.
    pub async fn version(&self) -> Result<Version, DrbdError> {
        let invocation = Invocation::new(&self.settings.drbdadm, ["--version"]);
        let outcome = self.run(&invocation).await?;
        if !outcome.success() {
            return Err(self.query_error(&invocation, &outcome));
        }
        let adm = version::parse_drbdadm_version(&outcome.stdout).map_err(|error| {
            DrbdError::Version {
                resource: self.settings.resource.clone(),
                reason: error.to_string(),
            }
        })?;
        if let Some(kernel) = adm.kernel {
            return Ok(kernel);
        }
        let proc = tokio::fs::read_to_string(PROC_DRBD)
            .await
            .unwrap_or_default();
        version::parse_proc_drbd(proc.lines().next().unwrap_or_default()).ok_or_else(|| {
            DrbdError::Version {
                resource: self.settings.resource.clone(),
                reason: format!(
                    "the DRBD kernel module is not loaded (`{invocation}` reports kernel \
                     version code 0 and {PROC_DRBD} has no version line)"
                ),
            }
        })
    }

    /// Runs `drbdadm VERB RES`; a failure is a classified [`DrbdError::Refused`].
    async fn adm(&self, verb: &str, before: &ResourceState) -> Result<(), DrbdError> {
        let invocation = Invocation::new(
            &self.settings.drbdadm,
            [verb, self.settings.resource.as_str()],
        );
        let outcome = self.run(&invocation).await?;
        if outcome.success() {
            return Ok(());
        }
        Err(DrbdError::Refused {
            resource: self.settings.resource.clone(),
            command: invocation.to_string(),
            refusal: Refusal::classify(outcome.code, &outcome.stderr, before.local_disk()),
        })
    }

    async fn run(&self, invocation: &Invocation) -> Result<Outcome, DrbdError> {
        invocation.run().await.map_err(|source| DrbdError::Spawn {
            resource: self.settings.resource.clone(),
            source,
        })
    }

    fn query_error(&self, invocation: &Invocation, outcome: &Outcome) -> DrbdError {
        DrbdError::Query {
            resource: self.settings.resource.clone(),
            command: invocation.to_string(),
            code: outcome.code,
            stderr: outcome.stderr.trim().to_owned(),
        }
    }

    async fn promote(&self) -> Result<(), DrbdError> {
        let state = self.state().await?;
        if *state.role() == Role::Primary {
            return Ok(());
        }
        self.adm("primary", &state).await
    }

    async fn demote(&self) -> Result<(), DrbdError> {
        let state = self.state().await?;
        if !state.exists() || *state.role() == Role::Secondary {
            return Ok(());
        }
        self.adm("secondary", &state).await
    }

    async fn check(&self) -> Result<(), AgentError> {
        let resource = &self.settings.resource;
        if !valid_resource_name(resource) {
            return Err(AgentError::Invalid(format!(
                "drbd resource name {resource:?} must be non-empty, without white space or '/'"
            )));
        }
        for program in [&self.settings.drbdadm, &self.settings.drbdsetup] {
            command::find_program(program).map_err(|error| {
                AgentError::Invalid(format!("drbd resource {resource}: {error}"))
            })?;
        }
        let version = self
            .version()
            .await
            .map_err(|error| AgentError::Invalid(error.to_string()))?;
        if version.generation().is_none() {
            return Err(AgentError::Invalid(format!(
                "drbd resource {resource}: DRBD {version} is not supported (8.4 or 9 needed)"
            )));
        }
        Ok(())
    }
}

fn valid_resource_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '/')
}

impl Agent for Drbd {
    fn kind(&self) -> &'static str {
        "drbd"
    }

    fn validate(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        self.check().boxed()
    }

    fn start(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        async move { self.promote().await.map_err(AgentError::failed) }.boxed()
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        async move { self.demote().await.map_err(AgentError::failed) }.boxed()
    }

    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
        async move {
            let state = self.state().await.map_err(AgentError::failed)?;
            Ok(match state.assess() {
                Assessment::Promoted => Health::Running,
                Assessment::Demoted => Health::Stopped,
                Assessment::Unfit(reason) => Health::Failed(reason),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests;
