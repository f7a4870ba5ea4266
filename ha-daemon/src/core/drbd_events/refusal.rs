//! Why `drbdadm primary|secondary|up|down` failed, classified from its exit code and
//! standard error.
//!
//! The messages are DRBD's own (the kernel's state-change errors, relayed by
//! drbdsetup): `(-1) Multiple primaries not allowed by config`, `(-2) Need access to
//! UpToDate data`, `(-12) Device is held open by someone`, `(127) Device minor not
//! allocated`, `No such resource`. They are the same in 8.4 and 9, except that DRBD 9
//! lists who holds the device open (`drbd1000 opened by mount (pid 4242) at ...`) and
//! 8.4 does not. Anything else is [`RefusalReason::Other`]; the code and the message are
//! kept for every refusal.

use std::fmt;

use super::state::DiskState;

/// A process DRBD named as holding the device open (DRBD 9 only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opener {
    /// Its command name.
    pub command: String,
    /// Its pid.
    pub pid: u32,
}

/// The classified reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// The peer is Primary and connected (two primaries are not allowed).
    PeerPrimary,
    /// No UpToDate data: the local disk is not UpToDate (its state when known).
    DiskNotUpToDate {
        /// The local disk state, from the state read before the command.
        disk: Option<DiskState>,
    },
    /// The device is open (mounted, or used by a process): demotion is impossible.
    HeldOpen {
        /// Who holds it, when DRBD said (DRBD 9); empty on 8.4.
        openers: Vec<Opener>,
    },
    /// The resource is not up, or DRBD does not know it.
    NotUp,
    /// Anything else; see the code and message.
    Other,
}

/// A failed `drbdadm` state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Its standard error, trimmed, lines joined with "; ".
    pub message: String,
}

impl Refusal {
    /// Classifies a failed command from its exit code and stderr. `local_disk` is the
    /// local disk state read before the command, if known (DRBD's message does not say).
    pub fn classify(code: Option<i32>, stderr: &str, local_disk: Option<DiskState>) -> Self {
        let has = |needle: &str| stderr.contains(needle);
        let reason = if has("Multiple primaries not allowed") {
            RefusalReason::PeerPrimary
        } else if has("Need access to UpToDate data") {
            RefusalReason::DiskNotUpToDate { disk: local_disk }
        } else if has("held open") {
            RefusalReason::HeldOpen {
                openers: stderr.lines().filter_map(parse_opener).collect(),
            }
        } else if [
            "No such resource",
            "Unknown resource",
            "Device minor not allocated",
            "unknown minor",
            "not defined in your config",
        ]
        .iter()
        .any(|needle| has(needle))
        {
            RefusalReason::NotUp
        } else {
            RefusalReason::Other
        };
        let message = stderr
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Refusal {
            reason,
            code,
            message,
        }
    }
}

/// `drbd1000 opened by mount (pid 4242) at 2026-07-20 22:48:32.925` -> mount, 4242.
fn parse_opener(line: &str) -> Option<Opener> {
    let (_, rest) = line.split_once(" opened by ")?;
    let (command, rest) = rest.rsplit_once(" (pid ")?;
    let (pid, _) = rest.split_once(')')?;
    Some(Opener {
        command: command.trim().to_owned(),
        pid: pid.trim().parse().ok()?,
    })
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::PeerPrimary => f.write_str("the peer is Primary and connected"),
            RefusalReason::DiskNotUpToDate { disk: Some(disk) } => {
                write!(f, "the local disk is {disk}, not UpToDate")
            }
            RefusalReason::DiskNotUpToDate { disk: None } => {
                f.write_str("no access to UpToDate data")
            }
            RefusalReason::HeldOpen { openers } if openers.is_empty() => {
                f.write_str("the device is held open (DRBD does not say by whom)")
            }
            RefusalReason::HeldOpen { openers } => {
                f.write_str("the device is held open by ")?;
                for (i, opener) in openers.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{} (pid {})", opener.command, opener.pid)?;
                }
                Ok(())
            }
            RefusalReason::NotUp => f.write_str("the resource is not up"),
            RefusalReason::Other => f.write_str("DRBD refused"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} (exit code {code}: {})", self.reason, self.message),
            None => write!(f, "{} (killed by a signal: {})", self.reason, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::captures::{Capture, capture};
    use super::*;

    fn classify(capture: &Capture, disk: Option<DiskState>) -> Refusal {
        Refusal::classify(capture.exit_code, &capture.stderr, disk)
    }

    #[test]
    fn every_refusal_capture_maps_to_its_reason() {
        let cases = [
            (
                capture!("05-vmda-primary-refused-inconsistent.txt"),
                Some(DiskState::Inconsistent),
                RefusalReason::DiskNotUpToDate {
                    disk: Some(DiskState::Inconsistent),
                },
            ),
            (
                capture!("61-vmda-primary-refused-outdated.txt"),
                Some(DiskState::Outdated),
                RefusalReason::DiskNotUpToDate {
                    disk: Some(DiskState::Outdated),
                },
            ),
            (
                capture!("22-vmdb-primary-refused-peer-primary.txt"),
                None,
                RefusalReason::PeerPrimary,
            ),
            (
                capture!("63-vmdb-secondary-refused-mounted.txt"),
                None,
                RefusalReason::HeldOpen { openers: vec![] },
            ),
            (
                capture!("64-vmdb-down-refused-mounted.txt"),
                None,
                RefusalReason::HeldOpen { openers: vec![] },
            ),
            (
                capture!("33-vmda-status-unconfigured.txt"),
                None,
                RefusalReason::NotUp,
            ),
            (
                capture!("35-vmda-primary-unconfigured.txt"),
                None,
                RefusalReason::NotUp,
            ),
            (
                capture!("91-vmda-drbdadm-84-helper-missing.txt"),
                None,
                RefusalReason::Other,
            ),
            (
                capture!("15-vmda-status-json.txt"),
                None,
                RefusalReason::Other,
            ),
        ];
        for (capture, disk, reason) in cases {
            let refusal = classify(&capture, disk);
            assert_eq!(refusal.reason, reason, "{}", capture.name);
            assert_eq!(refusal.code, capture.exit_code, "{}", capture.name);
            assert!(!refusal.message.is_empty(), "{}", capture.name);
        }
    }

    #[test]
    fn the_message_keeps_drbds_words_on_one_line() {
        let refusal = classify(&capture!("35-vmda-primary-unconfigured.txt"), None);
        assert_eq!(
            refusal.to_string(),
            "the resource is not up (exit code 10: 0: Failure: (127) Device minor not \
             allocated; additional info from kernel:; unknown minor; Command \
             'drbdsetup-84 primary 0' terminated with exit code 10)"
        );
        let refusal = classify(
            &capture!("61-vmda-primary-refused-outdated.txt"),
            Some(DiskState::Outdated),
        );
        assert!(
            refusal
                .to_string()
                .starts_with("the local disk is Outdated, not UpToDate (exit code 17: "),
            "{refusal}"
        );
        let other = classify(&capture!("91-vmda-drbdadm-84-helper-missing.txt"), None);
        assert_eq!(
            other.to_string(),
            "DRBD refused (exit code 20: execvp() failed to exec drbdadm-84: No such file or \
             directory)"
        );
    }

    /// DRBD 9 names the openers (shape from drbd_report_openers, relayed by drbdsetup).
    #[test]
    fn drbd9_held_open_names_the_openers() {
        let stderr = "r0: State change failed: (-12) Device is held open by someone\n\
                      /dev/drbd1000 open_cnt:2, writable:1; list of openers follows\n\
                      drbd1000 opened by mount (pid 4242) at 2026-07-20 22:48:32.925\n\
                      drbd1000 opened by qemu-system-x86 (pid 555) at 2026-07-20 23:00:00.000\n";
        let refusal = Refusal::classify(Some(11), stderr, None);
        assert_eq!(
            refusal.reason,
            RefusalReason::HeldOpen {
                openers: vec![
                    Opener {
                        command: "mount".into(),
                        pid: 4242
                    },
                    Opener {
                        command: "qemu-system-x86".into(),
                        pid: 555
                    },
                ]
            }
        );
        assert!(
            refusal.to_string().starts_with(
                "the device is held open by mount (pid 4242), qemu-system-x86 (pid 555)"
            ),
            "{refusal}"
        );
    }

    #[test]
    fn a_signal_and_an_unknown_resource() {
        let refusal = Refusal::classify(None, "", None);
        assert_eq!(refusal.reason, RefusalReason::Other);
        assert_eq!(refusal.to_string(), "DRBD refused (killed by a signal: )");
        let refusal = Refusal::classify(
            Some(10),
            "'r9' not defined in your config (for this host).\n",
            None,
        );
        assert_eq!(refusal.reason, RefusalReason::NotUp);
    }
}
