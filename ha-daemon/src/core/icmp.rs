//! ICMP echo (ping) messages of the witness probe: the request we send and the test
//! whether a received packet is its reply.
//!
//! IPv4 raw sockets deliver the IP header too and need our checksum; ICMPv6 raw sockets
//! deliver the ICMPv6 message alone and the kernel fills in its checksum (which covers a
//! pseudo-header we do not know before routing). A reply matches only with the request's
//! identifier and sequence number, from the probed address: a raw socket sees every ICMP
//! packet of the host.

use std::net::IpAddr;

/// ICMPv4 echo request / reply types.
const V4_REQUEST: u8 = 8;
const V4_REPLY: u8 = 0;
/// ICMPv6 echo request / reply types.
const V6_REQUEST: u8 = 128;
const V6_REPLY: u8 = 129;
/// IANA protocol number of ICMPv4 in the IPv4 header.
const PROTOCOL_ICMP: u8 = 1;

/// Payload of every request (and so of its reply).
const PAYLOAD: &[u8] = b"ha-daemon witness";

/// The echo request for `to`'s family, with `id` and `seq`.
pub fn echo_request(to: IpAddr, id: u16, seq: u16) -> Vec<u8> {
    let kind = match to {
        IpAddr::V4(_) => V4_REQUEST,
        IpAddr::V6(_) => V6_REQUEST,
    };
    let mut message = vec![kind, 0, 0, 0];
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(PAYLOAD);
    if to.is_ipv4() {
        let sum = checksum(&message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    message
}

/// Whether `packet`, received from `from` on a raw socket of `to`'s family, is the
/// reply to [`echo_request`]`(to, id, seq)`.
pub fn is_reply(to: IpAddr, from: IpAddr, packet: &[u8], id: u16, seq: u16) -> bool {
    if from != to {
        return false;
    }
    let (message, reply) = match to {
        IpAddr::V4(_) => {
            let Some(&first) = packet.first() else {
                return false;
            };
            let header = usize::from(first & 0x0f) * 4;
            if first >> 4 != 4 || header < 20 || packet.get(9) != Some(&PROTOCOL_ICMP) {
                return false;
            }
            (packet.get(header..).unwrap_or_default(), V4_REPLY)
        }
        IpAddr::V6(_) => (packet, V6_REPLY),
    };
    message.len() >= 8
        && message[0] == reply
        && message[1] == 0
        && message[4..6] == id.to_be_bytes()
        && message[6..8] == seq.to_be_bytes()
}

/// The Internet checksum (RFC 1071) of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe));

    /// An IPv4 packet (20-byte header, protocol ICMP) around `message`.
    fn ipv4(message: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, PROTOCOL_ICMP];
        packet.resize(20, 0);
        packet.extend_from_slice(message);
        packet
    }

    /// The reply a host sends to `request`: same message, reply type.
    fn reply_to(request: &[u8], kind: u8) -> Vec<u8> {
        let mut reply = request.to_vec();
        reply[0] = kind;
        reply
    }

    #[test]
    fn the_v4_request_carries_a_valid_checksum_id_and_seq() {
        let request = echo_request(V4, 0x1234, 7);
        assert_eq!(request[0], 8);
        assert_eq!(&request[4..8], &[0x12, 0x34, 0, 7]);
        // A correct checksum makes the sum over the whole message zero.
        assert_eq!(checksum(&request), 0);
        assert_eq!(&request[8..], PAYLOAD);
    }

    #[test]
    fn the_checksum_of_an_odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[0xff, 0xff, 0x00, 0x02]), !0x0002);
    }

    #[test]
    fn the_v6_request_leaves_the_checksum_to_the_kernel() {
        let request = echo_request(V6, 1, 2);
        assert_eq!(&request[..8], &[128, 0, 0, 0, 0, 1, 0, 2]);
    }

    #[test]
    fn only_the_matching_reply_from_the_witness_counts() {
        let request = echo_request(V4, 5, 9);
        let reply = ipv4(&reply_to(&request, V4_REPLY));
        assert!(is_reply(V4, V4, &reply, 5, 9));
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(!is_reply(V4, other, &reply, 5, 9), "another sender");
        assert!(!is_reply(V4, V4, &reply, 6, 9), "another id");
        assert!(!is_reply(V4, V4, &reply, 5, 10), "another seq");
        assert!(!is_reply(V4, V4, &ipv4(&request), 5, 9), "our own request");
        assert!(!is_reply(V4, V4, &reply[..27], 5, 9), "truncated");
        assert!(!is_reply(V4, V4, &[], 5, 9), "empty");
        let mut udp = reply.clone();
        udp[9] = 17;
        assert!(!is_reply(V4, V4, &udp, 5, 9), "not ICMP");
    }

    #[test]
    fn v6_replies_have_no_ip_header() {
        let request = echo_request(V6, 5, 9);
        assert!(is_reply(V6, V6, &reply_to(&request, V6_REPLY), 5, 9));
        assert!(!is_reply(V6, V6, &request, 5, 9));
        assert!(!is_reply(V6, V4, &reply_to(&request, V6_REPLY), 5, 9));
    }
}
