//! A node directory and its settings file `emu.toml`.
//!
//! Layout of a node directory (all paths from [`NodeDir`]):
//! ```text
//! <node>/emu.toml          settings (EmuConfig)
//! <node>/bin/drbdadm       symlinks to the drbd-emu binary; the commands find the node
//! <node>/bin/drbdsetup     from argv[0]'s directory (never canonicalised)
//! <node>/bin/drbd-emu
//! <node>/control.sock      the serve process's control socket
//! <node>/serve.pid         its pid
//! <node>/meta.json         metadata: disk state and data generation (create-md)
//! <node>/backing.img       the backing image (the "lower" disk)
//! <node>/fuse/             FUSE mount point while up; serves fuse/disk = backing.img
//! <node>/device            symlink to the loop device (on fuse/disk) while up
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::state::Fencing;

/// A node's settings (`emu.toml`). Defaults: resource `r0`, minor 0, 64 MiB, fencing
/// `dont-care`, ping every 1000 ms with a 500 ms timeout, connect attempts every 500 ms,
/// no namespace change.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmuConfig {
    /// Resource name.
    #[serde(default = "default_resource")]
    pub resource: String,
    /// Device minor (shown in messages and events).
    #[serde(default)]
    pub minor: u32,
    /// Our replication address (listened on while up).
    pub local: SocketAddr,
    /// The peer's replication address.
    pub peer: SocketAddr,
    /// Size of the backing image in MiB.
    #[serde(default = "default_size_mib")]
    pub size_mib: u64,
    /// DRBD `fencing` policy.
    #[serde(default = "default_fencing")]
    pub fencing: Fencing,
    /// Network namespace (`ip netns` name) the serve process joins before anything else.
    #[serde(default)]
    pub netns: Option<String>,
    /// DRBD `ping-int`, in milliseconds.
    #[serde(default = "default_ping_interval")]
    pub ping_interval_ms: u64,
    /// DRBD `ping-timeout`, in milliseconds.
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_ms: u64,
    /// DRBD `connect-int`, in milliseconds.
    #[serde(default = "default_connect_interval")]
    pub connect_interval_ms: u64,
}

fn default_resource() -> String {
    "r0".to_owned()
}
fn default_size_mib() -> u64 {
    64
}
fn default_fencing() -> Fencing {
    Fencing::DontCare
}
fn default_ping_interval() -> u64 {
    1000
}
fn default_ping_timeout() -> u64 {
    500
}
fn default_connect_interval() -> u64 {
    500
}

impl EmuConfig {
    /// Settings with the defaults and the two addresses.
    pub fn new(local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            resource: default_resource(),
            minor: 0,
            local,
            peer,
            size_mib: default_size_mib(),
            fencing: default_fencing(),
            netns: None,
            ping_interval_ms: default_ping_interval(),
            ping_timeout_ms: default_ping_timeout(),
            connect_interval_ms: default_connect_interval(),
        }
    }

    /// Parses `emu.toml` text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The `emu.toml` text.
    pub fn to_toml(&self) -> String {
        let fencing = match self.fencing {
            Fencing::DontCare => "dont-care",
            Fencing::ResourceOnly => "resource-only",
        };
        let mut text = format!(
            "resource = {:?}\nminor = {}\nlocal = \"{}\"\npeer = \"{}\"\nsize_mib = {}\n\
             fencing = \"{fencing}\"\nping_interval_ms = {}\nping_timeout_ms = {}\n\
             connect_interval_ms = {}\n",
            self.resource,
            self.minor,
            self.local,
            self.peer,
            self.size_mib,
            self.ping_interval_ms,
            self.ping_timeout_ms,
            self.connect_interval_ms
        );
        if let Some(netns) = &self.netns {
            text.push_str(&format!("netns = {netns:?}\n"));
        }
        text
    }

    /// Size in KiB (DRBD's unit): the image minus nothing (metadata is kept apart).
    pub fn size_kib(&self) -> u64 {
        self.size_mib * 1024
    }

    /// Ping interval.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// Ping timeout.
    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout_ms)
    }

    /// Pause between connection attempts.
    pub fn connect_interval(&self) -> Duration {
        Duration::from_millis(self.connect_interval_ms)
    }

    /// Whether this node opens the connection (the lower address does; the other
    /// listens). DRBD 8.4 tries both ways and resolves the race; one direction avoids it.
    pub fn connects(&self) -> bool {
        self.local < self.peer
    }
}

/// The paths of a node directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDir {
    root: PathBuf,
}

impl NodeDir {
    /// The node at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The node's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `emu.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("emu.toml")
    }

    /// The command symlinks' directory.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// The serve process's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("serve.pid")
    }

    /// Metadata.
    pub fn meta(&self) -> PathBuf {
        self.root.join("meta.json")
    }

    /// The backing image.
    pub fn backing(&self) -> PathBuf {
        self.root.join("backing.img")
    }

    /// The FUSE mount point.
    pub fn fuse_dir(&self) -> PathBuf {
        self.root.join("fuse")
    }

    /// The image as served over FUSE (the loop device's backing file).
    pub fn fuse_file(&self) -> PathBuf {
        self.fuse_dir().join(FUSE_FILE)
    }

    /// The stable device path: a symlink to the loop device while up.
    pub fn device(&self) -> PathBuf {
        self.root.join("device")
    }
}

/// The file name inside the FUSE mount.
pub const FUSE_FILE: &str = "disk";

/// Environment variable naming the node directory (overrides argv\[0\]).
pub const NODE_ENV: &str = "DRBD_EMU_NODE";

/// The node directory of a command invoked as `argv0`: `DRBD_EMU_NODE` if set, else the
/// parent of argv\[0\]'s directory (`<node>/bin/drbdadm` -> `<node>`), else, for a bare
/// name found through `PATH`, the parent of the first `PATH` entry for which `exists`
/// says the name is there. Symlinks are not resolved.
pub fn node_from_argv0(
    argv0: &str,
    env_node: Option<&str>,
    path_var: Option<&str>,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if let Some(node) = env_node {
        return Some(PathBuf::from(node));
    }
    let program = Path::new(argv0);
    let bin_dir = if argv0.contains('/') {
        program.parent()?.to_path_buf()
    } else {
        path_var?
            .split(':')
            .map(Path::new)
            .find(|dir| exists(&dir.join(program)))?
            .to_path_buf()
    };
    bin_dir.parent().map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let cfg =
            EmuConfig::parse("local = \"192.0.2.1:7789\"\npeer = \"192.0.2.2:7789\"\n").unwrap();
        assert_eq!(
            cfg,
            EmuConfig::new(
                "192.0.2.1:7789".parse().unwrap(),
                "192.0.2.2:7789".parse().unwrap()
            )
        );
        assert!(cfg.connects());
        let mut other = cfg.clone();
        other.fencing = Fencing::ResourceOnly;
        other.netns = Some("hat-1-0".into());
        assert_eq!(EmuConfig::parse(&other.to_toml()).unwrap(), other);
        assert!(other.to_toml().contains("fencing = \"resource-only\""));
        assert!(
            EmuConfig::parse("local = \"192.0.2.1:1\"\npeer = \"192.0.2.2:1\"\nbogus = 1\n")
                .is_err()
        );
    }

    #[test]
    fn node_is_found_from_argv0_without_resolving_symlinks() {
        let never = |_: &Path| false;
        assert_eq!(
            node_from_argv0("/tmp/n/bin/drbdadm", None, None, never),
            Some(PathBuf::from("/tmp/n"))
        );
        assert_eq!(
            node_from_argv0("drbdadm", Some("/x"), None, never),
            Some(PathBuf::from("/x"))
        );
        let only_b = |p: &Path| p == Path::new("/b/bin/drbdadm");
        assert_eq!(
            node_from_argv0("drbdadm", None, Some("/a/bin:/b/bin"), only_b),
            Some(PathBuf::from("/b"))
        );
        assert_eq!(
            node_from_argv0("drbdadm", None, Some("/a/bin"), never),
            None
        );
    }
}
