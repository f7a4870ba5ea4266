//! A mount namespace of its own for a lab node, kept alive by a bind mount of its nsfs
//! file (as `ip netns` keeps network namespaces), released on drop.
//!
//! Two nodes on one machine share the host's mounts; real nodes do not. With one mount
//! namespace each, both nodes mount their DRBD filesystem at the same path, as two hosts
//! would, and neither sees the other's mounts. The namespace starts as a private copy of
//! the host's mounts at creation time (so every `/run/netns` entry made before it is
//! there); nothing propagates in either direction afterwards.
//!
//! Dropping it unmounts the nsfs file: once no process is left inside, the kernel frees
//! the namespace with every mount in it (its filesystems let go of their devices).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// A persistent mount namespace, named by its nsfs file.
#[derive(Debug)]
pub struct MountNs {
    file: PathBuf,
}

impl MountNs {
    /// Creates the namespace, pinned at `file` (created; its directory must exist and
    /// must not be a shared mount).
    pub fn new(file: &Path) -> Self {
        std::fs::write(file, b"").expect("create the mount namespace file");
        let path = file.to_str().expect("utf-8 path");
        run(
            "unshare",
            &[
                &format!("--mount={path}"),
                "--propagation",
                "private",
                "true",
            ],
        );
        Self {
            file: file.to_owned(),
        }
    }

    /// The nsfs file (for `nsenter --mount=FILE`).
    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.file).status();
        let _ = std::fs::remove_file(&self.file);
    }
}
