//! The DRBD emulator (`drbd-emu`): a drop-in `drbdadm` / `drbdsetup` pair for tests and
//! the lab, on a machine without the DRBD kernel module.
//!
//! One binary (`src/bin/drbd-emu.rs`) dispatches on argv\[0\]: `drbdadm` and
//! `drbdsetup` (symlinks in `<node>/bin/`) parse the command line ([`cli`]) and ask the
//! node's `drbd-emu serve` process (the "kernel module", [`serve`]) over a unix socket.
//! serve keeps the state in a pure state machine ([`state`]), prints it in DRBD 8.4.11's
//! exact formats ([`render`], [`events`]), replicates over TCP ([`wire`], serve's link)
//! and exposes a loop device backed by a FUSE-served image. [`config`] describes a node
//! directory; [`node::EmuNode`] is the test guard.
//!
//! Modelled:
//! - roles, disk states (Diskless/Inconsistent/Outdated/UpToDate/DUnknown), connection
//!   and replication states, with the events2 `create`/`change`/`destroy` lines and
//!   `--now`, `--timestamps`, `--statistics`; `drbdadm status`, `drbdsetup status
//!   [--verbose] [--statistics]`, `role`/`cstate`/`dstate`, all checked against captures;
//! - refusals with the real messages and exit codes: promote with a non-UpToDate disk
//!   (17), while the connected peer is primary (11), demote/down while the device is held
//!   open (11), commands on a resource that is not up (10), `status --json` (20);
//! - a promote refused because the connected peer is Primary waits one ping timeout
//!   (+100 ms) and tries once more, as 8.4's `drbd_set_role` does: promoting right after
//!   the primary died succeeds once the dead link is noticed;
//! - create-md (fresh, Inconsistent), `--clear-bitmap new-current-uuid` (both UpToDate,
//!   no initial sync), outdate;
//! - protocol C: a write on the primary is on the peer's image before the FUSE write
//!   (and so the loop device write) completes;
//! - link loss by EOF/reset or by ping timeout (ping-int / ping-timeout), then
//!   NetworkFailure -> Unconnected -> Connecting, peer DUnknown; with
//!   `fencing = "resource-only"` a primary marks its lost peer Outdated;
//! - data generations (a simplified current/history UUID pair): a primary that loses its
//!   peer, or is promoted without one, starts a new generation. On reconnect the older
//!   side resyncs from the newer one; if both moved on it is a split brain and both go
//!   StandAlone (connection objects destroyed), as 8.4 does.
//!
//! Not modelled (differences from DRBD):
//! - resync is a full copy of the image (no bitmap, no activity log, no out-of-sync
//!   tracking by block; `out-of-sync` only counts KiB written while disconnected); no
//!   resync rate, pause or verify; the before/after-resync and split-brain helpers are
//!   not called (no `call helper` lines);
//! - no `connect`/`disconnect`/`--discard-my-data` (split-brain resolution), no
//!   `invalidate`, `attach`/`detach`, `adjust`, `dump`, `show`, no /proc/drbd;
//! - the lower address connects and the higher one listens (DRBD tries both ways);
//! - a secondary's device is read-only (`blockdev --setro` + FUSE EROFS) instead of
//!   refusing every open with EMEDIUMTYPE: read-only opens and mounts work there;
//! - "held open" is detected by an exclusive open (mounts and exclusive openers), not by
//!   an open count: a plain `open()` of the device does not block demotion;
//! - one resource, one volume, one peer; `allow-two-primaries` is always no; fencing
//!   `resource-only` is taken as a successful fence-peer handler; `resource-and-stonith`
//!   (freezing I/O) is not modelled;
//! - refusal texts for outdate while connected (-6), up on an up resource (161) and
//!   create-md on an up resource follow DRBD's tables but were not captured.

pub mod cli;
pub mod client;
pub mod config;
pub mod events;
pub mod node;
pub mod render;
pub mod serve;
pub mod state;
pub mod wire;

/// A real capture file's (stdout, stderr): the text after the `# ----- stdout -----` and
/// `# ----- stderr -----` markers. Panics on a file without them (test data).
pub fn capture(text: &str) -> (String, String) {
    const OUT: &str = "# ----- stdout -----\n";
    const ERR: &str = "# ----- stderr -----\n";
    let out_start = text.find(OUT).expect("stdout marker") + OUT.len();
    let err_marker = text.find(ERR).expect("stderr marker");
    (
        text[out_start..err_marker].to_owned(),
        text[err_marker + ERR.len()..].to_owned(),
    )
}
