//! The blocking I/O of the `mount` agent: read mountinfo, decide with the pure modules,
//! and call `mount(2)` / `umount2(2)`. Every function here runs on a blocking thread
//! holding the agent's lock (see the module docs of [`crate::resource::mount`]).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, mount, umount2};
use nix::sys::stat::{major, minor};

use super::error::Cause;
use super::mountinfo::{self, AtMountpoint, DeviceId, MountEntry};
use super::options::{MountOptions, parse_options};
use super::{MountSettings, holders};

/// What is at the mountpoint now, with what `stop` needs to unmount it.
pub(super) struct Observed {
    /// What is mounted there, relative to the device.
    pub(super) found: AtMountpoint,
    /// The mountpoint as mountinfo spells it (symlinks resolved when it exists).
    mountpoint: PathBuf,
    entries: Vec<MountEntry>,
}

/// Reads `/proc/self/mountinfo` and finds what is at the mountpoint. A device that does
/// not exist here matches nothing (a stopped DRBD resource has no device yet).
pub(super) fn observe(settings: &MountSettings) -> Result<Observed, Cause> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|error| Cause::MountInfo(error.to_string()))?;
    let entries = mountinfo::parse(&text).map_err(|error| Cause::MountInfo(error.to_string()))?;
    let mountpoint =
        std::fs::canonicalize(&settings.mountpoint).unwrap_or_else(|_| settings.mountpoint.clone());
    let device = device_id(&settings.device).ok();
    let found = mountinfo::at_mountpoint(&entries, &mountpoint, device.as_ref());
    Ok(Observed {
        found,
        mountpoint,
        entries,
    })
}

/// The device's number and canonical path; an error unless it is a block device.
fn device_id(device: &Path) -> Result<DeviceId, String> {
    let path = std::fs::canonicalize(device).map_err(|error| error.to_string())?;
    let metadata = std::fs::metadata(&path).map_err(|error| error.to_string())?;
    if !metadata.file_type().is_block_device() {
        return Err(format!("{} is not a block device", path.display()));
    }
    let rdev = metadata.rdev();
    let (Ok(major), Ok(minor)) = (u32::try_from(major(rdev)), u32::try_from(minor(rdev))) else {
        return Err(format!(
            "{} has a device number out of range",
            path.display()
        ));
    };
    Ok(DeviceId { major, minor, path })
}

/// What `start` found before mounting.
pub(super) enum Readiness {
    /// The device is already mounted there as asked: nothing to do.
    Mounted,
    /// Nothing is mounted there and the mountpoint may take the mount.
    Free,
}

/// Checks whether the mount may happen, changing nothing.
pub(super) fn prepare(settings: &MountSettings) -> Result<Readiness, Cause> {
    let wants_rw = !options(settings)?.read_only();
    device_id(&settings.device).map_err(Cause::Device)?;
    match observe(settings)?.found {
        AtMountpoint::Ours(entry) if wants_rw && entry.read_only() => Err(Cause::ReadOnly),
        AtMountpoint::Ours(_) => Ok(Readiness::Mounted),
        AtMountpoint::Covered { top: other, .. } | AtMountpoint::Other(other) => {
            Err(Cause::Occupied(describe(&other)))
        }
        AtMountpoint::Nothing => {
            check_mountpoint(settings)?;
            Ok(Readiness::Free)
        }
    }
}

/// The mountpoint must be a readable directory, and empty unless `allow_non_empty`.
fn check_mountpoint(settings: &MountSettings) -> Result<(), Cause> {
    let mut entries = std::fs::read_dir(&settings.mountpoint)
        .map_err(|error| Cause::Mountpoint(error.to_string()))?;
    if settings.allow_non_empty {
        return Ok(());
    }
    match entries.next() {
        None => Ok(()),
        Some(Ok(entry)) => Err(Cause::NotEmpty {
            first_entry: entry.file_name(),
        }),
        Some(Err(error)) => Err(Cause::Mountpoint(error.to_string())),
    }
}

fn options(settings: &MountSettings) -> Result<MountOptions, Cause> {
    parse_options(&settings.options).map_err(Cause::Options)
}

/// Mounts unless already mounted as asked.
pub(super) fn mount_if_needed(settings: &MountSettings) -> Result<(), Cause> {
    if let Readiness::Mounted = prepare(settings)? {
        return Ok(());
    }
    let options = options(settings)?;
    let data = (!options.data.is_empty()).then_some(options.data.as_str());
    mount(
        Some(settings.device.as_path()),
        settings.mountpoint.as_path(),
        Some(settings.fstype.as_str()),
        options.flags,
        data,
    )
    .map_err(|errno| Cause::Mount {
        fstype: settings.fstype.clone(),
        data: options.data.clone(),
        errno,
    })
}

/// Unmounts the device from the mountpoint when it is mounted there; a plain unmount,
/// never detached. Busy: fails with the holders and the mounts inside.
pub(super) fn unmount_if_mounted(settings: &MountSettings) -> Result<(), Cause> {
    let observed = observe(settings)?;
    let ours = match observed.found {
        AtMountpoint::Nothing => return Ok(()),
        AtMountpoint::Other(other) => {
            tracing::warn!(
                device = %settings.device.display(),
                mountpoint = %settings.mountpoint.display(),
                other = %describe(&other),
                "stop: the device is not mounted there; another filesystem is, left alone"
            );
            return Ok(());
        }
        AtMountpoint::Covered { top, .. } => return Err(Cause::Covered(describe(&top))),
        AtMountpoint::Ours(entry) => entry,
    };
    match umount2(observed.mountpoint.as_path(), MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => Err(Cause::Busy {
            holders: holders::holders_of(ours.major, ours.minor),
            submounts: mountinfo::submounts(&observed.entries, &ours),
        }),
        Err(errno) => Err(Cause::Unmount(errno)),
    }
}

/// `SOURCE (FSTYPE)`, for messages.
pub(super) fn describe(entry: &MountEntry) -> String {
    format!("{} ({})", entry.source.display(), entry.fstype)
}
