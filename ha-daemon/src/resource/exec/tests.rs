//! Exit-code mapping (pure) and both agents with small `sh` scripts (no root needed;
//! the real `ocf:heartbeat:Dummy` runs in tests/tests/ocf.rs).

use std::path::{Path, PathBuf};

use super::ocf::{Ocf, OcfSettings, OcfStatus};
use super::*;

/// A directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("ha-exec-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_default()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A change to settings, for tables of invalid ones.
type Change<T> = fn(&mut T);

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[test]
fn monitor_exits_map_to_health() {
    let cases = [
        (Exit::Code(0), Health::Running),
        (Exit::Code(7), Health::Stopped),
        (Exit::Ocf(OcfStatus::Success), Health::Running),
        (Exit::Ocf(OcfStatus::RunningPromoted), Health::Running),
        (Exit::Ocf(OcfStatus::NotRunning), Health::Stopped),
        (
            Exit::Code(3),
            Health::Failed("monitor `svc status` exited with code 3: boom".into()),
        ),
        (
            Exit::Ocf(OcfStatus::ErrGeneric),
            Health::Failed("monitor `svc status` exited with OCF_ERR_GENERIC (1): boom".into()),
        ),
        (
            Exit::Ocf(OcfStatus::FailedPromoted),
            Health::Failed("monitor `svc status` exited with OCF_FAILED_PROMOTED (9): boom".into()),
        ),
        (
            Exit::Signal,
            Health::Failed("monitor `svc status` was killed by a signal: boom".into()),
        ),
    ];
    for (exit, health) in cases {
        assert_eq!(
            monitor_health(&exit, "svc status", " boom\n"),
            health,
            "{exit:?}"
        );
    }
    assert_eq!(
        monitor_health(&Exit::Code(1), "x", ""),
        Health::Failed("monitor `x` exited with code 1".into())
    );
}

#[test]
fn every_ocf_code_has_a_status_and_a_name() {
    for code in 0..=9 {
        let status = OcfStatus::from_code(code);
        assert_eq!(status.code(), code);
        assert!(status.name().starts_with("OCF_"), "{status}");
        assert!(!matches!(status, OcfStatus::Other(_)));
    }
    assert_eq!(OcfStatus::from_code(190), OcfStatus::Other(190));
    assert_eq!(
        OcfStatus::ErrConfigured.to_string(),
        "OCF_ERR_CONFIGURED (6)"
    );
    assert_eq!(Convention::Ocf.exit(Some(2)), Exit::Ocf(OcfStatus::ErrArgs));
    assert_eq!(Convention::Lsb.exit(Some(2)), Exit::Code(2));
    assert_eq!(Convention::Ocf.exit(None), Exit::Signal);
}

/// An `exec` service whose state is a file, counting starts and stops.
fn flag_service(dir: &Dir) -> ExecSettings {
    let flag = dir.file("running");
    let log = dir.file("log");
    ExecSettings {
        name: "flag".into(),
        start: sh(&format!("echo start >> {log}; touch {flag}")),
        stop: sh(&format!("echo stop >> {log}; rm {flag}")),
        monitor: sh(&format!("test -f {flag} && exit 0; exit 7")),
        user: None,
        env: BTreeMap::new(),
    }
}

#[tokio::test]
async fn exec_start_and_stop_are_idempotent() {
    let dir = Dir::new("idempotent");
    let agent = Exec::new(flag_service(&dir));
    agent.validate().await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    agent.stop().await.unwrap();
    agent.start().await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    agent.start().await.unwrap();
    agent.stop().await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    agent.stop().await.unwrap();
    assert_eq!(dir.read("log"), "start\nstop\n");
}

#[tokio::test]
async fn exec_failures_name_resource_action_command_code_and_stderr() {
    let dir = Dir::new("failures");
    let mut settings = flag_service(&dir);
    settings.start = sh("echo no disk >&2; exit 3");
    settings.env.insert("HA_GREETING".into(), "hello".into());
    settings.monitor = sh("echo \"$HA_GREETING\" >&2; exit 4");
    let agent = Exec::new(settings);
    assert_eq!(
        agent.monitor().await.unwrap(),
        Health::Failed(
            "monitor `sh -c echo \"$HA_GREETING\" >&2; exit 4` exited with code 4: hello".into()
        )
    );
    let error = agent.start().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "exec resource flag: start `sh -c echo no disk >&2; exit 3` exited with code 3: no disk"
    );
    let AgentError::Failed(inner) = error else {
        panic!("a failure")
    };
    assert!(matches!(
        inner.downcast_ref::<ExecError>(),
        Some(ExecError::Exited {
            action: Action::Start,
            exit: Exit::Code(3),
            ..
        })
    ));
}

#[tokio::test]
async fn exec_validate_names_the_problem_and_runs_nothing() {
    let dir = Dir::new("validate");
    let base = flag_service(&dir);
    let cases: [(Change<ExecSettings>, &str); 4] = [
        (|s| s.stop.clear(), "the stop command is empty"),
        (
            |s| s.monitor = vec!["ha-no-such-program".into()],
            "monitor command: program ha-no-such-program",
        ),
        (
            |s| s.user = Some("ha-no-such-user".into()),
            "ha-no-such-user",
        ),
        (
            |s| {
                s.env.insert("BAD-NAME".into(), "x".into());
            },
            "\"BAD-NAME\" is not valid",
        ),
    ];
    for (change, expected) in cases {
        let mut settings = base.clone();
        change(&mut settings);
        let error = Exec::new(settings).validate().await.unwrap_err();
        assert!(matches!(error, AgentError::Invalid(_)));
        let text = error.to_string();
        assert!(text.starts_with("invalid: exec resource flag: "), "{text}");
        assert!(text.contains(expected), "{text}");
    }
    assert_eq!(dir.read("log"), "", "validate ran nothing");
}

/// A fake OCF agent under `root`: records its action and OCF environment, keeps its
/// state in `$OCF_RESKEY_state`, and answers validate-all with `$OCF_RESKEY_validate`.
fn fake_ocf(root: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = root.join("resource.d/test");
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"#!/bin/sh
env | grep '^OCF_' | sort > "$OCF_RESKEY_state.env"
echo "$1" >> "$OCF_RESKEY_state.log"
case "$1" in
start) touch "$OCF_RESKEY_state"; exit 0;;
stop) rm -f "$OCF_RESKEY_state"; exit 0;;
monitor) [ -f "$OCF_RESKEY_state" ] && exit 8; exit 7;;
validate-all) echo "validate says $OCF_RESKEY_validate" >&2; exit "$OCF_RESKEY_validate";;
esac
exit 3
"#;
    let path = dir.join("Flag");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn ocf_settings(dir: &Dir, validate: i32) -> OcfSettings {
    let mut settings = OcfSettings::new("flag-1", "test", "Flag");
    settings.ocf_root = dir.0.clone();
    settings.params.insert("state".into(), dir.file("state"));
    settings
        .params
        .insert("validate".into(), validate.to_string());
    settings
}

#[tokio::test]
async fn ocf_passes_the_ocf_environment_and_maps_promoted_to_running() {
    let dir = Dir::new("ocf");
    fake_ocf(&dir.0);
    let agent = Ocf::new(ocf_settings(&dir, 0));
    agent.validate().await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    agent.start().await.unwrap();
    assert_eq!(
        agent.monitor().await.unwrap(),
        Health::Running,
        "8 is running promoted"
    );
    agent.start().await.unwrap();
    agent.stop().await.unwrap();
    agent.stop().await.unwrap();
    assert_eq!(
        dir.read("state.log"),
        "validate-all\nmonitor\nmonitor\nstart\nmonitor\nmonitor\nmonitor\nstop\nmonitor\n"
    );
    let root = dir.0.display();
    let state = dir.file("state");
    assert_eq!(
        dir.read("state.env"),
        format!(
            "OCF_RA_VERSION_MAJOR=1\nOCF_RA_VERSION_MINOR=1\nOCF_RESKEY_state={state}\n\
             OCF_RESKEY_validate=0\nOCF_RESOURCE_INSTANCE=flag-1\n\
             OCF_RESOURCE_PROVIDER=test\nOCF_RESOURCE_TYPE=Flag\nOCF_ROOT={root}\n"
        )
    );
}

#[tokio::test]
async fn ocf_validate_maps_validate_all_and_checks_settings() {
    let dir = Dir::new("ocf-validate");
    fake_ocf(&dir.0);
    let error = Ocf::new(ocf_settings(&dir, 6))
        .validate()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid: ocf resource flag-1 (ocf:test:Flag): `")
            && error.ends_with("validate-all` exited with OCF_ERR_CONFIGURED (6): validate says 6"),
        "{error}"
    );
    Ocf::new(ocf_settings(&dir, 3)).validate().await.unwrap();
    let cases: [(Change<OcfSettings>, &str); 4] = [
        (|s| s.agent = "../x".into(), "must be plain names"),
        (|s| s.agent = "Missing".into(), "Missing"),
        (|s| s.ocf_root = "relative".into(), "not absolute"),
        (
            |s| {
                s.params.insert("bad key".into(), "x".into());
            },
            "parameter name \"bad key\"",
        ),
    ];
    for (change, expected) in cases {
        let mut settings = ocf_settings(&dir, 0);
        change(&mut settings);
        let error = Ocf::new(settings).validate().await.unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
    }
    let error = Ocf::new(ocf_settings(&dir, 0)).start().await;
    assert!(error.is_ok());
    let mut broken = ocf_settings(&dir, 0);
    broken.agent = "Missing".into();
    let error = Ocf::new(broken).monitor().await.unwrap_err().to_string();
    assert!(
        error.starts_with("ocf resource flag-1: monitor: cannot run "),
        "{error}"
    );
}
