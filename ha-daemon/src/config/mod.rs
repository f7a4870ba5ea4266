//! The configuration file: one TOML file describing this node, its peer and their links.
//!
//! [`Config::parse`] turns the text into typed values ("parse, don't validate"): a
//! [`Config`] holds only values the daemon can run with. Every error, of syntax or of
//! meaning, is a [`ConfigError`] naming the file, the 1-based line and column of the
//! offending value (of the table that lacks a required key, or line 1 when the whole file
//! lacks it), the key and the problem, e.g.
//! `cluster.toml:12:15: heartbeat.interval_ms = 0: must be 1..=1000`. Unknown keys are
//! errors too. [`Config::load`] is the only I/O here: it reads the file and calls
//! [`Config::parse`].
//!
//! The file, with every optional key at its default:
//!
//! ```toml
//! cluster_id = 7                 # required, 1..=4294967295
//! node_id = 1                    # required, 1..=65535
//! peer_node_id = 2               # required, 1..=65535, differs from node_id
//! key_file = "/etc/ha-daemon/cluster.key"   # required; relative to this file's directory
//! # where the kernel programs, their links and maps are pinned so they outlive a
//! # crashed daemon; default /sys/fs/bpf/ha-daemon/cluster-<cluster_id>-node-<node_id>
//! bpf_pin_directory = "/sys/fs/bpf/ha-daemon/cluster-7-node-1"
//! # the control socket of `ha-daemon status` and `events`; default
//! # /run/ha-daemon/cluster-<cluster_id>-node-<node_id>.sock
//! control_socket = "/run/ha-daemon/cluster-7-node-1.sock"
//! control_group = "hacluster"    # may also use it (default: root only)
//! ebpf = true            # false: userspace evidence only (degraded; for tests and
//!                        # machines without BPF)
//! replication_ports = "7788-7799"           # "PORT" or "FIRST-LAST"
//!
//! [heartbeat]
//! interval_ms = 5                # 1..=1000
//! port = 7400                    # outside replication_ports
//! echo_port = 7401               # outside replication_ports, differs from port
//! dscp = 48                      # CS6, 0..=63
//!
//! [detector]                     # defaults: DetectorConfig::for_interval(interval)
//! dead_after_min_ms = 17
//! dead_after_max_ms = 250
//! rise = 3
//! false_down_target = 1e-6
//! unverified_grace_ms = 1000
//!
//! [realtime]
//! enabled = true                 # SCHED_FIFO for the heartbeat and detector thread
//! priority = 10                  # 1..=99
//! lock_memory = true             # mlockall
//!
//! [[link]]                       # 1 to 8 links; the n-th is link[n-1], in link slot n-1
//! name = "b2b"                   # unique, 1 to 32 of [A-Za-z0-9_-]
//! interface = "eth1"             # unique Linux interface name
//! local = "192.0.2.1"            # this node's address on the link
//! peer = "192.0.2.2"             # the peer's, same family, differs from local
//! ```
//!
//! The resource group, `[group]` and `[[resource]]` (none by default), is described in
//! `config/resources.rs`; the role decisions, `[cluster]` (none by default: watch only),
//! in `config/cluster.rs`.

use std::fmt;
use std::fmt::Debug;
use std::net::IpAddr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, Deserializer};

use self::source::Source;

use crate::core::detector_config::DetectorConfig;
use crate::core::wire::LINK_SLOTS;
use crate::resource::build::ResourceSettings;
use crate::resource::supervise::SupervisionSettings;

mod cluster;
mod resources;
mod source;

pub use self::cluster::{ClusterConfig, DEFAULT_FENCE_TIMEOUT};

/// Replication (DRBD) ports when the file names none.
pub const DEFAULT_REPLICATION_PORTS: RangeInclusive<u16> = 7788..=7799;

/// Longest duration, in milliseconds, any `*_ms` key of `[detector]` accepts.
const MAX_DETECTOR_MS: u64 = 60_000;

/// The configuration of this node.
///
/// Invariants: the ids are non-zero and `peer_node_id != node_id`; `detector.interval ==
/// heartbeat.interval` and `detector` passes [`DetectorConfig::validate`]; neither
/// heartbeat port lies in `replication_ports`; `links` holds 1 to
/// [`LINK_SLOTS`] links with unique names and interfaces, link `i` in link slot `i`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Cluster id carried in every heartbeat; heartbeats of other clusters are ignored.
    pub cluster_id: u32,
    /// This node's id.
    pub node_id: u16,
    /// The peer's id.
    pub peer_node_id: u16,
    /// The shared heartbeat key (see [`crate::io::key_file`]); a relative path in the file
    /// is taken relative to the file's directory.
    pub key_file: PathBuf,
    /// Absolute directory (on a bpffs) where the kernel side is pinned.
    pub bpf_pin_directory: PathBuf,
    /// Absolute path of the control socket.
    pub control_socket: PathBuf,
    /// A group whose members may use the control socket besides root.
    pub control_group: Option<String>,
    /// Use the eBPF programs (default); `false` runs on userspace evidence only.
    pub ebpf: bool,
    /// UDP/TCP ports of the replication traffic that counts as evidence of the peer.
    pub replication_ports: RangeInclusive<u16>,
    /// Heartbeat sending.
    pub heartbeat: HeartbeatSettings,
    /// The failure detector.
    pub detector: DetectorConfig,
    /// Real-time scheduling of the heartbeat and detector thread.
    pub realtime: RealtimeSettings,
    /// The links to the peer, in link-slot order.
    pub links: Vec<LinkSettings>,
    /// How the held resource group is watched (`[group]`).
    pub group: SupervisionSettings,
    /// The resource group's members in start order (`[[resource]]`); may be empty.
    pub resources: Vec<ResourceSettings>,
    /// The role decisions (`[cluster]`); `None`: the daemon only watches the group.
    pub cluster: Option<ClusterConfig>,
}

/// Heartbeat sending (`[heartbeat]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatSettings {
    /// Interval between heartbeats (and echo probes) on each link; 1 ms to 1000 ms.
    pub interval: Duration,
    /// UDP port of heartbeats, on both nodes.
    pub port: u16,
    /// UDP port of echo probes, which the peer's XDP program reflects; differs from `port`.
    pub echo_port: u16,
    /// DSCP of heartbeat and echo packets, 0 to 63.
    pub dscp: u8,
}

impl Default for HeartbeatSettings {
    /// 5 ms, port 7400, echo port 7401, DSCP 48 (CS6, network control).
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(5),
            port: 7400,
            echo_port: 7401,
            dscp: 48,
        }
    }
}

/// Real-time scheduling (`[realtime]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealtimeSettings {
    /// Run the heartbeat and detector thread with `SCHED_FIFO`.
    pub enabled: bool,
    /// Its `SCHED_FIFO` priority, 1 to 99.
    pub priority: u8,
    /// Lock the daemon's memory (`mlockall`).
    pub lock_memory: bool,
}

impl Default for RealtimeSettings {
    /// Enabled at priority 10, memory locked.
    fn default() -> Self {
        Self {
            enabled: true,
            priority: 10,
            lock_memory: true,
        }
    }
}

/// One link to the peer (`[[link]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSettings {
    /// Name in logs and status: 1 to 32 of `[A-Za-z0-9_-]`.
    pub name: String,
    /// Linux interface name: 1 to 15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
    pub interface: String,
    /// This node's unicast address on the link.
    pub local: IpAddr,
    /// The peer's unicast address on the link: same family as `local`, not `local`.
    pub peer: IpAddr,
}

/// Why a configuration file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the offending value; 0 when the file could not be read.
    pub line: usize,
    /// 1-based column (in characters) of the offending value; 0 when the file could not
    /// be read.
    pub column: usize,
    /// The key and what is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            path,
            line,
            column,
            message,
        } = self;
        if *line == 0 {
            write!(f, "{}: {message}", path.display())
        } else {
            write!(f, "{}:{line}:{column}: {message}", path.display())
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses `text`, the contents of the file at `path` (used in errors and to resolve
    /// a relative `key_file`).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let source = Source { text, path };
        let table = DeTable::parse(text).map_err(|error| source.toml_error(&error))?;
        let raw = RawConfig::deserialize(Deserializer::from(table))
            .map_err(|error| source.toml_error(&error))?;
        raw.into_config(&source)
    }

    /// Reads the file at `path` and parses it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read: {error}"),
        })?;
        Self::parse(&text, path)
    }
}

/// The file as written: every value with its span, before any check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster_id: Spanned<i64>,
    node_id: Spanned<i64>,
    peer_node_id: Spanned<i64>,
    key_file: Spanned<String>,
    bpf_pin_directory: Option<Spanned<String>>,
    control_socket: Option<Spanned<String>>,
    control_group: Option<Spanned<String>>,
    ebpf: Option<Spanned<bool>>,
    replication_ports: Option<Spanned<String>>,
    heartbeat: Option<RawHeartbeat>,
    detector: Option<Spanned<RawDetector>>,
    realtime: Option<RawRealtime>,
    link: Option<Spanned<Vec<Spanned<RawLink>>>>,
    group: Option<resources::RawGroup>,
    resource: Option<Vec<Spanned<resources::RawResource>>>,
    cluster: Option<Spanned<cluster::RawCluster>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    interval_ms: Option<Spanned<i64>>,
    port: Option<Spanned<i64>>,
    echo_port: Option<Spanned<i64>>,
    dscp: Option<Spanned<i64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    dead_after_min_ms: Option<Spanned<i64>>,
    dead_after_max_ms: Option<Spanned<i64>>,
    rise: Option<Spanned<i64>>,
    false_down_target: Option<Spanned<f64>>,
    unverified_grace_ms: Option<Spanned<i64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRealtime {
    enabled: Option<bool>,
    priority: Option<Spanned<i64>>,
    lock_memory: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    name: Spanned<String>,
    interface: Spanned<String>,
    local: Spanned<String>,
    peer: Spanned<String>,
}

impl RawConfig {
    fn into_config(self, source: &Source<'_>) -> Result<Config, ConfigError> {
        let cluster_id = source.integer("cluster_id", &self.cluster_id, 1..=u32::MAX)?;
        let node_id = source.integer("node_id", &self.node_id, 1..=u16::MAX)?;
        let peer_node_id = source.integer("peer_node_id", &self.peer_node_id, 1..=u16::MAX)?;
        if peer_node_id == node_id {
            return Err(source.invalid(
                "peer_node_id",
                &self.peer_node_id,
                "must differ from node_id",
            ));
        }
        if self.key_file.get_ref().is_empty() {
            return Err(source.invalid("key_file", &self.key_file, "must not be empty"));
        }
        let key_file = source.directory().join(self.key_file.get_ref());
        let bpf_pin_directory = match &self.bpf_pin_directory {
            Some(dir) if !dir.get_ref().starts_with('/') => {
                return Err(source.invalid("bpf_pin_directory", dir, "must be an absolute path"));
            }
            Some(dir) => PathBuf::from(dir.get_ref()),
            None => PathBuf::from(format!(
                "/sys/fs/bpf/ha-daemon/cluster-{cluster_id}-node-{node_id}"
            )),
        };
        let control_socket = match &self.control_socket {
            Some(path) if !path.get_ref().starts_with('/') => {
                return Err(source.invalid("control_socket", path, "must be an absolute path"));
            }
            Some(path) => PathBuf::from(path.get_ref()),
            None => PathBuf::from(format!(
                "/run/ha-daemon/cluster-{cluster_id}-node-{node_id}.sock"
            )),
        };
        let control_group = match &self.control_group {
            Some(group) if group.get_ref().is_empty() => {
                return Err(source.invalid("control_group", group, "must not be empty"));
            }
            group => group.as_ref().map(|group| group.get_ref().clone()),
        };
        let heartbeat_raw = self.heartbeat.unwrap_or_default();
        let heartbeat = heartbeat_raw.to_settings(source)?;
        let replication_ports = match &self.replication_ports {
            Some(ports) => parse_ports(source, ports)?,
            None => DEFAULT_REPLICATION_PORTS,
        };
        for (key, port, raw) in [
            ("heartbeat.port", heartbeat.port, &heartbeat_raw.port),
            (
                "heartbeat.echo_port",
                heartbeat.echo_port,
                &heartbeat_raw.echo_port,
            ),
        ] {
            if replication_ports.contains(&port) {
                let (first, last) = (replication_ports.start(), replication_ports.end());
                let outside = format!("must lie outside replication_ports ({first}-{last})");
                // Blame the value the file sets: the port if it does, else the range.
                let blamed = raw
                    .as_ref()
                    .map(|value| source.invalid(key, value, &outside));
                let blamed = blamed.or_else(|| {
                    self.replication_ports.as_ref().map(|ports| {
                        source.invalid(
                            "replication_ports",
                            ports,
                            format!("must not hold {key} ({port})"),
                        )
                    })
                });
                return Err(blamed
                    .unwrap_or_else(|| source.error_at(0, format!("{key} = {port}: {outside}"))));
            }
        }
        let detector = match self.detector {
            Some(detector) => {
                let table = detector.span();
                detector
                    .into_inner()
                    .into_config(source, heartbeat.interval, Some(table))?
            }
            None => RawDetector::default().into_config(source, heartbeat.interval, None)?,
        };
        let realtime = self.realtime.unwrap_or_default().into_settings(source)?;
        let links = parse_links(source, self.link)?;
        let group = self.group.unwrap_or_default().into_settings(source)?;
        let resources = resources::parse_resources(source, self.resource)?;
        let node = cluster::Node {
            cluster_id,
            node_id,
            peer_node_id,
            dead_after_max: detector.dead_after_max,
        };
        let cluster = self
            .cluster
            .map(|raw| {
                let table = raw.span().start;
                raw.into_inner().into_config(source, &node, table)
            })
            .transpose()?;
        Ok(Config {
            cluster_id,
            node_id,
            peer_node_id,
            key_file,
            bpf_pin_directory,
            control_socket,
            control_group,
            ebpf: self.ebpf.is_none_or(Spanned::into_inner),
            replication_ports,
            heartbeat,
            detector,
            realtime,
            links,
            group,
            resources,
            cluster,
        })
    }
}

impl RawHeartbeat {
    fn to_settings(&self, source: &Source<'_>) -> Result<HeartbeatSettings, ConfigError> {
        let default = HeartbeatSettings::default();
        let interval = match &self.interval_ms {
            Some(ms) => {
                Duration::from_millis(source.integer("heartbeat.interval_ms", ms, 1..=1000)?)
            }
            None => default.interval,
        };
        let port = source.optional("heartbeat.port", &self.port, 1..=u16::MAX, default.port)?;
        let echo_port = source.optional(
            "heartbeat.echo_port",
            &self.echo_port,
            1..=u16::MAX,
            default.echo_port,
        )?;
        if echo_port == port {
            let at = self.echo_port.as_ref().or(self.port.as_ref());
            return Err(source.error_at(
                at.map_or(0, |value| value.span().start),
                format!("heartbeat.echo_port = {echo_port}: must differ from heartbeat.port"),
            ));
        }
        let dscp = source.optional("heartbeat.dscp", &self.dscp, 0..=63, default.dscp)?;
        Ok(HeartbeatSettings {
            interval,
            port,
            echo_port,
            dscp,
        })
    }
}

impl RawDetector {
    /// `DetectorConfig::for_interval(interval)` with the overrides of the file, validated.
    /// `table` is the span of `[detector]`, if the file has one.
    fn into_config(
        self,
        source: &Source<'_>,
        interval: Duration,
        table: Option<Range<usize>>,
    ) -> Result<DetectorConfig, ConfigError> {
        let millis = |key: &str, value: &Spanned<i64>| {
            source
                .integer(key, value, 0..=MAX_DETECTOR_MS)
                .map(Duration::from_millis)
        };
        let mut config = DetectorConfig::for_interval(interval);
        if let Some(value) = &self.dead_after_min_ms {
            config.dead_after_min = millis("detector.dead_after_min_ms", value)?;
        }
        if let Some(value) = &self.dead_after_max_ms {
            config.dead_after_max = millis("detector.dead_after_max_ms", value)?;
        }
        if let Some(value) = &self.rise {
            config.rise = source.integer("detector.rise", value, 1..=u32::MAX)?;
        }
        if let Some(value) = &self.false_down_target {
            config.false_down_target = *value.get_ref();
        }
        if let Some(value) = &self.unverified_grace_ms {
            config.unverified_grace = millis("detector.unverified_grace_ms", value)?;
        }
        config.validate().map_err(|error| {
            let span = |value: &Option<Spanned<i64>>| value.as_ref().map(Spanned::span);
            let (key, at) = match error.field {
                "dead_after_min" => ("dead_after_min_ms", span(&self.dead_after_min_ms)),
                "dead_after_max" => ("dead_after_max_ms", span(&self.dead_after_max_ms)),
                "rise" | "dampening.max_rise" => (error.field, span(&self.rise)),
                "false_down_target" => (
                    "false_down_target",
                    self.false_down_target.as_ref().map(Spanned::span),
                ),
                "unverified_grace" => ("unverified_grace_ms", span(&self.unverified_grace_ms)),
                other => (other, None),
            };
            let at = at.or(table).map_or(0, |span| span.start);
            source.error_at(at, format!("detector.{key}: {}", error.problem))
        })?;
        Ok(config)
    }
}

impl RawRealtime {
    fn into_settings(self, source: &Source<'_>) -> Result<RealtimeSettings, ConfigError> {
        let default = RealtimeSettings::default();
        Ok(RealtimeSettings {
            enabled: self.enabled.unwrap_or(default.enabled),
            priority: source.optional(
                "realtime.priority",
                &self.priority,
                1..=99,
                default.priority,
            )?,
            lock_memory: self.lock_memory.unwrap_or(default.lock_memory),
        })
    }
}

impl RawLink {
    /// Link `index`, which must differ from the `earlier` ones.
    fn into_settings(
        self,
        source: &Source<'_>,
        index: usize,
        earlier: &[LinkSettings],
    ) -> Result<LinkSettings, ConfigError> {
        let key = |field: &str| format!("link[{index}].{field}");
        let name = self.name.get_ref();
        if !is_name(name) {
            return Err(source.invalid(
                &key("name"),
                &self.name,
                "must be 1 to 32 of [A-Za-z0-9_-]",
            ));
        }
        let interface = self.interface.get_ref();
        if interface.is_empty()
            || interface.len() > 15
            || interface == "."
            || interface == ".."
            || interface.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(source.invalid(
                &key("interface"),
                &self.interface,
                "must be an interface name: 1 to 15 bytes, no '/', ':' or whitespace, not '.' or '..'",
            ));
        }
        for (other, link) in earlier.iter().enumerate() {
            if link.name == *name {
                return Err(source.invalid(
                    &key("name"),
                    &self.name,
                    format!("already used by link[{other}]"),
                ));
            }
            if link.interface == *interface {
                return Err(source.invalid(
                    &key("interface"),
                    &self.interface,
                    format!("already used by link[{other}]"),
                ));
            }
        }
        let local = parse_unicast(source, &key("local"), &self.local)?;
        let peer = parse_unicast(source, &key("peer"), &self.peer)?;
        if local.is_ipv4() != peer.is_ipv4() {
            return Err(source.invalid(
                &key("peer"),
                &self.peer,
                format!(
                    "{peer} is {}, but local {local} is {}",
                    family(peer),
                    family(local)
                ),
            ));
        }
        if peer == local {
            return Err(source.invalid(&key("peer"), &self.peer, "must differ from local"));
        }
        Ok(LinkSettings {
            name: self.name.into_inner(),
            interface: self.interface.into_inner(),
            local,
            peer,
        })
    }
}

fn parse_links(
    source: &Source<'_>,
    links: Option<Spanned<Vec<Spanned<RawLink>>>>,
) -> Result<Vec<LinkSettings>, ConfigError> {
    let Some(links) = links else {
        return Err(source.error_at(0, "link: at least one [[link]] is required"));
    };
    if links.get_ref().is_empty() {
        return Err(source.error_at(
            links.span().start,
            "link: at least one [[link]] is required",
        ));
    }
    let mut parsed = Vec::with_capacity(links.get_ref().len());
    for (index, link) in links.into_inner().into_iter().enumerate() {
        if index >= LINK_SLOTS {
            return Err(source.error_at(
                link.span().start,
                format!("link[{index}]: at most {LINK_SLOTS} links are supported"),
            ));
        }
        let link = link.into_inner().into_settings(source, index, &parsed)?;
        parsed.push(link);
    }
    Ok(parsed)
}

/// A name of links and resources: 1 to 32 of `[A-Za-z0-9_-]`.
fn is_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// `"PORT"` or `"FIRST-LAST"`, ports 1 to 65535, `FIRST <= LAST`.
fn parse_ports(
    source: &Source<'_>,
    ports: &Spanned<String>,
) -> Result<RangeInclusive<u16>, ConfigError> {
    let port = |text: &str| text.trim().parse::<u16>().ok().filter(|port| *port != 0);
    let text = ports.get_ref();
    let range = match text.split_once('-') {
        Some((first, last)) => port(first).zip(port(last)),
        None => port(text).map(|port| (port, port)),
    };
    let Some((first, last)) = range else {
        return Err(source.invalid(
            "replication_ports",
            ports,
            "must be \"PORT\" or \"FIRST-LAST\" with ports 1..=65535",
        ));
    };
    if first > last {
        return Err(source.invalid(
            "replication_ports",
            ports,
            format!("first port {first} is above last port {last}"),
        ));
    }
    Ok(first..=last)
}

/// A unicast IP address: not unspecified, multicast or the IPv4 broadcast address.
fn parse_unicast(
    source: &Source<'_>,
    key: &str,
    text: &Spanned<String>,
) -> Result<IpAddr, ConfigError> {
    let address = text
        .get_ref()
        .parse::<IpAddr>()
        .map_err(|_| source.invalid(key, text, "not an IP address"))?;
    let broadcast = match address {
        IpAddr::V4(v4) => v4.is_broadcast(),
        IpAddr::V6(_) => false,
    };
    if address.is_unspecified() || address.is_multicast() || broadcast {
        return Err(source.invalid(key, text, "must be a unicast address"));
    }
    Ok(address)
}

fn family(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// The example of the module documentation.
    const EXAMPLE: &str = r#"
cluster_id = 7
node_id = 1
peer_node_id = 2
key_file = "/etc/ha-daemon/cluster.key"
replication_ports = "7788-7799"
control_group = "hacluster"

[heartbeat]
interval_ms = 5
port = 7400
echo_port = 7401
dscp = 48

[detector]
dead_after_min_ms = 17
dead_after_max_ms = 250
rise = 3
false_down_target = 1e-6
unverified_grace_ms = 1000

[realtime]
enabled = true
priority = 10
lock_memory = true

[[link]]
name = "b2b"
interface = "eth1"
local = "192.0.2.1"
peer = "192.0.2.2"

[[link]]
name = "lan"
interface = "enp3s0.42"
local = "2001:db8::1"
peer = "2001:db8::2"
"#;

    /// The required root keys, four lines.
    const ROOT: &str =
        "cluster_id = 7\nnode_id = 1\npeer_node_id = 2\nkey_file = \"cluster.key\"\n";

    /// One valid link, five lines.
    const LINK: &str = "[[link]]\nname = \"b2b\"\ninterface = \"eth1\"\nlocal = \"192.0.2.1\"\npeer = \"192.0.2.2\"\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/ha-daemon/cluster.toml"))
    }

    /// The error for `text`, as displayed, with the file named `cluster.toml`.
    fn error(text: &str) -> String {
        Config::parse(text, Path::new("cluster.toml"))
            .expect_err("the text is invalid")
            .to_string()
    }

    fn b2b() -> LinkSettings {
        LinkSettings {
            name: "b2b".to_owned(),
            interface: "eth1".to_owned(),
            local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        }
    }

    #[test]
    fn the_documented_example_parses_to_its_values() {
        let config = parse(EXAMPLE).expect("valid");
        assert_eq!(
            config,
            Config {
                cluster_id: 7,
                node_id: 1,
                peer_node_id: 2,
                key_file: PathBuf::from("/etc/ha-daemon/cluster.key"),
                bpf_pin_directory: PathBuf::from("/sys/fs/bpf/ha-daemon/cluster-7-node-1"),
                control_socket: PathBuf::from("/run/ha-daemon/cluster-7-node-1.sock"),
                control_group: Some("hacluster".to_owned()),
                ebpf: true,
                replication_ports: 7788..=7799,
                heartbeat: HeartbeatSettings::default(),
                detector: DetectorConfig::for_interval(Duration::from_millis(5)),
                realtime: RealtimeSettings::default(),
                links: vec![
                    b2b(),
                    LinkSettings {
                        name: "lan".to_owned(),
                        interface: "enp3s0.42".to_owned(),
                        local: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                        peer: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
                    },
                ],
                group: SupervisionSettings::DEFAULT,
                resources: Vec::new(),
                cluster: None,
            }
        );
    }

    #[test]
    fn optional_keys_take_their_defaults() {
        let config = parse(&format!("{ROOT}{LINK}")).expect("valid");
        assert_eq!(config.replication_ports, DEFAULT_REPLICATION_PORTS);
        assert_eq!(
            config.control_socket,
            PathBuf::from("/run/ha-daemon/cluster-7-node-1.sock")
        );
        assert_eq!(config.control_group, None);
        assert_eq!(config.heartbeat, HeartbeatSettings::default());
        assert_eq!(config.detector, DetectorConfig::default());
        assert_eq!(
            config.realtime,
            RealtimeSettings {
                enabled: true,
                priority: 10,
                lock_memory: true
            }
        );
        assert_eq!(config.links, [b2b()]);
    }

    #[test]
    fn a_relative_key_file_is_relative_to_the_config_file() {
        let config = parse(&format!("{ROOT}{LINK}")).expect("valid");
        assert_eq!(config.key_file, Path::new("/etc/ha-daemon/cluster.key"));
        let config =
            Config::parse(&format!("{ROOT}{LINK}"), Path::new("cluster.toml")).expect("valid");
        assert_eq!(config.key_file, Path::new("cluster.key"));
    }

    #[test]
    fn detector_defaults_follow_the_interval_and_keys_override_them() {
        let config =
            parse(&format!("{ROOT}[heartbeat]\ninterval_ms = 100\n{LINK}")).expect("valid");
        assert_eq!(config.heartbeat.interval, Duration::from_millis(100));
        assert_eq!(
            config.detector,
            DetectorConfig::for_interval(Duration::from_millis(100))
        );

        let text = format!(
            "{ROOT}[detector]\ndead_after_min_ms = 20\ndead_after_max_ms = 400\nrise = 5\n\
             false_down_target = 1e-9\nunverified_grace_ms = 2000\n{LINK}"
        );
        let detector = parse(&text).expect("valid").detector;
        assert_eq!(
            detector,
            DetectorConfig {
                dead_after_min: Duration::from_millis(20),
                dead_after_max: Duration::from_millis(400),
                rise: 5,
                false_down_target: 1e-9,
                unverified_grace: Duration::from_secs(2),
                ..DetectorConfig::default()
            }
        );
    }

    #[test]
    fn other_settings_are_read() {
        let text = format!(
            "{ROOT}replication_ports = \"7000\"\n[heartbeat]\nport = 9000\necho_port = 9001\ndscp = 0\n\
             [realtime]\nenabled = false\npriority = 99\nlock_memory = false\n{LINK}"
        );
        let config = parse(&text).expect("valid");
        assert_eq!(config.replication_ports, 7000..=7000);
        assert_eq!(
            config.heartbeat,
            HeartbeatSettings {
                interval: Duration::from_millis(5),
                port: 9000,
                echo_port: 9001,
                dscp: 0
            }
        );
        assert_eq!(
            config.realtime,
            RealtimeSettings {
                enabled: false,
                priority: 99,
                lock_memory: false
            }
        );
    }

    #[test]
    fn eight_links_fill_the_slots_and_a_ninth_is_refused() {
        let links: String = (0..9)
            .map(|slot| {
                format!(
                    "[[link]]\nname = \"l{slot}\"\ninterface = \"eth{slot}\"\n\
                     local = \"10.0.{slot}.1\"\npeer = \"10.0.{slot}.2\"\n"
                )
            })
            .collect();
        let eight = links.lines().take(5 * 8).collect::<Vec<_>>().join("\n");
        let config = parse(&format!("{ROOT}{eight}")).expect("valid");
        assert_eq!(config.links.len(), LINK_SLOTS);
        assert_eq!(config.links[7].name, "l7");
        assert_eq!(
            error(&format!("{ROOT}{links}")),
            "cluster.toml:45:1: link[8]: at most 8 links are supported"
        );
    }

    #[test]
    fn errors_name_the_file_line_column_key_and_problem() {
        let cases = [
            // Syntax.
            (
                "cluster_id = 7\ncluster_id = 8\n",
                "cluster.toml:2:1: duplicate key",
            ),
            (
                "cluster_id = 7\n[heartbeat\n",
                "cluster.toml:2:11: unclosed table, expected `]`",
            ),
            // Types, unknown and missing keys.
            (
                &format!("{ROOT}[heartbeat]\nport = \"x\"\n{LINK}"),
                "cluster.toml:6:8: heartbeat.port: invalid type: string \"x\", expected i64",
            ),
            (
                &format!("{ROOT}colour = 1\n{LINK}"),
                "cluster.toml:5:1: colour: unknown field `colour`, expected one of `cluster_id`, \
                 `node_id`, `peer_node_id`, `key_file`, `bpf_pin_directory`, `control_socket`, \
                 `control_group`, `ebpf`, \
                 `replication_ports`, `heartbeat`, `detector`, `realtime`, `link`, `group`, `resource`, `cluster`",
            ),
            (
                &format!("{ROOT}bpf_pin_directory = \"bpf\"\n{LINK}"),
                "cluster.toml:5:21: bpf_pin_directory = \"bpf\": must be an absolute path",
            ),
            (
                &format!("{ROOT}control_socket = \"ha.sock\"\n{LINK}"),
                "cluster.toml:5:18: control_socket = \"ha.sock\": must be an absolute path",
            ),
            (
                &format!("{ROOT}control_group = \"\"\n{LINK}"),
                "cluster.toml:5:17: control_group = \"\": must not be empty",
            ),
            (
                &format!("{ROOT}[realtime]\nnice = 1\n{LINK}"),
                "cluster.toml:6:1: realtime.nice: unknown field `nice`, expected one of `enabled`, \
                 `priority`, `lock_memory`",
            ),
            (
                &format!("{ROOT}{LINK}mtu = 9000\n"),
                "cluster.toml:10:1: link[0].mtu: unknown field `mtu`, expected one of `name`, \
                 `interface`, `local`, `peer`",
            ),
            (
                &format!("node_id = 1\n{LINK}"),
                "cluster.toml:1:1: missing field `cluster_id`",
            ),
            (
                &format!("{ROOT}{LINK}[[link]]\nname = \"lan\"\n"),
                "cluster.toml:10:1: link[1]: missing field `interface`",
            ),
            // Root keys.
            (
                &format!("{ROOT}{LINK}").replace("cluster_id = 7", "cluster_id = 0"),
                "cluster.toml:1:14: cluster_id = 0: must be 1..=4294967295",
            ),
            (
                &format!("{ROOT}{LINK}").replace("node_id = 1", "node_id = 65536"),
                "cluster.toml:2:11: node_id = 65536: must be 1..=65535",
            ),
            (
                &format!("{ROOT}{LINK}").replace("peer_node_id = 2", "peer_node_id = 1"),
                "cluster.toml:3:16: peer_node_id = 1: must differ from node_id",
            ),
            (
                &format!("{ROOT}{LINK}").replace("\"cluster.key\"", "\"\""),
                "cluster.toml:4:12: key_file = \"\": must not be empty",
            ),
            (
                &format!("{ROOT}replication_ports = \"7799-7788\"\n{LINK}"),
                "cluster.toml:5:21: replication_ports = \"7799-7788\": first port 7799 is above \
                 last port 7788",
            ),
            (
                &format!("{ROOT}replication_ports = \"0-10\"\n{LINK}"),
                "cluster.toml:5:21: replication_ports = \"0-10\": must be \"PORT\" or \
                 \"FIRST-LAST\" with ports 1..=65535",
            ),
            (
                &format!("{ROOT}replication_ports = \"7000-8000\"\n{LINK}"),
                "cluster.toml:5:21: replication_ports = \"7000-8000\": must not hold heartbeat.port \
                 (7400)",
            ),
            // [heartbeat]
            (
                &format!("{ROOT}[heartbeat]\ninterval_ms = 0\n{LINK}"),
                "cluster.toml:6:15: heartbeat.interval_ms = 0: must be 1..=1000",
            ),
            (
                &format!("{ROOT}[heartbeat]\nport = 7790\n{LINK}"),
                "cluster.toml:6:8: heartbeat.port = 7790: must lie outside replication_ports \
                 (7788-7799)",
            ),
            (
                &format!(
                    "{ROOT}replication_ports = \"7000-8000\"\n[heartbeat]\nport = 7400\n{LINK}"
                ),
                "cluster.toml:7:8: heartbeat.port = 7400: must lie outside replication_ports \
                 (7000-8000)",
            ),
            (
                &format!("{ROOT}[heartbeat]\necho_port = 7788\n{LINK}"),
                "cluster.toml:6:13: heartbeat.echo_port = 7788: must lie outside \
                 replication_ports (7788-7799)",
            ),
            (
                &format!("{ROOT}[heartbeat]\necho_port = 7400\n{LINK}"),
                "cluster.toml:6:13: heartbeat.echo_port = 7400: must differ from heartbeat.port",
            ),
            (
                &format!("{ROOT}[heartbeat]\ndscp = 64\n{LINK}"),
                "cluster.toml:6:8: heartbeat.dscp = 64: must be 0..=63",
            ),
            // [detector]
            (
                &format!("{ROOT}[detector]\ndead_after_min_ms = 5\n{LINK}"),
                "cluster.toml:6:21: detector.dead_after_min_ms: must be at least two intervals \
                 (10ms), got 5ms",
            ),
            (
                &format!("{ROOT}[detector]\ndead_after_min_ms = 300\n{LINK}"),
                "cluster.toml:5:1: detector.dead_after_max_ms: must be between dead_after_min \
                 (300ms) and 60 s, got 250ms",
            ),
            (
                &format!("{ROOT}[detector]\ndead_after_max_ms = -1\n{LINK}"),
                "cluster.toml:6:21: detector.dead_after_max_ms = -1: must be 0..=60000",
            ),
            (
                &format!("{ROOT}[detector]\nrise = 0\n{LINK}"),
                "cluster.toml:6:8: detector.rise = 0: must be 1..=4294967295",
            ),
            (
                &format!("{ROOT}[detector]\nrise = 500\n{LINK}"),
                "cluster.toml:6:8: detector.dampening.max_rise: must be at least rise (500), \
                 got 400",
            ),
            (
                &format!("{ROOT}[detector]\nfalse_down_target = 0.5\n{LINK}"),
                "cluster.toml:6:21: detector.false_down_target: must be above 0 and at most \
                 0.01, got 0.5",
            ),
            (
                &format!("{ROOT}[detector]\nunverified_grace_ms = 10\n{LINK}"),
                "cluster.toml:6:23: detector.unverified_grace_ms: must be between \
                 dead_after_min (17ms) and 60 s, got 10ms",
            ),
            // [realtime]
            (
                &format!("{ROOT}[realtime]\npriority = 100\n{LINK}"),
                "cluster.toml:6:12: realtime.priority = 100: must be 1..=99",
            ),
            // [[link]]
            (
                ROOT,
                "cluster.toml:1:1: link: at least one [[link]] is required",
            ),
            (
                &format!("{ROOT}link = []\n"),
                "cluster.toml:5:8: link: at least one [[link]] is required",
            ),
            (
                &format!("{ROOT}{LINK}").replace("\"b2b\"", "\"b2b link\""),
                "cluster.toml:6:8: link[0].name = \"b2b link\": must be 1 to 32 of [A-Za-z0-9_-]",
            ),
            (
                &format!("{ROOT}{LINK}").replace("\"eth1\"", "\"eth1:0\""),
                "cluster.toml:7:13: link[0].interface = \"eth1:0\": must be an interface name: \
                 1 to 15 bytes, no '/', ':' or whitespace, not '.' or '..'",
            ),
            (
                &format!("{ROOT}{LINK}").replace("\"eth1\"", "\"a-very-long-name\""),
                "cluster.toml:7:13: link[0].interface = \"a-very-long-name\": must be an \
                 interface name: 1 to 15 bytes, no '/', ':' or whitespace, not '.' or '..'",
            ),
            (
                &format!("{ROOT}{LINK}{}", LINK.replace("eth1", "eth2")),
                "cluster.toml:11:8: link[1].name = \"b2b\": already used by link[0]",
            ),
            (
                &format!("{ROOT}{LINK}{}", LINK.replace("b2b", "lan")),
                "cluster.toml:12:13: link[1].interface = \"eth1\": already used by link[0]",
            ),
            (
                &format!("{ROOT}{LINK}").replace("192.0.2.1", "192.0.2.300"),
                "cluster.toml:8:9: link[0].local = \"192.0.2.300\": not an IP address",
            ),
            (
                &format!("{ROOT}{LINK}").replace("192.0.2.1", "224.0.0.1"),
                "cluster.toml:8:9: link[0].local = \"224.0.0.1\": must be a unicast address",
            ),
            (
                &format!("{ROOT}{LINK}").replace("192.0.2.2", "0.0.0.0"),
                "cluster.toml:9:8: link[0].peer = \"0.0.0.0\": must be a unicast address",
            ),
            (
                &format!("{ROOT}{LINK}").replace("192.0.2.2", "2001:db8::2"),
                "cluster.toml:9:8: link[0].peer = \"2001:db8::2\": 2001:db8::2 is IPv6, but \
                 local 192.0.2.1 is IPv4",
            ),
            (
                &format!("{ROOT}{LINK}").replace("192.0.2.2", "192.0.2.1"),
                "cluster.toml:9:8: link[0].peer = \"192.0.2.1\": must differ from local",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(text, expected)| error(text) != *expected)
            .map(|(text, expected)| format!("{text}\n  got: {}\n want: {expected}", error(text)))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    }

    #[test]
    fn inline_tables_and_dotted_keys_are_located_too() {
        assert_eq!(
            error(&format!("{ROOT}heartbeat = {{ dscp = 99 }}\n{LINK}")),
            "cluster.toml:5:22: heartbeat.dscp = 99: must be 0..=63"
        );
        assert_eq!(
            error(&format!("{ROOT}realtime.priority = \"high\"\n{LINK}")),
            "cluster.toml:5:21: realtime.priority: invalid type: string \"high\", expected i64"
        );
        assert_eq!(
            error(&format!(
                "{ROOT}link = [{{ name = \"a\", interface = \"eth1\", local = \"192.0.2.1\" }}]\n"
            )),
            "cluster.toml:5:9: link[0]: missing field `peer`"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = format!("# Zürich ↔ Genève\n{ROOT}{LINK}").replace(
            "name = \"b2b\"",
            "name = \"b2b\" # ↔\nhints = { \"ü\" = 1 }",
        );
        assert_eq!(
            error(&text),
            "cluster.toml:8:1: link[0].hints: unknown field `hints`, expected one of `name`, \
             `interface`, `local`, `peer`"
        );
        let text = format!("{ROOT}{LINK}").replace("\"b2b\"", "\"bäd\"");
        assert_eq!(
            error(&text),
            "cluster.toml:6:8: link[0].name = \"bäd\": must be 1 to 32 of [A-Za-z0-9_-]"
        );
        let source = Source {
            text: "ab\nçd€f\n",
            path: Path::new("x.toml"),
        };
        let error = source.error_at("ab\nçd€".len(), "m");
        assert_eq!((error.line, error.column), (2, 4));
    }

    #[test]
    fn read_errors_have_no_position() {
        let path = std::env::temp_dir().join(format!(
            "ha-daemon-config-test-{}-missing.toml",
            std::process::id()
        ));
        let error = Config::load(&path).expect_err("no such file");
        assert_eq!((error.line, error.column), (0, 0));
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot read: ", path.display())),
            "{error}"
        );
    }

    #[test]
    fn load_reads_and_parses_the_file() {
        let path = std::env::temp_dir().join(format!(
            "ha-daemon-config-test-{}-load.toml",
            std::process::id()
        ));
        std::fs::write(&path, EXAMPLE).expect("write the temporary file");
        let loaded = Config::load(&path);
        std::fs::remove_file(&path).expect("remove the temporary file");
        assert_eq!(loaded, parse(EXAMPLE));
    }
}
