//! The tools operators use today, set up in the lab's node namespaces for the
//! side-by-side benchmarks: keepalived (VRRP) and ucarp (CARP), each managing only the
//! VIP on `lan0`, and a watcher that timestamps every appearance and disappearance of
//! the VIP on a node.
//!
//! The configuration texts and command lines are pure functions of the settings (unit
//! tested); [`PeerProcess`] and [`VipWatch`] are the thin process layer, each killing
//! only what it started (by process group or pid) when dropped.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use ha_daemon::io::clock::monotonic_ns;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// keepalived's VRRP settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Keepalived {
    /// `vrrp_version` (2: whole-second adverts only; 3: centiseconds).
    pub version: u8,
    /// `advert_int`, in centiseconds.
    pub advert_cs: u32,
}

impl Keepalived {
    /// keepalived's defaults: VRRPv2, one advert a second.
    pub const DEFAULTS: Self = Self {
        version: 2,
        advert_cs: 100,
    };
    /// The shortest advert interval keepalived accepts: VRRPv3, 10 ms.
    pub const AGGRESSIVE: Self = Self {
        version: 3,
        advert_cs: 1,
    };

    /// `keepalived.conf` for the node at `index` (0 or 1) whose LAN address is
    /// `local`: both nodes BACKUP with equal priority (no preemption back and forth),
    /// VRRP multicast on `interface`, `vip/prefix` as the virtual address.
    pub fn config(self, index: usize, interface: &str, vip: Ipv4Addr, prefix: u8) -> String {
        let mut text = String::new();
        let _ = write!(
            text,
            "global_defs {{\n    router_id lab-{index}\n    vrrp_version {}\n}}\n\n\
             vrrp_instance lab {{\n    state BACKUP\n    interface {interface}\n    \
             virtual_router_id 51\n    priority 100\n    advert_int {}\n    \
             virtual_ipaddress {{\n        {vip}/{prefix} dev {interface}\n    }}\n}}\n",
            self.version,
            advert_text(self.advert_cs),
        );
        text
    }
}

/// Centiseconds as keepalived reads `advert_int` (`1`, `0.01`).
fn advert_text(cs: u32) -> String {
    if cs.is_multiple_of(100) {
        (cs / 100).to_string()
    } else {
        format!("{}.{:02}", cs / 100, cs % 100)
    }
}

/// ucarp's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Ucarp {
    /// `--advbase`, seconds (ucarp takes whole seconds only).
    pub advbase: u32,
    /// `--advskew` (0..=255, 1/256 s each).
    pub advskew: u8,
    /// `--deadratio`: adverts missed before the master is dead.
    pub deadratio: u32,
}

impl Ucarp {
    /// ucarp's defaults.
    pub const DEFAULTS: Self = Self {
        advbase: 1,
        advskew: 0,
        deadratio: 3,
    };
    /// The most aggressive settings ucarp accepts: adverts every second (its floor),
    /// no skew, the master dead after one missed advert.
    pub const AGGRESSIVE: Self = Self {
        advbase: 1,
        advskew: 0,
        deadratio: 1,
    };

    /// ucarp's arguments for the node whose LAN address is `local`.
    pub fn args(
        self,
        interface: &str,
        local: Ipv4Addr,
        vip: Ipv4Addr,
        scripts: [&Path; 2],
    ) -> Vec<String> {
        vec![
            format!("--interface={interface}"),
            format!("--srcip={local}"),
            "--vhid=51".to_owned(),
            "--pass=lab".to_owned(),
            format!("--addr={vip}"),
            format!("--advbase={}", self.advbase),
            format!("--advskew={}", self.advskew),
            format!("--deadratio={}", self.deadratio),
            format!("--upscript={}", scripts[0].display()),
            format!("--downscript={}", scripts[1].display()),
            "--shutdown".to_owned(),
        ]
    }
}

/// ucarp's up script: adds the address (ucarp passes the interface and the address)
/// and announces it with one gratuitous ARP, as keepalived and our daemon do.
pub fn ucarp_up_script(prefix: u8) -> String {
    format!(
        "#!/bin/sh\n\
         # ucarp vip-up: $1 interface, $2 address.\n\
         ip addr add \"$2/{prefix}\" dev \"$1\" 2>/dev/null\n\
         exec arping -q -U -c 1 -w 1 -i \"$1\" -S \"$2\" \"$2\" >/dev/null 2>&1\n"
    )
}

/// ucarp's down script: removes the address.
pub fn ucarp_down_script(prefix: u8) -> String {
    format!(
        "#!/bin/sh\n\
         # ucarp vip-down: $1 interface, $2 address.\n\
         ip addr del \"$2/{prefix}\" dev \"$1\" 2>/dev/null\n\
         exit 0\n"
    )
}

/// How long [`PeerProcess::stop`] waits for the tool to exit after the signal before it
/// kills the group.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A peer tool's process (and whatever it forks: keepalived's VRRP child, ucarp's
/// scripts), in a process group of its own. Dropping it kills the group (SIGKILL).
pub struct PeerProcess {
    child: Child,
    what: String,
}

impl PeerProcess {
    /// Starts `command` (whose program execs the tool, e.g. `nsenter ... -- keepalived`)
    /// in a new process group, its output appended to `log`.
    pub fn spawn(mut command: Command, what: &str, log: &Path) -> Result<Self, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{what}: open log {}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("{what}: log {}: {e}", log.display()))?;
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{what}: start: {e}"))?;
        Ok(Self {
            child,
            what: what.to_owned(),
        })
    }

    fn group(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the whole group, waits up to [`STOP_WAIT`] for the tool to exit, then
    /// kills the group; reaps it either way.
    pub fn stop(mut self, signal: Signal) {
        self.end(signal);
    }

    fn end(&mut self, signal: Signal) {
        if !self.running() {
            return;
        }
        let _ = killpg(self.group(), signal);
        let deadline = std::time::Instant::now() + STOP_WAIT;
        while self.running() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if self.running() {
            eprintln!(
                "{}: still running {STOP_WAIT:?} after {signal}: SIGKILL",
                self.what
            );
        }
        let _ = killpg(self.group(), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.end(Signal::SIGKILL);
    }
}

/// One change of the VIP on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VipEvent {
    /// The node (0 or 1).
    pub node: usize,
    /// Added (true) or removed.
    pub added: bool,
    /// When the watcher read it (CLOCK_MONOTONIC).
    pub at_ns: u64,
}

/// Whether an `ip -o monitor address` line adds (`Some(true)`) or removes
/// (`Some(false)`) `vip`; `None` for other lines.
pub fn parse_monitor_line(line: &str, vip: Ipv4Addr) -> Option<bool> {
    let needle = format!(" inet {vip}/");
    line.contains(&needle)
        .then(|| !line.trim_start().starts_with("Deleted"))
}

/// Counts of what a stretch of [`VipEvent`]s shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct VipChanges {
    /// Times a node gained the VIP (takeovers).
    pub gained: usize,
    /// Times a node lost it.
    pub lost: usize,
    /// Time both nodes held it, ms (from the first event on; the state before it is
    /// `start`).
    pub both_ms: f64,
}

/// What `events` (in order) did to holders that were `start` (per node) until `end_ns`.
pub fn vip_changes(start: [bool; 2], events: &[VipEvent], end_ns: u64) -> VipChanges {
    let mut held = start;
    let mut changes = VipChanges::default();
    let mut both_since: Option<u64> = None;
    let mut both_ns = 0u64;
    for event in events {
        if held[event.node] == event.added {
            continue;
        }
        held[event.node] = event.added;
        if event.added {
            changes.gained += 1;
        } else {
            changes.lost += 1;
        }
        match (held[0] && held[1], both_since) {
            (true, None) => both_since = Some(event.at_ns),
            (false, Some(since)) => {
                both_ns += event.at_ns.saturating_sub(since);
                both_since = None;
            }
            _ => {}
        }
    }
    if let Some(since) = both_since {
        both_ns += end_ns.saturating_sub(since);
    }
    changes.both_ms = both_ns as f64 / 1e6;
    changes
}

/// Watches the VIP on both nodes (`ip -n NS -o monitor address`), recording every
/// change with its time. Dropping it kills both monitors.
pub struct VipWatch {
    monitors: Vec<Child>,
    events: Arc<Mutex<Vec<VipEvent>>>,
}

impl VipWatch {
    /// Starts one monitor per namespace name in `nodes`.
    pub fn start(nodes: [&str; 2], vip: Ipv4Addr) -> Result<Self, String> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut monitors = Vec::new();
        for (node, ns) in nodes.iter().enumerate() {
            let mut child = Command::new("ip")
                .args(["-n", ns, "-o", "monitor", "address"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("ip -n {ns} monitor address: {e}"))?;
            let stdout = child.stdout.take().ok_or("ip monitor: no stdout")?;
            monitors.push(child);
            let record = Arc::clone(&events);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if let Some(added) = parse_monitor_line(&line, vip) {
                        let at_ns = monotonic_ns();
                        lock(&record).push(VipEvent { node, added, at_ns });
                    }
                }
            });
        }
        // `ip monitor` subscribes after it starts: give it a moment before anything
        // it must see.
        std::thread::sleep(std::time::Duration::from_millis(100));
        Ok(Self { monitors, events })
    }

    /// The events so far.
    pub fn events(&self) -> Vec<VipEvent> {
        lock(&self.events).clone()
    }
}

fn lock(events: &Mutex<Vec<VipEvent>>) -> std::sync::MutexGuard<'_, Vec<VipEvent>> {
    events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for VipWatch {
    fn drop(&mut self) {
        for child in &mut self.monitors {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            let _ = kill(pid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    #[test]
    fn keepalived_configs_name_version_interval_and_address() {
        let text = Keepalived::AGGRESSIVE.config(1, "lan0", VIP, 24);
        assert!(text.contains("vrrp_version 3\n"), "{text}");
        assert!(text.contains("advert_int 0.01\n"), "{text}");
        assert!(text.contains("192.0.2.10/24 dev lan0"), "{text}");
        assert!(text.contains("state BACKUP"), "{text}");
        let text = Keepalived::DEFAULTS.config(0, "lan0", VIP, 24);
        assert!(text.contains("vrrp_version 2\n"), "{text}");
        assert!(text.contains("advert_int 1\n"), "{text}");
        assert_eq!(advert_text(150), "1.50");
    }

    #[test]
    fn ucarp_arguments_carry_every_setting() {
        let (up, down) = (Path::new("/x/up"), Path::new("/x/down"));
        let args = Ucarp::AGGRESSIVE.args("lan0", Ipv4Addr::new(192, 0, 2, 1), VIP, [up, down]);
        for wanted in [
            "--advbase=1",
            "--advskew=0",
            "--deadratio=1",
            "--srcip=192.0.2.1",
            "--addr=192.0.2.10",
            "--upscript=/x/up",
            "--downscript=/x/down",
        ] {
            assert!(
                args.iter().any(|a| a == wanted),
                "{wanted} missing: {args:?}"
            );
        }
        assert!(ucarp_up_script(24).contains("ip addr add \"$2/24\""));
        assert!(ucarp_down_script(24).contains("ip addr del \"$2/24\""));
    }

    #[test]
    fn monitor_lines_are_told_apart() {
        let add =
            "3: lan0    inet 192.0.2.10/24 scope global secondary lan0\\       valid_lft forever";
        let del = "Deleted 3: lan0    inet 192.0.2.10/24 scope global secondary lan0";
        let other = "3: lan0    inet 192.0.2.1/24 scope global lan0";
        let longer = "3: lan0    inet 192.0.2.100/24 scope global lan0";
        assert_eq!(parse_monitor_line(add, VIP), Some(true));
        assert_eq!(parse_monitor_line(del, VIP), Some(false));
        assert_eq!(parse_monitor_line(other, VIP), None);
        assert_eq!(parse_monitor_line(longer, VIP), None);
    }

    fn event(node: usize, added: bool, ms: u64) -> VipEvent {
        VipEvent {
            node,
            added,
            at_ns: ms * 1_000_000,
        }
    }

    #[test]
    fn changes_count_moves_and_time_on_both() {
        let events = [
            event(1, true, 100),
            event(0, false, 150),
            event(0, false, 160),
            event(0, true, 400),
            event(1, false, 420),
        ];
        let changes = vip_changes([true, false], &events, 1_000_000_000);
        assert_eq!((changes.gained, changes.lost), (2, 2));
        assert!((changes.both_ms - 70.0).abs() < 1e-9, "{changes:?}");
        let open = vip_changes([true, false], &[event(1, true, 900)], 1_000_000_000);
        assert!((open.both_ms - 100.0).abs() < 1e-9, "{open:?}");
    }
}
