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
//!
//! Behaviour:
//! - `start`: `lxc-info -s` says RUNNING -> nothing; STOPPED -> `lxc-start -n NAME -P
//!   LXCPATH -d`, then poll `lxc-info` until RUNNING; STARTING -> poll; any other state
//!   (FROZEN, STOPPING, ...) -> refused. Not RUNNING within `start_timeout` -> an error
//!   with the last state seen and where the container's log is.
//! - `stop`: STOPPED -> nothing; else `lxc-stop -t SECS`; if that fails or outlives
//!   `stop_timeout` (plus a margin), `lxc-stop -k`; then STOPPED must follow within
//!   [`KILL_WAIT`], else an error with what each attempt said and the last state.
//! - `monitor`: RUNNING -> Running, STOPPED -> Stopped; any other state, or `lxc-info`
//!   failing (container missing, lxcpath not mounted) -> Failed with the reason.
//! - `validate`: the settings, the user and the three commands; not the container, whose
//!   lxcpath may be on a filesystem that is not mounted yet.
//!
//! After `start`, [`LxcAgent::addresses`] gives the container's configured static
//! addresses with their MACs ([`config`]), for announcing them with gratuitous ARP.

pub mod config;
pub mod state;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::timeout;

pub use self::config::{ContainerAddress, container_addresses};
use self::state::{LxcState, StartStep, parse_info_state, start_step};
use super::command::{Invocation, Outcome, RunAs, SpawnError};
use super::{Agent, AgentError, Health};

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
}

impl LxcSettings {
    /// The default `start_timeout`.
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default `stop_timeout`.
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

    /// Settings with the defaults: the daemon's user, default timeouts, commands from `PATH`.
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
        }
    }
}

/// How often `lxc-info` is asked while waiting for a state.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How much longer than its own `-t` a clean `lxc-stop` may take before it is abandoned.
const STOP_MARGIN: Duration = Duration::from_secs(5);
/// How long the container may take to be STOPPED after the last `lxc-stop`.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// Why an `lxc` operation failed. Each message names the container and its lxcpath.
#[derive(Debug, thiserror::Error)]
pub enum LxcError {
    /// The configured user does not exist.
    #[error("container {container}: user: {reason}")]
    User {
        /// `NAME in LXCPATH`.
        container: String,
        /// Why.
        reason: String,
    },
    /// A command could not run.
    #[error("container {container}: {source}")]
    Spawn {
        /// `NAME in LXCPATH`.
        container: String,
        /// Why.
        #[source]
        source: SpawnError,
    },
    /// `lxc-info` failed or printed no state (missing container, lxcpath not mounted).
    #[error("container {container}: `{command}` {result}")]
    Info {
        /// `NAME in LXCPATH`.
        container: String,
        /// The command line.
        command: String,
        /// Its exit and output.
        result: String,
    },
    /// The container is in a state `start` does not touch.
    #[error("container {container}: not starting it while it is {state}")]
    Refused {
        /// `NAME in LXCPATH`.
        container: String,
        /// Its state.
        state: LxcState,
    },
    /// `lxc-start` failed.
    #[error("container {container}: `{command}` {result}; {hint}")]
    StartFailed {
        /// `NAME in LXCPATH`.
        container: String,
        /// The command line.
        command: String,
        /// Its exit and output.
        result: String,
        /// Where to look next.
        hint: String,
    },
    /// The container did not reach RUNNING in time.
    #[error("container {container}: not RUNNING within {timeout:?} (last: {last}); {hint}")]
    StartTimeout {
        /// `NAME in LXCPATH`.
        container: String,
        /// The start timeout.
        timeout: Duration,
        /// The last state seen, or why none was.
        last: String,
        /// Where to look next.
        hint: String,
    },
    /// The container was not STOPPED after `lxc-stop` and `lxc-stop -k`.
    #[error("container {container}: still not STOPPED (last: {last}) after {}", .attempts.join("; "))]
    StopFailed {
        /// `NAME in LXCPATH`.
        container: String,
        /// What each stop attempt did.
        attempts: Vec<String>,
        /// The last state seen, or why none was.
        last: String,
    },
    /// The container's config file could not be read.
    #[error("container {container}: reading {path}: {source}")]
    Config {
        /// `NAME in LXCPATH`.
        container: String,
        /// The config file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The `lxc` agent.
#[derive(Debug)]
pub struct LxcAgent {
    settings: LxcSettings,
}

impl LxcAgent {
    /// An agent for these settings; nothing is checked before [`Agent::validate`].
    pub fn new(settings: LxcSettings) -> Self {
        LxcAgent { settings }
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
        let path = self.config_path();
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|source| LxcError::Config {
                container: self.container(),
                path: path.display().to_string(),
                source,
            })?;
        Ok(container_addresses(&text))
    }

    fn container(&self) -> String {
        format!(
            "{} in {}",
            self.settings.name,
            self.settings.lxcpath.display()
        )
    }

    /// `PROGRAM -n NAME -P LXCPATH EXTRA...`, as the configured user.
    fn invocation(&self, program: &Path, extra: &[&str]) -> Result<Invocation, LxcError> {
        let mut args = vec![
            OsString::from("-n"),
            OsString::from(&self.settings.name),
            OsString::from("-P"),
            self.settings.lxcpath.clone().into_os_string(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let mut invocation = Invocation::new(program, args);
        if let Some(user) = &self.settings.user {
            invocation.user = Some(RunAs::lookup(user).map_err(|reason| LxcError::User {
                container: self.container(),
                reason,
            })?);
        }
        Ok(invocation)
    }

    async fn run(&self, invocation: &Invocation) -> Result<Outcome, LxcError> {
        invocation.run().await.map_err(|source| LxcError::Spawn {
            container: self.container(),
            source,
        })
    }

    /// The container's state from `lxc-info -s`.
    async fn state(&self) -> Result<LxcState, LxcError> {
        let invocation = self.invocation(&self.settings.lxc_info, &["-s"])?;
        let outcome = self.run(&invocation).await?;
        let parsed = outcome
            .success()
            .then(|| parse_info_state(&outcome.stdout))
            .flatten();
        parsed.ok_or_else(|| LxcError::Info {
            container: self.container(),
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
                Err(error) => *last = error.to_string(),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn launch(&self) -> Result<(), LxcError> {
        let invocation = self.invocation(&self.settings.lxc_start, &["-d"])?;
        let outcome = self.run(&invocation).await?;
        if outcome.success() {
            return Ok(());
        }
        Err(LxcError::StartFailed {
            container: self.container(),
            command: invocation.to_string(),
            result: describe(&outcome),
            hint: self.log_hint().await,
        })
    }

    async fn log_hint(&self) -> String {
        let config = tokio::fs::read_to_string(self.config_path()).await.ok();
        log_hint(&self.settings, &self.config_path(), config.as_deref())
    }

    async fn start_container(&self) -> Result<(), LxcError> {
        let state = self.state().await?;
        let launch = match start_step(&state) {
            StartStep::Nothing => return Ok(()),
            StartStep::Refuse => {
                return Err(LxcError::Refused {
                    container: self.container(),
                    state,
                });
            }
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
            Err(_elapsed) => Err(LxcError::StartTimeout {
                container: self.container(),
                timeout: self.settings.start_timeout,
                last,
                hint: self.log_hint().await,
            }),
        }
    }

    async fn stop_container(&self) -> Result<(), LxcError> {
        if self.state().await? == LxcState::Stopped {
            return Ok(());
        }
        let seconds = whole_seconds(self.settings.stop_timeout).to_string();
        let clean = self.invocation(&self.settings.lxc_stop, &["-t", &seconds])?;
        let mut attempts = Vec::new();
        let clean_ok =
            match timeout(self.settings.stop_timeout + STOP_MARGIN, self.run(&clean)).await {
                Ok(Ok(outcome)) if outcome.success() => true,
                Ok(Ok(outcome)) => {
                    attempts.push(format!("`{clean}` {}", describe(&outcome)));
                    false
                }
                Ok(Err(error)) => return Err(error),
                Err(_elapsed) => {
                    attempts.push(format!(
                        "`{clean}` still running after {:?}",
                        self.settings.stop_timeout + STOP_MARGIN
                    ));
                    false
                }
            };
        if !clean_ok {
            let kill = self.invocation(&self.settings.lxc_stop, &["-k"])?;
            match timeout(KILL_WAIT, self.run(&kill)).await {
                Ok(Ok(outcome)) => attempts.push(format!("`{kill}` {}", describe(&outcome))),
                Ok(Err(error)) => return Err(error),
                Err(_elapsed) => {
                    attempts.push(format!("`{kill}` still running after {KILL_WAIT:?}"))
                }
            }
        }
        let mut last = String::from("no state read");
        match timeout(KILL_WAIT, self.poll_until(&LxcState::Stopped, &mut last)).await {
            Ok(()) => Ok(()),
            Err(_elapsed) => Err(LxcError::StopFailed {
                container: self.container(),
                attempts,
                last,
            }),
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
        Box::pin(async move { self.start_container().await.map_err(AgentError::failed) })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move { self.stop_container().await.map_err(AgentError::failed) })
    }

    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
        Box::pin(async move {
            match self.state().await {
                Ok(state) => Ok(health(&state)),
                Err(error @ LxcError::Info { .. }) => Ok(Health::Failed(error.to_string())),
                Err(error) => Err(AgentError::failed(error)),
            }
        })
    }
}

/// The resource's health in a container state. Pure.
fn health(state: &LxcState) -> Health {
    match state {
        LxcState::Running => Health::Running,
        LxcState::Stopped => Health::Stopped,
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
    Ok(())
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
mod tests {
    use super::*;

    fn settings() -> LxcSettings {
        LxcSettings::new("web", "/srv/ha/lxc")
    }

    #[test]
    fn health_is_running_stopped_or_failed_with_the_state() {
        assert_eq!(health(&LxcState::Running), Health::Running);
        assert_eq!(health(&LxcState::Stopped), Health::Stopped);
        assert_eq!(
            health(&LxcState::Frozen),
            Health::Failed("container is FROZEN".into())
        );
    }

    #[test]
    fn stop_timeouts_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(10)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn settings_checks_name_the_setting() {
        assert_eq!(check_settings(&settings()), Ok(()));
        for name in ["", "a/b", ".."] {
            let mut s = settings();
            s.name = name.into();
            assert!(
                check_settings(&s).unwrap_err().starts_with("name"),
                "{name}"
            );
        }
        let mut s = settings();
        s.lxcpath = "lxc".into();
        assert!(check_settings(&s).unwrap_err().contains("lxcpath lxc"));
        let mut s = settings();
        s.stop_timeout = Duration::ZERO;
        assert_eq!(check_settings(&s), Err("stop_timeout is zero".into()));
    }

    #[test]
    fn outcomes_are_described_by_code_and_the_most_telling_stream() {
        let outcome = |code, stdout: &str, stderr: &str| Outcome {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        assert_eq!(
            describe(&outcome(Some(1), "", "web doesn't exist\n")),
            "exited with 1: web doesn't exist"
        );
        assert_eq!(
            describe(&outcome(Some(2), "out\n", "  ")),
            "exited with 2: out"
        );
        assert_eq!(describe(&outcome(None, "", "")), "was killed by a signal");
    }

    #[test]
    fn the_log_hint_names_the_log_file_or_how_to_get_one() {
        let path = Path::new("/srv/ha/lxc/web/config");
        assert_eq!(
            log_hint(&settings(), path, Some("lxc.log.file = /var/log/web.log\n")),
            "its log: /var/log/web.log"
        );
        let hint = log_hint(&settings(), path, None);
        assert!(
            hint.contains("/srv/ha/lxc/web/config")
                && hint.contains("lxc-start -n web -P /srv/ha/lxc -F"),
            "{hint}"
        );
    }

    #[test]
    fn commands_name_the_container_and_run_as_the_user() {
        let mut s = settings();
        s.user = Some("root".into());
        let agent = LxcAgent::new(s);
        let invocation = agent.invocation(Path::new("lxc-info"), &["-s"]).unwrap();
        assert_eq!(invocation.to_string(), "lxc-info -n web -P /srv/ha/lxc -s");
        assert_eq!(invocation.user.map(|u| u.uid), Some(0));
        let mut s = settings();
        s.user = Some("ha-no-such-user".into());
        let error = LxcAgent::new(s)
            .invocation(Path::new("lxc-info"), &[])
            .unwrap_err();
        assert!(
            error.to_string().contains("web in /srv/ha/lxc")
                && error.to_string().contains("ha-no-such-user")
        );
    }

    #[tokio::test]
    async fn a_failing_lxc_info_makes_monitor_failed_and_start_an_error() {
        let mut s = settings();
        s.lxc_info = "false".into();
        let agent = LxcAgent::new(s);
        let health = agent.monitor().await.unwrap();
        assert!(
            matches!(&health, Health::Failed(why) if why.contains("`false -n web -P /srv/ha/lxc -s` exited with 1")),
            "{health}"
        );
        let error = agent.start().await.unwrap_err();
        assert!(error.to_string().contains("exited with 1"), "{error}");
    }

    /// Fake `lxc-info`/`lxc-start`/`lxc-stop` scripts over a state file, logging each call.
    struct FakeLxc {
        dir: PathBuf,
    }

    impl FakeLxc {
        /// `start` and `stop_t` are shell snippets run by `lxc-start` and `lxc-stop -t`.
        fn new(test: &str, initial: &str, start: &str, stop_t: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("ha-lxc-fake-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let state = dir.join("state");
            let log = dir.join("log");
            std::fs::write(&state, initial).unwrap();
            let script = |name: &str, body: String| {
                use std::os::unix::fs::PermissionsExt;
                let path = dir.join(name);
                let text = format!(
                    "#!/bin/sh\necho \"{name} $*\" >> {}\n{body}\n",
                    log.display()
                );
                std::fs::write(&path, text).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            };
            let state = state.display();
            script("info", format!("echo \"State:          $(cat {state})\""));
            script("start", start.replace("STATE", &state.to_string()));
            script(
                "stop",
                format!(
                    "if [ \"$5\" = -k ]; then echo STOPPED > {state}; exit 0; fi\n{}",
                    stop_t.replace("STATE", &state.to_string())
                ),
            );
            FakeLxc { dir }
        }

        fn settings(&self) -> LxcSettings {
            let mut s = settings();
            s.lxc_info = self.dir.join("info");
            s.lxc_start = self.dir.join("start");
            s.lxc_stop = self.dir.join("stop");
            s
        }

        /// The calls made, without `-n NAME -P PATH`.
        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.join("log"))
                .unwrap_or_default()
                .lines()
                .map(|line| line.replace(" -n web -P /srv/ha/lxc", ""))
                .collect()
        }
    }

    impl Drop for FakeLxc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn start_launches_once_and_then_does_nothing() {
        let fake = FakeLxc::new("start", "STOPPED", "echo RUNNING > STATE", "exit 1");
        let agent = LxcAgent::new(fake.settings());
        agent.start().await.unwrap();
        assert_eq!(fake.calls(), ["info -s", "start -d", "info -s"]);
        agent.start().await.unwrap();
        assert_eq!(fake.calls().len(), 4, "{:?}", fake.calls());
        assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    }

    #[tokio::test]
    async fn a_container_that_never_runs_times_out_with_its_last_state_and_a_hint() {
        let fake = FakeLxc::new("timeout", "STOPPED", "exit 0", "exit 1");
        let mut s = fake.settings();
        s.start_timeout = Duration::from_millis(300);
        let error = LxcAgent::new(s).start().await.unwrap_err().to_string();
        assert!(
            error.contains("not RUNNING within 300ms (last: STOPPED)"),
            "{error}"
        );
        assert!(
            error.contains("lxc-start -n web -P /srv/ha/lxc -F"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_frozen_container_is_not_started() {
        let fake = FakeLxc::new("frozen", "FROZEN", "exit 0", "exit 1");
        let error = LxcAgent::new(fake.settings())
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not starting it while it is FROZEN"),
            "{error}"
        );
        assert_eq!(fake.calls(), ["info -s"]);
    }

    #[tokio::test]
    async fn a_failing_clean_stop_falls_back_to_kill() {
        let fake = FakeLxc::new("kill", "RUNNING", "exit 0", "echo refused >&2; exit 1");
        let mut s = fake.settings();
        s.stop_timeout = Duration::from_millis(1500);
        let agent = LxcAgent::new(s);
        agent.stop().await.unwrap();
        assert_eq!(fake.calls(), ["info -s", "stop -t 2", "stop -k", "info -s"]);
        agent.stop().await.unwrap();
        assert_eq!(
            fake.calls().len(),
            5,
            "a stopped container is left alone: {:?}",
            fake.calls()
        );
        assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    }

    #[tokio::test]
    async fn a_clean_stop_needs_no_kill() {
        let fake = FakeLxc::new("clean", "RUNNING", "exit 0", "echo STOPPED > STATE");
        LxcAgent::new(fake.settings()).stop().await.unwrap();
        assert_eq!(fake.calls(), ["info -s", "stop -t 30", "info -s"]);
    }

    #[tokio::test]
    async fn a_missing_command_fails_validate_by_setting() {
        let mut s = settings();
        s.lxc_stop = "/nonexistent/lxc-stop".into();
        let error = LxcAgent::new(s).validate().await.unwrap_err();
        assert!(
            error.to_string().contains("lxc_stop /nonexistent/lxc-stop"),
            "{error}"
        );
    }
}
