//! The cluster in real namespaces: the witness probe, then two daemons with a resource
//! group of `exec` markers, a witness and a fence command.

use std::{
    fmt::Write as _,
    net::IpAddr,
    path::PathBuf,
    process::Output,
    time::{Duration, Instant},
};

use ha_daemon::io::witness;
use ha_tests::{
    Need,
    cluster::write_configs,
    daemon::{self, Daemon, TempDir},
    drbd_emu::{
        config::EmuConfig,
        node::{EmuNode, up_to_date_pair},
    },
    netns::NetNs,
    topology::TwoNodes,
    witness::WitnessLan,
};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Runs `probe` on a thread inside `node`'s namespace (raw sockets belong to the
/// namespace of the thread that opens them).
fn in_namespace<T: Send>(node: &NetNs, probe: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _inside = node.enter();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(probe)
            })
            .join()
            .expect("probe thread")
    })
}

#[test]
fn the_witness_answers_until_the_lan_is_cut_and_nobody_else_answers() {
    if !ha_tests::require(
        "the_witness_answers_until_the_lan_is_cut_and_nobody_else_answers",
        &[Need::Root, Need::Program("ip")],
    ) {
        return;
    }
    let nodes = TwoNodes::new();
    let _lan = WitnessLan::new(&nodes);
    let address = IpAddr::V4(WitnessLan::ADDRESS);
    let timeout = Duration::from_millis(250);

    let began = Instant::now();
    let answered = in_namespace(&nodes.a, witness::probe(address, timeout));
    println!("witness answered in {:?}", began.elapsed());
    assert!(answered.expect("probe"), "the witness did not answer");
    let from_b = in_namespace(&nodes.b, witness::reachable(&[address], timeout));
    assert!(from_b, "the witness did not answer B");

    let nobody = IpAddr::V4(WitnessLan::NOBODY);
    let both = in_namespace(&nodes.a, witness::reachable(&[nobody, address], timeout));
    assert!(both, "one answering witness of two is enough");
    let began = Instant::now();
    let silent = in_namespace(&nodes.a, witness::probe(nobody, timeout));
    let waited = began.elapsed();
    println!("no answer from {nobody} after {waited:?}");
    assert!(!silent.expect("probe"), "{nobody} answered");
    assert!(
        waited < timeout * 4,
        "the probe outlived its timeout: {waited:?}"
    );

    WitnessLan::set(&nodes.a, WitnessLan::A_IF, false);
    let cut = in_namespace(&nodes.a, witness::reachable(&[address], timeout));
    assert!(!cut, "the witness answered over a link that is down");
    assert!(
        in_namespace(&nodes.b, witness::reachable(&[address], timeout)),
        "B lost the witness when A's link went down"
    );
}

/// A running two-node cluster: both daemons, the witness, the markers' directory.
/// Fields drop in order: the daemons stop before their files and namespaces go.
struct Running {
    daemons: [Option<Daemon>; 2],
    /// The DRBD emulator nodes (A's, B's) when the group has a `drbd` member.
    storage: Vec<EmuNode>,
    configs: [PathBuf; 2],
    dir: TempDir,
    _lan: WitnessLan,
    nodes: TwoNodes,
}

/// How a [`Running`] cluster is set up.
#[derive(Default)]
struct Setup {
    /// B starts this long after A.
    b_later: Duration,
    /// The group starts with a `drbd` member over two emulator nodes, connected and
    /// UpToDate.
    drbd: bool,
    /// Links between the nodes (0 counts as 1).
    links: usize,
    /// Only A's daemon starts (B stays down); nothing waits for them to meet.
    only_a: bool,
    /// More `[cluster]` keys, one per line.
    cluster_keys: &'static str,
}

const NAMES: [&str; 2] = ["a", "b"];
const LAN_IFS: [&str; 2] = [WitnessLan::A_IF, WitnessLan::B_IF];

fn cluster_needs(test: &str) -> bool {
    ha_tests::require(
        test,
        &[
            Need::Root,
            Need::DaemonBinary,
            Need::Program("ip"),
            Need::Program("sh"),
        ],
    )
}

impl Running {
    /// Both daemons, started together, and waits until both hear each other. See
    /// [`Running::start_apart`].
    fn start(tag: &str) -> Self {
        Self::start_with(tag, &Setup::default())
    }

    /// Both daemons (files under a directory named after `tag`) with a one-member `exec`
    /// group whose marker is `dir/<node>.marker`, the witness reachable from the start,
    /// and a fence command that leaves `dir/<peer>.fenced`, kills the peer's daemon (by
    /// its pid file), removes its marker (its resources die with it) and takes its links
    /// down. See [`Setup`] for the rest. Waits until both hear each other (unless only
    /// A starts).
    fn start_with(tag: &str, setup: &Setup) -> Self {
        let links = setup.links.max(1);
        let nodes = TwoNodes::with_links(links);
        let lan = WitnessLan::new(&nodes);
        let dir = TempDir::new(tag);
        let (a, b) = write_configs(&dir, links, 5, None);
        let configs = [a, b];
        let d = dir.path().display().to_string();
        let storage = if setup.drbd {
            drbd_pair(&nodes)
        } else {
            Vec::new()
        };
        for (me, config) in configs.iter().enumerate() {
            let (name, peer) = (NAMES[me], NAMES[1 - me]);
            let peer_ns = [&nodes.a, &nodes.b][1 - me].name();
            let peer_link = if me == 0 {
                TwoNodes::B_IF
            } else {
                TwoNodes::A_IF
            };
            let fence = format!(
                "touch {d}/{peer}.fenced; kill -KILL $(cat {d}/{peer}.pid); rm -f {d}/{peer}.marker; \
                 ip -n {peer_ns} link set {peer_link} down && \
                 ip -n {peer_ns} link set {} down",
                LAN_IFS[1 - me]
            );
            let mut toml = std::fs::read_to_string(config).expect("read config");
            toml.push_str("\n[group]\nmonitor_interval_ms = 100\n");
            if let Some(emu) = storage.get(me) {
                let _ = write!(
                    toml,
                    "\n[[resource]]\nname = \"data\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"\n\
                     drbdadm = \"{}\"\ndrbdsetup = \"{}\"\n",
                    emu.drbdadm_path().display(),
                    emu.drbdsetup_path().display()
                );
            }
            let _ = write!(
                toml,
                "\n\
                 [[resource]]\nname = \"marker\"\nagent = \"exec\"\n\
                 start = [\"/bin/sh\", \"-c\", \"touch {d}/{name}.marker\"]\n\
                 stop = [\"/bin/sh\", \"-c\", \"rm -f {d}/{name}.marker\"]\n\
                 monitor = [\"/bin/sh\", \"-c\", \"test -e {d}/{name}.marker || exit 7\"]\n\n\
                 [cluster]\nwitness = [\"{}\"]\nepoch_file = \"{d}/{name}.epoch\"\n\
                 fence = [\"/bin/sh\", \"-c\", {fence:?}]\n\
                 isolation_timeout_ms = 500\nwitness_interval_ms = 100\nwitness_timeout_ms = 100\n\
                 switchover_timeout_ms = 3000\nacquire_timeout_ms = 5000\nrelease_timeout_ms = 5000\n\
                 {}",
                WitnessLan::ADDRESS,
                setup.cluster_keys
            );
            std::fs::write(config, toml).expect("write config");
        }
        let mut running = Self {
            daemons: [None, None],
            storage,
            configs,
            dir,
            _lan: lan,
            nodes,
        };
        // The witness is reachable from the start: the start-up wait (default 60 s)
        // keeps a node whose peer is still starting from fencing it.
        let started = if setup.only_a { 1 } else { 2 };
        for (node, name) in NAMES.iter().enumerate().take(started) {
            if node == 1 {
                std::thread::sleep(setup.b_later);
            }
            let daemon = Daemon::start(running.ns(node), &running.configs[node]);
            let pid = running.dir.path().join(format!("{name}.pid"));
            std::fs::write(pid, daemon.pid().to_string()).expect("write pid file");
            running.daemons[node] = Some(daemon);
        }
        if !setup.only_a {
            for node in 0..2 {
                running.wait_peer_alive(node);
            }
        }
        running
    }

    /// Whether `node` was fenced (the fence command leaves a file).
    fn fenced(&self, node: usize) -> bool {
        self.dir
            .path()
            .join(format!("{}.fenced", NAMES[node]))
            .exists()
    }

    fn ns(&self, node: usize) -> &NetNs {
        [&self.nodes.a, &self.nodes.b][node]
    }

    /// Waits up to 10 s until `node`'s daemon answers and hears its peer.
    fn wait_peer_alive(&self, node: usize) {
        let began = Instant::now();
        loop {
            let out = self.cli(node, &["status", "--json"]);
            let status: Option<Value> = serde_json::from_slice(&out.stdout).ok();
            if status.is_some_and(|status| status["detection"]["peer"] == "alive") {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "node {node} does not hear its peer: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until exactly one node holds the group and returns it (either may be
    /// chosen: the first whose core sees the other alive and not yet ready).
    fn first_holder(&self) -> usize {
        let began = Instant::now();
        loop {
            match [self.marker(0), self.marker(1)] {
                [true, true] => panic!("both nodes hold the group"),
                [true, false] => return 0,
                [false, true] => return 1,
                [false, false] => {}
            }
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "nobody holds the group"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn marker(&self, node: usize) -> bool {
        self.dir
            .path()
            .join(format!("{}.marker", NAMES[node]))
            .exists()
    }

    /// Polls every 10 ms, up to `timeout`, until the markers are `want`; asserts at
    /// every poll that never both exist. Returns how long it took.
    fn wait_markers(&self, want: [bool; 2], timeout: Duration, what: &str) -> Duration {
        let began = Instant::now();
        loop {
            let now = [self.marker(0), self.marker(1)];
            assert!(!(now[0] && now[1]), "{what}: both nodes hold the group");
            if now == want {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < timeout,
                "{what}: markers {now:?}, wanted {want:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls for `span` that the markers stay `want` (never both).
    fn hold_markers(&self, want: [bool; 2], span: Duration, what: &str) {
        let began = Instant::now();
        while began.elapsed() < span {
            let now = [self.marker(0), self.marker(1)];
            assert_eq!(now, want, "{what}: markers changed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `ha-daemon ARGS --config <node's config>`.
    fn cli(&self, node: usize, args: &[&str]) -> Output {
        daemon::cli(&self.configs[node], args)
    }

    fn status(&self, node: usize) -> Value {
        let out = self.cli(node, &["status", "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).expect("status is JSON")
    }

    /// Cluster event lines of `node` seen so far (reading what arrived).
    fn cluster_events(&mut self, node: usize) -> Vec<Value> {
        let daemon = self.daemons[node].as_mut().expect("daemon running");
        daemon.collect_for(Duration::ZERO);
        daemon
            .seen()
            .iter()
            .filter_map(|line| line.get("cluster").cloned())
            .collect()
    }
}

/// Two DRBD emulator nodes over the back-to-back link, connected, both UpToDate,
/// both Secondary.
fn drbd_pair(nodes: &TwoNodes) -> Vec<EmuNode> {
    let config = |ns: &NetNs, local, peer| {
        let mut config = EmuConfig::new((local, 7789).into(), (peer, 7789).into());
        config.netns = Some(ns.name().to_owned());
        config.size_mib = 8;
        config.connect_interval_ms = 200;
        config
    };
    let a = EmuNode::start("a", config(&nodes.a, TwoNodes::A_V4, TwoNodes::B_V4));
    let b = EmuNode::start("b", config(&nodes.b, TwoNodes::B_V4, TwoNodes::A_V4));
    up_to_date_pair(&a, &b, Duration::from_secs(5));
    vec![a, b]
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The markers when only `node` holds the group.
fn only(node: usize) -> [bool; 2] {
    [node == 0, node == 1]
}

/// `node`'s id (node 0 is 1, node 1 is 2).
fn id(node: usize) -> String {
    (node + 1).to_string()
}

#[test]
fn the_group_starts_once_moves_by_switchover_standby_and_survives_maintenance() {
    if !cluster_needs("the_group_starts_once_moves_by_switchover_standby_and_survives_maintenance")
    {
        return;
    }
    let mut c = Running::start("cluster-moves");
    let h = c.first_holder();
    let o = 1 - h;
    c.hold_markers(only(h), Duration::from_millis(500), "first start");
    let status = c.status(h);
    assert_eq!(status["cluster"]["role"], "primary", "{status}");
    assert_eq!(status["cluster"]["owner"], "us", "{status}");
    let epoch = status["cluster"]["epoch"].as_u64().expect("epoch");
    assert!(epoch >= 1, "{status}");
    let stored = std::fs::read_to_string(c.dir.path().join(format!("{}.epoch", NAMES[h])))
        .expect("the holder stored its epoch");
    assert_eq!(
        stored.trim(),
        epoch.to_string(),
        "the tenure's epoch is on disk"
    );
    assert_eq!(
        status["cluster"]["last_failover"]["run"]["result"]["type"], "acquired",
        "{status}"
    );
    let table = c.cli(h, &["status"]);
    ok(&table);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&format!(
            "role primary, epoch {epoch}, owner us, group healthy"
        )),
        "{table}"
    );
    assert!(table.contains("last acquire: epoch"), "{table}");
    let other = c.status(o);
    assert_eq!(other["cluster"]["role"], "secondary", "{other}");
    assert_eq!(other["cluster"]["owner"], "peer", "{other}");

    // Switchover asked on the primary, then asked back on the secondary.
    ok(&c.cli(h, &["switchover"]));
    let took = c.wait_markers(only(o), Duration::from_secs(10), "switchover away");
    println!("switchover asked on the primary: {took:?}");
    ok(&c.cli(o, &["switchover", "--to", &id(h)]));
    let took = c.wait_markers(only(h), Duration::from_secs(10), "switchover back");
    println!("switchover asked on the primary, back with --to: {took:?}");
    ok(&c.cli(o, &["switchover", "--to", &id(o)]));
    let took = c.wait_markers(only(o), Duration::from_secs(10), "switchover pulled");
    println!("switchover asked on the secondary: {took:?}");
    let status = c.status(o);
    assert!(
        status["cluster"]["epoch"].as_u64().expect("epoch") >= epoch + 3,
        "every change of holder raises the epoch: {status}"
    );

    // Bad commands are refused with the core's reason.
    let out = c.cli(h, &["switchover", "--to", "9"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node 9 is not in this cluster"), "{stderr}");
    let out = c.cli(h, &["switchover", "--to", &id(o)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds"),
        "{out:?}"
    );

    // Standby on the holder moves the group away; off again moves nothing back.
    ok(&c.cli(o, &["standby", "on"]));
    let took = c.wait_markers(only(h), Duration::from_secs(10), "standby");
    println!("standby on the holder: group moved after {took:?}");
    assert_eq!(c.status(o)["cluster"]["standby"], true);
    ok(&c.cli(o, &["standby", "off"]));
    c.hold_markers(only(h), Duration::from_secs(1), "standby off");

    // Maintenance: the holder neither restarts a dead member nor gives the group up.
    let marker = c.dir.path().join(format!("{}.marker", NAMES[h]));
    ok(&c.cli(h, &["maintenance", "on"]));
    std::fs::remove_file(&marker).expect("kill the member");
    c.hold_markers([false, false], Duration::from_secs(1), "maintenance");
    assert_eq!(c.status(h)["cluster"]["maintenance"], true);
    let out = c.cli(h, &["switchover"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("maintenance is on"),
        "{out:?}"
    );
    // Repaired by hand, then maintenance off: the survey adopts it as it is.
    std::fs::write(&marker, b"").expect("repair the member");
    ok(&c.cli(h, &["maintenance", "off"]));
    c.hold_markers(only(h), Duration::from_secs(1), "maintenance off");
    let status = c.status(h);
    assert_eq!(status["cluster"]["role"], "primary", "{status}");
    assert_eq!(status["cluster"]["maintenance"], false, "{status}");
    let events = c.cluster_events(h);
    assert!(
        events.iter().any(|event| event["type"] == "switchover"),
        "{events:?}"
    );

    // A drill: a switchover that waits for its end and prints both nodes' timelines.
    let peer_socket = c.dir.path().join(format!("{}.sock", NAMES[o]));
    let out = c.cli(
        h,
        &[
            "drill",
            "--peer-socket",
            text(&peer_socket),
            "--timeout-s",
            "10",
        ],
    );
    ok(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    println!("drill:\n{table}");
    for wanted in [
        "node 1:",
        "node 2:",
        "stop marker (exec, stop)",
        "start marker (exec, start)",
        "switchover requested reason=operator",
        "completed (owner: us)",
        "completed (owner: peer)",
    ] {
        assert!(table.contains(wanted), "{wanted:?} missing:\n{table}");
    }
    c.wait_markers(only(o), Duration::from_secs(1), "after the drill");
}

fn text(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn a_crashed_primary_is_fenced_and_replaced() {
    if !cluster_needs("a_crashed_primary_is_fenced_and_replaced") {
        return;
    }
    let mut c = Running::start("cluster-crash");
    let h = c.first_holder();
    let o = 1 - h;
    // Let the detector's history settle.
    c.hold_markers(only(h), Duration::from_millis(500), "first start");
    let began = Instant::now();
    c.daemons[h]
        .as_ref()
        .expect("daemon")
        .signal(Signal::SIGKILL);
    let link = [TwoNodes::A_IF, TwoNodes::B_IF][h];
    c.ns(h).ip(&["link", "set", link, "down"]);
    // The crashed node's resources die with it.
    std::fs::remove_file(c.dir.path().join(format!("{}.marker", NAMES[h])))
        .expect("the crash ends the group there");
    c.wait_markers(only(o), Duration::from_secs(10), "takeover");
    let took = began.elapsed();
    println!("crash of the primary -> group on the other node after {took:?}");
    let status = c.status(o);
    assert_eq!(status["cluster"]["role"], "primary", "{status}");
    let run = &status["cluster"]["last_failover"]["run"];
    assert_eq!(run["reason"], "peer_lost", "{status}");
    println!("takeover run: {run}");
    let events = c.cluster_events(o);
    assert!(
        events
            .iter()
            .any(|event| event["type"] == "acquiring" && event["reason"] == "peer_lost"),
        "{events:?}"
    );
}

#[test]
fn without_the_witness_there_is_no_takeover_and_an_isolated_primary_releases() {
    if !cluster_needs("without_the_witness_there_is_no_takeover_and_an_isolated_primary_releases") {
        return;
    }
    let mut c = Running::start("cluster-isolation");
    let h = c.first_holder();
    let o = 1 - h;
    c.hold_markers(only(h), Duration::from_millis(500), "first start");
    // The secondary loses the witness, then both lose each other: it must not take
    // over, and the primary (which still reaches the witness) keeps the group.
    WitnessLan::set(c.ns(o), LAN_IFS[o], false);
    c.nodes.a.ip(&["link", "set", TwoNodes::A_IF, "down"]);
    c.hold_markers(only(h), Duration::from_secs(2), "secondary isolated");
    let events = c.cluster_events(o);
    assert!(
        events
            .iter()
            .any(|event| event["type"] == "takeover_blocked" && event["cause"] == "isolated"),
        "{events:?}"
    );
    // Now the primary loses the witness too: isolated, it releases after
    // isolation_timeout (500 ms).
    let began = Instant::now();
    WitnessLan::set(c.ns(h), LAN_IFS[h], false);
    c.wait_markers([false, false], Duration::from_secs(5), "primary isolated");
    println!("isolated primary released after {:?}", began.elapsed());
    c.hold_markers([false, false], Duration::from_secs(1), "both isolated");
}

#[test]
fn daemons_starting_together_or_apart_meet_without_a_fence_and_one_holds() {
    if !cluster_needs("daemons_starting_together_or_apart_meet_without_a_fence_and_one_holds") {
        return;
    }
    // Apart: B starts well after A's detector called it lost (its start-up dead time),
    // as when B boots slower; before the start-up wait, A fenced it here.
    for b_later in [Duration::ZERO, Duration::from_millis(1_500)] {
        let setup = Setup {
            b_later,
            ..Setup::default()
        };
        let mut c = Running::start_with("cluster-startup", &setup);
        let h = c.first_holder();
        c.hold_markers(only(h), Duration::from_secs(1), "after they met");
        for node in 0..2 {
            assert!(
                !c.fenced(node),
                "B {b_later:?} later: node {node} was fenced"
            );
            let events = c.cluster_events(node);
            assert!(
                !events
                    .iter()
                    .any(|e| e["type"] == "claiming" && e["reason"] == "peer_lost"),
                "B {b_later:?} later: node {node} claimed on peer loss: {events:?}"
            );
            if b_later > Duration::ZERO && node == 0 {
                assert!(
                    events
                        .iter()
                        .any(|e| e["type"] == "takeover_blocked" && e["cause"] == "startup_wait"),
                    "A did not wait for B: {events:?}"
                );
            }
        }
        let status = c.status(h);
        assert_eq!(status["cluster"]["owner"], "us", "{status}");
        assert_eq!(
            status["cluster"]["startup_wait_left_ms"],
            Value::Null,
            "{status}"
        );
        println!("B {b_later:?} later: node {} holds, nobody fenced", id(h));
    }
}

#[test]
fn a_node_whose_drbd_disk_is_not_usable_never_takes_over_and_says_so() {
    if !ha_tests::require(
        "a_node_whose_drbd_disk_is_not_usable_never_takes_over_and_says_so",
        &[
            Need::Root,
            Need::DaemonBinary,
            Need::Program("ip"),
            Need::Program("sh"),
            Need::Program("nsenter"),
            Need::Program("losetup"),
            Need::Program("blockdev"),
            Need::Program("fusermount3"),
        ],
    ) {
        return;
    }
    let setup = Setup {
        drbd: true,
        ..Setup::default()
    };
    let mut c = Running::start_with("cluster-disk", &setup);
    let h = c.first_holder();
    let o = 1 - h;
    c.hold_markers(only(h), Duration::from_millis(500), "first start");
    assert_eq!(
        c.storage[h].adm_ok(&["role", "r0"]).trim(),
        "Primary/Secondary",
        "the holder promoted its DRBD resource"
    );
    for node in [h, o] {
        let status = c.status(node);
        let disks = &status["cluster"]["disks"];
        assert_eq!(disks[0]["usable"], true, "node {node}: {status}");
        assert_eq!(disks[0]["state"], "r0: UpToDate", "node {node}: {status}");
    }

    // The other node's disk goes away (detached: the resource is down there).
    c.storage[o].adm_ok(&["down", "r0"]);
    let began = Instant::now();
    loop {
        let status = c.status(o);
        if status["cluster"]["disks"][0]["usable"] == false {
            assert_eq!(
                status["cluster"]["disks"][0]["state"], "r0: not up",
                "{status}"
            );
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "the disk still counts as usable: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "disk down -> reported not usable after {:?}",
        began.elapsed()
    );
    let table = c.cli(o, &["status"]);
    ok(&table);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("disk r0: not up: NOT usable"), "{table}");
    let out = c.cli(h, &["switchover"]);
    assert!(
        !out.status.success(),
        "switchover to a node without its disk: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("r0: not connected to the peer"), "{stderr}");
    c.hold_markers(only(h), Duration::from_millis(200), "refused switchover");

    // The primary crashes: the other node must not take over.
    let before = c.cluster_events(o).len();
    c.daemons[h]
        .as_ref()
        .expect("daemon")
        .signal(Signal::SIGKILL);
    let link = [TwoNodes::A_IF, TwoNodes::B_IF][h];
    c.ns(h).ip(&["link", "set", link, "down"]);
    std::fs::remove_file(c.dir.path().join(format!("{}.marker", NAMES[h])))
        .expect("the crash ends the group there");
    c.hold_markers(
        [false, false],
        Duration::from_secs(3),
        "primary dead, disk unusable",
    );
    assert!(!c.fenced(h), "a node that cannot take over fenced its peer");
    let status = c.status(o);
    assert_eq!(status["detection"]["peer"], "lost", "{status}");
    assert_eq!(status["cluster"]["role"], "secondary", "{status}");
    assert_eq!(
        status["cluster"]["takeover_blocked"], "not_eligible",
        "{status}"
    );
    let events = c.cluster_events(o);
    assert!(
        !events[before..].iter().any(|e| e["type"] == "claiming"),
        "a claim without a usable disk: {events:?}"
    );
}

/// Runs `ha-daemon switchover --dry-run ARGS` on `node`: (success, stdout, stderr).
fn dry_run(c: &Running, node: usize, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["switchover", "--dry-run"];
    all.extend_from_slice(args);
    let out = c.cli(node, &all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls the dry run on `node` for up to 5 s until `done` holds for it.
fn dry_run_until(
    c: &Running,
    node: usize,
    what: &str,
    done: impl Fn(&(bool, String, String)) -> bool,
) -> (bool, String, String) {
    let began = Instant::now();
    loop {
        let got = dry_run(c, node, &[]);
        if done(&got) {
            println!("{what}: after {:?}", began.elapsed());
            return got;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_switchover_dry_run_prints_the_steps_and_the_preflight_names_what_blocks_it() {
    if !cluster_needs(
        "a_switchover_dry_run_prints_the_steps_and_the_preflight_names_what_blocks_it",
    ) {
        return;
    }
    let setup = Setup {
        links: 2,
        ..Setup::default()
    };
    let c = Running::start_with("cluster-preflight", &setup);
    let h = c.first_holder();
    let o = 1 - h;
    c.hold_markers(only(h), Duration::from_millis(300), "first start");
    let (h_id, o_id) = (id(h), id(o));

    let (ok, stdout, stderr) = dry_run_until(&c, h, "both links up", |(ok, _, _)| *ok);
    assert!(ok, "{stdout}{stderr}");
    println!("dry run on the holder:\n{stdout}");
    for wanted in [
        "ok   request".to_owned(),
        "ok   links    every link to the peer is up (link0, link1)".to_owned(),
        "ok   peer".to_owned(),
        "ok   disk     no drbd member".to_owned(),
        format!("1. node {h_id} asks node {o_id} to take the group"),
        format!("3. node {h_id} releases the group: stop marker"),
        format!("7. node {o_id} starts the group: start marker"),
        "would be accepted".to_owned(),
    ] {
        assert!(stdout.contains(&wanted), "{wanted:?} missing:\n{stdout}");
    }
    let (ok, stdout, _) = dry_run(&c, o, &[]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "1. node {o_id} asks node {h_id} to hand the group over"
        )),
        "{stdout}"
    );
    let (ok, _, stderr) = dry_run(&c, h, &["--to", &h_id]);
    assert!(!ok);
    assert!(stderr.contains("already holds"), "{stderr}");
    c.hold_markers(
        only(h),
        Duration::from_millis(300),
        "dry runs change nothing",
    );

    // One link down: refused, naming it.
    let link1 = TwoNodes::link(1);
    c.nodes.a.ip(&["link", "set", &link1.a_if, "down"]);
    let (_, stdout, stderr) = dry_run_until(&c, h, "link1 down refuses", |(ok, _, _)| !*ok);
    assert!(stdout.contains("FAIL links"), "{stdout}");
    assert!(
        stderr.contains("would be refused: link link1 to the peer is down"),
        "{stderr}"
    );
    let out = c.cli(h, &["switchover"]);
    assert!(!out.status.success());
    let refused = String::from_utf8_lossy(&out.stderr);
    assert!(
        refused.contains("link link1 to the peer is down"),
        "{refused}"
    );
    c.hold_markers(only(h), Duration::from_millis(300), "refused switchover");
    c.nodes.a.ip(&["link", "set", &link1.a_if, "up"]);
    dry_run_until(&c, h, "link1 back", |(ok, _, _)| *ok);

    // The peer in standby, then in maintenance: refused, naming it.
    for (mode, expected) in [("standby", "standby"), ("maintenance", "maintenance")] {
        ok_cli(&c, o, &[mode, "on"]);
        let (_, stdout, stderr) = dry_run_until(&c, h, &format!("peer {mode}"), |(ok, _, _)| !*ok);
        assert!(stdout.contains("FAIL peer"), "{stdout}");
        assert!(
            stderr.contains(&format!("node {o_id} is in {expected}")),
            "{stderr}"
        );
        ok_cli(&c, o, &[mode, "off"]);
        dry_run_until(&c, h, &format!("peer {mode} off"), |(ok, _, _)| *ok);
    }
    c.hold_markers(only(h), Duration::from_millis(200), "after the refusals");

    // Everything passes: the real one goes.
    ok_cli(&c, h, &["switchover"]);
    c.wait_markers(
        only(o),
        Duration::from_secs(10),
        "switchover after preflight",
    );
}

fn ok_cli(c: &Running, node: usize, args: &[&str]) {
    ok(&c.cli(node, args));
}

/// Polls `node`'s status (up to 5 s, while its daemon starts too) until `done` holds
/// for it; returns it.
fn status_until(c: &Running, node: usize, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let began = Instant::now();
    loop {
        let out = c.cli(node, &["status", "--json"]);
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if done(&status) {
            return status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_lone_node_takes_over_after_the_startup_wait_or_when_the_operator_ends_it() {
    if !cluster_needs("a_lone_node_takes_over_after_the_startup_wait_or_when_the_operator_ends_it")
    {
        return;
    }
    // A short wait: A alone waits it out, then fences the absent B and takes over.
    let setup = Setup {
        only_a: true,
        cluster_keys: "startup_wait_ms = 1500\n",
        ..Setup::default()
    };
    let c = Running::start_with("cluster-lone", &setup);
    let began = Instant::now();
    let status = status_until(&c, 0, "blocked by the wait", |s| {
        s["cluster"]["takeover_blocked"] == "startup_wait"
    });
    let left = status["cluster"]["startup_wait_left_ms"]
        .as_u64()
        .expect("the wait left");
    assert!(left > 0 && left <= 1_500, "{status}");
    c.hold_markers(
        [false, false],
        Duration::from_millis(800),
        "during the wait",
    );
    c.wait_markers([true, false], Duration::from_secs(5), "after the wait");
    println!(
        "lone node took over {:?} after start (wait 1.5 s)",
        began.elapsed()
    );
    assert!(c.fenced(1), "the absent peer is fenced before the takeover");
    drop(c);

    // The default wait (60 s), ended by the operator.
    let setup = Setup {
        only_a: true,
        ..Setup::default()
    };
    let c = Running::start_with("cluster-lone-ended", &setup);
    let status = status_until(&c, 0, "blocked by the wait", |s| {
        s["cluster"]["takeover_blocked"] == "startup_wait"
    });
    assert!(
        status["cluster"]["startup_wait_left_ms"].as_u64() > Some(50_000),
        "{status}"
    );
    let table = c.cli(0, &["status"]);
    ok(&table);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("start-up wait: peer not heard since start"),
        "{table}"
    );
    assert!(table.contains("takeover blocked: startup_wait"), "{table}");
    c.hold_markers([false, false], Duration::from_millis(500), "waiting");
    let began = Instant::now();
    ok_cli(&c, 0, &["end-startup-wait"]);
    c.wait_markers(
        [true, false],
        Duration::from_secs(5),
        "after end-startup-wait",
    );
    println!("end-startup-wait -> group held after {:?}", began.elapsed());
    let out = c.cli(0, &["end-startup-wait"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no start-up wait is under way"), "{stderr}");
}
