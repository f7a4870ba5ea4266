//! The `mount` resource agent: a block device's filesystem mounted at a mountpoint, by
//! `mount(2)`/`umount2(2)` (never by spawning `mount`/`umount`).
//!
//! Settings ([`MountSettings`]; defaults in [`MountSettings::new`]):
//! - `device` (required): the block device, e.g. `/dev/drbd0` (symlinks are resolved).
//! - `mountpoint` (required): an existing directory.
//! - `fstype` (required): e.g. `ext4`.
//! - `options` (default none): one word per option, see [`options`] (`noatime`, `ro`,
//!   `nodev`, `errors=remount-ro`, ...).
//! - `fsck` (default false): run `fsck -p -T DEVICE` before mounting.
//! - `allow_non_empty` (default false): mount over a mountpoint that holds files.
//! - `fsck_command` (default `fsck`, looked up in `PATH`).
//!
//! Behaviour:
//! - The resource is "running" when the device (same major:minor, or same source path)
//!   is the visible mount at the mountpoint in `/proc/self/mountinfo` ([`mountinfo`]).
//! - `start`: running -> nothing (but an error when it is read-only and `rw` was asked);
//!   something else mounted there (or on top of the device) -> error; mountpoint not empty
//!   and not `allow_non_empty` -> refused; else optional fsck, then mount.
//! - `stop`: not mounted -> nothing; otherwise a plain unmount. Never `MNT_DETACH`, never
//!   lazy: when the filesystem is busy the stop fails with every process holding it
//!   ([`holders`]) and the mounts inside it, and the filesystem stays mounted.
//!   Something else mounted at the mountpoint is not ours and is left alone.
//! - `monitor`: device mounted there -> Running; nothing there -> Stopped; mounted
//!   read-only when `rw` was asked, covered, or another filesystem there -> Failed.
//! - `validate` checks the settings only: the device and mountpoint may live on other
//!   resources (DRBD, a parent mount) that are not started yet.
//!
//! Invariant: every syscall sequence of one agent (read mountinfo, decide, mount or
//! unmount) runs on a blocking thread holding the agent's lock. A call the engine cancels
//! cannot interrupt a `mount(2)` in flight, so the next call waits for it to finish and
//! then sees its result, instead of racing it.

pub mod holders;
pub mod mountinfo;
pub mod options;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use nix::errno::Errno;
use nix::mount::{MntFlags, mount, umount2};
use nix::sys::stat::{major, minor};

use self::holders::Holder;
use self::mountinfo::{AtMountpoint, DeviceId, MountEntry};
use self::options::{MountOptions, OptionError, parse_options};
use super::command::{Invocation, SpawnError};
use super::{Agent, AgentError, Health};

/// Settings of one `mount` resource.
#[derive(Clone, Debug, PartialEq)]
pub struct MountSettings {
    /// The block device holding the filesystem (absolute path).
    pub device: PathBuf,
    /// Where to mount it (absolute path of an existing directory).
    pub mountpoint: PathBuf,
    /// The filesystem type, as `mount(2)` takes it (e.g. `ext4`).
    pub fstype: String,
    /// Mount options, one word each; flag words become `mount(2)` flags, the rest is the
    /// filesystem's data string.
    pub options: Vec<String>,
    /// Run `fsck -p -T DEVICE` before mounting; exit 0 or 1 lets the mount go on.
    pub fsck: bool,
    /// Mount even when the mountpoint directory holds files (they are hidden meanwhile).
    pub allow_non_empty: bool,
    /// The fsck program (absolute, or looked up in `PATH`).
    pub fsck_command: PathBuf,
}

impl MountSettings {
    /// The default fsck program.
    pub const DEFAULT_FSCK_COMMAND: &str = "fsck";

    /// Settings with the defaults: no options, no fsck, empty mountpoint required.
    pub fn new(device: impl Into<PathBuf>, mountpoint: impl Into<PathBuf>, fstype: &str) -> Self {
        MountSettings {
            device: device.into(),
            mountpoint: mountpoint.into(),
            fstype: fstype.to_owned(),
            options: Vec::new(),
            fsck: false,
            allow_non_empty: false,
            fsck_command: PathBuf::from(Self::DEFAULT_FSCK_COMMAND),
        }
    }
}

/// Why a mount operation failed. Each message names the device and the mountpoint.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The options cannot be given to `mount(2)`.
    #[error("mount {device} on {mountpoint}: {source}")]
    Options {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// The refused word.
        #[source]
        source: OptionError,
    },
    /// The device is missing or not a block device.
    #[error("mount {device} on {mountpoint}: device: {reason}")]
    Device {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The mountpoint is missing or not a directory.
    #[error("mount {device} on {mountpoint}: mountpoint: {reason}")]
    Mountpoint {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The mountpoint holds files and `allow_non_empty` is off.
    #[error(
        "mount {device} on {mountpoint}: refused, the mountpoint is not empty \
         (first entry {first_entry:?}; set allow_non_empty to mount over it)"
    )]
    NotEmpty {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// One of the entries found.
        first_entry: OsString,
    },
    /// Another filesystem is mounted at the mountpoint (on top of ours, or instead).
    #[error("mount {device} on {mountpoint}: {what} is mounted there")]
    Occupied {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// The other mount, e.g. `tmpfs (tmpfs)`.
        what: String,
    },
    /// The device is mounted read-only but read-write was asked.
    #[error(
        "mount {device} on {mountpoint}: mounted read-only although rw was asked \
         (remounted after a filesystem error?)"
    )]
    ReadOnly {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
    },
    /// fsck could not run.
    #[error("mount {device} on {mountpoint}: fsck: {source}")]
    FsckSpawn {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// Why.
        #[source]
        source: SpawnError,
    },
    /// fsck found errors it did not fix, or asks for a reboot; nothing was mounted.
    #[error("mount {device} on {mountpoint}: `{command}` {verdict}: {output}")]
    Fsck {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// The command line.
        command: String,
        /// What the exit code means.
        verdict: FsckVerdict,
        /// Its stdout and stderr.
        output: String,
    },
    /// `mount(2)` failed.
    #[error("mount {device} on {mountpoint} (type {fstype}, data {data:?}): {errno}")]
    Mount {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// The filesystem type.
        fstype: String,
        /// The data string.
        data: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The filesystem is busy; it stays mounted.
    #[error("unmount {device} from {mountpoint}: busy, not unmounted; {}", busy_text(.holders, .submounts))]
    Busy {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// The processes holding it.
        holders: Vec<Holder>,
        /// Mounts inside it.
        submounts: Vec<PathBuf>,
    },
    /// `umount2(2)` failed for another reason.
    #[error("unmount {device} from {mountpoint}: {errno}")]
    Unmount {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// `/proc/self/mountinfo` could not be read or parsed.
    #[error("mount {device} on {mountpoint}: reading /proc/self/mountinfo: {reason}")]
    MountInfo {
        /// The device.
        device: String,
        /// The mountpoint.
        mountpoint: String,
        /// Why.
        reason: String,
    },
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

impl std::fmt::Display for FsckVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// The `mount` agent.
#[derive(Debug)]
pub struct MountAgent {
    settings: Arc<MountSettings>,
    /// Held by the blocking thread for each syscall sequence (see the module docs).
    serial: Arc<Mutex<()>>,
}

impl MountAgent {
    /// An agent for these settings; nothing is checked before [`Agent::validate`].
    pub fn new(settings: MountSettings) -> Self {
        MountAgent {
            settings: Arc::new(settings),
            serial: Arc::new(Mutex::new(())),
        }
    }

    /// Runs `work` on a blocking thread holding the agent's lock; the work finishes even
    /// when the returned future is dropped.
    async fn serialized<T: Send + 'static>(
        &self,
        work: impl FnOnce(&MountSettings) -> T + Send + 'static,
    ) -> Result<T, AgentError> {
        let settings = Arc::clone(&self.settings);
        let serial = Arc::clone(&self.serial);
        tokio::task::spawn_blocking(move || {
            let _held = serial.lock().unwrap_or_else(PoisonError::into_inner);
            work(&settings)
        })
        .await
        .map_err(|error| AgentError::message(format!("mount agent thread failed: {error}")))
    }

    async fn fsck(&self) -> Result<(), MountError> {
        let settings = &self.settings;
        let invocation = Invocation::new(
            &settings.fsck_command,
            [
                OsString::from("-p"),
                "-T".into(),
                settings.device.clone().into(),
            ],
        );
        let outcome = invocation
            .run()
            .await
            .map_err(|source| MountError::FsckSpawn {
                device: settings.device.display().to_string(),
                mountpoint: settings.mountpoint.display().to_string(),
                source,
            })?;
        match FsckVerdict::from_code(outcome.code) {
            FsckVerdict::Clean => Ok(()),
            verdict => Err(MountError::Fsck {
                device: settings.device.display().to_string(),
                mountpoint: settings.mountpoint.display().to_string(),
                command: invocation.to_string(),
                verdict,
                output: format!("{}{}", outcome.stdout, outcome.stderr)
                    .trim()
                    .to_owned(),
            }),
        }
    }
}

impl Agent for MountAgent {
    fn kind(&self) -> &'static str {
        "mount"
    }

    fn validate(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move {
            check_settings(&self.settings).map_err(AgentError::Invalid)?;
            if self.settings.fsck {
                which::which(&self.settings.fsck_command).map_err(|error| {
                    AgentError::Invalid(format!(
                        "fsck_command {}: {error}",
                        self.settings.fsck_command.display()
                    ))
                })?;
            }
            Ok(())
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move {
            if self.settings.fsck {
                match self
                    .serialized(prepare)
                    .await?
                    .map_err(AgentError::failed)?
                {
                    Readiness::Mounted => return Ok(()),
                    Readiness::Free => self.fsck().await.map_err(AgentError::failed)?,
                }
            }
            self.serialized(mount_if_needed)
                .await?
                .map_err(AgentError::failed)
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move {
            self.serialized(unmount_if_mounted)
                .await?
                .map_err(AgentError::failed)
        })
    }

    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
        Box::pin(async move {
            let found = self
                .serialized(observe)
                .await?
                .map_err(AgentError::failed)?;
            Ok(health(&found, &self.settings))
        })
    }
}

/// Checks what `validate` can check without the device or the mountpoint existing.
fn check_settings(settings: &MountSettings) -> Result<(), String> {
    if !settings.device.is_absolute() {
        return Err(format!(
            "device {} is not an absolute path",
            settings.device.display()
        ));
    }
    if !settings.mountpoint.is_absolute() {
        return Err(format!(
            "mountpoint {} is not an absolute path",
            settings.mountpoint.display()
        ));
    }
    if settings.fstype.is_empty() {
        return Err("fstype is empty".to_owned());
    }
    parse_options(&settings.options).map_err(|error| error.to_string())?;
    Ok(())
}

/// The resource's health from what is at the mountpoint. Pure.
fn health(found: &AtMountpoint, settings: &MountSettings) -> Health {
    let wants_rw = parse_options(&settings.options).is_ok_and(|o| !o.read_only());
    match found {
        AtMountpoint::Nothing => Health::Stopped,
        AtMountpoint::Ours(entry) if wants_rw && entry.read_only() => Health::Failed(format!(
            "{} is mounted read-only on {} although rw was asked",
            settings.device.display(),
            settings.mountpoint.display()
        )),
        AtMountpoint::Ours(_) => Health::Running,
        AtMountpoint::Covered { top, .. } => Health::Failed(format!(
            "{} is mounted on {} but covered by {}",
            settings.device.display(),
            settings.mountpoint.display(),
            describe(top)
        )),
        AtMountpoint::Other(entry) => Health::Failed(format!(
            "{} is mounted on {} instead of {}",
            describe(entry),
            settings.mountpoint.display(),
            settings.device.display()
        )),
    }
}

fn describe(entry: &MountEntry) -> String {
    format!("{} ({})", entry.source.display(), entry.fstype)
}

/// Where the mount stands, read from the machine (blocking).
struct Observed {
    found: AtMountpoint,
    /// The mountpoint as mountinfo spells it (symlinks resolved when it exists).
    mountpoint: PathBuf,
    entries: Vec<MountEntry>,
}

fn observe(settings: &MountSettings) -> Result<AtMountpoint, MountError> {
    observe_all(settings).map(|observed| observed.found)
}

fn observe_all(settings: &MountSettings) -> Result<Observed, MountError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|error| err_mountinfo(settings, error.to_string()))?;
    let entries =
        mountinfo::parse(&text).map_err(|error| err_mountinfo(settings, error.to_string()))?;
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

fn err_mountinfo(settings: &MountSettings, reason: String) -> MountError {
    MountError::MountInfo {
        device: settings.device.display().to_string(),
        mountpoint: settings.mountpoint.display().to_string(),
        reason,
    }
}

/// The device's number and canonical path; an error unless it is a block device.
fn device_id(device: &Path) -> Result<DeviceId, String> {
    let path = std::fs::canonicalize(device).map_err(|error| error.to_string())?;
    let metadata = std::fs::metadata(&path).map_err(|error| error.to_string())?;
    if !metadata.file_type().is_block_device() {
        return Err(format!("{} is not a block device", path.display()));
    }
    let rdev = std::os::unix::fs::MetadataExt::rdev(&metadata);
    let (Ok(major), Ok(minor)) = (u32::try_from(major(rdev)), u32::try_from(minor(rdev))) else {
        return Err(format!(
            "{} has a device number out of range",
            path.display()
        ));
    };
    Ok(DeviceId { major, minor, path })
}

/// What `start` found before mounting.
enum Readiness {
    /// The device is already mounted there as asked: nothing to do.
    Mounted,
    /// Nothing is mounted there and the mountpoint may take the mount.
    Free,
}

/// Checks whether a mount may happen (blocking).
fn prepare(settings: &MountSettings) -> Result<Readiness, MountError> {
    let wants_rw = !options_of(settings)?.read_only();
    let device = settings.device.display().to_string();
    let mountpoint = settings.mountpoint.display().to_string();
    device_id(&settings.device).map_err(|reason| MountError::Device {
        device: device.clone(),
        mountpoint: mountpoint.clone(),
        reason,
    })?;
    match observe(settings)? {
        AtMountpoint::Ours(entry) if wants_rw && entry.read_only() => {
            Err(MountError::ReadOnly { device, mountpoint })
        }
        AtMountpoint::Ours(_) => Ok(Readiness::Mounted),
        AtMountpoint::Covered { top: other, .. } | AtMountpoint::Other(other) => {
            Err(MountError::Occupied {
                device,
                mountpoint,
                what: describe(&other),
            })
        }
        AtMountpoint::Nothing => {
            check_mountpoint(settings)?;
            Ok(Readiness::Free)
        }
    }
}

/// The mountpoint must be a directory, and empty unless `allow_non_empty`.
fn check_mountpoint(settings: &MountSettings) -> Result<(), MountError> {
    let device = settings.device.display().to_string();
    let mountpoint = settings.mountpoint.display().to_string();
    let entries =
        std::fs::read_dir(&settings.mountpoint).map_err(|error| MountError::Mountpoint {
            device: device.clone(),
            mountpoint: mountpoint.clone(),
            reason: error.to_string(),
        })?;
    if settings.allow_non_empty {
        return Ok(());
    }
    match entries.into_iter().next() {
        None => Ok(()),
        Some(Ok(entry)) => Err(MountError::NotEmpty {
            device,
            mountpoint,
            first_entry: entry.file_name(),
        }),
        Some(Err(error)) => Err(MountError::Mountpoint {
            device,
            mountpoint,
            reason: error.to_string(),
        }),
    }
}

fn options_of(settings: &MountSettings) -> Result<MountOptions, MountError> {
    parse_options(&settings.options).map_err(|source| MountError::Options {
        device: settings.device.display().to_string(),
        mountpoint: settings.mountpoint.display().to_string(),
        source,
    })
}

/// Mounts unless already mounted as asked (blocking).
fn mount_if_needed(settings: &MountSettings) -> Result<(), MountError> {
    if let Readiness::Mounted = prepare(settings)? {
        return Ok(());
    }
    let options = options_of(settings)?;
    let data = (!options.data.is_empty()).then_some(options.data.as_str());
    mount(
        Some(settings.device.as_path()),
        settings.mountpoint.as_path(),
        Some(settings.fstype.as_str()),
        options.flags,
        data,
    )
    .map_err(|errno| MountError::Mount {
        device: settings.device.display().to_string(),
        mountpoint: settings.mountpoint.display().to_string(),
        fstype: settings.fstype.clone(),
        data: options.data.clone(),
        errno,
    })
}

/// Unmounts the device from the mountpoint when it is mounted there (blocking).
fn unmount_if_mounted(settings: &MountSettings) -> Result<(), MountError> {
    let observed = observe_all(settings)?;
    let device = settings.device.display().to_string();
    let mountpoint = settings.mountpoint.display().to_string();
    let ours = match observed.found {
        AtMountpoint::Nothing => return Ok(()),
        AtMountpoint::Other(other) => {
            tracing::warn!(%device, %mountpoint, other = %describe(&other),
                "stop: the device is not mounted; another filesystem is, left alone");
            return Ok(());
        }
        AtMountpoint::Covered { top, .. } => {
            return Err(MountError::Occupied {
                device,
                mountpoint,
                what: describe(&top),
            });
        }
        AtMountpoint::Ours(entry) => entry,
    };
    match umount2(observed.mountpoint.as_path(), MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => Err(MountError::Busy {
            holders: holders::holders_of(ours.major, ours.minor),
            submounts: mountinfo::submounts(&observed.entries, &ours),
            device,
            mountpoint,
        }),
        Err(errno) => Err(MountError::Unmount {
            device,
            mountpoint,
            errno,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MountSettings {
        MountSettings::new("/dev/loop0", "/srv/ha", "ext4")
    }

    fn entry(super_options: &str) -> MountEntry {
        MountEntry {
            id: 40,
            parent: 1,
            major: 7,
            minor: 0,
            mount_point: "/srv/ha".into(),
            mount_options: vec!["rw".into()],
            fstype: "ext4".into(),
            source: "/dev/loop0".into(),
            super_options: super_options.split(',').map(str::to_owned).collect(),
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
    fn health_follows_what_is_mounted() {
        let s = settings();
        assert_eq!(health(&AtMountpoint::Nothing, &s), Health::Stopped);
        assert_eq!(
            health(&AtMountpoint::Ours(entry("rw")), &s),
            Health::Running
        );
        let Health::Failed(why) = health(&AtMountpoint::Ours(entry("ro")), &s) else {
            panic!("read-only when rw was asked must be a failure");
        };
        assert!(why.contains("read-only"), "{why}");
        let mut other = entry("rw");
        other.source = "tmpfs".into();
        other.fstype = "tmpfs".into();
        let Health::Failed(why) = health(&AtMountpoint::Other(other.clone()), &s) else {
            panic!("another filesystem must be a failure");
        };
        assert!(
            why.contains("tmpfs (tmpfs)") && why.contains("/dev/loop0"),
            "{why}"
        );
        let covered = AtMountpoint::Covered {
            ours: entry("rw"),
            top: other,
        };
        assert!(matches!(health(&covered, &s), Health::Failed(why) if why.contains("covered")));
    }

    #[test]
    fn read_only_is_healthy_when_asked() {
        let mut s = settings();
        s.options = vec!["ro".into()];
        assert_eq!(
            health(&AtMountpoint::Ours(entry("ro")), &s),
            Health::Running
        );
    }

    #[test]
    fn settings_checks_name_the_setting() {
        assert_eq!(check_settings(&settings()), Ok(()));
        let mut s = settings();
        s.device = "loop0".into();
        assert!(check_settings(&s).unwrap_err().contains("device loop0"));
        let mut s = settings();
        s.mountpoint = "srv".into();
        assert!(check_settings(&s).unwrap_err().contains("mountpoint srv"));
        let mut s = settings();
        s.fstype.clear();
        assert!(check_settings(&s).unwrap_err().contains("fstype"));
        let mut s = settings();
        s.options = vec!["nofail".into()];
        assert!(check_settings(&s).unwrap_err().contains("nofail"));
    }

    #[test]
    fn a_busy_error_lists_holders_and_submounts() {
        let error = MountError::Busy {
            device: "/dev/loop0".into(),
            mountpoint: "/srv/ha".into(),
            holders: vec![Holder {
                pid: 77,
                command: "sleep".into(),
                holds: vec![holders::Hold::Cwd],
            }],
            submounts: vec!["/srv/ha/run".into()],
        };
        assert_eq!(
            error.to_string(),
            "unmount /dev/loop0 from /srv/ha: busy, not unmounted; held by pid 77 (sleep): cwd; \
             mounts inside it: /srv/ha/run"
        );
    }

    #[test]
    fn a_busy_error_without_holders_says_so() {
        let error = MountError::Busy {
            device: "/dev/loop0".into(),
            mountpoint: "/srv/ha".into(),
            holders: Vec::new(),
            submounts: Vec::new(),
        };
        assert!(
            error
                .to_string()
                .contains("no process holds it (a kernel user"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn validate_refuses_a_missing_fsck_program() {
        let mut s = settings();
        s.fsck = true;
        s.fsck_command = "/nonexistent/ha-fsck".into();
        let error = MountAgent::new(s).validate().await.unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/ha-fsck"),
            "{error}"
        );
    }
}
