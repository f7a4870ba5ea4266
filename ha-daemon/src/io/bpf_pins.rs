//! The bpffs directory where the kernel side is pinned, so that it outlives the daemon.
//!
//! Layout: `map-<NAME>` for every map and `xdp-<interface>` / `tc-<interface>` for the
//! attachments. While pinned, the XDP program keeps counting and reflecting echoes
//! after a crash of the daemon (whose DRBD, mounts and containers may still run: the
//! peer must see that this kernel lives), and a restarted daemon adopts the maps
//! (counters continue) and the attachments (replaced in place, no detach gap). A clean
//! shutdown or `ha-daemon cleanup` removes the directory, which detaches everything.

use std::{
    io,
    path::{Path, PathBuf},
};

use nix::sys::statfs::{BPF_FS_MAGIC, statfs};

/// A pin directory on a bpffs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    dir: PathBuf,
}

/// Why a pin directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PinDirError {
    /// Creating or reading it failed.
    #[error("pin directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// It is not on a bpffs.
    #[error("pin directory {dir} is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)")]
    NotBpffs {
        /// The directory.
        dir: PathBuf,
    },
}

impl PinDir {
    /// Creates `dir` if needed and checks that it is on a bpffs.
    pub fn prepare(dir: &Path) -> Result<Self, PinDirError> {
        let io_error = |source| PinDirError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_error)?;
        let fs = statfs(dir).map_err(|errno| io_error(errno.into()))?;
        if fs.filesystem_type() != BPF_FS_MAGIC {
            return Err(PinDirError::NotBpffs {
                dir: dir.to_owned(),
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Pin path of map `name`.
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(format!("map-{name}"))
    }

    /// Pin path of attachment `kind` ("xdp" or "tc") on `interface`.
    pub fn link(&self, kind: &str, interface: &str) -> PathBuf {
        self.dir.join(format!("{kind}-{interface}"))
    }

    /// Removes pinned attachments on interfaces not in `interfaces` (a link removed from
    /// the configuration): unpinning detaches them.
    pub fn remove_stale_links(&self, interfaces: &[&str]) -> Result<(), PinDirError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| PinDirError::Io {
            dir: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let interface = name
                .strip_prefix("xdp-")
                .or_else(|| name.strip_prefix("tc-"));
            if interface.is_some_and(|interface| !interfaces.contains(&interface)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Removes the pin directory and everything in it, which detaches pinned programs
/// whose daemon is gone. Missing is fine.
pub fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
