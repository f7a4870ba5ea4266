//! Builds the eBPF object (`ha-ebpf`) with aya-build and leaves it in `OUT_DIR/ha-ebpf`,
//! where `src/io/ebpf.rs` embeds it.
//!
//! When a prerequisite is missing (bpf-linker, the nightly toolchain or its rust-src) or
//! `AYA_BUILD_SKIP=1`, it writes an empty object instead and says so with a cargo warning:
//! the daemon then runs on userspace evidence only and reports it. `cargo xtask build-ebpf`
//! installs the prerequisites.
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow};

const EBPF_PACKAGE: &str = "ha-ebpf";

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join(EBPF_PACKAGE);
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=PATH");

    let skip = std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v == "true");
    let missing = if skip {
        Some("AYA_BUILD_SKIP is set".to_owned())
    } else {
        missing_prerequisite()
    };
    if let Some(missing) = missing {
        println!(
            "cargo:warning=eBPF object NOT built ({missing}); the daemon will run without \
             kernel evidence. Run `cargo xtask build-ebpf` to install what is missing."
        );
        fs::write(&object, []).with_context(|| format!("writing {}", object.display()))?;
        return Ok(());
    }

    let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec()?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == EBPF_PACKAGE)
        .ok_or_else(|| anyhow!("package {EBPF_PACKAGE} not found in the workspace"))?;
    let root_dir = package
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", package.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}

/// The first missing prerequisite of the eBPF build, if any.
fn missing_prerequisite() -> Option<String> {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => {
            // A missing path counts as changed, so the next build checks again once
            // `cargo xtask build-ebpf` has installed it there.
            if let Some(home) = cargo_home() {
                println!(
                    "cargo:rerun-if-changed={}",
                    home.join("bin/bpf-linker").display()
                );
            }
            return Some("bpf-linker is not on PATH".to_owned());
        }
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output();
    let sysroot = match sysroot {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => return Some("the nightly toolchain is not installed".to_owned()),
    };
    let core_src = sysroot.join("lib/rustlib/src/rust/library/core");
    if !core_src.exists() {
        println!("cargo:rerun-if-changed={}", core_src.display());
        return Some("rust-src is not installed for the nightly toolchain".to_owned());
    }
    None
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}
