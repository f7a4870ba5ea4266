//! The resource group for real, as root: DRBD (the emulator, two nodes in two network
//! namespaces), an ext4 mount of its device, a busybox container on that filesystem and a
//! VIP, started in order by `ha-daemon resources start` with its timeline, adopted
//! untouched by a daemon that starts while the group runs, and released in reverse. And
//! a group whose third member fails to start: rolled back in reverse.
//!
//! The commands run in node a's network namespace only (`nsenter --net`), in the host's
//! mount namespace, as the daemon does in production.

use std::{
    fmt::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use ha_tests::{
    Need,
    cluster::write_configs,
    daemon::{Daemon, TempDir},
    drbd_emu::{
        config::EmuConfig,
        node::{EmuNode, is_mounted, up_to_date_pair},
    },
    netns::NetNs,
    run,
    topology::TwoNodes,
};
use serde_json::Value;

/// What both tests need.
const NEEDS: &[Need] = &[
    Need::Root,
    Need::DaemonBinary,
    Need::Program("nsenter"),
    Need::Program("fusermount3"),
    Need::Program("mkfs.ext4"),
    Need::Program("lxc-create"),
    Need::Program("busybox"),
];
const PORT: u16 = 7789;
const VIP: &str = "203.0.113.10";
const CONTAINER: &str = "web";

fn emu_config(ns: &NetNs, local: std::net::Ipv4Addr, peer: std::net::Ipv4Addr) -> EmuConfig {
    let mut config = EmuConfig::new((local, PORT).into(), (peer, PORT).into());
    config.netns = Some(ns.name().to_owned());
    config.size_mib = 32;
    config.connect_interval_ms = 200;
    config
}

/// Two connected, UpToDate emulator nodes with an ext4 filesystem holding a busybox
/// container, everything stopped (both Secondary, nothing mounted).
///
/// LXC finds a running container by an abstract unix socket, which lives in a network
/// namespace: the container started in node a's namespace is queried and stopped there.
struct Storage {
    a: EmuNode,
    _b: EmuNode,
    mountpoint: PathBuf,
    netns: String,
}

impl Storage {
    fn new(nodes: &TwoNodes, dir: &TempDir) -> Self {
        let a = EmuNode::start("a", emu_config(&nodes.a, TwoNodes::A_V4, TwoNodes::B_V4));
        let b = EmuNode::start("b", emu_config(&nodes.b, TwoNodes::B_V4, TwoNodes::A_V4));
        up_to_date_pair(&a, &b, Duration::from_secs(5));
        let mountpoint = dir.path().join("data");
        std::fs::create_dir_all(&mountpoint).expect("create mountpoint");
        let storage = Self {
            a,
            _b: b,
            mountpoint,
            netns: nodes.a.name().to_owned(),
        };
        storage.a.adm_ok(&["primary", "r0"]);
        let device = storage.a.device();
        run("mkfs.ext4", &["-q", "-F", text(&device)]);
        run("mount", &[text(&device), text(&storage.mountpoint)]);
        let lxcpath = storage.mountpoint.join("lxc");
        std::fs::create_dir_all(&lxcpath).expect("create lxcpath");
        let base = storage.mountpoint.join("base.conf");
        std::fs::write(&base, "lxc.net.0.type = empty\n").expect("write base config");
        run(
            "lxc-create",
            &[
                "-q",
                "-t",
                "busybox",
                "-n",
                CONTAINER,
                "-P",
                text(&lxcpath),
                "-f",
                text(&base),
            ],
        );
        run("umount", &[text(&storage.mountpoint)]);
        storage.a.adm_ok(&["secondary", "r0"]);
        storage
    }

    fn lxcpath(&self) -> PathBuf {
        self.mountpoint.join("lxc")
    }

    /// `lxc ARGS -n CONTAINER -P LXCPATH` in node a's network namespace.
    fn lxc(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(program)
            .args(args)
            .args(["-n", CONTAINER, "-P", text(&self.lxcpath())])
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    fn container_state(&self) -> String {
        let out = self.lxc("lxc-info", &["-s", "-H"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Storage {
    /// Whatever a failed test left running: the container, the mount, the Primary.
    fn drop(&mut self) {
        if is_mounted(&self.mountpoint) {
            let _ = self.lxc("lxc-stop", &["-k"]);
            let _ = Command::new("umount").arg(&self.mountpoint).status();
        }
        let _ = self.a.drbdadm(&["secondary", "r0"]);
    }
}

/// A shell script at `dir/NAME` that appends its name and arguments to `log`, then runs
/// `real` with them (so the daemon's calls can be counted).
fn logging_wrapper(dir: &Path, name: &str, real: &Path, log: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn which(program: &str) -> PathBuf {
    PathBuf::from(run("sh", &["-c", &format!("command -v {program}")]).trim())
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `ha-daemon resources ACTION --json` in `ns`; returns the parsed output and the exit.
fn resources(ns: &NetNs, config: &Path, action: &str) -> (Value, Output) {
    let out = ns
        .command(ha_tests::daemon::binary())
        .args(["resources", "--json", "--config", text(config), action])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ha-daemon resources");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "resources {action}: not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (value, out)
}

/// `(resource, call, purpose, ok)` of every step.
fn steps(timeline: &Value) -> Vec<(String, String, String, bool)> {
    timeline["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            (
                step["resource"].as_str().unwrap_or_default().to_owned(),
                step["call"].as_str().unwrap_or_default().to_owned(),
                step["purpose"].as_str().unwrap_or_default().to_owned(),
                step["error"].is_null(),
            )
        })
        .collect()
}

fn print_timeline(what: &str, timeline: &Value) {
    println!("{what}: {}", timeline["outcome"]);
    for step in timeline["steps"].as_array().into_iter().flatten() {
        println!(
            "  +{:>8.3} ms  {:<5} {:<6} {:<8} {:>9.3} ms  {}",
            step["offset_ms"].as_f64().unwrap_or_default(),
            step["resource"].as_str().unwrap_or_default(),
            step["call"].as_str().unwrap_or_default(),
            step["purpose"].as_str().unwrap_or_default(),
            step["duration_ms"].as_f64().unwrap_or_default(),
            step["error"].as_str().unwrap_or("ok"),
        );
    }
}

fn vip_present(ns: &NetNs) -> bool {
    ns.ip(&["-4", "addr", "show", "dev", TwoNodes::A_IF])
        .contains(&format!("{VIP}/24"))
}

#[test]
fn the_group_starts_in_order_is_adopted_by_a_new_daemon_and_stops_in_reverse() {
    if !ha_tests::require(
        "the_group_starts_in_order_is_adopted_by_a_new_daemon_and_stops_in_reverse",
        NEEDS,
    ) {
        return;
    }
    let nodes = TwoNodes::new();
    let dir = TempDir::new("group");
    let storage = Storage::new(&nodes, &dir);
    let log = dir.path().join("calls.log");
    let wrap = |name: &str, real: &Path| logging_wrapper(dir.path(), name, real, &log);
    let (config, _) = write_configs(&dir, 1, 5, None);
    let mut toml = std::fs::read_to_string(&config).expect("read config");
    let _ = write!(
        toml,
        "\n[group]\nmonitor_interval_ms = 200\n\n\
         [[resource]]\nname = \"data\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"\n\
         drbdadm = \"{}\"\ndrbdsetup = \"{}\"\n\n\
         [[resource]]\nname = \"fs\"\nagent = \"mount\"\ndevice = \"{}\"\nmountpoint = \"{}\"\n\
         fstype = \"ext4\"\noptions = [\"noatime\"]\n\n\
         [[resource]]\nname = \"{CONTAINER}\"\nagent = \"lxc\"\ncontainer = \"{CONTAINER}\"\n\
         lxcpath = \"{}\"\nlxc_start = \"{}\"\nlxc_stop = \"{}\"\n\n\
         [[resource]]\nname = \"ip\"\nagent = \"vip\"\ninterface = \"{}\"\naddress = \"{VIP}/24\"\n",
        wrap("drbdadm", &storage.a.drbdadm_path()).display(),
        storage.a.drbdsetup_path().display(),
        storage.a.device().display(),
        storage.mountpoint.display(),
        storage.lxcpath().display(),
        wrap("lxc-start", &which("lxc-start")).display(),
        wrap("lxc-stop", &which("lxc-stop")).display(),
        TwoNodes::A_IF,
    );
    std::fs::write(&config, toml).expect("write config");

    let (survey, out) = resources(&nodes.a, &config, "status");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(survey["state"], "stopped", "{survey}");

    let (timeline, out) = resources(&nodes.a, &config, "start");
    print_timeline("takeover", &timeline);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(timeline["outcome"], "Started");
    let order: Vec<(String, String)> = steps(&timeline)
        .into_iter()
        .map(|(resource, call, _, ok)| {
            assert!(ok, "{resource} {call} failed: {timeline}");
            (resource, call)
        })
        .collect();
    let start = |name: &str| (name.to_owned(), "start".to_owned());
    assert_eq!(
        order,
        [start("data"), start("fs"), start(CONTAINER), start("ip")]
    );
    assert_eq!(
        storage.a.adm_ok(&["role", "r0"]).trim(),
        "Primary/Secondary"
    );
    assert!(is_mounted(&storage.mountpoint));
    assert_eq!(storage.container_state(), "RUNNING");
    assert!(vip_present(&nodes.a));

    // A daemon starting while the group runs adopts it: it monitors, it starts nothing.
    std::fs::remove_file(&log).expect("clear the call log");
    let mut daemon = Daemon::start(&nodes.a, &config);
    let survey = daemon
        .wait_for(Duration::from_secs(10), |line| {
            line.get("resources").is_some()
        })
        .expect("the daemon reports its survey");
    assert_eq!(survey["resources"]["state"], "running", "{survey}");
    // Several monitoring rounds (every 200 ms) while the group keeps running.
    let later = daemon.collect_for(Duration::from_secs(2));
    assert!(
        later.iter().all(|line| line.get("type").is_none()),
        "the supervisor acted on a healthy group: {later:?}"
    );
    drop(daemon);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let actions: Vec<&str> = calls
        .lines()
        .filter(|call| !call.starts_with("drbdadm --version"))
        .collect();
    assert!(
        actions.is_empty(),
        "the adopting daemon ran actions: {actions:?}"
    );
    println!(
        "adoption: survey running, read-only calls only: {:?}",
        calls.lines().collect::<Vec<_>>()
    );
    assert_eq!(
        storage.container_state(),
        "RUNNING",
        "a daemon exit stopped the group"
    );

    let (timeline, out) = resources(&nodes.a, &config, "stop");
    print_timeline("release", &timeline);
    assert!(out.status.success(), "{out:?}");
    let order: Vec<String> = steps(&timeline).into_iter().map(|s| s.0).collect();
    assert_eq!(order, ["ip", CONTAINER, "fs", "data"]);
    assert_eq!(timeline["outcome"], "Stopped");
    assert!(!vip_present(&nodes.a));
    assert!(!is_mounted(&storage.mountpoint));
    assert_eq!(
        storage.a.adm_ok(&["role", "r0"]).trim(),
        "Secondary/Secondary"
    );
    // The container's lxcpath is unmounted with its filesystem: "stopped", not failed.
    let (survey, out) = resources(&nodes.a, &config, "status");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(survey["state"], "stopped", "{survey}");
}

#[test]
fn a_failed_third_start_rolls_back_the_second_and_first_in_reverse() {
    if !ha_tests::require(
        "a_failed_third_start_rolls_back_the_second_and_first_in_reverse",
        NEEDS,
    ) {
        return;
    }
    let nodes = TwoNodes::new();
    let dir = TempDir::new("rollback");
    let storage = Storage::new(&nodes, &dir);
    let (config, _) = write_configs(&dir, 1, 5, None);
    let mut toml = std::fs::read_to_string(&config).expect("read config");
    let _ = write!(
        toml,
        "\n[[resource]]\nname = \"data\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"\n\
         drbdadm = \"{}\"\ndrbdsetup = \"{}\"\n\n\
         [[resource]]\nname = \"fs\"\nagent = \"mount\"\ndevice = \"{}\"\nmountpoint = \"{}\"\n\
         fstype = \"ext4\"\n\n\
         [[resource]]\nname = \"app\"\nagent = \"exec\"\n\
         start = [\"sh\", \"-c\", \"echo no license >&2; exit 1\"]\n\
         stop = [\"true\"]\nmonitor = [\"sh\", \"-c\", \"exit 7\"]\n\n\
         [[resource]]\nname = \"ip\"\nagent = \"vip\"\ninterface = \"{}\"\naddress = \"{VIP}/24\"\n",
        storage.a.drbdadm_path().display(),
        storage.a.drbdsetup_path().display(),
        storage.a.device().display(),
        storage.mountpoint.display(),
        TwoNodes::A_IF,
    );
    std::fs::write(&config, toml).expect("write config");

    let (timeline, out) = resources(&nodes.a, &config, "start");
    print_timeline("takeover with a failing third member", &timeline);
    assert!(!out.status.success(), "a failed start must exit non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("StartFailed"), "{stderr}");
    let steps: Vec<(String, String, String, bool)> = steps(&timeline);
    let step = |resource: &str, call: &str, purpose: &str, ok: bool| {
        (resource.to_owned(), call.to_owned(), purpose.to_owned(), ok)
    };
    assert_eq!(
        steps,
        [
            step("data", "start", "start", true),
            step("fs", "start", "start", true),
            step("app", "start", "start", false),
            step("app", "stop", "rollback", true),
            step("fs", "stop", "rollback", true),
            step("data", "stop", "rollback", true),
        ]
    );
    let error = timeline["steps"][2]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no license"), "{error}");
    assert_eq!(
        timeline["outcome"].as_str(),
        Some("StartFailed { failed: 2, rollback_failed: None }")
    );
    assert!(!is_mounted(&storage.mountpoint));
    assert_eq!(
        storage.a.adm_ok(&["role", "r0"]).trim(),
        "Secondary/Secondary"
    );
    assert!(!vip_present(&nodes.a), "the fourth member must never start");
}
