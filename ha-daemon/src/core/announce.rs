//! Gratuitous ARP and unsolicited neighbour advertisement frames (pure).
//!
//! After an address moves to this node, its neighbours still map it to the old node's
//! MAC. These frames make them switch at once instead of when their entries expire:
//!
//! - IPv4, two gratuitous ARP forms (neighbours differ in which one they honour), both
//!   Ethernet broadcast from `mac`, sender and target protocol address both the address:
//!   - the request form ([`ArpForm::Request`], RFC 5227 "ARP announcement"): target
//!     hardware address all zeroes;
//!   - the reply form ([`ArpForm::Reply`], RFC 2002 4.6): target hardware address `mac`
//!     (Linux treats a reply as gratuitous only when it equals the sender's).
//! - IPv6, one unsolicited neighbour advertisement (RFC 4861 4.4, 7.2.6): ICMPv6 type 136
//!   from the address to all-nodes `ff02::1` (Ethernet `33:33:00:00:00:01`), hop limit
//!   255, override flag set, solicited flag clear, router flag as given, target the
//!   address, with a target link-layer address option carrying `mac`.
//!
//! Every frame is a complete Ethernet II frame (no FCS) ready for an `AF_PACKET` raw
//! socket. ARP frames are zero-padded to the Ethernet minimum of 60 bytes, so they are
//! valid on links whose drivers do not pad short frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// An Ethernet (EUI-48) hardware address.
pub type Mac = [u8; 6];

/// The Ethernet broadcast address.
pub const BROADCAST_MAC: Mac = [0xff; 6];
/// The Ethernet multicast address of IPv6 all-nodes `ff02::1` (RFC 2464 7).
pub const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];
/// The IPv6 link-local all-nodes multicast address.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// ICMPv6 type of a neighbour advertisement.
pub const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;

/// Length of a gratuitous ARP frame: 14 Ethernet + 28 ARP, padded to 60.
pub const ARP_FRAME_LEN: usize = 60;
/// Length of an unsolicited NA frame: 14 Ethernet + 40 IPv6 + 24 NA + 8 option.
pub const NA_FRAME_LEN: usize = 86;

const ETHERNET_HEADER_LEN: usize = 14;
const IPV6_HEADER_LEN: usize = 40;
const NA_LEN: usize = 24 + 8;
const IPPROTO_ICMPV6: u8 = 58;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;

/// Which gratuitous ARP form to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpForm {
    /// ARP request (operation 1), target hardware address zero.
    Request,
    /// ARP reply (operation 2), target hardware address equal to the sender's.
    Reply,
}

/// Checks an announcement schedule (offsets from the start): non-empty, so neighbours
/// do learn the new MAC, and ascending. The text names the problem.
pub fn check_schedule(schedule: &[Duration]) -> Result<(), String> {
    if schedule.is_empty() {
        return Err("announce_schedule is empty (neighbours would keep the old MAC)".into());
    }
    if schedule.windows(2).any(|pair| pair[0] > pair[1]) {
        return Err(format!("announce_schedule {schedule:?} is not ascending"));
    }
    Ok(())
}

/// The frames of one announcement round for `address` owned by `mac`: both ARP forms
/// (request first) for IPv4, one neighbour advertisement for IPv6. `ipv6_router` sets
/// the NA's router flag (the sender forwards IPv6 on that interface); it is ignored for
/// IPv4.
pub fn round(address: IpAddr, mac: Mac, ipv6_router: bool) -> Vec<Vec<u8>> {
    match address {
        IpAddr::V4(address) => vec![
            gratuitous_arp(ArpForm::Request, mac, address).to_vec(),
            gratuitous_arp(ArpForm::Reply, mac, address).to_vec(),
        ],
        IpAddr::V6(address) => vec![unsolicited_na(mac, address, ipv6_router).to_vec()],
    }
}

/// A gratuitous ARP frame announcing that `address` is at `mac`.
pub fn gratuitous_arp(form: ArpForm, mac: Mac, address: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let (operation, target_mac) = match form {
        ArpForm::Request => (1u16, [0; 6]),
        ArpForm::Reply => (2u16, mac),
    };
    let mut frame = [0u8; ARP_FRAME_LEN];
    let mut out = Writer::new(&mut frame);
    out.ethernet(BROADCAST_MAC, mac, ETHERTYPE_ARP);
    out.u16(1); // hardware type: Ethernet
    out.u16(0x0800); // protocol type: IPv4
    out.bytes(&[6, 4]); // hardware and protocol address lengths
    out.u16(operation);
    out.bytes(&mac);
    out.bytes(&address.octets());
    out.bytes(&target_mac);
    out.bytes(&address.octets());
    frame
}

/// An unsolicited neighbour advertisement frame announcing that `address` is at `mac`.
pub fn unsolicited_na(mac: Mac, address: Ipv6Addr, router: bool) -> [u8; NA_FRAME_LEN] {
    let mut frame = [0u8; NA_FRAME_LEN];
    let mut out = Writer::new(&mut frame);
    out.ethernet(ALL_NODES_MAC, mac, ETHERTYPE_IPV6);
    out.bytes(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    out.u16(NA_LEN as u16);
    out.bytes(&[IPPROTO_ICMPV6, 255]); // next header, hop limit
    out.bytes(&address.octets());
    out.bytes(&ALL_NODES.octets());
    let icmp_start = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
    let flags = NA_FLAG_OVERRIDE | if router { NA_FLAG_ROUTER } else { 0 };
    out.bytes(&[ICMPV6_NEIGHBOUR_ADVERTISEMENT, 0]); // type, code
    out.u16(0); // checksum, filled in below
    out.bytes(&[flags, 0, 0, 0]);
    out.bytes(&address.octets());
    out.bytes(&[OPTION_TARGET_LINK_LAYER_ADDRESS, 1]); // length in units of 8 octets
    out.bytes(&mac);
    let checksum = icmpv6_checksum(address, ALL_NODES, &frame[icmp_start..]);
    frame[icmp_start + 2..icmp_start + 4].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// The ICMPv6 checksum (RFC 4443 2.3) of `message` (its checksum field zero) sent from
/// `source` to `destination`: the ones' complement of the ones' complement sum over the
/// IPv6 pseudo-header (RFC 8200 8.1) and the message.
pub fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut sum = Sum::default();
    sum.add(&source.octets());
    sum.add(&destination.octets());
    sum.add(&length.to_be_bytes());
    sum.add(&[0, 0, 0, IPPROTO_ICMPV6]);
    sum.add(message);
    !sum.fold()
}

/// A 16-bit ones' complement sum; every `add` must start on an even offset of the
/// summed data (all callers add even-length pieces, except possibly the last).
#[derive(Default)]
struct Sum(u64);

impl Sum {
    fn add(&mut self, bytes: &[u8]) {
        for pair in bytes.chunks(2) {
            let high = u64::from(pair[0]) << 8;
            let low = pair.get(1).copied().map_or(0, u64::from);
            self.0 += high | low;
        }
    }

    fn fold(&self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // The loop leaves at most 0xffff.
        u16::try_from(sum).unwrap_or(u16::MAX)
    }
}

/// Writes big-endian fields front to back; callers size the buffer for what they write.
struct Writer<'a> {
    buffer: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    fn new(buffer: &'a mut [u8]) -> Self {
        Writer { buffer, at: 0 }
    }

    fn ethernet(&mut self, destination: Mac, source: Mac, ethertype: u16) {
        self.bytes(&destination);
        self.bytes(&source);
        self.u16(ethertype);
    }

    fn u16(&mut self, value: u16) {
        self.bytes(&value.to_be_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.buffer[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

    #[test]
    fn arp_request_form_fields() {
        let frame = gratuitous_arp(ArpForm::Request, MAC, V4);
        assert_eq!(&frame[0..6], &[0xff; 6], "Ethernet destination: broadcast");
        assert_eq!(&frame[6..12], &MAC, "Ethernet source");
        assert_eq!(&frame[12..14], &[0x08, 0x06], "EtherType ARP");
        assert_eq!(&frame[14..16], &[0, 1], "hardware type Ethernet");
        assert_eq!(&frame[16..18], &[0x08, 0x00], "protocol type IPv4");
        assert_eq!(frame[18], 6, "hardware address length");
        assert_eq!(frame[19], 4, "protocol address length");
        assert_eq!(&frame[20..22], &[0, 1], "operation: request");
        assert_eq!(&frame[22..28], &MAC, "sender hardware address");
        assert_eq!(&frame[28..32], &[192, 0, 2, 10], "sender protocol address");
        assert_eq!(&frame[32..38], &[0; 6], "target hardware address: zero");
        assert_eq!(&frame[38..42], &[192, 0, 2, 10], "target protocol address");
        assert_eq!(&frame[42..], &[0; 18], "padding to 60 bytes");
    }

    #[test]
    fn arp_reply_form_differs_only_in_operation_and_target_hardware_address() {
        let request = gratuitous_arp(ArpForm::Request, MAC, V4);
        let reply = gratuitous_arp(ArpForm::Reply, MAC, V4);
        assert_eq!(&reply[20..22], &[0, 2], "operation: reply");
        assert_eq!(
            &reply[32..38],
            &MAC,
            "target hardware address: the sender's"
        );
        let differing: Vec<usize> = (0..ARP_FRAME_LEN)
            .filter(|&i| request[i] != reply[i])
            .collect();
        assert!(
            differing.iter().all(|&i| i == 21 || (32..38).contains(&i)),
            "{differing:?}"
        );
    }

    #[test]
    fn na_fields() {
        let frame = unsolicited_na(MAC, V6, false);
        assert_eq!(frame.len(), NA_FRAME_LEN);
        assert_eq!(&frame[0..6], &[0x33, 0x33, 0, 0, 0, 1], "all-nodes MAC");
        assert_eq!(&frame[6..12], &MAC, "Ethernet source");
        assert_eq!(&frame[12..14], &[0x86, 0xdd], "EtherType IPv6");
        let ip = &frame[14..54];
        assert_eq!(&ip[0..4], &[0x60, 0, 0, 0], "version 6, class 0, flow 0");
        assert_eq!(&ip[4..6], &[0, 32], "payload length: NA 24 + option 8");
        assert_eq!(ip[6], 58, "next header ICMPv6");
        assert_eq!(ip[7], 255, "hop limit 255 (RFC 4861 7.1.2)");
        assert_eq!(&ip[8..24], &V6.octets(), "source: the announced address");
        assert_eq!(
            &ip[24..40],
            &[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            "destination ff02::1"
        );
        let icmp = &frame[54..];
        assert_eq!(icmp[0], 136, "type: neighbour advertisement");
        assert_eq!(icmp[1], 0, "code");
        assert_eq!(icmp[4], 0x20, "override set; solicited and router clear");
        assert_eq!(&icmp[5..8], &[0, 0, 0], "reserved");
        assert_eq!(&icmp[8..24], &V6.octets(), "target address");
        assert_eq!(&icmp[24..26], &[2, 1], "target link-layer option, 8 bytes");
        assert_eq!(&icmp[26..32], &MAC, "option: the MAC");
    }

    #[test]
    fn na_router_flag_is_the_only_change_besides_the_checksum() {
        let host = unsolicited_na(MAC, V6, false);
        let router = unsolicited_na(MAC, V6, true);
        assert_eq!(router[58], 0xa0, "router and override set, solicited clear");
        let differing: Vec<usize> = (0..NA_FRAME_LEN)
            .filter(|&i| host[i] != router[i])
            .collect();
        assert!(
            differing.iter().all(|&i| [56, 57, 58].contains(&i)),
            "{differing:?}"
        );
    }

    /// Independent check: summing the pseudo-header and the message *with* its checksum
    /// as 32-bit big-endian words (a different grouping than the builder's 16-bit one)
    /// and folding must give all ones.
    #[test]
    fn na_checksum_verifies_over_the_pseudo_header() {
        for router in [false, true] {
            let frame = unsolicited_na(MAC, V6, router);
            let icmp = &frame[54..];
            let mut data = Vec::new();
            data.extend_from_slice(&frame[22..38]); // source, from the IPv6 header
            data.extend_from_slice(&frame[38..54]); // destination
            data.extend_from_slice(&32u32.to_be_bytes());
            data.extend_from_slice(&[0, 0, 0, 58]);
            data.extend_from_slice(icmp);
            assert_eq!(data.len() % 4, 0);
            let mut sum: u64 = data
                .chunks(4)
                .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(sum, 0xffff, "router={router}");
        }
    }

    /// The checksum of the host NA, computed outside this code (Python, RFC 1071 sum over
    /// the pseudo-header and message) for these constants.
    #[test]
    fn na_checksum_matches_an_external_computation() {
        let frame = unsolicited_na(MAC, V6, false);
        assert_eq!(
            u16::from_be_bytes([frame[56], frame[57]]),
            EXTERNAL_CHECKSUM
        );
    }

    const EXTERNAL_CHECKSUM: u16 = 0x7acd;

    #[test]
    fn a_round_is_both_arp_forms_or_one_na() {
        let v4 = round(IpAddr::V4(V4), MAC, true);
        assert_eq!(
            v4,
            vec![
                gratuitous_arp(ArpForm::Request, MAC, V4).to_vec(),
                gratuitous_arp(ArpForm::Reply, MAC, V4).to_vec()
            ]
        );
        let v6 = round(IpAddr::V6(V6), MAC, true);
        assert_eq!(v6, vec![unsolicited_na(MAC, V6, true).to_vec()]);
    }

    #[test]
    fn checksum_of_odd_length_pads_with_zero() {
        let odd = icmpv6_checksum(V6, ALL_NODES, &[1, 2, 3]);
        let even = icmpv6_checksum(V6, ALL_NODES, &[1, 2, 3, 0]);
        // Same words (the odd byte is padded with zero); the pseudo-header lengths
        // differ by one, so the even message's sum is one more and its checksum one less.
        assert_eq!(odd, even + 1);
    }
}
