//! The pure decisions of the `vip` agent: settings checks, whether the address is
//! present, what `monitor` reports. No I/O.

use std::net::IpAddr;

use super::netlink::Link;
use super::{VipCause, VipSettings};
use crate::core::announce::check_schedule;
use crate::resource::Health;

/// Whether the configured address is on the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Presence {
    /// Not there.
    Absent,
    /// There with the configured prefix length, at this index of the list.
    Present(usize),
    /// There with another prefix length (the first such).
    OtherPrefix(u8),
}

/// Finds `address/prefix_len` among an interface's addresses (address, prefix length).
pub(super) fn presence(
    assigned: impl IntoIterator<Item = (IpAddr, u8)>,
    address: IpAddr,
    prefix_len: u8,
) -> Presence {
    let mut other = None;
    for (index, (found, found_prefix_len)) in assigned.into_iter().enumerate() {
        if found == address {
            if found_prefix_len == prefix_len {
                return Presence::Present(index);
            }
            other.get_or_insert(found_prefix_len);
        }
    }
    other.map_or(Presence::Absent, Presence::OtherPrefix)
}

/// Why the interface cannot carry the address now, if it cannot.
pub(super) fn link_problem(link: Link) -> Option<VipCause> {
    if !link.up {
        Some(VipCause::InterfaceDown)
    } else if !link.carrier {
        Some(VipCause::NoCarrier)
    } else {
        None
    }
}

/// What `monitor` reports for an observation (`link` is `None` when the interface does
/// not exist).
pub(super) fn health(link: Option<Link>, presence: Presence, settings: &VipSettings) -> Health {
    let where_ = format!("interface {}", settings.interface);
    let Some(link) = link else {
        return Health::Failed(format!("{where_} does not exist"));
    };
    let state = match presence {
        Presence::Absent => "absent",
        Presence::Present(_) | Presence::OtherPrefix(_) => "present",
    };
    if let Some(problem) = link_problem(link) {
        return Health::Failed(format!(
            "{where_}: {problem} (address {}/{} {state})",
            settings.address, settings.prefix_len
        ));
    }
    match presence {
        Presence::Absent => Health::Stopped,
        Presence::Present(_) => Health::Running,
        Presence::OtherPrefix(prefix_len) => Health::Failed(format!(
            "address {} is on {} with prefix length {prefix_len}, configured {}",
            settings.address, settings.interface, settings.prefix_len
        )),
    }
}

/// Checks the settings alone (no machine access); the text names the problem.
pub(super) fn check_settings(settings: &VipSettings) -> Result<(), String> {
    let interface = &settings.interface;
    if interface.is_empty()
        || interface.len() > 15
        || interface.contains(['/', ':'])
        || interface.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "interface {interface:?} is not a valid interface name (1-15 bytes, no '/', ':' or spaces)"
        ));
    }
    let address = settings.address;
    if address.is_unspecified() || address.is_loopback() || address.is_multicast() {
        return Err(format!(
            "address {address} cannot float (unspecified, loopback or multicast)"
        ));
    }
    let max = if address.is_ipv4() { 32 } else { 128 };
    if settings.prefix_len > max {
        return Err(format!(
            "prefix length {} does not fit {address} (at most {max})",
            settings.prefix_len
        ));
    }
    check_schedule(&settings.announce_schedule)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use super::*;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
    const UP: Link = Link {
        index: 3,
        up: true,
        carrier: true,
    };

    fn settings(address: IpAddr, prefix_len: u8) -> VipSettings {
        VipSettings::new("eth0", address, prefix_len)
    }

    #[test]
    fn the_prefix_must_fit_the_family() {
        assert!(check_settings(&settings(V4, 32)).is_ok());
        let error = check_settings(&settings(V4, 33)).unwrap_err();
        assert!(
            error.contains("prefix length 33") && error.contains("at most 32"),
            "{error}"
        );
        assert!(check_settings(&settings(V6, 128)).is_ok());
        let error = check_settings(&settings(V6, 129)).unwrap_err();
        assert!(error.contains("at most 128"), "{error}");
    }

    #[test]
    fn addresses_that_cannot_float_are_refused() {
        for address in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
        ] {
            let error = check_settings(&settings(address, 24)).unwrap_err();
            assert!(error.contains("cannot float"), "{address}: {error}");
        }
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        for name in ["", "a-name-longer-than-15", "eth0/1", "eth0:1", "eth 0"] {
            let mut settings = settings(V4, 24);
            settings.interface = name.to_owned();
            let error = check_settings(&settings).unwrap_err();
            assert!(
                error.contains("not a valid interface name"),
                "{name:?}: {error}"
            );
        }
        let mut settings = settings(V4, 24);
        settings.interface = "br-lan.100".to_owned();
        assert!(check_settings(&settings).is_ok());
    }

    #[test]
    fn the_schedule_must_be_non_empty_and_ascending() {
        let mut settings = settings(V4, 24);
        settings.announce_schedule.clear();
        assert!(check_settings(&settings).unwrap_err().contains("empty"));
        settings.announce_schedule = [0, 200, 50].map(Duration::from_millis).to_vec();
        assert!(
            check_settings(&settings)
                .unwrap_err()
                .contains("not ascending")
        );
        settings.announce_schedule = [100, 100].map(Duration::from_millis).to_vec();
        assert!(check_settings(&settings).is_ok());
    }

    #[test]
    fn presence_matches_address_and_prefix() {
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(presence([], V4, 24), Presence::Absent);
        assert_eq!(presence([(other, 24)], V4, 24), Presence::Absent);
        assert_eq!(
            presence([(other, 24), (V4, 24)], V4, 24),
            Presence::Present(1)
        );
        assert_eq!(presence([(V4, 32)], V4, 24), Presence::OtherPrefix(32));
        assert_eq!(
            presence([(V4, 32), (V4, 24)], V4, 24),
            Presence::Present(1),
            "the configured one counts even beside another prefix"
        );
    }

    #[test]
    fn health_of_a_usable_interface_follows_presence() {
        let settings = settings(V4, 24);
        assert_eq!(
            health(Some(UP), Presence::Present(0), &settings),
            Health::Running
        );
        assert_eq!(
            health(Some(UP), Presence::Absent, &settings),
            Health::Stopped
        );
        let Health::Failed(reason) = health(Some(UP), Presence::OtherPrefix(32), &settings) else {
            panic!("another prefix is a failure");
        };
        assert!(
            reason.contains("prefix length 32") && reason.contains("configured 24"),
            "{reason}"
        );
    }

    #[test]
    fn a_missing_down_or_carrierless_interface_fails_with_the_reason() {
        let settings = settings(V4, 24);
        let cases = [
            (None, Presence::Absent, "interface eth0 does not exist"),
            (
                Some(Link { up: false, ..UP }),
                Presence::Present(0),
                "interface eth0: interface is down (address 192.0.2.10/24 present)",
            ),
            (
                Some(Link {
                    carrier: false,
                    ..UP
                }),
                Presence::Absent,
                "interface eth0: interface has no carrier (address 192.0.2.10/24 absent)",
            ),
        ];
        for (link, presence, reason) in cases {
            assert_eq!(
                health(link, presence, &settings),
                Health::Failed(reason.to_owned())
            );
        }
    }
}
