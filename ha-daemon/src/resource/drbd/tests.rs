//! The agent and the follower against a fake `drbdadm`/`drbdsetup` pair (shell scripts
//! that replay the real captures and log every call).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::watch::DrbdWatch;
use super::*;
use crate::core::drbd_events::captures::{Capture, capture};
use crate::core::drbd_events::line::parse_line;
use crate::core::drbd_events::refusal::RefusalReason;
use crate::core::drbd_events::state::{ConnectionState, DiskState};

/// A directory with fake `drbdadm` and `drbdsetup`, removed on drop.
///
/// Files the scripts read: `state` (stdout of `events2 --now`), `now.code`, `now.stderr`,
/// `stream` (lines that `events2` without `--now` prints 10 ms apart before sleeping),
/// `version` (stdout of `drbdadm --version`), `adm.code` and `adm.stderr` (result of
/// any other drbdadm call). Every call is appended to `calls`.
struct Fake {
    dir: PathBuf,
}

const DRBDSETUP: &str = r#"#!/bin/sh
D="$(dirname "$0")"
echo "drbdsetup $*" >> "$D/calls"
if [ "$1 $2" = "events2 --now" ]; then
    cat "$D/state"; cat "$D/now.stderr" >&2; exit "$(cat "$D/now.code")"
fi
if [ "$1" = events2 ] && [ "$#" = 2 ]; then
    while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.01; done < "$D/stream"
    exec sleep 60
fi
exit 20
"#;

const DRBDADM: &str = r#"#!/bin/sh
D="$(dirname "$0")"
echo "drbdadm $*" >> "$D/calls"
if [ "$1" = --version ]; then cat "$D/version"; exit 0; fi
cat "$D/adm.stderr" >&2; exit "$(cat "$D/adm.code")"
"#;

const VERSION_84: &str = "DRBDADM_API_VERSION=1\nDRBD_KERNEL_VERSION_CODE=0x08040b\n\
                          DRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n";

impl Fake {
    fn new(tag: &str) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("ha-drbd-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, script) in [("drbdsetup", DRBDSETUP), ("drbdadm", DRBDADM)] {
            let path = dir.join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let fake = Fake { dir };
        fake.write("version", VERSION_84);
        fake.now("exists -\n", 0, "");
        fake.adm(0, "");
        fake.write("stream", "");
        fake.write("calls", "");
        fake
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    fn now(&self, stdout: &str, code: i32, stderr: &str) {
        self.write("state", stdout);
        self.write("now.code", &code.to_string());
        self.write("now.stderr", stderr);
    }

    fn adm(&self, code: i32, stderr: &str) {
        self.write("adm.code", &code.to_string());
        self.write("adm.stderr", stderr);
    }

    fn adm_from(&self, capture: &Capture) {
        self.adm(capture.exit_code.unwrap(), &capture.stderr);
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn settings(&self) -> DrbdSettings {
        DrbdSettings {
            resource: "r0".into(),
            drbdadm: self.dir.join("drbdadm"),
            drbdsetup: self.dir.join("drbdsetup"),
        }
    }

    fn agent(&self) -> Drbd {
        Drbd::new(self.settings())
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn refusal(error: AgentError) -> RefusalReason {
    let AgentError::Failed(inner) = error else {
        panic!("expected a failure, got {error}");
    };
    match inner.downcast_ref::<DrbdError>() {
        Some(DrbdError::Refused { refusal, .. }) => refusal.reason.clone(),
        _ => panic!("expected DrbdError::Refused, got {inner}"),
    }
}

fn adm_calls(fake: &Fake) -> Vec<String> {
    let calls: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|call| call.starts_with("drbdadm"))
        .collect();
    assert!(
        !calls.iter().any(|call| call.contains("force")),
        "{calls:?}"
    );
    calls
}

#[tokio::test]
async fn monitor_maps_each_situation() {
    let fake = Fake::new("monitor");
    let agent = fake.agent();
    let cases = [
        (capture!("16-vmda-events2-now.txt").stdout, Health::Running),
        (
            capture!("30-vmdb-events2-now-after-failover.txt").stdout,
            Health::Running,
        ),
        (
            capture!("46-vmda-events2-now-link-cut.txt").stdout,
            Health::Stopped,
        ),
        (
            capture!("18-vmdb-events2-now-stats.txt").stdout,
            Health::Stopped,
        ),
        (
            capture!("34-vmda-events2-now-unconfigured.txt").stdout,
            Health::Failed("resource r0 not up".into()),
        ),
        (
            "exists resource name:r0 role:Primary\n\
             exists device name:r0 volume:0 minor:0 disk:Diskless\nexists -\n"
                .to_owned(),
            Health::Failed("resource r0 is Primary but volume 0 has disk Diskless".into()),
        ),
    ];
    for (stdout, health) in cases {
        fake.now(&stdout, 0, "");
        assert_eq!(agent.monitor().await.unwrap(), health, "{stdout}");
    }
    assert!(adm_calls(&fake).is_empty(), "monitor changes nothing");
    assert!(
        fake.calls()
            .iter()
            .all(|call| call == "drbdsetup events2 --now r0")
    );
}

#[tokio::test]
async fn a_resource_drbdsetup_does_not_know_is_not_up() {
    let fake = Fake::new("unknown");
    fake.now("", 10, "r0: No such resource\n");
    let state = fake.agent().state().await.unwrap();
    assert!(!state.exists());
    assert_eq!(
        fake.agent().monitor().await.unwrap(),
        Health::Failed("resource r0 not up".into())
    );
}

#[tokio::test]
async fn bad_or_truncated_events2_output_is_an_error_naming_it() {
    let fake = Fake::new("bad");
    fake.now(
        "exists resource name:r0 role:Primary\nnonsense here\nexists -\n",
        0,
        "",
    );
    let error = fake.agent().monitor().await.unwrap_err().to_string();
    assert!(
        error.contains("r0") && error.contains("\"nonsense here\""),
        "{error}"
    );
    fake.now("exists resource name:r0 role:Primary\n", 0, "");
    let error = fake.agent().monitor().await.unwrap_err().to_string();
    assert!(error.contains("ended before `exists -`"), "{error}");
    fake.now("", 20, "drbdsetup exploded\n");
    let error = fake.agent().monitor().await.unwrap_err().to_string();
    assert!(
        error.contains("exit code Some(20)") && error.contains("exploded"),
        "{error}"
    );
}

#[tokio::test]
async fn start_promotes_once_and_is_idempotent() {
    let fake = Fake::new("start");
    let agent = fake.agent();
    fake.now(&capture!("46-vmda-events2-now-link-cut.txt").stdout, 0, "");
    agent.start().await.unwrap();
    assert_eq!(adm_calls(&fake), ["drbdadm primary r0"]);
    fake.now(&capture!("16-vmda-events2-now.txt").stdout, 0, "");
    fake.adm(99, "must not be called");
    agent.start().await.unwrap();
    assert_eq!(
        adm_calls(&fake),
        ["drbdadm primary r0"],
        "already Primary: nothing"
    );
}

#[tokio::test]
async fn stop_demotes_once_and_does_nothing_when_secondary_or_not_up() {
    let fake = Fake::new("stop");
    let agent = fake.agent();
    fake.now(
        &capture!("30-vmdb-events2-now-after-failover.txt").stdout,
        0,
        "",
    );
    agent.stop().await.unwrap();
    assert_eq!(adm_calls(&fake), ["drbdadm secondary r0"]);
    fake.adm(99, "must not be called");
    for stdout in [
        capture!("46-vmda-events2-now-link-cut.txt").stdout,
        capture!("34-vmda-events2-now-unconfigured.txt").stdout,
    ] {
        fake.now(&stdout, 0, "");
        agent.stop().await.unwrap();
    }
    assert_eq!(adm_calls(&fake), ["drbdadm secondary r0"]);
}

#[tokio::test]
async fn refusals_come_back_typed() {
    let fake = Fake::new("refusals");
    let agent = fake.agent();
    // Promote while the connected peer is Primary (captures 18 and 22).
    fake.now(&capture!("18-vmdb-events2-now-stats.txt").stdout, 0, "");
    fake.adm_from(&capture!("22-vmdb-primary-refused-peer-primary.txt"));
    assert_eq!(
        refusal(agent.start().await.unwrap_err()),
        RefusalReason::PeerPrimary
    );
    // Promote with an Outdated disk (captures 60/61): the state read before names it.
    let outdated = capture!("46-vmda-events2-now-link-cut.txt")
        .stdout
        .replace("disk:UpToDate", "disk:Outdated");
    fake.now(&outdated, 0, "");
    fake.adm_from(&capture!("61-vmda-primary-refused-outdated.txt"));
    let error = agent.start().await.unwrap_err();
    let text = error.to_string();
    assert_eq!(
        refusal(error),
        RefusalReason::DiskNotUpToDate {
            disk: Some(DiskState::Outdated)
        }
    );
    assert!(
        text.starts_with("drbd resource r0: `")
            && text.contains("primary r0` refused: the local disk is Outdated, not UpToDate"),
        "{text}"
    );
    // Demote while mounted (capture 63).
    fake.now(&capture!("16-vmda-events2-now.txt").stdout, 0, "");
    fake.adm_from(&capture!("63-vmdb-secondary-refused-mounted.txt"));
    assert_eq!(
        refusal(agent.stop().await.unwrap_err()),
        RefusalReason::HeldOpen { openers: vec![] }
    );
    // Promote a resource that is not up (capture 35), seen as Secondary by a stale dump.
    fake.now(&capture!("46-vmda-events2-now-link-cut.txt").stdout, 0, "");
    fake.adm_from(&capture!("35-vmda-primary-unconfigured.txt"));
    assert_eq!(
        refusal(agent.start().await.unwrap_err()),
        RefusalReason::NotUp
    );
    assert_eq!(
        adm_calls(&fake),
        [
            "drbdadm primary r0",
            "drbdadm primary r0",
            "drbdadm secondary r0",
            "drbdadm primary r0"
        ]
    );
}

#[tokio::test]
async fn validate_checks_name_programs_and_version() {
    let fake = Fake::new("validate");
    fake.agent().validate().await.unwrap();
    assert_eq!(fake.agent().version().await.unwrap().to_string(), "8.4.11");
    fake.write(
        "version",
        "DRBD_KERNEL_VERSION_CODE=0x090200\nDRBDADM_VERSION_CODE=0x091600\n",
    );
    fake.agent().validate().await.unwrap();
    fake.write("version", "DRBD_KERNEL_VERSION_CODE=0x080310\n");
    let error = fake.agent().validate().await.unwrap_err().to_string();
    assert!(error.contains("DRBD 8.3.16 is not supported"), "{error}");
    if !Path::new(PROC_DRBD).exists() {
        fake.write("version", "DRBD_KERNEL_VERSION_CODE=0x000000\n");
        let error = fake.agent().validate().await.unwrap_err().to_string();
        assert!(error.contains("kernel module is not loaded"), "{error}");
    }
    fake.write("version", VERSION_84);
    let mut settings = fake.settings();
    settings.resource = "r 0".into();
    let error = Drbd::new(settings)
        .validate()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid: drbd resource name \"r 0\""),
        "{error}"
    );
    let mut settings = fake.settings();
    settings.drbdsetup = fake.dir.join("no-drbdsetup");
    let error = Drbd::new(settings)
        .validate()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no-drbdsetup"), "{error}");
    assert!(
        adm_calls(&fake)
            .iter()
            .all(|call| call == "drbdadm --version")
    );
    assert_eq!(
        DrbdSettings::new("r0"),
        DrbdSettings {
            resource: "r0".into(),
            drbdadm: "drbdadm".into(),
            drbdsetup: "drbdsetup".into()
        }
    );
}

/// Waits (bounded) until `pid` is gone or a zombie.
async fn gone(pid: u32) -> bool {
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    for _ in 0..200 {
        match std::fs::read_to_string(&stat) {
            Err(_) => return true,
            Ok(text) if text.contains(") Z ") => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

#[tokio::test]
async fn the_follower_tracks_a_live_stream_and_dies_with_its_handle() {
    let fake = Fake::new("watch");
    let stream = capture!("65-vmda-events2-stream.txt");
    fake.write("stream", &stream.stdout);
    let watch = DrbdWatch::start(&fake.settings()).unwrap();
    let mut changes = watch.subscribe();
    let pid = watch.pid().unwrap();
    let expected = {
        let lines: Vec<_> = stream
            .stdout
            .lines()
            .map(|line| parse_line(line).unwrap())
            .collect();
        ResourceState::fold("r0", &lines)
    };
    let mut seen_primary_while_disconnected = false;
    let reached = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let followed = changes.borrow_and_update().clone();
            let state = &followed.state;
            if *state.role() == Role::Primary && state.connection() == ConnectionState::Connecting {
                seen_primary_while_disconnected = true;
            }
            // The final state also held before the split brain: wait for both.
            if seen_primary_while_disconnected && *state == expected {
                return;
            }
            changes.changed().await.unwrap();
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "the follower never went through the split brain to the final state \
         (Primary while disconnected seen: {seen_primary_while_disconnected})"
    );
    assert_eq!(watch.current().ended, None, "drbdsetup is still running");
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| *c == "drbdsetup events2 r0")
            .count(),
        1
    );
    drop(watch);
    assert!(
        gone(pid).await,
        "drbdsetup (pid {pid}) outlived its DrbdWatch"
    );
}

#[tokio::test]
async fn the_follower_reports_the_end_of_its_stream() {
    let fake = Fake::new("watch-end");
    let mut settings = fake.settings();
    settings.drbdsetup = "false".into();
    let watch = DrbdWatch::start(&settings).unwrap();
    let mut changes = watch.subscribe();
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        changes.wait_for(|followed| followed.ended.is_some()),
    )
    .await
    .expect("the end is published")
    .unwrap()
    .ended
    .clone()
    .unwrap();
    assert!(
        ended.contains("false events2 r0` exited (exit status: 1)"),
        "{ended}"
    );
}
