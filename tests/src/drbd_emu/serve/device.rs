//! The block device while the resource is up: the backing image served over FUSE as
//! `<node>/fuse/disk` (opened direct-I/O, so no page cache hides a replicated write), a
//! loop device on that file, and `<node>/device` pointing at it.
//!
//! Writes on the primary go to the image and, while replicating, to the peer; the FUSE
//! write returns only after the peer's ack (protocol C). A secondary's device is
//! read-only (`blockdev --setro`), and FUSE refuses its writes with EROFS. Real DRBD
//! refuses even a read-only open of a secondary's device (EMEDIUMTYPE, capture 23);
//! here read-only opens work.

use std::{
    ffi::OsStr,
    fs::File,
    os::unix::fs::{FileExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, PoisonError},
    time::{Duration, Instant, UNIX_EPOCH},
};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};

use super::{EmuError, Shared, ack_deadline, link, lock, send_locked};
use crate::drbd_emu::{config::FUSE_FILE, state::Role, wire::Frame};

/// The device and link of an up resource. [`Session::stop`] undoes everything.
pub(super) struct Session {
    loop_device: PathBuf,
    fuse: fuser::BackgroundSession,
    link: link::Handle,
}

impl Session {
    /// Mounts the image over FUSE, attaches a read-only loop device, links
    /// `<node>/device`, and starts the replication link.
    pub(super) fn start(shared: &Arc<Shared>) -> Result<Self, EmuError> {
        let node = &shared.node;
        let backing = node.backing();
        let image = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&backing)
            .map_err(EmuError::io("opening", &backing))?;
        let reader = image
            .try_clone()
            .map_err(EmuError::io("duplicating", &backing))?;
        lock(&shared.io).image = Some(image);
        let fuse_dir = node.fuse_dir();
        std::fs::create_dir_all(&fuse_dir).map_err(EmuError::io("creating", &fuse_dir))?;
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("drbd-emu".into()), MountOption::NoAtime];
        let fs = ImageFs {
            shared: Arc::clone(shared),
            image: reader,
            size: shared.config.size_mib << 20,
        };
        let fuse = fuser::spawn_mount(fs, &fuse_dir, &config)
            .map_err(EmuError::io("mounting FUSE on", &fuse_dir))?;
        let file = node.fuse_file();
        let attached = program(
            "losetup",
            &[OsStr::new("--find"), OsStr::new("--show"), file.as_os_str()],
        );
        let loop_device = match attached {
            Ok(out) => PathBuf::from(out.trim()),
            Err(e) => {
                let _ = fuse.umount_and_join();
                return Err(e);
            }
        };
        let session = Self {
            loop_device,
            fuse,
            link: link::Handle::start(shared),
        };
        session.set_writable(false);
        let link_path = node.device();
        let _ = std::fs::remove_file(&link_path);
        std::os::unix::fs::symlink(&session.loop_device, &link_path)
            .map_err(EmuError::io("linking", &link_path))?;
        Ok(session)
    }

    /// Makes the loop device writable or read-only. Failures are logged: the FUSE layer
    /// refuses a secondary's writes anyway.
    pub(super) fn set_writable(&self, writable: bool) {
        let flag = if writable { "--setrw" } else { "--setro" };
        if let Err(e) = program(
            "blockdev",
            &[OsStr::new(flag), self.loop_device.as_os_str()],
        ) {
            eprintln!("drbd-emu serve: {e}");
        }
    }

    /// True when something holds the device: a mount or another exclusive opener (an
    /// exclusive open fails with EBUSY). Plain opens are not detected.
    pub(super) fn held_open(&self) -> bool {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_EXCL)
            .open(&self.loop_device)
            .is_err_and(|e| e.raw_os_error() == Some(nix::libc::EBUSY))
    }

    /// Stops the link, detaches the loop device, unmounts FUSE (lazily if the loop
    /// device is still busy), removes `<node>/device`. The loop device is made writable
    /// first: its read-only flag outlives the detach, and the next user of that loop
    /// device (another test's mkfs) would get EPERM.
    pub(super) fn stop(self, shared: &Shared) -> Result<(), EmuError> {
        self.set_writable(true);
        self.link.stop();
        let _ = std::fs::remove_file(shared.node.device());
        let detached = program("losetup", &[OsStr::new("-d"), self.loop_device.as_os_str()]);
        if self.fuse.umount_and_join().is_err() {
            program(
                "fusermount3",
                &[
                    OsStr::new("-u"),
                    OsStr::new("-z"),
                    shared.node.fuse_dir().as_os_str(),
                ],
            )?;
        }
        lock(&shared.io).image = None;
        detached.map(drop)
    }
}

/// Runs a program to completion; its stdout, or an error naming it, its status and stderr.
pub(super) fn program(name: &str, args: &[&OsStr]) -> Result<String, EmuError> {
    let command = || {
        let mut line = name.to_owned();
        for arg in args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    };
    let out = Command::new(name)
        .args(args)
        .output()
        .map_err(|source| EmuError::Io {
            what: "running",
            path: command(),
            source,
        })?;
    if !out.status.success() {
        return Err(EmuError::Program {
            command: command(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const ROOT: INodeNo = INodeNo::ROOT;
const DISK: INodeNo = INodeNo(2);
const TTL: Duration = Duration::from_secs(1);

/// One directory with one file, the image.
struct ImageFs {
    shared: Arc<Shared>,
    image: File,
    size: u64,
}

impl ImageFs {
    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = match ino {
            ROOT => (FileType::Directory, 0o755, 0, 2),
            DISK => (FileType::RegularFile, 0o600, self.size, 1),
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size / 512,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }

    /// Writes `data` at `offset` on the primary: locally, then to the peer and waits for
    /// its ack when replicating. Returns the errno to reply with on failure.
    fn write_through(&self, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let shared = &self.shared;
        let kib = (data.len() as u64).div_ceil(1024);
        let mut io = lock(&shared.io);
        let primary = lock(&shared.kernel)
            .up()
            .is_some_and(|up| up.role == Role::Primary);
        if !primary {
            return Err(Errno::EROFS);
        }
        let image = io.image.as_ref().ok_or(Errno::EIO)?;
        image.write_all_at(data, offset).map_err(|_| Errno::EIO)?;
        let mirrored = io.link.is_some() && lock(&shared.kernel).mirrors_writes();
        let acked = if mirrored {
            io.next_seq += 1;
            let seq = io.next_seq;
            let epoch = lock(&shared.acks).epoch;
            send_locked(
                &mut io,
                &Frame::Data {
                    seq,
                    offset,
                    bytes: data.to_vec(),
                },
            );
            drop(io);
            wait_ack(shared, seq, epoch)
        } else {
            drop(io);
            false
        };
        shared.with_kernel(|k| {
            if let Some((device, peer)) = k.stats_mut() {
                device.written_kib += kib;
                if acked {
                    peer.sent_kib += kib;
                } else {
                    peer.out_of_sync_kib += kib;
                }
            }
        });
        Ok(())
    }
}

/// Waits until write `seq` is acknowledged (true) or the link of `epoch` is gone or the
/// deadline passed (false: the write completes locally and is out of sync).
fn wait_ack(shared: &Shared, seq: u64, epoch: u64) -> bool {
    let deadline = Instant::now() + ack_deadline(&shared.config);
    let mut acks = lock(&shared.acks);
    loop {
        if acks.acked >= seq {
            return true;
        }
        let now = Instant::now();
        if acks.epoch != epoch || now >= deadline {
            return false;
        }
        acks = shared
            .ack_signal
            .wait_timeout(acks, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

impl Filesystem for ImageFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.attr(DISK) {
            Some(attr) if parent == ROOT && name == FUSE_FILE => {
                reply.entry(&TTL, &attr, Generation(0))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino == DISK {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        } else {
            reply.error(Errno::EISDIR);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino != DISK {
            return reply.error(Errno::EISDIR);
        }
        let length = u64::from(size).min(self.size.saturating_sub(offset));
        let mut buffer = vec![0; usize::try_from(length).unwrap_or(0)];
        match self.image.read_exact_at(&mut buffer, offset) {
            Ok(()) => {
                self.shared.with_kernel(|k| {
                    if let Some((device, _)) = k.stats_mut() {
                        device.read_kib += length.div_ceil(1024);
                    }
                });
                reply.data(&buffer);
            }
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino != DISK || offset + data.len() as u64 > self.size {
            return reply.error(Errno::ENOSPC);
        }
        match self.write_through(offset, data) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.image.sync_data() {
            Ok(()) => reply.ok(),
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
            (DISK, FileType::RegularFile, FUSE_FILE),
        ];
        for (index, (ino, kind, name)) in entries
            .into_iter()
            .enumerate()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            if reply.add(ino, index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// The loop device a node's `<node>/device` symlink points at, if its backing file is
/// that node's FUSE image (a reused loop number is never taken for ours).
pub fn attached_loop(device_link: &Path, fuse_file: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(device_link).ok()?;
    let name = target.file_name()?.to_str()?.to_owned();
    let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    (Path::new(backing.trim()) == fuse_file).then_some(target)
}
