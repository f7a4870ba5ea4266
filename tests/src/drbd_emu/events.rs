//! `drbdsetup events2` objects and their exact 8.4 line format. Pure.
//!
//! A line is `[TIMESTAMP ]VERB OBJECT IDENTITY FIELDS[ STATISTICS]`. `exists`/`create`
//! lines carry every field, `change` lines only the changed ones, `destroy` lines only
//! the identity. With `--statistics`, exists/create lines add every counter, change lines
//! add the device and peer-device counters (as the real captures show).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::state::{Connection, Disk, Replication, Role, Up};

/// Device counters, in KiB like DRBD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStats {
    /// Device size.
    pub size_kib: u64,
    /// Read from the local disk.
    pub read_kib: u64,
    /// Written to the local disk (local and replicated writes).
    pub written_kib: u64,
}

/// Peer-device counters, in KiB like DRBD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Replication data received from the peer.
    pub received_kib: u64,
    /// Replication data sent to the peer.
    pub sent_kib: u64,
    /// Written while the peer could not get it.
    pub out_of_sync_kib: u64,
}

/// The four kinds of events2 objects, each with its state at the time of the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// `resource`.
    Resource {
        /// Our role.
        role: Role,
    },
    /// `connection`.
    Connection {
        /// Connection state.
        connection: Connection,
        /// The peer's role.
        role: Role,
    },
    /// `device`.
    Device {
        /// Our disk.
        disk: Disk,
        /// Counters.
        stats: DeviceStats,
    },
    /// `peer-device`.
    PeerDevice {
        /// Replication state.
        replication: Replication,
        /// The peer's disk.
        peer_disk: Disk,
        /// Counters.
        stats: PeerStats,
    },
}

impl Object {
    /// The resource object of `up`.
    pub fn resource(up: &Up) -> Self {
        Self::Resource { role: up.role }
    }

    /// The connection object of `up` (StandAlone once destroyed).
    pub fn connection(up: &Up) -> Self {
        Self::Connection {
            connection: up.connection.unwrap_or(Connection::StandAlone),
            role: up.peer_role,
        }
    }

    /// The device object of `up`.
    pub fn device(up: &Up) -> Self {
        Self::Device {
            disk: up.disk,
            stats: up.device_stats,
        }
    }

    /// The peer-device object of `up`.
    pub fn peer_device(up: &Up) -> Self {
        Self::PeerDevice {
            replication: up.replication,
            peer_disk: up.peer_disk,
            stats: up.peer_stats,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Resource { .. } => "resource",
            Self::Connection { .. } => "connection",
            Self::Device { .. } => "device",
            Self::PeerDevice { .. } => "peer-device",
        }
    }

    fn identity(&self, name: &str, minor: u32) -> String {
        match self {
            Self::Resource { .. } => format!("name:{name}"),
            Self::Connection { .. } => format!("name:{name} peer-node-id:0 conn-name:peer"),
            Self::Device { .. } => format!("name:{name} volume:0 minor:{minor}"),
            Self::PeerDevice { .. } => {
                format!("name:{name} peer-node-id:0 conn-name:peer volume:0")
            }
        }
    }

    /// The state fields, in DRBD's order.
    fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Resource { role } => {
                vec![("role", format!("{role:?}")), ("suspended", "no".into())]
            }
            Self::Connection { connection, role } => vec![
                ("connection", format!("{connection:?}")),
                ("role", format!("{role:?}")),
            ],
            Self::Device { disk, .. } => vec![("disk", format!("{disk:?}"))],
            Self::PeerDevice {
                replication,
                peer_disk,
                ..
            } => vec![
                ("replication", format!("{replication:?}")),
                ("peer-disk", format!("{peer_disk:?}")),
                ("resync-suspended", "no".into()),
            ],
        }
    }

    /// The `--statistics` fields; `full` for exists/create lines.
    fn statistics(&self, full: bool) -> Vec<(&'static str, String)> {
        match self {
            Self::Resource { .. } if full => vec![("write-ordering", "flush".into())],
            Self::Connection { .. } if full => vec![("congested", "no".into())],
            Self::Resource { .. } | Self::Connection { .. } => Vec::new(),
            Self::Device { stats, .. } => {
                let mut all = vec![
                    ("size", stats.size_kib.to_string()),
                    ("read", stats.read_kib.to_string()),
                    ("written", stats.written_kib.to_string()),
                    ("al-writes", "0".into()),
                    ("bm-writes", "0".into()),
                    ("upper-pending", "0".into()),
                    ("lower-pending", "0".into()),
                ];
                if full {
                    all.extend([("al-suspended", "no".into()), ("blocked", "no".into())]);
                }
                all
            }
            Self::PeerDevice { stats, .. } => vec![
                ("received", stats.received_kib.to_string()),
                ("sent", stats.sent_kib.to_string()),
                ("out-of-sync", stats.out_of_sync_kib.to_string()),
                ("pending", "0".into()),
                ("unacked", "0".into()),
            ],
        }
    }
}

/// The event verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Part of the initial state dump.
    Exists,
    /// The object appeared.
    Create,
    /// Some fields changed.
    Change,
    /// The object disappeared.
    Destroy,
}

/// One events2 event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub verb: Verb,
    /// The object, as it is after the event.
    pub object: Object,
    /// For `Change`: the keys that changed.
    pub changed: Vec<&'static str>,
}

impl Event {
    /// An event that is not a change.
    pub fn new(verb: Verb, object: Object) -> Self {
        Self {
            verb,
            object,
            changed: Vec::new(),
        }
    }

    /// A change of `changed` keys.
    pub fn change(object: Object, changed: &[&'static str]) -> Self {
        Self {
            verb: Verb::Change,
            object,
            changed: changed.to_vec(),
        }
    }

    /// The line without timestamp, for resource `name` on `minor`.
    pub fn line(&self, name: &str, minor: u32, statistics: bool) -> String {
        let verb = match self.verb {
            Verb::Exists => "exists",
            Verb::Create => "create",
            Verb::Change => "change",
            Verb::Destroy => "destroy",
        };
        let mut line = format!(
            "{verb} {} {}",
            self.object.kind(),
            self.object.identity(name, minor)
        );
        let full = matches!(self.verb, Verb::Exists | Verb::Create);
        let mut fields = match self.verb {
            Verb::Destroy => Vec::new(),
            Verb::Change => self
                .object
                .fields()
                .into_iter()
                .filter(|(key, _)| self.changed.contains(key))
                .collect(),
            Verb::Exists | Verb::Create => self.object.fields(),
        };
        if statistics && self.verb != Verb::Destroy {
            fields.extend(self.object.statistics(full));
        }
        for (key, value) in fields {
            let _ = write!(line, " {key}:{value}");
        }
        line
    }
}

/// The end of the initial dump.
pub const EXISTS_END: &str = "exists -";

/// An events2 `--timestamps` prefix for `unix_micros` (UTC, microseconds), e.g.
/// `2026-11-23T11:53:08.765358+00:00`.
pub fn timestamp(unix_micros: u64) -> String {
    let secs = unix_micros / 1_000_000;
    let micros = unix_micros % 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        // 2026-11-23T11:53:08.765358Z
        assert_eq!(
            timestamp(1_795_434_788_765_358),
            "2026-11-23T11:53:08.765358+00:00"
        );
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn change_lines_carry_only_changed_fields() {
        let ev = Event::change(
            Object::Connection {
                connection: Connection::NetworkFailure,
                role: Role::Unknown,
            },
            &["connection", "role"],
        );
        assert_eq!(
            ev.line("r0", 0, true),
            "change connection name:r0 peer-node-id:0 conn-name:peer connection:NetworkFailure role:Unknown"
        );
        let ev = Event::change(
            Object::PeerDevice {
                replication: Replication::Off,
                peer_disk: Disk::DUnknown,
                stats: PeerStats {
                    received_kib: 339,
                    sent_kib: 0,
                    out_of_sync_kib: 0,
                },
            },
            &["replication", "peer-disk"],
        );
        assert_eq!(
            ev.line("r0", 0, true),
            "change peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 replication:Off peer-disk:DUnknown received:339 sent:0 out-of-sync:0 pending:0 unacked:0"
        );
        let ev = Event::new(
            Verb::Destroy,
            Object::Resource {
                role: Role::Primary,
            },
        );
        assert_eq!(ev.line("r0", 0, true), "destroy resource name:r0");
    }
}
