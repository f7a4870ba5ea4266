//! The replication link: one TCP connection to the peer's serve process while up.
//!
//! The node with the lower address connects (every `connect_interval_ms`), the other
//! listens on its replication address. Connected, both send a `Ping` after
//! `ping_interval_ms` without traffic and declare the link dead when its `PingAck` has
//! not come within `ping_timeout_ms` (DRBD's "PingAck did not arrive in time"), or on
//! EOF/reset. Received writes go to the image and are acknowledged after the write.

use std::{
    io::{ErrorKind, Read as _},
    net::{TcpListener, TcpStream},
    os::unix::fs::FileExt as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{Shared, fresh_uuid, lock, send_locked};
use crate::drbd_emu::wire::{Decoder, Frame};

/// How often blocked loops look at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Resync chunk size.
const CHUNK: usize = 1 << 20;

/// The running link thread; [`Handle::stop`] ends it.
pub(super) struct Handle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Handle {
    /// Starts the link thread.
    pub(super) fn start(shared: &Arc<Shared>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, flag) = (Arc::clone(shared), Arc::clone(&stop));
        let thread = std::thread::spawn(move || run(&shared, &flag));
        Self { stop, thread }
    }

    /// Stops the thread (closing the connection) and waits for it.
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

fn run(shared: &Arc<Shared>, stop: &AtomicBool) {
    let config = &shared.config;
    let mut listener = None;
    while !stop.load(Ordering::Relaxed) {
        if !lock(&shared.kernel).wants_connection() {
            std::thread::sleep(POLL);
            continue;
        }
        let stream = if config.connects() {
            connect(shared, stop)
        } else {
            if listener.is_none() {
                listener = TcpListener::bind(config.local)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .inspect_err(|e| {
                        eprintln!("drbd-emu serve: listening on {}: {e}", config.local)
                    })
                    .ok();
            }
            listener.as_ref().and_then(|l| accept(shared, l, stop))
        };
        if let Some(stream) = stream {
            connected(shared, stream, stop);
        }
    }
}

/// One connection attempt; on failure waits out the connect interval.
fn connect(shared: &Shared, stop: &AtomicBool) -> Option<TcpStream> {
    let config = &shared.config;
    let started = Instant::now();
    match TcpStream::connect_timeout(&config.peer, config.connect_interval()) {
        Ok(stream) => Some(stream),
        Err(_) => {
            while started.elapsed() < config.connect_interval() && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
            }
            None
        }
    }
}

/// Waits up to one connect interval for the peer to connect (others are dropped).
fn accept(shared: &Shared, listener: &TcpListener, stop: &AtomicBool) -> Option<TcpStream> {
    let started = Instant::now();
    while started.elapsed() < shared.config.connect_interval() && !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, from)) if from.ip() == shared.config.peer.ip() => {
                return stream.set_nonblocking(false).ok().map(|()| stream);
            }
            Ok(_) | Err(_) => std::thread::sleep(POLL),
        }
    }
    None
}

/// Runs one connection until it dies or `stop`, then reports the loss.
fn connected(shared: &Arc<Shared>, stream: TcpStream, stop: &AtomicBool) {
    let config = &shared.config;
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(POLL)))
        .and_then(|()| {
            stream.set_write_timeout(Some(config.ping_interval() + config.ping_timeout()))
        })
        .and_then(|()| stream.try_clone());
    let Ok(writer) = setup else { return };
    lock(&shared.io).link = Some(writer);
    let actions = shared.with_kernel(|k| k.link_connected());
    shared.execute(actions);
    receive(shared, stream, stop);
    if let Some(stream) = lock(&shared.io).link.take() {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    {
        let mut acks = lock(&shared.acks);
        acks.epoch += 1;
        shared.ack_signal.notify_all();
    }
    let actions = shared.with_kernel(|k| k.link_lost(fresh_uuid()));
    shared.execute(actions);
}

/// Reads frames until EOF, error, ping timeout or `stop`.
fn receive(shared: &Arc<Shared>, mut stream: TcpStream, stop: &AtomicBool) {
    let config = &shared.config;
    let mut decoder = Decoder::default();
    let mut buffer = vec![0; 256 * 1024];
    let mut last_heard = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                last_heard = Instant::now();
                decoder.push(&buffer[..n]);
                while let Some(frame) = decoder.next_frame() {
                    match frame {
                        Ok(Frame::PingAck) => ping_sent = None,
                        Ok(frame) => handle(shared, frame),
                        Err(e) => {
                            eprintln!("drbd-emu serve: replication link: {e}");
                            return;
                        }
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        if lock(&shared.io).link.is_none() {
            return;
        }
        match ping_sent {
            Some(sent) if sent.elapsed() > config.ping_timeout() => {
                eprintln!("drbd-emu serve: PingAck did not arrive in time");
                return;
            }
            None if last_heard.elapsed() >= config.ping_interval()
                || shared.ping_wanted.swap(false, Ordering::Relaxed) =>
            {
                shared.send(&Frame::Ping);
                ping_sent = Some(Instant::now());
            }
            Some(_) | None => {}
        }
    }
}

fn handle(shared: &Arc<Shared>, frame: Frame) {
    match frame {
        Frame::Ping => shared.send(&Frame::PingAck),
        Frame::PingAck => {}
        Frame::State(state) => {
            let actions = shared.with_kernel(|k| k.peer_state_received(state));
            shared.execute(actions);
        }
        Frame::ClearBitmap(uuids) => {
            let actions = shared.with_kernel(|k| k.peer_cleared_bitmap(uuids));
            shared.execute(actions);
        }
        Frame::Data { seq, offset, bytes } => {
            let mut io = lock(&shared.io);
            let written = io
                .image
                .as_ref()
                .is_some_and(|image| image.write_all_at(&bytes, offset).is_ok());
            if written {
                send_locked(&mut io, &Frame::DataAck { seq });
            }
            drop(io);
            account_received(shared, bytes.len());
        }
        Frame::DataAck { seq } => {
            let mut acks = lock(&shared.acks);
            acks.acked = acks.acked.max(seq);
            shared.ack_signal.notify_all();
        }
        Frame::Resync { offset, bytes } => {
            if let Some(image) = lock(&shared.io).image.as_ref()
                && let Err(e) = image.write_all_at(&bytes, offset)
            {
                eprintln!("drbd-emu serve: resync write at {offset}: {e}");
            }
            account_received(shared, bytes.len());
        }
        Frame::ResyncDone(uuids) => {
            let actions = shared.with_kernel(|k| k.resync_received(uuids));
            shared.execute(actions);
        }
    }
}

fn account_received(shared: &Shared, bytes: usize) {
    shared.with_kernel(|k| {
        if let Some((device, peer)) = k.stats_mut() {
            let kib = (bytes as u64).div_ceil(1024);
            device.written_kib += kib;
            peer.received_kib += kib;
        }
    });
}

/// Full resync as source: the whole image in chunks (each read and sent under the `io`
/// lock, so concurrent writes stay ordered after it), then `ResyncDone`.
pub(super) fn resync(shared: &Arc<Shared>) {
    let size = shared.config.size_mib << 20;
    let mut chunk = vec![0; CHUNK];
    let mut offset = 0;
    while offset < size {
        let mut io = lock(&shared.io);
        if io.link.is_none() {
            return;
        }
        let Some(image) = io.image.as_ref() else {
            return;
        };
        if image.read_exact_at(&mut chunk, offset).is_err() {
            eprintln!("drbd-emu serve: resync read at {offset} failed");
            return;
        }
        send_locked(
            &mut io,
            &Frame::Resync {
                offset,
                bytes: chunk.clone(),
            },
        );
        drop(io);
        shared.with_kernel(|k| {
            if let Some((_, peer)) = k.stats_mut() {
                peer.sent_kib += (CHUNK / 1024) as u64;
            }
        });
        offset += CHUNK as u64;
    }
    let Some(uuids) = lock(&shared.kernel).peer_state().map(|s| s.uuids) else {
        return;
    };
    shared.send(&Frame::ResyncDone(uuids));
    let actions = shared.with_kernel(|k| k.resync_sent());
    shared.execute(actions);
}
