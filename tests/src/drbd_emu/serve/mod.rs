//! `drbd-emu serve`: the emulated kernel module of one node. Thin I/O around
//! [`Kernel`]: a control socket for the commands, the replication link ([`link`]), and
//! the block device ([`device`]: FUSE image + loop device) while the resource is up.
//!
//! Locks, always taken in this order and never held across a program run: `commands`
//! (one command at a time) -> `session` -> `io` (image writes and link sends, so a
//! write and its replication frame stay in order) -> `kernel` -> `subscribers`.
//! The FUSE thread takes `io` and `kernel`, so no program that does I/O on the device
//! (losetup, blockdev) runs while `io` or `kernel` is held.

mod control;
mod device;
pub use device::attached_loop;
mod link;

use std::{
    fs::File,
    io::Write as _,
    net::TcpStream,
    os::unix::net::UnixListener,
    path::Path,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, atomic::AtomicBool, mpsc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nix::sys::signal::{SigSet, Signal};

use super::{
    config::{EmuConfig, NodeDir},
    events::Event,
    state::{Action, Kernel, Meta},
    wire::Frame,
};

/// Why the serve process could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    /// A file or socket operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A program failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Program {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// `emu.toml` is invalid.
    #[error("{path}: {source}")]
    Config {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: toml::de::Error,
    },
    /// Joining the configured network namespace failed.
    #[error("joining network namespace {netns}: {source}")]
    Netns {
        /// The namespace.
        netns: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

impl EmuError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| Self::Io { what, path, source }
    }
}

/// Reads a node's `emu.toml`.
pub fn load_config(node: &NodeDir) -> Result<EmuConfig, EmuError> {
    let path = node.config();
    let text = std::fs::read_to_string(&path).map_err(EmuError::io("reading", &path))?;
    EmuConfig::parse(&text).map_err(|source| EmuError::Config {
        path: path.display().to_string(),
        source,
    })
}

/// An event with its wall-clock time (microseconds since the epoch).
pub(super) type Stamped = (u64, Event);

/// Image and replication link, under one lock (see the module doc).
pub(super) struct Io {
    /// The backing image, for writes (reads use their own handle).
    image: Option<File>,
    /// The replication connection while connected.
    link: Option<TcpStream>,
    /// Sequence number of the last `Data` frame sent.
    next_seq: u64,
}

/// Protocol C bookkeeping: the highest acknowledged write, and a counter of lost links
/// so a writer waiting for an ack gives up when its link dies.
#[derive(Default)]
pub(super) struct Acks {
    acked: u64,
    epoch: u64,
}

/// Everything the serve threads share.
pub(super) struct Shared {
    node: NodeDir,
    config: EmuConfig,
    commands: Mutex<()>,
    session: Mutex<Option<device::Session>>,
    io: Mutex<Io>,
    kernel: Mutex<Kernel>,
    subscribers: Mutex<Vec<mpsc::Sender<Stamped>>>,
    acks: Mutex<Acks>,
    ack_signal: Condvar,
    /// Set by a command that needs the peer's liveness now (a promote refused because
    /// of a Primary peer): the link sends a ping at once instead of after `ping-int`.
    ping_wanted: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wall-clock microseconds (the only clock read for event timestamps).
pub(super) fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A new data generation id: time and pid mixed, never 0.
fn fresh_uuid() -> u64 {
    (unix_micros().rotate_left(17) ^ u64::from(std::process::id()) << 1) | 1
}

impl Shared {
    /// Runs `f` on the kernel, publishes the events it queued, returns its result.
    fn with_kernel<T>(&self, f: impl FnOnce(&mut Kernel) -> T) -> T {
        let mut kernel = lock(&self.kernel);
        let result = f(&mut kernel);
        let events = kernel.take_events();
        if !events.is_empty() {
            let now = unix_micros();
            let mut subscribers = lock(&self.subscribers);
            for event in events {
                subscribers.retain(|tx| tx.send((now, event.clone())).is_ok());
            }
        }
        result
    }

    /// Carries out the actions a transition asked for.
    fn execute(self: &Arc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendState => {
                    if let Some(state) = self.with_kernel(|k| k.peer_state()) {
                        self.send(&Frame::State(state));
                    }
                }
                Action::SendClearBitmap(uuids) => self.send(&Frame::ClearBitmap(uuids)),
                Action::StartResync => {
                    let shared = Arc::clone(self);
                    std::thread::spawn(move || link::resync(&shared));
                }
                Action::Disconnect => {
                    if let Some(stream) = lock(&self.io).link.take() {
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                    }
                }
                Action::DeviceWritable(writable) => {
                    if let Some(session) = lock(&self.session).as_ref() {
                        session.set_writable(writable);
                    }
                }
                Action::PersistMeta => {
                    if let Some(meta) = self.with_kernel(|k| k.meta())
                        && let Err(e) = write_meta(&self.node, meta)
                    {
                        eprintln!("drbd-emu serve: {e}");
                    }
                }
            }
        }
    }

    /// Sends a frame on the link, if connected; a failed send closes the link (the link
    /// thread then reports the loss).
    fn send(&self, frame: &Frame) {
        send_locked(&mut lock(&self.io), frame);
    }
}

fn send_locked(io: &mut Io, frame: &Frame) {
    let Some(stream) = io.link.as_mut() else {
        return;
    };
    if stream.write_all(&frame.encode()).is_err() {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        io.link = None;
    }
}

/// Reads the metadata written by `create-md` (`None`: there is none).
fn read_meta(node: &NodeDir) -> Option<Meta> {
    let text = std::fs::read_to_string(node.meta()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes metadata atomically (temporary file + rename).
fn write_meta(node: &NodeDir, meta: Meta) -> Result<(), EmuError> {
    let path = node.meta();
    let temp = path.with_extension("json.tmp");
    let text = serde_json::to_string(&meta).unwrap_or_default();
    std::fs::write(&temp, text).map_err(EmuError::io("writing", &temp))?;
    std::fs::rename(&temp, &path).map_err(EmuError::io("renaming", &path))
}

/// Runs the module of `node` until SIGTERM or SIGINT, then takes the resource down
/// (forcibly: a mounted device loses its disk) and removes the device and socket.
pub fn run(node: NodeDir) -> Result<(), EmuError> {
    let config = load_config(&node)?;
    if let Some(netns) = &config.netns {
        let path = Path::new("/run/netns").join(netns);
        let file = File::open(&path).map_err(EmuError::io("opening", &path))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| {
            EmuError::Netns {
                netns: netns.clone(),
                source,
            }
        })?;
    }
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().map_err(|e| EmuError::Io {
        what: "blocking signals for",
        path: node.root().display().to_string(),
        source: e.into(),
    })?;
    let socket = node.socket();
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(EmuError::io("binding", &socket))?;
    let pid_file = node.pid_file();
    std::fs::write(&pid_file, std::process::id().to_string())
        .map_err(EmuError::io("writing", &pid_file))?;
    let shared = Arc::new(Shared {
        kernel: Mutex::new(Kernel::new(config.size_kib(), config.fencing)),
        node,
        config,
        commands: Mutex::new(()),
        ping_wanted: AtomicBool::new(false),
        session: Mutex::new(None),
        io: Mutex::new(Io {
            image: None,
            link: None,
            next_seq: 0,
        }),
        subscribers: Mutex::new(Vec::new()),
        acks: Mutex::new(Acks::default()),
        ack_signal: Condvar::new(),
    });
    let acceptor = Arc::clone(&shared);
    std::thread::spawn(move || control::accept(&acceptor, &listener));
    let signal = signals.wait().map_err(|e| EmuError::Io {
        what: "waiting for signals in",
        path: shared.node.root().display().to_string(),
        source: e.into(),
    })?;
    eprintln!(
        "drbd-emu serve: {signal:?}: taking {} down",
        shared.config.resource
    );
    let _serialised = lock(&shared.commands);
    control::force_down(&shared);
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    lock(&shared.subscribers).clear();
    Ok(())
}

/// How long a protocol C writer waits for the peer's ack before completing the write
/// locally (the link thread normally declares the link dead sooner).
fn ack_deadline(config: &EmuConfig) -> Duration {
    config.ping_interval() + config.ping_timeout() + Duration::from_secs(1)
}
