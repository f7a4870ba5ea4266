//! The `lxc` resource agent: one LXC container, started and stopped with the `lxc-*` tools,
//! optionally as an unprivileged user.
//!
//! Settings ([`LxcSettings`]; defaults in [`LxcSettings::new`]):
//! - `name` (required): the container's name.
//! - `lxcpath` (required): the directory holding the container (`-P`), usually on the
//!   DRBD filesystem.
//! - `user` (default none: the daemon's user): run every `lxc-*` command as this user, for
//!   unprivileged containers owned by a per-volume user with their lxcpath in its home.
//! - `start_timeout` (default 30 s): from `lxc-start` until the container is RUNNING.
//! - `stop_timeout` (default 30 s): given to `lxc-stop -t` (rounded up to whole seconds).
//! - `lxc_start`, `lxc_stop`, `lxc_info` (default: the names, looked up in `PATH`).
//! - `announce_schedule` (default [`DEFAULT_SCHEDULE`]: 0, 50, 200, 1000 ms): when to
//!   announce the container's static addresses, as offsets from the moment `start` sees
//!   it RUNNING; non-empty and ascending.
//!
//! Behaviour:
//! - `start`: `lxc-info -s` says RUNNING -> nothing; STOPPED -> `lxc-start -n NAME -P
//!   LXCPATH -d`, then poll `lxc-info` until RUNNING; STARTING -> poll; any other state
//!   (FROZEN, STOPPING, ...) -> refused. Not RUNNING within `start_timeout` -> an error
//!   with the last state seen and where the container's log is. Once RUNNING, every
//!   static address of the container's config ([`container_addresses`]: veth on a host
//!   bridge, `lxc.net.N.hwaddr`, `lxc.net.N.ipv4.address` / `ipv6.address`) is announced
//!   on its `lxc.net.N.link` from the container's MAC ([`crate::io::announce`]: gratuitous
//!   ARP in both forms, or an unsolicited NA), on the schedule, so neighbours that knew
//!   the address at the other node's container switch at once. A start that finds the
//!   container RUNNING announces again, as the `vip` agent does: a start retried after a
//!   crash or timeout between RUNNING and the first announcement must still move the
//!   neighbours, and announcing what this node runs only restates the truth. An
//!   announcement that fails (no such bridge, ...) fails `start` naming the address and
//!   the bridge; the container stays running (the engine's rollback stops it).
//! - `stop`: cancels pending announcements; STOPPED -> nothing; else `lxc-stop -t
//!   SECS`; if that fails or outlives `stop_timeout` (plus a margin), `lxc-stop -k`; then
//!   STOPPED must follow within [`KILL_WAIT`], else an error with what each attempt said
//!   and the last state.
//! - A container `lxc-info` says "doesn't exist" is neither running nor defined (LXC
//!   finds running containers by their command socket, config or not): typically its
//!   lxcpath is on a filesystem not mounted on this node. It counts as stopped for
//!   `stop` and `monitor`; `start` refuses it, naming the lxcpath. Any other `lxc-info`
//!   failure fails `start` and `stop` alike: the agent cannot tell the state.
//! - `monitor`: RUNNING -> Running, STOPPED or not defined -> Stopped; any other state,
//!   or `lxc-info` failing otherwise -> Failed with the reason.
//! - `validate`: the settings, the user and the three commands; not the container, whose
//!   lxcpath may be on a filesystem that is not mounted yet.
//!
//! The announcements go out in the network namespace of the thread that polls `start`,
//! where the `lxc-*` commands run too: the host bridges must be there.
//!
//! Errors are [`LxcError`]: the container and a [`Cause`] to match on. [`config`],
//! [`state`] and [`error`] are pure; this file runs the commands. Unprivileged containers
//! need the user's `/etc/subuid` and `/etc/subgid` ranges and `lxc.idmap` in their config;
//! without delegated cgroups LXC runs them in the daemon's cgroups (it logs "not
//! writable, skipping" for each hierarchy), which is what the tests here exercise.

pub mod config;
pub mod error;
pub mod state;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::task::AbortHandle;
use tokio::time::timeout;

pub use self::config::{ContainerAddress, container_addresses};
pub use self::error::{Cause, LxcError};
use self::state::{LxcState, StartStep, parse_info_state, start_step, state_of_failed_info};
use super::command::{Invocation, Outcome, RunAs};
use super::{Agent, AgentError, Health};
use crate::core::announce::check_schedule;
pub use crate::io::announce::DEFAULT_SCHEDULE;
use crate::io::announce::announce;

/// Settings of one `lxc` resource.
#[derive(Clone, Debug, PartialEq)]
pub struct LxcSettings {
    /// The container's name (`-n`).
    pub name: String,
    /// The directory holding the container (`-P`); absolute.
    pub lxcpath: PathBuf,
    /// Run the `lxc-*` commands as this user instead of the daemon's.
    pub user: Option<String>,
    /// How long the container may take from `lxc-start` to RUNNING.
    pub start_timeout: Duration,
    /// How long a clean shutdown may take before the container is killed.
    pub stop_timeout: Duration,
    /// The `lxc-start` program.
    pub lxc_start: PathBuf,
    /// The `lxc-stop` program.
    pub lxc_stop: PathBuf,
    /// The `lxc-info` program.
    pub lxc_info: PathBuf,
    /// When to announce the container's static addresses once it is RUNNING, as
    /// ascending offsets; default [`DEFAULT_SCHEDULE`].
    pub announce_schedule: Vec<Duration>,
}

impl LxcSettings {
    /// The default `start_timeout`.
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default `stop_timeout`.
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

    /// Settings with the defaults: the daemon's user, default timeouts, commands from
    /// `PATH`, the default announcement schedule.
    pub fn new(name: &str, lxcpath: impl Into<PathBuf>) -> Self {
        LxcSettings {
            name: name.to_owned(),
            lxcpath: lxcpath.into(),
            user: None,
            start_timeout: Self::DEFAULT_START_TIMEOUT,
            stop_timeout: Self::DEFAULT_STOP_TIMEOUT,
            lxc_start: PathBuf::from("lxc-start"),
            lxc_stop: PathBuf::from("lxc-stop"),
            lxc_info: PathBuf::from("lxc-info"),
            announce_schedule: DEFAULT_SCHEDULE.to_vec(),
        }
    }
}

/// How often `lxc-info` is asked while waiting for a state.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How much longer than its own `-t` a clean `lxc-stop` may take before it is abandoned.
const STOP_MARGIN: Duration = Duration::from_secs(5);
/// How long the container may take to be STOPPED after the last `lxc-stop`.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// The `lxc` agent.
#[derive(Debug)]
pub struct LxcAgent {
    settings: LxcSettings,
    /// The announcements still pending from the last start; aborted by stop and drop.
    pending: Mutex<Vec<AbortHandle>>,
}

impl LxcAgent {
    /// An agent for these settings; nothing is checked before [`Agent::validate`].
    pub fn new(settings: LxcSettings) -> Self {
        LxcAgent {
            settings,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// The container's config file, `LXCPATH/NAME/config`.
    pub fn config_path(&self) -> PathBuf {
        self.settings
            .lxcpath
            .join(&self.settings.name)
            .join("config")
    }

    /// The container's configured static addresses and MACs (see [`container_addresses`]).
    pub async fn addresses(&self) -> Result<Vec<ContainerAddress>, LxcError> {
        self.read_addresses()
            .await
            .map_err(|cause| self.error(cause))
    }

    async fn read_addresses(&self) -> Result<Vec<ContainerAddress>, Cause> {
        let path = self.config_path();
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(container_addresses(&text)),
            Err(source) => Err(Cause::Config { path, source }),
        }
    }

    /// Announces every static address of the container on its link from its MAC, first
    /// rounds now, and keeps the pending rounds (aborting those of an earlier start).
    /// Stops at the first address that cannot be announced; the rounds of the ones
    /// before it stay pending, for stop to abort.
    async fn announce_addresses(&self) -> Result<(), Cause> {
        self.abort_pending();
        let addresses = self.read_addresses().await?;
        let schedule = &self.settings.announce_schedule;
        for found in addresses {
            let handle = announce(&found.link, found.address, Some(found.mac), schedule)
                .await
                .map_err(Cause::Announce)?;
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
        Ok(())
    }

    fn abort_pending(&self) {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in pending {
            handle.abort();
        }
    }

    fn error(&self, cause: Cause) -> LxcError {
        LxcError {
            name: self.settings.name.clone(),
            lxcpath: self.settings.lxcpath.clone(),
            cause,
        }
    }

    /// `PROGRAM -n NAME -P LXCPATH EXTRA...`, as the configured user.
    fn invocation(&self, program: &Path, extra: &[&str]) -> Result<Invocation, Cause> {
        let mut args = vec![
            OsString::from("-n"),
            OsString::from(&self.settings.name),
            OsString::from("-P"),
            self.settings.lxcpath.clone().into_os_string(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let mut invocation = Invocation::new(program, args);
        if let Some(user) = &self.settings.user {
            invocation.user = Some(RunAs::lookup(user).map_err(Cause::User)?);
        }
        Ok(invocation)
    }

    /// The container's state from `lxc-info -s`.
    async fn state(&self) -> Result<LxcState, Cause> {
        let invocation = self.invocation(&self.settings.lxc_info, &["-s"])?;
        let outcome = invocation.run().await.map_err(Cause::Spawn)?;
        let parsed = if outcome.success() {
            parse_info_state(&outcome.stdout)
        } else {
            state_of_failed_info(&outcome.stderr)
        };
        parsed.ok_or_else(|| Cause::Info {
            command: invocation.to_string(),
            result: describe(&outcome),
        })
    }

    /// Polls until the container is in `target`, keeping the last state seen (or the
    /// error instead) in `last`. Never returns otherwise: callers bound it with a timeout.
    async fn poll_until(&self, target: &LxcState, last: &mut String) {
        loop {
            match self.state().await {
                Ok(state) if state == *target => return,
                Ok(state) => *last = state.to_string(),
                Err(cause) => *last = cause.to_string(),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn launch(&self) -> Result<(), Cause> {
        let invocation = self.invocation(&self.settings.lxc_start, &["-d"])?;
        let outcome = invocation.run().await.map_err(Cause::Spawn)?;
        if outcome.success() {
            return Ok(());
        }
        Err(Cause::StartFailed {
            command: invocation.to_string(),
            result: describe(&outcome),
            hint: self.log_hint().await,
        })
    }

    async fn log_hint(&self) -> String {
        let config = tokio::fs::read_to_string(self.config_path()).await.ok();
        log_hint(&self.settings, &self.config_path(), config.as_deref())
    }

    async fn start_container(&self) -> Result<(), Cause> {
        let state = self.state().await?;
        let launch = match start_step(&state) {
            StartStep::Nothing => return Ok(()),
            StartStep::Refuse if state == LxcState::Undefined => return Err(Cause::Undefined),
            StartStep::Refuse => return Err(Cause::Refused(state)),
            StartStep::Launch => true,
            StartStep::Wait => false,
        };
        let mut last = state.to_string();
        let started = timeout(self.settings.start_timeout, async {
            if launch {
                self.launch().await?;
            }
            self.poll_until(&LxcState::Running, &mut last).await;
            Ok(())
        })
        .await;
        match started {
            Ok(result) => result,
            Err(_elapsed) => Err(Cause::StartTimeout {
                timeout: self.settings.start_timeout,
                last,
                hint: self.log_hint().await,
            }),
        }
    }

    /// Runs one `lxc-stop` within `limit`; `None` when it succeeded, else what happened.
    async fn try_stop(&self, extra: &[&str], limit: Duration) -> Result<Option<String>, Cause> {
        let invocation = self.invocation(&self.settings.lxc_stop, extra)?;
        match timeout(limit, invocation.run()).await {
            Ok(Ok(outcome)) if outcome.success() => Ok(None),
            Ok(Ok(outcome)) => Ok(Some(format!("`{invocation}` {}", describe(&outcome)))),
            Ok(Err(error)) => Err(Cause::Spawn(error)),
            Err(_elapsed) => Ok(Some(format!(
                "`{invocation}` still running after {limit:?}"
            ))),
        }
    }

    async fn stop_container(&self) -> Result<(), Cause> {
        if matches!(self.state().await?, LxcState::Stopped | LxcState::Undefined) {
            return Ok(());
        }
        let seconds = whole_seconds(self.settings.stop_timeout).to_string();
        let clean_limit = self.settings.stop_timeout + STOP_MARGIN;
        let mut attempts = Vec::new();
        if let Some(failed) = self.try_stop(&["-t", &seconds], clean_limit).await? {
            attempts.push(failed);
            attempts.extend(self.try_stop(&["-k"], KILL_WAIT).await?);
        }
        let mut last = String::from("no state read");
        match timeout(KILL_WAIT, self.poll_until(&LxcState::Stopped, &mut last)).await {
            Ok(()) => Ok(()),
            Err(_elapsed) => Err(Cause::StopFailed { attempts, last }),
        }
    }
}

impl Agent for LxcAgent {
    fn kind(&self) -> &'static str {
        "lxc"
    }

    fn validate(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move {
            let settings = &self.settings;
            check_settings(settings).map_err(AgentError::Invalid)?;
            if let Some(user) = &settings.user {
                RunAs::lookup(user)
                    .map_err(|reason| AgentError::Invalid(format!("user: {reason}")))?;
            }
            for (setting, program) in [
                ("lxc_start", &settings.lxc_start),
                ("lxc_stop", &settings.lxc_stop),
                ("lxc_info", &settings.lxc_info),
            ] {
                which::which(program).map_err(|error| {
                    AgentError::Invalid(format!("{setting} {}: {error}", program.display()))
                })?;
            }
            Ok(())
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move {
            let started = async {
                self.start_container().await?;
                self.announce_addresses().await
            };
            started
                .await
                .map_err(|cause| AgentError::failed(self.error(cause)))
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move {
            self.abort_pending();
            let stopped = self.stop_container().await;
            stopped.map_err(|cause| AgentError::failed(self.error(cause)))
        })
    }

    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
        Box::pin(async move {
            match self.state().await {
                Ok(state) => Ok(health(&state)),
                Err(cause @ Cause::Info { .. }) => Ok(Health::Failed(cause.to_string())),
                Err(cause) => Err(AgentError::failed(self.error(cause))),
            }
        })
    }
}

impl Drop for LxcAgent {
    fn drop(&mut self) {
        self.abort_pending();
    }
}

/// The resource's health in a container state. Pure.
fn health(state: &LxcState) -> Health {
    match state {
        LxcState::Running => Health::Running,
        LxcState::Stopped | LxcState::Undefined => Health::Stopped,
        other => Health::Failed(format!("container is {other}")),
    }
}

/// Checks what `validate` can check from the settings alone.
fn check_settings(settings: &LxcSettings) -> Result<(), String> {
    let name = &settings.name;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("name {name:?} is not a container name"));
    }
    if !settings.lxcpath.is_absolute() {
        return Err(format!(
            "lxcpath {} is not an absolute path",
            settings.lxcpath.display()
        ));
    }
    for (setting, value) in [
        ("start_timeout", settings.start_timeout),
        ("stop_timeout", settings.stop_timeout),
    ] {
        if value.is_zero() {
            return Err(format!("{setting} is zero"));
        }
    }
    check_schedule(&settings.announce_schedule)
}

/// `lxc-stop -t` takes whole seconds: rounds up, at least 1.
fn whole_seconds(duration: Duration) -> u64 {
    (duration.as_secs() + u64::from(duration.subsec_nanos() > 0)).max(1)
}

/// "exited with 1: <stderr or stdout>" for error messages.
fn describe(outcome: &Outcome) -> String {
    let status = match outcome.code {
        Some(code) => format!("exited with {code}"),
        None => "was killed by a signal".to_owned(),
    };
    let output = if outcome.stderr.trim().is_empty() {
        &outcome.stdout
    } else {
        &outcome.stderr
    };
    match output.trim() {
        "" => status,
        text => format!("{status}: {text}"),
    }
}

/// Where to look when the container does not start. Pure.
fn log_hint(settings: &LxcSettings, config_path: &Path, config: Option<&str>) -> String {
    match config.and_then(config::log_file) {
        Some(file) => format!("its log: {file}"),
        None => format!(
            "no lxc.log.file in {}; `lxc-start -n {} -P {} -F -l DEBUG -o FILE` shows why",
            config_path.display(),
            settings.name,
            settings.lxcpath.display()
        ),
    }
}

#[cfg(test)]
mod tests;
