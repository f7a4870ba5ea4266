//! Why a mount operation failed, and what an fsck exit code means.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::path::PathBuf;

use nix::errno::Errno;

use super::holders::Holder;
use super::options::OptionError;
use crate::resource::command::SpawnError;

/// A failed `mount` agent operation: the device, the mountpoint and the cause. Prints as
/// `mount DEVICE on MOUNTPOINT: CAUSE` (`unmount DEVICE from MOUNTPOINT: ...` when
/// unmounting failed).
#[derive(Debug, thiserror::Error)]
#[error("{} {}: {cause}", verb(cause), place(device, mountpoint, cause))]
pub struct MountError {
    /// The resource's device.
    pub device: PathBuf,
    /// The resource's mountpoint.
    pub mountpoint: PathBuf,
    /// What went wrong; match on it.
    #[source]
    pub cause: Cause,
}

fn verb(cause: &Cause) -> &'static str {
    if cause.is_unmount() {
        "unmount"
    } else {
        "mount"
    }
}

fn place(device: &std::path::Path, mountpoint: &std::path::Path, cause: &Cause) -> String {
    let preposition = if cause.is_unmount() { "from" } else { "on" };
    format!(
        "{} {preposition} {}",
        device.display(),
        mountpoint.display()
    )
}

/// The cause of a [`MountError`].
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The options cannot be given to `mount(2)`.
    #[error(transparent)]
    Options(OptionError),
    /// The device is missing or not a block device.
    #[error("device: {0}")]
    Device(String),
    /// The mountpoint is missing or not a readable directory.
    #[error("mountpoint: {0}")]
    Mountpoint(String),
    /// The mountpoint holds files and `allow_non_empty` is off.
    #[error(
        "refused, the mountpoint is not empty (first entry {first_entry:?}; \
         set allow_non_empty to mount over it)"
    )]
    NotEmpty {
        /// One of the entries found.
        first_entry: OsString,
    },
    /// Another filesystem is mounted at the mountpoint and ours is not.
    #[error("{0} is mounted there")]
    Occupied(String),
    /// The device is mounted there but another filesystem sits on top of it.
    #[error("covered by {0} mounted on top, not touching it")]
    Covered(String),
    /// The device is mounted read-only but read-write was asked.
    #[error("mounted read-only although rw was asked (remounted after a filesystem error?)")]
    ReadOnly,
    /// fsck could not run.
    #[error("fsck: {0}")]
    FsckSpawn(SpawnError),
    /// fsck found errors it did not fix, or asks for a reboot; nothing was mounted.
    #[error("`{command}` {verdict}: {output}")]
    Fsck {
        /// The command line.
        command: String,
        /// What its exit code means.
        verdict: FsckVerdict,
        /// Its stdout and stderr.
        output: String,
    },
    /// `mount(2)` failed.
    #[error("mount(2) with type {fstype}, data {data:?}: {errno}")]
    Mount {
        /// The filesystem type.
        fstype: String,
        /// The data string.
        data: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The filesystem is busy; it stays mounted.
    #[error("busy, not unmounted; {}", busy_text(.holders, .submounts))]
    Busy {
        /// The processes holding it.
        holders: Vec<Holder>,
        /// Mounts inside it.
        submounts: Vec<PathBuf>,
    },
    /// `umount2(2)` failed for another reason.
    #[error("umount2(2): {0}")]
    Unmount(Errno),
    /// `/proc/self/mountinfo` could not be read or parsed.
    #[error("reading /proc/self/mountinfo: {0}")]
    MountInfo(String),
}

impl Cause {
    fn is_unmount(&self) -> bool {
        matches!(
            self,
            Cause::Busy { .. } | Cause::Unmount(_) | Cause::Covered(_)
        )
    }
}

fn busy_text(holders: &[Holder], submounts: &[PathBuf]) -> String {
    let mut text = String::new();
    if holders.is_empty() {
        text.push_str("no process holds it");
    } else {
        text.push_str("held by ");
        for (index, holder) in holders.iter().enumerate() {
            let separator = if index == 0 { "" } else { "; " };
            let _ = write!(text, "{separator}{holder}");
        }
    }
    for (index, submount) in submounts.iter().enumerate() {
        let lead = if index == 0 {
            "; mounts inside it: "
        } else {
            ", "
        };
        let _ = write!(text, "{lead}{}", submount.display());
    }
    if holders.is_empty() && submounts.is_empty() {
        text.push_str(" (a kernel user such as a loop device or swap file on it?)");
    }
    text
}

/// What an fsck exit code means (fsck(8)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsckVerdict {
    /// 0: clean; 1: errors corrected. The mount may go on.
    Clean,
    /// 2 (or 3): errors corrected but the system should be rebooted.
    RebootNeeded(i32),
    /// 4 or more: errors left uncorrected, or fsck itself failed.
    Failed(i32),
    /// Ended by a signal.
    Killed,
}

impl FsckVerdict {
    /// Reads fsck's exit code (`None`: a signal ended it).
    pub fn from_code(code: Option<i32>) -> Self {
        match code {
            Some(0 | 1) => FsckVerdict::Clean,
            Some(code @ (2 | 3)) => FsckVerdict::RebootNeeded(code),
            Some(code) => FsckVerdict::Failed(code),
            None => FsckVerdict::Killed,
        }
    }
}

impl fmt::Display for FsckVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsckVerdict::Clean => f.write_str("found the filesystem clean"),
            FsckVerdict::RebootNeeded(code) => {
                write!(
                    f,
                    "exited with {code}: the system should be rebooted, not mounting"
                )
            }
            FsckVerdict::Failed(code) => {
                write!(
                    f,
                    "exited with {code}: errors left uncorrected, not mounting"
                )
            }
            FsckVerdict::Killed => f.write_str("was killed by a signal, not mounting"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::mount::holders::Hold;

    fn error(cause: Cause) -> MountError {
        MountError {
            device: "/dev/loop0".into(),
            mountpoint: "/srv/ha".into(),
            cause,
        }
    }

    #[test]
    fn fsck_exit_codes_map_to_verdicts() {
        assert_eq!(FsckVerdict::from_code(Some(0)), FsckVerdict::Clean);
        assert_eq!(FsckVerdict::from_code(Some(1)), FsckVerdict::Clean);
        assert_eq!(
            FsckVerdict::from_code(Some(2)),
            FsckVerdict::RebootNeeded(2)
        );
        assert_eq!(
            FsckVerdict::from_code(Some(3)),
            FsckVerdict::RebootNeeded(3)
        );
        assert_eq!(FsckVerdict::from_code(Some(4)), FsckVerdict::Failed(4));
        assert_eq!(FsckVerdict::from_code(Some(8)), FsckVerdict::Failed(8));
        assert_eq!(FsckVerdict::from_code(None), FsckVerdict::Killed);
    }

    #[test]
    fn a_busy_error_lists_holders_and_submounts() {
        let busy = error(Cause::Busy {
            holders: vec![Holder {
                pid: 77,
                command: "sleep".into(),
                holds: vec![Hold::Cwd],
            }],
            submounts: vec!["/srv/ha/run".into()],
        });
        assert_eq!(
            busy.to_string(),
            "unmount /dev/loop0 from /srv/ha: busy, not unmounted; held by pid 77 (sleep): cwd; \
             mounts inside it: /srv/ha/run"
        );
    }

    #[test]
    fn a_busy_error_without_holders_says_so() {
        let busy = error(Cause::Busy {
            holders: Vec::new(),
            submounts: Vec::new(),
        });
        assert!(
            busy.to_string()
                .contains("no process holds it (a kernel user"),
            "{busy}"
        );
    }

    #[test]
    fn mount_failures_read_as_mount_on() {
        let failed = error(Cause::Mount {
            fstype: "ext4".into(),
            data: "errors=remount-ro".into(),
            errno: Errno::EINVAL,
        });
        assert_eq!(
            failed.to_string(),
            "mount /dev/loop0 on /srv/ha: mount(2) with type ext4, data \"errors=remount-ro\": \
             EINVAL: Invalid argument"
        );
        let fsck = error(Cause::Fsck {
            command: "fsck -p -T /dev/loop0".into(),
            verdict: FsckVerdict::RebootNeeded(2),
            output: "FILE SYSTEM WAS MODIFIED".into(),
        });
        assert!(
            fsck.to_string()
                .contains("exited with 2: the system should be rebooted"),
            "{fsck}"
        );
    }
}
