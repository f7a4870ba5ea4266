//! The `mount` and `lxc` agents for real: ext4 on a loop device mounted and unmounted by
//! syscall, a busy unmount that names its holders, a refused non-empty mountpoint, fsck,
//! and a busybox container on the mounted filesystem started and stopped through the
//! agent. Run as root, one at a time; every device, mount and container is a Drop guard.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ha_daemon::resource::lxc::{LxcAgent, LxcSettings};
use ha_daemon::resource::mount::holders::Hold;
use ha_daemon::resource::mount::{Cause, MountAgent, MountError, MountSettings};
use ha_daemon::resource::{Agent, AgentError, Health};
use ha_tests::Need;
use ha_tests::loopdev::{LoopDevice, MountGuard};
use ha_tests::lxc::{Container, TestUser};

const IMAGE_MIB: u64 = 64;

fn needs(test: &str, extra: &[Need]) -> bool {
    let mut all = vec![
        Need::Root,
        Need::Program("losetup"),
        Need::Program("mkfs.ext4"),
    ];
    all.extend_from_slice(extra);
    ha_tests::require(test, &all)
}

/// A loop device with ext4, an empty mountpoint next to it, its guard, and settings for
/// the agent. Fields drop in order: mount guard first, then the device.
struct Fixture {
    mount: MountGuard,
    device: LoopDevice,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        let device = LoopDevice::ext4(tag, IMAGE_MIB);
        let mountpoint = device.dir().join("mnt");
        std::fs::create_dir(&mountpoint).expect("create the mountpoint");
        Self {
            mount: MountGuard::new(mountpoint),
            device,
        }
    }

    fn mountpoint(&self) -> &Path {
        self.mount.path()
    }

    fn settings(&self) -> MountSettings {
        MountSettings::new(self.device.device(), self.mountpoint(), "ext4")
    }
}

/// True when mountinfo lists something mounted exactly at `path` (read independently of
/// the agent: field 5 of each line).
fn mounted_at(path: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let path = path.to_str().expect("UTF-8 test path");
    text.lines()
        .any(|line| line.split(' ').nth(4) == Some(path))
}

/// A child process killed (by its pid) and reaped on drop.
struct ChildGuard(Child);

impl ChildGuard {
    fn spawn(program: &str, args: &[&str], cwd: &Path) -> Self {
        let child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        Self(child)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid fits i32")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Awaits `future` and prints how long it took.
async fn timed<F: Future>(what: &str, future: F) -> F::Output {
    let started = Instant::now();
    let output = future.await;
    println!("measured: {what} took {:?}", started.elapsed());
    output
}

/// The cause inside an agent error that must be a [`MountError`].
fn mount_cause(error: &AgentError) -> &Cause {
    match error {
        AgentError::Failed(inner) => inner
            .downcast_ref::<MountError>()
            .map(|mount| &mount.cause)
            .unwrap_or_else(|| panic!("not a MountError: {error}")),
        AgentError::Invalid(_) => panic!("not a failure: {error}"),
    }
}

#[tokio::test]
async fn ext4_on_a_loop_device_mounts_and_unmounts_idempotently() {
    if !needs(
        "ext4_on_a_loop_device_mounts_and_unmounts_idempotently",
        &[],
    ) {
        return;
    }
    let fixture = Fixture::new("mount-basic");
    let mut settings = fixture.settings();
    settings.options = vec!["noatime".into(), "errors=remount-ro".into()];
    let agent = MountAgent::new(settings);
    agent.validate().await.expect("validate");
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);

    timed("mount (start)", agent.start()).await.expect("start");
    assert!(mounted_at(fixture.mountpoint()));
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    std::fs::write(fixture.mountpoint().join("data"), b"kept").expect("write on the mount");
    agent.start().await.expect("start again is a no-op");
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);

    timed("unmount (stop)", agent.stop()).await.expect("stop");
    assert!(!mounted_at(fixture.mountpoint()));
    assert!(
        !fixture.mountpoint().join("data").exists(),
        "the file lives on the device"
    );
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    agent.stop().await.expect("stop again is a no-op");

    agent.start().await.expect("start after stop");
    let kept = std::fs::read(fixture.mountpoint().join("data")).expect("read back");
    assert_eq!(kept, b"kept");
    agent.stop().await.expect("stop");
}

#[tokio::test]
async fn a_busy_mount_fails_to_stop_naming_its_holders() {
    if !needs(
        "a_busy_mount_fails_to_stop_naming_its_holders",
        &[Need::Program("sleep")],
    ) {
        return;
    }
    let fixture = Fixture::new("mount-busy");
    let agent = MountAgent::new(fixture.settings());
    agent.start().await.expect("start");
    let log = fixture.mountpoint().join("log");
    std::fs::write(&log, b"").expect("create a file on the mount");

    let in_cwd = ChildGuard::spawn("sleep", &["30"], fixture.mountpoint());
    let script = format!("exec 3<'{}'; exec sleep 30", log.display());
    let with_file = ChildGuard::spawn("sh", &["-c", &script], fixture.device.dir());
    // Bounded wait until the second child has exec'd sleep with the file open.
    for _ in 0..100 {
        let fd3 = std::fs::read_link(format!("/proc/{}/fd/3", with_file.pid()));
        if fd3.is_ok_and(|target| target == log) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let error = agent
        .stop()
        .await
        .expect_err("a busy mount must not unmount");
    let text = error.to_string();
    println!("busy stop error: {text}");
    assert!(
        text.contains(&format!("pid {} (sleep): cwd", in_cwd.pid())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "pid {} (sleep): open file {}",
            with_file.pid(),
            log.display()
        )),
        "{text}"
    );
    let Cause::Busy { holders, .. } = mount_cause(&error) else {
        panic!("not a Busy error: {text}");
    };
    let cwd_holder = holders
        .iter()
        .find(|h| h.pid == in_cwd.pid())
        .expect("cwd holder");
    assert_eq!(cwd_holder.holds, [Hold::Cwd]);
    assert!(mounted_at(fixture.mountpoint()), "no lazy unmount happened");
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);

    drop(in_cwd);
    drop(with_file);
    agent.stop().await.expect("stop once the holders are gone");
    assert!(!mounted_at(fixture.mountpoint()));
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
}

#[tokio::test]
async fn a_non_empty_mountpoint_is_refused_unless_allowed() {
    if !needs("a_non_empty_mountpoint_is_refused_unless_allowed", &[]) {
        return;
    }
    let fixture = Fixture::new("mount-nonempty");
    std::fs::write(fixture.mountpoint().join("stray"), b"x").expect("a stray file");

    let error = MountAgent::new(fixture.settings())
        .start()
        .await
        .expect_err("a non-empty mountpoint must be refused");
    let text = error.to_string();
    assert!(
        matches!(mount_cause(&error), Cause::NotEmpty { .. }),
        "{text}"
    );
    assert!(
        text.contains("not empty") && text.contains("\"stray\""),
        "{text}"
    );
    assert!(!mounted_at(fixture.mountpoint()));

    let mut settings = fixture.settings();
    settings.allow_non_empty = true;
    let agent = MountAgent::new(settings);
    agent
        .start()
        .await
        .expect("allowed over a non-empty mountpoint");
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    agent.stop().await.expect("stop");
    assert!(
        fixture.mountpoint().join("stray").exists(),
        "the hidden file is back"
    );
}

/// Writes an executable shell script.
fn script(path: &Path, body: &str) -> PathBuf {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_owned()
}

#[tokio::test]
async fn fsck_runs_before_mounting_and_a_failing_fsck_prevents_the_mount() {
    if !needs(
        "fsck_runs_before_mounting_and_a_failing_fsck_prevents_the_mount",
        &[Need::Program("fsck"), Need::Program("e2fsck")],
    ) {
        return;
    }
    let fixture = Fixture::new("mount-fsck");
    let calls = fixture.device.dir().join("fsck-calls");
    let mut settings = fixture.settings();
    settings.fsck = true;
    settings.fsck_command = script(
        &fixture.device.dir().join("fsck-wrapper"),
        &format!("echo \"$@\" >> '{}'\nexec fsck \"$@\"", calls.display()),
    );
    let agent = MountAgent::new(settings.clone());
    agent.validate().await.expect("validate");
    timed("fsck + mount (start)", agent.start())
        .await
        .expect("start with fsck");
    let logged = std::fs::read_to_string(&calls).expect("fsck was called");
    assert_eq!(logged, format!("-p -T {}\n", fixture.device.device_str()));
    agent.start().await.expect("start again");
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap().lines().count(),
        1,
        "no fsck while mounted"
    );
    agent.stop().await.expect("stop");

    settings.fsck_command = script(
        &fixture.device.dir().join("fsck-failing"),
        "echo 'UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.'; exit 4",
    );
    let error = MountAgent::new(settings)
        .start()
        .await
        .expect_err("fsck 4 must stop the mount");
    let text = error.to_string();
    assert!(
        text.contains("exited with 4") && text.contains("RUN fsck MANUALLY"),
        "{text}"
    );
    assert!(!mounted_at(fixture.mountpoint()));
}

#[tokio::test]
async fn read_only_and_foreign_mounts_are_failures_not_ours() {
    if !needs(
        "read_only_and_foreign_mounts_are_failures_not_ours",
        &[Need::Program("mount")],
    ) {
        return;
    }
    let fixture = Fixture::new("mount-foreign");
    let mountpoint = fixture.mountpoint().to_str().expect("UTF-8").to_owned();
    let agent = MountAgent::new(fixture.settings());
    agent.start().await.expect("start");
    // The test (not the agent) remounts read-only, as ext4 does after errors=remount-ro.
    ha_tests::run("mount", &["-o", "remount,ro", &mountpoint]);
    let health = agent.monitor().await.unwrap();
    assert!(
        matches!(&health, Health::Failed(why) if why.contains("read-only")),
        "{health}"
    );
    let error = agent
        .start()
        .await
        .expect_err("read-only when rw was asked");
    assert!(matches!(mount_cause(&error), Cause::ReadOnly), "{error}");
    agent
        .stop()
        .await
        .expect("a read-only mount still unmounts");
    assert!(!mounted_at(fixture.mountpoint()));

    ha_tests::run(
        "mount",
        &["-t", "tmpfs", "-o", "size=1m", "hat-foreign", &mountpoint],
    );
    let health = agent.monitor().await.unwrap();
    assert!(
        matches!(&health, Health::Failed(why) if why.contains("hat-foreign (tmpfs)")),
        "{health}"
    );
    let error = agent
        .start()
        .await
        .expect_err("something else is mounted there");
    assert!(
        error
            .to_string()
            .contains("hat-foreign (tmpfs) is mounted there"),
        "{error}"
    );
    agent
        .stop()
        .await
        .expect("stop leaves a foreign mount alone");
    assert!(
        mounted_at(fixture.mountpoint()),
        "the foreign tmpfs is still there"
    );
}

#[tokio::test]
async fn a_busybox_container_on_the_mounted_filesystem_starts_and_stops() {
    if !needs(
        "a_busybox_container_on_the_mounted_filesystem_starts_and_stops",
        &[
            Need::Program("lxc-create"),
            Need::Program("lxc-start"),
            Need::Program("lxc-stop"),
            Need::Program("lxc-info"),
            Need::Program("lxc-destroy"),
            Need::Program("busybox"),
        ],
    ) {
        return;
    }
    let fixture = Fixture::new("lxc");
    let mount = MountAgent::new(fixture.settings());
    mount.start().await.expect("mount the filesystem");
    let lxcpath = fixture.mountpoint().join("lxc");
    let name = format!("hat{}", std::process::id());
    let container = timed("lxc-create", async {
        Container::busybox(&name, &lxcpath, None)
    })
    .await;

    let mut settings = LxcSettings::new(&name, &lxcpath);
    settings.start_timeout = Duration::from_secs(20);
    settings.stop_timeout = Duration::from_secs(10);
    let agent = LxcAgent::new(settings);
    agent.validate().await.expect("validate");
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    assert_eq!(agent.addresses().await.expect("read its config"), []);

    timed("lxc start (until RUNNING)", agent.start())
        .await
        .expect("start");
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    let init = container.init_pid().expect("running container has an init");
    agent.start().await.expect("start again is a no-op");
    assert_eq!(
        container.init_pid(),
        Some(init),
        "the running container was left alone"
    );

    let error = mount
        .stop()
        .await
        .expect_err("the running container holds the filesystem");
    let text = error.to_string();
    println!("busy stop error: {text}");
    assert!(
        text.contains(&format!("pid {init} (init): cwd, root, exe")),
        "{text}"
    );
    let Cause::Busy { holders, .. } = mount_cause(&error) else {
        panic!("not a Busy error: {text}");
    };
    let init_holds = &holders
        .iter()
        .find(|h| h.pid == init)
        .expect("init holds it")
        .holds;
    assert!(init_holds.contains(&Hold::Root), "{init_holds:?}");

    timed("lxc stop", agent.stop()).await.expect("stop");
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    agent.stop().await.expect("stop again is a no-op");

    drop(container);
    timed("unmount after the container", mount.stop())
        .await
        .expect("unmount");
    assert!(!mounted_at(fixture.mountpoint()));
}

#[tokio::test]
async fn an_unprivileged_container_runs_as_its_user_from_the_users_home() {
    if !needs(
        "an_unprivileged_container_runs_as_its_user_from_the_users_home",
        &[
            Need::Program("lxc-create"),
            Need::Program("lxc-start"),
            Need::Program("lxc-stop"),
            Need::Program("lxc-info"),
            Need::Program("lxc-destroy"),
            Need::Program("busybox"),
            Need::Program("useradd"),
            Need::Program("userdel"),
            Need::Program("runuser"),
            Need::Program("newuidmap"),
        ],
    ) {
        return;
    }
    let fixture = Fixture::new("lxc-unpriv");
    let mount = MountAgent::new(fixture.settings());
    mount.start().await.expect("mount the filesystem");
    let user = TestUser::new(&fixture.mountpoint().join("home"));
    let lxcpath = user.home().join("lxc");
    let name = format!("hatu{}", std::process::id());
    let container = timed("lxc-create (unprivileged)", async {
        Container::busybox(&name, &lxcpath, Some(&user))
    })
    .await;

    let mut settings = LxcSettings::new(&name, &lxcpath);
    settings.user = Some(user.name().to_owned());
    settings.start_timeout = Duration::from_secs(20);
    settings.stop_timeout = Duration::from_secs(10);
    let agent = LxcAgent::new(settings);
    agent.validate().await.expect("validate");
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);

    timed("unprivileged lxc start (until RUNNING)", agent.start())
        .await
        .expect("start");
    assert_eq!(agent.monitor().await.unwrap(), Health::Running);
    let init = container.init_pid().expect("running container has an init");
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).expect("init status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        !uid_line.split_whitespace().skip(1).any(|uid| uid == "0"),
        "the container's root is not the host's root: {uid_line}"
    );
    agent.start().await.expect("start again is a no-op");
    assert_eq!(container.init_pid(), Some(init));

    timed("unprivileged lxc stop", agent.stop())
        .await
        .expect("stop");
    assert_eq!(agent.monitor().await.unwrap(), Health::Stopped);
    agent.stop().await.expect("stop again is a no-op");

    drop(container);
    drop(user);
    mount.stop().await.expect("unmount");
}
