//! One DRBD resource's state, folded from `events2` lines.
//!
//! [`ResourceState::apply`] takes the lines in order, exactly as `drbdsetup events2`
//! printed them. `change` lines list only what changed, so only the fields a line has
//! are applied. Lines about other resources, helpers, paths and unknown objects change
//! nothing. Invariants: a resource that does not exist has role `Unknown`, no devices
//! and no peers; the peer's role is `Unknown` and its disks `DUnknown` unless the
//! connection is `Connected` (between DRBD's `connection:` and `peer-disk:` lines of
//! one change the reported values are stale), except that a disk reported `Outdated`
//! stays `Outdated`: a primary whose fence-peer handler outdated its lost peer
//! (`fencing resource-only`) reports `peer-disk:Outdated` while disconnected.

use std::collections::BTreeMap;

use super::line::{Body, EventLine, EventType, Fields, Object};
pub use super::words::{ConnectionState, DiskState, ReplicationState, Role};

/// A local volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its minor number (`/dev/drbdN`), once reported.
    pub minor: Option<u32>,
    /// Its disk state.
    pub disk: DiskState,
}

/// A volume as seen through one peer's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDevice {
    /// Replication state.
    pub replication: ReplicationState,
    /// The peer's disk, as last reported (see [`ResourceState::peer_disk`]).
    pub disk: DiskState,
    /// KiB out of sync with the peer, when `--statistics` reported it.
    pub out_of_sync_kib: Option<u64>,
}

/// One peer (a connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its connection name (`conn-name`), once reported.
    pub conn_name: Option<String>,
    /// The connection state.
    pub connection: ConnectionState,
    /// The peer's role, as last reported (see [`ResourceState::peer_role`]).
    pub role: Role,
    /// Its view of each volume, by volume number.
    pub devices: BTreeMap<u32, PeerDevice>,
}

impl Default for Peer {
    fn default() -> Self {
        Peer {
            conn_name: None,
            connection: ConnectionState::StandAlone,
            role: Role::Unknown,
            devices: BTreeMap::new(),
        }
    }
}

/// One resource's state (see the module doc for the invariants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceState {
    name: String,
    exists: bool,
    role: Role,
    devices: BTreeMap<u32, Device>,
    peers: BTreeMap<u32, Peer>,
    dump_complete: bool,
}

/// What the local state means for the `drbd` agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assessment {
    /// Primary with every volume UpToDate: promoted and usable.
    Promoted,
    /// Secondary: demoted.
    Demoted,
    /// Neither; the text says why, for an operator.
    Unfit(String),
}

impl ResourceState {
    /// The state before any line: the resource does not exist, the dump is not complete.
    pub fn new(name: impl Into<String>) -> Self {
        ResourceState {
            name: name.into(),
            exists: false,
            role: Role::Unknown,
            devices: BTreeMap::new(),
            peers: BTreeMap::new(),
            dump_complete: false,
        }
    }

    /// A resource known not to be up: what a complete dump without it says.
    pub fn not_up(name: impl Into<String>) -> Self {
        ResourceState {
            dump_complete: true,
            ..ResourceState::new(name)
        }
    }

    /// Folds lines, in order, into the state of resource `name`.
    pub fn fold<'a>(name: &str, lines: impl IntoIterator<Item = &'a EventLine>) -> Self {
        let mut state = ResourceState::new(name);
        for line in lines {
            state.apply(line);
        }
        state
    }

    /// Applies one line.
    pub fn apply(&mut self, line: &EventLine) {
        let (object, fields) = match &line.body {
            Body::EndOfDump => {
                self.dump_complete = true;
                return;
            }
            Body::Object { object, fields } => (object, fields),
        };
        if fields.get("name") != Some(self.name.as_str()) {
            return;
        }
        let destroy = line.event == EventType::Destroy;
        match object {
            Object::Resource if destroy => *self = self.absent(),
            Object::Resource => {
                self.exists = true;
                if let Some(role) = fields.get("role") {
                    self.role = Role::parse(role);
                }
            }
            Object::Device => self.apply_device(fields, destroy),
            Object::Connection => self.apply_connection(fields, destroy),
            Object::PeerDevice => self.apply_peer_device(fields, destroy),
            Object::Path | Object::Helper | Object::Other(_) => {}
        }
    }

    fn absent(&self) -> Self {
        ResourceState {
            dump_complete: self.dump_complete,
            ..ResourceState::new(self.name.clone())
        }
    }

    fn apply_device(&mut self, fields: &Fields, destroy: bool) {
        let Some(volume) = fields.id("volume") else {
            return;
        };
        if destroy {
            self.devices.remove(&volume);
            return;
        }
        let device = self.devices.entry(volume).or_insert(Device {
            minor: None,
            disk: DiskState::Diskless,
        });
        if let Some(minor) = fields.id("minor") {
            device.minor = Some(minor);
        }
        if let Some(disk) = fields.get("disk") {
            device.disk = DiskState::parse(disk);
        }
    }

    fn apply_connection(&mut self, fields: &Fields, destroy: bool) {
        let id = peer_id(fields);
        if destroy {
            self.peers.remove(&id);
            return;
        }
        let peer = self.peers.entry(id).or_default();
        if let Some(name) = fields.get("conn-name") {
            peer.conn_name = Some(name.to_owned());
        }
        if let Some(connection) = fields.get("connection") {
            peer.connection = ConnectionState::parse(connection);
        }
        if let Some(role) = fields.get("role") {
            peer.role = Role::parse(role);
        }
    }

    fn apply_peer_device(&mut self, fields: &Fields, destroy: bool) {
        let Some(volume) = fields.id("volume") else {
            return;
        };
        let id = peer_id(fields);
        if destroy {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.devices.remove(&volume);
            }
            return;
        }
        let device = self
            .peers
            .entry(id)
            .or_default()
            .devices
            .entry(volume)
            .or_insert(PeerDevice {
                replication: ReplicationState::Off,
                disk: DiskState::DUnknown,
                out_of_sync_kib: None,
            });
        if let Some(replication) = fields.get("replication") {
            device.replication = ReplicationState::parse(replication);
        }
        if let Some(disk) = fields.get("peer-disk") {
            device.disk = DiskState::parse(disk);
        }
        if let Some(kib) = fields.number("out-of-sync") {
            device.out_of_sync_kib = Some(kib);
        }
    }

    /// The resource name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once `exists -` was seen: before that, the state is partial.
    pub fn dump_complete(&self) -> bool {
        self.dump_complete
    }

    /// True when the resource is up (configured in the kernel).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Our role (`Unknown` when the resource does not exist).
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Local volumes by volume number.
    pub fn devices(&self) -> &BTreeMap<u32, Device> {
        &self.devices
    }

    /// Peers by peer node id.
    pub fn peers(&self) -> &BTreeMap<u32, Peer> {
        &self.peers
    }

    /// The peer of a two-node resource: the one with the lowest node id.
    pub fn peer(&self) -> Option<&Peer> {
        self.peers.values().next()
    }

    /// The connection to [`Self::peer`]; `StandAlone` when there is no connection object
    /// (never configured, or dropped after a split brain).
    pub fn connection(&self) -> ConnectionState {
        self.peer()
            .map_or(ConnectionState::StandAlone, |peer| peer.connection.clone())
    }

    fn connected_peer(&self) -> Option<&Peer> {
        self.peer()
            .filter(|peer| peer.connection == ConnectionState::Connected)
    }

    /// The peer's role: `Unknown` unless connected.
    pub fn peer_role(&self) -> Role {
        self.connected_peer()
            .map_or(Role::Unknown, |peer| peer.role.clone())
    }

    /// The peer's disk for `volume`: as reported while connected; while not connected
    /// `Outdated` if reported so (the peer was fenced), else `DUnknown`.
    pub fn peer_disk(&self, volume: u32) -> DiskState {
        let Some(peer) = self.peer() else {
            return DiskState::DUnknown;
        };
        let reported = peer.devices.get(&volume).map(|device| &device.disk);
        match reported {
            Some(disk) if peer.connection == ConnectionState::Connected => disk.clone(),
            Some(DiskState::Outdated) => DiskState::Outdated,
            _ => DiskState::DUnknown,
        }
    }

    /// What the state means for the agent: promoted (Primary, every volume UpToDate),
    /// demoted (Secondary), or unfit and why.
    pub fn assess(&self) -> Assessment {
        let name = &self.name;
        if !self.dump_complete {
            return Assessment::Unfit(format!(
                "state of resource {name} not known (events2 did not end its dump)"
            ));
        }
        if !self.exists {
            return Assessment::Unfit(format!("resource {name} not up"));
        }
        match &self.role {
            Role::Secondary => Assessment::Demoted,
            Role::Primary => {
                if self.devices.is_empty() {
                    return Assessment::Unfit(format!(
                        "resource {name} is Primary with no volumes"
                    ));
                }
                match self
                    .devices
                    .iter()
                    .find(|(_, device)| device.disk != DiskState::UpToDate)
                {
                    Some((volume, device)) => Assessment::Unfit(format!(
                        "resource {name} is Primary but volume {volume} has disk {}",
                        device.disk
                    )),
                    None => Assessment::Promoted,
                }
            }
            other => Assessment::Unfit(format!("resource {name} has role {other}")),
        }
    }

    /// The first volume whose disk is not UpToDate, or the disk of volume 0: what a
    /// refusal to promote is about.
    pub fn local_disk(&self) -> Option<DiskState> {
        self.devices
            .values()
            .find(|device| device.disk != DiskState::UpToDate)
            .or_else(|| self.devices.values().next())
            .map(|device| device.disk.clone())
    }
}

/// The peer a connection or peer-device line is about: `peer-node-id`, or 0 where an
/// older drbdsetup leaves it out (8.4 has exactly one peer).
fn peer_id(fields: &Fields) -> u32 {
    fields.id("peer-node-id").unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::captures::{self, Capture, capture};
    use super::super::line::parse_line;
    use super::*;

    fn lines(capture: &Capture) -> Vec<EventLine> {
        capture
            .stdout
            .lines()
            .map(|line| parse_line(line).unwrap())
            .collect()
    }

    fn fold(capture: &Capture) -> ResourceState {
        ResourceState::fold("r0", &lines(capture))
    }

    /// Our role, local disk of volume 0, connection, peer role, peer disk of volume 0.
    fn summary(state: &ResourceState) -> (Role, DiskState, ConnectionState, Role, DiskState) {
        (
            state.role().clone(),
            state.devices()[&0].disk.clone(),
            state.connection(),
            state.peer_role(),
            state.peer_disk(0),
        )
    }

    use ConnectionState as C;
    use DiskState as D;
    use Role as R;

    #[test]
    fn steady_state_dumps_match_their_situation() {
        // 16/17: vmda Primary, peer Secondary, both UpToDate.
        for capture in [
            capture!("16-vmda-events2-now.txt"),
            capture!("17-vmda-events2-now-noarg.txt"),
        ] {
            let state = fold(&capture);
            assert!(state.exists() && state.dump_complete());
            assert_eq!(
                summary(&state),
                (
                    R::Primary,
                    D::UpToDate,
                    C::Connected,
                    R::Secondary,
                    D::UpToDate
                ),
                "{}",
                capture.name
            );
            assert_eq!(state.assess(), Assessment::Promoted);
            assert_eq!(state.devices()[&0].minor, Some(0));
        }
        // 18: vmdb Secondary, peer Primary, with statistics.
        let state = fold(&capture!("18-vmdb-events2-now-stats.txt"));
        assert_eq!(
            summary(&state),
            (
                R::Secondary,
                D::UpToDate,
                C::Connected,
                R::Primary,
                D::UpToDate
            )
        );
        assert_eq!(state.peer().unwrap().devices[&0].out_of_sync_kib, Some(0));
        assert_eq!(state.assess(), Assessment::Demoted);
    }

    #[test]
    fn failover_and_link_cut_dumps_match_their_situation() {
        // 30: vmdb promoted after the peer died.
        let state = fold(&capture!("30-vmdb-events2-now-after-failover.txt"));
        assert_eq!(
            summary(&state),
            (
                R::Primary,
                D::UpToDate,
                C::Connecting,
                R::Unknown,
                D::DUnknown
            )
        );
        assert_eq!(state.assess(), Assessment::Promoted);
        // 46: replication link cut, vmda Secondary.
        let state = fold(&capture!("46-vmda-events2-now-link-cut.txt"));
        assert_eq!(
            summary(&state),
            (
                R::Secondary,
                D::UpToDate,
                C::Connecting,
                R::Unknown,
                D::DUnknown
            )
        );
        assert_eq!(state.assess(), Assessment::Demoted);
    }

    #[test]
    fn an_unconfigured_node_has_no_resource() {
        let state = fold(&capture!("34-vmda-events2-now-unconfigured.txt"));
        assert!(state.dump_complete() && !state.exists());
        assert_eq!(state, ResourceState::not_up("r0"));
        assert_eq!(*state.role(), R::Unknown);
        assert_eq!(state.connection(), C::StandAlone);
        assert_eq!(
            state.assess(),
            Assessment::Unfit("resource r0 not up".into())
        );
    }

    /// Folds capture 65 (vmda since its reboot) up to the last line at `timestamp`.
    fn vmda_until(timestamp: &str) -> ResourceState {
        let all = lines(&capture!("65-vmda-events2-stream.txt"));
        let end = all
            .iter()
            .rposition(|line| line.timestamp.as_deref() == Some(timestamp))
            .unwrap_or_else(|| panic!("no line at {timestamp}"));
        ResourceState::fold("r0", &all[..=end])
    }

    #[test]
    fn the_vmda_stream_passes_through_each_situation() {
        // Before `drbdadm up`: dump complete, nothing configured.
        let state = vmda_until("2026-11-23T11:53:18.341128+00:00");
        assert!(state.dump_complete() && !state.exists());
        // Attached, then connected to the Primary vmdb, resyncing as target.
        let state = vmda_until("2026-11-23T11:53:20.208522+00:00");
        assert_eq!(
            summary(&state),
            (
                R::Secondary,
                D::Inconsistent,
                C::Connected,
                R::Primary,
                D::UpToDate
            )
        );
        assert_eq!(
            state.peer().unwrap().devices[&0].replication,
            ReplicationState::SyncTarget
        );
        // Link cut, then vmda promoted while disconnected (capture 47).
        let state = vmda_until("2026-11-23T11:53:27.522108+00:00");
        assert_eq!(
            summary(&state),
            (
                R::Primary,
                D::UpToDate,
                C::Connecting,
                R::Unknown,
                D::DUnknown
            )
        );
        // Split brain: the connection is destroyed; no peer at all.
        let state = vmda_until("2026-11-23T11:53:29.453332+00:00");
        assert!(state.peers().is_empty());
        assert_eq!(state.connection(), C::StandAlone);
        assert_eq!(state.peer_disk(0), D::DUnknown);
        // Outdated while disconnected (capture 59/60).
        let state = vmda_until("2026-11-23T11:53:36.069996+00:00");
        assert_eq!(state.devices()[&0].disk, D::Outdated);
        assert_eq!(state.local_disk(), Some(D::Outdated));
        // The end: resynced, Secondary under the Primary vmdb.
        let state = fold(&capture!("65-vmda-events2-stream.txt"));
        assert_eq!(
            summary(&state),
            (
                R::Secondary,
                D::UpToDate,
                C::Connected,
                R::Primary,
                D::UpToDate
            )
        );
        assert_eq!(state.peer().unwrap().devices[&0].out_of_sync_kib, Some(0));
        assert_eq!(state.peer().unwrap().conn_name.as_deref(), Some("peer"));
    }

    #[test]
    fn the_vmdb_stream_ends_primary_over_a_resynced_secondary() {
        let state = fold(&capture!("66-vmdb-events2-stream.txt"));
        assert_eq!(
            summary(&state),
            (
                R::Primary,
                D::UpToDate,
                C::Connected,
                R::Secondary,
                D::UpToDate
            )
        );
        assert_eq!(state.assess(), Assessment::Promoted);
    }

    #[test]
    fn every_capture_folds_to_a_complete_dump() {
        for capture in captures::events2() {
            assert!(fold(&capture).dump_complete(), "{}", capture.name);
        }
    }

    fn fold_text(text: &str) -> ResourceState {
        let lines: Vec<EventLine> = text.lines().map(|l| parse_line(l).unwrap()).collect();
        ResourceState::fold("r0", &lines)
    }

    #[test]
    fn other_resources_unknown_objects_and_keys_change_nothing() {
        let base = "exists resource name:r0 role:Secondary\n\
                    exists device name:r0 volume:0 minor:0 disk:UpToDate\n\
                    exists -\n";
        let noisy = format!(
            "{base}change resource name:r1 role:Primary\n\
             create device name:r1 volume:0 disk:Diskless\n\
             change resource name:r0 brand-new:1\n\
             create gizmo name:r0 role:Primary\n\
             call helper name:r0 volume:0 helper:fence-peer\n"
        );
        assert_eq!(fold_text(&noisy), fold_text(base));
    }

    #[test]
    fn unknown_state_words_are_kept() {
        let state = fold_text(
            "exists resource name:r0 role:Primary\n\
             exists device name:r0 volume:0 disk:Shiny\n\
             exists -\n",
        );
        assert_eq!(state.devices()[&0].disk, D::Other("Shiny".into()));
        assert_eq!(
            state.assess(),
            Assessment::Unfit("resource r0 is Primary but volume 0 has disk Shiny".into())
        );
    }

    #[test]
    fn drbd9_two_peers_and_two_volumes() {
        let state = fold_text(
            "exists resource name:r0 role:Primary suspended:no may_promote:no \
             promotion_score:10102\n\
             exists connection name:r0 peer-node-id:2 conn-name:c connection:Connecting \
             role:Unknown\n\
             exists connection name:r0 peer-node-id:1 conn-name:b connection:Connected \
             role:Secondary\n\
             exists device name:r0 volume:0 minor:1000 disk:UpToDate client:no quorum:yes\n\
             exists device name:r0 volume:1 minor:1001 disk:Diskless client:yes quorum:yes\n\
             exists peer-device name:r0 peer-node-id:1 conn-name:b volume:0 \
             replication:Established peer-disk:UpToDate peer-client:no\n\
             exists path name:r0 peer-node-id:1 conn-name:b local:ipv4:192.0.2.1:7789 \
             peer:ipv4:192.0.2.2:7789 established:yes\n\
             exists -\n",
        );
        assert_eq!(state.peers().len(), 2);
        assert_eq!(state.peer().unwrap().conn_name.as_deref(), Some("b"));
        assert_eq!(state.peer_role(), R::Secondary);
        assert_eq!(state.peer_disk(0), D::UpToDate);
        assert_eq!(state.peer_disk(1), D::DUnknown);
        assert_eq!(state.local_disk(), Some(D::Diskless));
        assert_eq!(
            state.assess(),
            Assessment::Unfit("resource r0 is Primary but volume 1 has disk Diskless".into())
        );
    }

    #[test]
    fn destroying_the_resource_forgets_everything_but_the_dump() {
        let state = fold_text(
            "exists resource name:r0 role:Primary\n\
             exists device name:r0 volume:0 disk:UpToDate\n\
             exists connection name:r0 peer-node-id:0 connection:Connected role:Secondary\n\
             exists -\n\
             destroy peer-device name:r0 peer-node-id:0 volume:0\n\
             destroy device name:r0 volume:0\n\
             destroy resource name:r0\n",
        );
        assert!(state.dump_complete() && !state.exists());
        assert!(state.devices().is_empty() && state.peers().is_empty());
        assert_eq!(*state.role(), R::Unknown);
    }

    #[test]
    fn a_partial_dump_is_unfit_and_the_peer_is_unknown_unless_connected() {
        let state = fold_text(
            "exists resource name:r0 role:Secondary\n\
             exists connection name:r0 peer-node-id:0 connection:Connecting role:Primary\n\
             exists peer-device name:r0 peer-node-id:0 volume:0 peer-disk:UpToDate\n",
        );
        assert!(
            matches!(state.assess(), Assessment::Unfit(reason) if reason.contains("not known"))
        );
        assert_eq!(state.peer_role(), R::Unknown);
        assert_eq!(state.peer_disk(0), D::DUnknown);
        assert_eq!(state.peer().unwrap().role, R::Primary);
    }

    /// DRBD 8.4 with `fencing resource-only`: after the fence-peer handler outdated the
    /// lost peer, the primary reports `peer-disk:Outdated` while it reconnects.
    #[test]
    fn a_fenced_peer_stays_outdated_while_disconnected() {
        let connected = "exists resource name:r0 role:Primary\n\
                         exists connection name:r0 peer-node-id:0 connection:Connected \
                         role:Secondary\n\
                         exists device name:r0 volume:0 minor:0 disk:UpToDate\n\
                         exists peer-device name:r0 peer-node-id:0 volume:0 \
                         replication:Established peer-disk:UpToDate\n\
                         exists -\n";
        let lost = "change connection name:r0 peer-node-id:0 connection:NetworkFailure \
                    role:Unknown\n";
        // Between the connection line and the peer-device line: stale UpToDate hidden.
        let state = fold_text(&format!("{connected}{lost}"));
        assert_eq!(state.peer_disk(0), D::DUnknown);
        let fenced = format!(
            "{connected}{lost}\
             change peer-device name:r0 peer-node-id:0 volume:0 replication:Off \
             peer-disk:Outdated\n\
             change connection name:r0 peer-node-id:0 connection:Connecting\n"
        );
        let state = fold_text(&fenced);
        assert_eq!(state.connection(), C::Connecting);
        assert_eq!(state.peer_role(), R::Unknown);
        assert_eq!(state.peer_disk(0), D::Outdated);
        assert_eq!(state.peer_disk(1), D::DUnknown);
        assert_eq!(state.assess(), Assessment::Promoted);
    }
}
