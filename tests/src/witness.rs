//! A witness for [`TwoNodes`]: a third namespace with a bridge that both nodes reach over
//! a veth of their own (the "LAN", 203.0.113.0/24), answering pings at
//! [`WitnessLan::ADDRESS`]. Dropping it deletes the witness namespace, and with it the
//! veths (their ends in the nodes go too).

use std::net::Ipv4Addr;

use crate::{netns::NetNs, topology::TwoNodes};

/// The witness namespace and its links to both nodes.
#[derive(Debug)]
pub struct WitnessLan {
    /// The witness namespace.
    pub ns: NetNs,
}

impl WitnessLan {
    /// The witness's address.
    pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
    /// An address of the LAN nobody has.
    pub const NOBODY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);
    /// A's interface to the LAN.
    pub const A_IF: &str = "hat-wa";
    /// B's interface to the LAN.
    pub const B_IF: &str = "hat-wb";
    /// A's address on the LAN.
    pub const A_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    /// B's address on the LAN.
    pub const B_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

    /// Creates the witness and joins both nodes to it. `nodes` must use at most two
    /// links (the third link's network is the LAN's).
    pub fn new(nodes: &TwoNodes) -> Self {
        let ns = NetNs::new();
        ns.ip(&["link", "add", "br0", "type", "bridge"]);
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", Self::ADDRESS),
            "dev",
            "br0",
        ]);
        ns.ip(&["link", "set", "br0", "up"]);
        for (node, interface, address, port) in [
            (&nodes.a, Self::A_IF, Self::A_V4, "wa"),
            (&nodes.b, Self::B_IF, Self::B_V4, "wb"),
        ] {
            crate::run(
                "ip",
                &[
                    "link",
                    "add",
                    port,
                    "netns",
                    ns.name(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    interface,
                    "netns",
                    node.name(),
                ],
            );
            ns.ip(&["link", "set", port, "master", "br0", "up"]);
            node.ip(&["addr", "add", &format!("{address}/24"), "dev", interface]);
            node.ip(&["link", "set", interface, "up"]);
        }
        Self { ns }
    }

    /// Takes `node`'s interface to the LAN down (`interface`: [`Self::A_IF`] or
    /// [`Self::B_IF`]) or up again.
    pub fn set(node: &NetNs, interface: &str, up: bool) {
        node.ip(&["link", "set", interface, if up { "up" } else { "down" }]);
    }
}
