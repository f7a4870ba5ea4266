//! Debian packages the tests and the lab need, installed with apt-get when missing.

use std::process::Command;

use anyhow::{Context as _, bail};

/// Packages of the privileged tests and the lab: `ip`, `nft`, `ethtool`, `ping`,
/// `tcpdump` (the announcements on the wire), LXC with busybox and `newuidmap` (the lxc
/// agent, privileged and unprivileged), `fusermount3` (the DRBD emulator's device),
/// `mkfs.ext4`/`fsck` (the mount agent) and the OCF resource agents (the exec agent).
pub(crate) const TEST: &[&str] = &[
    "iproute2",
    "nftables",
    "ethtool",
    "iputils-ping",
    "tcpdump",
    "lxc",
    "busybox-static",
    "uidmap",
    "fuse3",
    "e2fsprogs",
    "resource-agents",
];

/// What `cargo xtask bench` adds to [`TEST`] for the side-by-side comparison: the
/// tools operators use today (keepalived's VRRP, ucarp's CARP) and `arping` (the
/// gratuitous ARP of ucarp's up script).
pub(crate) const BENCH: &[&str] = &["keepalived", "ucarp", "arping"];

/// Installs the packages in `wanted` that are not installed yet.
pub(crate) fn ensure(wanted: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|package| !installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get (is this Debian or Ubuntu?)")
    };
    if !apt(&["update", "-qq"])?.success() {
        bail!(
            "`apt-get update` failed: install {} by hand",
            missing.join(" ")
        );
    }
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    if !apt(&install)?.success() {
        bail!("`apt-get install` failed for: {}", missing.join(" "));
    }
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}
