//! `[group]` and `[[resource]]`: the resource group, members in start order.
//!
//! ```toml
//! [group]                        # how a held group is watched (all optional)
//! monitor_interval_ms = 10000    # 100..=3600000
//! max_restarts = 3               # restarts of one member within the window, 0..=100
//! restart_window_ms = 600000     # 1000..=86400000
//!
//! [[resource]]                   # member 0 starts first and stops last
//! name = "data"                  # required, unique, 1 to 32 of [A-Za-z0-9_-]
//! agent = "drbd"                 # drbd | mount | lxc | vip | exec | ocf:PROVIDER:TYPE
//! start_timeout_ms = 60000       # 1..=3600000, each
//! stop_timeout_ms = 60000
//! monitor_timeout_ms = 20000
//! drbd_resource = "r0"           # drbd: required
//! drbdadm = "drbdadm"            # drbd: command, absolute or from PATH
//! drbdsetup = "drbdsetup"
//!
//! [[resource]]
//! name = "fs"
//! agent = "mount"
//! device = "/dev/drbd0"          # mount: required, absolute
//! mountpoint = "/srv/data"       # mount: required, absolute
//! fstype = "ext4"                # mount: required
//! options = ["noatime"]          # mount: default none
//! fsck = false                   # mount: run `fsck -p` first
//! allow_non_empty = false        # mount: mount over a non-empty directory
//! fsck_command = "fsck"
//!
//! [[resource]]
//! name = "web"
//! agent = "lxc"
//! container = "web"              # lxc: required
//! lxcpath = "/srv/data/lxc"      # lxc: required, absolute
//! user = "web"                   # lxc, exec: run the commands as this user
//! lxc_start = "lxc-start"        # lxc: commands, absolute or from PATH
//! lxc_stop = "lxc-stop"
//! lxc_info = "lxc-info"
//! announce_ms = [0, 50, 200, 1000]   # lxc: rounds for the container's static addresses
//!
//! [[resource]]
//! name = "ip"
//! agent = "vip"
//! interface = "eth0"             # vip: required
//! address = "192.0.2.10/24"      # vip: required, ADDRESS/PREFIX, IPv4 or IPv6
//! announce_ms = [0, 50, 200, 1000]   # vip, lxc: gratuitous ARP / NA rounds after start
//!
//! [[resource]]
//! name = "app"
//! agent = "exec"
//! start = ["/usr/local/bin/app", "start"]     # exec: required, program and arguments
//! stop = ["/usr/local/bin/app", "stop"]       # exec: required
//! monitor = ["/usr/local/bin/app", "status"]  # exec: required; 0 running, 7 stopped
//! env = { APP_MODE = "ha" }                   # exec: added environment
//!
//! [[resource]]
//! name = "dummy"
//! agent = "ocf:heartbeat:Dummy"
//! params = { state = "/run/dummy.state" }     # ocf: OCF_RESKEY_<name>
//! ocf_root = "/usr/lib/ocf"                   # ocf
//! ```
//!
//! A key that belongs to another agent is an error naming the agents it belongs to.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::source::Source;
use super::{ConfigError, is_name};
use crate::resource::build::{AgentSettings, ResourceSettings};
use crate::resource::drbd::{DEFAULT_DRBDADM, DEFAULT_DRBDSETUP, DrbdSettings};
use crate::resource::exec::ExecSettings;
use crate::resource::exec::ocf::{DEFAULT_OCF_ROOT, OcfSettings};
use crate::resource::group::Timeouts;
use crate::resource::lxc::{KILL_WAIT, LxcSettings};
use crate::resource::mount::MountSettings;
use crate::resource::supervise::SupervisionSettings;
use crate::resource::vip::{DEFAULT_SCHEDULE, VipSettings};

/// Declares the agent keys of `[[resource]]`: the raw struct (every key optional, with
/// its span) and the list of the keys a table sets.
macro_rules! agent_keys {
    ($($key:ident: $type:ty),* $(,)?) => {
        /// `[[resource]]` as written.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct RawResource {
            name: Spanned<String>,
            agent: Spanned<String>,
            start_timeout_ms: Option<Spanned<i64>>,
            stop_timeout_ms: Option<Spanned<i64>>,
            monitor_timeout_ms: Option<Spanned<i64>>,
            $($key: Option<Spanned<$type>>,)*
        }

        impl RawResource {
            /// The agent keys this table sets, with the byte offset of each value.
            fn agent_keys_set(&self) -> Vec<(&'static str, usize)> {
                let mut set = Vec::new();
                $(if let Some(value) = &self.$key {
                    set.push((stringify!($key), value.span().start));
                })*
                set
            }
        }
    };
}

agent_keys! {
    drbd_resource: String,
    drbdadm: String,
    drbdsetup: String,
    device: String,
    mountpoint: String,
    fstype: String,
    options: Vec<String>,
    fsck: bool,
    allow_non_empty: bool,
    fsck_command: String,
    container: String,
    lxcpath: String,
    user: String,
    lxc_start: String,
    lxc_stop: String,
    lxc_info: String,
    interface: String,
    address: String,
    announce_ms: Vec<i64>,
    start: Vec<String>,
    stop: Vec<String>,
    monitor: Vec<String>,
    env: BTreeMap<String, String>,
    params: BTreeMap<String, String>,
    ocf_root: String,
}

/// The agent keys each agent accepts.
const AGENT_KEYS: &[(&str, &[&str])] = &[
    ("drbd", &["drbd_resource", "drbdadm", "drbdsetup"]),
    (
        "mount",
        &[
            "device",
            "mountpoint",
            "fstype",
            "options",
            "fsck",
            "allow_non_empty",
            "fsck_command",
        ],
    ),
    (
        "lxc",
        &[
            "container",
            "lxcpath",
            "user",
            "lxc_start",
            "lxc_stop",
            "lxc_info",
            "announce_ms",
        ],
    ),
    ("vip", &["interface", "address", "announce_ms"]),
    ("exec", &["start", "stop", "monitor", "user", "env"]),
    ("ocf", &["params", "ocf_root"]),
];

/// `[group]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    monitor_interval_ms: Option<Spanned<i64>>,
    max_restarts: Option<Spanned<i64>>,
    restart_window_ms: Option<Spanned<i64>>,
}

impl RawGroup {
    pub(super) fn into_settings(
        self,
        source: &Source<'_>,
    ) -> Result<SupervisionSettings, ConfigError> {
        let default = SupervisionSettings::DEFAULT;
        let ms = |key: &str, value: &Option<Spanned<i64>>, range, default: Duration| {
            source
                .optional(key, value, range, millis(default))
                .map(Duration::from_millis)
        };
        Ok(SupervisionSettings {
            monitor_interval: ms(
                "group.monitor_interval_ms",
                &self.monitor_interval_ms,
                100..=3_600_000,
                default.monitor_interval,
            )?,
            max_restarts: source.optional(
                "group.max_restarts",
                &self.max_restarts,
                0..=100,
                default.max_restarts,
            )?,
            restart_window: ms(
                "group.restart_window_ms",
                &self.restart_window_ms,
                1000..=86_400_000,
                default.restart_window,
            )?,
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Parses every `[[resource]]`, in order; names must be unique.
pub(super) fn parse_resources(
    source: &Source<'_>,
    resources: Option<Vec<Spanned<RawResource>>>,
) -> Result<Vec<ResourceSettings>, ConfigError> {
    let mut parsed: Vec<ResourceSettings> = Vec::new();
    for (index, raw) in resources.unwrap_or_default().into_iter().enumerate() {
        let table = raw.span().start;
        let resource = raw
            .into_inner()
            .into_settings(source, index, table, &parsed)?;
        parsed.push(resource);
    }
    Ok(parsed)
}

/// Most milliseconds any `*_timeout_ms` key accepts (an hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl RawResource {
    /// Resource `index`, whose table starts at byte `table`.
    fn into_settings(
        self,
        source: &Source<'_>,
        index: usize,
        table: usize,
        earlier: &[ResourceSettings],
    ) -> Result<ResourceSettings, ConfigError> {
        let at = Place {
            source,
            index,
            table,
        };
        let name = self.name.get_ref();
        if !is_name(name) {
            return Err(at.invalid("name", &self.name, "must be 1 to 32 of [A-Za-z0-9_-]"));
        }
        if let Some(other) = earlier.iter().position(|r| r.name == *name) {
            return Err(at.invalid(
                "name",
                &self.name,
                format!("already used by resource[{other}]"),
            ));
        }
        let agent = self.agent.get_ref().as_str();
        let kind = if agent.starts_with("ocf:") {
            "ocf"
        } else {
            agent
        };
        let Some((_, allowed)) = AGENT_KEYS.iter().find(|(known, _)| *known == kind) else {
            return Err(at.invalid(
                "agent",
                &self.agent,
                "must be drbd, mount, lxc, vip, exec or ocf:PROVIDER:TYPE",
            ));
        };
        for (key, offset) in self.agent_keys_set() {
            if !allowed.contains(&key) {
                let owners: Vec<&str> = AGENT_KEYS
                    .iter()
                    .filter(|(_, keys)| keys.contains(&key))
                    .map(|(owner, _)| *owner)
                    .collect();
                return Err(source.error_at(
                    offset,
                    format!(
                        "{}: not a setting of agent {kind} (only of {})",
                        at.key(key),
                        owners.join(", ")
                    ),
                ));
            }
        }
        let timeout = |key: &str, value: &Option<Spanned<i64>>, default: Duration| {
            source
                .optional(&at.key(key), value, 1..=MAX_TIMEOUT_MS, millis(default))
                .map(Duration::from_millis)
        };
        let timeouts = Timeouts {
            start: timeout(
                "start_timeout_ms",
                &self.start_timeout_ms,
                Timeouts::DEFAULT.start,
            )?,
            stop: timeout(
                "stop_timeout_ms",
                &self.stop_timeout_ms,
                Timeouts::DEFAULT.stop,
            )?,
            monitor: timeout(
                "monitor_timeout_ms",
                &self.monitor_timeout_ms,
                Timeouts::DEFAULT.monitor,
            )?,
        };
        let agent = match kind {
            "drbd" => AgentSettings::Drbd(DrbdSettings {
                resource: at.text(
                    "drbd_resource",
                    at.required("drbd_resource", &self.drbd_resource)?,
                )?,
                drbdadm: at.program("drbdadm", &self.drbdadm, DEFAULT_DRBDADM)?,
                drbdsetup: at.program("drbdsetup", &self.drbdsetup, DEFAULT_DRBDSETUP)?,
            }),
            "mount" => AgentSettings::Mount(MountSettings {
                device: at.absolute("device", at.required("device", &self.device)?)?,
                mountpoint: at
                    .absolute("mountpoint", at.required("mountpoint", &self.mountpoint)?)?,
                fstype: at.text("fstype", at.required("fstype", &self.fstype)?)?,
                options: at.words("options", &self.options)?,
                fsck: self.fsck.is_some_and(Spanned::into_inner),
                allow_non_empty: self.allow_non_empty.is_some_and(Spanned::into_inner),
                fsck_command: at.program(
                    "fsck_command",
                    &self.fsck_command,
                    MountSettings::DEFAULT_FSCK_COMMAND,
                )?,
            }),
            "lxc" => AgentSettings::Lxc(LxcSettings {
                name: at.text("container", at.required("container", &self.container)?)?,
                lxcpath: at.absolute("lxcpath", at.required("lxcpath", &self.lxcpath)?)?,
                user: at.user(&self.user)?,
                start_timeout: timeouts.start,
                stop_timeout: lxc_shutdown(&at, &self.stop_timeout_ms, timeouts.stop)?,
                lxc_start: at.program("lxc_start", &self.lxc_start, "lxc-start")?,
                lxc_stop: at.program("lxc_stop", &self.lxc_stop, "lxc-stop")?,
                lxc_info: at.program("lxc_info", &self.lxc_info, "lxc-info")?,
                announce_schedule: at.schedule(&self.announce_ms)?,
            }),
            "vip" => {
                let address = at.required("address", &self.address)?;
                let (ip, prefix_len) = parse_cidr(address.get_ref())
                    .map_err(|problem| at.invalid("address", address, problem))?;
                AgentSettings::Vip(VipSettings {
                    interface: at.text("interface", at.required("interface", &self.interface)?)?,
                    address: ip,
                    prefix_len,
                    announce_schedule: at.schedule(&self.announce_ms)?,
                })
            }
            "exec" => AgentSettings::Exec(ExecSettings {
                name: name.clone(),
                start: at.command("start", at.required("start", &self.start)?)?,
                stop: at.command("stop", at.required("stop", &self.stop)?)?,
                monitor: at.command("monitor", at.required("monitor", &self.monitor)?)?,
                user: at.user(&self.user)?,
                env: at.names("env", &self.env, "environment variable")?,
            }),
            _ => {
                let mut parts = agent.splitn(3, ':').skip(1);
                let (Some(provider), Some(kind)) = (parts.next(), parts.next()) else {
                    return Err(at.invalid("agent", &self.agent, "must be ocf:PROVIDER:TYPE"));
                };
                let plain = |part: &str| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                        && part != "."
                        && part != ".."
                };
                if !plain(provider) || !plain(kind) {
                    return Err(at.invalid(
                        "agent",
                        &self.agent,
                        "PROVIDER and TYPE must be names of [A-Za-z0-9_.-]",
                    ));
                }
                AgentSettings::Ocf(OcfSettings {
                    instance: name.clone(),
                    provider: provider.to_owned(),
                    agent: kind.to_owned(),
                    params: at.names("params", &self.params, "parameter")?,
                    ocf_root: match &self.ocf_root {
                        Some(root) => at.absolute("ocf_root", root)?,
                        None => PathBuf::from(DEFAULT_OCF_ROOT),
                    },
                })
            }
        };
        Ok(ResourceSettings {
            name: self.name.into_inner(),
            timeouts,
            agent,
        })
    }
}

/// The clean-shutdown time of a container: what `stop_timeout_ms` leaves after the
/// wait for a kill, [`KILL_WAIT`].
fn lxc_shutdown(
    at: &Place<'_, '_>,
    raw: &Option<Spanned<i64>>,
    stop: Duration,
) -> Result<Duration, ConfigError> {
    match stop.checked_sub(KILL_WAIT) {
        Some(shutdown) if !shutdown.is_zero() => Ok(shutdown),
        _ => Err(match raw {
            Some(value) => at.invalid(
                "stop_timeout_ms",
                value,
                format!(
                    "must exceed {} ms (the wait after a kill)",
                    KILL_WAIT.as_millis()
                ),
            ),
            None => at.missing("stop_timeout_ms"),
        }),
    }
}

/// Where in the file a resource is: makes its keys' errors.
struct Place<'s, 'a> {
    source: &'s Source<'a>,
    index: usize,
    table: usize,
}

impl Place<'_, '_> {
    fn key(&self, field: &str) -> String {
        format!("resource[{}].{field}", self.index)
    }

    fn invalid<T: std::fmt::Debug>(
        &self,
        field: &str,
        value: &Spanned<T>,
        problem: impl std::fmt::Display,
    ) -> ConfigError {
        self.source.invalid(&self.key(field), value, problem)
    }

    fn missing(&self, field: &str) -> ConfigError {
        self.source.error_at(
            self.table,
            format!("{}: required for this agent", self.key(field)),
        )
    }

    fn required<'v, T>(
        &self,
        field: &str,
        value: &'v Option<Spanned<T>>,
    ) -> Result<&'v Spanned<T>, ConfigError> {
        value.as_ref().ok_or_else(|| self.missing(field))
    }

    /// Non-empty text without control characters.
    fn text(&self, field: &str, value: &Spanned<String>) -> Result<String, ConfigError> {
        let text = value.get_ref();
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(self.invalid(
                field,
                value,
                "must be non-empty text without control characters",
            ));
        }
        Ok(text.clone())
    }

    fn absolute(&self, field: &str, value: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        if !value.get_ref().starts_with('/') {
            return Err(self.invalid(field, value, "must be an absolute path"));
        }
        Ok(PathBuf::from(value.get_ref()))
    }

    /// A program: an absolute path, or a bare name looked up in `PATH`.
    fn program(
        &self,
        field: &str,
        value: &Option<Spanned<String>>,
        default: &str,
    ) -> Result<PathBuf, ConfigError> {
        let Some(value) = value else {
            return Ok(PathBuf::from(default));
        };
        let text = value.get_ref();
        if text.is_empty() || (text.contains('/') && !text.starts_with('/')) {
            return Err(self.invalid(
                field,
                value,
                "must be an absolute path or a program name found in PATH",
            ));
        }
        Ok(PathBuf::from(text))
    }

    fn words(
        &self,
        field: &str,
        value: &Option<Spanned<Vec<String>>>,
    ) -> Result<Vec<String>, ConfigError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        if value
            .get_ref()
            .iter()
            .any(|word| word.is_empty() || word.contains(','))
        {
            return Err(self.invalid(
                field,
                value,
                "each option must be one non-empty word without ','",
            ));
        }
        Ok(value.get_ref().clone())
    }

    /// A command line: a program (see [`Place::program`]) and its arguments.
    fn command(
        &self,
        field: &str,
        value: &Spanned<Vec<String>>,
    ) -> Result<Vec<String>, ConfigError> {
        let words = value.get_ref();
        let program_ok = words.first().is_some_and(|program| {
            !program.is_empty() && (!program.contains('/') || program.starts_with('/'))
        });
        if !program_ok {
            return Err(self.invalid(
                field,
                value,
                "must start with an absolute path or a program name found in PATH",
            ));
        }
        Ok(words.clone())
    }

    /// A table of names (environment variables, OCF parameters) to text values.
    fn names(
        &self,
        field: &str,
        value: &Option<Spanned<BTreeMap<String, String>>>,
        what: &str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(value) = value else {
            return Ok(BTreeMap::new());
        };
        let bad = value.get_ref().iter().find(|(name, text)| {
            name.is_empty()
                || name.starts_with(|c: char| c.is_ascii_digit())
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || text.contains('\0')
        });
        if let Some((name, _)) = bad {
            return Err(self.invalid(
                field,
                value,
                format!("{what} {name:?}: names are [A-Za-z_][A-Za-z0-9_]*, values without NUL"),
            ));
        }
        Ok(value.get_ref().clone())
    }

    fn user(&self, value: &Option<Spanned<String>>) -> Result<Option<String>, ConfigError> {
        value
            .as_ref()
            .map(|user| self.text("user", user))
            .transpose()
    }

    /// Ascending offsets in milliseconds, 1 to 16 of them, each at most a minute.
    fn schedule(&self, value: &Option<Spanned<Vec<i64>>>) -> Result<Vec<Duration>, ConfigError> {
        let Some(value) = value else {
            return Ok(DEFAULT_SCHEDULE.to_vec());
        };
        let offsets = value.get_ref();
        let valid = (1..=16).contains(&offsets.len())
            && offsets.iter().all(|ms| (0..=60_000).contains(ms))
            && offsets.windows(2).all(|pair| pair[0] < pair[1]);
        if !valid {
            return Err(self.invalid(
                "announce_ms",
                value,
                "must be 1 to 16 ascending offsets, each 0..=60000",
            ));
        }
        Ok(offsets
            .iter()
            .map(|&ms| Duration::from_millis(ms.unsigned_abs()))
            .collect())
    }
}

/// `ADDRESS/PREFIX` with a prefix that fits the family.
fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (address, prefix) = text
        .split_once('/')
        .ok_or_else(|| "must be ADDRESS/PREFIX, e.g. 192.0.2.10/24".to_owned())?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let most = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix
        .parse::<u8>()
        .ok()
        .filter(|prefix| *prefix <= most)
        .ok_or_else(|| format!("prefix {prefix:?} must be 0..={most}"))?;
    Ok((address, prefix))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const NODE: &str = r#"
cluster_id = 7
node_id = 1
peer_node_id = 2
key_file = "cluster.key"

[[link]]
name = "b2b"
interface = "eth1"
local = "192.0.2.1"
peer = "192.0.2.2"
"#;

    /// The example of the module documentation, after the node's keys.
    fn example() -> String {
        let doc = include_str!("resources.rs");
        let start = doc.find("//! ```toml\n").expect("example start") + 12;
        let end = start + doc[start..].find("//! ```\n").expect("example end");
        let toml: String = doc[start..end]
            .lines()
            .map(|line| {
                line.strip_prefix("//!")
                    .unwrap_or(line)
                    .trim_start_matches(' ')
            })
            .map(|line| format!("{line}\n"))
            .collect();
        format!("{NODE}\n{toml}")
    }

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("cluster.toml")).map_err(|e| e.to_string())
    }

    fn with(resource: &str) -> String {
        format!("{NODE}\n[[resource]]\n{resource}\n")
    }

    #[test]
    fn the_documented_example_parses_to_its_values() {
        let config = parse(&example()).unwrap();
        assert_eq!(config.group, SupervisionSettings::DEFAULT);
        let names: Vec<&str> = config.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["data", "fs", "web", "ip", "app", "dummy"]);
        assert_eq!(config.resources[0].timeouts, Timeouts::DEFAULT);
        assert_eq!(
            config.resources[0].agent,
            AgentSettings::Drbd(DrbdSettings::new("r0"))
        );
        let AgentSettings::Mount(mount) = &config.resources[1].agent else {
            panic!("{:?}", config.resources[1]);
        };
        assert_eq!(mount.device, PathBuf::from("/dev/drbd0"));
        assert_eq!(mount.options, ["noatime"]);
        let AgentSettings::Lxc(lxc) = &config.resources[2].agent else {
            panic!("{:?}", config.resources[2]);
        };
        assert_eq!(lxc.user.as_deref(), Some("web"));
        assert_eq!(lxc.stop_timeout, Duration::from_secs(50));
        assert_eq!(lxc.announce_schedule, DEFAULT_SCHEDULE);
        assert_eq!(
            config.resources[3].agent,
            AgentSettings::Vip(VipSettings::new(
                "eth0",
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                24
            ))
        );
        let AgentSettings::Exec(exec) = &config.resources[4].agent else {
            panic!("{:?}", config.resources[4]);
        };
        assert_eq!(exec.name, "app");
        assert_eq!(exec.env.get("APP_MODE").map(String::as_str), Some("ha"));
        let AgentSettings::Ocf(ocf) = &config.resources[5].agent else {
            panic!("{:?}", config.resources[5]);
        };
        assert_eq!(
            (ocf.provider.as_str(), ocf.agent.as_str()),
            ("heartbeat", "Dummy")
        );
        assert_eq!(
            ocf.params.get("state").map(String::as_str),
            Some("/run/dummy.state")
        );
    }

    #[test]
    fn no_resources_is_an_empty_group() {
        let config = parse(NODE).unwrap();
        assert!(config.resources.is_empty());
    }

    #[test]
    fn group_and_timeouts_are_read() {
        let text = format!(
            "{NODE}\n[group]\nmonitor_interval_ms = 500\nmax_restarts = 0\n\
             restart_window_ms = 60000\n\n[[resource]]\nname = \"d\"\nagent = \"drbd\"\n\
             drbd_resource = \"r1\"\nstart_timeout_ms = 5\ndrbdadm = \"/opt/drbd/drbdadm\"\n"
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.group.monitor_interval, Duration::from_millis(500));
        assert_eq!(config.group.max_restarts, 0);
        assert_eq!(config.resources[0].timeouts.start, Duration::from_millis(5));
        let AgentSettings::Drbd(drbd) = &config.resources[0].agent else {
            panic!();
        };
        assert_eq!(drbd.drbdadm, PathBuf::from("/opt/drbd/drbdadm"));
    }

    #[test]
    fn errors_name_the_line_column_key_and_problem() {
        let cases = [
            (
                "name = \"x\"\nagent = \"nfs\"",
                "cluster.toml:15:9: resource[0].agent = \"nfs\": must be drbd, mount, lxc, vip, exec or ocf:PROVIDER:TYPE",
            ),
            (
                "name = \"x\"\nagent = \"vip\"\ninterface = \"eth0\"\naddress = \"192.0.2.10/24\"\ndevice = \"/dev/sda\"",
                "cluster.toml:18:10: resource[0].device: not a setting of agent vip (only of mount)",
            ),
            (
                "name = \"x\"\nagent = \"vip\"\ninterface = \"eth0\"",
                "cluster.toml:13:1: resource[0].address: required for this agent",
            ),
            (
                "name = \"x\"\nagent = \"vip\"\ninterface = \"eth0\"\naddress = \"192.0.2.10/33\"",
                "cluster.toml:17:11: resource[0].address = \"192.0.2.10/33\": prefix \"33\" must be 0..=32",
            ),
            (
                "name = \"x\"\nagent = \"vip\"\ninterface = \"eth0\"\naddress = \"192.0.2.10/24\"\nannounce_ms = [0, 200, 50]",
                "cluster.toml:18:15: resource[0].announce_ms = [0, 200, 50]: must be 1 to 16 ascending offsets, each 0..=60000",
            ),
            (
                "name = \"x\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"\nannounce_ms = [0]",
                "cluster.toml:17:15: resource[0].announce_ms: not a setting of agent drbd (only of lxc, vip)",
            ),
            (
                "name = \"x\"\nagent = \"lxc\"\ncontainer = \"c\"\nlxcpath = \"/l\"\nannounce_ms = []",
                "cluster.toml:18:15: resource[0].announce_ms = []: must be 1 to 16 ascending offsets, each 0..=60000",
            ),
            (
                "name = \"x\"\nagent = \"mount\"\ndevice = \"dev/sdb\"\nmountpoint = \"/m\"\nfstype = \"ext4\"",
                "cluster.toml:16:10: resource[0].device = \"dev/sdb\": must be an absolute path",
            ),
            (
                "name = \"x\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"\ndrbdadm = \"bin/drbdadm\"",
                "cluster.toml:17:11: resource[0].drbdadm = \"bin/drbdadm\": must be an absolute path or a program name found in PATH",
            ),
            (
                "name = \"x\"\nagent = \"lxc\"\ncontainer = \"c\"\nlxcpath = \"/l\"\nstop_timeout_ms = 10000",
                "cluster.toml:18:19: resource[0].stop_timeout_ms = 10000: must exceed 10000 ms (the wait after a kill)",
            ),
            (
                "name = \"x\"\nagent = \"ocf:heartbeat\"",
                "cluster.toml:15:9: resource[0].agent = \"ocf:heartbeat\": must be ocf:PROVIDER:TYPE",
            ),
            (
                "name = \"x\"\nagent = \"ocf:../etc:Dummy\"",
                "cluster.toml:15:9: resource[0].agent = \"ocf:../etc:Dummy\": PROVIDER and TYPE must be names of [A-Za-z0-9_.-]",
            ),
            (
                "name = \"x\"\nagent = \"exec\"\nstart = []\nstop = [\"s\"]\nmonitor = [\"m\"]",
                "cluster.toml:16:9: resource[0].start = []: must start with an absolute path or a program name found in PATH",
            ),
            (
                "name = \"x\"\nagent = \"exec\"\nstart = [\"a\"]\nstop = [\"s\"]\nmonitor = [\"m\"]\nenv = { \"A-B\" = \"1\" }",
                "cluster.toml:19:7: resource[0].env = {\"A-B\": \"1\"}: environment variable \"A-B\": names are [A-Za-z_][A-Za-z0-9_]*, values without NUL",
            ),
            (
                "name = \"bad name\"\nagent = \"drbd\"",
                "cluster.toml:14:8: resource[0].name = \"bad name\": must be 1 to 32 of [A-Za-z0-9_-]",
            ),
            (
                "name = \"x\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"\nstart_timeout_ms = 0",
                "cluster.toml:17:20: resource[0].start_timeout_ms = 0: must be 1..=3600000",
            ),
        ];
        for (resource, expected) in cases {
            assert_eq!(parse(&with(resource)).unwrap_err(), expected, "{resource}");
        }
        let duplicate = format!(
            "{}\n[[resource]]\nname = \"x\"\nagent = \"drbd\"\ndrbd_resource = \"r1\"\n",
            with("name = \"x\"\nagent = \"drbd\"\ndrbd_resource = \"r0\"")
        );
        assert_eq!(
            parse(&duplicate).unwrap_err(),
            "cluster.toml:19:8: resource[1].name = \"x\": already used by resource[0]"
        );
        let group = format!("{NODE}\n[group]\nmax_restarts = 101\n");
        assert_eq!(
            parse(&group).unwrap_err(),
            "cluster.toml:14:16: group.max_restarts = 101: must be 0..=100"
        );
    }
}
