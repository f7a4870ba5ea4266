//! Provisioning of the eBPF toolchain, per ../shared/TOOLCHAIN.md:
//!
//! - the nightly toolchain with `rust-src` (aya-build compiles `core` with `-Z build-std`);
//! - `bpf-linker`, which needs an LLVM whose major version equals rustc's. Debian's LLVM
//!   is older, so it is built against the nightly toolchain's own `libLLVM`: a prefix
//!   directory holds `bin/llvm-config` (only looked for, to find the prefix) and
//!   `lib/libLLVM.so` plus the versioned name, both symlinks into the toolchain. The LLVM
//!   major and the library name are derived from the installed nightly, never hard-coded.
//!
//! Everything lands under `$CARGO_HOME` (default `~/.cargo`): `bin/bpf-linker`, on PATH
//! for every cargo user, and `bpf-linker-llvm/<libLLVM name>/`, the prefix its rpath
//! points to. Both outlive any checkout, so a second run (or a fresh clone) is fast.

use std::{
    ffi::OsString,
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, anyhow, bail};

/// bpf-linker release known to build and link with LLVM 22 (see TOOLCHAIN.md).
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Makes sure nightly + rust-src and a working bpf-linker are installed, and that
/// `$CARGO_HOME/bin` is on this process's PATH (inherited by the builds it starts).
pub(crate) fn ensure_ebpf_toolchain() -> anyhow::Result<()> {
    put_cargo_bin_on_path()?;
    let sysroot = nightly_sysroot()?;
    ensure_rust_src(&sysroot)?;
    ensure_bpf_linker(&sysroot)
}

/// The eBPF object of the newest `ha-daemon` build in `profile` ("debug"/"release").
pub(crate) fn built_object(profile: &str) -> anyhow::Result<PathBuf> {
    let build_dir = target_dir().join(profile).join("build");
    let newest = fs::read_dir(&build_dir)
        .with_context(|| format!("reading {}", build_dir.display()))?
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("ha-daemon-")
        })
        .map(|entry| entry.path().join("out/ha-ebpf"))
        .filter(|object| object.exists())
        .max_by_key(|object| fs::metadata(object).and_then(|m| m.modified()).ok());
    let object =
        newest.ok_or_else(|| anyhow!("no ha-ebpf object under {}", build_dir.display()))?;
    if fs::metadata(&object)?.len() == 0 {
        bail!("{} is empty: the eBPF build was skipped", object.display());
    }
    Ok(object)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn cargo_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(home.into());
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("neither CARGO_HOME nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".cargo"))
}

fn put_cargo_bin_on_path() -> anyhow::Result<()> {
    let bin = cargo_home()?.join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir == bin) {
        return Ok(());
    }
    let mut joined = OsString::from(bin.as_os_str());
    joined.push(":");
    joined.push(path);
    // Not std::env::set_var (unsafe in edition 2024): children get the PATH explicitly.
    PATH_OVERRIDE.set(joined).ok();
    Ok(())
}

/// PATH with `$CARGO_HOME/bin` prepended, when it was missing.
static PATH_OVERRIDE: std::sync::OnceLock<OsString> = std::sync::OnceLock::new();

/// A `Command` for `program` that sees `$CARGO_HOME/bin` on its PATH.
pub(crate) fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    if let Some(path) = PATH_OVERRIDE.get() {
        command.env("PATH", path);
    }
    command
}

fn nightly_sysroot() -> anyhow::Result<PathBuf> {
    let out = command("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .context("running rustup (is rustup installed?)")?;
    if !out.status.success() {
        eprintln!("xtask: the nightly toolchain is missing; installing it");
        let status = command("rustup")
            .args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ])
            .status()
            .context("running rustup")?;
        if !status.success() {
            bail!(
                "the nightly Rust toolchain is missing and `rustup toolchain install nightly` failed"
            );
        }
        return nightly_sysroot();
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn ensure_rust_src(sysroot: &Path) -> anyhow::Result<()> {
    if sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing rust-src for the nightly toolchain");
    let status = command("rustup")
        .args(["component", "add", "rust-src", "--toolchain", "nightly"])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!(
            "rust-src for the nightly toolchain is missing and `rustup component add rust-src --toolchain nightly` failed"
        );
    }
    Ok(())
}

fn ensure_bpf_linker(sysroot: &Path) -> anyhow::Result<()> {
    let works = command("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return Ok(());
    }
    let (major, full) = nightly_llvm_version()?;
    let lib_name = fs::read_dir(sysroot.join("lib"))
        .context("reading the nightly sysroot")?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with(&format!("libLLVM.so.{major}")))
        .ok_or_else(|| anyhow!("no libLLVM.so.{major}* in {}/lib", sysroot.display()))?;
    let prefix = cargo_home()?.join("bpf-linker-llvm").join(&lib_name);
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against the nightly toolchain's LLVM {full} \
         (prefix {}; takes about a minute and a half)",
        prefix.display()
    );
    make_llvm_prefix(&prefix, &sysroot.join("lib").join(&lib_name), &full)?;
    let status = command(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .env("LLVM_PREFIX", &prefix)
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!(
            "`cargo install bpf-linker` failed (LLVM_PREFIX={})",
            prefix.display()
        );
    }
    Ok(())
}

/// (major, full) LLVM version of the nightly rustc, from `rustc -vV`.
fn nightly_llvm_version() -> anyhow::Result<(String, String)> {
    let out = command("rustup")
        .args(["run", "nightly", "rustc", "-vV"])
        .output()
        .context("running rustc -vV")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let full = text
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .ok_or_else(|| anyhow!("no `LLVM version:` line in `rustc +nightly -vV`"))?
        .trim()
        .to_owned();
    let major = full.split('.').next().unwrap_or_default().to_owned();
    Ok((major, full))
}

fn make_llvm_prefix(prefix: &Path, library: &Path, version: &str) -> anyhow::Result<()> {
    let (bin, lib) = (prefix.join("bin"), prefix.join("lib"));
    fs::create_dir_all(&bin)?;
    fs::create_dir_all(&lib)?;
    let llvm_config = bin.join("llvm-config");
    fs::write(&llvm_config, format!("#!/bin/sh\necho {version}\n"))?;
    fs::set_permissions(&llvm_config, fs::Permissions::from_mode(0o755))?;
    let file_name = library
        .file_name()
        .ok_or_else(|| anyhow!("bad library path"))?;
    for link in [lib.join("libLLVM.so"), lib.join(file_name)] {
        let _ = fs::remove_file(&link);
        symlink(library, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}
