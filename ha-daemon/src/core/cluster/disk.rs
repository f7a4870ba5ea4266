//! Whether our DRBD disk can take a promotion: the core's disk input
//! ([`super::Cluster::handle_disk`]), from a resource's folded events2 state. Pure.
//!
//! Usable: every local volume `UpToDate`; or every volume `UpToDate` or `Consistent`
//! while connected to the peer (a `Consistent` disk is current only as far as the peer
//! confirms, which needs the connection; DRBD itself refuses to promote it alone).
//! Anything else (not up, `Inconsistent`, `Outdated`, `Diskless`, `Failed`, attaching,
//! no volume, the dump not complete yet) is not usable, with the reason for an operator.

use crate::core::drbd_events::state::{ConnectionState, DiskState, ResourceState};

/// The verdict on one resource's disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskVerdict {
    /// The disk can take a promotion.
    pub usable: bool,
    /// What was found, e.g. `r0: UpToDate` or `r0: volume 0 Inconsistent`.
    pub state: String,
}

/// The verdict on `state` (see the module doc).
pub fn disk_verdict(state: &ResourceState) -> DiskVerdict {
    let name = state.name();
    let verdict = |usable, state| DiskVerdict { usable, state };
    if !state.dump_complete() {
        return verdict(false, format!("{name}: state not known yet"));
    }
    if !state.exists() {
        return verdict(false, format!("{name}: not up"));
    }
    let devices = state.devices();
    if devices.is_empty() {
        return verdict(false, format!("{name}: no volume"));
    }
    let connected = state.connection() == ConnectionState::Connected;
    let unfit = devices.iter().find(|(_, device)| match device.disk {
        DiskState::UpToDate => false,
        DiskState::Consistent => !connected,
        _ => true,
    });
    if let Some((volume, device)) = unfit {
        let note = if device.disk == DiskState::Consistent {
            " without the peer"
        } else {
            ""
        };
        return verdict(
            false,
            format!("{name}: volume {volume} {}{note}", device.disk),
        );
    }
    let consistent = devices
        .values()
        .any(|device| device.disk == DiskState::Consistent);
    verdict(
        true,
        if consistent {
            format!("{name}: Consistent, connected")
        } else {
            format!("{name}: UpToDate")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::drbd_events::line::parse_line;

    fn state(lines: &[&str]) -> ResourceState {
        let lines: Vec<_> = lines.iter().map(|l| parse_line(l).unwrap()).collect();
        ResourceState::fold("r0", &lines)
    }

    fn with_disk(disk: &str, connection: &str) -> ResourceState {
        state(&[
            "exists resource name:r0 role:Secondary suspended:no",
            &format!(
                "exists connection name:r0 peer-node-id:1 conn-name:b connection:{connection} role:Unknown"
            ),
            &format!("exists device name:r0 volume:0 minor:0 disk:{disk}"),
            "exists -",
        ])
    }

    #[test]
    fn up_to_date_is_usable_and_consistent_only_while_connected() {
        for connection in ["Connected", "Connecting"] {
            let verdict = disk_verdict(&with_disk("UpToDate", connection));
            assert_eq!(
                verdict,
                DiskVerdict {
                    usable: true,
                    state: "r0: UpToDate".into()
                }
            );
        }
        assert!(disk_verdict(&with_disk("Consistent", "Connected")).usable);
        let alone = disk_verdict(&with_disk("Consistent", "Connecting"));
        assert!(!alone.usable);
        assert_eq!(alone.state, "r0: volume 0 Consistent without the peer");
    }

    #[test]
    fn every_other_disk_and_an_unknown_or_absent_resource_is_not_usable() {
        for disk in [
            "Inconsistent",
            "Outdated",
            "Diskless",
            "Failed",
            "Attaching",
            "Bogus",
        ] {
            let verdict = disk_verdict(&with_disk(disk, "Connected"));
            assert!(!verdict.usable, "{disk}");
            assert_eq!(verdict.state, format!("r0: volume 0 {disk}"));
        }
        assert_eq!(
            disk_verdict(&ResourceState::new("r0")).state,
            "r0: state not known yet"
        );
        assert_eq!(
            disk_verdict(&ResourceState::not_up("r0")).state,
            "r0: not up"
        );
        let no_volume = state(&[
            "exists resource name:r0 role:Secondary suspended:no",
            "exists -",
        ]);
        assert!(!disk_verdict(&no_volume).usable);
    }
}
