//! `cargo xtask lab`: the two-node lab ([`ha_tests::lab`]) on this machine.
//!
//! ```text
//! lab [--scenario NAME] [--runs N] [--keep]     build the lab, run a scenario, clean up
//! lab down                                      stop a lab left running with --keep
//! ```
//!
//! The default scenario crashes the primary and prints the detection time, each takeover
//! step and the client-observed outage. `--keep` leaves the lab up afterwards, with the
//! commands to reach each node, until Ctrl-C or `lab down`. Everything is removed on
//! exit, on error, on Ctrl-C and on SIGTERM: a signal makes the lab's next wait give up,
//! and unwinding runs every guard.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use ha_tests::lab::{self, LAN_V4, Lab, NODES, REPL_V4, VIP, WITNESS, scenario};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Where a running lab writes its pid (for `lab down` and to refuse a second lab).
const PID_FILE: &str = "/run/ha-lab.pid";

#[derive(Parser)]
#[command(name = "lab", about = "The two-node failover lab")]
struct Cli {
    #[command(subcommand)]
    command: Option<Down>,
    /// The scenario to run.
    #[arg(long, value_enum, default_value_t = scenario::Name::Crash)]
    scenario: scenario::Name,
    /// How many times (a fresh lab each time); prints the spread of the outage.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Leave the lab running afterwards, until Ctrl-C or `lab down`.
    #[arg(long)]
    keep: bool,
}

#[derive(Subcommand)]
enum Down {
    /// Stop the lab left running by `--keep` (it removes everything it made).
    Down,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() {
        return down();
    }
    if !ha_tests::require("lab", lab::NEEDS) {
        return ExitCode::FAILURE;
    }
    if let Err(message) = claim_pid_file() {
        eprintln!("lab: {message}");
        return ExitCode::FAILURE;
    }
    // Ctrl-C and SIGTERM are taken by a thread that asks the lab to give up; the
    // unwinding scenario then removes everything. (Handlers, not a blocked mask: a mask
    // would be inherited by every program the lab starts.)
    if let Err(e) = lab::watch_signals("lab") {
        eprintln!("lab: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = std::panic::catch_unwind(|| run(&cli));
    let _ = std::fs::remove_file(PID_FILE);
    let _ = std::io::stdout().flush();
    match outcome {
        Ok(Ok(())) => {
            println!("lab: done; everything it made is removed");
            ExitCode::SUCCESS
        }
        Ok(Err(message)) => {
            eprintln!("lab: FAILED: {message}");
            eprintln!("lab: everything it made is removed");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("lab: stopped (see above); everything it made is removed");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let mut outages = Vec::new();
    for round in 1..=cli.runs {
        if cli.runs > 1 {
            println!("\nlab: run {round} of {}", cli.runs);
        }
        let keep = cli.keep && round == cli.runs;
        if let Some(outage) = run_once(cli.scenario, keep)? {
            outages.push(outage);
        }
    }
    if outages.len() > 1 {
        print_spread(&mut outages);
    }
    Ok(())
}

/// Builds a lab, runs `name` on it, optionally keeps it; the client outage if any.
fn run_once(name: scenario::Name, keep: bool) -> Result<Option<f64>, String> {
    let options = name.options();
    let began = Instant::now();
    println!("lab: building: namespaces a, b, client and the LAN bridge (witness {WITNESS}),");
    println!("     DRBD r0 on each node (emulator, 32 MiB), ext4, LXC container `web`, configs");
    let mut lab = Lab::new(&options);
    println!(
        "lab: built in {:.1} s in {}",
        secs(began),
        lab.dir().display()
    );
    describe(&lab);
    let started = Instant::now();
    let holder = lab.start_cluster();
    println!(
        "lab: both daemons up, {} holds the group ({:.1} s)\n",
        NODES[holder],
        secs(started)
    );
    for node in 0..2 {
        print_status(&lab, node);
    }
    let outage = name.run(&mut lab, holder)?;
    if keep {
        println!();
        for node in 0..2 {
            print_status(&lab, node);
        }
        explore(&lab);
    }
    Ok(outage)
}

fn describe(lab: &Lab) {
    for node in 0..2 {
        println!(
            "     node {}: netns {}, lan0 {} repl0 {}, config {}",
            NODES[node],
            lab.ns(node).name(),
            LAN_V4[node],
            REPL_V4[node],
            lab.config(node).display()
        );
    }
    println!(
        "     client: netns {}, probes the VIP {VIP} every {} ms",
        lab.lan.client.name(),
        scenario::PROBE_EVERY.as_millis()
    );
}

fn print_status(lab: &Lab, node: usize) {
    let out = lab.cli(node, &["status"]);
    println!("$ ha-daemon status   # on node {}", NODES[node]);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        print!("{}", String::from_utf8_lossy(&out.stderr));
    }
    println!();
}

/// Prints how to reach the lab and waits until interrupted (the unwinding cleans up).
fn explore(lab: &Lab) {
    let daemon = ha_tests::daemon::binary();
    println!("lab: kept running. To look around:");
    for (node, name) in NODES.iter().enumerate() {
        println!(
            "  node {name}: nsenter --net=/run/netns/{} --mount={}/{name}.mnt sh",
            lab.ns(node).name(),
            lab.dir().display()
        );
        println!(
            "          {} status --config {}",
            daemon.display(),
            lab.config(node).display()
        );
    }
    println!(
        "  client: ip netns exec {} ping {VIP}",
        lab.lan.client.name()
    );
    println!("  stop:   cargo xtask lab down   (or Ctrl-C here)");
    loop {
        lab::pause(Duration::from_secs(3600));
    }
}

fn print_spread(outages: &mut [f64]) {
    outages.sort_by(f64::total_cmp);
    let n = outages.len();
    let median = if n % 2 == 1 {
        outages[n / 2]
    } else {
        (outages[n / 2 - 1] + outages[n / 2]) / 2.0
    };
    println!(
        "\nlab: client-observed outage over {n} runs: min {:.1} ms, median {median:.1} ms, \
         max {:.1} ms",
        outages[0],
        outages[n - 1]
    );
    println!(
        "lab: each run (ms): {}",
        outages
            .iter()
            .map(|o| format!("{o:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Writes our pid to [`PID_FILE`], unless a lab is running already.
fn claim_pid_file() -> Result<(), String> {
    if let Some(pid) = running_lab() {
        return Err(format!(
            "a lab is running already (pid {pid}); stop it with `cargo xtask lab down`"
        ));
    }
    std::fs::write(PID_FILE, std::process::id().to_string())
        .map_err(|e| format!("writing {PID_FILE}: {e}"))
}

/// The pid of a running lab, from [`PID_FILE`].
fn running_lab() -> Option<Pid> {
    let pid: i32 = std::fs::read_to_string(PID_FILE)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "lab").then_some(Pid::from_raw(pid))
}

/// `lab down`: SIGTERM to the running lab, then wait for it to finish cleaning up.
fn down() -> ExitCode {
    let Some(pid) = running_lab() else {
        println!("lab: no lab is running");
        return ExitCode::SUCCESS;
    };
    if let Err(e) = nix::sys::signal::kill(pid, Signal::SIGTERM) {
        eprintln!("lab: signalling the lab (pid {pid}): {e}");
        return ExitCode::FAILURE;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            eprintln!("lab: the lab (pid {pid}) is still cleaning up after 60 s");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("lab: the lab (pid {pid}) stopped and removed everything");
    ExitCode::SUCCESS
}
