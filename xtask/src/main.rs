//! `cargo xtask`: the project's one-command workflows.
//!
//! - `build-ebpf`: install what the eBPF build needs (nightly rust-src, bpf-linker built
//!   against the nightly toolchain's own LLVM), then build the daemon with its object.
//! - `test`: everything `build-ebpf` needs plus the Debian packages the privileged tests
//!   use, then every test (unit, property, and the privileged end-to-end tests one at a
//!   time).
//! - `lab`: the two-node lab on this machine (both nodes with DRBD, a filesystem, a
//!   container and the VIP; a client; a witness), a scenario (default: crash of the
//!   primary), then everything removed; `lab down` stops a lab kept with `--keep`.
//! - `bench`: the per-packet cost of the XDP program (BPF_PROG_TEST_RUN), then detection
//!   latency over repeated link cuts and the daemon's CPU and memory, at 1, 5 and 10 ms,
//!   then failover, flapping and starvation side by side with keepalived and ucarp
//!   (`bench --runs N --flap-s S ...`: arguments for `bench-failover`).

mod packages;
mod toolchain;

use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the eBPF toolchain if missing and build ha-daemon with its eBPF object.
    BuildEbpf,
    /// Install what the tests need, then run the whole test suite.
    Test,
    /// Fuzz the heartbeat decoder for a while (installs cargo-fuzz if missing).
    Fuzz {
        /// How long, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
    /// Run the two-node lab: build it, run a scenario (default: crash of the primary),
    /// clean up. `cargo xtask lab down` stops a lab left running with `--keep`.
    Lab {
        /// Arguments for the lab: `--scenario NAME`, `--runs N`, `--keep`, or `down`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure the XDP program's cost per packet, detection latency and daemon cost,
    /// then failover, flapping and starvation against keepalived and ucarp.
    Bench {
        /// Arguments for the comparison (`bench-failover --help`): `--runs N`,
        /// `--flap-s S`, `--starve-s S`, `--only ID,...`, `--no-weather`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    match task {
        Task::BuildEbpf => {
            toolchain::ensure_ebpf_toolchain()?;
            cargo(&["build", "--package", "ha-daemon"])?;
            let object = toolchain::built_object("debug")?;
            println!("eBPF object: {}", object.display());
            Ok(())
        }
        Task::Test => {
            require_root("the privileged tests (network namespaces, XDP)")?;
            packages::ensure(packages::TEST)?;
            toolchain::ensure_ebpf_toolchain()?;
            // Unprivileged tests first (fast feedback), then the privileged ones, one at a
            // time: they share the kernel (namespaces, BPF).
            // The detector's long loss simulation runs its full 10^7 heartbeat intervals
            // (about 1.5 minutes in a debug build) unless the caller chose another count.
            let long_sim = std::env::var("HA_LONG_SIM").unwrap_or_else(|_| "10000000".to_owned());
            cargo_with_env(
                &[
                    "test",
                    "--package",
                    "ha-common",
                    "--package",
                    "ha-daemon",
                    "--package",
                    "xtask",
                ],
                &[("HA_LONG_SIM", &long_sim)],
            )?;
            // The end-to-end tests run the daemon binary itself.
            cargo(&["build", "--package", "ha-daemon", "--bins"])?;
            cargo(&["test", "--package", "ha-tests", "--", "--test-threads=1"])?;
            fuzz(20)
        }
        Task::Fuzz { seconds } => {
            toolchain::ensure_ebpf_toolchain()?;
            fuzz(seconds)
        }
        Task::Lab { args } => {
            require_root("the lab (network namespaces, XDP, mounts, containers)")?;
            if args.first().map(String::as_str) != Some("down") {
                packages::ensure(packages::TEST)?;
                toolchain::ensure_ebpf_toolchain()?;
                cargo(&["build", "--release", "--package", "ha-daemon", "--bins"])?;
                // The lab finds the DRBD emulator next to itself.
                cargo(&["build", "--release", "--package", "ha-tests", "--bins"])?;
            }
            run_tool("lab", &args)
        }
        Task::Bench { args } => {
            require_root("the benchmarks (BPF_PROG_TEST_RUN, network namespaces)")?;
            packages::ensure(packages::TEST)?;
            packages::ensure(packages::BENCH)?;
            toolchain::ensure_ebpf_toolchain()?;
            run_tool("bench-xdp", &[])?;
            // Detection latency and daemon cost: two release daemons in namespaces (the
            // bench finds target/release/ha-daemon next to itself).
            cargo(&["build", "--release", "--package", "ha-daemon", "--bins"])?;
            run_tool("bench-detection", &[])?;
            // Side by side with keepalived and ucarp in the lab (which finds the DRBD
            // emulator next to itself); writes target/bench/failover.{md,json,svg}.
            cargo(&["build", "--release", "--package", "ha-tests", "--bins"])?;
            run_tool("bench-failover", &args)
        }
    }
}

/// Runs the heartbeat decoder's fuzz target for `seconds` (a crash fails).
fn fuzz(seconds: u32) -> anyhow::Result<()> {
    let installed = toolchain::command("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        cargo(&["install", "cargo-fuzz", "--locked"])?;
    }
    let fuzz_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ha-daemon/fuzz");
    eprintln!("xtask: cargo +nightly fuzz run heartbeat_decode ({seconds} s)");
    let status = toolchain::command("cargo")
        .args(["+nightly", "fuzz", "run", "heartbeat_decode", "--"])
        .arg(format!("-max_total_time={seconds}"))
        .current_dir(&fuzz_dir)
        // The decoder needs no eBPF object; skipping it saves a sanitizer build of it.
        .env("AYA_BUILD_SKIP", "1")
        .status()
        .context("running cargo fuzz")?;
    if !status.success() {
        bail!("fuzzing heartbeat_decode failed ({status}): see ha-daemon/fuzz/artifacts/");
    }
    Ok(())
}

fn require_root(what: &str) -> anyhow::Result<()> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("running `id -u`")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!("{what} must run as root (try: sudo -E cargo xtask ...)");
    }
    Ok(())
}

/// Runs the release build of the ha-tests binary `bin` with `args`.
fn run_tool(bin: &str, args: &[String]) -> anyhow::Result<()> {
    let mut run = vec![
        "run",
        "--release",
        "--package",
        "ha-tests",
        "--bin",
        bin,
        "--",
    ];
    run.extend(args.iter().map(String::as_str));
    cargo(&run)
}

/// Runs `cargo ARGS` (the cargo that runs xtask) and fails when it fails.
fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_with_env(args, &[])
}

/// [`cargo`] with extra environment variables.
fn cargo_with_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = toolchain::command(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
