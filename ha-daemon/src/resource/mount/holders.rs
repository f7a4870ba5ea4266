//! Which processes keep a filesystem busy, found by scanning `/proc`.
//!
//! A process holds a filesystem when its working directory, root directory or executable,
//! one of its open files, or one of its mapped files lives on it. "Lives on it" is decided
//! by device number, not by path: `stat` through `/proc/PID/{cwd,root,exe,fd/N}` follows
//! the kernel's own link to the file (so chroots, bind mounts and deleted files are
//! judged right), and `/proc/PID/maps` names each mapping's device. Processes come and go
//! while we scan; one that vanishes or that we may not inspect is skipped.
//!
//! A process that holds the same device through another mount of it is listed too (it
//! would not block this mount's unmount); a kernel user (a loop device backed by a file
//! on it, swap) is not a process and is never listed.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::stat::{major, minor, stat};

/// How a process holds the filesystem. File paths are as the process sees them (relative
/// to its root directory: a container's files show their path inside the container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Its working directory is on it.
    Cwd,
    /// Its root directory is on it (a chroot or a container).
    Root,
    /// Its executable is on it.
    Exe,
    /// It has this file open.
    OpenFile(PathBuf),
    /// It has this file mapped.
    MappedFile(PathBuf),
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Cwd => f.write_str("cwd"),
            Hold::Root => f.write_str("root"),
            Hold::Exe => f.write_str("exe"),
            Hold::OpenFile(path) => write!(f, "open file {}", path.display()),
            Hold::MappedFile(path) => write!(f, "mapped file {}", path.display()),
        }
    }
}

/// A process holding the filesystem, and every way it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its pid.
    pub pid: i32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
    /// The ways it holds the filesystem; never empty.
    pub holds: Vec<Hold>,
}

/// At most this many holds are printed per holder; the rest are counted.
const SHOWN_HOLDS: usize = 8;

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({}): ", self.pid, self.command)?;
        for (index, hold) in self.holds.iter().take(SHOWN_HOLDS).enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{hold}")?;
        }
        if self.holds.len() > SHOWN_HOLDS {
            write!(f, " and {} more", self.holds.len() - SHOWN_HOLDS)?;
        }
        Ok(())
    }
}

/// Every process holding the filesystem with device number `major:minor`, by pid.
pub fn holders_of(dev_major: u32, dev_minor: u32) -> Vec<Holder> {
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = proc_dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| holder(pid, (dev_major, dev_minor)))
        .collect()
}

fn holder(pid: i32, device: (u32, u32)) -> Option<Holder> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let on_device = |path: &Path| {
        stat(path).is_ok_and(|st| {
            (major(st.st_dev), minor(st.st_dev)) == (u64::from(device.0), u64::from(device.1))
        })
    };
    let mut holds = Vec::new();
    for (link, hold) in [("cwd", Hold::Cwd), ("root", Hold::Root), ("exe", Hold::Exe)] {
        if on_device(&dir.join(link)) {
            holds.push(hold);
        }
    }
    if let Ok(fds) = fs::read_dir(dir.join("fd")) {
        let mut open: Vec<PathBuf> = fds
            .filter_map(|fd| Some(fd.ok()?.path()))
            .filter(|fd| on_device(fd))
            .filter_map(|fd| fs::read_link(fd).ok())
            .collect();
        open.sort();
        open.dedup();
        holds.extend(open.into_iter().map(Hold::OpenFile));
    }
    if let Ok(maps) = fs::read_to_string(dir.join("maps")) {
        holds.extend(
            mapped_files(&maps, device)
                .into_iter()
                .map(Hold::MappedFile),
        );
    }
    if holds.is_empty() {
        return None;
    }
    let command = fs::read_to_string(dir.join("comm"))
        .map(|comm| comm.trim_end().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    Some(Holder {
        pid,
        command,
        holds,
    })
}

/// The distinct files mapped from the device `major:minor`, from a `/proc/PID/maps` text.
/// Pure.
pub fn mapped_files(maps: &str, device: (u32, u32)) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = maps
        .lines()
        .filter_map(parse_maps_line)
        .filter(|mapping| mapping.device == device && mapping.inode != 0)
        .map(|mapping| mapping.path)
        .collect();
    files.sort();
    files.dedup();
    files
}

/// The parts of a maps line this module needs.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    device: (u32, u32),
    inode: u64,
    path: PathBuf,
}

/// `ADDRESS PERMS OFFSET MAJOR:MINOR INODE   PATH`; the device numbers are hexadecimal
/// and the path (which may hold spaces) is everything after the padding.
fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut rest = line;
    let mut fields = [""; 5];
    for field in &mut fields {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        *field = &trimmed[..end];
        rest = &trimmed[end..];
    }
    let (dev_major, dev_minor) = fields[3].split_once(':')?;
    let path = rest.trim_start_matches(' ');
    Some(Mapping {
        device: (
            u32::from_str_radix(dev_major, 16).ok()?,
            u32::from_str_radix(dev_minor, 16).ok()?,
        ),
        inode: fields[4].parse().ok()?,
        path: PathBuf::from(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 07:00 12         /srv/ha/bin/tool
55d0c0a02000-55d0c0a08000 r-xp 00002000 07:00 12         /srv/ha/bin/tool
7f3a1c000000-7f3a1c021000 rw-p 00000000 00:00 0 
7f3a1d000000-7f3a1d200000 r--p 00000000 fd:01 5243       /usr/lib/locale/locale-archive
7f3a1e000000-7f3a1e001000 rw-s 00000000 07:00 99         /srv/ha/db file (deleted)
7ffd5a7c1000-7ffd5a7e2000 rw-p 00000000 00:00 0          [stack]
";

    #[test]
    fn maps_lines_give_hex_device_inode_and_a_path_with_spaces() {
        assert_eq!(
            parse_maps_line("7f3a1d000000-7f3a1d200000 r--p 00000000 fd:1a 5243   /a b"),
            Some(Mapping {
                device: (0xfd, 0x1a),
                inode: 5243,
                path: PathBuf::from("/a b")
            })
        );
        assert_eq!(
            parse_maps_line("7f3a1c000000-7f3a1c021000 rw-p 00000000 00:00 0 "),
            Some(Mapping {
                device: (0, 0),
                inode: 0,
                path: PathBuf::new()
            })
        );
        assert_eq!(parse_maps_line("garbage"), None);
    }

    #[test]
    fn mapped_files_are_those_of_the_device_once_each() {
        assert_eq!(
            mapped_files(MAPS, (7, 0)),
            [
                PathBuf::from("/srv/ha/bin/tool"),
                PathBuf::from("/srv/ha/db file (deleted)")
            ]
        );
        assert_eq!(
            mapped_files(MAPS, (0xfd, 1)),
            [PathBuf::from("/usr/lib/locale/locale-archive")]
        );
        assert!(
            mapped_files(MAPS, (0, 0)).is_empty(),
            "anonymous mappings are no files"
        );
    }

    #[test]
    fn a_holder_prints_pid_command_and_how() {
        let holder = Holder {
            pid: 4242,
            command: "sleep".into(),
            holds: vec![Hold::Cwd, Hold::OpenFile("/srv/ha/log".into())],
        };
        assert_eq!(
            holder.to_string(),
            "pid 4242 (sleep): cwd, open file /srv/ha/log"
        );
    }

    #[test]
    fn a_holder_with_many_holds_prints_a_count_of_the_rest() {
        let holder = Holder {
            pid: 1,
            command: "db".into(),
            holds: (0..10)
                .map(|n| Hold::OpenFile(format!("/f{n}").into()))
                .collect(),
        };
        let text = holder.to_string();
        assert!(text.ends_with("open file /f7 and 2 more"), "{text}");
    }

    #[test]
    fn our_own_cwd_is_found_on_its_device() {
        let st = stat(".").unwrap();
        let device = (major(st.st_dev) as u32, minor(st.st_dev) as u32);
        let found = holders_of(device.0, device.1);
        let me = found
            .iter()
            .find(|h| h.pid == std::process::id() as i32)
            .unwrap();
        assert!(me.holds.contains(&Hold::Cwd), "{me}");
    }
}
