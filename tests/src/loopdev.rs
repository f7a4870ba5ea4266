//! Loop devices backed by image files, detached on drop, and mounts unmounted on drop.
//!
//! Drop order matters: declare the [`LoopDevice`] first and the [`MountGuard`] after it
//! (locals drop in reverse), so the filesystem is unmounted before its device goes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

use crate::daemon::TempDir;
use crate::run;

/// A sparse image file in a temporary directory, attached to a free loop device and
/// formatted ext4. On drop the device is detached and the directory removed.
pub struct LoopDevice {
    device: PathBuf,
    // Dropped after `drop` detached the device: the image file goes with it.
    dir: TempDir,
}

impl LoopDevice {
    /// A `size_mib` MiB ext4 filesystem on a new loop device; `tag` names the directory.
    pub fn ext4(tag: &str, size_mib: u64) -> Self {
        let dir = TempDir::new(tag);
        let image = dir.path().join("image");
        File::create(&image)
            .and_then(|file| file.set_len(size_mib * 1024 * 1024))
            .expect("create the sparse image file");
        let image = image.to_str().expect("temp paths are UTF-8");
        let device = PathBuf::from(run("losetup", &["--find", "--show", image]).trim());
        let loop_device = Self { device, dir };
        run("mkfs.ext4", &["-q", loop_device.device_str()]);
        loop_device
    }

    /// The device, e.g. `/dev/loop3`.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// The device as text, for command lines.
    pub fn device_str(&self) -> &str {
        self.device.to_str().expect("loop device paths are UTF-8")
    }

    /// The temporary directory holding the image; tests put their mountpoints here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl std::fmt::Debug for LoopDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopDevice")
            .field("device", &self.device)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // Not `run`: a panic while unwinding would abort and hide the test's own failure.
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.device)
            .status();
    }
}

/// Unmounts everything mounted at a path when dropped (a plain unmount, retried a few
/// times while busy; never lazy), so a failing test leaves no mount behind.
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
}

impl MountGuard {
    /// Guards `target`; whatever is mounted there when the guard drops is unmounted.
    pub fn new(target: impl Into<PathBuf>) -> Self {
        Self {
            target: target.into(),
        }
    }

    /// The guarded path.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        for _ in 0..20 {
            match umount2(&self.target, MntFlags::empty()) {
                Ok(()) => {}
                Err(Errno::EBUSY) => std::thread::sleep(Duration::from_millis(100)),
                Err(_) => return,
            }
        }
        eprintln!("MountGuard: {} is still mounted", self.target.display());
    }
}
