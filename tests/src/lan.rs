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
//!
//! For takeover tests: [`Lan::client_learns_a`] gives the client a neighbour entry
//! pointing at node a, learnt for real, and leaves it stale; [`switch_during`] runs an
//! agent on a node ([`on_node`]) while another thread times the client's entry moving
//! to a new MAC.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
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
    /// How long the client must have sent nothing before a takeover (so what it sends
    /// during the takeover counts).
    pub const QUIET: Duration = Duration::from_secs(1);
    /// How long to wait for that at most.
    pub const QUIET_LIMIT: Duration = Duration::from_secs(8);

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

impl Lan {
    /// Node a holds `address`, the client reaches it (so its neighbour entry is a's MAC,
    /// learnt the real way), then node a fails (its [`Lan::IF`] goes down, the address
    /// stays on it). The client was quiet for [`Lan::QUIET`] before.
    ///
    /// a's ARP reply to the ping is younger than the client's neigh locktime (1 s by
    /// default), during which Linux ignores ARP updates except gratuitous ones
    /// (net/ipv4/arp.c: `override = locktime passed || is_garp`). So no waiting and no
    /// locktime change: the hardest case, a takeover right after the client talked to a.
    /// (IPv6 has no locktime; the NA's override flag does it.)
    pub fn client_learns_a(&self, address: IpAddr, prefix_len: u8) {
        self.a.ip(&[
            "addr",
            "add",
            &format!("{address}/{prefix_len}"),
            "dev",
            Self::IF,
            "nodad",
        ]);
        Self::wait_quiet(&self.client, Self::QUIET, Self::QUIET_LIMIT);
        ping(&self.client, address);
        let entry = Self::neighbour(&self.client, address).expect("the client resolved it");
        assert_eq!(
            entry.mac,
            Some(Self::mac(&self.a)),
            "the client reached a: {entry:?}"
        );
        self.a.ip(&["link", "set", Self::IF, "down"]);
    }

    /// Polls `member`'s neighbour entry for `address` (reading only, no traffic) until
    /// it holds `mac`; returns the time since `began`. Panics after `limit`.
    pub fn watch_switch(
        member: &NetNs,
        address: IpAddr,
        mac: [u8; 6],
        began: Instant,
        limit: Duration,
    ) -> Duration {
        let never = AtomicBool::new(false);
        watch(member, (address, mac), began, limit, &never).expect("not abandoned")
    }
}

/// [`Lan::watch_switch`], or `None` as soon as `abandoned` is set.
fn watch(
    member: &NetNs,
    (address, mac): (IpAddr, [u8; 6]),
    began: Instant,
    limit: Duration,
    abandoned: &AtomicBool,
) -> Option<Duration> {
    loop {
        let entry = Lan::neighbour(member, address);
        let seen = began.elapsed();
        if entry.as_ref().and_then(|entry| entry.mac) == Some(mac) {
            return Some(seen);
        }
        if abandoned.load(Ordering::Relaxed) {
            return None;
        }
        assert!(
            seen < limit,
            "after {seen:?} {} still has {entry:?} for {address}",
            member.name()
        );
    }
}

/// Runs `work` on `node` (see [`on_node`]) while another thread watches `client`'s
/// entry for `address` until it holds `mac` ([`Lan::watch_switch`], at most `limit`).
/// The clock starts at the instant `work` sends, right before the operation under test.
/// Returns the time to the switch and `work`'s output. A panic of `work` stops the
/// watcher and is the one reported.
pub fn switch_during<F>(
    node: &NetNs,
    client: &NetNs,
    target: (IpAddr, [u8; 6]),
    limit: Duration,
    work: impl FnOnce(Sender<Instant>) -> F,
) -> (Duration, F::Output)
where
    F: Future + Send,
    F::Output: Send,
{
    let (began_tx, began_rx) = std::sync::mpsc::channel();
    let work = work(began_tx);
    let abandoned = &AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The client is watched from another thread, so polling never delays the agent.
        let watcher = scope.spawn(move || {
            let began = began_rx.recv().ok()?;
            watch(client, target, began, limit, abandoned)
        });
        let output = std::panic::catch_unwind(AssertUnwindSafe(|| on_node(node, work)));
        abandoned.store(output.is_err(), Ordering::Relaxed);
        let switched = watcher.join();
        let output = output.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let switched = switched.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (switched.expect("the work started the clock"), output)
    })
}

/// Runs `work` to completion on a new thread inside `node`'s namespace with the
/// namespace's own `/sys` ([`NetNs::enter_as_host`]), on a current-thread tokio runtime
/// (so every socket the agent opens, and every program it starts, is in that namespace);
/// a panic in it fails the test. Tasks `work` spawns end with it.
pub fn on_node<F>(node: &NetNs, work: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _inside = node.enter_as_host();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime")
                    .block_on(work)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// One ping from `from` to `to`; panics when it gets no answer within 2 s.
pub fn ping(from: &NetNs, to: IpAddr) {
    from.exec("ping", &["-c", "1", "-W", "2", &to.to_string()]);
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
