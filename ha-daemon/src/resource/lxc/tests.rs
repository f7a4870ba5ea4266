//! Unit tests of the `lxc` agent, with fake `lxc-*` scripts for the start/stop flows.

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
    assert_eq!(settings().announce_schedule, DEFAULT_SCHEDULE);
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
    let mut s = settings();
    s.announce_schedule.clear();
    assert!(
        check_settings(&s)
            .unwrap_err()
            .contains("announce_schedule is empty")
    );
    s.announce_schedule = [0, 200, 50].map(Duration::from_millis).to_vec();
    assert!(check_settings(&s).unwrap_err().contains("not ascending"));
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
}

#[tokio::test]
async fn a_missing_user_fails_every_operation_naming_container_and_user() {
    let mut s = settings();
    s.user = Some("ha-no-such-user".into());
    let error = LxcAgent::new(s).start().await.unwrap_err().to_string();
    assert!(
        error.starts_with("container web in /srv/ha/lxc: user: ")
            && error.contains("ha-no-such-user"),
        "{error}"
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

/// Fake `lxc-info`/`lxc-start`/`lxc-stop` scripts over a state file, logging each call,
/// and the container's config (no network unless [`FakeLxc::config`] says otherwise) in
/// the fake's directory, which is the lxcpath.
struct FakeLxc {
    dir: PathBuf,
}

impl FakeLxc {
    /// `start` and `stop_t` are shell snippets run by `lxc-start` and `lxc-stop -t`.
    fn new(test: &str, initial: &str, start: &str, stop_t: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ha-lxc-fake-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("state");
        let log = dir.join("log");
        std::fs::write(&state, initial).unwrap();
        std::fs::create_dir(dir.join("web")).unwrap();
        std::fs::write(dir.join("web/config"), "lxc.net.0.type = empty\n").unwrap();
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

    fn config(&self, text: &str) {
        std::fs::write(self.dir.join("web/config"), text).unwrap();
    }

    fn settings(&self) -> LxcSettings {
        let mut s = settings();
        s.lxcpath.clone_from(&self.dir);
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
            .map(|line| line.replace(&format!(" -n web -P {}", self.dir.display()), ""))
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
async fn an_address_that_cannot_be_announced_fails_start_naming_it_and_the_bridge() {
    let fake = FakeLxc::new("announce", "STOPPED", "echo RUNNING > STATE", "exit 1");
    fake.config(
        "lxc.net.0.type = veth\nlxc.net.0.link = hat-none0\n\
         lxc.net.0.hwaddr = 02:00:00:00:00:50\nlxc.net.0.ipv4.address = 192.0.2.50/24\n",
    );
    let agent = LxcAgent::new(fake.settings());
    let error = agent.start().await.unwrap_err();
    let AgentError::Failed(inner) = &error else {
        panic!("not a failure: {error}");
    };
    let lxc = inner.downcast_ref::<LxcError>().expect("an LxcError");
    assert!(matches!(lxc.cause, Cause::Announce(_)), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "container web in {}: running, but announcing 192.0.2.50 on hat-none0: no such \
             interface",
            fake.dir.display()
        )
    );
    assert_eq!(
        fake.calls(),
        ["info -s", "start -d", "info -s"],
        "the container is left running"
    );
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
}

#[tokio::test]
async fn a_missing_config_fails_start_after_running() {
    let fake = FakeLxc::new("noconfig", "RUNNING", "exit 0", "exit 1");
    std::fs::remove_file(fake.dir.join("web/config")).unwrap();
    let error = LxcAgent::new(fake.settings()).start().await.unwrap_err();
    assert!(
        error.to_string().contains("web/config: No such file"),
        "{error}"
    );
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
    let command = format!("lxc-start -n web -P {} -F", fake.dir.display());
    assert!(error.contains(&command), "{error}");
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
