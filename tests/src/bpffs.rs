//! A private bpffs mount for pinning tests: visible inside `ip netns exec` (mounted
//! before the daemons start), unmounted on drop, so no pinned object outlives the test.

use std::path::{Path, PathBuf};

use crate::run;

/// A bpf filesystem mounted under /run for one test.
#[derive(Debug)]
pub struct BpfFs {
    dir: PathBuf,
}

impl BpfFs {
    /// Mounts a fresh bpffs at `/run/hat-bpf-<pid>-<tag>`.
    pub fn mount(tag: &str) -> Self {
        let dir = PathBuf::from(format!("/run/hat-bpf-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create bpffs mount point");
        run(
            "mount",
            &["-t", "bpf", "bpf", dir.to_str().expect("utf-8 path")],
        );
        Self { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        // Unmounting drops every pin inside, which detaches whatever they held.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
