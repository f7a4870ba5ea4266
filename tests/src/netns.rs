//! A network namespace owned by a test: created on [`NetNs::new`], deleted on drop with
//! everything inside it.
//!
//! Names are `hat-<pid>-<n>`, so namespaces left behind by a test process that was killed
//! (no Drop ran) can be recognised and are removed by the next [`NetNs::new`].

use std::{
    fs::File,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::run;

const PREFIX: &str = "hat-";
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a new namespace with its loopback up.
    pub fn new() -> Self {
        sweep_stale();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `PROGRAM ARGS...` inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command that runs `program` in this network namespace only (`nsenter --net`).
    /// Unlike `ip netns exec`, which also gives the program a private mount namespace,
    /// the program's mounts are the host's, as a daemon's are in production.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        command
    }

    /// Moves the calling thread into the namespace until the returned guard drops.
    /// Sockets created meanwhile stay in the namespace for their whole life.
    pub fn enter(&self) -> Entered {
        let original = File::open("/proc/thread-self/ns/net").expect("open own netns");
        let target = File::open(format!("/run/netns/{}", self.name)).expect("open netns");
        setns(&target, CloneFlags::CLONE_NEWNET).expect("setns into test namespace");
        Entered {
            original,
            original_mounts: None,
        }
    }

    /// Like [`NetNs::enter`], and the calling thread also gets a mount namespace of its
    /// own whose `/sys` shows this namespace's interfaces, as under `ip netns exec`:
    /// programs the thread starts that look interfaces up in `/sys/class/net` (LXC checks
    /// a bridge there before attaching a veth) see a host of their own. Both are undone
    /// when the guard drops.
    pub fn enter_as_host(&self) -> Entered {
        let original_mounts = File::open("/proc/thread-self/ns/mnt").expect("open own mntns");
        let mut entered = self.enter();
        // CLONE_NEWNS implies CLONE_FS: only this thread's root, cwd and mounts change.
        unshare(CloneFlags::CLONE_NEWNS).expect("unshare the mount namespace");
        entered.original_mounts = Some(original_mounts);
        let none = None::<&str>;
        mount(none, "/", none, MsFlags::MS_SLAVE | MsFlags::MS_REC, none)
            .expect("make the thread's mounts slaves (nothing propagates back)");
        umount2("/sys", MntFlags::MNT_DETACH).expect("detach the host's /sys");
        mount(
            Some(self.name.as_str()),
            "/sys",
            Some("sysfs"),
            MsFlags::empty(),
            none,
        )
        .expect("mount the namespace's sysfs");
        entered
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Not `run`: a panic while unwinding would abort and hide the test's own failure.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The calling thread is inside a [`NetNs`] until this drops.
#[derive(Debug)]
pub struct Entered {
    original: File,
    /// The thread's mount namespace before [`NetNs::enter_as_host`], if it changed.
    original_mounts: Option<File>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(mounts) = &self.original_mounts {
            setns(mounts, CloneFlags::CLONE_NEWNS).expect("setns back to original mntns");
        }
        setns(&self.original, CloneFlags::CLONE_NEWNET).expect("setns back to original netns");
    }
}

/// Deletes `hat-<pid>-*` namespaces whose process no longer exists.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}
