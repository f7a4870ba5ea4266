//! Settings of the cluster core, their defaults, and the takeover hold they imply.

use std::time::Duration;

/// Settings of one node's cluster core ([`super::Cluster`]). Build with
/// [`ClusterSettings::new`] (which fills in the defaults), then adjust.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    /// This node's id (as in its heartbeats).
    pub node_id: u16,
    /// The peer's id. Must differ from `node_id`.
    pub peer_id: u16,
    /// The node that should hold the group when both are eligible; `None` (the default)
    /// means no automatic failback at all (sticky).
    pub preferred_node: Option<u16>,
    /// How long the preferred node, eligible and with a healthy peer holding the group,
    /// waits before it pulls the group back. Default 60 s.
    pub failback_delay: Duration,
    /// How long a node holding the group may stay isolated (peer lost and witness
    /// unreachable) before it releases the group. Default 2 s.
    pub isolation_timeout: Duration,
    /// Interval between witness probes while the peer is lost. Default 500 ms.
    pub witness_interval: Duration,
    /// A witness probe without a result after this long counts as unreachable.
    /// Default 250 ms.
    pub witness_timeout: Duration,
    /// Upper bound of a whole acquire run, its rollback included. The runtime enforces
    /// it (agent timeouts); the takeover hold relies on it. Default 60 s.
    pub acquire_timeout: Duration,
    /// Upper bound of a whole release run. The runtime enforces it; the takeover hold
    /// relies on it. Default 30 s.
    pub release_timeout: Duration,
    /// Longest wait for the peer at each step of a switchover (acknowledge, take over),
    /// and for the peer's acknowledgement of a claim while it is alive. Default 10 s.
    pub switchover_timeout: Duration,
    /// The detector's `dead_after_max`: the latest the peer notices that we are gone.
    pub dead_after_max: Duration,
    /// Whether a fence command is configured: a takeover after peer loss fences the peer
    /// first (its failure aborts the takeover) and then needs no hold. Default false.
    pub fence: bool,
    /// How long a failed acquire or a locally failed group keeps this node from being
    /// chosen to hold the group (pacemaker's failure-timeout). Default 600 s.
    pub failure_timeout: Duration,
    /// How long a node that has not heard its peer since it started waits before it
    /// fences the peer or takes over on peer loss (corosync's `wait_for_all`,
    /// pacemaker's `dc-deadtime`): booted together, the slower node is still starting,
    /// not lost. A group found running at start is kept meanwhile. Zero turns the wait
    /// off; the operator can end it early (`Command::EndStartupWait`). Default 60 s.
    pub startup_wait: Duration,
}

impl ClusterSettings {
    /// Default of [`ClusterSettings::failback_delay`].
    pub const DEFAULT_FAILBACK_DELAY: Duration = Duration::from_secs(60);
    /// Default of [`ClusterSettings::isolation_timeout`].
    pub const DEFAULT_ISOLATION_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default of [`ClusterSettings::witness_interval`].
    pub const DEFAULT_WITNESS_INTERVAL: Duration = Duration::from_millis(500);
    /// Default of [`ClusterSettings::witness_timeout`].
    pub const DEFAULT_WITNESS_TIMEOUT: Duration = Duration::from_millis(250);
    /// Default of [`ClusterSettings::acquire_timeout`].
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default of [`ClusterSettings::release_timeout`].
    pub const DEFAULT_RELEASE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default of [`ClusterSettings::switchover_timeout`].
    pub const DEFAULT_SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`ClusterSettings::failure_timeout`].
    pub const DEFAULT_FAILURE_TIMEOUT: Duration = Duration::from_secs(600);
    /// Default of [`ClusterSettings::startup_wait`].
    pub const DEFAULT_STARTUP_WAIT: Duration = Duration::from_secs(60);

    /// The settings for `node_id` and `peer_id` with every default, and the detector's
    /// `dead_after_max`.
    pub fn new(node_id: u16, peer_id: u16, dead_after_max: Duration) -> Self {
        Self {
            node_id,
            peer_id,
            preferred_node: None,
            failback_delay: Self::DEFAULT_FAILBACK_DELAY,
            isolation_timeout: Self::DEFAULT_ISOLATION_TIMEOUT,
            witness_interval: Self::DEFAULT_WITNESS_INTERVAL,
            witness_timeout: Self::DEFAULT_WITNESS_TIMEOUT,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            release_timeout: Self::DEFAULT_RELEASE_TIMEOUT,
            switchover_timeout: Self::DEFAULT_SWITCHOVER_TIMEOUT,
            dead_after_max,
            fence: false,
            failure_timeout: Self::DEFAULT_FAILURE_TIMEOUT,
            startup_wait: Self::DEFAULT_STARTUP_WAIT,
        }
    }

    /// How long an unfenced takeover after peer loss waits, from the moment our claim is
    /// announced and the witness answered, before it acquires.
    ///
    /// Why this is enough: the peer last heard us before our announcement (or it would
    /// have seen it and released at once), so it noticed our loss at most
    /// `dead_after_max` later. From the moment we reach the witness, the peer cannot
    /// (the witness assumption), so its next probe fails within `witness_interval +
    /// witness_timeout`, and it releases `isolation_timeout` later; an acquire it had
    /// under way ends within `acquire_timeout`; the release itself within
    /// `release_timeout`. Hence `max(dead_after_max + witness_interval +
    /// witness_timeout + isolation_timeout, acquire_timeout) + release_timeout`.
    pub fn takeover_hold(&self) -> Duration {
        let isolated_release = self.dead_after_max
            + self.witness_interval
            + self.witness_timeout
            + self.isolation_timeout;
        isolated_release.max(self.acquire_timeout) + self.release_timeout
    }

    /// Checks the invariants: distinct node ids, a preferred node that is one of them,
    /// and non-zero probe timings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.node_id == self.peer_id {
            return Err(SettingsError::SameNodeId(self.node_id));
        }
        if let Some(preferred) = self.preferred_node
            && preferred != self.node_id
            && preferred != self.peer_id
        {
            return Err(SettingsError::UnknownPreferredNode(preferred));
        }
        if self.witness_interval.is_zero() || self.witness_timeout.is_zero() {
            return Err(SettingsError::ZeroWitnessTiming);
        }
        Ok(())
    }
}

/// Cluster settings that break an invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Both nodes have the same id.
    #[error("node_id and peer_id are both {0}")]
    SameNodeId(u16),
    /// `preferred_node` names neither node.
    #[error("preferred_node {0} is neither node_id nor peer_id")]
    UnknownPreferredNode(u16),
    /// `witness_interval` or `witness_timeout` is zero.
    #[error("witness_interval and witness_timeout must be above zero")]
    ZeroWitnessTiming,
}
