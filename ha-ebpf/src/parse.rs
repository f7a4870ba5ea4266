//! Bounds-checked reading of Ethernet (plus one 802.1Q/802.1ad tag), IPv4/IPv6 and
//! UDP/TCP headers, and the decision what a packet is on a link: evidence, an echo
//! request to reflect, or neither.
//!
//! Invariant: every read goes through [`Packet::bytes`], which checks the range against
//! `data_end` first; a packet that is too short for what we look at is simply "not
//! evidence". Nothing here writes to the packet (only `echo::reflect` does).

use ha_common::{LinkConfig, PEER_IPV4, PEER_IPV6, echo, heartbeat};

const ETH_HEADER_LEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const VLAN_TAG_LEN: usize = 4;
const IPV6_HEADER_LEN: usize = 40;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const UDP_HEADER_LEN: usize = 8;

/// Which way the packet travels relative to this node.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Received: the peer address must be the source.
    Ingress,
    /// Sent: the peer address must be the destination.
    Egress,
}

/// What a packet is on a link.
pub(crate) enum Verdict {
    /// Evidence to count.
    Evidence(Evidence),
    /// The peer's echo request, received: to be turned around.
    Reflect(EchoRequest),
}

/// A packet that counts as evidence on a link.
pub(crate) enum Evidence {
    /// A datagram to the heartbeat port with a valid fixed header.
    Heartbeat { seq: u64 },
    /// A TCP segment with either port in the replication range.
    Replication { payload_bytes: u64 },
    /// Ingress: an echo reply the peer's kernel reflected; egress: an echo request we send.
    Echo { sent_ns: u64 },
}

/// Where the headers of a received echo request are.
pub(crate) struct EchoRequest {
    /// Offset of the IP header.
    pub(crate) l3: usize,
    /// Offset of the UDP header.
    pub(crate) l4: usize,
    /// IPv6 (else IPv4).
    pub(crate) ipv6: bool,
}

/// The bytes of one packet, `[data, data_end)`, as handed to XDP or tc.
#[derive(Clone, Copy)]
pub(crate) struct Packet {
    data: usize,
    data_end: usize,
}

impl Packet {
    pub(crate) fn new(data: usize, data_end: usize) -> Self {
        Self { data, data_end }
    }

    /// The `LEN` bytes at `offset` as a [`Window`], or `None` if the packet is shorter.
    #[inline(always)]
    pub(crate) fn window<const LEN: usize>(&self, offset: usize) -> Option<Window<LEN>> {
        // black_box hides that an earlier check may already imply this one: LLVM would
        // drop it, and the verifier, which tracks each checked pointer separately, would
        // then reject the accesses through this window.
        let start = core::hint::black_box(self.data) + offset;
        if start + LEN > self.data_end {
            return None;
        }
        Some(Window { start })
    }

    /// `N` bytes at `offset`, or `None` if the packet is shorter.
    #[inline(always)]
    pub(crate) fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let start = self.data + offset;
        if start + N > self.data_end {
            return None;
        }
        // SAFETY: [start, start + N) lies inside the packet (checked just above, which is
        // also what the verifier checks), and [u8; N] has alignment 1.
        Some(unsafe { *(start as *const [u8; N]) })
    }

    #[inline(always)]
    pub(crate) fn u8_at(&self, offset: usize) -> Option<u8> {
        self.bytes::<1>(offset).map(|[b]| b)
    }

    #[inline(always)]
    pub(crate) fn u16_at(&self, offset: usize) -> Option<u16> {
        self.bytes::<2>(offset).map(u16::from_be_bytes)
    }
}

/// `LEN` bytes of a packet, checked once against its end and then accessed at constant
/// offsets only. This is the shape the verifier follows best (one checked pointer plus
/// constants); separate checks of nearby ranges can be merged or dropped by LLVM.
///
/// Invariant: `[start, start + LEN)` lies inside the packet.
#[derive(Clone, Copy)]
pub(crate) struct Window<const LEN: usize> {
    start: usize,
}

impl<const LEN: usize> Window<LEN> {
    /// `N` bytes at `at`; `at + N <= LEN` is checked at compile time.
    #[inline(always)]
    pub(crate) fn get<const N: usize>(&self, at: usize) -> [u8; N] {
        assert!(at + N <= LEN);
        // SAFETY: inside the window (asserted above; the window is inside the packet by
        // its invariant); [u8; N] has alignment 1.
        unsafe { *((self.start + at) as *const [u8; N]) }
    }

    /// Writes `value` at `at`; `at + N <= LEN` is checked at compile time.
    #[inline(always)]
    pub(crate) fn set<const N: usize>(&self, at: usize, value: [u8; N]) {
        assert!(at + N <= LEN);
        // SAFETY: as in `get`; the program owns the packet buffer for its run.
        unsafe { *((self.start + at) as *mut [u8; N]) = value };
    }
}

/// Classifies `packet` for the link configured by `cfg`: `None` unless it is evidence
/// or an echo request to reflect.
#[inline(always)]
pub(crate) fn classify(packet: Packet, cfg: &LinkConfig, direction: Direction) -> Option<Verdict> {
    let mut l3 = ETH_HEADER_LEN;
    let mut ethertype = packet.u16_at(12)?;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = packet.u16_at(16)?;
        l3 += VLAN_TAG_LEN;
    }
    let (protocol, l4, l3_payload_len) = match ethertype {
        ETH_P_IPV4 => ipv4(packet, l3, cfg, direction)?,
        ETH_P_IPV6 => ipv6(packet, l3, cfg, direction)?,
        _ => return None,
    };
    match protocol {
        IPPROTO_UDP => {
            let destination = packet.u16_at(l4 + 2)?;
            if destination == cfg.heartbeat_port {
                heartbeat(packet, l4).map(Verdict::Evidence)
            } else if destination == cfg.echo_port && cfg.echo_port != 0 {
                let request = EchoRequest {
                    l3,
                    l4,
                    ipv6: ethertype == ETH_P_IPV6,
                };
                echo(packet, request, cfg, direction)
            } else {
                None
            }
        }
        IPPROTO_TCP => replication(packet, l4, l3_payload_len, cfg).map(Verdict::Evidence),
        _ => None,
    }
}

/// Returns (protocol, L4 offset, IP payload length) of an IPv4 packet from/to the peer.
#[inline(always)]
fn ipv4(
    packet: Packet,
    l3: usize,
    cfg: &LinkConfig,
    direction: Direction,
) -> Option<(u8, usize, usize)> {
    if cfg.peer_families & PEER_IPV4 == 0 {
        return None;
    }
    let version_ihl = packet.u8_at(l3)?;
    let header_len = usize::from(version_ihl & 0x0F) * 4;
    if version_ihl >> 4 != 4 || header_len < 20 {
        return None;
    }
    let total_len = usize::from(packet.u16_at(l3 + 2)?);
    // Only the first fragment carries the L4 header.
    if packet.u16_at(l3 + 6)? & 0x1FFF != 0 {
        return None;
    }
    let protocol = packet.u8_at(l3 + 9)?;
    let peer_offset = match direction {
        Direction::Ingress => 12,
        Direction::Egress => 16,
    };
    if packet.bytes::<4>(l3 + peer_offset)? != cfg.peer_ipv4 {
        return None;
    }
    Some((
        protocol,
        l3 + header_len,
        total_len.saturating_sub(header_len),
    ))
}

/// Returns (next header, L4 offset, payload length) of an IPv6 packet from/to the peer.
/// Extension headers are not followed: such packets are not evidence.
#[inline(always)]
fn ipv6(
    packet: Packet,
    l3: usize,
    cfg: &LinkConfig,
    direction: Direction,
) -> Option<(u8, usize, usize)> {
    if cfg.peer_families & PEER_IPV6 == 0 {
        return None;
    }
    if packet.u8_at(l3)? >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(packet.u16_at(l3 + 4)?);
    let next_header = packet.u8_at(l3 + 6)?;
    let peer_offset = match direction {
        Direction::Ingress => 8,
        Direction::Egress => 24,
    };
    if packet.bytes::<16>(l3 + peer_offset)? != cfg.peer_ipv6 {
        return None;
    }
    Some((next_header, l3 + IPV6_HEADER_LEN, payload_len))
}

#[inline(always)]
fn heartbeat(packet: Packet, l4: usize) -> Option<Evidence> {
    let payload = l4 + UDP_HEADER_LEN;
    if packet.bytes::<4>(payload)? != heartbeat::MAGIC
        || packet.u8_at(payload + heartbeat::VERSION_OFFSET)? != heartbeat::VERSION
    {
        return None;
    }
    let seq = u64::from_be_bytes(packet.bytes::<8>(payload + heartbeat::SEQ_OFFSET)?);
    Some(Evidence::Heartbeat { seq })
}

/// An echo packet to/from the echo port: a request from the peer to reflect, a reply
/// from the peer's kernel to count (ingress), or our own request (egress).
#[inline(always)]
fn echo(
    packet: Packet,
    at: EchoRequest,
    cfg: &LinkConfig,
    direction: Direction,
) -> Option<Verdict> {
    // One window over the UDP header and the payload: every field is read at a
    // constant offset from one checked pointer (see `Window`).
    let udp = packet.window::<{ UDP_HEADER_LEN + echo::LEN }>(at.l4)?;
    let field_u16 = |at: usize| u16::from_be_bytes(udp.get::<2>(UDP_HEADER_LEN + at));
    if usize::from(u16::from_be_bytes(udp.get::<2>(4))) != UDP_HEADER_LEN + echo::LEN
        || udp.get::<4>(UDP_HEADER_LEN) != echo::MAGIC
        || udp.get::<1>(UDP_HEADER_LEN + echo::VERSION_OFFSET) != [echo::VERSION]
    {
        return None;
    }
    let [kind] = udp.get::<1>(UDP_HEADER_LEN + echo::KIND_OFFSET);
    let sender = field_u16(echo::SENDER_OFFSET);
    let sent_ns = u64::from_be_bytes(udp.get::<8>(UDP_HEADER_LEN + echo::SENT_NS_OFFSET));
    let responder = field_u16(echo::RESPONDER_OFFSET);
    match (direction, kind) {
        (Direction::Ingress, echo::KIND_REQUEST) if sender == cfg.peer_node_id => {
            Some(Verdict::Reflect(at))
        }
        (Direction::Ingress, echo::KIND_REPLY)
            if sender == cfg.node_id && responder == cfg.peer_node_id =>
        {
            Some(Verdict::Evidence(Evidence::Echo { sent_ns }))
        }
        (Direction::Egress, echo::KIND_REQUEST) if sender == cfg.node_id => {
            Some(Verdict::Evidence(Evidence::Echo { sent_ns }))
        }
        _ => None,
    }
}

#[inline(always)]
fn replication(
    packet: Packet,
    l4: usize,
    l3_payload_len: usize,
    cfg: &LinkConfig,
) -> Option<Evidence> {
    let source = packet.u16_at(l4)?;
    let destination = packet.u16_at(l4 + 2)?;
    let in_range =
        |port: u16| port >= cfg.replication_port_first && port <= cfg.replication_port_last;
    if !in_range(source) && !in_range(destination) {
        return None;
    }
    let tcp_header_len = usize::from(packet.u8_at(l4 + 12)? >> 4) * 4;
    let payload_bytes = l3_payload_len.saturating_sub(tcp_header_len) as u64;
    Some(Evidence::Replication { payload_bytes })
}
