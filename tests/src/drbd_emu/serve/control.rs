//! The control socket: one JSON [`Call`] line in, JSON [`Reply`] lines out. Commands
//! run one at a time; `events2` streams run beside them until the client goes away.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::{UnixListener, UnixStream},
    sync::{Arc, atomic::Ordering, mpsc},
    time::Duration,
};

use super::{EmuError, Shared, device, fresh_uuid, lock, read_meta, unix_micros, write_meta};
use crate::drbd_emu::{
    cli::{Call, Request},
    events::{EXISTS_END, timestamp},
    render::{self, Failure, Target},
    state::{Action, Meta, Refusal, Up},
    wire::Reply,
};

/// Accepts control connections forever, one thread each.
pub(super) fn accept(shared: &Arc<Shared>, listener: &UnixListener) {
    for stream in listener.incoming().flatten() {
        let shared = Arc::clone(shared);
        std::thread::spawn(move || serve_client(&shared, stream));
    }
}

fn serve_client(shared: &Arc<Shared>, stream: UnixStream) {
    let mut line = String::new();
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    if BufReader::new(reader).read_line(&mut line).is_err() {
        return;
    }
    let mut out = Replies(stream);
    match serde_json::from_str::<Call>(&line) {
        Ok(Call {
            request:
                Request::Events2 {
                    now,
                    timestamps,
                    statistics,
                    matches,
                },
            ..
        }) => events2(shared, &mut out, now, timestamps, statistics, matches),
        Ok(call) => {
            let result = {
                let _serialised = lock(&shared.commands);
                handle(shared, &call)
            };
            match result {
                Ok(stdout) => {
                    out.send(&Reply::Stdout(stdout));
                    out.send(&Reply::Exit(0));
                }
                Err(failure) => {
                    out.send(&Reply::Stdout(failure.stdout));
                    out.send(&Reply::Stderr(failure.stderr));
                    out.send(&Reply::Exit(failure.exit));
                }
            }
        }
        Err(e) => {
            out.send(&Reply::Stderr(format!(
                "drbd-emu serve: bad request `{}`: {e}\n",
                line.trim()
            )));
            out.send(&Reply::Exit(20));
        }
    }
}

struct Replies(UnixStream);

impl Replies {
    /// Sends one reply; false once the client is gone.
    fn send(&mut self, reply: &Reply) -> bool {
        let mut line = serde_json::to_string(reply).unwrap_or_default();
        line.push('\n');
        self.0.write_all(line.as_bytes()).is_ok()
    }
}

/// Runs one command; `Ok(stdout)` or the failure to print.
fn handle(shared: &Arc<Shared>, call: &Call) -> Result<String, Failure> {
    let config = &shared.config;
    let target = Target {
        name: &config.resource,
        minor: config.minor,
    };
    let command = call.request.command();
    let refused = |r: Refusal| render::refusal(r, command, call.tool, target);
    let actions = match &call.request {
        Request::CreateMd => return create_md(shared).map_err(refused),
        Request::Up => {
            return up(shared).map_err(|e| e.unwrap_or_else(|| refused(Refusal::AlreadyUp)));
        }
        Request::Down => return down(shared).map_err(refused),
        Request::Primary => promote(shared),
        Request::Secondary => {
            let held = held_open(shared);
            shared.with_kernel(|k| k.demote(held))
        }
        Request::Outdate => shared.with_kernel(|k| k.outdate()),
        Request::ClearBitmap => shared.with_kernel(|k| k.clear_bitmap(fresh_uuid())),
        Request::Role => return query(shared, refused, render::role),
        Request::Cstate => return query(shared, refused, render::cstate),
        Request::Dstate => return query(shared, refused, render::dstate),
        Request::Status {
            verbose,
            statistics,
        } => {
            let (verbose, statistics) = (*verbose, *statistics);
            return query(shared, refused, |up| {
                render::status(up, target, verbose, statistics)
            });
        }
        Request::Events2 { .. } => Ok(Vec::new()),
    }
    .map_err(refused)?;
    shared.execute(actions);
    Ok(String::new())
}

/// `drbdadm primary`, as DRBD 8.4's `drbd_set_role` does it: refused because the
/// connected peer is Primary, it pings the peer, waits one ping timeout (plus a tenth of
/// a second, DRBD's unit) for the connection to be found dead and tries once more. So
/// promoting right after the primary died succeeds after that wait (as measured on real
/// DRBD 8.4.11: about 0.8 s with ping-timeout 5); a live primary peer is still refused.
fn promote(shared: &Shared) -> Result<Vec<Action>, Refusal> {
    match shared.with_kernel(|k| k.promote(fresh_uuid())) {
        Err(Refusal::TwoPrimaries) => {
            shared.ping_wanted.store(true, Ordering::Relaxed);
            std::thread::sleep(shared.config.ping_timeout() + Duration::from_millis(100));
            shared.with_kernel(|k| k.promote(fresh_uuid()))
        }
        other => other,
    }
}

/// A read-only query of the up resource.
fn query(
    shared: &Shared,
    refused: impl FnOnce(Refusal) -> Failure,
    show: impl FnOnce(&Up) -> String,
) -> Result<String, Failure> {
    let kernel = lock(&shared.kernel);
    kernel.up().map(show).ok_or_else(|| refused(Refusal::NotUp))
}

fn held_open(shared: &Shared) -> bool {
    lock(&shared.session)
        .as_ref()
        .is_some_and(device::Session::held_open)
}

/// `create-md`: a sparse backing image of the configured size and fresh metadata.
fn create_md(shared: &Shared) -> Result<String, Refusal> {
    if lock(&shared.kernel).up().is_some() {
        return Err(Refusal::DeviceConfigured);
    }
    let node = &shared.node;
    let result = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(node.backing())
        .and_then(|file| file.set_len(shared.config.size_mib << 20))
        .map_err(EmuError::io("creating", &node.backing()))
        .and_then(|()| write_meta(node, Meta::FRESH));
    if let Err(e) = result {
        eprintln!("drbd-emu serve: create-md: {e}");
        return Err(Refusal::DeviceConfigured);
    }
    Ok("initializing activity log\nWriting meta data...\nNew drbd meta data block successfully created.\n".to_owned())
}

/// `up`: attach the device (FUSE + loop), then bring the resource up and start the link.
/// `Err(None)`: refused because it is up already.
fn up(shared: &Arc<Shared>) -> Result<String, Option<Failure>> {
    if lock(&shared.kernel).up().is_some() {
        return Err(None);
    }
    let Some(meta) = read_meta(&shared.node) else {
        return Err(Some(Failure::message(
            10,
            format!(
                "drbd-emu: no metadata at {} (run `drbdadm create-md {}` first)\n",
                shared.node.meta().display(),
                shared.config.resource
            ),
        )));
    };
    let session = device::Session::start(shared)
        .map_err(|e| Some(Failure::message(10, format!("drbd-emu: up: {e}\n"))))?;
    *lock(&shared.session) = Some(session);
    let actions = shared.with_kernel(|k| k.bring_up(meta)).map_err(|_| None)?;
    shared.execute(actions);
    Ok(String::new())
}

/// `down`: refused while the device is held open.
fn down(shared: &Arc<Shared>) -> Result<String, Refusal> {
    let held = held_open(shared);
    let actions = shared.with_kernel(|k| k.take_down(held))?;
    finish_down(shared, actions);
    Ok(String::new())
}

/// Takes the resource down whatever holds the device (SIGTERM = the module goes away).
pub(super) fn force_down(shared: &Arc<Shared>) {
    let actions = shared
        .with_kernel(|k| k.take_down(false))
        .unwrap_or_default();
    finish_down(shared, actions);
}

fn finish_down(shared: &Arc<Shared>, actions: Vec<Action>) {
    shared.execute(actions);
    let session = lock(&shared.session).take();
    if let Some(session) = session
        && let Err(e) = session.stop(shared)
    {
        eprintln!("drbd-emu serve: down: {e}");
    }
}

/// `events2`: the exists dump, then (unless `now`) every event until the client leaves.
fn events2(
    shared: &Arc<Shared>,
    out: &mut Replies,
    now: bool,
    timestamps: bool,
    statistics: bool,
    matches: bool,
) {
    let config = &shared.config;
    let (tx, rx) = mpsc::channel();
    let exists = {
        let kernel = lock(&shared.kernel);
        if !now {
            lock(&shared.subscribers).push(tx);
        }
        if matches { kernel.exists() } else { Vec::new() }
    };
    let stamp = unix_micros();
    let prefix = |micros: u64| {
        if timestamps {
            format!("{} ", timestamp(micros))
        } else {
            String::new()
        }
    };
    let mut text = String::new();
    for event in exists {
        text.push_str(&prefix(stamp));
        text.push_str(&event.line(&config.resource, config.minor, statistics));
        text.push('\n');
    }
    text.push_str(&prefix(unix_micros()));
    text.push_str(EXISTS_END);
    text.push('\n');
    if !out.send(&Reply::Stdout(text)) || now {
        out.send(&Reply::Exit(0));
        return;
    }
    for (micros, event) in rx {
        if !matches {
            continue;
        }
        let line = format!(
            "{}{}\n",
            prefix(micros),
            event.line(&config.resource, config.minor, statistics)
        );
        if !out.send(&Reply::Stdout(line)) {
            return;
        }
    }
    out.send(&Reply::Exit(0));
}
