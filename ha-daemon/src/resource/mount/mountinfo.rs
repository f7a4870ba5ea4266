//! `/proc/self/mountinfo` lines -> [`MountEntry`], and what is mounted at a mountpoint. Pure.
//!
//! Line format (proc(5)): `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] -
//! FSTYPE SOURCE SUPEROPTIONS`. The kernel escapes space, tab, newline and backslash in
//! paths as `\ooo` octal; [`unescape`] undoes that byte for byte.
//!
//! Mounts at one path stack: the visible one is the top of the stack, the entry at that
//! path that no other entry at the same path has as its parent.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount, as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's id.
    pub id: u32,
    /// The id of the mount it sits on.
    pub parent: u32,
    /// Major number of the filesystem's device (`st_dev`).
    pub major: u32,
    /// Minor number of the filesystem's device.
    pub minor: u32,
    /// Where the mount is, unescaped.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `noatime`, ...).
    pub mount_options: Vec<String>,
    /// The filesystem type.
    pub fstype: String,
    /// The mount source (device path, or a word such as `tmpfs`), unescaped.
    pub source: PathBuf,
    /// Per-superblock options (`ro`/`rw`, `errors=remount-ro`, ...).
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// True when the mount or its filesystem is read-only (a filesystem that remounted
    /// itself read-only after an error shows `ro` in its superblock options).
    pub fn read_only(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro") || self.super_options.iter().any(|o| o == "ro")
    }
}

/// A line that is not a mountinfo line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("mountinfo line {number} {line:?}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub number: usize,
    /// The line.
    pub line: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses all lines of a mountinfo file (empty lines are skipped).
pub fn parse(text: &str) -> Result<Vec<MountEntry>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|reason| ParseError {
                number: index + 1,
                line: line.to_owned(),
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<MountEntry, &'static str> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or("no \" - \" separator")?;
    let (head, tail) = fields.split_at(separator);
    let [id, parent, device, _root, mount_point, options, ..] = head else {
        return Err("fewer than 6 fields before the separator");
    };
    let [_, fstype, source, super_options, ..] = tail else {
        return Err("fewer than 3 fields after the separator");
    };
    let (major, minor) = device.split_once(':').ok_or("device is not MAJOR:MINOR")?;
    Ok(MountEntry {
        id: id.parse().map_err(|_| "mount id is not a number")?,
        parent: parent.parse().map_err(|_| "parent id is not a number")?,
        major: major.parse().map_err(|_| "major is not a number")?,
        minor: minor.parse().map_err(|_| "minor is not a number")?,
        mount_point: PathBuf::from(unescape(mount_point)),
        mount_options: split_options(options),
        fstype: (*fstype).to_owned(),
        source: PathBuf::from(unescape(source)),
        super_options: split_options(super_options),
    })
}

fn split_options(field: &str) -> Vec<String> {
    field.split(',').map(str::to_owned).collect()
}

/// Undoes the kernel's `\ooo` escapes; a backslash not followed by three octal digits
/// stays as it is.
pub fn unescape(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal.and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok())
        {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// The device a mount resource is about, as found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceId {
    /// Major number of the block device.
    pub major: u32,
    /// Minor number of the block device.
    pub minor: u32,
    /// Its canonical path (symlinks such as `/dev/drbd/by-res/...` resolved).
    pub path: PathBuf,
}

impl DeviceId {
    /// True when `entry` mounts this device: the same major:minor (ext4, xfs), or the same
    /// source path (btrfs reports an anonymous major:minor instead of the device's).
    pub fn matches(&self, entry: &MountEntry) -> bool {
        (entry.major, entry.minor) == (self.major, self.minor) || entry.source == self.path
    }
}

/// What is mounted at a mountpoint, relative to the resource's device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AtMountpoint {
    /// Nothing is mounted there.
    Nothing,
    /// The device is mounted there and visible (top of the stack).
    Ours(MountEntry),
    /// The device is mounted there but another mount sits on top of it.
    Covered {
        /// The device's mount.
        ours: MountEntry,
        /// The visible mount on top.
        top: MountEntry,
    },
    /// Something else is mounted there and the device is not.
    Other(MountEntry),
}

/// Finds what is mounted at `mountpoint` (canonical, as mountinfo shows it). `device` is
/// `None` when the device does not exist here (then nothing can be ours).
pub fn at_mountpoint(
    entries: &[MountEntry],
    mountpoint: &Path,
    device: Option<&DeviceId>,
) -> AtMountpoint {
    let stack: Vec<&MountEntry> = entries
        .iter()
        .filter(|e| e.mount_point == mountpoint)
        .collect();
    let top = stack
        .iter()
        .rev()
        .find(|e| !stack.iter().any(|above| above.parent == e.id));
    let ours = stack
        .iter()
        .rev()
        .find(|e| device.is_some_and(|device| device.matches(e)));
    match (top, ours) {
        (None, _) => AtMountpoint::Nothing,
        (Some(top), Some(ours)) if top.id == ours.id => AtMountpoint::Ours((*top).clone()),
        (Some(top), Some(ours)) => AtMountpoint::Covered {
            ours: (*ours).clone(),
            top: (*top).clone(),
        },
        (Some(top), None) => AtMountpoint::Other((*top).clone()),
    }
}

/// The mount points of the mounts sitting directly inside `mount` (they keep it busy).
pub fn submounts(entries: &[MountEntry], mount: &MountEntry) -> Vec<PathBuf> {
    entries
        .iter()
        .filter(|e| e.parent == mount.id && e.id != mount.id)
        .map(|e| e.mount_point.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
40 27 7:0 / /srv/ha\\040data rw,noatime shared:20 master:3 - ext4 /dev/loop0 rw
41 40 0:50 / /srv/ha\\040data/run rw - tmpfs tmpfs rw,size=1024k
";

    fn loop0() -> DeviceId {
        DeviceId {
            major: 7,
            minor: 0,
            path: PathBuf::from("/dev/loop0"),
        }
    }

    #[test]
    fn parses_fields_with_and_without_optional_fields() {
        let entries = parse(SAMPLE).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries[2],
            MountEntry {
                id: 40,
                parent: 27,
                major: 7,
                minor: 0,
                mount_point: PathBuf::from("/srv/ha data"),
                mount_options: vec!["rw".into(), "noatime".into()],
                fstype: "ext4".into(),
                source: PathBuf::from("/dev/loop0"),
                super_options: vec!["rw".into()],
            }
        );
        assert_eq!(entries[0].fstype, "proc");
        assert_eq!(entries[1].super_options, ["rw", "errors=remount-ro"]);
    }

    #[test]
    fn unescapes_octal_and_keeps_other_backslashes() {
        assert_eq!(unescape("a\\040b\\011c\\012d\\134e"), "a b\tc\nd\\e");
        assert_eq!(unescape("x\\08y\\"), "x\\08y\\");
        assert_eq!(unescape("\\303\\251"), "é");
    }

    #[test]
    fn a_broken_line_is_named_with_its_number() {
        let error = parse("22 27 0:21 / /proc rw - proc proc rw\n22 27 zero / /x rw - a b rw\n")
            .unwrap_err();
        assert_eq!(error.number, 2);
        assert_eq!(error.reason, "device is not MAJOR:MINOR");
        assert!(
            parse("1 2 0:1 / /x rw proc proc rw").is_err(),
            "no separator"
        );
        assert!(parse("1 2 0:1 / /x rw - proc").is_err(), "short tail");
    }

    #[test]
    fn read_only_shows_in_mount_or_superblock_options() {
        let entries = parse(
            "1 0 7:0 / /a ro - ext4 /dev/loop0 ro\n\
             2 0 7:1 / /b rw - ext4 /dev/loop1 ro,errors=remount-ro\n\
             3 0 7:2 / /c rw - ext4 /dev/loop2 rw\n",
        )
        .unwrap();
        assert!(entries[0].read_only());
        assert!(entries[1].read_only());
        assert!(!entries[2].read_only());
    }

    #[test]
    fn finds_our_device_or_nothing() {
        let entries = parse(SAMPLE).unwrap();
        let found = at_mountpoint(&entries, Path::new("/srv/ha data"), Some(&loop0()));
        assert!(
            matches!(found, AtMountpoint::Ours(ref e) if e.id == 40),
            "{found:?}"
        );
        assert_eq!(
            at_mountpoint(&entries, Path::new("/srv/other"), Some(&loop0())),
            AtMountpoint::Nothing
        );
    }

    #[test]
    fn another_device_or_a_missing_device_is_other() {
        let entries = parse(SAMPLE).unwrap();
        let loop1 = DeviceId {
            major: 7,
            minor: 1,
            path: PathBuf::from("/dev/loop1"),
        };
        let found = at_mountpoint(&entries, Path::new("/srv/ha data"), Some(&loop1));
        assert!(
            matches!(found, AtMountpoint::Other(ref e) if e.id == 40),
            "{found:?}"
        );
        let found = at_mountpoint(&entries, Path::new("/srv/ha data"), None);
        assert!(matches!(found, AtMountpoint::Other(_)), "{found:?}");
    }

    #[test]
    fn matches_by_source_path_when_the_device_number_is_anonymous() {
        let entries = parse("5 1 0:45 / /data rw - btrfs /dev/loop3 rw\n").unwrap();
        let loop3 = DeviceId {
            major: 7,
            minor: 3,
            path: PathBuf::from("/dev/loop3"),
        };
        assert!(matches!(
            at_mountpoint(&entries, Path::new("/data"), Some(&loop3)),
            AtMountpoint::Ours(_)
        ));
    }

    #[test]
    fn a_mount_on_top_of_ours_covers_it_whatever_the_line_order() {
        let entries = parse(
            "9 5 0:60 / /data rw - tmpfs tmpfs rw\n5 1 7:0 / /data rw - ext4 /dev/loop0 rw\n",
        )
        .unwrap();
        let found = at_mountpoint(&entries, Path::new("/data"), Some(&loop0()));
        assert!(
            matches!(found, AtMountpoint::Covered { ref ours, ref top } if ours.id == 5 && top.id == 9),
            "{found:?}"
        );
        let over_other = parse(
            "5 1 0:60 / /data rw - tmpfs tmpfs rw\n9 5 7:0 / /data rw - ext4 /dev/loop0 rw\n",
        )
        .unwrap();
        assert!(matches!(
            at_mountpoint(&over_other, Path::new("/data"), Some(&loop0())),
            AtMountpoint::Ours(ref e) if e.id == 9
        ));
    }

    #[test]
    fn submounts_are_the_direct_children() {
        let entries = parse(SAMPLE).unwrap();
        assert_eq!(
            submounts(&entries, &entries[2]),
            [PathBuf::from("/srv/ha data/run")]
        );
        assert!(submounts(&entries, &entries[3]).is_empty());
    }
}
