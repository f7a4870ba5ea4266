//! The `ocf` agent: runs an OCF resource agent,
//! `$OCF_ROOT/resource.d/PROVIDER/AGENT start|stop|monitor|validate-all`, with
//! `OCF_ROOT`, `OCF_RESOURCE_INSTANCE`, `OCF_RESOURCE_TYPE`, `OCF_RESOURCE_PROVIDER`,
//! `OCF_RA_VERSION_MAJOR/MINOR` and `OCF_RESKEY_<name>=<value>` per parameter, so the
//! whole resource-agents collection is usable.
//!
//! Exit codes are [`OcfStatus`]. `validate` checks the settings and the agent file,
//! then runs `validate-all` (an agent without it, OCF_ERR_UNIMPLEMENTED, passes).
//! Start, stop and monitor follow the shared rules of [`super`].
//!
//! Settings ([`OcfSettings`]): `instance` (OCF_RESOURCE_INSTANCE), `provider`
//! (`heartbeat`), `agent` (`Dummy`), `params` (default none), `ocf_root` (default
//! [`DEFAULT_OCF_ROOT`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::{Action, Convention, Exit, Scripts, run, script_agent, valid_env_key};
use crate::resource::agent::{Agent, AgentError, Health};
use crate::resource::command::{self, Invocation};

/// Where Debian's resource-agents (and pacemaker) keep OCF agents.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// An OCF exit code (OCF resource agent API 1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcfStatus {
    /// 0: success; for monitor, running.
    Success,
    /// 1: generic error.
    ErrGeneric,
    /// 2: invalid arguments (parameters).
    ErrArgs,
    /// 3: action not implemented.
    ErrUnimplemented,
    /// 4: insufficient privileges.
    ErrPerm,
    /// 5: a program or file the agent needs is not installed.
    ErrInstalled,
    /// 6: the configuration is wrong.
    ErrConfigured,
    /// 7: not running (cleanly stopped).
    NotRunning,
    /// 8: running in the promoted role.
    RunningPromoted,
    /// 9: failed in the promoted role.
    FailedPromoted,
    /// Any other code.
    Other(i32),
}

impl OcfStatus {
    /// The status of exit code `code`.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => OcfStatus::Success,
            1 => OcfStatus::ErrGeneric,
            2 => OcfStatus::ErrArgs,
            3 => OcfStatus::ErrUnimplemented,
            4 => OcfStatus::ErrPerm,
            5 => OcfStatus::ErrInstalled,
            6 => OcfStatus::ErrConfigured,
            7 => OcfStatus::NotRunning,
            8 => OcfStatus::RunningPromoted,
            9 => OcfStatus::FailedPromoted,
            other => OcfStatus::Other(other),
        }
    }

    /// The exit code.
    pub fn code(self) -> i32 {
        match self {
            OcfStatus::Success => 0,
            OcfStatus::ErrGeneric => 1,
            OcfStatus::ErrArgs => 2,
            OcfStatus::ErrUnimplemented => 3,
            OcfStatus::ErrPerm => 4,
            OcfStatus::ErrInstalled => 5,
            OcfStatus::ErrConfigured => 6,
            OcfStatus::NotRunning => 7,
            OcfStatus::RunningPromoted => 8,
            OcfStatus::FailedPromoted => 9,
            OcfStatus::Other(code) => code,
        }
    }

    /// The name the OCF shell functions give it.
    pub fn name(self) -> &'static str {
        match self {
            OcfStatus::Success => "OCF_SUCCESS",
            OcfStatus::ErrGeneric => "OCF_ERR_GENERIC",
            OcfStatus::ErrArgs => "OCF_ERR_ARGS",
            OcfStatus::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfStatus::ErrPerm => "OCF_ERR_PERM",
            OcfStatus::ErrInstalled => "OCF_ERR_INSTALLED",
            OcfStatus::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfStatus::NotRunning => "OCF_NOT_RUNNING",
            OcfStatus::RunningPromoted => "OCF_RUNNING_PROMOTED",
            OcfStatus::FailedPromoted => "OCF_FAILED_PROMOTED",
            OcfStatus::Other(_) => "an unknown OCF code",
        }
    }
}

impl fmt::Display for OcfStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Settings of one `ocf` resource.
#[derive(Clone, Debug, PartialEq)]
pub struct OcfSettings {
    /// The instance name (`OCF_RESOURCE_INSTANCE`), also used in messages.
    pub instance: String,
    /// The provider directory under `resource.d` (`heartbeat`).
    pub provider: String,
    /// The agent (`Dummy`).
    pub agent: String,
    /// Parameters, passed as `OCF_RESKEY_<name>=<value>` (default none).
    pub params: BTreeMap<String, String>,
    /// `OCF_ROOT` (default [`DEFAULT_OCF_ROOT`]).
    pub ocf_root: PathBuf,
}

impl OcfSettings {
    /// Settings for `ocf:PROVIDER:AGENT` named `instance`, no parameters, the default
    /// OCF root.
    pub fn new(
        instance: impl Into<String>,
        provider: impl Into<String>,
        agent: impl Into<String>,
    ) -> Self {
        OcfSettings {
            instance: instance.into(),
            provider: provider.into(),
            agent: agent.into(),
            params: BTreeMap::new(),
            ocf_root: PathBuf::from(DEFAULT_OCF_ROOT),
        }
    }

    /// The agent's path.
    pub fn agent_path(&self) -> PathBuf {
        self.ocf_root
            .join("resource.d")
            .join(&self.provider)
            .join(&self.agent)
    }

    /// What is wrong with the settings, if anything (pure).
    pub fn problem(&self) -> Option<String> {
        let plain = |word: &str| !word.is_empty() && !word.contains('/') && word != "..";
        if self.instance.is_empty() {
            return Some("the instance name is empty".to_owned());
        }
        if !plain(&self.provider) || !plain(&self.agent) {
            return Some(format!(
                "provider {:?} and agent {:?} must be plain names",
                self.provider, self.agent
            ));
        }
        if !self.ocf_root.is_absolute() {
            return Some(format!(
                "ocf_root {} is not absolute",
                self.ocf_root.display()
            ));
        }
        self.params
            .keys()
            .find(|key| !valid_env_key(key))
            .map(|key| format!("parameter name {key:?} is not [A-Za-z_][A-Za-z0-9_]*"))
    }
}

/// The `ocf` agent (see the module doc).
#[derive(Debug)]
pub struct Ocf {
    settings: OcfSettings,
}

impl Ocf {
    /// An agent running the OCF agent in `settings`.
    pub fn new(settings: OcfSettings) -> Self {
        Ocf { settings }
    }

    async fn check(&self) -> Result<(), AgentError> {
        let settings = &self.settings;
        let invalid = |text: String| {
            AgentError::Invalid(format!(
                "ocf resource {} (ocf:{}:{}): {text}",
                settings.instance, settings.provider, settings.agent
            ))
        };
        if let Some(problem) = settings.problem() {
            return Err(invalid(problem));
        }
        command::find_program(&settings.agent_path()).map_err(invalid)?;
        let (exit, command, stderr) = run(self, Action::Validate)
            .await
            .map_err(|error| invalid(error.to_string()))?;
        match exit {
            Exit::Ocf(OcfStatus::Success | OcfStatus::ErrUnimplemented) => Ok(()),
            exit => Err(invalid(format!(
                "`{command}` {exit}{}",
                super::stderr_suffix(&stderr)
            ))),
        }
    }
}

impl Scripts for Ocf {
    fn kind(&self) -> &'static str {
        "ocf"
    }

    fn resource(&self) -> &str {
        &self.settings.instance
    }

    fn convention(&self) -> Convention {
        Convention::Ocf
    }

    fn invocation(&self, action: Action) -> Result<Invocation, String> {
        if let Some(problem) = self.settings.problem() {
            return Err(problem);
        }
        let verb = match action {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::Validate => "validate-all",
        };
        let settings = &self.settings;
        let mut invocation = Invocation::new(settings.agent_path(), [verb]);
        let fixed = [
            ("OCF_ROOT", settings.ocf_root.as_os_str().to_owned()),
            ("OCF_RESOURCE_INSTANCE", settings.instance.clone().into()),
            ("OCF_RESOURCE_TYPE", settings.agent.clone().into()),
            ("OCF_RESOURCE_PROVIDER", settings.provider.clone().into()),
            ("OCF_RA_VERSION_MAJOR", "1".into()),
            ("OCF_RA_VERSION_MINOR", "1".into()),
        ];
        invocation.env = fixed
            .into_iter()
            .map(|(key, value)| (key.into(), value))
            .chain(
                settings
                    .params
                    .iter()
                    .map(|(key, value)| (format!("OCF_RESKEY_{key}").into(), value.into())),
            )
            .collect();
        Ok(invocation)
    }
}

script_agent!(Ocf);
