//! `[cluster]`: the role decisions (see [`crate::core::cluster`]). Without this table
//! the daemon only watches: it adopts and supervises a running group but never acquires
//! or releases it.
//!
//! ```toml
//! [cluster]
//! witness = ["192.0.2.254"]      # required, 1 to 4 addresses; reachable if any answers
//! fence = ["/usr/local/sbin/fence-peer", "node2"]   # default none: program and arguments
//! fence_timeout_ms = 30000       # 1..=3600000
//! epoch_file = "/var/lib/ha-daemon/cluster-7-node-1.epoch"   # absolute; default
//!                                # /var/lib/ha-daemon/cluster-<cluster_id>-node-<node_id>.epoch
//! preferred_node = 1             # default none (no automatic failback); node_id or peer_node_id
//! failback_delay_ms = 60000      # 0..=86400000
//! isolation_timeout_ms = 2000    # 1..=600000
//! witness_interval_ms = 500      # 1..=60000
//! witness_timeout_ms = 250       # 1..=60000
//! acquire_timeout_ms = 60000     # 1..=3600000, a whole acquire run with its rollback
//! release_timeout_ms = 30000     # 1..=3600000, a whole release run
//! switchover_timeout_ms = 10000  # 1..=3600000, each step of a switchover
//! failure_timeout_ms = 600000    # 0..=86400000
//! startup_wait_ms = 60000        # 0..=86400000: after start, no fence and no takeover
//!                                # until the peer is heard or this has passed (0: off)
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::source::Source;
use crate::core::cluster::ClusterSettings;

/// Default of [`ClusterConfig::fence_timeout`].
pub const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most witness addresses `[cluster]` accepts.
const MAX_WITNESSES: usize = 4;

/// Most milliseconds a run or step timeout accepts (an hour).
const MAX_RUN_MS: u64 = 3_600_000;

/// Most milliseconds a delay accepts (a day).
const MAX_DELAY_MS: u64 = 86_400_000;

/// The cluster settings of this node (`[cluster]`).
///
/// Invariants: `settings` passes [`ClusterSettings::validate`]; `witnesses` holds 1 to 4
/// addresses; `fence`, when set, starts with an absolute path or a bare program name;
/// `epoch_file` is absolute.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// The cluster core's settings (node ids from the root keys, `dead_after_max` from
    /// the detector).
    pub settings: ClusterSettings,
    /// The witness addresses; the witness counts as reachable when any answers.
    pub witnesses: Vec<IpAddr>,
    /// The fence command (program and arguments), run before a takeover after peer loss;
    /// exit 0 means the peer is off.
    pub fence: Option<Vec<String>>,
    /// How long the fence command may run; longer counts as a failure.
    pub fence_timeout: Duration,
    /// Where the epoch is persisted.
    pub epoch_file: PathBuf,
}

/// `[cluster]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    witness: Option<Spanned<Vec<Spanned<String>>>>,
    fence: Option<Spanned<Vec<String>>>,
    fence_timeout_ms: Option<Spanned<i64>>,
    epoch_file: Option<Spanned<String>>,
    preferred_node: Option<Spanned<i64>>,
    failback_delay_ms: Option<Spanned<i64>>,
    isolation_timeout_ms: Option<Spanned<i64>>,
    witness_interval_ms: Option<Spanned<i64>>,
    witness_timeout_ms: Option<Spanned<i64>>,
    acquire_timeout_ms: Option<Spanned<i64>>,
    release_timeout_ms: Option<Spanned<i64>>,
    switchover_timeout_ms: Option<Spanned<i64>>,
    failure_timeout_ms: Option<Spanned<i64>>,
    startup_wait_ms: Option<Spanned<i64>>,
}

/// The root keys `[cluster]` depends on.
pub(super) struct Node {
    pub(super) cluster_id: u32,
    pub(super) node_id: u16,
    pub(super) peer_node_id: u16,
    pub(super) dead_after_max: Duration,
}

impl RawCluster {
    /// The settings, for `node`; `[cluster]` starts at byte `table`.
    pub(super) fn into_config(
        self,
        source: &Source<'_>,
        node: &Node,
        table: usize,
    ) -> Result<ClusterConfig, ConfigError> {
        let ms = |key: &str, value: &Option<Spanned<i64>>, min: u64, max: u64, default| {
            source
                .optional(&format!("cluster.{key}"), value, min..=max, millis(default))
                .map(Duration::from_millis)
        };
        let witnesses = self.witnesses(source, table)?;
        let fence = self
            .fence
            .as_ref()
            .map(|fence| command(source, fence))
            .transpose()?;
        let epoch_file = match &self.epoch_file {
            Some(path) if !path.get_ref().starts_with('/') => {
                return Err(source.invalid("cluster.epoch_file", path, "must be an absolute path"));
            }
            Some(path) => PathBuf::from(path.get_ref()),
            None => PathBuf::from(format!(
                "/var/lib/ha-daemon/cluster-{}-node-{}.epoch",
                node.cluster_id, node.node_id
            )),
        };
        let preferred_node = match &self.preferred_node {
            Some(value) => {
                let id: u16 = source.integer("cluster.preferred_node", value, 1..=u16::MAX)?;
                if id != node.node_id && id != node.peer_node_id {
                    return Err(source.invalid(
                        "cluster.preferred_node",
                        value,
                        format!(
                            "must be node_id ({}) or peer_node_id ({})",
                            node.node_id, node.peer_node_id
                        ),
                    ));
                }
                Some(id)
            }
            None => None,
        };
        let d = ClusterSettings::new(node.node_id, node.peer_node_id, node.dead_after_max);
        let settings = ClusterSettings {
            preferred_node,
            failback_delay: ms(
                "failback_delay_ms",
                &self.failback_delay_ms,
                0,
                MAX_DELAY_MS,
                d.failback_delay,
            )?,
            isolation_timeout: ms(
                "isolation_timeout_ms",
                &self.isolation_timeout_ms,
                1,
                600_000,
                d.isolation_timeout,
            )?,
            witness_interval: ms(
                "witness_interval_ms",
                &self.witness_interval_ms,
                1,
                60_000,
                d.witness_interval,
            )?,
            witness_timeout: ms(
                "witness_timeout_ms",
                &self.witness_timeout_ms,
                1,
                60_000,
                d.witness_timeout,
            )?,
            acquire_timeout: ms(
                "acquire_timeout_ms",
                &self.acquire_timeout_ms,
                1,
                MAX_RUN_MS,
                d.acquire_timeout,
            )?,
            release_timeout: ms(
                "release_timeout_ms",
                &self.release_timeout_ms,
                1,
                MAX_RUN_MS,
                d.release_timeout,
            )?,
            switchover_timeout: ms(
                "switchover_timeout_ms",
                &self.switchover_timeout_ms,
                1,
                MAX_RUN_MS,
                d.switchover_timeout,
            )?,
            failure_timeout: ms(
                "failure_timeout_ms",
                &self.failure_timeout_ms,
                0,
                MAX_DELAY_MS,
                d.failure_timeout,
            )?,
            startup_wait: ms(
                "startup_wait_ms",
                &self.startup_wait_ms,
                0,
                MAX_DELAY_MS,
                d.startup_wait,
            )?,
            fence: fence.is_some(),
            ..d
        };
        settings
            .validate()
            .map_err(|error| source.error_at(table, format!("cluster: {error}")))?;
        Ok(ClusterConfig {
            settings,
            witnesses,
            fence,
            fence_timeout: ms(
                "fence_timeout_ms",
                &self.fence_timeout_ms,
                1,
                MAX_RUN_MS,
                DEFAULT_FENCE_TIMEOUT,
            )?,
            epoch_file,
        })
    }

    fn witnesses(&self, source: &Source<'_>, table: usize) -> Result<Vec<IpAddr>, ConfigError> {
        let Some(list) = &self.witness else {
            return Err(source.error_at(table, "cluster.witness: required (1 to 4 addresses)"));
        };
        if list.get_ref().is_empty() || list.get_ref().len() > MAX_WITNESSES {
            return Err(source.error_at(
                list.span().start,
                format!(
                    "cluster.witness: must hold 1 to {MAX_WITNESSES} addresses, not {}",
                    list.get_ref().len()
                ),
            ));
        }
        list.get_ref()
            .iter()
            .enumerate()
            .map(|(index, address)| {
                address.get_ref().parse::<IpAddr>().map_err(|_| {
                    source.invalid(
                        &format!("cluster.witness[{index}]"),
                        address,
                        "must be an IPv4 or IPv6 address",
                    )
                })
            })
            .collect()
    }
}

/// A command line: an absolute path or a bare program name, then its arguments.
fn command(source: &Source<'_>, value: &Spanned<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let program_ok = value.get_ref().first().is_some_and(|program| {
        !program.is_empty() && (!program.contains('/') || program.starts_with('/'))
    });
    if !program_ok {
        return Err(source.invalid(
            "cluster.fence",
            value,
            "must start with an absolute path or a program name found in PATH",
        ));
    }
    Ok(value.get_ref().clone())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const NODE: &str = "cluster_id = 7\nnode_id = 1\npeer_node_id = 2\nkey_file = \"k\"\n\
                        [[link]]\nname = \"b2b\"\ninterface = \"eth1\"\n\
                        local = \"192.0.2.1\"\npeer = \"192.0.2.2\"\n";

    /// The example of the module documentation, after the node's keys.
    fn example() -> String {
        let doc = include_str!("cluster.rs");
        let start = doc.find("//! ```toml\n").expect("example start") + 12;
        let end = start + doc[start..].find("//! ```\n").expect("example end");
        let toml: String = doc[start..end]
            .lines()
            .map(|line| line.strip_prefix("//!").unwrap_or(line).trim_start())
            .map(|line| format!("{line}\n"))
            .collect();
        format!("{NODE}{toml}")
    }

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("cluster.toml")).map_err(|e| e.to_string())
    }

    fn with(keys: &str) -> String {
        format!("{NODE}[cluster]\n{keys}\n")
    }

    #[test]
    fn the_documented_example_parses_to_its_values() {
        let config = parse(&example()).unwrap();
        let cluster = config.cluster.expect("[cluster]");
        let mut settings = ClusterSettings::new(1, 2, config.detector.dead_after_max);
        settings.preferred_node = Some(1);
        settings.fence = true;
        assert_eq!(cluster.settings, settings);
        assert_eq!(
            cluster.witnesses,
            [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254))]
        );
        assert_eq!(
            cluster.fence,
            Some(vec!["/usr/local/sbin/fence-peer".into(), "node2".into()])
        );
        assert_eq!(cluster.fence_timeout, DEFAULT_FENCE_TIMEOUT);
        assert_eq!(
            cluster.epoch_file,
            PathBuf::from("/var/lib/ha-daemon/cluster-7-node-1.epoch")
        );
    }

    #[test]
    fn without_the_table_there_is_no_cluster_and_defaults_fill_the_rest() {
        assert_eq!(parse(NODE).unwrap().cluster, None);
        let cluster = parse(&with(
            "witness = [\"2001:db8::1\", \"192.0.2.9\"]\nisolation_timeout_ms = 700\n\
             failback_delay_ms = 0\nstartup_wait_ms = 0",
        ))
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(cluster.witnesses.len(), 2);
        assert_eq!(cluster.fence, None);
        assert!(!cluster.settings.fence);
        assert_eq!(cluster.settings.preferred_node, None);
        assert_eq!(
            cluster.settings.isolation_timeout,
            Duration::from_millis(700)
        );
        assert_eq!(cluster.settings.failback_delay, Duration::ZERO);
        assert_eq!(cluster.settings.startup_wait, Duration::ZERO);
        assert_eq!(
            cluster.settings.acquire_timeout,
            ClusterSettings::DEFAULT_ACQUIRE_TIMEOUT
        );
        assert_eq!(
            cluster.epoch_file,
            PathBuf::from("/var/lib/ha-daemon/cluster-7-node-1.epoch")
        );
    }

    #[test]
    fn errors_name_the_line_column_key_and_problem() {
        let cases = [
            (
                "",
                "cluster.toml:10:1: cluster.witness: required (1 to 4 addresses)",
            ),
            (
                "witness = []",
                "cluster.toml:11:11: cluster.witness: must hold 1 to 4 addresses, not 0",
            ),
            (
                "witness = [\"192.0.2.9\", \"gw\"]",
                "cluster.toml:11:25: cluster.witness[1] = \"gw\": must be an IPv4 or IPv6 address",
            ),
            (
                "witness = [\"192.0.2.9\"]\npreferred_node = 3",
                "cluster.toml:12:18: cluster.preferred_node = 3: must be node_id (1) or peer_node_id (2)",
            ),
            (
                "witness = [\"192.0.2.9\"]\nfence = [\"bin/fence\"]",
                "cluster.toml:12:9: cluster.fence = [\"bin/fence\"]: must start with an absolute path or a program name found in PATH",
            ),
            (
                "witness = [\"192.0.2.9\"]\nfence = []",
                "cluster.toml:12:9: cluster.fence = []: must start with an absolute path or a program name found in PATH",
            ),
            (
                "witness = [\"192.0.2.9\"]\nepoch_file = \"epoch\"",
                "cluster.toml:12:14: cluster.epoch_file = \"epoch\": must be an absolute path",
            ),
            (
                "witness = [\"192.0.2.9\"]\nisolation_timeout_ms = 0",
                "cluster.toml:12:24: cluster.isolation_timeout_ms = 0: must be 1..=600000",
            ),
            (
                "witness = [\"192.0.2.9\"]\nwitness_timeout_ms = 60001",
                "cluster.toml:12:22: cluster.witness_timeout_ms = 60001: must be 1..=60000",
            ),
            (
                "witness = [\"192.0.2.9\"]\nfence_timeout_ms = -1",
                "cluster.toml:12:20: cluster.fence_timeout_ms = -1: must be 1..=3600000",
            ),
            (
                "witness = [\"192.0.2.9\"]\nstartup_wait_ms = 86400001",
                "cluster.toml:12:19: cluster.startup_wait_ms = 86400001: must be 0..=86400000",
            ),
            (
                "witness = [\"192.0.2.9\"]\nquorum = 2",
                "cluster.toml:12:1: cluster.quorum: unknown field `quorum`",
            ),
        ];
        for (keys, expected) in cases {
            let error = parse(&with(keys)).expect_err(keys);
            assert!(
                error.starts_with(expected),
                "{keys}:\n  {error}\n  {expected}"
            );
        }
    }
}
