//! Ready-made test topologies.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::netns::NetNs;

/// Two nodes, `a` and `b`, each a namespace, joined by veth pairs (links). Link 0:
/// `a` has [`TwoNodes::A_IF`] with [`TwoNodes::A_V4`] / [`TwoNodes::A_V6`], `b` has
/// [`TwoNodes::B_IF`] with [`TwoNodes::B_V4`] / [`TwoNodes::B_V6`]; further links are
/// described by [`TwoNodes::link`]. Dropping it deletes both namespaces and so the veths.
#[derive(Debug)]
pub struct TwoNodes {
    /// Node A.
    pub a: NetNs,
    /// Node B.
    pub b: NetNs,
}

impl TwoNodes {
    /// Interface of A.
    pub const A_IF: &str = "hat-a0";
    /// Interface of B.
    pub const B_IF: &str = "hat-b0";
    /// IPv4 address of A.
    pub const A_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// IPv4 address of B.
    pub const B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    /// IPv6 address of A (documentation prefix, RFC 3849).
    pub const A_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    /// IPv6 address of B.
    pub const B_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    /// Creates both namespaces and link 0, all up.
    pub fn new() -> Self {
        Self::with_links(1)
    }

    /// Creates both namespaces and `count` links (at most 3), all up.
    pub fn with_links(count: usize) -> Self {
        let nodes = Self {
            a: NetNs::new(),
            b: NetNs::new(),
        };
        for index in 0..count {
            let link = Self::link(index);
            crate::run(
                "ip",
                &[
                    "link",
                    "add",
                    &link.a_if,
                    "netns",
                    nodes.a.name(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &link.b_if,
                    "netns",
                    nodes.b.name(),
                ],
            );
            for (ns, interface, v4, v6) in [
                (&nodes.a, &link.a_if, link.a_v4, link.a_v6),
                (&nodes.b, &link.b_if, link.b_v4, link.b_v6),
            ] {
                ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", interface]);
                ns.ip(&[
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    interface,
                    "nodad",
                ]);
                ns.ip(&["link", "set", interface, "up"]);
            }
        }
        nodes
    }

    /// Names and addresses of link `index` (0..3): one test network per link.
    pub fn link(index: usize) -> LinkAddrs {
        let [x, y, z] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]][index];
        let group = u16::try_from(index).expect("small index");
        LinkAddrs {
            a_if: format!("hat-a{index}"),
            b_if: format!("hat-b{index}"),
            a_v4: Ipv4Addr::new(x, y, z, 1),
            b_v4: Ipv4Addr::new(x, y, z, 2),
            a_v6: Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, 0, 1),
            b_v6: Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, 0, 2),
        }
    }
}

/// One link of [`TwoNodes`].
#[derive(Clone, Debug)]
pub struct LinkAddrs {
    /// A's interface.
    pub a_if: String,
    /// B's interface.
    pub b_if: String,
    /// A's IPv4 address.
    pub a_v4: Ipv4Addr,
    /// B's IPv4 address.
    pub b_v4: Ipv4Addr,
    /// A's IPv6 address.
    pub a_v6: Ipv6Addr,
    /// B's IPv6 address.
    pub b_v6: Ipv6Addr,
}

impl Default for TwoNodes {
    fn default() -> Self {
        Self::new()
    }
}
