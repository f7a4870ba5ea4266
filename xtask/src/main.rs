//! `cargo xtask`: the project's one-command workflows.
//!
//! - `build-ebpf`: install what the eBPF build needs (nightly rust-src, bpf-linker built
//!   against the nightly toolchain's own LLVM), then build the daemon with its object.
//! - `test`: everything `build-ebpf` needs plus the Debian packages the privileged tests
//!   use, then every test (unit, property, and the privileged end-to-end tests one at a
//!   time).
//! - `lab`: the demo on this machine (two network namespaces, live kernel counters).
//! - `bench`: the per-packet cost of the XDP program (BPF_PROG_TEST_RUN).

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
    /// Run the demo: two network namespaces, a veth link, live kernel counters.
    Lab,
    /// Measure the XDP program's cost per packet against an XDP_PASS baseline.
    Bench,
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
            cargo(&["test", "--package", "ha-tests", "--", "--test-threads=1"])
        }
        Task::Lab => {
            require_root("the lab (network namespaces, XDP)")?;
            packages::ensure(packages::TEST)?;
            toolchain::ensure_ebpf_toolchain()?;
            cargo(&["build", "--release", "--package", "ha-daemon"])?;
            cargo(&["run", "--release", "--package", "ha-tests", "--bin", "lab"])
        }
        Task::Bench => {
            require_root("the benchmark (BPF_PROG_TEST_RUN)")?;
            toolchain::ensure_ebpf_toolchain()?;
            cargo(&[
                "run",
                "--release",
                "--package",
                "ha-tests",
                "--bin",
                "bench-xdp",
            ])
        }
    }
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
