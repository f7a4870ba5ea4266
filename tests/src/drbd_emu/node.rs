//! [`EmuNode`]: a node directory with a running `drbd-emu serve`, for tests and the lab.
//! Dropping it stops serve (SIGTERM, then SIGKILL) and removes whatever a crashed serve
//! left: the loop device, the FUSE mount, the directory. [`Mounted`] unmounts a
//! filesystem on drop.
//!
//! Setting up a pair for another test:
//! ```ignore
//! let nodes = TwoNodes::new();
//! let mut ca = EmuConfig::new((TwoNodes::A_V4, 7789).into(), (TwoNodes::B_V4, 7789).into());
//! ca.netns = Some(nodes.a.name().to_owned());
//! let mut cb = EmuConfig::new((TwoNodes::B_V4, 7789).into(), (TwoNodes::A_V4, 7789).into());
//! cb.netns = Some(nodes.b.name().to_owned());
//! let (a, b) = (EmuNode::start("a", ca), EmuNode::start("b", cb));
//! for n in [&a, &b] {
//!     n.adm_ok(&["create-md", "--force", "r0"]);
//!     n.adm_ok(&["up", "r0"]);
//! }
//! a.wait_for("cstate", "Connected", Duration::from_secs(5));
//! a.adm_ok(&["--", "--clear-bitmap", "new-current-uuid", "r0"]);
//! b.wait_for("dstate", "UpToDate/UpToDate", Duration::from_secs(5));
//! // the drbd agent: drbdadm = a.drbdadm_path(), drbdsetup = a.drbdsetup_path(),
//! // resource "r0"; the mount agent: device = a.device().
//! ```

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use super::{config::EmuConfig, config::NodeDir, serve::attached_loop};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The `drbd-emu` binary of the same build as the running test or tool.
pub fn binary() -> PathBuf {
    crate::sibling_binary("drbd-emu")
}

/// A node: its directory, settings and serve process.
#[derive(Debug)]
pub struct EmuNode {
    dir: NodeDir,
    config: EmuConfig,
    serve: Option<Child>,
}

impl EmuNode {
    /// Creates `/tmp/drbd-emu-<pid>-<n>-<label>/` with `emu.toml` and the command
    /// symlinks, and starts serve (it joins `config.netns` itself). Panics on failure.
    pub fn start(label: &str, config: EmuConfig) -> Self {
        let root = std::env::temp_dir().join(format!(
            "drbd-emu-{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let dir = NodeDir::new(root);
        std::fs::create_dir_all(dir.bin()).expect("create node directory");
        for name in ["drbdadm", "drbdsetup", "drbd-emu"] {
            std::os::unix::fs::symlink(binary(), dir.bin().join(name)).expect("link command");
        }
        std::fs::write(dir.config(), config.to_toml()).expect("write emu.toml");
        let mut node = Self {
            dir,
            config,
            serve: None,
        };
        node.spawn_serve();
        node
    }

    fn spawn_serve(&mut self) {
        let log =
            std::fs::File::create(self.dir.root().join("serve.log")).expect("create serve.log");
        let child = Command::new(self.dir.bin().join("drbd-emu"))
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start drbd-emu serve");
        self.serve = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.dir.socket().exists() {
            assert!(
                Instant::now() < deadline,
                "drbd-emu serve did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The node directory.
    pub fn dir(&self) -> &NodeDir {
        &self.dir
    }

    /// The settings.
    pub fn config(&self) -> &EmuConfig {
        &self.config
    }

    /// `<node>/bin/drbdadm` (configure the drbd agent with this).
    pub fn drbdadm_path(&self) -> PathBuf {
        self.dir.bin().join("drbdadm")
    }

    /// `<node>/bin/drbdsetup`.
    pub fn drbdsetup_path(&self) -> PathBuf {
        self.dir.bin().join("drbdsetup")
    }

    /// The stable device path (`<node>/device`, a symlink to the loop device while up).
    pub fn device(&self) -> PathBuf {
        self.dir.device()
    }

    /// The loop device behind [`EmuNode::device`].
    pub fn loop_device(&self) -> PathBuf {
        std::fs::read_link(self.dir.device()).expect("device link (is the resource up?)")
    }

    /// Runs `drbdadm ARGS`.
    pub fn drbdadm(&self, args: &[&str]) -> Output {
        run_tool(&self.drbdadm_path(), args)
    }

    /// Runs `drbdsetup ARGS`.
    pub fn drbdsetup(&self, args: &[&str]) -> Output {
        run_tool(&self.drbdsetup_path(), args)
    }

    /// Runs `drbdadm ARGS`, panics unless it succeeds; returns stdout.
    pub fn adm_ok(&self, args: &[&str]) -> String {
        let out = self.drbdadm(args);
        assert!(
            out.status.success(),
            "drbdadm {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The serve process's pid.
    pub fn serve_pid(&self) -> Option<Pid> {
        self.serve
            .as_ref()
            .map(|c| Pid::from_raw(i32::try_from(c.id()).expect("pid fits")))
    }

    /// SIGKILLs serve (a crash: nothing is cleaned up until drop).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.serve.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// serve's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.root().join("serve.log")).unwrap_or_default()
    }

    /// Polls `drbdadm ARG` (e.g. `cstate`) until its output is `want`, for at most
    /// `limit`; returns how long it took. Panics on timeout with the last output.
    pub fn wait_for(&self, query: &str, want: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let out = self.drbdadm(&[query, &self.config.resource]);
            let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if got == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "drbdadm {query}: `{got}` after {limit:?}, wanted `{want}`; serve log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Brings `a` and `b` up as a fresh pair: metadata created, both up, connected, and
/// both UpToDate without an initial sync (`--clear-bitmap new-current-uuid` on `a`),
/// both Secondary. Panics when a step fails or takes longer than `limit`.
pub fn up_to_date_pair(a: &EmuNode, b: &EmuNode, limit: Duration) {
    for node in [a, b] {
        node.adm_ok(&["create-md", "--force", "r0"]);
        node.adm_ok(&["up", "r0"]);
    }
    a.wait_for("cstate", "Connected", limit);
    a.adm_ok(&["--", "--clear-bitmap", "new-current-uuid", "r0"]);
    b.wait_for("dstate", "UpToDate/UpToDate", limit);
}

fn run_tool(path: &Path, args: &[&str]) -> Output {
    Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()))
}

impl Drop for EmuNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.serve.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(loop_device) = attached_loop(&self.dir.device(), &self.dir.fuse_file()) {
            // The read-only flag of a secondary outlives the detach: clear it first.
            let _ = Command::new("blockdev")
                .arg("--setrw")
                .arg(&loop_device)
                .status();
            let _ = Command::new("losetup").arg("-d").arg(loop_device).status();
        }
        if is_mounted(&self.dir.fuse_dir()) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(self.dir.fuse_dir())
                .status();
        }
        let _ = std::fs::remove_dir_all(self.dir.root());
    }
}

/// True when `path` is a mount point (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = path.to_string_lossy();
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_ref()))
}

/// A filesystem mounted by a test; unmounted on drop (lazily if busy).
#[derive(Debug)]
pub struct Mounted {
    dir: PathBuf,
}

impl Mounted {
    /// Mounts `device` on a new directory under `parent`. Panics on failure.
    pub fn new(device: &Path, parent: &Path) -> Self {
        let dir = parent.join("mnt");
        std::fs::create_dir_all(&dir).expect("create mount point");
        crate::run(
            "mount",
            &[
                device.to_str().expect("utf-8 device"),
                dir.to_str().expect("utf-8 dir"),
            ],
        );
        Self { dir }
    }

    /// The mount point.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
