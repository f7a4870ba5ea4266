//! DRBD state lines (`drbdsetup events2`) and command refusals, parsed (pure).
//!
//! Nothing here runs a program or reads a file: the `drbd` agent
//! ([`crate::resource::drbd`]) runs `drbdadm`/`drbdsetup` and hands their output here.
//!
//! - [`line`](mod@line): one `events2` line -> [`line::EventLine`] (tolerant of unknown keys and
//!   objects, strict about malformed lines).
//! - [`state`]: those lines folded into one resource's [`state::ResourceState`] (our role,
//!   each volume's disk, the connection, the peer's role and disks) and its
//!   [`state::Assessment`] (promoted, demoted, or unfit and why).
//! - [`refusal`]: a failed `drbdadm primary|secondary|up|down` (exit code and stderr)
//!   classified into a [`refusal::Refusal`].
//! - [`version`]: the DRBD version from `drbdadm --version` or `/proc/drbd`.
//! - [`words`]: DRBD's state words (role, disk, connection, replication) as enums.
//!
//! DRBD 8.4 and 9 differ little here: drbd-utils 9 prints the same `events2` format for
//! both (with an 8.4 kernel module every connection is `peer-node-id:0 conn-name:peer`);
//! DRBD 9 adds objects (`path`) and keys (`may_promote`, `quorum`, `client`,
//! `peer-client`, ...) that the parser keeps and the fold ignores, and may list several
//! peers (the fold keeps them all; the two-node accessors read the lowest node id).

pub mod line;
pub mod refusal;
pub mod state;
pub mod version;
pub mod words;

#[cfg(test)]
pub(crate) mod captures;
