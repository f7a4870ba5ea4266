//! `cargo xtask bench`, last part: our daemon side by side with keepalived and ucarp in
//! the lab's topology, each managing only the VIP (see [`systems`]).
//!
//! ```text
//! bench-failover [--runs N] [--flap-s S] [--starve-s S] [--only ID,...] [--no-weather]
//!                [--no-full-group]
//! ```
//!
//! For every setting (ours at heartbeat 5 and 1 ms, fenced and not; keepalived and ucarp
//! at their defaults and most aggressive): `--runs` node crashes and `--runs` lan0 cuts
//! of the holder, each timed by the client (and by our daemon's `peer_lost`); then
//! random loss on the heartbeat path at 10, 30 and 50 % for `--flap-s` each and busy
//! loops on every core for `--starve-s`, counting takeovers. Then one crash of our full
//! group. Writes `target/bench/failover.{md,json,svg}` after each setting (an interrupted
//! run keeps what it measured) and prints the markdown at the end.
//!
//! Nothing here passes or fails on the numbers: the report states which goals are met.
//! Ctrl-C or SIGTERM stop it; everything it made is removed.

mod measure;
mod report;
mod systems;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;
use ha_tests::Need;
use ha_tests::lab;

use report::{FaultRuns, Report, SettingResult};
use systems::{Cluster, Fault, Setting};

#[derive(Parser)]
#[command(
    name = "bench-failover",
    about = "Failover, flapping and starvation: ours vs keepalived vs ucarp"
)]
struct Cli {
    /// Failover runs per setting and fault.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    runs: u32,
    /// Each loss stretch (10, 30, 50 %), in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    flap_s: u64,
    /// The starvation stretch, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    starve_s: u64,
    /// Only these settings (ids: ours-5-fence, ours-5, ours-1-fence, ours-1,
    /// keepalived-default, keepalived-fast, ucarp-default, ucarp-fast).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Skip the flapping and starvation stretches.
    #[arg(long)]
    no_weather: bool,
    /// Skip the crash of our full group.
    #[arg(long)]
    no_full_group: bool,
}

/// Loss levels of the flapping part, %.
const LOSS_PERCENT: [u32; 3] = [10, 30, 50];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let known: Vec<&str> = systems::settings().iter().map(|s| s.id).collect();
    if let Some(unknown) = cli.only.iter().find(|id| !known.contains(&id.as_str())) {
        eprintln!("bench-failover: unknown setting `{unknown}`; known: {known:?}");
        return ExitCode::FAILURE;
    }
    let mut needs = lab::NEEDS.to_vec();
    needs.extend(["keepalived", "ucarp", "arping"].map(Need::Program));
    if !ha_tests::require("bench-failover", &needs) {
        return ExitCode::FAILURE;
    }
    // Handlers, not a blocked mask: a mask would be inherited by every program started
    // (keepalived and ucarp would ignore SIGTERM).
    if let Err(e) = lab::watch_signals("bench-failover") {
        eprintln!("bench-failover: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = std::panic::catch_unwind(|| run(&cli));
    let _ = std::io::stdout().flush();
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(message)) => {
            eprintln!("bench-failover: error: {message}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("bench-failover: stopped (see above); everything it made is removed");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let settings: Vec<Setting> = systems::settings()
        .into_iter()
        .filter(|s| cli.only.is_empty() || cli.only.iter().any(|id| id == s.id))
        .collect();
    let mut report = Report {
        date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: machine(),
        runs: cli.runs as usize,
        flap_s: cli.flap_s,
        starve_s: cli.starve_s,
        settings: Vec::new(),
        full_group: None,
    };
    for setting in &settings {
        eprintln!("bench-failover: {} {}", setting.system_name, setting.label);
        report.settings.push(measure_setting(setting, cli));
        // What is measured so far survives an interrupted run.
        write_outputs(&report)?;
    }
    if !cli.no_full_group {
        eprintln!("bench-failover: our full group, one crash");
        report.full_group = Some(measure::full_group());
        write_outputs(&report)?;
    }
    for name in OUTPUTS {
        eprintln!("bench-failover: wrote {}", bench_dir().join(name).display());
    }
    println!("{}", report::markdown(&report));
    Ok(())
}

/// Everything for one setting, on one lab (rebuilt when a run leaves it unusable). A
/// panic (a lab step that failed) ends the setting, not the benchmark, unless the
/// operator interrupted.
fn measure_setting(setting: &Setting, cli: &Cli) -> SettingResult {
    let mut result = SettingResult {
        id: setting.id.to_owned(),
        system_name: setting.system_name.to_owned(),
        label: setting.label.to_owned(),
        system: setting.system,
        configs: Vec::new(),
        failover: Vec::new(),
        flapping: Vec::new(),
        starvation: None,
        errors: Vec::new(),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        measure_into(&mut result, setting, cli);
    }));
    if let Err(panic) = outcome {
        if lab::interrupted() {
            std::panic::resume_unwind(panic);
        }
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a lab step panicked".to_owned());
        result.errors.push(format!("stopped: {message}"));
    }
    result
}

fn measure_into(result: &mut SettingResult, setting: &Setting, cli: &Cli) {
    let mut cluster = match started(setting) {
        Ok(cluster) => cluster,
        Err(error) => {
            result.errors.push(error);
            return;
        }
    };
    result.configs.clone_from(&cluster.configs);
    for fault in [Fault::Crash, Fault::LanCut] {
        let mut runs = FaultRuns {
            fault,
            runs: cli.runs as usize,
            failovers: Vec::new(),
            failures: Vec::new(),
        };
        for round in 1..=cli.runs {
            match measure::failover(&mut cluster, fault) {
                Ok(failover) => {
                    eprintln!(
                        "bench-failover:   {} {round}/{}: outage {:.1} ms, detection {}",
                        fault.describe(),
                        cli.runs,
                        failover.outage_ms,
                        failover
                            .detection_ms
                            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
                    );
                    runs.failovers.push(failover);
                }
                Err(error) => {
                    eprintln!(
                        "bench-failover:   {} {round}/{}: {error}",
                        fault.describe(),
                        cli.runs
                    );
                    runs.failures.push(error);
                }
            }
            if let Err(error) = cluster.heal() {
                eprintln!("bench-failover:   healing failed ({error}): a fresh lab");
                result.errors.push(format!("healing: {error}"));
                drop(cluster);
                cluster = match started(setting) {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        result.errors.push(error);
                        result.failover.push(runs);
                        return;
                    }
                };
            }
        }
        result.failover.push(runs);
    }
    if setting.weather && !cli.no_weather {
        for percent in LOSS_PERCENT {
            eprintln!("bench-failover:   {percent} % loss for {} s", cli.flap_s);
            match measure::flapping(&mut cluster, percent, Duration::from_secs(cli.flap_s)) {
                Ok(weather) => result.flapping.push(weather),
                Err(error) => result.errors.push(format!("{percent} % loss: {error}")),
            }
        }
        eprintln!(
            "bench-failover:   busy loops on every core for {} s",
            cli.starve_s
        );
        match measure::starvation(&mut cluster, Duration::from_secs(cli.starve_s)) {
            Ok(weather) => result.starvation = Some(weather),
            Err(error) => result.errors.push(format!("starvation: {error}")),
        }
    }
}

/// A fresh lab running `setting`.
fn started(setting: &Setting) -> Result<Cluster, String> {
    let mut cluster = Cluster::new(setting.system)?;
    cluster.start_both()?;
    Ok(cluster)
}

/// The files written under `target/bench`.
const OUTPUTS: [&str; 3] = ["failover.md", "failover.json", "failover.svg"];

/// Writes `target/bench/failover.{md,json,svg}`.
fn write_outputs(report: &Report) -> Result<(), String> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| format!("JSON: {e}"))?;
    let texts = [report::markdown(report), json, report::svg(report)];
    for (name, text) in OUTPUTS.iter().zip(texts) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `target/bench` of the build this binary belongs to.
fn bench_dir() -> PathBuf {
    let profile = ha_tests::sibling_binary("bench-failover");
    profile
        .parent()
        .and_then(|p| p.parent())
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("bench")
}

/// Kernel, CPU model and core count.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "{} ({cpu}, {cores} cores)",
        output("uname", &["-srm"]).trim()
    )
}

/// A command's stdout (trimmed), or what went wrong.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program).args(args).output().map_or_else(
        |e| format!("({program}: {e})"),
        |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}
