//! The control socket against running daemons in namespaces: `ha-daemon status` (JSON
//! schema and table), `ha-daemon events` (the live stream sees a link cut), bad requests
//! and a missing daemon get clear errors, a second daemon for the same node is refused;
//! bad `[cluster]` tables are refused by `check-config` and `run` alike (file:line:col).

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use ha_tests::{
    Need,
    cluster::write_configs,
    daemon::{Daemon, TempDir, binary, event_type},
    topology::TwoNodes,
};
use serde_json::Value;

fn needs(test: &str) -> bool {
    ha_tests::require(
        test,
        &[Need::Root, Need::DaemonBinary, Need::Program("nsenter")],
    )
}

fn cli(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ha-daemon")
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Polls `ha-daemon status --json` until the peer is alive on every link (bounded).
fn status_when_alive(config: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cli(&["status", "--json", "--config", text(config)]);
        if !out.status.success() && Instant::now() < deadline {
            // The daemon may not have bound its socket yet.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert!(out.status.success(), "status failed: {out:?}");
        let status: Value = serde_json::from_slice(&out.stdout).expect("status is JSON");
        let links_up = status["detection"]["links"]
            .as_array()
            .is_some_and(|links| links.iter().all(|link| link["up"] == true));
        if status["detection"]["peer"] == "alive" && links_up {
            return status;
        }
        assert!(Instant::now() < deadline, "peer never alive: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_and_events_answer_on_the_control_socket() {
    if !needs("status_and_events_answer_on_the_control_socket") {
        return;
    }
    let nodes = TwoNodes::with_links(2);
    let dir = TempDir::new("control");
    let (a_config, b_config) = write_configs(&dir, 2, 5, None);
    let _a = Daemon::start(&nodes.a, &a_config);
    let _b = Daemon::start(&nodes.b, &b_config);

    let status = status_when_alive(&a_config);
    assert_eq!(status["cluster_id"], 7);
    assert_eq!(status["node_id"], 1);
    assert_eq!(status["peer_node_id"], 2);
    assert!(status["evidence"].is_string(), "{status}");
    assert!(status["uptime_s"].as_f64().is_some_and(|s| s >= 0.0));
    assert!(
        status["resources"].is_null(),
        "no resources configured: {status}"
    );
    let links = status["detection"]["links"].as_array().expect("links");
    assert_eq!(links.len(), 2);
    for (index, link) in links.iter().enumerate() {
        assert_eq!(link["name"], format!("link{index}"));
        assert_eq!(link["interface"], TwoNodes::link(index).a_if);
        assert_eq!(link["carrier"], true);
        assert!(link["down_reason"].is_null());
        let dead = link["dead_after_ms"].as_f64().expect("dead_after_ms");
        assert!(
            (17.0..=250.0).contains(&dead),
            "dead time {dead} outside its bounds"
        );
        let age = link["evidence_age_ms"].as_f64().expect("evidence_age_ms");
        assert!(age < 1000.0, "evidence {age} ms old on a live link");
        assert!(link["evidence_kind"].is_string());
        assert!(link["jitter_ms"].as_f64().is_some());
        assert!(link["rise_required"].as_u64().is_some_and(|rise| rise >= 1));
    }

    let table = cli(&["status", "--config", text(&a_config)]);
    assert!(table.status.success(), "{table:?}");
    let table = String::from_utf8_lossy(&table.stdout);
    println!("{table}");
    assert!(table.contains("peer alive"), "{table}");
    assert!(
        table.contains("link0") && table.contains("link1"),
        "{table}"
    );

    // The events stream sees a cut of link 1.
    let mut events = Command::new(binary())
        .args(["events", "--config", text(&a_config)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start ha-daemon events");
    let stdout = events.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    nodes
        .a
        .ip(&["link", "set", &TwoNodes::link(1).a_if, "down"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    let down = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            break None;
        };
        let value: Value = serde_json::from_str(&line).expect("events are JSON lines");
        if event_type(&value) == Some("link_down") {
            break Some(value);
        }
        seen.push(value);
    };
    let _ = events.kill();
    let _ = events.wait();
    let down = down.unwrap_or_else(|| panic!("no link_down in the events stream: {seen:?}"));
    assert!(down["monotonic_ns"].as_u64().is_some(), "{down}");
    let status: Value =
        serde_json::from_slice(&cli(&["status", "--json", "--config", text(&a_config)]).stdout)
            .expect("status is JSON");
    assert_eq!(status["detection"]["links"][1]["up"], false, "{status}");
    assert_eq!(
        status["detection"]["peer"], "alive",
        "one link left: {status}"
    );
}

#[test]
fn bad_requests_a_missing_daemon_and_a_second_daemon_get_clear_errors() {
    if !needs("bad_requests_a_missing_daemon_and_a_second_daemon_get_clear_errors") {
        return;
    }
    let nodes = TwoNodes::with_links(1);
    let dir = TempDir::new("control-errors");
    let (a_config, _) = write_configs(&dir, 1, 5, None);
    let socket = dir.path().join("a.sock");

    let missing = cli(&["status", "--config", text(&a_config)]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("cannot connect to") && stderr.contains("a.sock"),
        "{stderr}"
    );

    let mut daemon = Daemon::start(&nodes.a, &a_config);
    daemon
        .wait_for(Duration::from_secs(10), |line| {
            line.get("started").is_some()
        })
        .expect("the daemon starts");
    let mode = std::fs::metadata(&socket).expect("socket exists");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600,
        "root only without control_group"
    );

    for (request, wanted) in [
        ("{\"command\":\"explode\"}\n", "explode"),
        ("not json\n", "bad request"),
        ("{\"command\":\"status\"}", "one line"),
    ] {
        let mut stream = UnixStream::connect(&socket).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        if !request.ends_with('\n') {
            stream
                .shutdown(std::net::Shutdown::Write)
                .expect("half-close");
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        let answer: Value = serde_json::from_str(answer.trim()).expect("JSON answer");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(wanted), "{request:?}: {answer}");
    }

    // A second daemon for the same node refuses to start, naming the socket.
    let second = nodes
        .a
        .command(binary())
        .args(["run", "--config", text(&a_config)])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run a second daemon");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another ha-daemon is running"), "{stderr}");
    let status = cli(&["status", "--json", "--config", text(&a_config)]);
    assert!(
        status.status.success(),
        "the first daemon still answers: {status:?}"
    );
    drop(daemon);
    assert!(!socket.exists(), "a clean stop removes the socket");
}

/// `ha-daemon SUBCOMMAND --config PATH`: (exit success, stderr).
fn refusal(subcommand: &str, config: &Path) -> (bool, String) {
    let out = cli(&[subcommand, "--config", text(config)]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_cluster_tables_are_refused_by_check_config_and_run_with_the_same_message() {
    if !ha_tests::require(
        "bad_cluster_tables_are_refused_by_check_config_and_run_with_the_same_message",
        &[Need::DaemonBinary],
    ) {
        return;
    }
    let dir = TempDir::new("bad-cluster");
    let node = "cluster_id = 7\nnode_id = 1\npeer_node_id = 2\nkey_file = \"/nonexistent.key\"\n\n\
                [[link]]\nname = \"b2b\"\ninterface = \"hat-a0\"\n\
                local = \"192.0.2.1\"\npeer = \"192.0.2.2\"\n\n[cluster]\n";
    // The [cluster] table starts on line 12; its first key is on line 13.
    let cases = [
        ("", "12:1: cluster.witness: required (1 to 4 addresses)"),
        (
            "witness = [\"192.0.2.254\", \"gateway\"]",
            "13:27: cluster.witness[1] = \"gateway\": must be an IPv4 or IPv6 address",
        ),
        (
            "witness = [\"192.0.2.254\"]\npreferred_node = 3",
            "14:18: cluster.preferred_node = 3: must be node_id (1) or peer_node_id (2)",
        ),
        (
            "witness = [\"192.0.2.254\"]\nstartup_wait_ms = -5",
            "14:19: cluster.startup_wait_ms = -5: must be 0..=86400000",
        ),
        (
            "witness = [\"192.0.2.254\"]\nepoch_file = \"var/epoch\"",
            "14:14: cluster.epoch_file = \"var/epoch\": must be an absolute path",
        ),
        (
            "witness = [\"192.0.2.254\"]\nfence = [\"bin/fence\", \"node2\"]",
            "14:9: cluster.fence = [\"bin/fence\", \"node2\"]: must start with an absolute path",
        ),
        (
            "witness = [\"192.0.2.254\"]\nwait_for_all = true",
            "14:1: cluster.wait_for_all: unknown field `wait_for_all`",
        ),
    ];
    for (index, (keys, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{index}.toml"));
        std::fs::write(&path, format!("{node}{keys}\n")).expect("write config");
        let expected = format!("{}:{expected}", path.display());
        let (checked, check_err) = refusal("check-config", &path);
        assert!(!checked, "check-config accepted {keys:?}");
        let line = check_err
            .lines()
            .find(|line| line.contains(&expected))
            .unwrap_or_else(|| panic!("{keys:?}: wanted {expected:?} in:\n{check_err}"));
        let (ran, run_err) = refusal("run", &path);
        assert!(!ran, "run accepted {keys:?}");
        assert!(
            run_err.lines().any(|run_line| run_line == line),
            "{keys:?}: run's error differs from check-config's {line:?}:\n{run_err}"
        );
    }
    println!(
        "{} bad [cluster] tables refused alike by check-config and run",
        cases.len()
    );
}
