//! The heartbeat wire format: encode, decode and authenticate heartbeats, as pure bytes.
//!
//! Every heartbeat is exactly [`HEARTBEAT_LEN`] bytes. It starts with the fixed header
//! that the kernel reads ([`ha_common::heartbeat`]), and ends with an HMAC-SHA256 tag over
//! everything before it. All integers are big-endian.
//!
//! ```text
//! offset  size  field
//!      0     4  magic b"HAhb"                 ha_common::heartbeat::MAGIC
//!      4     1  version                       ha_common::heartbeat::VERSION
//!      5     3  reserved, zero
//!      8     8  seq, u64                      ha_common::heartbeat::SEQ_OFFSET
//!     16     4  cluster id, u32
//!     20     2  sender's node id, u16
//!     22     1  role                          Role
//!     23     1  resource health               ResourceHealth
//!     24     8  epoch, u64
//!     32     2  flags, u16                    Flags
//!     34     2  reserved, zero
//!     36     8  what the sender hears from us, one byte per link slot   LinkHearing
//!     44    32  HMAC-SHA256(key, bytes 0..44)
//!     76        total (HEARTBEAT_LEN)
//! ```
//!
//! Node ids are `u16`: two nodes need two values, and 16 bits leave room for a witness
//! and for renumbering without a format change. The "hears" array has one entry per link
//! slot (`ha_common::MAX_LINKS` = 8); changing `MAX_LINKS` changes this format, so it
//! needs a new `VERSION` (a compile-time assertion below keeps this table honest).
//!
//! Decoding never panics and checks, in this order: length against the fixed header,
//! magic, version, total length, cluster id, node id, MAC, then the field values. Checks
//! before the MAC only ever *reject* (they cannot make a forged packet acceptable); they
//! run first because they are cheap and name the likely misconfiguration (a second
//! cluster on the same network, a node configured with our id). The MAC is compared in
//! constant time. Replay is checked separately by [`ReplayGuard`], after decoding.

use std::fmt;

use ha_common::MAX_LINKS;
use ha_common::heartbeat::{FIXED_HEADER_LEN, MAGIC, SEQ_OFFSET, VERSION, VERSION_OFFSET};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// Number of link slots a heartbeat reports on.
pub const LINK_SLOTS: usize = MAX_LINKS as usize;
const _: () = assert!(
    LINK_SLOTS == 8,
    "the layout table in core/wire.rs assumes 8 link slots; bump VERSION"
);

const CLUSTER_ID_OFFSET: usize = FIXED_HEADER_LEN;
const NODE_ID_OFFSET: usize = CLUSTER_ID_OFFSET + 4;
const ROLE_OFFSET: usize = NODE_ID_OFFSET + 2;
const HEALTH_OFFSET: usize = ROLE_OFFSET + 1;
const EPOCH_OFFSET: usize = HEALTH_OFFSET + 1;
const FLAGS_OFFSET: usize = EPOCH_OFFSET + 8;
const RESERVED_OFFSET: usize = FLAGS_OFFSET + 2;
const HEARS_OFFSET: usize = RESERVED_OFFSET + 2;
/// Offset of the HMAC-SHA256 tag; the tag covers bytes `0..MAC_OFFSET`.
pub const MAC_OFFSET: usize = HEARS_OFFSET + LINK_SLOTS;
/// Length of the HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Exact length of every heartbeat datagram.
pub const HEARTBEAT_LEN: usize = MAC_OFFSET + MAC_LEN;
const _: () = assert!(HEARTBEAT_LEN == 76);
const _: () = assert!(SEQ_OFFSET + 8 <= FIXED_HEADER_LEN);

/// Shortest accepted shared key, in bytes (128 bits).
pub const MIN_KEY_LEN: usize = 16;

/// The sender's role, as carried on the wire. The discriminants are the wire values; a
/// new role needs a new `VERSION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// Does not hold the resource group.
    Secondary = 1,
    /// Holds (or is taking over) the resource group.
    Primary = 2,
}

impl Role {
    fn from_wire(raw: u8) -> Option<Self> {
        match raw {
            1 => Some(Self::Secondary),
            2 => Some(Self::Primary),
            _ => None,
        }
    }
}

/// Summary health of the sender's resources. The discriminants are the wire values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResourceHealth {
    /// Not monitored yet (daemon starting).
    Unknown = 0,
    /// Every monitor reports success.
    Healthy = 1,
    /// Running, but some monitor reports a problem.
    Degraded = 2,
    /// A resource the group needs has failed.
    Failed = 3,
}

impl ResourceHealth {
    fn from_wire(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Unknown),
            1 => Some(Self::Healthy),
            2 => Some(Self::Degraded),
            3 => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What the sender currently hears from us on one link slot (BFD's "remote state"), so
/// each node knows whether its own packets arrive. The discriminants are the wire values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LinkHearing {
    /// The sender has no link in this slot.
    #[default]
    Unused = 0,
    /// The sender's detector has this link down: our packets do not arrive (or not yet
    /// for `rise` intervals).
    Down = 1,
    /// The sender's detector has this link up: our packets arrive.
    Up = 2,
}

impl LinkHearing {
    fn from_wire(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Unused),
            1 => Some(Self::Down),
            2 => Some(Self::Up),
            _ => None,
        }
    }
}

/// The flag bits of a heartbeat. Invariant: only the bits named by the constants below
/// are ever set ([`Flags::from_bits`] refuses others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

impl Flags {
    /// The sender is in standby: it will not hold the resource group.
    pub const STANDBY: Self = Self(1 << 0);
    /// The sender is in maintenance: it monitors only and takes no action.
    pub const MAINTENANCE: Self = Self(1 << 1);
    /// The sender asks us to take the resource group (first phase of a switchover).
    pub const SWITCHOVER_REQUEST: Self = Self(1 << 2);
    /// The sender acknowledges our switchover request.
    pub const SWITCHOVER_ACK: Self = Self(1 << 3);
    const KNOWN: u16 =
        Self::STANDBY.0 | Self::MAINTENANCE.0 | Self::SWITCHOVER_REQUEST.0 | Self::SWITCHOVER_ACK.0;

    /// No flag set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The flags with these wire bits; `None` if an unknown bit is set.
    pub const fn from_bits(bits: u16) -> Option<Self> {
        if bits & !Self::KNOWN == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The wire bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the flags of `other` set as well.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// One heartbeat, as sent by a node on a link.
///
/// Only [`decode`] produces a `Heartbeat` from bytes, and only when its MAC verified; it
/// still has to pass a [`ReplayGuard`] before it counts as fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    /// Sequence number; a sender never reuses an `(epoch, seq)` pair (it starts from a
    /// value that survives restarts, e.g. the wall-clock time in nanoseconds at start).
    pub seq: u64,
    /// Cluster id; both nodes of a cluster use the same.
    pub cluster_id: u32,
    /// The sender's node id.
    pub node_id: u16,
    /// The sender's epoch (rises at every change of primary).
    pub epoch: u64,
    /// The sender's role.
    pub role: Role,
    /// Standby, maintenance, switchover request/ack.
    pub flags: Flags,
    /// Summary health of the sender's resources.
    pub health: ResourceHealth,
    /// What the sender hears from us, indexed by link slot.
    pub hears: [LinkHearing; LINK_SLOTS],
}

/// Why a datagram was not accepted as a heartbeat. One variant per reason, each counted
/// per link in [`RejectCounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// Shorter than [`HEARTBEAT_LEN`] (or than the fixed header).
    #[error("truncated heartbeat")]
    Truncated,
    /// Longer than [`HEARTBEAT_LEN`].
    #[error("oversized heartbeat")]
    Oversized,
    /// Does not start with the heartbeat magic.
    #[error("bad magic")]
    BadMagic,
    /// A wire format version this build does not speak.
    #[error("unsupported version")]
    BadVersion,
    /// Another cluster's heartbeat (its cluster id is not ours).
    #[error("foreign cluster id")]
    ForeignCluster,
    /// Carries our own node id: a loop, or a peer misconfigured with our id.
    #[error("our own node id")]
    OwnNodeId,
    /// Authentic, but from a node id that is not our peer's (checked by the receiver,
    /// which knows the peer; a third node with the cluster key, or a misconfiguration).
    #[error("not the peer's node id")]
    UnknownNode,
    /// The HMAC does not verify: wrong key, corruption or forgery.
    #[error("bad MAC")]
    BadMac,
    /// Authentic, but a field holds a value this version does not define (reserved bytes
    /// not zero, unknown role, health, flag bit or link state).
    #[error("malformed field")]
    Malformed,
    /// Authentic, but its sequence number is not newer than one already accepted in the
    /// same epoch.
    #[error("replayed heartbeat")]
    Replay,
    /// Authentic, but from an epoch older than one already accepted.
    #[error("stale epoch")]
    StaleEpoch,
}

/// The shared secret, keyed once into an HMAC-SHA256 state.
///
/// Invariant: at least [`MIN_KEY_LEN`] bytes. `Debug` never shows the key.
#[derive(Clone)]
pub struct HeartbeatKey {
    mac: Hmac<Sha256>,
}

/// The key is too short to authenticate heartbeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("heartbeat key has {len} bytes, at least {MIN_KEY_LEN} are required")]
pub struct KeyTooShort {
    /// Length of the refused key.
    pub len: usize,
}

impl HeartbeatKey {
    /// Keys HMAC-SHA256 with `secret` (the contents of the key file).
    pub fn new(secret: &[u8]) -> Result<Self, KeyTooShort> {
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyTooShort { len: secret.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| KeyTooShort { len: secret.len() })?;
        Ok(Self { mac })
    }

    fn tag(&self, covered: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(covered);
        mac
    }
}

impl fmt::Debug for HeartbeatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeartbeatKey(..)")
    }
}

/// The datagram for `heartbeat`, authenticated with `key`.
pub fn encode(heartbeat: &Heartbeat, key: &HeartbeatKey) -> [u8; HEARTBEAT_LEN] {
    let Heartbeat {
        seq,
        cluster_id,
        node_id,
        epoch,
        role,
        flags,
        health,
        hears,
    } = *heartbeat;
    let mut bytes = [0u8; HEARTBEAT_LEN];
    bytes[..FIXED_HEADER_LEN].copy_from_slice(&ha_common::heartbeat::fixed_header(seq));
    bytes[CLUSTER_ID_OFFSET..NODE_ID_OFFSET].copy_from_slice(&cluster_id.to_be_bytes());
    bytes[NODE_ID_OFFSET..ROLE_OFFSET].copy_from_slice(&node_id.to_be_bytes());
    bytes[ROLE_OFFSET] = role as u8;
    bytes[HEALTH_OFFSET] = health as u8;
    bytes[EPOCH_OFFSET..FLAGS_OFFSET].copy_from_slice(&epoch.to_be_bytes());
    bytes[FLAGS_OFFSET..RESERVED_OFFSET].copy_from_slice(&flags.bits().to_be_bytes());
    for (byte, hearing) in bytes[HEARS_OFFSET..MAC_OFFSET].iter_mut().zip(hears) {
        *byte = hearing as u8;
    }
    seal(&mut bytes, key);
    bytes
}

/// Writes the tag over `bytes[..MAC_OFFSET]` into `bytes[MAC_OFFSET..]`.
fn seal(bytes: &mut [u8; HEARTBEAT_LEN], key: &HeartbeatKey) {
    let tag = key.tag(&bytes[..MAC_OFFSET]).finalize().into_bytes();
    bytes[MAC_OFFSET..].copy_from_slice(&tag);
}

/// Decodes and authenticates one datagram received on a link.
///
/// Accepts only a heartbeat of exactly [`HEARTBEAT_LEN`] bytes, from `expected_cluster_id`,
/// not carrying `our_node_id`, whose MAC verifies under `key` and whose fields all hold
/// defined values. Never panics. Does not check for replay: pass the result to the
/// link's [`ReplayGuard`].
pub fn decode(
    bytes: &[u8],
    key: &HeartbeatKey,
    expected_cluster_id: u32,
    our_node_id: u16,
) -> Result<Heartbeat, Reject> {
    let header = bytes.get(..FIXED_HEADER_LEN).ok_or(Reject::Truncated)?;
    if header[..MAGIC.len()] != MAGIC {
        return Err(Reject::BadMagic);
    }
    if header[VERSION_OFFSET] != VERSION {
        return Err(Reject::BadVersion);
    }
    let bytes: &[u8; HEARTBEAT_LEN] = match bytes.len() {
        len if len < HEARTBEAT_LEN => return Err(Reject::Truncated),
        len if len > HEARTBEAT_LEN => return Err(Reject::Oversized),
        _ => bytes.try_into().map_err(|_| Reject::Truncated)?,
    };
    if u32::from_be_bytes(array(bytes, CLUSTER_ID_OFFSET)) != expected_cluster_id {
        return Err(Reject::ForeignCluster);
    }
    let node_id = u16::from_be_bytes(array(bytes, NODE_ID_OFFSET));
    if node_id == our_node_id {
        return Err(Reject::OwnNodeId);
    }
    key.tag(&bytes[..MAC_OFFSET])
        .verify_slice(&bytes[MAC_OFFSET..])
        .map_err(|_| Reject::BadMac)?;

    let reserved_zero = bytes[VERSION_OFFSET + 1..SEQ_OFFSET]
        .iter()
        .all(|&b| b == 0)
        && bytes[RESERVED_OFFSET..HEARS_OFFSET].iter().all(|&b| b == 0);
    if !reserved_zero {
        return Err(Reject::Malformed);
    }
    let role = Role::from_wire(bytes[ROLE_OFFSET]).ok_or(Reject::Malformed)?;
    let health = ResourceHealth::from_wire(bytes[HEALTH_OFFSET]).ok_or(Reject::Malformed)?;
    let flags = Flags::from_bits(u16::from_be_bytes(array(bytes, FLAGS_OFFSET)))
        .ok_or(Reject::Malformed)?;
    let mut hears = [LinkHearing::Unused; LINK_SLOTS];
    for (hearing, &raw) in hears.iter_mut().zip(&bytes[HEARS_OFFSET..MAC_OFFSET]) {
        *hearing = LinkHearing::from_wire(raw).ok_or(Reject::Malformed)?;
    }
    Ok(Heartbeat {
        seq: u64::from_be_bytes(array(bytes, SEQ_OFFSET)),
        cluster_id: expected_cluster_id,
        node_id,
        epoch: u64::from_be_bytes(array(bytes, EPOCH_OFFSET)),
        role,
        flags,
        health,
        hears,
    })
}

/// The `N` bytes at `at`. The offsets are constants inside the fixed-size packet.
fn array<const N: usize>(bytes: &[u8; HEARTBEAT_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Replay protection for the heartbeats of the peer on one link.
///
/// Accepts a heartbeat only if it is newer than every one accepted before: a higher
/// epoch (any seq), or the same epoch with a strictly higher seq. A lower epoch is
/// [`Reject::StaleEpoch`], an equal or lower seq in the same epoch [`Reject::Replay`].
///
/// Keep one guard per link, not one per peer: a node sends the same `(epoch, seq)` on
/// every link, so a guard shared by the links would reject the slower copy. Feed it only
/// heartbeats that [`decode`] accepted, so forged packets cannot move it. The guard lives
/// in memory; after our restart it accepts the first authentic heartbeat again, and a
/// restarted sender stays acceptable because its seq starts from a value that survives
/// restarts (see [`Heartbeat::seq`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayGuard {
    newest: Option<(u64, u64)>,
}

impl ReplayGuard {
    /// A guard that has accepted nothing yet.
    pub const fn new() -> Self {
        Self { newest: None }
    }

    /// Accepts `heartbeat` if it is newer than all accepted so far, and remembers it.
    pub fn check(&mut self, heartbeat: &Heartbeat) -> Result<(), Reject> {
        let candidate = (heartbeat.epoch, heartbeat.seq);
        if let Some((epoch, seq)) = self.newest {
            if candidate.0 < epoch {
                return Err(Reject::StaleEpoch);
            }
            if candidate.0 == epoch && candidate.1 <= seq {
                return Err(Reject::Replay);
            }
        }
        self.newest = Some(candidate);
        Ok(())
    }

    /// The newest `(epoch, seq)` accepted, if any.
    pub const fn newest(&self) -> Option<(u64, u64)> {
        self.newest
    }
}

/// How many datagrams were rejected, per reason. The I/O layer keeps one per link.
/// Counters saturate instead of wrapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectCounts {
    /// [`Reject::Truncated`].
    pub truncated: u64,
    /// [`Reject::Oversized`].
    pub oversized: u64,
    /// [`Reject::BadMagic`].
    pub bad_magic: u64,
    /// [`Reject::BadVersion`].
    pub bad_version: u64,
    /// [`Reject::ForeignCluster`].
    pub foreign_cluster: u64,
    /// [`Reject::OwnNodeId`].
    pub own_node_id: u64,
    /// [`Reject::UnknownNode`].
    pub unknown_node: u64,
    /// [`Reject::BadMac`].
    pub bad_mac: u64,
    /// [`Reject::Malformed`].
    pub malformed: u64,
    /// [`Reject::Replay`].
    pub replay: u64,
    /// [`Reject::StaleEpoch`].
    pub stale_epoch: u64,
}

impl RejectCounts {
    /// Counts one rejection.
    pub fn record(&mut self, reject: Reject) {
        let counter = self.counter_mut(reject);
        *counter = counter.saturating_add(1);
    }

    /// How many datagrams were rejected for `reject`.
    pub fn count(&self, reject: Reject) -> u64 {
        let Self {
            truncated,
            oversized,
            bad_magic,
            bad_version,
            foreign_cluster,
            own_node_id,
            unknown_node,
            bad_mac,
            malformed,
            replay,
            stale_epoch,
        } = *self;
        match reject {
            Reject::Truncated => truncated,
            Reject::Oversized => oversized,
            Reject::BadMagic => bad_magic,
            Reject::BadVersion => bad_version,
            Reject::ForeignCluster => foreign_cluster,
            Reject::OwnNodeId => own_node_id,
            Reject::UnknownNode => unknown_node,
            Reject::BadMac => bad_mac,
            Reject::Malformed => malformed,
            Reject::Replay => replay,
            Reject::StaleEpoch => stale_epoch,
        }
    }

    /// All rejections, saturating.
    pub fn total(&self) -> u64 {
        Reject::ALL
            .iter()
            .fold(0u64, |sum, &reject| sum.saturating_add(self.count(reject)))
    }

    fn counter_mut(&mut self, reject: Reject) -> &mut u64 {
        match reject {
            Reject::Truncated => &mut self.truncated,
            Reject::Oversized => &mut self.oversized,
            Reject::BadMagic => &mut self.bad_magic,
            Reject::BadVersion => &mut self.bad_version,
            Reject::ForeignCluster => &mut self.foreign_cluster,
            Reject::OwnNodeId => &mut self.own_node_id,
            Reject::UnknownNode => &mut self.unknown_node,
            Reject::BadMac => &mut self.bad_mac,
            Reject::Malformed => &mut self.malformed,
            Reject::Replay => &mut self.replay,
            Reject::StaleEpoch => &mut self.stale_epoch,
        }
    }
}

impl Reject {
    /// Every reason, in the order decoding checks them (replay last).
    pub const ALL: [Self; 11] = [
        Self::Truncated,
        Self::Oversized,
        Self::BadMagic,
        Self::BadVersion,
        Self::ForeignCluster,
        Self::OwnNodeId,
        Self::BadMac,
        Self::UnknownNode,
        Self::Malformed,
        Self::Replay,
        Self::StaleEpoch,
    ];
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const CLUSTER: u32 = 0x00c0_ffee;
    const US: u16 = 1;
    const PEER: u16 = 2;

    fn key() -> HeartbeatKey {
        HeartbeatKey::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn sample() -> Heartbeat {
        let mut hears = [LinkHearing::Unused; LINK_SLOTS];
        hears[0] = LinkHearing::Up;
        hears[1] = LinkHearing::Down;
        Heartbeat {
            seq: 0x0102_0304_0506_0708,
            cluster_id: CLUSTER,
            node_id: PEER,
            epoch: 7,
            role: Role::Primary,
            flags: Flags::STANDBY.with(Flags::SWITCHOVER_ACK),
            health: ResourceHealth::Healthy,
            hears,
        }
    }

    fn decode_ours(bytes: &[u8]) -> Result<Heartbeat, Reject> {
        decode(bytes, &key(), CLUSTER, US)
    }

    /// A valid packet with `edit` applied before the MAC is recomputed.
    fn resealed(edit: impl FnOnce(&mut [u8; HEARTBEAT_LEN])) -> [u8; HEARTBEAT_LEN] {
        let mut bytes = encode(&sample(), &key());
        edit(&mut bytes);
        seal(&mut bytes, &key());
        bytes
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode_ours(&encode(&sample(), &key())), Ok(sample()));
    }

    #[test]
    fn layout_matches_the_table() {
        let bytes = encode(&sample(), &key());
        assert_eq!(&bytes[..4], b"HAhb");
        assert_eq!(bytes[4], VERSION);
        assert_eq!(&bytes[5..8], &[0, 0, 0]);
        assert_eq!(&bytes[16..20], &CLUSTER.to_be_bytes());
        assert_eq!(&bytes[20..22], &PEER.to_be_bytes());
        assert_eq!(bytes[22], 2, "role Primary");
        assert_eq!(bytes[23], 1, "health Healthy");
        assert_eq!(&bytes[24..32], &7u64.to_be_bytes());
        assert_eq!(&bytes[32..34], &0b1001u16.to_be_bytes());
        assert_eq!(&bytes[34..36], &[0, 0]);
        assert_eq!(&bytes[36..44], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes.len(), 76);
    }

    #[test]
    fn the_kernel_reads_the_seq_at_its_fixed_offset() {
        let bytes = encode(&sample(), &key());
        assert_eq!(ha_common::heartbeat::parse_seq(&bytes), Some(sample().seq));
    }

    #[test]
    fn rejects_truncated() {
        let bytes = encode(&sample(), &key());
        assert_eq!(decode_ours(&[]), Err(Reject::Truncated));
        assert_eq!(
            decode_ours(&bytes[..FIXED_HEADER_LEN - 1]),
            Err(Reject::Truncated)
        );
        assert_eq!(
            decode_ours(&bytes[..FIXED_HEADER_LEN]),
            Err(Reject::Truncated)
        );
        assert_eq!(
            decode_ours(&bytes[..HEARTBEAT_LEN - 1]),
            Err(Reject::Truncated)
        );
    }

    #[test]
    fn rejects_oversized() {
        let mut long = encode(&sample(), &key()).to_vec();
        long.push(0);
        assert_eq!(decode_ours(&long), Err(Reject::Oversized));
        long.resize(9000, 0);
        assert_eq!(decode_ours(&long), Err(Reject::Oversized));
    }

    #[test]
    fn rejects_bad_magic() {
        let mut bytes = encode(&sample(), &key());
        bytes[0] = b'X';
        assert_eq!(decode_ours(&bytes), Err(Reject::BadMagic));
        assert_eq!(
            decode_ours(&bytes[..FIXED_HEADER_LEN]),
            Err(Reject::BadMagic),
            "a short datagram that is no heartbeat at all is named by its magic"
        );
    }

    #[test]
    fn rejects_bad_version() {
        let mut bytes = encode(&sample(), &key());
        bytes[VERSION_OFFSET] = VERSION + 1;
        assert_eq!(decode_ours(&bytes), Err(Reject::BadVersion));
    }

    #[test]
    fn rejects_foreign_cluster() {
        let bytes = encode(&sample(), &key());
        assert_eq!(
            decode(&bytes, &key(), CLUSTER + 1, US),
            Err(Reject::ForeignCluster)
        );
    }

    #[test]
    fn rejects_own_node_id() {
        let bytes = encode(&sample(), &key());
        assert_eq!(
            decode(&bytes, &key(), CLUSTER, PEER),
            Err(Reject::OwnNodeId)
        );
    }

    #[test]
    fn rejects_bad_mac() {
        let good = encode(&sample(), &key());

        let mut body = good;
        body[EPOCH_OFFSET + 7] ^= 1;
        assert_eq!(decode_ours(&body), Err(Reject::BadMac), "body changed");

        let mut tag = good;
        tag[HEARTBEAT_LEN - 1] ^= 0x80;
        assert_eq!(decode_ours(&tag), Err(Reject::BadMac), "tag changed");

        let other = HeartbeatKey::new(b"another key, also long enough").unwrap();
        assert_eq!(
            decode(&good, &other, CLUSTER, US),
            Err(Reject::BadMac),
            "wrong key"
        );
    }

    #[test]
    fn rejects_malformed_fields_even_when_authentic() {
        type Edit = fn(&mut [u8; HEARTBEAT_LEN]);
        let cases: [(&str, Edit); 7] = [
            ("header reserved", |b| b[VERSION_OFFSET + 1] = 1),
            ("body reserved", |b| b[RESERVED_OFFSET + 1] = 1),
            ("role 0", |b| b[ROLE_OFFSET] = 0),
            ("role 3", |b| b[ROLE_OFFSET] = 3),
            ("health 4", |b| b[HEALTH_OFFSET] = 4),
            ("unknown flag bit", |b| b[FLAGS_OFFSET] = 0x80),
            ("link state 3", |b| b[HEARS_OFFSET + 7] = 3),
        ];
        for (what, edit) in cases {
            assert_eq!(
                decode_ours(&resealed(edit)),
                Err(Reject::Malformed),
                "{what}"
            );
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            HeartbeatKey::new(&[7; MIN_KEY_LEN - 1]).err(),
            Some(KeyTooShort {
                len: MIN_KEY_LEN - 1
            })
        );
        assert!(HeartbeatKey::new(&[7; MIN_KEY_LEN]).is_ok());
        assert_eq!(format!("{:?}", key()), "HeartbeatKey(..)");
    }

    #[test]
    fn flags_refuse_unknown_bits() {
        assert_eq!(
            Flags::from_bits(0b1111),
            Some(
                Flags::STANDBY
                    .with(Flags::MAINTENANCE)
                    .with(Flags::SWITCHOVER_REQUEST)
                    .with(Flags::SWITCHOVER_ACK)
            )
        );
        assert_eq!(Flags::from_bits(0b1_0000), None);
        assert!(
            Flags::empty()
                .with(Flags::MAINTENANCE)
                .contains(Flags::MAINTENANCE)
        );
        assert!(!Flags::STANDBY.contains(Flags::MAINTENANCE));
    }

    fn at(epoch: u64, seq: u64) -> Heartbeat {
        Heartbeat {
            epoch,
            seq,
            ..sample()
        }
    }

    #[test]
    fn replay_guard_accepts_only_newer_seq_within_an_epoch() {
        let mut guard = ReplayGuard::new();
        assert_eq!(guard.check(&at(3, 10)), Ok(()));
        assert_eq!(guard.check(&at(3, 10)), Err(Reject::Replay), "same packet");
        assert_eq!(guard.check(&at(3, 9)), Err(Reject::Replay), "older seq");
        assert_eq!(guard.check(&at(3, 11)), Ok(()));
        assert_eq!(guard.newest(), Some((3, 11)));
    }

    #[test]
    fn replay_guard_across_an_epoch_change() {
        let mut guard = ReplayGuard::new();
        assert_eq!(guard.check(&at(3, 1_000)), Ok(()));
        assert_eq!(
            guard.check(&at(4, 5)),
            Ok(()),
            "a higher epoch resets the seq window"
        );
        assert_eq!(guard.check(&at(4, 5)), Err(Reject::Replay));
        assert_eq!(guard.check(&at(4, 6)), Ok(()));
        assert_eq!(
            guard.check(&at(3, 1_001)),
            Err(Reject::StaleEpoch),
            "the old epoch stays closed, even with a newer seq"
        );
        assert_eq!(guard.check(&at(3, 2)), Err(Reject::StaleEpoch));
        assert_eq!(guard.newest(), Some((4, 6)));
    }

    #[test]
    fn reject_counts_count_each_reason_separately() {
        let mut counts = RejectCounts::default();
        for (n, reject) in Reject::ALL.into_iter().enumerate() {
            for _ in 0..=n {
                counts.record(reject);
            }
        }
        for (n, reject) in Reject::ALL.into_iter().enumerate() {
            assert_eq!(counts.count(reject), n as u64 + 1, "{reject}");
        }
        assert_eq!(counts.total(), 66);
        counts.bad_mac = u64::MAX;
        counts.record(Reject::BadMac);
        assert_eq!(counts.count(Reject::BadMac), u64::MAX);
        assert_eq!(counts.total(), u64::MAX);
    }

    fn any_heartbeat() -> impl Strategy<Value = Heartbeat> {
        (
            any::<u64>(),
            any::<u16>().prop_filter("not our id", |&id| id != US),
            any::<u64>(),
            prop_oneof![Just(Role::Secondary), Just(Role::Primary)],
            0u16..16,
            0u8..4,
            proptest::array::uniform8(0u8..3),
        )
            .prop_map(
                |(seq, node_id, epoch, role, flags, health, hears)| Heartbeat {
                    seq,
                    cluster_id: CLUSTER,
                    node_id,
                    epoch,
                    role,
                    flags: Flags::from_bits(flags).unwrap(),
                    health: ResourceHealth::from_wire(health).unwrap(),
                    hears: hears.map(|raw| LinkHearing::from_wire(raw).unwrap()),
                },
            )
    }

    proptest! {
        #[test]
        fn random_bytes_never_decode(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(decode_ours(&bytes).is_err());
        }

        #[test]
        fn random_bytes_behind_a_valid_header_never_decode(
            seq in any::<u64>(),
            tail in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut bytes = ha_common::heartbeat::fixed_header(seq).to_vec();
            bytes.extend_from_slice(&tail);
            prop_assert!(decode_ours(&bytes).is_err());
        }

        #[test]
        fn any_heartbeat_round_trips(heartbeat in any_heartbeat()) {
            prop_assert_eq!(decode_ours(&encode(&heartbeat, &key())), Ok(heartbeat));
        }

        #[test]
        fn any_single_byte_change_is_rejected(
            heartbeat in any_heartbeat(),
            at in 0..HEARTBEAT_LEN,
            xor in 1u8..=255,
        ) {
            let mut bytes = encode(&heartbeat, &key());
            bytes[at] ^= xor;
            prop_assert!(decode_ours(&bytes).is_err());
        }
    }
}
