//! The two-node lab: the whole product on one machine, for `cargo xtask lab` and the
//! end-to-end tests.
//!
//! ```text
//!                      LAN 192.0.2.0/24 (bridge; witness 192.0.2.254)
//!        +-------------------+------------------+-------------------+
//!        | lan0 .1           | lan0 .2          | lan0 .100         |
//!   +----+------+       +----+------+      +----+------+
//!   |  node a   |       |  node b   |      |  client   |  probes the VIP 192.0.2.10
//!   +----+------+       +----+------+      +-----------+
//!        | repl0 198.51.100.1  | repl0 198.51.100.2
//!        +---------------------+  back-to-back: DRBD replication + heartbeats
//! ```
//!
//! Each node is a network namespace and a mount namespace of its own ([`MountNs`]), with:
//! a DRBD resource `r0` (the emulator, [`crate::drbd_emu`], replicating over `repl0`), an
//! ext4 filesystem on it mounted at [`Lab::mountpoint`] by whichever node holds the group,
//! a busybox LXC container `web` whose lxcpath is on that filesystem, the VIP on `lan0`,
//! and `ha-daemon run` with heartbeats on both links, the witness, and the group
//! `data` (drbd) -> `fs` (mount) -> `web` (lxc) -> `vip`. With [`LabOptions::fence`],
//! each node's fence command is the lab's power switch for the other node
//! ([`Lab::power_off_script`]): what pulling the power cord does (the daemon killed, the
//! container killed, both interfaces down).
//!
//! Dropping the [`Lab`] removes everything, in order: daemons, containers, mounts (with
//! the mount namespaces), DRBD emulators and their loop devices, pins, namespaces, files.

pub mod probe;
pub mod scenario;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bpffs::BpfFs;
use crate::daemon::{self, Daemon, TempDir};
use crate::drbd_emu::config::EmuConfig;
use crate::drbd_emu::node::{EmuNode, up_to_date_pair};
use crate::lan::Lan;
use crate::mountns::MountNs;
use crate::netns::NetNs;
use crate::{Need, run};

/// What the lab needs on this machine.
pub const NEEDS: &[Need] = &[
    Need::Root,
    Need::EbpfObject,
    Need::DaemonBinary,
    Need::Program("nsenter"),
    Need::Program("unshare"),
    Need::Program("fusermount3"),
    Need::Program("mkfs.ext4"),
    Need::Program("lxc-create"),
    Need::Program("busybox"),
    Need::Program("nft"),
];

/// The nodes' names, in node-id order (node ids 1 and 2).
pub const NODES: [&str; 2] = ["a", "b"];
/// The floating address.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The witness (and gateway) on the LAN bridge.
pub const WITNESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The back-to-back interface of both nodes.
pub const REPL_IF: &str = "repl0";
/// The nodes' addresses on the back-to-back link.
pub const REPL_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(198, 51, 100, 2),
];
/// The nodes' addresses on the LAN.
pub const LAN_V4: [Ipv4Addr; 2] = [Lan::A_V4, Lan::B_V4];
/// The container.
pub const CONTAINER: &str = "web";
/// DRBD's replication port.
pub const DRBD_PORT: u16 = 7789;

/// Set when the operator interrupts the lab (Ctrl-C, `cargo xtask lab down`).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks every wait of the lab to give up: the next one panics with "interrupted", and
/// unwinding removes the lab.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Whether the lab was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Panics when the lab was interrupted.
fn check_interrupted() {
    assert!(!interrupted(), "interrupted");
}

/// Installs SIGINT and SIGTERM handlers on a thread of their own, which says so on
/// stderr (as `tool`) and calls [`interrupt`] on the first one. Handlers, not a blocked
/// mask: a mask would be inherited by every program the lab starts.
pub fn watch_signals(tool: &'static str) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("signal runtime: {e}"))?;
    let (mut sigint, mut sigterm) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    std::thread::spawn(move || {
        let name = runtime.block_on(async {
            tokio::select! {
                _ = sigint.recv() => "SIGINT",
                _ = sigterm.recv() => "SIGTERM",
            }
        });
        eprintln!("{tool}: {name}: stopping and cleaning up");
        interrupt();
    });
    Ok(())
}

/// Sleeps for `span`, giving up when the lab is interrupted.
pub fn pause(span: Duration) {
    let until = Instant::now() + span;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        check_interrupted();
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// How the lab is set up.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Heartbeat interval.
    pub interval_ms: u64,
    /// Each node fences the other with the lab's power switch before a takeover after
    /// peer loss; without it, a takeover waits the core's takeover hold.
    pub fence: bool,
    /// `[cluster] isolation_timeout_ms`.
    pub isolation_timeout_ms: u64,
    /// `[cluster] acquire_timeout_ms`.
    pub acquire_timeout_ms: u64,
    /// `[cluster] release_timeout_ms`.
    pub release_timeout_ms: u64,
    /// `[cluster] startup_wait_ms`.
    pub startup_wait_ms: u64,
    /// Both nodes run `drbdadm` through a wrapper that, while the file
    /// [`Lab::stall_file`] of the node exists, holds a successful `primary` there (after
    /// touching [`Lab::promoted_file`]): a takeover stopped between promote and mount.
    pub stall_after_promote: bool,
    /// The group is only the `vip` member (the storage and the container are still
    /// built, but no daemon manages them): the topology the benchmarks compare with
    /// keepalived and ucarp, which manage nothing but the address.
    pub vip_only: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            interval_ms: 5,
            fence: true,
            isolation_timeout_ms: 1000,
            // The lab's group starts in well under a second and stops in about three
            // (busybox's halt): short run timeouts keep an unfenced takeover's hold
            // (which includes both) near 15 s.
            acquire_timeout_ms: 5000,
            release_timeout_ms: 10_000,
            startup_wait_ms: 5000,
            stall_after_promote: false,
            vip_only: false,
        }
    }
}

/// The lab, running. See the module doc.
pub struct Lab {
    daemons: [Option<Daemon>; 2],
    mounts: [MountNs; 2],
    storage: [EmuNode; 2],
    pins: BpfFs,
    /// The namespaces: `a`, `b`, `client`, and `bridge` (holding the witness).
    pub lan: Lan,
    configs: [PathBuf; 2],
    dir: TempDir,
}

impl Lab {
    /// Builds the lab (storage set up, container created, both nodes idle, no daemon
    /// running). Panics with the failed step.
    pub fn new(options: &LabOptions) -> Self {
        let dir = TempDir::new("lab");
        let lan = Lan::new();
        lan.bridge.ip(&[
            "addr",
            "add",
            &format!("{WITNESS}/{}", Lan::PREFIX_V4),
            "dev",
            Lan::BRIDGE,
        ]);
        back_to_back(&lan.a, &lan.b);
        let storage = [0, 1].map(|node| {
            let ns = [&lan.a, &lan.b][node];
            let mut config = EmuConfig::new(
                (REPL_V4[node], DRBD_PORT).into(),
                (REPL_V4[1 - node], DRBD_PORT).into(),
            );
            config.netns = Some(ns.name().to_owned());
            // Small enough that a full-copy resync is quick on a loaded machine.
            config.size_mib = 32;
            // DRBD's defaults: ping-int 1 s (its floor), ping-timeout 5 tenths. A
            // shorter timeout dropped the connection under load (CI), and each
            // reconnect began another full-copy resync.
            config.ping_interval_ms = 1000;
            config.ping_timeout_ms = 500;
            config.connect_interval_ms = 200;
            EmuNode::start(NODES[node], config)
        });
        let mountpoint = dir.path().join("data");
        std::fs::create_dir_all(&mountpoint).expect("create the mountpoint");
        prepare_storage(&storage, &mountpoint);
        let pins = BpfFs::mount("lab");
        // After every network namespace and mount the nodes must see (the private
        // copies are taken now).
        let mounts = NODES.map(|name| MountNs::new(&dir.path().join(format!("{name}.mnt"))));
        let mut lab = Self {
            daemons: [None, None],
            mounts,
            storage,
            pins,
            lan,
            configs: [PathBuf::new(), PathBuf::new()],
            dir,
        };
        lab.write_configs(options);
        lab
    }

    /// The lab's directory (configs, key, epochs, pid files, power switch).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the holder mounts the DRBD filesystem (the same path on both nodes).
    pub fn mountpoint(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The container's lxcpath (on the DRBD filesystem).
    pub fn lxcpath(&self) -> PathBuf {
        self.mountpoint().join("lxc")
    }

    /// `node`'s configuration file.
    pub fn config(&self, node: usize) -> &Path {
        &self.configs[node]
    }

    /// `node`'s network namespace.
    pub fn ns(&self, node: usize) -> &NetNs {
        [&self.lan.a, &self.lan.b][node]
    }

    /// `node`'s DRBD emulator.
    pub fn drbd(&self, node: usize) -> &EmuNode {
        &self.storage[node]
    }

    /// A command running `program` on `node` (its network and mount namespaces).
    pub fn on(&self, node: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.ns(node).name()))
            .arg(format!("--mount={}", self.mounts[node].file().display()))
            .arg("--")
            .arg(program);
        command
    }

    /// Runs `program ARGS` on `node`; its output, whatever the exit.
    pub fn run_on(&self, node: usize, program: &str, args: &[&str]) -> Output {
        self.on(node, program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program} on {}: {e}", NODES[node]))
    }

    /// Starts `node`'s daemon (and records its pid for the power switch).
    pub fn start_daemon(&mut self, node: usize) {
        let daemon = Daemon::spawn(self.on(node, daemon::binary()), &self.configs[node]);
        std::fs::write(self.pid_file(node), daemon.pid().to_string()).expect("write pid file");
        self.daemons[node] = Some(daemon);
    }

    /// `node`'s daemon, if running.
    pub fn daemon(&mut self, node: usize) -> Option<&mut Daemon> {
        self.daemons[node].as_mut()
    }

    /// Stops `node`'s daemon with `signal` and waits for it to exit (SIGKILL after 5 s).
    pub fn stop_daemon(&mut self, node: usize, signal: Signal) {
        if let Some(daemon) = self.daemons[node].take() {
            daemon.signal(signal);
            let _ = daemon.wait_exit(Duration::from_secs(5));
            // Reaped: the pid may be reused, the power switch must not find it.
            let _ = std::fs::remove_file(self.pid_file(node));
        }
    }

    /// What pulling `node`'s power cord would do, as far as the network sees it: its
    /// daemon killed (SIGKILL) and both its interfaces down. Its container and mount
    /// stay (unreachable), as they would on a hung machine.
    pub fn crash(&mut self, node: usize) {
        self.stop_daemon(node, Signal::SIGKILL);
        self.set_links(node, false);
    }

    /// Both of `node`'s interfaces up or down.
    pub fn set_links(&self, node: usize, up: bool) {
        for interface in [Lan::IF, REPL_IF] {
            self.set_link(node, interface, up);
        }
    }

    /// One of `node`'s interfaces up or down.
    pub fn set_link(&self, node: usize, interface: &str, up: bool) {
        self.ns(node)
            .ip(&["link", "set", interface, if up { "up" } else { "down" }]);
    }

    /// `ha-daemon ARGS --config <node's>` (the CLI reaches the daemon over its control
    /// socket, from the host).
    pub fn cli(&self, node: usize, args: &[&str]) -> Output {
        daemon::cli(&self.configs[node], args)
    }

    /// `node`'s `status --json`, or `None` when its daemon does not answer.
    pub fn status(&self, node: usize) -> Option<Value> {
        let out = self.cli(node, &["status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Polls both nodes' status every 50 ms until `done` holds for them (`None` for a
    /// node that does not answer); the time it took. Panics after `limit` with both.
    pub fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Option<Value>; 2]) -> bool,
    ) -> Duration {
        let began = Instant::now();
        loop {
            check_interrupted();
            let statuses = [self.status(0), self.status(1)];
            if done(&statuses) {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < limit,
                "not {what} after {limit:?}: a: {}\nb: {}",
                compact(statuses[0].as_ref()),
                compact(statuses[1].as_ref())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts both daemons and waits until they hear each other and exactly one holds
    /// the whole group; returns the holder.
    pub fn start_cluster(&mut self) -> usize {
        for node in 0..2 {
            self.start_daemon(node);
        }
        self.wait_until(Duration::from_secs(60), "one holder, group running", |s| {
            holders(s).len() == 1
                && s.iter()
                    .flatten()
                    .all(|s| s["detection"]["peer"] == "alive")
        });
        let holder = holders(&[self.status(0), self.status(1)])[0];
        self.wait_running(holder, Duration::from_secs(30));
        holder
    }

    /// Waits until `node` holds the group and every member runs there.
    pub fn wait_running(&self, node: usize, limit: Duration) -> Duration {
        self.wait_until(limit, &format!("{} running the group", NODES[node]), |s| {
            s[node].as_ref().is_some_and(|status| {
                status["cluster"]["owner"] == "us" && status["resources"]["state"] == "running"
            })
        })
    }

    /// Whether the group's members run on `node`, by the kernel's and LXC's word (not
    /// the daemon's): VIP on lan0, filesystem mounted, container RUNNING.
    pub fn group_on(&self, node: usize) -> GroupOn {
        let vip = self
            .ns(node)
            .ip(&["-4", "addr", "show", "dev", Lan::IF])
            .contains(&format!("{VIP}/"));
        let mounts = self.run_on(node, "cat", &["/proc/self/mountinfo"]);
        let mountpoint = self.mountpoint();
        let mounted = String::from_utf8_lossy(&mounts.stdout)
            .lines()
            .any(|line| line.split(' ').nth(4) == Some(&*mountpoint.to_string_lossy()));
        let container = self.container_state(node) == "RUNNING";
        GroupOn {
            vip,
            mounted,
            container,
        }
    }

    /// Runs `PROGRAM -n web -P LXCPATH ARGS` (an LXC tool on the container) on `node`;
    /// its output, whatever the exit.
    pub fn lxc(&self, node: usize, program: &str, args: &[&str]) -> Output {
        self.on(node, program)
            .args(["-n", CONTAINER, "-P"])
            .arg(self.lxcpath())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program} on {}: {e}", NODES[node]))
    }

    /// `lxc-info -s -H` of the container on `node` (empty when it is unknown there).
    pub fn container_state(&self, node: usize) -> String {
        let out = self.lxc(node, "lxc-info", &["-s", "-H"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The container's init pid on `node` (`lxc-info -p -H`; empty when not running).
    pub fn container_pid(&self, node: usize) -> String {
        let out = self.lxc(node, "lxc-info", &["-p", "-H"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `sh -c SCRIPT` inside the container on `node`.
    pub fn in_container(&self, node: usize, script: &str) -> Output {
        self.lxc(node, "lxc-attach", &["--", "/bin/sh", "-c", script])
    }

    /// The MAC of `node`'s LAN interface.
    pub fn mac(&self, node: usize) -> [u8; 6] {
        Lan::mac(self.ns(node))
    }

    /// The power switch for `node` (the fence command of its peer).
    pub fn power_off_script(&self, node: usize) -> PathBuf {
        self.dir().join(format!("power-off-{}", NODES[node]))
    }

    fn pid_file(&self, node: usize) -> PathBuf {
        self.dir().join(format!("{}.pid", NODES[node]))
    }

    fn write_configs(&mut self, options: &LabOptions) {
        let dir = self.dir().to_owned();
        let key = dir.join("cluster.key");
        std::fs::write(&key, b"lab-cluster-key-0123456789abcdef").expect("write key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        for (node, name) in NODES.iter().enumerate() {
            self.write_power_switch(node);
            let config = self.node_config(node, &key, options);
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(&path, config).expect("write config");
            let check = daemon::cli(&path, &["check-config"]);
            assert!(check.status.success(), "lab config refused: {check:?}");
            self.configs[node] = path;
        }
    }

    /// `node`'s configuration.
    fn node_config(&self, node: usize, key: &Path, options: &LabOptions) -> String {
        let (name, peer) = (NODES[node], 1 - node);
        let dir = self.dir();
        let drbd = &self.storage[node];
        let drbdadm = if options.stall_after_promote {
            self.write_stalling_drbdadm(node)
        } else {
            drbd.drbdadm_path()
        };
        let mut toml = format!(
            "# Lab node {name}.\ncluster_id = 7\nnode_id = {}\npeer_node_id = {}\n\
             key_file = \"{}\"\nbpf_pin_directory = \"{}\"\ncontrol_socket = \"{}\"\n\n\
             [heartbeat]\ninterval_ms = {}\n\n[realtime]\nenabled = true\n",
            node + 1,
            peer + 1,
            key.display(),
            self.pins.path().join(name).display(),
            dir.join(format!("{name}.sock")).display(),
            options.interval_ms,
        );
        for (link, interface, addresses) in [("repl", REPL_IF, REPL_V4), ("lan", Lan::IF, LAN_V4)] {
            let _ = write!(
                toml,
                "\n[[link]]\nname = \"{link}\"\ninterface = \"{interface}\"\n\
                 local = \"{}\"\npeer = \"{}\"\n",
                addresses[node], addresses[peer]
            );
        }
        let _ = write!(toml, "\n[group]\nmonitor_interval_ms = 500\n");
        if !options.vip_only {
            self.write_storage_members(&mut toml, node, &drbdadm);
        }
        let _ = write!(
            toml,
            "\n[[resource]]\nname = \"vip\"\nagent = \"vip\"\ninterface = \"{}\"\n\
             address = \"{VIP}/{}\"\n\n\
             [cluster]\nwitness = [\"{WITNESS}\"]\nepoch_file = \"{}\"\n\
             isolation_timeout_ms = {}\nacquire_timeout_ms = {}\nrelease_timeout_ms = {}\n\
             startup_wait_ms = {}\n\
             witness_interval_ms = 200\nwitness_timeout_ms = 100\n",
            Lan::IF,
            Lan::PREFIX_V4,
            dir.join(format!("{name}.epoch")).display(),
            options.isolation_timeout_ms,
            options.acquire_timeout_ms,
            options.release_timeout_ms,
            options.startup_wait_ms,
        );
        if options.fence {
            let _ = writeln!(
                toml,
                "fence = [\"{}\"]",
                self.power_off_script(peer).display()
            );
        }
        toml
    }

    /// The members under the VIP: DRBD, its filesystem and the container.
    fn write_storage_members(&self, toml: &mut String, node: usize, drbdadm: &Path) {
        let drbd = &self.storage[node];
        let _ = write!(
            toml,
            "\n[[resource]]\nname = \"data\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"\n\
             drbdadm = \"{}\"\ndrbdsetup = \"{}\"\n\n\
             [[resource]]\nname = \"fs\"\nagent = \"mount\"\ndevice = \"{}\"\n\
             mountpoint = \"{}\"\nfstype = \"ext4\"\noptions = [\"noatime\"]\n\n\
             [[resource]]\nname = \"{CONTAINER}\"\nagent = \"lxc\"\ncontainer = \"{CONTAINER}\"\n\
             lxcpath = \"{}\"\n",
            drbdadm.display(),
            drbd.drbdsetup_path().display(),
            drbd.device().display(),
            self.mountpoint().display(),
            self.lxcpath().display(),
        );
    }

    /// Writes the power switch of `node`: a script its peer's daemon runs as its fence
    /// command. It leaves the node's namespaces for the host's (the switch is outside
    /// the nodes), then does what a power cut does: the node's interfaces go down first
    /// (nothing more leaves it), its addresses and its daemon, container and DRBD die,
    /// its mount goes.
    /// Exit 0 once the node is off the network.
    fn write_power_switch(&self, node: usize) {
        let ns = self.ns(node).name();
        let on_node = format!(
            "nsenter --net=/run/netns/{ns} --mount={} --",
            self.mounts[node].file().display()
        );
        let serve = self.storage[node]
            .serve_pid()
            .map_or_else(String::new, |pid| pid.to_string());
        let script = format!(
            "#!/bin/sh\n\
             # The lab's power switch for node {name}: what pulling its power cord does.\n\
             if [ \"${{HA_LAB_SWITCH:-}}\" != 1 ]; then\n\
             \texec nsenter --mount=/proc/{lab}/ns/mnt --net=/proc/{lab}/ns/net -- \
             env HA_LAB_SWITCH=1 \"$0\" \"$@\"\n\
             fi\n\
             ip -n {ns} link set {lan} down && ip -n {ns} link set {repl} down || exit 1\n\
             ip -n {ns} addr del {VIP}/{prefix} dev {lan} 2>/dev/null\n\
             kill -KILL \"$(cat {pid})\" 2>/dev/null\n\
             {on_node} lxc-stop -k -n {CONTAINER} -P {lxcpath} >/dev/null 2>&1\n\
             kill -KILL {serve} 2>/dev/null\n\
             # Detaching the mount takes about a second: not worth holding the takeover.\n\
             {on_node} umount -l {mountpoint} </dev/null >/dev/null 2>&1 &\n\
             exit 0\n",
            name = NODES[node],
            lab = std::process::id(),
            pid = self.pid_file(node).display(),
            lxcpath = self.lxcpath().display(),
            mountpoint = self.mountpoint().display(),
            lan = Lan::IF,
            repl = REPL_IF,
            prefix = Lan::PREFIX_V4,
        );
        write_script(&self.power_off_script(node), &script);
    }

    /// `node`'s stall file (see [`LabOptions::stall_after_promote`]).
    pub fn stall_file(&self, node: usize) -> PathBuf {
        self.dir().join(format!("stall-{}", NODES[node]))
    }

    /// Touched by `node`'s stalling `drbdadm` once its promote succeeded.
    pub fn promoted_file(&self, node: usize) -> PathBuf {
        self.dir().join(format!("promoted-{}", NODES[node]))
    }

    /// Writes `node`'s stalling `drbdadm` wrapper; its path.
    fn write_stalling_drbdadm(&self, node: usize) -> PathBuf {
        let path = self.dir().join(format!("drbdadm-{}", NODES[node]));
        let script = format!(
            "#!/bin/sh\n\
             # drbdadm, holding a successful promote while {stall} exists (bounded: 5 min).\n\
             {real} \"$@\"\n\
             rc=$?\n\
             if [ \"$1\" = primary ] && [ $rc = 0 ] && [ -e {stall} ]; then\n\
             \ttouch {promoted}\n\
             \tn=0\n\
             \twhile [ -e {stall} ] && [ $n -lt 6000 ]; do sleep 0.05; n=$((n + 1)); done\n\
             fi\n\
             exit $rc\n",
            real = self.storage[node].drbdadm_path().display(),
            stall = self.stall_file(node).display(),
            promoted = self.promoted_file(node).display(),
        );
        write_script(&path, &script);
        path
    }
}

/// Writes an executable script.
fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

impl Drop for Lab {
    fn drop(&mut self) {
        for node in 0..2 {
            // A stalled drbdadm wrapper ends when its stall file goes.
            let _ = std::fs::remove_file(self.stall_file(node));
            self.stop_daemon(node, Signal::SIGTERM);
        }
        let mountpoint = self.mountpoint();
        for node in 0..2 {
            let _ = self.lxc(node, "lxc-stop", &["-k"]);
            let _ = self.on(node, "umount").arg(&mountpoint).output();
        }
    }
}

/// What of the group runs on a node, by the system's word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupOn {
    /// The VIP is on lan0.
    pub vip: bool,
    /// The DRBD filesystem is mounted.
    pub mounted: bool,
    /// The container is RUNNING.
    pub container: bool,
}

impl GroupOn {
    /// Every member runs.
    pub fn all(self) -> bool {
        self.vip && self.mounted && self.container
    }

    /// No member runs (DRBD aside).
    pub fn none(self) -> bool {
        !self.vip && !self.mounted && !self.container
    }
}

/// Nodes whose status says role `primary`.
pub fn holders(statuses: &[Option<Value>; 2]) -> Vec<usize> {
    (0..2)
        .filter(|&node| {
            statuses[node]
                .as_ref()
                .is_some_and(|s| s["cluster"]["role"] == "primary")
        })
        .collect()
}

fn compact(status: Option<&Value>) -> String {
    status.map_or_else(
        || "no answer".to_owned(),
        |s| {
            format!(
                "role {} owner {} peer {} resources {}",
                s["cluster"]["role"],
                s["cluster"]["owner"],
                s["detection"]["peer"],
                s["resources"]["state"]
            )
        },
    )
}

/// The back-to-back veth between the nodes, addressed and up.
fn back_to_back(a: &NetNs, b: &NetNs) {
    run(
        "ip",
        &[
            "link",
            "add",
            REPL_IF,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            REPL_IF,
            "netns",
            b.name(),
        ],
    );
    for (ns, address) in [(a, REPL_V4[0]), (b, REPL_V4[1])] {
        ns.ip(&["addr", "add", &format!("{address}/24"), "dev", REPL_IF]);
        ns.ip(&["link", "set", REPL_IF, "up"]);
    }
}

/// Both DRBD nodes up, connected and UpToDate, with an ext4 filesystem holding the
/// busybox container; left with both Secondary and nothing mounted.
fn prepare_storage(storage: &[EmuNode; 2], mountpoint: &Path) {
    up_to_date_pair(&storage[0], &storage[1], Duration::from_secs(10));
    storage[0].adm_ok(&["primary", "r0"]);
    let device = storage[0].device();
    let device = device.to_str().expect("utf-8 path");
    let mountpoint = mountpoint.to_str().expect("utf-8 path");
    run("mkfs.ext4", &["-q", "-F", device]);
    run("mount", &[device, mountpoint]);
    let created = create_container(mountpoint);
    run("umount", &[mountpoint]);
    storage[0].adm_ok(&["secondary", "r0"]);
    created.unwrap_or_else(|e| panic!("{e}"));
}

fn create_container(mountpoint: &str) -> Result<(), String> {
    let lxcpath = format!("{mountpoint}/lxc");
    std::fs::create_dir_all(&lxcpath).map_err(|e| format!("create {lxcpath}: {e}"))?;
    let base = format!("{mountpoint}/base.conf");
    std::fs::write(&base, "lxc.net.0.type = empty\n").map_err(|e| format!("write {base}: {e}"))?;
    let out = Command::new("lxc-create")
        .args([
            "-q", "-t", "busybox", "-n", CONTAINER, "-P", &lxcpath, "-f", &base,
        ])
        .output()
        .map_err(|e| format!("lxc-create: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "lxc-create failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
