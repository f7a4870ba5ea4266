//! `cargo xtask bench`: how fast two real daemons (`ha-daemon run`, release build) detect
//! a lost peer, and what a daemon costs, at heartbeat intervals of 1, 5 and 10 ms.
//!
//! For each interval: two namespaces joined by two veth links, a daemon in each, both
//! seeing the other alive. First A's daemon is sampled over a quiet window (CPU time from
//! `/proc/PID/stat`, RSS from `/proc/PID/status`); that window is also clean history for
//! the detector. Then, `HA_BENCH_CUTS` times (default 50): both of B's link interfaces
//! are set down by one `ip -n B -batch -` call, A's `peer_lost` line is awaited, the links
//! are restored, A's `peer_alive` is awaited, and the links stay clean for a warm-up so
//! the adaptive dead time comes back down before the next cut (see [`warm_up`]).
//!
//! The cut takes effect somewhere inside the `ip` call, so each sample has two latencies:
//! from just before the call started (an upper bound) and from just after it returned (a
//! lower bound). Both ends are CLOCK_MONOTONIC: the bench's readings and the daemon's
//! `monotonic_ns` stamp on the `peer_lost` line. Every wait has a timeout; a sample that
//! times out is counted as missing and the run goes on. Nothing here passes or fails:
//! the tables state whether the goals are met.

use std::{
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use ha_daemon::io::clock::monotonic_ns;
use ha_tests::{
    Need,
    daemon::{Daemon, TempDir, event_type},
    netns::NetNs,
    topology::TwoNodes,
};
use nix::unistd::{Pid, SysconfVar, sysconf};
use serde_json::Value;

/// Heartbeat intervals measured, in ms.
const INTERVALS_MS: [u64; 3] = [1, 5, 10];
/// The daemon's default interval, where the CPU goal applies.
const DEFAULT_INTERVAL_MS: u64 = 5;
/// Links between the nodes; every cut cuts all of them.
const LINKS: usize = 2;
/// Environment variable with the number of cuts per interval.
const CUTS_VAR: &str = "HA_BENCH_CUTS";
const DEFAULT_CUTS: usize = 50;
/// Window over which A's CPU time is sampled.
const CPU_WINDOW: Duration = Duration::from_secs(10);
/// Goal: CPU time of one daemon at the default interval, in % of one core.
const CPU_GOAL_PERCENT: f64 = 1.0;
/// Longest wait for a daemon's `started` line.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for `peer_alive`, at start and after a restore. A link that flapped
/// repeatedly is dampened and needs up to 2 s of good intervals to come up.
const ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after `peer_lost` further lines (the links' `link_down`) are collected.
const SETTLE: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    if !ha_tests::require(
        "bench-detection",
        &[Need::Root, Need::EbpfObject, Need::Program("ip")],
    ) {
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-detection: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let cuts = match std::env::var(CUTS_VAR) {
        Ok(text) => text
            .parse::<usize>()
            .ok()
            .filter(|cuts| *cuts > 0)
            .ok_or_else(|| format!("{CUTS_VAR}={text}: expected a positive number"))?,
        Err(_) => DEFAULT_CUTS,
    };
    // target/<profile>/bench-detection -> target/<profile>/ha-daemon (built by xtask).
    let binary = std::env::current_exe()
        .map_err(|e| format!("cannot locate this executable: {e}"))?
        .with_file_name("ha-daemon");
    if !binary.exists() {
        return Err(format!(
            "{} is not built (run `cargo build --release --package ha-daemon --bins`)",
            binary.display()
        ));
    }
    let ticks_per_second = match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        other => return Err(format!("sysconf(CLK_TCK): {other:?}")),
    };

    let mut results = Vec::new();
    for interval_ms in INTERVALS_MS {
        results.push(measure(&binary, interval_ms, cuts, ticks_per_second)?);
    }
    report(&binary, cuts, &results);
    Ok(())
}

/// Clean time after `peer_alive` before the next cut, so the dead time is back at (or
/// near) `dead_after_min`. A cut adds about `dead_after_min / interval` lost packets to
/// the loss estimate; the fast average forgets them within a few hundred packets, the
/// slow one (1024 packets) within a few of its windows, so the wait is counted in
/// packets, with a floor for the slow end. Chosen by watching `dead_after` in the
/// `link_down` events (the report prints what was in force).
fn warm_up(interval_ms: u64) -> Duration {
    if let Ok(w) = std::env::var("HA_BENCH_WARMUP_MS") {
        return Duration::from_millis(w.parse().expect("warmup"));
    }
    Duration::from_millis(match interval_ms {
        0..=1 => 3_000,
        2..=5 => 3_000,
        _ => 6_000,
    })
}

/// What one interval's run measured.
struct IntervalResult {
    interval_ms: u64,
    cuts: usize,
    samples: Vec<Sample>,
    /// Cuts after which no `peer_lost` came within the timeout.
    missing: usize,
    /// Restores after which no `peer_alive` came within the timeout.
    not_alive: usize,
    /// `peer_lost` lines while the links were up.
    false_alarms: usize,
    cost: Cost,
}

/// One cut.
struct Sample {
    /// `peer_lost` minus the reading just before the `ip` call started, ns.
    upper_ns: u64,
    /// `peer_lost` minus the reading just after the `ip` call returned, ns.
    lower_ns: u64,
    /// How long the `ip` call took, ns.
    ip_ns: u64,
    /// The longest dead time in force in the links' `link_down` events, ms.
    dead_after_ms: Option<f64>,
}

/// A's daemon over [`CPU_WINDOW`].
struct Cost {
    cpu_percent: f64,
    cpu_ticks: u64,
    rss_kib: u64,
}

fn measure(
    binary: &Path,
    interval_ms: u64,
    cuts: usize,
    ticks_per_second: f64,
) -> Result<IntervalResult, String> {
    eprintln!("bench-detection: {interval_ms} ms: starting two daemons, {LINKS} links");
    let nodes = TwoNodes::with_links(LINKS);
    let dir = TempDir::new(&format!("bench-detect-{interval_ms}"));
    let (a_config, b_config) = write_configs(&dir, interval_ms);
    let mut a = Daemon::start_binary(binary, &nodes.a, &a_config);
    let mut b = Daemon::start_binary(binary, &nodes.b, &b_config);
    for (name, daemon) in [("A", &mut a), ("B", &mut b)] {
        let started = daemon
            .wait_for(START_TIMEOUT, |line| line.get("started").is_some())
            .ok_or_else(|| format!("{interval_ms} ms: daemon {name} did not start"))?;
        if started["started"]["mode"] != "ebpf" {
            return Err(format!(
                "{interval_ms} ms: daemon {name} runs without kernel evidence: {started}"
            ));
        }
    }
    for (name, daemon) in [("A", &mut a), ("B", &mut b)] {
        daemon
            .wait_for(ALIVE_TIMEOUT, is("peer_alive"))
            .ok_or_else(|| format!("{interval_ms} ms: daemon {name} never saw its peer alive"))?;
    }

    eprintln!(
        "bench-detection: {interval_ms} ms: sampling A's CPU time over {} s",
        CPU_WINDOW.as_secs()
    );
    let cost = sample_cost(a.pid(), ticks_per_second)?;
    let mut false_alarms = count_lost(&a.collect_for(Duration::ZERO));
    b.collect_for(Duration::ZERO);

    let mut result = IntervalResult {
        interval_ms,
        cuts,
        samples: Vec::new(),
        missing: 0,
        not_alive: 0,
        false_alarms: 0,
        cost,
    };
    let lost_timeout = Duration::from_millis(50 * interval_ms) + Duration::from_secs(2);
    for cut in 1..=cuts {
        false_alarms += count_lost(&a.collect_for(Duration::ZERO));
        b.collect_for(Duration::ZERO);
        let first_new = a.seen().len();

        let upper_from = monotonic_ns();
        set_links(&nodes.b, "down")?;
        let lower_from = monotonic_ns();
        match a.wait_for(lost_timeout, is("peer_lost")) {
            Some(lost) => {
                a.collect_for(SETTLE);
                let at = at_ns(&lost);
                let dead_after_ms = a.seen()[first_new..]
                    .iter()
                    .filter(|line| is("link_down")(line) && at_ns(line) >= upper_from)
                    .filter_map(dead_after_ms)
                    .reduce(f64::max);
                result.samples.push(Sample {
                    upper_ns: at.saturating_sub(upper_from),
                    lower_ns: at.saturating_sub(lower_from),
                    ip_ns: lower_from - upper_from,
                    dead_after_ms,
                });
            }
            None => {
                eprintln!("bench-detection: {interval_ms} ms: cut {cut}: no peer_lost");
                result.missing += 1;
            }
        }

        let restored = monotonic_ns();
        set_links(&nodes.b, "up")?;
        let alive = a.wait_for(ALIVE_TIMEOUT, |line| {
            is("peer_alive")(line) && at_ns(line) >= restored
        });
        if alive.is_none() {
            eprintln!("bench-detection: {interval_ms} ms: cut {cut}: no peer_alive after restore");
            result.not_alive += 1;
        }
        // Clean history, read as it comes (a peer_lost in it is a false alarm).
        let clean = a.collect_for(warm_up(interval_ms));
        false_alarms += count_lost(&clean);
        if cut % 10 == 0 || cut == cuts {
            eprintln!("bench-detection: {interval_ms} ms: {cut}/{cuts} cuts");
        }
    }
    result.false_alarms = false_alarms;
    if let Ok(dump) = std::env::var("HA_BENCH_DUMP") {
        let text: String = a.seen().iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(format!("{dump}-{interval_ms}.jsonl"), text).expect("dump");
    }
    Ok(result)
}

/// Writes the shared key and both nodes' configurations; returns (A's, B's) paths.
fn write_configs(dir: &TempDir, interval_ms: u64) -> (PathBuf, PathBuf) {
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, b"bench-cluster-key-0123456789abcdef").expect("write key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    let mut paths = Vec::new();
    for (name, node, peer) in [("a", 1, 2), ("b", 2, 1)] {
        let mut toml = format!(
            "cluster_id = 7\nnode_id = {node}\npeer_node_id = {peer}\nkey_file = \"{}\"\n\n\
             [heartbeat]\ninterval_ms = {interval_ms}\n\n[realtime]\nenabled = true\n",
            key.display()
        );
        for index in 0..LINKS {
            let link = TwoNodes::link(index);
            let (interface, local, remote) = if name == "a" {
                (link.a_if, link.a_v4, link.b_v4)
            } else {
                (link.b_if, link.b_v4, link.a_v4)
            };
            toml.push_str(&format!(
                "\n[[link]]\nname = \"link{index}\"\ninterface = \"{interface}\"\n\
                 local = \"{local}\"\npeer = \"{remote}\"\n"
            ));
        }
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml).expect("write config");
        paths.push(path);
    }
    (paths[0].clone(), paths[1].clone())
}

/// Sets all of B's link interfaces `state` ("up" or "down") with one `ip -batch` call.
fn set_links(b: &NetNs, state: &str) -> Result<(), String> {
    let batch: String = (0..LINKS)
        .map(|index| format!("link set {} {state}\n", TwoNodes::link(index).b_if))
        .collect();
    let mut child = Command::new("ip")
        .args(["-n", b.name(), "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning ip: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(batch.as_bytes())
        .map_err(|e| format!("writing to ip -batch: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip -n {} -batch -` ({batch:?}) failed ({}): {}",
            b.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// CPU time (utime + stime) of `pid` over [`CPU_WINDOW`] in % of one core, and its RSS
/// at the end.
fn sample_cost(pid: Pid, ticks_per_second: f64) -> Result<Cost, String> {
    let (start_ticks, start) = (cpu_ticks(pid)?, Instant::now());
    std::thread::sleep(CPU_WINDOW);
    let (end_ticks, elapsed) = (cpu_ticks(pid)?, start.elapsed());
    let ticks = end_ticks.saturating_sub(start_ticks);
    Ok(Cost {
        cpu_percent: ticks as f64 / ticks_per_second / elapsed.as_secs_f64() * 100.0,
        cpu_ticks: ticks,
        rss_kib: rss_kib(pid)?,
    })
}

/// utime + stime of the whole process, in clock ticks (`/proc/PID/stat` fields 14, 15).
fn cpu_ticks(pid: Pid) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the
    // last ')', after which field 3 (state) comes first.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |number: usize| -> Result<u64, String> {
        fields
            .get(number - 3)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("{path}: no field {number} in `{stat}`"))
    };
    Ok(field(14)? + field(15)?)
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: Pid) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path}: no VmRSS"))
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |line| event_type(line) == Some(kind)
}

fn count_lost(lines: &[Value]) -> usize {
    lines.iter().filter(|line| is("peer_lost")(line)).count()
}

fn at_ns(line: &Value) -> u64 {
    line["monotonic_ns"].as_u64().unwrap_or(0)
}

/// The dead time in a `link_down` line's reason (serde's `Duration`: secs and nanos).
fn dead_after_ms(line: &Value) -> Option<f64> {
    let dead_after = &line["event"]["reason"]["dead_after"];
    Some(dead_after["secs"].as_f64()? * 1e3 + dead_after["nanos"].as_f64()? / 1e6)
}

fn report(binary: &Path, cuts: usize, results: &[IntervalResult]) {
    println!(
        "Failure detection, two `ha-daemon run` ({}) in two namespaces joined by {LINKS} \
         veth links; per interval {cuts} cuts of both links (one `ip -n B -batch -` call \
         setting B's interfaces down), restored after each",
        binary.display()
    );
    println!();
    println!("Detection latency, link cut to A's `peer_lost` line (ms):");
    println!();
    println!("| interval | measured from | min | median | p99 | max | samples | missing |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for result in results {
        let interval = result.interval_ms;
        for (from, values) in [
            (
                "before the `ip` call (upper bound)",
                result.samples.iter().map(|s| ms(s.upper_ns)).collect(),
            ),
            (
                "after the `ip` call (lower bound)",
                result.samples.iter().map(|s| ms(s.lower_ns)).collect(),
            ),
        ] {
            let stats = Stats::of(values);
            println!(
                "| {interval} ms | {from} | {} | {} | {} | {} | {} | {} |",
                one(stats.min),
                one(stats.median),
                one(stats.p99),
                one(stats.max),
                result.samples.len(),
                result.missing,
            );
        }
    }
    println!();
    println!(
        "Dead time in force (the longest `reason.dead_after` of the cut's `link_down` \
         events, ms), warm-up after each `peer_alive`, and the `ip` call:"
    );
    println!();
    println!(
        "| interval | dead_after_min | dead time min | median | max | at minimum | warm-up s \
         | `ip` call median ms | no alive after restore | false peer_lost |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for result in results {
        let floor = dead_after_min_ms(result.interval_ms);
        let dead: Vec<f64> = result
            .samples
            .iter()
            .filter_map(|s| s.dead_after_ms)
            .collect();
        let at_floor = dead.iter().filter(|d| **d <= floor + 1e-6).count();
        let known = dead.len();
        let stats = Stats::of(dead);
        let ip = Stats::of(result.samples.iter().map(|s| ms(s.ip_ns)).collect());
        println!(
            "| {} ms | {} | {} | {} | {} | {at_floor}/{known} | {} | {} | {} | {} |",
            result.interval_ms,
            one(Some(floor)),
            one(stats.min),
            one(stats.median),
            one(stats.max),
            warm_up(result.interval_ms).as_secs_f64(),
            one(ip.median),
            result.not_alive,
            result.false_alarms,
        );
    }
    println!();
    println!("Goal: median detection < 3 x interval + 2 ms:");
    println!();
    println!("| interval | goal ms | median lower..upper ms | verdict |");
    println!("|---:|---:|---:|---|");
    for result in results {
        let goal = dead_after_min_ms(result.interval_ms);
        let lower = Stats::of(result.samples.iter().map(|s| ms(s.lower_ns)).collect()).median;
        let upper = Stats::of(result.samples.iter().map(|s| ms(s.upper_ns)).collect()).median;
        let verdict = match (lower, upper) {
            (_, Some(upper)) if upper < goal => "met",
            (Some(lower), _) if lower >= goal => "not met",
            (Some(_), Some(_)) => "undecided (the goal lies between the bounds)",
            _ => "no samples",
        };
        println!(
            "| {} ms | {} | {}..{} | {verdict} |",
            result.interval_ms,
            one(Some(goal)),
            one(lower),
            one(upper),
        );
    }
    println!();
    println!(
        "Daemon cost: A's `ha-daemon run`, both daemons healthy, CPU time (utime + stime, \
         /proc/PID/stat) over {} s, RSS (VmRSS) at the end; goal: CPU < {CPU_GOAL_PERCENT}% \
         of one core at the default {DEFAULT_INTERVAL_MS} ms interval:",
        CPU_WINDOW.as_secs()
    );
    println!();
    println!("| interval | CPU % of one core | clock ticks | RSS MiB | goal |");
    println!("|---:|---:|---:|---:|---|");
    for result in results {
        let Cost {
            cpu_percent,
            cpu_ticks,
            rss_kib,
        } = result.cost;
        let goal = if result.interval_ms != DEFAULT_INTERVAL_MS {
            "none at this interval"
        } else if cpu_percent < CPU_GOAL_PERCENT {
            "met"
        } else {
            "not met"
        };
        println!(
            "| {} ms | {cpu_percent:.2} | {cpu_ticks} | {:.1} | {goal} |",
            result.interval_ms,
            rss_kib as f64 / 1024.0,
        );
    }
    let missing: usize = results.iter().map(|r| r.missing).sum();
    let total: usize = results.iter().map(|r| r.cuts).sum();
    println!();
    println!("missing samples (no `peer_lost` within the timeout): {missing} of {total} cuts");
}

/// The detector's default `dead_after_min` for `interval_ms`: 3 intervals + 2 ms.
fn dead_after_min_ms(interval_ms: u64) -> f64 {
    (3 * interval_ms + 2) as f64
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn one(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"))
}

/// Order statistics; `None` without values. p99 is the nearest rank.
struct Stats {
    min: Option<f64>,
    median: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

impl Stats {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = (n > 0).then(|| (values[(n - 1) / 2] + values[n / 2]) / 2.0);
        let p99 = (n > 0).then(|| values[(n * 99).div_ceil(100) - 1]);
        Self {
            min: values.first().copied(),
            median,
            p99,
            max: values.last().copied(),
        }
    }
}
