//! `cargo xtask bench`: how fast two real daemons (`ha-daemon run`, release build) detect
//! a lost peer, and what a daemon costs, at heartbeat intervals of 1, 5 and 10 ms.
//!
//! For each interval: two namespaces joined by two veth links, a daemon in each, both
//! seeing the other alive. First A's daemon is sampled over a quiet window (CPU time from
//! `/proc/PID/stat`, RSS from `/proc/PID/status`); that window is also clean history for
//! the detector. Then, `HA_BENCH_CUTS` times (default 50): both of B's link interfaces
//! are set down by one `ip -n B -batch -` call, A's `peer_lost` line is awaited, the links
//! are restored, A's `peer_alive` is awaited, and the links stay clean for a warm-up (see
//! [`warm_up`]) before the next cut.
//!
//! The cut takes effect somewhere inside the `ip` call, so each sample has two latencies:
//! from just before the commands were written to `ip` (an upper bound) and from just after
//! `ip` exited (a lower bound). `ip` is started ahead and waits on its stdin, so its start
//! is outside the bracket. Both ends are CLOCK_MONOTONIC: the bench's readings and the
//! daemon's `monotonic_ns` stamp on the `peer_lost` line.
//!
//! Setting B's veth down also drops the carrier of A's end, which the daemon sees through
//! netlink: a link can go down by carrier loss at once instead of by silence after its
//! dead time. The tables say which decided each cut (the kernel delivers the second
//! carrier change of a burst up to a second late, so usually one link goes by silence).
//!
//! Every wait has a timeout; a sample that times out is counted as missing and the run
//! goes on. Nothing here passes or fails: the tables state whether the goals are met.

use std::{
    io::Write as _,
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use ha_daemon::io::clock::monotonic_ns;
use ha_tests::{
    Need, cluster,
    daemon::{self, Daemon, TempDir, event_type},
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
/// Reading what arrived: [`Daemon::collect_for`] with a zero span reads nothing.
const DRAIN: Duration = Duration::from_millis(1);
/// Time for a freshly started `ip -batch -` to reach the read of its stdin.
const IP_READY: Duration = Duration::from_millis(30);

fn main() -> ExitCode {
    if !ha_tests::require(
        "bench-detection",
        &[
            Need::Root,
            Need::EbpfObject,
            Need::DaemonBinary,
            Need::Program("ip"),
        ],
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
    let ticks_per_second = match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        other => return Err(format!("sysconf(CLK_TCK): {other:?}")),
    };

    let mut results = Vec::new();
    for interval_ms in INTERVALS_MS {
        results.push(measure(interval_ms, cuts, ticks_per_second)?);
    }
    report(cuts, &results);
    Ok(())
}

/// Clean time after `peer_alive` before the next cut.
///
/// A cut counts as about `dead_after / interval` lost packets in the detector's loss
/// estimate. Its fast average (64 packets) forgets them within a few hundred packets; its
/// slow one decays by `e` every 1024 packets (1 s at 1 ms, 10 s at 10 ms), which is what
/// keeps the dead time above `dead_after_min` after the first cut. Measured on the 2-vCPU
/// build VM (dead time in the `link_down` events, 8 cuts each): at 1 ms, 1 s of warm-up
/// left 5.8..8.7 ms (median 7.7), 3 s left 5.7..7.7 ms (median 6.7); at 5 ms, 1.5 s, 3 s
/// and 10 s all left 21.9..22.1 ms (4 intervals + 2 ms: the senders' timer jitter alone
/// keeps it there, even before the first cut); at 10 ms, 3 s and 8 s both left 42 ms
/// after the first cut (32 ms, the minimum, before it). Longer warm-ups buy nothing
/// measurable, so these are the shortest that do as well as the longest tried. The time
/// before `peer_alive` (up to 2 s once dampening has grown `rise`) is clean history too.
fn warm_up(interval_ms: u64) -> Duration {
    Duration::from_millis(if interval_ms <= 5 { 3_000 } else { 5_000 })
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
    /// Cuts that waited for the peer to be alive again first (after a false alarm).
    delayed: usize,
    /// `peer_lost` and `peer_daemon_down` lines while the links were up.
    false_alarms: usize,
    cost: Cost,
}

/// One cut.
struct Sample {
    /// `peer_lost` minus the reading just before the cut commands were written, ns.
    upper_ns: u64,
    /// `peer_lost` minus the reading just after `ip` exited, ns.
    lower_ns: u64,
    /// Between the two readings, ns.
    bracket_ns: u64,
    /// The longest dead time in force in the cut's `link_down` events (those that went
    /// down by silence), ms.
    dead_after_ms: Option<f64>,
    /// Links that went down by carrier loss rather than silence.
    carrier_downs: usize,
    /// Whether the last link went down by carrier loss (then the dead time did not
    /// decide the cut).
    last_by_carrier: bool,
}

/// A's daemon over [`CPU_WINDOW`].
struct Cost {
    cpu_percent: f64,
    cpu_ticks: u64,
    rss_kib: u64,
}

fn measure(interval_ms: u64, cuts: usize, ticks_per_second: f64) -> Result<IntervalResult, String> {
    eprintln!("bench-detection: {interval_ms} ms: starting two daemons, {LINKS} links");
    let nodes = TwoNodes::with_links(LINKS);
    let dir = TempDir::new(&format!("bench-detect-{interval_ms}"));
    let (a_config, b_config) = cluster::write_configs(&dir, LINKS, interval_ms, None);
    let mut a = Daemon::start(&nodes.a, &a_config);
    let mut b = Daemon::start(&nodes.b, &b_config);
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

    let healthy_from = monotonic_ns();
    eprintln!(
        "bench-detection: {interval_ms} ms: sampling A's CPU time over {} s",
        CPU_WINDOW.as_secs()
    );
    let cost = sample_cost(a.pid(), ticks_per_second)?;

    let mut result = IntervalResult {
        interval_ms,
        cuts,
        samples: Vec::new(),
        missing: 0,
        not_alive: 0,
        delayed: 0,
        false_alarms: 0,
        cost,
    };
    // From each cut until the peer is alive again: alarms outside these are false.
    let mut outages = Vec::new();
    let lost_timeout = Duration::from_millis(50 * interval_ms) + Duration::from_secs(2);
    for cut in 1..=cuts {
        // Lines that arrived meanwhile (read here so the channels stay short; the
        // timestamps, not the reading order, decide what belongs to this cut).
        a.collect_for(DRAIN);
        b.collect_for(DRAIN);
        // A false alarm during the warm-up leaves the peer lost (or its daemon down) until
        // it rises again; a cut then would produce no `peer_lost` to measure.
        if let Some(state) = peer_state(&a).filter(|state| *state != "peer_alive") {
            eprintln!("bench-detection: {interval_ms} ms: before cut {cut} the peer is {state}");
            result.delayed += 1;
            if a.wait_for(ALIVE_TIMEOUT, is("peer_alive")).is_some() {
                a.collect_for(warm_up(interval_ms));
            }
        }
        let first_new = a.seen().len();

        let (upper_from, lower_from) = set_links(&nodes.b, "down")?;
        let after_cut = |kind| move |line: &Value| is(kind)(line) && at_ns(line) >= upper_from;
        match a.wait_for(lost_timeout, after_cut("peer_lost")) {
            Some(lost) => {
                a.collect_for(SETTLE);
                let at = at_ns(&lost);
                let downs: Vec<&Value> = a.seen()[first_new..]
                    .iter()
                    .filter(|line| after_cut("link_down")(line) && at_ns(line) <= at)
                    .collect();
                let by_carrier = |line: &Value| line["event"]["reason"]["reason"] == "carrier_loss";
                result.samples.push(Sample {
                    upper_ns: at - upper_from,
                    lower_ns: at.saturating_sub(lower_from),
                    bracket_ns: lower_from - upper_from,
                    dead_after_ms: downs
                        .iter()
                        .filter_map(|line| dead_after_ms(line))
                        .reduce(f64::max),
                    carrier_downs: downs.iter().filter(|line| by_carrier(line)).count(),
                    last_by_carrier: downs.last().is_some_and(|line| by_carrier(line)),
                });
            }
            None => {
                eprintln!(
                    "bench-detection: {interval_ms} ms: cut {cut}: no peer_lost (the peer was {})",
                    peer_state_before(&a, upper_from).unwrap_or("not yet seen")
                );
                result.missing += 1;
            }
        }

        let (restored, _) = set_links(&nodes.b, "up")?;
        let alive = a.wait_for(ALIVE_TIMEOUT, |line| {
            is("peer_alive")(line) && at_ns(line) >= restored
        });
        outages.push(upper_from..=alive.as_ref().map_or_else(monotonic_ns, at_ns));
        if alive.is_none() {
            eprintln!("bench-detection: {interval_ms} ms: cut {cut}: no peer_alive after restore");
            result.not_alive += 1;
        }
        // Clean history for the detector before the next cut.
        a.collect_for(warm_up(interval_ms));
        if cut % 10 == 0 || cut == cuts {
            eprintln!("bench-detection: {interval_ms} ms: {cut}/{cuts} cuts");
        }
    }
    a.collect_for(DRAIN);
    result.false_alarms = a
        .seen()
        .iter()
        .filter(|line| is("peer_lost")(line) || is("peer_daemon_down")(line))
        .map(at_ns)
        .filter(|at| *at >= healthy_from && !outages.iter().any(|outage| outage.contains(at)))
        .count();
    Ok(result)
}

/// Sets all of B's link interfaces `state` ("up" or "down") with one `ip -n B -batch -`
/// call. `ip` is started first and given [`IP_READY`] to block on its stdin; returns the
/// CLOCK_MONOTONIC readings just before the commands are written and just after `ip`
/// exited, which bracket the change.
fn set_links(b: &NetNs, state: &str) -> Result<(u64, u64), String> {
    let batch: String = (0..LINKS)
        .map(|index| format!("link set {} {state}\n", TwoNodes::link(index).b_if))
        .collect();
    let mut child = Command::new("ip")
        .args(["-n", b.name(), "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning ip: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    std::thread::sleep(IP_READY);
    let before = monotonic_ns();
    let written = stdin.write_all(batch.as_bytes());
    // End of input: `ip` runs what it read and exits.
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ip: {e}"))?;
    let after = monotonic_ns();
    written.map_err(|e| format!("writing to ip -batch: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip -n {} -batch -` ({batch:?}) failed ({}): {}",
            b.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((before, after))
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

/// The peer's state as A's newest `peer_*` line says.
fn peer_state(daemon: &Daemon) -> Option<&'static str> {
    peer_state_before(daemon, u64::MAX)
}

/// The peer's state as A's newest `peer_*` line stamped before `before_ns` says.
fn peer_state_before(daemon: &Daemon, before_ns: u64) -> Option<&'static str> {
    daemon
        .seen()
        .iter()
        .rev()
        .filter(|line| at_ns(line) < before_ns)
        .find_map(|line| {
            ["peer_alive", "peer_lost", "peer_daemon_down"]
                .into_iter()
                .find(|kind| is(kind)(line))
        })
}

fn at_ns(line: &Value) -> u64 {
    line["monotonic_ns"].as_u64().unwrap_or(0)
}

/// The dead time in a `link_down` line's reason (serde's `Duration`: secs and nanos).
fn dead_after_ms(line: &Value) -> Option<f64> {
    let dead_after = &line["event"]["reason"]["dead_after"];
    Some(dead_after["secs"].as_f64()? * 1e3 + dead_after["nanos"].as_f64()? / 1e6)
}

fn report(cuts: usize, results: &[IntervalResult]) {
    println!(
        "Failure detection: two `ha-daemon run` ({}) in two namespaces joined by {LINKS} \
         veth links; per interval {cuts} cuts of both links (one `ip -n B -batch -` call \
         setting B's interfaces down), each restored before the next",
        daemon::binary().display()
    );
    println!();
    println!("Detection latency, link cut to A's `peer_lost` line (ms):");
    println!();
    println!("| interval | measured from | min | median | p99 | max | samples | missing |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for result in results {
        for (from, bound) in [
            ("before the cut commands (upper bound)", Bound::Upper),
            ("after `ip` exited (lower bound)", Bound::Lower),
        ] {
            let stats = Stats::of(latencies(result, bound, |_| true));
            println!(
                "| {} ms | {from} | {} | {} | {} | {} | {} | {} |",
                result.interval_ms,
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
    println!("The same by what took the last link down (median lower..upper ms):");
    println!();
    println!("| interval | silence (dead time): cuts | median | carrier loss: cuts | median |");
    println!("|---:|---:|---:|---:|---:|");
    for result in results {
        let median = |by_carrier: bool| {
            let pick = |sample: &Sample| sample.last_by_carrier == by_carrier;
            let lower = Stats::of(latencies(result, Bound::Lower, pick)).median;
            let upper = Stats::of(latencies(result, Bound::Upper, pick)).median;
            let count = result.samples.iter().filter(|s| pick(s)).count();
            (count, format!("{}..{}", one(lower), one(upper)))
        };
        let ((silent, silent_median), (carrier, carrier_median)) = (median(false), median(true));
        println!(
            "| {} ms | {silent} | {silent_median} | {carrier} | {carrier_median} |",
            result.interval_ms
        );
    }
    println!();
    println!(
        "Dead time in force (per cut the longest `reason.dead_after` of the `link_down` \
         events by silence, ms), the warm-up after each `peer_alive`, and what else happened:"
    );
    println!();
    println!(
        "| interval | dead_after_min | dead time min | median | max | cuts at minimum \
         | warm-up s | links down by carrier loss | cut bracket median ms \
         | no alive after restore | false alarms | cuts delayed |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
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
        let bracket = Stats::of(result.samples.iter().map(|s| ms(s.bracket_ns)).collect());
        let carrier: usize = result.samples.iter().map(|s| s.carrier_downs).sum();
        println!(
            "| {} ms | {} | {} | {} | {} | {at_floor}/{known} | {} | {carrier}/{} | {} | {} | {} | {} |",
            result.interval_ms,
            one(Some(floor)),
            one(stats.min),
            one(stats.median),
            one(stats.max),
            warm_up(result.interval_ms).as_secs_f64(),
            LINKS * result.samples.len(),
            one(bracket.median),
            result.not_alive,
            result.false_alarms,
            result.delayed,
        );
    }
    println!();
    println!(
        "(false alarms: `peer_lost` or `peer_daemon_down` lines while the links were up, \
         i.e. outside cut-to-`peer_alive`; cuts delayed: the peer was not alive when the \
         cut was due, so the bench waited for `peer_alive` and another warm-up)"
    );
    println!();
    println!("Goal: median detection < 3 x interval + 2 ms (all cuts):");
    println!();
    println!("| interval | goal ms | median lower..upper ms | verdict |");
    println!("|---:|---:|---:|---|");
    for result in results {
        let goal = dead_after_min_ms(result.interval_ms);
        let lower = Stats::of(latencies(result, Bound::Lower, |_| true)).median;
        let upper = Stats::of(latencies(result, Bound::Upper, |_| true)).median;
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
        "Daemon cost: A's `ha-daemon run`, both daemons healthy, CPU time (utime + stime of \
         all its threads, /proc/PID/stat) over {} s, RSS (VmRSS) at the end; goal: CPU < \
         {CPU_GOAL_PERCENT}% of one core at the default {DEFAULT_INTERVAL_MS} ms interval:",
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
            "| {} ms | {cpu_percent:.1} | {cpu_ticks} | {:.1} | {goal} |",
            result.interval_ms,
            rss_kib as f64 / 1024.0,
        );
    }
    let missing: usize = results.iter().map(|r| r.missing).sum();
    let total: usize = results.iter().map(|r| r.cuts).sum();
    println!();
    println!("missing samples (no `peer_lost` within the timeout): {missing} of {total} cuts");
}

#[derive(Clone, Copy)]
enum Bound {
    Upper,
    Lower,
}

/// The latencies (ms) of the samples `pick` selects.
fn latencies(result: &IntervalResult, bound: Bound, pick: impl Fn(&Sample) -> bool) -> Vec<f64> {
    result
        .samples
        .iter()
        .filter(|sample| pick(sample))
        .map(|sample| {
            ms(match bound {
                Bound::Upper => sample.upper_ns,
                Bound::Lower => sample.lower_ns,
            })
        })
        .collect()
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
