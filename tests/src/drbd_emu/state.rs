//! The emulated kernel module's state machine for one resource (one volume, one peer).
//! Pure: no I/O and no clock; fresh generation identifiers are passed in by the caller.
//!
//! Every state change goes through one of the `set_*` helpers, which queue the matching
//! `drbdsetup events2` event (drained with [`Kernel::take_events`]). Invariants:
//! - the connection and peer-device objects exist exactly while the resource is up and
//!   not split-brained (StandAlone after a failed handshake destroys them, as 8.4 does);
//! - `peer_role`/`peer_disk` are `Unknown`/`DUnknown` unless connected, except that a
//!   primary with `fencing = resource-only` keeps its lost peer marked `Outdated`.

use serde::{Deserialize, Serialize};

use super::events::{DeviceStats, Event, Object, PeerStats, Verb};

/// A node's role (`role:` / `ro:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// May write.
    Primary,
    /// Receives replication; its device is read-only here.
    Secondary,
    /// The peer's role while disconnected.
    Unknown,
}

/// A disk state (`disk:` / `ds:`), with DRBD's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disk {
    /// No backing device (before attach).
    Diskless,
    /// Data not usable (fresh metadata, or a resync target).
    Inconsistent,
    /// Consistent but known to be older than the peer's.
    Outdated,
    /// The peer's disk while disconnected.
    DUnknown,
    /// Current data.
    UpToDate,
}

/// The connection object's state (`connection:` in events2; [`Connection::cstate`] for
/// the 8.4 `cs:` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Connection {
    /// Not trying to connect (just created, or after a split brain).
    StandAlone,
    /// Link lost (transient).
    NetworkFailure,
    /// Between a loss and the next attempt (transient).
    Unconnected,
    /// Trying to connect (8.4: WFConnection).
    Connecting,
    /// Tearing down after a failed handshake (transient).
    Disconnecting,
    /// Handshake done.
    Connected,
}

/// The peer-device's replication state (`replication:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replication {
    /// Not connected.
    Off,
    /// Writes are mirrored.
    Established,
    /// Sending a full copy to the peer.
    SyncSource,
    /// Receiving a full copy from the peer.
    SyncTarget,
}

/// What happens to the peer's disk state when a primary loses it (DRBD `fencing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fencing {
    /// The default: the peer becomes DUnknown.
    DontCare,
    /// A primary marks its lost peer Outdated (the fence-peer handler is taken as
    /// having succeeded).
    ResourceOnly,
}

/// Data generation identifiers (DRBD's current and previous UUID, simplified).
/// Two disks with the same `current` hold the same data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uuids {
    /// Generation of the data on this disk.
    pub current: u64,
    /// The generation this one was started from (0: none).
    pub history: u64,
}

/// What a node persists in its metadata (survives `down` and crashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Disk state at the next attach.
    pub disk: Disk,
    /// Data generation.
    pub uuids: Uuids,
}

impl Meta {
    /// What `create-md` writes: no valid data yet.
    pub const FRESH: Self = Self {
        disk: Disk::Inconsistent,
        uuids: Uuids {
            current: 0,
            history: 0,
        },
    };
}

/// What a node tells its peer about itself (sent on connect and on every change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// The sender's role.
    pub role: Role,
    /// The sender's disk.
    pub disk: Disk,
    /// The sender's data generation.
    pub uuids: Uuids,
}

/// Why a command was refused (each maps to the real message and exit code, see
/// `render::refusal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The resource is not up.
    NotUp,
    /// `up` on a resource that is up.
    AlreadyUp,
    /// Promotion while the connected peer is primary (SS_TWO_PRIMARIES, -1).
    TwoPrimaries,
    /// Promotion (or outdate of a primary) without UpToDate data (SS_NO_UP_TO_DATE_DISK, -2).
    NoUpToDateDisk,
    /// Outdate while connected (SS_CONNECTED_OUTDATES, -6).
    ConnectedOutdates,
    /// Demotion or down while the device is held open (SS_DEVICE_IN_USE, -12).
    DeviceInUse,
    /// `create-md` while the resource is up.
    DeviceConfigured,
}

/// Something the I/O layer must do after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send our [`PeerState`] to the peer.
    SendState,
    /// Tell the peer to adopt these generation ids and UpToDate (clear-bitmap).
    SendClearBitmap(Uuids),
    /// Send the whole image to the peer, then `ResyncDone`.
    StartResync,
    /// Close the replication connection and stop reconnecting (split brain).
    Disconnect,
    /// Make the block device writable (`true`) or read-only.
    DeviceWritable(bool),
    /// Write [`Kernel::meta`] to the metadata file.
    PersistMeta,
}

/// How two nodes resolve their data on connect. Mirror-symmetric: if one side decides
/// `Source`, the other decides `Target` from the same two states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Same data (or neither has any): mirror from now on.
    NoSync,
    /// Our data is newer: full copy to the peer.
    Source,
    /// The peer's data is newer: full copy from the peer.
    Target,
    /// Both sides changed independently: disconnect, StandAlone.
    SplitBrain,
}

/// Decides the handshake from our and the peer's disk and generation ids.
pub fn handshake(mine: (Disk, Uuids), peer: (Disk, Uuids)) -> Handshake {
    let ((my_disk, my), (peer_disk, theirs)) = (mine, peer);
    let inconsistent = |d| matches!(d, Disk::Inconsistent | Disk::Diskless);
    match (inconsistent(my_disk), inconsistent(peer_disk)) {
        (true, true) => Handshake::NoSync,
        (true, false) => Handshake::Target,
        (false, true) => Handshake::Source,
        (false, false) if my.current == theirs.current => Handshake::NoSync,
        (false, false) if my.history == theirs.current => Handshake::Source,
        (false, false) if theirs.history == my.current => Handshake::Target,
        (false, false) => Handshake::SplitBrain,
    }
}

/// The resource while it is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Up {
    /// Our role.
    pub role: Role,
    /// Our disk.
    pub disk: Disk,
    /// The connection object's state; `None` once destroyed (split brain).
    pub connection: Option<Connection>,
    /// The peer's role as we know it.
    pub peer_role: Role,
    /// Replication state.
    pub replication: Replication,
    /// The peer's disk as we know it.
    pub peer_disk: Disk,
    /// Our data generation.
    pub uuids: Uuids,
    /// Device counters.
    pub device_stats: DeviceStats,
    /// Peer-device counters.
    pub peer_stats: PeerStats,
}

/// The emulated module: one resource, up or not, plus the events not yet delivered.
#[derive(Clone, Debug)]
pub struct Kernel {
    size_kib: u64,
    fencing: Fencing,
    up: Option<Up>,
    events: Vec<Event>,
}

impl Kernel {
    /// A module with the resource not up.
    pub fn new(size_kib: u64, fencing: Fencing) -> Self {
        Self {
            size_kib,
            fencing,
            up: None,
            events: Vec::new(),
        }
    }

    /// The resource's state, `None` while not up.
    pub fn up(&self) -> Option<&Up> {
        self.up.as_ref()
    }

    /// Mutable counters (the I/O layer accounts reads, writes and replication traffic).
    pub fn stats_mut(&mut self) -> Option<(&mut DeviceStats, &mut PeerStats)> {
        self.up
            .as_mut()
            .map(|up| (&mut up.device_stats, &mut up.peer_stats))
    }

    /// What to persist now (`None` while not up).
    pub fn meta(&self) -> Option<Meta> {
        self.up.as_ref().map(|up| Meta {
            disk: up.disk,
            uuids: up.uuids,
        })
    }

    /// Our state as the peer should see it.
    pub fn peer_state(&self) -> Option<PeerState> {
        self.up.as_ref().map(|up| PeerState {
            role: up.role,
            disk: up.disk,
            uuids: up.uuids,
        })
    }

    /// True while the replication link should be (re)established.
    pub fn wants_connection(&self) -> bool {
        self.up
            .as_ref()
            .is_some_and(|up| up.connection.is_some_and(|c| c != Connection::StandAlone))
    }

    /// True while writes must be mirrored to the peer before they complete.
    pub fn mirrors_writes(&self) -> bool {
        self.up.as_ref().is_some_and(|up| {
            matches!(
                up.replication,
                Replication::Established | Replication::SyncSource
            )
        })
    }

    /// Events queued since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The `exists` objects of `events2 --now` (empty while not up).
    pub fn exists(&self) -> Vec<Event> {
        let Some(up) = &self.up else {
            return Vec::new();
        };
        let mut all = vec![Event::new(Verb::Exists, Object::resource(up))];
        if up.connection.is_some() {
            all.push(Event::new(Verb::Exists, Object::connection(up)));
        }
        all.push(Event::new(Verb::Exists, Object::device(up)));
        if up.connection.is_some() {
            all.push(Event::new(Verb::Exists, Object::peer_device(up)));
        }
        all
    }

    /// `drbdadm up`: attach the disk from `meta` and start connecting.
    pub fn bring_up(&mut self, meta: Meta) -> Result<Vec<Action>, Refusal> {
        if self.up.is_some() {
            return Err(Refusal::AlreadyUp);
        }
        let mut up = Up {
            role: Role::Secondary,
            disk: Disk::Diskless,
            connection: Some(Connection::StandAlone),
            peer_role: Role::Unknown,
            replication: Replication::Off,
            peer_disk: Disk::DUnknown,
            uuids: meta.uuids,
            device_stats: DeviceStats::default(),
            peer_stats: PeerStats::default(),
        };
        up.device_stats.size_kib = self.size_kib;
        self.events
            .push(Event::new(Verb::Create, Object::resource(&up)));
        self.events
            .push(Event::new(Verb::Create, Object::device(&up)));
        let (connection, peer_device) = (Object::connection(&up), Object::peer_device(&up));
        self.up = Some(up);
        self.set_disk(meta.disk);
        self.events.push(Event::new(Verb::Create, connection));
        self.events.push(Event::new(Verb::Create, peer_device));
        self.set_connection(Connection::Unconnected, Role::Unknown);
        self.set_connection(Connection::Connecting, Role::Unknown);
        Ok(vec![Action::DeviceWritable(false)])
    }

    /// `drbdadm down`: demote, disconnect, detach. `held_open`: the device is in use.
    pub fn take_down(&mut self, held_open: bool) -> Result<Vec<Action>, Refusal> {
        if self.up.is_none() {
            return Ok(Vec::new());
        }
        if held_open {
            return Err(Refusal::DeviceInUse);
        }
        self.set_role(Role::Secondary);
        let Some(up) = self.up.take() else {
            return Ok(Vec::new());
        };
        if up.connection.is_some() {
            self.events
                .push(Event::new(Verb::Destroy, Object::peer_device(&up)));
            self.events
                .push(Event::new(Verb::Destroy, Object::connection(&up)));
        }
        self.events
            .push(Event::new(Verb::Destroy, Object::device(&up)));
        self.events
            .push(Event::new(Verb::Destroy, Object::resource(&up)));
        Ok(vec![Action::Disconnect, Action::DeviceWritable(false)])
    }

    /// `drbdadm primary`. `fresh`: a new generation id, used when promoting without a
    /// connected peer (the data diverges from the peer's from here on).
    pub fn promote(&mut self, fresh: u64) -> Result<Vec<Action>, Refusal> {
        let up = self.up.as_ref().ok_or(Refusal::NotUp)?;
        if up.role == Role::Primary {
            return Ok(Vec::new());
        }
        let connected = up.connection == Some(Connection::Connected);
        if connected && up.peer_role == Role::Primary {
            return Err(Refusal::TwoPrimaries);
        }
        if up.disk != Disk::UpToDate {
            return Err(Refusal::NoUpToDateDisk);
        }
        if !connected {
            self.rotate_uuids(fresh);
        }
        self.set_role(Role::Primary);
        Ok(vec![
            Action::DeviceWritable(true),
            Action::PersistMeta,
            Action::SendState,
        ])
    }

    /// `drbdadm secondary`. `held_open`: the device is in use.
    pub fn demote(&mut self, held_open: bool) -> Result<Vec<Action>, Refusal> {
        let up = self.up.as_ref().ok_or(Refusal::NotUp)?;
        if up.role == Role::Secondary {
            return Ok(Vec::new());
        }
        if held_open {
            return Err(Refusal::DeviceInUse);
        }
        self.set_role(Role::Secondary);
        Ok(vec![Action::DeviceWritable(false), Action::SendState])
    }

    /// `drbdadm outdate`: mark our (consistent) disk Outdated.
    pub fn outdate(&mut self) -> Result<Vec<Action>, Refusal> {
        let up = self.up.as_ref().ok_or(Refusal::NotUp)?;
        if up.connection == Some(Connection::Connected) {
            return Err(Refusal::ConnectedOutdates);
        }
        if up.role == Role::Primary {
            return Err(Refusal::NoUpToDateDisk);
        }
        if up.disk == Disk::UpToDate {
            self.set_disk(Disk::Outdated);
        }
        Ok(vec![Action::PersistMeta])
    }

    /// `drbdadm -- --clear-bitmap new-current-uuid`: declare our data (and the connected
    /// peer's) UpToDate under the new generation `fresh`, skipping the initial sync.
    pub fn clear_bitmap(&mut self, fresh: u64) -> Result<Vec<Action>, Refusal> {
        let up = self.up.as_mut().ok_or(Refusal::NotUp)?;
        let uuids = Uuids {
            current: fresh,
            history: 0,
        };
        up.uuids = uuids;
        self.set_disk(Disk::UpToDate);
        let mut actions = vec![Action::PersistMeta];
        if self.is_connected() {
            self.set_peer_device(Replication::Established, Disk::UpToDate);
            actions.push(Action::SendClearBitmap(uuids));
        }
        Ok(actions)
    }

    /// The peer ran clear-bitmap: adopt its generation and become UpToDate.
    pub fn peer_cleared_bitmap(&mut self, uuids: Uuids) -> Vec<Action> {
        let Some(up) = self.up.as_mut() else {
            return Vec::new();
        };
        up.uuids = uuids;
        self.set_disk(Disk::UpToDate);
        self.set_peer_device(Replication::Established, Disk::UpToDate);
        vec![Action::PersistMeta]
    }

    /// The replication TCP connection is up (the handshake follows with the peer's
    /// first [`PeerState`]).
    pub fn link_connected(&mut self) -> Vec<Action> {
        if self.up.is_none() {
            return Vec::new();
        }
        self.set_connection(Connection::Connected, Role::Unknown);
        vec![Action::SendState]
    }

    /// A [`PeerState`] arrived. The first one after [`Kernel::link_connected`] is the
    /// handshake, later ones are updates.
    pub fn peer_state_received(&mut self, peer: PeerState) -> Vec<Action> {
        let Some(up) = &self.up else {
            return Vec::new();
        };
        if up.connection != Some(Connection::Connected) {
            return Vec::new();
        }
        let (replication, disk, uuids) = (up.replication, up.disk, up.uuids);
        if replication != Replication::Off {
            self.set_connection(Connection::Connected, peer.role);
            self.set_peer_device(replication, peer.disk);
            return Vec::new();
        }
        match handshake((disk, uuids), (peer.disk, peer.uuids)) {
            Handshake::NoSync => {
                if disk == Disk::Outdated && peer.disk == Disk::UpToDate {
                    self.set_disk(Disk::UpToDate);
                }
                self.set_connection(Connection::Connected, peer.role);
                self.set_peer_device(Replication::Established, peer.disk);
                vec![Action::PersistMeta]
            }
            Handshake::Source => {
                self.set_connection(Connection::Connected, peer.role);
                self.set_peer_device(Replication::SyncSource, Disk::Inconsistent);
                vec![Action::StartResync]
            }
            Handshake::Target => {
                self.set_connection(Connection::Connected, peer.role);
                self.set_disk(Disk::Inconsistent);
                self.set_peer_device(Replication::SyncTarget, peer.disk);
                vec![Action::PersistMeta, Action::SendState]
            }
            Handshake::SplitBrain => {
                self.set_connection(Connection::Disconnecting, Role::Unknown);
                self.set_connection(Connection::StandAlone, Role::Unknown);
                self.destroy_connection();
                vec![Action::Disconnect]
            }
        }
    }

    /// The whole image was sent to the peer.
    pub fn resync_sent(&mut self) -> Vec<Action> {
        if self.up.as_ref().map(|up| up.replication) == Some(Replication::SyncSource) {
            self.set_peer_device(Replication::Established, Disk::UpToDate);
        }
        Vec::new()
    }

    /// The whole image arrived from the peer, whose generation is `uuids`.
    pub fn resync_received(&mut self, uuids: Uuids) -> Vec<Action> {
        let Some(up) = self.up.as_mut() else {
            return Vec::new();
        };
        if up.replication != Replication::SyncTarget {
            return Vec::new();
        }
        up.uuids = uuids;
        let peer_disk = up.peer_disk;
        self.set_disk(Disk::UpToDate);
        self.set_peer_device(Replication::Established, peer_disk);
        vec![Action::PersistMeta, Action::SendState]
    }

    /// The replication link died (ping timeout, reset or EOF). `fresh`: a new
    /// generation id for a primary, whose data diverges from here on.
    pub fn link_lost(&mut self, fresh: u64) -> Vec<Action> {
        let Some(up) = &self.up else {
            return Vec::new();
        };
        if up.connection != Some(Connection::Connected) {
            return Vec::new();
        }
        let primary = up.role == Role::Primary;
        let peer_was_usable = up.peer_disk == Disk::UpToDate;
        self.set_connection(Connection::NetworkFailure, Role::Unknown);
        let fenced = primary && self.fencing == Fencing::ResourceOnly && peer_was_usable;
        let peer_disk = if fenced {
            Disk::Outdated
        } else {
            Disk::DUnknown
        };
        self.set_peer_device(Replication::Off, peer_disk);
        self.set_connection(Connection::Unconnected, Role::Unknown);
        self.set_connection(Connection::Connecting, Role::Unknown);
        if primary {
            self.rotate_uuids(fresh);
        }
        vec![Action::PersistMeta]
    }

    fn is_connected(&self) -> bool {
        self.up
            .as_ref()
            .is_some_and(|up| up.connection == Some(Connection::Connected))
    }

    fn rotate_uuids(&mut self, fresh: u64) {
        if let Some(up) = self.up.as_mut() {
            up.uuids = Uuids {
                current: fresh,
                history: up.uuids.current,
            };
        }
    }

    fn set_role(&mut self, role: Role) {
        let Some(up) = self.up.as_mut() else { return };
        if up.role != role {
            up.role = role;
            self.events
                .push(Event::change(Object::resource(up), &["role"]));
        }
    }

    fn set_disk(&mut self, disk: Disk) {
        let Some(up) = self.up.as_mut() else { return };
        if up.disk != disk {
            up.disk = disk;
            self.events
                .push(Event::change(Object::device(up), &["disk"]));
        }
    }

    fn set_connection(&mut self, connection: Connection, peer_role: Role) {
        let Some(up) = self.up.as_mut() else { return };
        let mut changed = Vec::new();
        if up.connection != Some(connection) {
            changed.push("connection");
        }
        if up.peer_role != peer_role {
            changed.push("role");
        }
        up.connection = Some(connection);
        up.peer_role = peer_role;
        if !changed.is_empty() {
            self.events
                .push(Event::change(Object::connection(up), &changed));
        }
    }

    fn set_peer_device(&mut self, replication: Replication, peer_disk: Disk) {
        let Some(up) = self.up.as_mut() else { return };
        let mut changed = Vec::new();
        if up.replication != replication {
            changed.push("replication");
        }
        if up.peer_disk != peer_disk {
            changed.push("peer-disk");
        }
        up.replication = replication;
        up.peer_disk = peer_disk;
        if !changed.is_empty() {
            self.events
                .push(Event::change(Object::peer_device(up), &changed));
        }
    }

    fn destroy_connection(&mut self) {
        let Some(up) = self.up.as_mut() else { return };
        self.events
            .push(Event::new(Verb::Destroy, Object::peer_device(up)));
        self.events
            .push(Event::new(Verb::Destroy, Object::connection(up)));
        up.connection = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 65496;

    fn up_pair() -> (Kernel, Kernel) {
        let mut a = Kernel::new(SIZE, Fencing::ResourceOnly);
        let mut b = Kernel::new(SIZE, Fencing::DontCare);
        a.bring_up(Meta::FRESH).unwrap();
        b.bring_up(Meta::FRESH).unwrap();
        connect(&mut a, &mut b);
        (a, b)
    }

    fn connect(a: &mut Kernel, b: &mut Kernel) {
        a.link_connected();
        b.link_connected();
        let (sa, sb) = (a.peer_state().unwrap(), b.peer_state().unwrap());
        a.peer_state_received(sb);
        b.peer_state_received(sa);
    }

    fn sync_roles(a: &mut Kernel, b: &mut Kernel) {
        let (sa, sb) = (a.peer_state().unwrap(), b.peer_state().unwrap());
        a.peer_state_received(sb);
        b.peer_state_received(sa);
    }

    #[test]
    fn up_and_down_emit_the_lines_of_capture_65() {
        let mut k = Kernel::new(SIZE, Fencing::DontCare);
        k.bring_up(Meta {
            disk: Disk::UpToDate,
            uuids: Uuids::default(),
        })
        .unwrap();
        let lines: Vec<String> = k
            .take_events()
            .iter()
            .map(|e| e.line("r0", 0, false))
            .collect();
        assert_eq!(
            lines,
            [
                "create resource name:r0 role:Secondary suspended:no",
                "create device name:r0 volume:0 minor:0 disk:Diskless",
                "change device name:r0 volume:0 minor:0 disk:UpToDate",
                "create connection name:r0 peer-node-id:0 conn-name:peer connection:StandAlone role:Unknown",
                "create peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 replication:Off peer-disk:DUnknown resync-suspended:no",
                "change connection name:r0 peer-node-id:0 conn-name:peer connection:Unconnected",
                "change connection name:r0 peer-node-id:0 conn-name:peer connection:Connecting",
            ]
        );
        let capture = include_str!("../../testdata/drbd-8.4.11/65-vmda-events2-stream.txt");
        for line in &lines[..2] {
            let with_stats = capture.lines().any(|l| l.contains(line.as_str()));
            assert!(with_stats, "`{line}` is not in capture 65");
        }
        k.take_down(false).unwrap();
        let lines: Vec<String> = k
            .take_events()
            .iter()
            .map(|e| e.line("r0", 0, false))
            .collect();
        assert_eq!(
            lines,
            [
                "destroy peer-device name:r0 peer-node-id:0 conn-name:peer volume:0",
                "destroy connection name:r0 peer-node-id:0 conn-name:peer",
                "destroy device name:r0 volume:0 minor:0",
                "destroy resource name:r0",
            ]
        );
    }

    #[test]
    fn handshake_is_mirror_symmetric() {
        let disks = [Disk::Inconsistent, Disk::Outdated, Disk::UpToDate];
        let ids = [
            Uuids {
                current: 1,
                history: 0,
            },
            Uuids {
                current: 2,
                history: 1,
            },
            Uuids {
                current: 3,
                history: 1,
            },
        ];
        let mut cases = Vec::new();
        for da in disks {
            for ua in ids {
                for db in disks {
                    for ub in ids {
                        cases.push((da, ua, db, ub));
                    }
                }
            }
        }
        for (da, ua, db, ub) in cases {
            let mirrored = match handshake((da, ua), (db, ub)) {
                Handshake::Source => Handshake::Target,
                Handshake::Target => Handshake::Source,
                same => same,
            };
            assert_eq!(
                handshake((db, ub), (da, ua)),
                mirrored,
                "{da:?} {ua:?} {db:?} {ub:?}"
            );
        }
    }

    #[test]
    fn handshake_cases() {
        let old = Uuids {
            current: 1,
            history: 0,
        };
        let newer = Uuids {
            current: 2,
            history: 1,
        };
        let other = Uuids {
            current: 3,
            history: 1,
        };
        let up = Disk::UpToDate;
        assert_eq!(handshake((up, old), (up, old)), Handshake::NoSync);
        assert_eq!(handshake((up, newer), (up, old)), Handshake::Source);
        assert_eq!(handshake((up, old), (up, newer)), Handshake::Target);
        assert_eq!(handshake((up, newer), (up, other)), Handshake::SplitBrain);
        assert_eq!(
            handshake((Disk::Inconsistent, old), (up, old)),
            Handshake::Target
        );
    }

    #[test]
    fn fresh_pair_is_connected_inconsistent_and_refuses_promotion() {
        let (mut a, _b) = up_pair();
        let up = a.up().unwrap();
        assert_eq!(up.connection, Some(Connection::Connected));
        assert_eq!(up.replication, Replication::Established);
        assert_eq!(
            (up.disk, up.peer_disk),
            (Disk::Inconsistent, Disk::Inconsistent)
        );
        assert_eq!(a.promote(7), Err(Refusal::NoUpToDateDisk));
    }

    #[test]
    fn clear_bitmap_then_promote_and_peer_refuses_second_primary() {
        let (mut a, mut b) = up_pair();
        let actions = a.clear_bitmap(42).unwrap();
        let Some(Action::SendClearBitmap(uuids)) = actions.last().copied() else {
            panic!("no clear-bitmap for the peer in {actions:?}");
        };
        b.peer_cleared_bitmap(uuids);
        assert_eq!(b.up().unwrap().disk, Disk::UpToDate);
        assert_eq!(b.up().unwrap().uuids.current, 42);
        a.promote(1).unwrap();
        assert_eq!(
            a.up().unwrap().uuids.current,
            42,
            "connected promotion keeps the generation"
        );
        sync_roles(&mut a, &mut b);
        assert_eq!(b.up().unwrap().peer_role, Role::Primary);
        assert_eq!(b.promote(2), Err(Refusal::TwoPrimaries));
        assert_eq!(
            a.promote(3),
            Ok(Vec::new()),
            "promote on a primary is a no-op"
        );
    }

    #[test]
    fn link_loss_on_primary_fences_peer_and_reconnect_resyncs() {
        let (mut a, mut b) = up_pair();
        let uuids = match a.clear_bitmap(42).unwrap().last() {
            Some(Action::SendClearBitmap(u)) => *u,
            other => panic!("{other:?}"),
        };
        b.peer_cleared_bitmap(uuids);
        a.promote(1).unwrap();
        sync_roles(&mut a, &mut b);
        a.take_events();
        a.link_lost(43);
        b.link_lost(44);
        let ua = a.up().unwrap();
        assert_eq!(ua.connection, Some(Connection::Connecting));
        assert_eq!(
            ua.peer_disk,
            Disk::Outdated,
            "resource-only fencing outdates the peer"
        );
        assert_eq!(
            ua.uuids,
            Uuids {
                current: 43,
                history: 42
            }
        );
        assert_eq!(b.up().unwrap().peer_disk, Disk::DUnknown);
        assert_eq!(
            b.up().unwrap().uuids.current,
            42,
            "a secondary keeps its generation"
        );
        let keys: Vec<_> = a.take_events().iter().map(|e| e.changed.clone()).collect();
        assert_eq!(keys[0], vec!["connection", "role"]);
        connect(&mut a, &mut b);
        assert_eq!(a.up().unwrap().replication, Replication::SyncSource);
        assert_eq!(b.up().unwrap().replication, Replication::SyncTarget);
        assert_eq!(b.up().unwrap().disk, Disk::Inconsistent);
        a.resync_sent();
        b.resync_received(a.up().unwrap().uuids);
        assert_eq!(b.up().unwrap().disk, Disk::UpToDate);
        assert_eq!(a.up().unwrap().peer_disk, Disk::UpToDate);
        assert_eq!(b.promote(5), Err(Refusal::TwoPrimaries));
    }

    #[test]
    fn both_promoted_while_cut_is_split_brain() {
        let (mut a, mut b) = up_pair();
        let uuids = match a.clear_bitmap(42).unwrap().last() {
            Some(Action::SendClearBitmap(u)) => *u,
            other => panic!("{other:?}"),
        };
        b.peer_cleared_bitmap(uuids);
        a.promote(1).unwrap();
        a.link_lost(43);
        b.link_lost(44);
        b.promote(45).unwrap();
        a.link_connected();
        b.link_connected();
        let (sa, sb) = (a.peer_state().unwrap(), b.peer_state().unwrap());
        assert_eq!(a.peer_state_received(sb), vec![Action::Disconnect]);
        b.peer_state_received(sa);
        assert_eq!(a.up().unwrap().connection, None);
        assert!(!a.wants_connection());
        assert!(
            a.exists()
                .iter()
                .all(|e| !matches!(e.object, Object::Connection { .. }))
        );
    }

    #[test]
    fn held_open_refuses_demote_and_down() {
        let (mut a, mut b) = up_pair();
        let uuids = match a.clear_bitmap(42).unwrap().last() {
            Some(Action::SendClearBitmap(u)) => *u,
            other => panic!("{other:?}"),
        };
        b.peer_cleared_bitmap(uuids);
        a.promote(1).unwrap();
        assert_eq!(a.demote(true), Err(Refusal::DeviceInUse));
        assert_eq!(a.take_down(true), Err(Refusal::DeviceInUse));
        a.demote(false).unwrap();
        assert_eq!(a.demote(false), Ok(Vec::new()));
        a.take_down(false).unwrap();
        assert!(a.up().is_none());
        assert_eq!(a.take_down(false), Ok(Vec::new()), "down is idempotent");
        assert_eq!(a.promote(1), Err(Refusal::NotUp));
    }

    #[test]
    fn outdate_rules() {
        let mut a = Kernel::new(SIZE, Fencing::DontCare);
        a.bring_up(Meta {
            disk: Disk::UpToDate,
            uuids: Uuids::default(),
        })
        .unwrap();
        a.outdate().unwrap();
        assert_eq!(a.up().unwrap().disk, Disk::Outdated);
        assert_eq!(a.promote(9), Err(Refusal::NoUpToDateDisk));
        let (mut c, _d) = up_pair();
        assert_eq!(c.outdate(), Err(Refusal::ConnectedOutdates));
    }
}
