//! Ready-made test topologies.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::netns::NetNs;

/// Two nodes, `a` and `b`, each a namespace, joined by one veth pair:
/// `a` has [`TwoNodes::A_IF`] with [`TwoNodes::A_V4`] / [`TwoNodes::A_V6`], `b` has
/// [`TwoNodes::B_IF`] with [`TwoNodes::B_V4`] / [`TwoNodes::B_V6`]. Dropping it deletes
/// both namespaces and so the veth pair.
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

    /// Creates both namespaces, the veth pair and the addresses, all up.
    pub fn new() -> Self {
        let (a, b) = (NetNs::new(), NetNs::new());
        crate::run(
            "ip",
            &[
                "link",
                "add",
                Self::A_IF,
                "netns",
                a.name(),
                "type",
                "veth",
                "peer",
                "name",
                Self::B_IF,
                "netns",
                b.name(),
            ],
        );
        for (ns, interface, v4, v6) in [
            (&a, Self::A_IF, Self::A_V4, Self::A_V6),
            (&b, Self::B_IF, Self::B_V4, Self::B_V6),
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
        Self { a, b }
    }
}

impl Default for TwoNodes {
    fn default() -> Self {
        Self::new()
    }
}
