//! What the agent reads from a container's LXC config file (`LXCPATH/NAME/config`). Pure.
//!
//! The format is `key = value` per line (spaces around `=` optional); a line whose first
//! non-blank character is `#` is a comment. Read here:
//! - `lxc.net.N.link`, `lxc.net.N.hwaddr`, `lxc.net.N.ipv4.address`,
//!   `lxc.net.N.ipv6.address`: the container's static addresses, for the gratuitous ARP /
//!   unsolicited NA that announces them after start ([`container_addresses`]).
//! - `lxc.log.file`: where the container logs, for error messages ([`log_file`]).
//!
//! Not followed: `lxc.include` (files it names are not read, so addresses set only there
//! are not announced) and the pre-3.0 `lxc.network.*` keys. As in LXC, a key with an
//! empty value clears it (`lxc.net =` drops every network, `lxc.net.0.ipv4.address =`
//! drops that network's IPv4 addresses), and address keys may repeat.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// One static address of a container's network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerAddress {
    /// The host interface the container's interface is attached to (`lxc.net.N.link`,
    /// e.g. a bridge); the announcement goes out there.
    pub link: String,
    /// The container interface's MAC (`lxc.net.N.hwaddr`).
    pub mac: [u8; 6],
    /// The address.
    pub address: IpAddr,
    /// Its prefix length; when the config gives none, LXC's default (the class prefix
    /// for IPv4, 64 for IPv6).
    pub prefix_len: u8,
}

#[derive(Default)]
struct Network<'a> {
    link: Option<&'a str>,
    hwaddr: Option<&'a str>,
    addresses: Vec<&'a str>,
    addresses6: Vec<&'a str>,
}

/// Every announceable address of the container, by network index then file order (IPv4
/// before IPv6 within a network). Skipped: networks without a link or a fixed hwaddr
/// (LXC fills `x` digits in with random ones at each start), and address values that do
/// not parse.
pub fn container_addresses(config: &str) -> Vec<ContainerAddress> {
    let mut networks: BTreeMap<u32, Network<'_>> = BTreeMap::new();
    for (key, value) in entries(config) {
        if key == "lxc.net" && value.is_empty() {
            networks.clear();
            continue;
        }
        let Some((index, field)) = key
            .strip_prefix("lxc.net.")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(index, field)| Some((index.parse::<u32>().ok()?, field)))
        else {
            continue;
        };
        let network = networks.entry(index).or_default();
        let value = (!value.is_empty()).then_some(value);
        match (field, value) {
            ("link", value) => network.link = value,
            ("hwaddr", value) => network.hwaddr = value,
            ("ipv4.address", Some(value)) => network.addresses.push(value),
            ("ipv4.address", None) => network.addresses.clear(),
            ("ipv6.address", Some(value)) => network.addresses6.push(value),
            ("ipv6.address", None) => network.addresses6.clear(),
            _ => {}
        }
    }
    networks
        .into_values()
        .filter_map(|network| {
            let link = network.link?;
            let mac = parse_mac(network.hwaddr?)?;
            let all = network.addresses.into_iter().chain(network.addresses6);
            Some(all.filter_map(move |value| {
                let (address, prefix_len) = parse_address(value)?;
                Some(ContainerAddress {
                    link: link.to_owned(),
                    mac,
                    address,
                    prefix_len,
                })
            }))
        })
        .flatten()
        .collect()
}

/// The container's log file (`lxc.log.file`), when the config names one.
pub fn log_file(config: &str) -> Option<&str> {
    entries(config)
        .filter(|(key, _)| *key == "lxc.log.file")
        .last()
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The `(key, value)` pairs of a config text, trimmed, in order; surrounding double
/// quotes are removed from values.
fn entries(config: &str) -> impl Iterator<Item = (&str, &str)> {
    config.lines().filter_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let (key, value) = line.split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((key.trim(), value))
    })
}

/// `aa:bb:cc:dd:ee:ff` -> bytes; `None` for anything else (including `x` templates).
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0_u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// `ADDRESS[/PREFIX] [BROADCAST]` -> address and prefix length.
fn parse_address(value: &str) -> Option<(IpAddr, u8)> {
    let first = value.split_whitespace().next()?;
    let (address, prefix) = match first.split_once('/') {
        Some((address, prefix)) => (
            address.parse::<IpAddr>().ok()?,
            Some(prefix.parse::<u8>().ok()?),
        ),
        None => (first.parse::<IpAddr>().ok()?, None),
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len = prefix.unwrap_or_else(|| default_prefix(address));
    (prefix_len <= max).then_some((address, prefix_len))
}

/// LXC's prefix for an address given without one: the class prefix for IPv4 (A: 8,
/// B: 16, C: 24, else 0), 64 for IPv6.
fn default_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(v4) => match v4.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            192..=223 => 24,
            _ => 0,
        },
        IpAddr::V6(_) => 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x12, 0x34, 0x56];

    fn address(link: &str, mac: [u8; 6], text: &str, prefix_len: u8) -> ContainerAddress {
        ContainerAddress {
            link: link.into(),
            mac,
            address: text.parse().unwrap(),
            prefix_len,
        }
    }

    #[test]
    fn reads_every_address_of_every_network_in_order() {
        let config = "\
# Template used to create this container
lxc.net.0.type = veth
lxc.net.0.link = br0
lxc.net.0.flags = up
lxc.net.0.hwaddr = 00:16:3e:12:34:56
lxc.net.0.ipv4.address = 192.0.2.10/24
lxc.net.0.ipv4.address = 192.0.2.11/25 192.0.2.127
lxc.net.0.ipv6.address = 2001:db8::10/64
lxc.net.1.type=veth
lxc.net.1.link=br1
lxc.net.1.hwaddr=02:00:00:00:00:01
lxc.net.1.ipv4.address=198.51.100.7/24
lxc.rootfs.path = dir:/srv/ha/lxc/web/rootfs
";
        assert_eq!(
            container_addresses(config),
            [
                address("br0", MAC, "192.0.2.10", 24),
                address("br0", MAC, "192.0.2.11", 25),
                address("br0", MAC, "2001:db8::10", 64),
                address("br1", [2, 0, 0, 0, 0, 1], "198.51.100.7", 24),
            ]
        );
    }

    #[test]
    fn networks_are_ordered_by_index_not_by_line() {
        let config = "\
lxc.net.1.link = br1
lxc.net.1.hwaddr = 02:00:00:00:00:01
lxc.net.1.ipv4.address = 198.51.100.7/24
lxc.net.0.link = br0
lxc.net.0.hwaddr = 00:16:3e:12:34:56
lxc.net.0.ipv4.address = 192.0.2.10/24
";
        let links: Vec<String> = container_addresses(config)
            .into_iter()
            .map(|a| a.link)
            .collect();
        assert_eq!(links, ["br0", "br1"]);
    }

    #[test]
    fn networks_without_link_hwaddr_or_address_are_skipped() {
        let config = "\
lxc.net.0.type = empty
lxc.net.1.link = br0
lxc.net.1.ipv4.address = 192.0.2.10/24
lxc.net.2.link = br0
lxc.net.2.hwaddr = 00:16:3e:xx:xx:xx
lxc.net.2.ipv4.address = 192.0.2.11/24
lxc.net.3.link = br0
lxc.net.3.hwaddr = 00:16:3e:12:34:56
lxc.net.4.hwaddr = 00:16:3e:12:34:57
lxc.net.4.ipv4.address = 192.0.2.12/24
";
        assert_eq!(container_addresses(config), []);
    }

    #[test]
    fn an_empty_value_clears_as_in_lxc() {
        let config = "\
lxc.net.0.link = br0
lxc.net.0.hwaddr = 00:16:3e:12:34:56
lxc.net.0.ipv4.address = 192.0.2.10/24
lxc.net.0.ipv4.address =
lxc.net.0.ipv4.address = 192.0.2.20/24
lxc.net.1.link = br1
lxc.net.1.hwaddr = 00:16:3e:12:34:57
lxc.net.1.ipv4.address = 198.51.100.7/24
";
        assert_eq!(
            container_addresses(config),
            [
                address("br0", MAC, "192.0.2.20", 24),
                address("br1", [0, 0x16, 0x3e, 0x12, 0x34, 0x57], "198.51.100.7", 24),
            ]
        );
        let cleared = format!("{config}lxc.net =\n");
        assert_eq!(container_addresses(&cleared), []);
    }

    #[test]
    fn a_missing_prefix_takes_lxcs_default_and_bad_values_are_skipped() {
        let config = "\
lxc.net.0.link = br0
lxc.net.0.hwaddr = 00:16:3e:12:34:56
lxc.net.0.ipv4.address = 192.0.2.10
lxc.net.0.ipv4.address = 198.51.100.300/24
lxc.net.0.ipv4.address = 203.0.113.5/33
lxc.net.0.ipv6.address = 2001:db8::5
";
        assert_eq!(
            container_addresses(config),
            [
                address("br0", MAC, "192.0.2.10", 24),
                address("br0", MAC, "2001:db8::5", 64)
            ]
        );
    }

    #[test]
    fn comments_includes_and_legacy_keys_are_not_read() {
        let config = "\
#lxc.net.0.ipv4.address = 192.0.2.99/24
lxc.include = /usr/share/lxc/config/common.conf
lxc.network.0.ipv4 = 192.0.2.98/24
lxc.net.0.link = br0
lxc.net.0.hwaddr = 00:16:3e:12:34:56
   # lxc.net.0.ipv4.address = 192.0.2.97/24
lxc.net.0.ipv4.address = 192.0.2.10/24
";
        assert_eq!(
            container_addresses(config),
            [address("br0", MAC, "192.0.2.10", 24)]
        );
    }

    #[test]
    fn macs_must_be_six_hex_pairs() {
        assert_eq!(parse_mac("00:16:3E:12:34:56"), Some(MAC));
        assert_eq!(parse_mac("00:16:3e:12:34"), None);
        assert_eq!(parse_mac("00:16:3e:12:34:56:78"), None);
        assert_eq!(parse_mac("0:16:3e:12:34:56"), None);
        assert_eq!(parse_mac("00:16:3e:xx:xx:xx"), None);
    }

    #[test]
    fn the_log_file_is_the_last_one_named() {
        assert_eq!(
            log_file("lxc.log.file = /a\nlxc.log.file = \"/var/log/web.log\"\n"),
            Some("/var/log/web.log")
        );
        assert_eq!(log_file("lxc.log.level = 1\n"), None);
        assert_eq!(log_file("lxc.log.file = /a\nlxc.log.file =\n"), None);
    }
}
