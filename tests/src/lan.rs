//! A LAN: a bridge namespace joining node namespaces and a client namespace.
//!
//! [`Lan::new`] creates four namespaces: `bridge` holds the bridge [`Lan::BRIDGE`]; `a`,
//! `b` and `client` each have one interface [`Lan::IF`], the end of a veth whose other
//! end is a port of the bridge. Addresses come from 192.0.2.0/24 and 2001:db8::/64 only
//! (`.1`/`::1` for a, `.2`/`::2` for b, `.100`/`::100` for the client), added without
//! duplicate address detection so they are usable at once.
//!
//! The LAN gets quiet, so a test can assert that a member sent nothing: it has no
//! router, so members send no IPv6 router solicitations; what IPv6 still sends after an
//! interface comes up (duplicate address detection of the link-local address, MLD
//! reports repeated for a second or two) [`Lan::wait_quiet`] waits out. The bridge
//! floods multicast (no snooping) like a plain switch. Dropping the `Lan` deletes the
//! namespaces, and with them every veth, address and neighbour entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::netns::NetNs;

/// Three members on one bridge, each in its own namespace.
#[derive(Debug)]
pub struct Lan {
    /// Node A.
    pub a: NetNs,
    /// Node B.
    pub b: NetNs,
    /// A client of the nodes' services.
    pub client: NetNs,
    /// The namespace holding the bridge.
    pub bridge: NetNs,
}

/// A neighbour table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Its link-layer address, if resolved.
    pub mac: Option<[u8; 6]>,
    /// Its states as `ip` names them, e.g. `["REACHABLE"]`.
    pub state: Vec<String>,
}

impl Lan {
    /// The bridge in [`Lan::bridge`].
    pub const BRIDGE: &str = "br0";
    /// The LAN interface of every member.
    pub const IF: &str = "lan0";
    /// A's IPv4 address.
    pub const A_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// B's IPv4 address.
    pub const B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    /// The client's IPv4 address.
    pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    /// A's IPv6 address.
    pub const A_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    /// B's IPv6 address.
    pub const B_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    /// The client's IPv6 address.
    pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    /// The IPv4 prefix length of the LAN.
    pub const PREFIX_V4: u8 = 24;
    /// The IPv6 prefix length of the LAN.
    pub const PREFIX_V6: u8 = 64;

    /// Creates the bridge and its three members, all up.
    pub fn new() -> Self {
        let lan = Self {
            a: NetNs::new(),
            b: NetNs::new(),
            client: NetNs::new(),
            bridge: NetNs::new(),
        };
        lan.bridge.ip(&[
            "link",
            "add",
            Self::BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        lan.bridge.ip(&["link", "set", Self::BRIDGE, "up"]);
        for (member, port, v4, v6) in [
            (&lan.a, "port-a", Self::A_V4, Self::A_V6),
            (&lan.b, "port-b", Self::B_V4, Self::B_V6),
            (&lan.client, "port-client", Self::CLIENT_V4, Self::CLIENT_V6),
        ] {
            lan.join(member, port, v4, v6);
        }
        lan
    }

    fn join(&self, member: &NetNs, port: &str, v4: Ipv4Addr, v6: Ipv6Addr) {
        crate::run(
            "ip",
            &[
                "link",
                "add",
                Self::IF,
                "netns",
                member.name(),
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                self.bridge.name(),
            ],
        );
        self.bridge
            .ip(&["link", "set", port, "master", Self::BRIDGE, "up"]);
        member.exec(
            "sysctl",
            &[
                "-qw",
                &format!("net.ipv6.conf.{}.router_solicitations=0", Self::IF),
            ],
        );
        member.ip(&[
            "addr",
            "add",
            &format!("{v4}/{}", Self::PREFIX_V4),
            "dev",
            Self::IF,
        ]);
        member.ip(&[
            "addr",
            "add",
            &format!("{v6}/{}", Self::PREFIX_V6),
            "dev",
            Self::IF,
            "nodad",
        ]);
        member.ip(&["link", "set", Self::IF, "up"]);
    }

    /// The MAC of `member`'s [`Lan::IF`].
    pub fn mac(member: &NetNs) -> [u8; 6] {
        let json = member.ip(&["-j", "link", "show", "dev", Self::IF]);
        let links: serde_json::Value = serde_json::from_str(&json).expect("ip -j link");
        let text = links[0]["address"].as_str().expect("link address");
        parse_mac(text).unwrap_or_else(|| panic!("bad MAC {text:?}"))
    }

    /// `member`'s neighbour entry for `address` on [`Lan::IF`], if any.
    pub fn neighbour(member: &NetNs, address: IpAddr) -> Option<Neighbour> {
        let json = member.ip(&[
            "-j",
            "neigh",
            "show",
            "to",
            &address.to_string(),
            "dev",
            Self::IF,
        ]);
        parse_neighbour(&json)
    }

    /// Packets `member` has sent on [`Lan::IF`].
    pub fn tx_packets(member: &NetNs) -> u64 {
        let json = member.ip(&["-j", "-s", "link", "show", "dev", Self::IF]);
        let links: serde_json::Value = serde_json::from_str(&json).expect("ip -j -s link");
        links[0]["stats64"]["tx"]["packets"]
            .as_u64()
            .expect("tx packet count")
    }

    /// Waits until `member` has sent nothing on [`Lan::IF`] for `quiet` (polling every
    /// 100 ms); panics if that takes longer than `limit`.
    pub fn wait_quiet(member: &NetNs, quiet: Duration, limit: Duration) {
        let began = Instant::now();
        let mut last = (Self::tx_packets(member), Instant::now());
        while last.1.elapsed() < quiet {
            assert!(
                began.elapsed() < limit,
                "{} still sends on {} after {limit:?}",
                member.name(),
                Self::IF
            );
            std::thread::sleep(Duration::from_millis(100));
            let sent = Self::tx_packets(member);
            if sent != last.0 {
                last = (sent, Instant::now());
            }
        }
    }

    /// How many times `member`'s [`Lan::IF`] carries `address` (any prefix length).
    pub fn address_count(member: &NetNs, address: IpAddr) -> usize {
        let json = member.ip(&["-j", "addr", "show", "dev", Self::IF]);
        let links: serde_json::Value = serde_json::from_str(&json).expect("ip -j addr");
        let wanted = address.to_string();
        links[0]["addr_info"].as_array().map_or(0, |infos| {
            infos
                .iter()
                .filter(|info| info["local"] == wanted.as_str())
                .count()
        })
    }
}

impl Default for Lan {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses `ip -j neigh show` output holding at most one entry.
pub fn parse_neighbour(json: &str) -> Option<Neighbour> {
    let entries: serde_json::Value = serde_json::from_str(json).expect("ip -j neigh");
    let entry = entries.as_array()?.first()?;
    Some(Neighbour {
        mac: entry["lladdr"].as_str().and_then(parse_mac),
        state: entry["state"]
            .as_array()
            .map(|states| {
                states
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}
