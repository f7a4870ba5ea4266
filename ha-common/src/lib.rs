//! Types shared by the kernel programs (`ha-ebpf`) and the daemon (`ha-daemon`).
//!
//! Every type that crosses the kernel/userspace boundary lives here, once:
//!
//! - [`LinkTable`] / [`LinkConfig`]: what the daemon tells the kernel about its links
//!   (map `LINK_TABLE`, one entry). A link's *slot* is its index in the table.
//! - [`LinkStats`] / [`Counters`]: what the kernel counted on one link (per-CPU map
//!   `LINK_STATS`, indexed by slot).
//! - [`EdgeEvent`]: "first evidence after silence", sent through the ring buffer
//!   `EDGE_EVENTS` so the daemon wakes at once instead of polling.
//! - [`heartbeat`]: the fixed header of a heartbeat, the part the kernel reads.
//! - [`echo`]: echo requests and the replies the peer's kernel reflects.
//!
//! Layout rules for every `#[repr(C)]` type: no implicit padding (padding is an explicit
//! `_pad` field, always zero), no `bool` (the kernel may hand us any byte), and a
//! compile-time assertion of the size so a change on one side cannot go unnoticed.
#![no_std]

pub mod echo;
pub mod heartbeat;

/// How many links one node can have: the size of [`LinkTable`] and of the stats maps.
pub const MAX_LINKS: u32 = 8;

/// Names of the maps in the eBPF object, as the loader looks them up.
pub mod map_names {
    /// `Array<LinkTable>` with one entry, written by the daemon.
    pub const LINK_TABLE: &str = "LINK_TABLE";
    /// `PerCpuArray<LinkStats>` with [`crate::MAX_LINKS`] entries.
    pub const LINK_STATS: &str = "LINK_STATS";
    /// `Array<u64>` with [`crate::MAX_LINKS`] entries: kernel time of the newest received
    /// evidence, shared by all CPUs, used only to decide when to emit an [`crate::EdgeEvent`].
    pub const LAST_EVIDENCE: &str = "LAST_EVIDENCE";
    /// `RingBuf` of [`crate::EdgeEvent`].
    pub const EDGE_EVENTS: &str = "EDGE_EVENTS";
}

/// Names of the programs in the eBPF object.
pub mod program_names {
    /// XDP program, attached to every link interface (ingress).
    pub const XDP_INGRESS: &str = "ha_xdp_ingress";
    /// tc clsact egress program, attached to every link interface.
    pub const TC_EGRESS: &str = "ha_tc_egress";
    /// XDP program that only passes; the baseline of the per-packet cost benchmark.
    pub const XDP_PASS_BASELINE: &str = "ha_xdp_pass_baseline";
    /// XDP program that reads the precise clock once and passes; shows the benchmark
    /// what that one read costs.
    pub const XDP_CLOCK_BASELINE: &str = "ha_xdp_clock_baseline";
}

/// Bit in [`LinkConfig::peer_families`]: [`LinkConfig::peer_ipv4`] is set.
pub const PEER_IPV4: u8 = 1;
/// Bit in [`LinkConfig::peer_families`]: [`LinkConfig::peer_ipv6`] is set.
pub const PEER_IPV6: u8 = 2;

/// Every link of this node, by slot. The kernel finds a packet's link by comparing the
/// interface index with each slot's [`LinkConfig::ifindex`]: a scan of [`MAX_LINKS`]
/// entries in one array element is several times cheaper than a hash-map lookup.
///
/// Invariant: an interface index appears in at most one slot; unused slots are all zero
/// (interface index 0 never matches a packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkTable {
    /// The links, indexed by slot.
    pub links: [LinkConfig; MAX_LINKS as usize],
}
const _: () = assert!(size_of::<LinkTable>() == 48 * MAX_LINKS as usize);

/// What the kernel must know about one link: its interface, who the peer is and which
/// ports carry evidence.
///
/// Invariants (checked by the daemon before it writes the map):
/// `replication_port_first <= replication_port_last`; at least one of [`PEER_IPV4`] /
/// [`PEER_IPV6`] set in `peer_families`. Ports are in host byte order; addresses in
/// network byte order (as on the wire).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkConfig {
    /// Interface index of the link in this network namespace; 0 marks an unused slot.
    pub ifindex: u32,
    /// UDP destination port of heartbeats.
    pub heartbeat_port: u16,
    /// UDP port of echo packets (both ends); 0 disables echo reflection and counting.
    pub echo_port: u16,
    /// First TCP port of the DRBD replication range (inclusive).
    pub replication_port_first: u16,
    /// Last TCP port of the DRBD replication range (inclusive).
    pub replication_port_last: u16,
    /// This node's id: written into the echo replies this kernel reflects.
    pub node_id: u16,
    /// The peer's id: only its echo requests are reflected, only replies it stamped count.
    pub peer_node_id: u16,
    /// Which peer addresses are valid: [`PEER_IPV4`] | [`PEER_IPV6`].
    pub peer_families: u8,
    /// Always zero.
    pub _pad0: [u8; 3],
    /// The peer's IPv4 address on this link.
    pub peer_ipv4: [u8; 4],
    /// The peer's IPv6 address on this link.
    pub peer_ipv6: [u8; 16],
    /// Evidence arriving after at least this much silence on the link produces an
    /// [`EdgeEvent`]. Zero means "never".
    pub silence_ns: u64,
}
const _: () = assert!(size_of::<LinkConfig>() == 48);

/// Counts for one direction of one link, on one CPU (the map is per-CPU).
///
/// `*_last_ns` are kernel CLOCK_MONOTONIC times, zero when nothing was ever seen:
/// `heartbeat_last_ns` from `bpf_ktime_get_ns()` (precise), `replication_last_ns` from
/// `bpf_ktime_get_coarse_ns()` (at most one scheduler tick behind: replication evidence
/// can only look older than it is). `heartbeat_last_seq` belongs to the packet stamped
/// `heartbeat_last_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Heartbeat packets (UDP to the heartbeat port, valid fixed header).
    pub heartbeat_packets: u64,
    /// Kernel time of the newest heartbeat.
    pub heartbeat_last_ns: u64,
    /// Sequence number read from the newest heartbeat's fixed header.
    pub heartbeat_last_seq: u64,
    /// TCP segments with either port in the replication range.
    pub replication_packets: u64,
    /// TCP payload bytes of those segments (headers excluded).
    pub replication_bytes: u64,
    /// Kernel time of the newest replication segment.
    pub replication_last_ns: u64,
    /// rx: echo replies the peer's kernel reflected back to us; tx: echo requests sent.
    pub echo_packets: u64,
    /// Kernel time of the newest echo counted in `echo_packets`.
    pub echo_last_ns: u64,
    /// rx: round trip time of the newest echo reply (our kernel clock, both ends).
    pub echo_last_rtt_ns: u64,
    /// rx: the peer's echo requests this kernel turned around. Unused in tx.
    pub echo_reflected: u64,
}
const _: () = assert!(size_of::<Counters>() == 80);

impl Counters {
    /// Folds another CPU's counters into `self`: sums the counts, keeps the newest
    /// timestamps, and the sequence number that belongs to the newest heartbeat.
    pub fn merge(&mut self, other: &Self) {
        self.heartbeat_packets += other.heartbeat_packets;
        if other.heartbeat_last_ns > self.heartbeat_last_ns {
            self.heartbeat_last_ns = other.heartbeat_last_ns;
            self.heartbeat_last_seq = other.heartbeat_last_seq;
        }
        self.replication_packets += other.replication_packets;
        self.replication_bytes += other.replication_bytes;
        self.replication_last_ns = self.replication_last_ns.max(other.replication_last_ns);
        self.echo_packets += other.echo_packets;
        if other.echo_last_ns > self.echo_last_ns {
            self.echo_last_ns = other.echo_last_ns;
            self.echo_last_rtt_ns = other.echo_last_rtt_ns;
        }
        self.echo_reflected += other.echo_reflected;
    }

    /// Kernel time of the newest evidence of any kind, zero if none.
    pub fn last_evidence_ns(&self) -> u64 {
        self.heartbeat_last_ns
            .max(self.replication_last_ns)
            .max(self.echo_last_ns)
    }
}

/// Both directions of one link: `rx` counted by XDP (from the peer), `tx` by tc egress
/// (to the peer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Received from the peer address.
    pub rx: Counters,
    /// Sent to the peer address.
    pub tx: Counters,
}
const _: () = assert!(size_of::<LinkStats>() == 160);

impl LinkStats {
    /// Folds another CPU's stats into `self` (see [`Counters::merge`]).
    pub fn merge(&mut self, other: &Self) {
        self.rx.merge(&other.rx);
        self.tx.merge(&other.tx);
    }
}

/// Kind of evidence, as carried in [`EdgeEvent::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    /// A heartbeat packet from the peer (not authenticated by the kernel).
    Heartbeat = 1,
    /// A DRBD replication segment from the peer.
    Replication = 2,
    /// An echo reply reflected by the peer's kernel.
    Echo = 3,
}

impl EvidenceKind {
    /// Decodes the raw value of [`EdgeEvent::kind`]; `None` for unknown values.
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Heartbeat),
            2 => Some(Self::Replication),
            3 => Some(Self::Echo),
            _ => None,
        }
    }
}

/// "First evidence after silence" on a link, pushed to the `EDGE_EVENTS` ring buffer.
///
/// Emitted when received evidence arrives at least [`LinkConfig::silence_ns`] after the
/// previous one on that link (or is the first ever). Concurrent CPUs may, rarely, both
/// see the silence and emit two events for one edge; never zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeEvent {
    /// Interface the evidence arrived on.
    pub ifindex: u32,
    /// The link's slot in [`LinkTable`].
    pub slot: u32,
    /// Raw [`EvidenceKind`].
    pub kind: u32,
    /// Always zero.
    pub _pad0: u32,
    /// Kernel time of the evidence.
    pub ns: u64,
    /// Kernel time of the previous evidence on this link, zero if none.
    pub previous_ns: u64,
    /// Heartbeat sequence number; for echo evidence the round trip time in ns; zero for
    /// replication evidence.
    pub seq: u64,
}
const _: () = assert!(size_of::<EdgeEvent>() == 40);

impl EdgeEvent {
    /// Decodes an event from the bytes of one ring-buffer record (native byte order, as
    /// the kernel wrote it). `None` if the record has the wrong size.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != size_of::<Self>() {
            return None;
        }
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_ne_bytes(b)
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        Some(Self {
            ifindex: u32_at(0),
            slot: u32_at(4),
            kind: u32_at(8),
            _pad0: u32_at(12),
            ns: u64_at(16),
            previous_ns: u64_at(24),
            seq: u64_at(32),
        })
    }
}

#[cfg(feature = "user")]
mod pod {
    #![expect(unsafe_code, reason = "aya::Pod is an unsafe marker trait")]
    use super::{LinkStats, LinkTable};

    // SAFETY: #[repr(C)], only integer fields, no implicit padding (sizes asserted above).
    unsafe impl aya::Pod for LinkTable {}
    // SAFETY: as above.
    unsafe impl aya::Pod for LinkStats {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sums_counts_and_keeps_newest_heartbeat_with_its_seq() {
        let mut a = Counters {
            heartbeat_packets: 3,
            heartbeat_last_ns: 100,
            heartbeat_last_seq: 7,
            replication_packets: 1,
            replication_bytes: 10,
            replication_last_ns: 500,
            ..Counters::default()
        };
        let b = Counters {
            heartbeat_packets: 2,
            heartbeat_last_ns: 200,
            heartbeat_last_seq: 9,
            replication_packets: 4,
            replication_bytes: 40,
            replication_last_ns: 300,
            ..Counters::default()
        };
        a.merge(&b);
        assert_eq!(a.heartbeat_packets, 5);
        assert_eq!((a.heartbeat_last_ns, a.heartbeat_last_seq), (200, 9));
        assert_eq!(a.replication_packets, 5);
        assert_eq!(a.replication_bytes, 50);
        assert_eq!(a.replication_last_ns, 500);
        assert_eq!(a.last_evidence_ns(), 500);
    }

    #[test]
    fn merge_keeps_own_seq_when_other_is_older() {
        let mut a = Counters {
            heartbeat_last_ns: 300,
            heartbeat_last_seq: 11,
            ..Counters::default()
        };
        a.merge(&Counters {
            heartbeat_last_ns: 200,
            heartbeat_last_seq: 99,
            ..Counters::default()
        });
        assert_eq!((a.heartbeat_last_ns, a.heartbeat_last_seq), (300, 11));
    }

    #[test]
    fn edge_event_decodes_native_bytes_and_rejects_wrong_size() {
        let mut bytes = [0u8; 40];
        bytes[0..4].copy_from_slice(&3u32.to_ne_bytes());
        bytes[4..8].copy_from_slice(&1u32.to_ne_bytes());
        bytes[8..12].copy_from_slice(&(EvidenceKind::Heartbeat as u32).to_ne_bytes());
        bytes[16..24].copy_from_slice(&1_000u64.to_ne_bytes());
        bytes[24..32].copy_from_slice(&10u64.to_ne_bytes());
        bytes[32..40].copy_from_slice(&42u64.to_ne_bytes());
        let event = EdgeEvent::from_bytes(&bytes).unwrap();
        assert_eq!(
            event,
            EdgeEvent {
                ifindex: 3,
                slot: 1,
                kind: 1,
                _pad0: 0,
                ns: 1_000,
                previous_ns: 10,
                seq: 42
            }
        );
        assert_eq!(EdgeEvent::from_bytes(&bytes[..39]), None);
    }

    #[test]
    fn evidence_kind_round_trips_and_rejects_unknown() {
        for kind in [
            EvidenceKind::Heartbeat,
            EvidenceKind::Replication,
            EvidenceKind::Echo,
        ] {
            assert_eq!(EvidenceKind::from_raw(kind as u32), Some(kind));
        }
        assert_eq!(EvidenceKind::from_raw(0), None);
        assert_eq!(EvidenceKind::from_raw(4), None);
    }
}
