//! `ha-daemon run` as a child process inside a test namespace, with its event stream
//! (JSON lines on stdout) collected by a reader thread. Killed on drop.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;

use crate::netns::NetNs;

/// The `ha-daemon` binary of the same build as the running test or tool
/// (`target/<profile>/ha-daemon`; `cargo xtask test` and `cargo xtask lab` build it).
pub fn binary() -> PathBuf {
    crate::sibling_binary("ha-daemon")
}

/// Runs `ha-daemon ARGS --config CONFIG` (a CLI command; the daemon's control socket is
/// named by the configuration) and returns its output.
pub fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run the ha-daemon CLI")
}

/// A running daemon. Dropping it stops it (SIGTERM, then SIGKILL after 2 s).
pub struct Daemon {
    child: Child,
    /// The child was reaped: its pid may belong to someone else now.
    reaped: bool,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Daemon {
    /// Starts `ha-daemon run --config CONFIG` in `ns`.
    pub fn start(ns: &NetNs, config: &Path) -> Self {
        Self::spawn(ns.command(binary()), config)
    }

    /// Starts `ha-daemon run --config CONFIG` through `launcher`, a command that ends
    /// with the daemon binary (e.g. `nsenter ... -- ha-daemon`).
    pub fn spawn(mut launcher: std::process::Command, config: &Path) -> Self {
        let mut child = launcher
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start ha-daemon");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("ha-daemon printed a non-JSON line `{line}`: {e}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            reaped: false,
            lines,
            seen: Vec::new(),
        }
    }

    /// The process id (`nsenter` execs the daemon, so it is the daemon's).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"))
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal the daemon");
    }

    /// Waits up to `limit` for the daemon to exit, then kills it; reaps it either way.
    /// Returns how long it took to exit by itself, or `None` when it had to be killed.
    pub fn wait_exit(mut self, limit: Duration) -> Option<Duration> {
        let began = Instant::now();
        while began.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.reaped = true;
                return Some(began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
        None
    }

    /// Waits up to `timeout` for a line matching `wanted`, keeping every line read in
    /// [`Daemon::seen`]. Returns the match.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let value = self.lines.recv_timeout(left).ok()?;
            self.seen.push(value.clone());
            if wanted(&value) {
                return Some(value);
            }
        }
    }

    /// Reads every line already there and every line that arrives within `span`.
    pub fn collect_for(&mut self, span: Duration) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = Instant::now() + span;
        loop {
            // A zero timeout still returns a line that is already there: a zero span
            // drains what arrived so far.
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(value) => {
                    self.seen.push(value.clone());
                    got.push(value);
                }
                Err(_) => break,
            }
        }
        got
    }

    /// Every line read so far, after reading what has arrived.
    pub fn collect_all(&mut self) -> Vec<Value> {
        self.collect_for(Duration::ZERO);
        self.seen.clone()
    }

    /// Every line read so far.
    pub fn seen(&self) -> &[Value] {
        &self.seen
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = kill(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The type of a detector event line (`{"event": {"type": ...}}`), if it is one.
pub fn event_type(line: &Value) -> Option<&str> {
    line.get("event")?.get("type")?.as_str()
}

/// A directory of test files, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("hat-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
