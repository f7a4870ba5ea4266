//! Builders of raw Ethernet frames for `BPF_PROG_TEST_RUN` (tests and benchmarks).

use std::net::{Ipv4Addr, Ipv6Addr};

/// A transport header and its payload.
#[derive(Clone, Debug)]
pub enum Transport<'a> {
    /// UDP to `dst_port`.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload.
        payload: &'a [u8],
    },
    /// A TCP segment (20-byte header, ACK|PSH).
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload.
        payload: &'a [u8],
    },
}

impl Transport<'_> {
    fn protocol(&self) -> u8 {
        match self {
            Self::Udp { .. } => 17,
            Self::Tcp { .. } => 6,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match *self {
            Self::Udp {
                src_port,
                dst_port,
                payload,
            } => {
                let mut out = Vec::with_capacity(8 + payload.len());
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                out.extend_from_slice(
                    &u16::try_from(8 + payload.len())
                        .expect("udp length")
                        .to_be_bytes(),
                );
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(payload);
                out
            }
            Self::Tcp {
                src_port,
                dst_port,
                payload,
            } => {
                let mut out = Vec::with_capacity(20 + payload.len());
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                out.extend_from_slice(&1u32.to_be_bytes());
                out.extend_from_slice(&1u32.to_be_bytes());
                out.extend_from_slice(&[5 << 4, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]);
                out.extend_from_slice(payload);
                out
            }
        }
    }
}

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn ethernet(vlan: Option<u16>, ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(18 + l3.len());
    frame.extend_from_slice(&DST_MAC);
    frame.extend_from_slice(&SRC_MAC);
    if let Some(id) = vlan {
        frame.extend_from_slice(&0x8100u16.to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(l3);
    frame
}

/// An Ethernet frame (optionally with one 802.1Q tag) carrying IPv4 from `src` to `dst`.
pub fn ipv4(vlan: Option<u16>, src: Ipv4Addr, dst: Ipv4Addr, transport: &Transport<'_>) -> Vec<u8> {
    let l4 = transport.bytes();
    let total = u16::try_from(20 + l4.len()).expect("ipv4 length");
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, transport.protocol(), 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let checksum = !ip.chunks(2).fold(0u32, |sum, word| {
        let sum = sum + u32::from(u16::from_be_bytes([word[0], word[1]]));
        (sum & 0xFFFF) + (sum >> 16)
    }) as u16;
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    ip.extend_from_slice(&l4);
    ethernet(vlan, 0x0800, &ip)
}

/// An Ethernet frame carrying IPv6 from `src` to `dst` (no extension headers).
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, transport: &Transport<'_>) -> Vec<u8> {
    let l4 = transport.bytes();
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&u16::try_from(l4.len()).expect("ipv6 length").to_be_bytes());
    ip.extend_from_slice(&[transport.protocol(), 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&l4);
    ethernet(None, 0x86DD, &ip)
}
