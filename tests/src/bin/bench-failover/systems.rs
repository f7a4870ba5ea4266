//! The systems compared, each running in the lab's VIP-only topology: our daemon
//! (group of just the `vip` agent), keepalived and ucarp. A [`Cluster`] starts and
//! stops a system on a node, applies the faults, and says who holds the VIP (by the
//! kernel's word: the address on `lan0`).

use std::process::Command;
use std::time::{Duration, Instant};

use ha_tests::daemon::event_type;
use ha_tests::lab::{self, LAN_V4, Lab, LabOptions, NODES, REPL_IF, VIP};
use ha_tests::lan::Lan;
use ha_tests::peers::{self, Keepalived, PeerProcess, Ucarp};
use nix::sys::signal::Signal;

/// Which system, with which settings.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(tag = "system", rename_all = "snake_case")]
pub(crate) enum System {
    /// Our daemon, VIP-only group.
    Ours {
        /// `[heartbeat] interval_ms`.
        interval_ms: u64,
        /// The lab's power switch as the fence (else the takeover hold).
        fence: bool,
    },
    /// keepalived (VRRP multicast on lan0).
    Keepalived(Keepalived),
    /// ucarp (CARP multicast on lan0).
    Ucarp(Ucarp),
}

/// One column of the comparison.
#[derive(Clone, Debug)]
pub(crate) struct Setting {
    /// Short name for `--only`.
    pub(crate) id: &'static str,
    /// The system's name.
    pub(crate) system_name: &'static str,
    /// What is set, in words.
    pub(crate) label: &'static str,
    /// The system and its settings.
    pub(crate) system: System,
    /// Whether the flapping and starvation parts run it (fencing changes nothing
    /// there, so only one of our fenced/unfenced pairs does).
    pub(crate) weather: bool,
}

/// `[cluster]` run timeouts for the unfenced VIP-only runs: adding or removing an
/// address takes milliseconds, and the takeover hold includes both (the daemon's
/// defaults, 60 s and 30 s, would make it about 90 s).
const UNFENCED_RUN_TIMEOUT_MS: u64 = 1000;

/// Every setting compared, in table order.
pub(crate) fn settings() -> Vec<Setting> {
    let ours = |id, label, interval_ms, fence, weather| Setting {
        id,
        system_name: "ours",
        label,
        system: System::Ours { interval_ms, fence },
        weather,
    };
    vec![
        ours(
            "ours-5-fence",
            "defaults (heartbeat 5 ms), power-switch fence",
            5,
            true,
            true,
        ),
        ours(
            "ours-5",
            "defaults (heartbeat 5 ms), no fence (takeover hold; run timeouts 1 s)",
            5,
            false,
            false,
        ),
        ours(
            "ours-1-fence",
            "most aggressive (heartbeat 1 ms), power-switch fence",
            1,
            true,
            true,
        ),
        ours(
            "ours-1",
            "most aggressive (heartbeat 1 ms), no fence (takeover hold; run timeouts 1 s)",
            1,
            false,
            false,
        ),
        Setting {
            id: "keepalived-default",
            system_name: "keepalived",
            label: "defaults (VRRPv2, advert_int 1)",
            system: System::Keepalived(Keepalived::DEFAULTS),
            weather: true,
        },
        Setting {
            id: "keepalived-fast",
            system_name: "keepalived",
            label: "most aggressive (VRRPv3, advert_int 0.01)",
            system: System::Keepalived(Keepalived::AGGRESSIVE),
            weather: true,
        },
        Setting {
            id: "ucarp-default",
            system_name: "ucarp",
            label: "defaults (advbase 1, advskew 0, deadratio 3)",
            system: System::Ucarp(Ucarp::DEFAULTS),
            weather: true,
        },
        Setting {
            id: "ucarp-fast",
            system_name: "ucarp",
            label: "most aggressive (advbase 1, advskew 0, deadratio 1)",
            system: System::Ucarp(Ucarp::AGGRESSIVE),
            weather: true,
        },
    ]
}

/// The fault that ends the holder's tenure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fault {
    /// The lab's crash: both interfaces down, the system SIGKILLed.
    Crash,
    /// The holder's lan0 down (everything else running).
    LanCut,
}

impl Fault {
    /// In words.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Crash => "node crash",
            Self::LanCut => "holder's lan0 cut",
        }
    }
}

/// Settle time before a fault: our adaptive dead times need clean history
/// ([`lab::scenario::SETTLE`]); the others' backups need a few adverts.
pub(crate) fn settle(system: System) -> Duration {
    match system {
        System::Ours { .. } => lab::scenario::SETTLE,
        _ => Duration::from_secs(2),
    }
}

/// A system running in a VIP-only lab.
pub(crate) struct Cluster {
    /// The lab (topology, client, our daemons).
    pub(crate) lab: Lab,
    /// Which system.
    pub(crate) system: System,
    peers: [Option<PeerProcess>; 2],
    /// Nodes faulted since the last [`Cluster::heal`].
    faulted: [bool; 2],
    /// The exact configuration of each node: (what, text).
    pub(crate) configs: Vec<(String, String)>,
}

impl Cluster {
    /// Builds the lab and writes the system's configuration (nothing started).
    pub(crate) fn new(system: System) -> Result<Self, String> {
        let options = match system {
            System::Ours { interval_ms, fence } => LabOptions {
                interval_ms,
                fence,
                vip_only: true,
                acquire_timeout_ms: if fence {
                    LabOptions::default().acquire_timeout_ms
                } else {
                    UNFENCED_RUN_TIMEOUT_MS
                },
                release_timeout_ms: if fence {
                    LabOptions::default().release_timeout_ms
                } else {
                    UNFENCED_RUN_TIMEOUT_MS
                },
                ..LabOptions::default()
            },
            _ => LabOptions {
                vip_only: true,
                ..LabOptions::default()
            },
        };
        let lab = Lab::new(&options);
        let mut configs = Vec::new();
        match system {
            System::Ours { .. } => {
                for (node, name) in NODES.iter().enumerate() {
                    let text = std::fs::read_to_string(lab.config(node))
                        .map_err(|e| format!("read {}: {e}", lab.config(node).display()))?;
                    configs.push((format!("ha-daemon config, node {name}"), text));
                }
            }
            System::Keepalived(settings) => {
                for (node, name) in NODES.iter().enumerate() {
                    let text = settings.config(node, Lan::IF, VIP, Lan::PREFIX_V4);
                    write(&keepalived_conf(&lab, node), &text, 0o644)?;
                    configs.push((format!("keepalived.conf, node {name}"), text));
                }
            }
            System::Ucarp(settings) => {
                let (up, down) = ucarp_scripts(&lab);
                write(&up, &peers::ucarp_up_script(Lan::PREFIX_V4), 0o755)?;
                write(&down, &peers::ucarp_down_script(Lan::PREFIX_V4), 0o755)?;
                for node in 0..2 {
                    let args = settings.args(Lan::IF, LAN_V4[node], VIP, [&up, &down]);
                    configs.push((
                        format!("ucarp command line, node {}", NODES[node]),
                        format!("ucarp {}", args.join(" ")),
                    ));
                }
                configs.push((
                    "ucarp up script".to_owned(),
                    peers::ucarp_up_script(Lan::PREFIX_V4),
                ));
                configs.push((
                    "ucarp down script".to_owned(),
                    peers::ucarp_down_script(Lan::PREFIX_V4),
                ));
            }
        }
        Ok(Self {
            lab,
            system,
            peers: [None, None],
            faulted: [false, false],
            configs,
        })
    }

    /// Starts the system on `node`.
    pub(crate) fn start(&mut self, node: usize) -> Result<(), String> {
        let log = self.lab.dir().join(format!("peer-{}.log", NODES[node]));
        match self.system {
            System::Ours { .. } => {
                self.lab.start_daemon(node);
                return Ok(());
            }
            System::Keepalived(_) => {
                let dir = self.lab.dir().to_owned();
                let name = NODES[node];
                let pid_files = [
                    dir.join(format!("keepalived-{name}.pid")),
                    dir.join(format!("keepalived-vrrp-{name}.pid")),
                ];
                // A killed keepalived leaves its pid files, and its VRRP child may stay
                // a zombie (nobody reaps orphans here): it would refuse to start.
                for file in &pid_files {
                    let _ = std::fs::remove_file(file);
                }
                let mut command = self.lab.on(node, "keepalived");
                command
                    .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
                    .arg("--use-file")
                    .arg(keepalived_conf(&self.lab, node))
                    .arg("--pid")
                    .arg(&pid_files[0])
                    .arg("--vrrp_pid")
                    .arg(&pid_files[1]);
                self.peers[node] = Some(PeerProcess::spawn(command, "keepalived", &log)?);
            }
            System::Ucarp(settings) => {
                let (up, down) = ucarp_scripts(&self.lab);
                let mut command = self.lab.on(node, "ucarp");
                command.args(settings.args(Lan::IF, LAN_V4[node], VIP, [&up, &down]));
                self.peers[node] = Some(PeerProcess::spawn(command, "ucarp", &log)?);
            }
        }
        // Started is not running: a refused configuration exits at once.
        lab::pause(Duration::from_millis(200));
        let alive = self.peers[node].as_mut().is_some_and(PeerProcess::running);
        if alive {
            Ok(())
        } else {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Err(format!(
                "{:?} on {} exited at start: {}",
                self.system,
                NODES[node],
                text.trim()
            ))
        }
    }

    /// Stops the system on `node` (`signal`, then SIGKILL after 5 s).
    pub(crate) fn stop(&mut self, node: usize, signal: Signal) {
        match self.system {
            System::Ours { .. } => self.lab.stop_daemon(node, signal),
            _ => {
                if let Some(peer) = self.peers[node].take() {
                    peer.stop(signal);
                }
            }
        }
    }

    /// Whether the VIP is on `node`'s lan0.
    pub(crate) fn vip_on(&self, node: usize) -> bool {
        self.lab
            .ns(node)
            .ip(&["-4", "addr", "show", "dev", Lan::IF])
            .contains(&format!("{VIP}/"))
    }

    /// Starts both nodes and waits for a single holder; returns it.
    pub(crate) fn start_both(&mut self) -> Result<usize, String> {
        match self.system {
            System::Ours { .. } => Ok(self.lab.start_cluster()),
            _ => {
                for node in 0..2 {
                    self.start(node)?;
                }
                self.single_holder(Duration::from_secs(30))
            }
        }
    }

    /// Waits until exactly one node has held the VIP for a second (and, for ours, both
    /// daemons hear each other and say so); returns it.
    pub(crate) fn single_holder(&self, limit: Duration) -> Result<usize, String> {
        if let System::Ours { .. } = self.system {
            self.lab.wait_until(limit, "one holder, both alive", |s| {
                lab::holders(s).len() == 1
                    && s.iter()
                        .flatten()
                        .filter(|s| s["detection"]["peer"] == "alive")
                        .count()
                        == 2
            });
        }
        let began = Instant::now();
        let mut stable: Option<(usize, Instant)> = None;
        loop {
            let on = [self.vip_on(0), self.vip_on(1)];
            let single = match on {
                [true, false] => Some(0),
                [false, true] => Some(1),
                _ => None,
            };
            match (single, stable) {
                (Some(node), Some((held, since))) if node == held => {
                    if since.elapsed() >= Duration::from_secs(1) {
                        return Ok(node);
                    }
                }
                (Some(node), _) => stable = Some((node, Instant::now())),
                (None, _) => stable = None,
            }
            if began.elapsed() > limit {
                return Err(format!(
                    "no single VIP holder after {limit:?} (a {}, b {})",
                    on[0], on[1]
                ));
            }
            lab::pause(Duration::from_millis(50));
        }
    }

    /// Applies `fault` to `node`.
    pub(crate) fn fault(&mut self, node: usize, fault: Fault) {
        self.faulted[node] = true;
        match fault {
            // The lab's crash, links first for every system: a tool killed while its
            // links are up could say goodbye (keepalived's VRRP child sends priority 0
            // when its parent dies), and a power cut stops both at once.
            Fault::Crash => {
                self.lab.set_links(node, false);
                self.stop(node, Signal::SIGKILL);
            }
            Fault::LanCut => self.lab.set_link(node, Lan::IF, false),
        }
    }

    /// Whether the system runs on `node`.
    fn running(&mut self, node: usize) -> bool {
        match self.system {
            System::Ours { .. } => self.lab.daemon(node).is_some(),
            _ => self.peers[node].as_mut().is_some_and(PeerProcess::running),
        }
    }

    /// Whether both of `node`'s interfaces are administratively up.
    fn links_up(&self, node: usize) -> bool {
        [Lan::IF, REPL_IF].iter().all(|interface| {
            let flags = self.lab.ns(node).ip(&["-o", "link", "show", interface]);
            flags.contains("<UP") || flags.contains(",UP")
        })
    }

    /// Brings back every node that was faulted or whose system does not run, as after a
    /// reboot (the system stopped, the VIP gone, the links up, the system started
    /// again); the holder once steady.
    pub(crate) fn heal(&mut self) -> Result<usize, String> {
        for node in 0..2 {
            // Our power switch (the fence) takes a node's links down behind our back.
            if !self.faulted[node] && self.running(node) && self.links_up(node) {
                continue;
            }
            self.stop(node, Signal::SIGTERM);
            let _ = Command::new("ip")
                .args(["-n", self.lab.ns(node).name(), "addr", "del"])
                .arg(format!("{VIP}/{}", Lan::PREFIX_V4))
                .args(["dev", Lan::IF])
                .output();
            self.lab.set_links(node, true);
            self.faulted[node] = false;
            self.start(node)?;
        }
        self.single_holder(Duration::from_secs(60))
    }

    /// Our daemon's `peer_lost` on `node` after `since_ns`, ms after it (ours only).
    pub(crate) fn peer_lost_ms(&mut self, node: usize, since_ns: u64) -> Option<f64> {
        let lines = self.lab.daemon(node)?.collect_all();
        lines
            .iter()
            .filter(|line| line["monotonic_ns"].as_u64() >= Some(since_ns))
            .find(|line| event_type(line) == Some("peer_lost"))
            .and_then(|line| line["monotonic_ns"].as_u64())
            .map(|ns| ns.saturating_sub(since_ns) as f64 / 1e6)
    }
}

impl Cluster {
    /// `peer_lost` events both our daemons reported between `since_ns` and `until_ns`
    /// (`None` for the other systems, which have no event stream).
    pub(crate) fn peer_losses(&mut self, since_ns: u64, until_ns: u64) -> Option<usize> {
        if !matches!(self.system, System::Ours { .. }) {
            return None;
        }
        let mut count = 0;
        for node in 0..2 {
            let Some(daemon) = self.lab.daemon(node) else {
                continue;
            };
            count += daemon
                .collect_all()
                .iter()
                .filter(|line| {
                    line["monotonic_ns"]
                        .as_u64()
                        .is_some_and(|ns| (since_ns..=until_ns).contains(&ns))
                })
                .filter(|line| event_type(line) == Some("peer_lost"))
                .count();
        }
        Some(count)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in 0..2 {
            if let Some(peer) = self.peers[node].take() {
                peer.stop(Signal::SIGTERM);
            }
        }
    }
}

fn keepalived_conf(lab: &Lab, node: usize) -> std::path::PathBuf {
    lab.dir().join(format!("keepalived-{}.conf", NODES[node]))
}

fn ucarp_scripts(lab: &Lab) -> (std::path::PathBuf, std::path::PathBuf) {
    (lab.dir().join("vip-up"), lab.dir().join("vip-down"))
}

fn write(path: &std::path::Path, text: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}
