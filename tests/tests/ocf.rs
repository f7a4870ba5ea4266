//! The `ocf` agent with a real OCF resource agent (`ocf:heartbeat:Dummy` from Debian's
//! resource-agents) and the `exec` agent with a pidfile-based `sleep` service: start,
//! monitor, idempotent start and stop, a stop that times out and is killed, run-as.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ha_daemon::resource::exec::ocf::{Ocf, OcfSettings};
use ha_daemon::resource::exec::{Exec, ExecSettings};
use ha_daemon::resource::{Agent, Health};
use ha_tests::{Need, daemon::TempDir};

const DUMMY: &str = "/usr/lib/ocf/resource.d/heartbeat/Dummy";

fn sh(script: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script]
}

/// Runs one agent call, prints how long it took, and returns its result.
async fn timed<T>(what: &str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = call.await;
    eprintln!("{what}: {:?}", started.elapsed());
    result
}

/// The pid in `file`.
fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// True when `pid` is gone or a zombie; polls for up to 2 s.
async fn gone(pid: i32) -> bool {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.contains(") Z ") => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Kills a test process by pid when the test ends, even on panic.
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.filter(|pid| alive(*pid)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[tokio::test]
async fn ocf_dummy_starts_monitors_and_stops_idempotently() {
    if !ha_tests::require("ocf_dummy", &[Need::Root, Need::Program(DUMMY)]) {
        return;
    }
    let dir = TempDir::new("ocf-dummy");
    let state = dir.path().join("dummy.state");
    let mut settings = OcfSettings::new("ha-test-dummy", "heartbeat", "Dummy");
    settings
        .params
        .insert("state".into(), state.display().to_string());
    let agent = Ocf::new(settings);

    timed("ocf validate", agent.validate()).await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    timed("ocf start", agent.start()).await.unwrap();
    assert!(
        state.exists(),
        "Dummy keeps its state in the file we gave it"
    );
    assert_eq!(
        timed("ocf monitor", agent.monitor()).await.unwrap(),
        Health::Running
    );
    timed("ocf start again", agent.start()).await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    timed("ocf stop", agent.stop()).await.unwrap();
    assert!(!state.exists());
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    timed("ocf stop again", agent.stop()).await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
}

#[tokio::test]
async fn exec_runs_a_pidfile_service_idempotently() {
    if !ha_tests::require("exec_pidfile_service", &[Need::Root]) {
        return;
    }
    let dir = TempDir::new("exec-service");
    let pidfile = dir.path().join("svc.pid");
    let pidfile_text = pidfile.display();
    let agent = Exec::new(ExecSettings {
        name: "sleeper".into(),
        start: sh(format!(
            "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {pidfile_text}"
        )),
        stop: sh(format!(
            "test -f {pidfile_text} || exit 0; kill $(cat {pidfile_text}) && rm {pidfile_text}"
        )),
        monitor: sh(format!(
            "test -f {pidfile_text} && kill -0 $(cat {pidfile_text}) 2>/dev/null && exit 0; exit 7"
        )),
        user: None,
        env: BTreeMap::new(),
    });
    let mut guard = KillOnDrop(None);

    agent.validate().await.unwrap();
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    timed("exec start", agent.start()).await.unwrap();
    let pid = pid_in(&pidfile);
    guard.0 = Some(pid);
    assert!(alive(pid));
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    timed("exec start again", agent.start()).await.unwrap();
    assert_eq!(pid_in(&pidfile), pid, "a second start starts nothing");
    timed("exec stop", agent.stop()).await.unwrap();
    assert!(gone(pid).await, "stop ended the service");
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    timed("exec stop again", agent.stop()).await.unwrap();
    assert!(!pidfile.exists());
}

#[tokio::test]
async fn exec_stop_that_times_out_is_killed() {
    if !ha_tests::require("exec_stop_timeout", &[Need::Root]) {
        return;
    }
    let dir = TempDir::new("exec-timeout");
    let pidfile = dir.path().join("stop.pid");
    let agent = Exec::new(ExecSettings {
        name: "stuck".into(),
        start: sh("exit 0".into()),
        stop: sh(format!("echo $$ > {}; exec sleep 30", pidfile.display())),
        monitor: sh("exit 0".into()),
        user: None,
        env: BTreeMap::new(),
    });
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_millis(500), agent.stop()).await;
    assert!(
        result.is_err(),
        "the stop command sleeps 30 s: the timeout fires"
    );
    let pid = pid_in(&pidfile);
    let _guard = KillOnDrop(Some(pid));
    assert!(
        gone(pid).await,
        "the timed-out stop command (pid {pid}) was killed"
    );
    eprintln!(
        "stop timeout 500 ms -> command gone after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn exec_runs_commands_as_the_configured_user() {
    if !ha_tests::require("exec_run_as", &[Need::Root]) {
        return;
    }
    let user = nix::unistd::User::from_name("daemon")
        .unwrap()
        .expect("Debian has the daemon user");
    let agent = Exec::new(ExecSettings {
        name: "as-daemon".into(),
        start: sh("exit 0".into()),
        stop: sh("exit 0".into()),
        monitor: sh("echo uid=$(id -u) user=$USER >&2; exit 3".into()),
        user: Some("daemon".into()),
        env: BTreeMap::new(),
    });
    agent.validate().await.unwrap();
    let health = agent.monitor().await.unwrap();
    let expected = format!("exited with code 3: uid={} user=daemon", user.uid);
    assert!(
        matches!(&health, Health::Failed(reason) if reason.ends_with(&expected)),
        "{health}"
    );
    // A failed monitor is not "stopped": stop runs the stop command (exit 0 here).
    agent.stop().await.unwrap();
}
