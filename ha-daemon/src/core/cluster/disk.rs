//! Whether our DRBD disk can take a promotion: the core's disk input
//! ([`super::Cluster::handle_disk`]), from a resource's folded events2 state. Pure.
//!
//! Usable: every local volume `UpToDate`; or every volume `UpToDate` or `Consistent`
//! while connected to the peer (a `Consistent` disk is current only as far as the peer
//! confirms, which needs the connection; DRBD itself refuses to promote it alone).
//! Anything else (not up, `Inconsistent`, `Outdated`, `Diskless`, `Failed`, attaching,
//! no volume, the dump not complete yet) is not usable, with the reason for an operator.
//!
//! In sync (what a switchover needs, from our own side of the connection, so the peer's
//! advert need not carry it): connected, every volume UpToDate here and at the peer,
//! replication `Established`, and nothing out of sync where statistics report it.

use crate::core::drbd_events::state::{
    ConnectionState, DiskState, ReplicationState, ResourceState,
};

/// The verdict on one resource's disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskVerdict {
    /// The disk can take a promotion.
    pub usable: bool,
    /// What was found, e.g. `r0: UpToDate` or `r0: volume 0 Inconsistent`.
    pub state: String,
    /// `Ok`: in sync with the peer; `Err`: why not (e.g. `r0: peer volume 0
    /// Inconsistent`).
    pub sync: Result<(), String>,
}

impl DiskVerdict {
    /// Not usable, not in sync: the state of `resource` is not known, for `why`.
    pub fn unknown(resource: &str, why: &str) -> Self {
        let state = format!("{resource}: {why}");
        DiskVerdict {
            usable: false,
            sync: Err(state.clone()),
            state,
        }
    }
}

/// The verdict on `state` (see the module doc).
pub fn disk_verdict(state: &ResourceState) -> DiskVerdict {
    let name = state.name();
    let sync = sync_verdict(state);
    let verdict = |usable, state| DiskVerdict {
        usable,
        state,
        sync: sync.clone(),
    };
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

/// Whether `state` is in sync with the peer (see the module doc).
fn sync_verdict(state: &ResourceState) -> Result<(), String> {
    let name = state.name();
    if !state.dump_complete() || !state.exists() {
        return Err(format!("{name}: not up here"));
    }
    let connection = state.connection();
    if connection != ConnectionState::Connected {
        return Err(format!("{name}: not connected to the peer ({connection})"));
    }
    let peer = state.peer();
    for (volume, device) in state.devices() {
        if device.disk != DiskState::UpToDate {
            return Err(format!("{name}: volume {volume} {} here", device.disk));
        }
        let peer_disk = state.peer_disk(*volume);
        if peer_disk != DiskState::UpToDate {
            return Err(format!("{name}: peer volume {volume} {peer_disk}"));
        }
        if let Some(seen) = peer.and_then(|peer| peer.devices.get(volume)) {
            if seen.replication != ReplicationState::Established {
                return Err(format!(
                    "{name}: volume {volume} replication {}",
                    seen.replication
                ));
            }
            if let Some(kib) = seen.out_of_sync_kib.filter(|kib| *kib > 0) {
                return Err(format!("{name}: volume {volume} {kib} KiB out of sync"));
            }
        }
    }
    Ok(())
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
            assert!(verdict.usable);
            assert_eq!(verdict.state, "r0: UpToDate");
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

    fn synced(peer_disk: &str, replication: &str, out_of_sync: &str) -> ResourceState {
        let lines = [
            "exists resource name:r0 role:Primary suspended:no".to_owned(),
            "exists connection name:r0 peer-node-id:1 conn-name:b connection:Connected role:Secondary".to_owned(),
            "exists device name:r0 volume:0 minor:0 disk:UpToDate".to_owned(),
            format!("exists peer-device name:r0 peer-node-id:1 conn-name:b volume:0 replication:{replication} peer-disk:{peer_disk}{out_of_sync}"),
            "exists -".to_owned(),
        ];
        let lines: Vec<_> = lines.iter().map(|l| parse_line(l).unwrap()).collect();
        ResourceState::fold("r0", &lines)
    }

    #[test]
    fn in_sync_needs_both_disks_up_to_date_established_and_nothing_out_of_sync() {
        assert_eq!(
            disk_verdict(&synced("UpToDate", "Established", "")).sync,
            Ok(())
        );
        assert_eq!(
            disk_verdict(&synced("UpToDate", "Established", " out-of-sync:0")).sync,
            Ok(())
        );
        assert_eq!(
            disk_verdict(&synced("Inconsistent", "SyncSource", "")).sync,
            Err("r0: peer volume 0 Inconsistent".to_owned())
        );
        assert_eq!(
            disk_verdict(&synced("UpToDate", "SyncSource", "")).sync,
            Err("r0: volume 0 replication SyncSource".to_owned())
        );
        assert_eq!(
            disk_verdict(&synced("UpToDate", "Established", " out-of-sync:4096")).sync,
            Err("r0: volume 0 4096 KiB out of sync".to_owned())
        );
        assert_eq!(
            disk_verdict(&ResourceState::not_up("r0")).sync,
            Err("r0: not up here".to_owned())
        );
    }
}
