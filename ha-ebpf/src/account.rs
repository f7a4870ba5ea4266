//! The maps, and the accounting of evidence into them.
//!
//! Invariants: counters only grow; `LAST_EVIDENCE[slot]` holds the kernel time of the
//! newest received evidence on that link (shared by all CPUs, written without a lock: two
//! CPUs racing at an edge can emit two edge events, never none); per-CPU `LINK_STATS`
//! entries are merged by the daemon ([`ha_common::LinkStats::merge`]).

use aya_ebpf::{
    helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use ha_common::{Counters, EdgeEvent, EvidenceKind, LinkConfig, LinkStats, LinkTable, MAX_LINKS};

use crate::parse::{Direction, Evidence};

#[map]
static LINK_TABLE: Array<LinkTable> = Array::with_max_entries(1, 0);

#[map]
static LINK_STATS: PerCpuArray<LinkStats> = PerCpuArray::with_max_entries(MAX_LINKS, 0);

#[map]
static LAST_EVIDENCE: Array<u64> = Array::with_max_entries(MAX_LINKS, 0);

#[map]
static EDGE_EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// The slot and configuration of the link on interface `ifindex`, if it is one of ours.
///
/// A concurrent update of the table by the daemon can at worst give this one packet a
/// mix of old and new fields (LinkConfig is plain integers), affecting only its count.
#[inline(always)]
pub(crate) fn link_config(ifindex: u32) -> Option<(u32, &'static LinkConfig)> {
    let table = LINK_TABLE.get(0)?;
    let mut slot = 0;
    while slot < MAX_LINKS {
        let link = &table.links[slot as usize];
        if link.ifindex == ifindex {
            return Some((slot, link));
        }
        slot += 1;
    }
    None
}

/// Adds `evidence` to the counters of `cfg`'s link in `direction`; on ingress, also
/// emits an [`EdgeEvent`] when it ends a silence of at least `cfg.silence_ns`.
#[inline(always)]
pub(crate) fn record(slot: u32, cfg: &LinkConfig, direction: Direction, evidence: &Evidence) {
    let Some(stats) = LINK_STATS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: the pointer comes from a successful lookup in a per-CPU map, so only this
    // CPU writes this entry, and programs do not migrate CPUs while running.
    let stats = unsafe { &mut *stats };
    let counters: &mut Counters = match direction {
        Direction::Ingress => &mut stats.rx,
        Direction::Egress => &mut stats.tx,
    };
    // Heartbeats are rare (at most 1000/s per link) and set detection latency: they get
    // the precise clock. Replication segments can come at line rate and only need to
    // prove DRBD alive: they get the coarse clock (CLOCK_MONOTONIC_COARSE, at most one
    // tick behind, so such evidence can only look older than it is, never newer), which
    // costs a fraction of a precise read on machines where reading the TSC is slow.
    let (kind, seq, now) = match *evidence {
        Evidence::Heartbeat { seq } => {
            // SAFETY: bpf_ktime_get_ns has no preconditions.
            let now = unsafe { bpf_ktime_get_ns() };
            counters.heartbeat_packets += 1;
            counters.heartbeat_last_ns = now;
            counters.heartbeat_last_seq = seq;
            (EvidenceKind::Heartbeat, seq, now)
        }
        Evidence::Replication { payload_bytes } => {
            // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
            let now = unsafe { bpf_ktime_get_coarse_ns() };
            counters.replication_packets += 1;
            counters.replication_bytes += payload_bytes;
            counters.replication_last_ns = now;
            (EvidenceKind::Replication, 0, now)
        }
        Evidence::Echo { sent_ns } => {
            // SAFETY: bpf_ktime_get_ns has no preconditions.
            let now = unsafe { bpf_ktime_get_ns() };
            counters.echo_packets += 1;
            counters.echo_last_ns = now;
            let rtt = now.saturating_sub(sent_ns);
            if direction == Direction::Ingress {
                counters.echo_last_rtt_ns = rtt;
            }
            (EvidenceKind::Echo, rtt, now)
        }
    };
    if direction == Direction::Ingress {
        note_edge(slot, cfg, kind, seq, now);
    }
}

/// Counts one of the peer's echo requests turned around on the link in `slot`.
#[inline(always)]
pub(crate) fn record_reflection(slot: u32) {
    if let Some(stats) = LINK_STATS.get_ptr_mut(slot) {
        // SAFETY: as in `record`: a per-CPU entry only this CPU writes.
        unsafe { (*stats).rx.echo_reflected += 1 };
    }
}

#[inline(always)]
fn note_edge(slot: u32, cfg: &LinkConfig, kind: EvidenceKind, seq: u64, now: u64) {
    let Some(last) = LAST_EVIDENCE.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: valid pointer from a successful array lookup; a racing write from another
    // CPU is a benign data race on a u64 (see the module invariant).
    let previous = unsafe { core::ptr::replace(last, now) };
    if cfg.silence_ns == 0 || (previous != 0 && now.saturating_sub(previous) < cfg.silence_ns) {
        return;
    }
    let event = EdgeEvent {
        ifindex: cfg.ifindex,
        slot,
        kind: kind as u32,
        _pad0: 0,
        ns: now,
        previous_ns: previous,
        seq,
    };
    // A full ring buffer loses the wake-up, not the evidence: the counters above still
    // hold it and the daemon's poll finds it.
    let _ = EDGE_EVENTS.output::<EdgeEvent>(&event, 0);
}
