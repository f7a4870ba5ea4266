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
//! Errors are [`MountError`]: the device, the mountpoint and a [`Cause`] to match on
//! (e.g. [`Cause::Busy`] with the holders).
//!
//! Modules: [`options`], [`mountinfo`] and [`error`] are pure; [`holders`] scans `/proc`;
//! `host` is the blocking syscall layer.
//!
//! Invariant: every syscall sequence of one agent (read mountinfo, decide, mount or
//! unmount) runs on a blocking thread holding the agent's lock. A call the engine cancels
//! cannot interrupt a `mount(2)` in flight, so the next call waits for it to finish and
//! then sees its result, instead of racing it.

pub mod error;
pub mod holders;
mod host;
pub mod mountinfo;
pub mod options;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;

pub use self::error::{Cause, FsckVerdict, MountError};
use self::host::Readiness;
use self::mountinfo::AtMountpoint;
use self::options::parse_options;
use super::command::Invocation;
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

    fn error(&self, cause: Cause) -> AgentError {
        AgentError::failed(MountError {
            device: self.settings.device.clone(),
            mountpoint: self.settings.mountpoint.clone(),
            cause,
        })
    }

    /// Runs `work` on a blocking thread holding the agent's lock; the work finishes even
    /// when the returned future is dropped.
    async fn serialized<T: Send + 'static>(
        &self,
        work: impl FnOnce(&MountSettings) -> Result<T, Cause> + Send + 'static,
    ) -> Result<T, AgentError> {
        let settings = Arc::clone(&self.settings);
        let serial = Arc::clone(&self.serial);
        tokio::task::spawn_blocking(move || {
            let _held = serial.lock().unwrap_or_else(PoisonError::into_inner);
            work(&settings)
        })
        .await
        .map_err(|error| AgentError::message(format!("mount agent thread failed: {error}")))?
        .map_err(|cause| self.error(cause))
    }

    /// `fsck -p -T DEVICE`; Ok when it exits 0 or 1.
    async fn fsck(&self) -> Result<(), Cause> {
        let invocation = Invocation::new(
            &self.settings.fsck_command,
            [
                OsString::from("-p"),
                "-T".into(),
                self.settings.device.clone().into(),
            ],
        );
        let outcome = invocation.run().await.map_err(Cause::FsckSpawn)?;
        match FsckVerdict::from_code(outcome.code) {
            FsckVerdict::Clean => Ok(()),
            verdict => Err(Cause::Fsck {
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
                match self.serialized(host::prepare).await? {
                    Readiness::Mounted => return Ok(()),
                    Readiness::Free => self.fsck().await.map_err(|cause| self.error(cause))?,
                }
            }
            self.serialized(host::mount_if_needed).await
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), AgentError>> {
        Box::pin(async move { self.serialized(host::unmount_if_mounted).await })
    }

    fn monitor(&self) -> BoxFuture<'_, Result<Health, AgentError>> {
        Box::pin(async move {
            let observed = self.serialized(host::observe).await?;
            Ok(health(&observed.found, &self.settings))
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
    let (device, mountpoint) = (settings.device.display(), settings.mountpoint.display());
    match found {
        AtMountpoint::Nothing => Health::Stopped,
        AtMountpoint::Ours(entry) if wants_rw && entry.read_only() => Health::Failed(format!(
            "{device} is mounted read-only on {mountpoint} although rw was asked"
        )),
        AtMountpoint::Ours(_) => Health::Running,
        AtMountpoint::Covered { top, .. } => Health::Failed(format!(
            "{device} is mounted on {mountpoint} but covered by {}",
            host::describe(top)
        )),
        AtMountpoint::Other(entry) => Health::Failed(format!(
            "{} is mounted on {mountpoint} instead of {device}",
            host::describe(entry)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::mountinfo::MountEntry;
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
