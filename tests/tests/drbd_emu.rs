//! The DRBD emulator end to end, as root, in two network namespaces: refusals with the
//! real messages, events2 in the real format, protocol C replication through the FUSE +
//! loop device, link cut and restore, crash of the primary and failover, and nothing
//! left behind.

use std::{
    os::unix::fs::FileExt as _,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use ha_tests::{
    Need,
    drbd_emu::{
        capture,
        config::EmuConfig,
        node::{EmuNode, Mounted, is_mounted},
        state::Fencing,
    },
    netns::NetNs,
    nft, run,
    topology::TwoNodes,
};

const PORT: u16 = 7789;
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

macro_rules! testdata {
    ($name:literal) => {
        capture(include_str!(concat!("../testdata/drbd-8.4.11/", $name)))
    };
}

fn config(ns: &NetNs, local: std::net::Ipv4Addr, peer: std::net::Ipv4Addr) -> EmuConfig {
    let mut config = EmuConfig::new((local, PORT).into(), (peer, PORT).into());
    config.netns = Some(ns.name().to_owned());
    config.size_mib = 32;
    config.ping_interval_ms = 200;
    config.ping_timeout_ms = 300;
    config.connect_interval_ms = 200;
    config
}

fn assert_refused(out: &Output, exit: i32, capture: (String, String)) {
    assert_eq!(out.status.code(), Some(exit), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), capture.1);
}

/// `drbdsetup events2 --timestamps --statistics all` running in the background; killed
/// on drop.
struct Events2(Child);

impl Events2 {
    fn start(node: &EmuNode) -> Self {
        let child = Command::new(node.drbdsetup_path())
            .args(["events2", "--timestamps", "--statistics", "all"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start events2");
        Self(child)
    }

    fn finish(mut self) -> String {
        let _ = self.0.kill();
        let out = std::mem::replace(
            &mut self.0,
            Command::new("true").spawn().expect("spawn true"),
        )
        .wait_with_output()
        .expect("events2 output");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Events2 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `2026-11-23T11:53:08.765358+00:00 ` followed by a verb.
fn is_timestamped_event(line: &str) -> bool {
    let (stamp, rest) = line.split_at(line.find(' ').unwrap_or(0));
    let shape = stamp.len() == 32
        && stamp.ends_with("+00:00")
        && stamp.as_bytes()[10] == b'T'
        && stamp.as_bytes()[19] == b'.';
    let verb = rest.split_whitespace().next().unwrap_or_default();
    shape && ["exists", "create", "change", "destroy"].contains(&verb)
}

/// Words with a number after the colon reduced to the key (counters and sizes differ).
fn without_numbers(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split(' ')
                .skip_while(|w| w.ends_with("+00:00"))
                .map(|w| match w.split_once(':') {
                    Some((key, value))
                        if value.parse::<u64>().is_ok() && key != "minor" && key != "volume" =>
                    {
                        key
                    }
                    _ => w,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn drbd_emu_replicates_refuses_and_fails_over() {
    if !ha_tests::require(
        "drbd_emu_replicates_refuses_and_fails_over",
        &[
            Need::Root,
            Need::Program("losetup"),
            Need::Program("blockdev"),
            Need::Program("fusermount3"),
            Need::Program("mkfs.ext4"),
            Need::Program("nft"),
        ],
    ) {
        return;
    }
    let nodes = TwoNodes::new();
    nft::load(
        &nodes.b,
        &format!(
            "table inet drbdemu {{\n counter repl {{}}\n chain input {{\n  type filter hook input priority 0;\n  tcp dport {PORT} counter name repl\n  tcp sport {PORT} counter name repl\n }}\n}}\n"
        ),
    );
    let mut config_a = config(&nodes.a, TwoNodes::A_V4, TwoNodes::B_V4);
    config_a.fencing = Fencing::ResourceOnly;
    let mut a = EmuNode::start("a", config_a);
    let b = EmuNode::start("b", config(&nodes.b, TwoNodes::B_V4, TwoNodes::A_V4));
    let (dir_a, dir_b) = (a.dir().root().to_owned(), b.dir().root().to_owned());
    let pids = [a.serve_pid(), b.serve_pid()];

    assert_refused(
        &a.drbdadm(&["primary", "r0"]),
        10,
        testdata!("35-vmda-primary-unconfigured.txt"),
    );
    assert_refused(
        &a.drbdadm(&["status", "r0"]),
        10,
        testdata!("33-vmda-status-unconfigured.txt"),
    );
    for node in [&a, &b] {
        node.adm_ok(&["create-md", "--force", "r0"]);
        node.adm_ok(&["up", "r0"]);
    }
    let stream = Events2::start(&b);
    let connect = a.wait_for("cstate", "Connected", CONNECT_LIMIT);
    b.wait_for("cstate", "Connected", CONNECT_LIMIT);
    println!("up -> Connected: {connect:?}");
    assert_eq!(
        a.adm_ok(&["status", "r0"]),
        testdata!("04-vmda-status-connected-inconsistent.txt").0
    );
    assert_refused(
        &a.drbdadm(&["primary", "r0"]),
        17,
        testdata!("05-vmda-primary-refused-inconsistent.txt"),
    );

    a.adm_ok(&["--", "--clear-bitmap", "new-current-uuid", "r0"]);
    b.wait_for("dstate", "UpToDate/UpToDate", CONNECT_LIMIT);
    let started = Instant::now();
    a.adm_ok(&["primary", "r0"]);
    println!(
        "promote (drbdadm primary, connected): {:?}",
        started.elapsed()
    );
    b.wait_for("role", "Secondary/Primary", CONNECT_LIMIT);
    assert_refused(
        &b.drbdadm(&["primary", "r0"]),
        11,
        testdata!("22-vmdb-primary-refused-peer-primary.txt"),
    );
    assert_eq!(
        String::from_utf8_lossy(&a.drbdsetup(&["events2", "--now", "all"]).stdout),
        testdata!("16-vmda-events2-now.txt").0
    );
    let stats = b.drbdsetup(&["events2", "--now", "--statistics", "--timestamps", "all"]);
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    assert!(stats.lines().all(is_timestamped_event), "{stats}");
    assert_eq!(
        without_numbers(&stats),
        without_numbers(&testdata!("18-vmdb-events2-now-stats.txt").0)
    );
    assert_eq!(
        a.adm_ok(&["status"]),
        testdata!("11-vmda-drbdadm-status-primary.txt").0
    );
    assert_eq!(
        b.adm_ok(&["status"]),
        testdata!("12-vmdb-drbdadm-status-secondary.txt").0
    );

    protocol_c(&a, &b);
    let loop_b = b.loop_device();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(&loop_b)
        .and_then(|device| device.write_all_at(&[1; 4096], 0));
    assert!(written.is_err(), "a secondary's device must refuse writes");
    println!("write on b's (secondary) device: {written:?}");

    run("mkfs.ext4", &["-q", "-F", path_str(&a.device())]);
    let mount_a = Mounted::new(&a.device(), &dir_a);
    std::fs::write(mount_a.dir().join("file1"), "hello-from-a\n").expect("write file1");
    run("sync", &[]);
    assert_refused(
        &a.drbdadm(&["secondary", "r0"]),
        11,
        testdata!("63-vmdb-secondary-refused-mounted.txt"),
    );
    assert_refused(
        &a.drbdadm(&["down", "r0"]),
        11,
        testdata!("64-vmdb-down-refused-mounted.txt"),
    );

    link_cut_and_restore(&nodes, &a, &b, &mount_a);

    let packets = nft::packets(&nodes.b, "drbdemu", "repl");
    println!("replication packets seen by nft on port {PORT} in b: {packets}");
    assert!(packets > 100, "only {packets} replication packets");

    // The link goes first, so b learns of the crash only by its ping timeout. Promoting
    // at once is refused at first (the peer is still Primary as far as b knows), waits
    // for the ping timeout as DRBD 8.4 does, and succeeds.
    nodes.a.ip(&["link", "set", TwoNodes::A_IF, "down"]);
    a.crash();
    let started = Instant::now();
    b.adm_ok(&["primary", "r0"]);
    let promote = started.elapsed();
    b.wait_for("cstate", "WFConnection", CONNECT_LIMIT);
    b.wait_for("dstate", "UpToDate/DUnknown", CONNECT_LIMIT);
    let noticed = started.elapsed();
    let mount_b = Mounted::new(&b.device(), &dir_b);
    assert_eq!(
        std::fs::read_to_string(mount_b.dir().join("file1")).expect("file1 on b"),
        "hello-from-a\n"
    );
    assert_eq!(
        std::fs::read_to_string(mount_b.dir().join("file2")).expect("file2 on b"),
        "written-while-cut\n"
    );
    println!(
        "crash of a -> b promoted (after its ping timeout): {promote:?}; -> WFConnection/DUnknown seen: {noticed:?}; -> data readable on b: {:?}",
        started.elapsed()
    );
    assert_eq!(
        b.adm_ok(&["status"]),
        testdata!("29-vmdb-drbdadm-status-after-failover.txt").0
    );

    let events = stream.finish();
    assert!(events.lines().all(is_timestamped_event), "{events}");
    for wanted in [
        "change connection name:r0 peer-node-id:0 conn-name:peer connection:Connected",
        "change connection name:r0 peer-node-id:0 conn-name:peer connection:NetworkFailure role:Unknown",
        "change peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 replication:Off peer-disk:DUnknown",
        "change connection name:r0 peer-node-id:0 conn-name:peer connection:Connecting",
        "change resource name:r0 role:Primary",
    ] {
        assert!(
            events.contains(wanted),
            "no `{wanted}` in the live stream:\n{events}"
        );
    }

    drop(mount_b);
    b.adm_ok(&["secondary", "r0"]);
    let loop_b = b.loop_device();
    b.adm_ok(&["down", "r0"]);
    b.adm_ok(&["down", "r0"]);
    assert!(!b.device().exists(), "down leaves no device link");
    assert!(!is_mounted(&dir_b.join("fuse")), "down unmounts FUSE");
    let backing = std::fs::read_to_string(format!(
        "/sys/block/{}/loop/backing_file",
        loop_b
            .file_name()
            .and_then(|n| n.to_str())
            .expect("loop name")
    ))
    .unwrap_or_default();
    assert!(
        !backing.contains(path_str(&dir_b)),
        "down detaches the loop device"
    );
    assert_eq!(
        run("blockdev", &["--getro", path_str(&loop_b)]).trim(),
        "0",
        "down leaves the loop device read-only for its next user"
    );
    assert_refused(
        &b.drbdadm(&["status", "r0"]),
        10,
        testdata!("33-vmda-status-unconfigured.txt"),
    );
    drop(mount_a);
    drop((a, b));
    let losetup = run("losetup", &["-a"]);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for dir in [&dir_a, &dir_b] {
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !losetup.contains(path_str(dir)),
            "loop device left: {losetup}"
        );
        assert!(
            !mountinfo.contains(path_str(dir)),
            "mount left: {mountinfo}"
        );
        assert!(!is_mounted(&dir.join("fuse")));
    }
    for pid in pids.into_iter().flatten() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "serve {pid} still running"
        );
    }
}

/// A write on a's device is on b's image when it completes; prints the latency.
fn protocol_c(a: &EmuNode, b: &EmuNode) {
    const WRITES: u64 = 200;
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8 + 1).collect();
    let device = std::fs::OpenOptions::new()
        .write(true)
        .open(a.loop_device())
        .expect("open a's device for writing");
    let image_b = std::fs::File::open(b.dir().backing()).expect("b's image");
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    for index in 0..WRITES {
        let offset = index * 4096;
        let write = Instant::now();
        device.write_all_at(&pattern, offset).expect("write");
        device.sync_data().expect("fdatasync");
        worst = worst.max(write.elapsed());
        let mut on_b = vec![0; pattern.len()];
        image_b
            .read_exact_at(&mut on_b, offset)
            .expect("read b's image");
        assert_eq!(
            on_b, pattern,
            "write {index} completed on a but is not on b"
        );
    }
    println!(
        "protocol C 4 KiB write + fdatasync through loop+FUSE+TCP: mean {:?}, worst {worst:?} ({WRITES} writes)",
        started.elapsed() / u32::try_from(WRITES).expect("small")
    );
}

/// Cuts the link: both notice within the ping timeout, the primary (resource-only
/// fencing) marks b Outdated; a writes meanwhile; restoring the link resyncs b.
fn link_cut_and_restore(nodes: &TwoNodes, a: &EmuNode, b: &EmuNode, mount_a: &Mounted) {
    let cut = Instant::now();
    nodes.a.ip(&["link", "set", TwoNodes::A_IF, "down"]);
    a.wait_for("cstate", "WFConnection", CONNECT_LIMIT);
    let a_noticed = cut.elapsed();
    b.wait_for("cstate", "WFConnection", CONNECT_LIMIT);
    println!(
        "link cut -> a WFConnection: {a_noticed:?}, b: {:?}",
        cut.elapsed()
    );
    assert_eq!(a.adm_ok(&["dstate", "r0"]), "UpToDate/Outdated\n");
    assert_eq!(b.adm_ok(&["dstate", "r0"]), "UpToDate/DUnknown\n");
    assert_eq!(b.adm_ok(&["role", "r0"]), "Secondary/Unknown\n");
    assert_eq!(
        String::from_utf8_lossy(&b.drbdsetup(&["events2", "--now", "all"]).stdout),
        testdata!("46-vmda-events2-now-link-cut.txt").0
    );
    std::fs::write(mount_a.dir().join("file2"), "written-while-cut\n").expect("write file2");
    run("sync", &[]);
    let restore = Instant::now();
    nodes.a.ip(&["link", "set", TwoNodes::A_IF, "up"]);
    b.wait_for("dstate", "UpToDate/UpToDate", Duration::from_secs(20));
    a.wait_for("dstate", "UpToDate/UpToDate", Duration::from_secs(20));
    println!(
        "link restored -> resynced (full copy) UpToDate/UpToDate: {:?}",
        restore.elapsed()
    );
    assert_eq!(b.adm_ok(&["cstate", "r0"]), "Connected\n");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
