//! The control socket: a Unix stream socket (root only, or root and `control_group`)
//! where `ha-daemon status` and `ha-daemon events` talk to the running daemon.
//!
//! Protocol: the client sends one request, a JSON object on one line
//! (`{"command":"status"}`, `{"command":"events"}`, `{"command":"switchover","to":2}`
//! with `"dry_run":true` to only check,
//! `{"command":"standby","on":true}`, `{"command":"maintenance","on":false}`,
//! `{"command":"end_startup_wait"}`); the daemon
//! answers with one JSON object per line: one status for `status`, the live stream of
//! what the daemon prints (detector events, cluster events, group runs and reports) for
//! `events`, until the client leaves, and `{"ok":true}` or `{"error":"..."}` for an
//! operator command (a switchover adds `"preflight"`: its checks and steps). A request that does not parse gets `{"error":"..."}` naming the
//! problem, and the connection closes.
//!
//! - [`status`]: the status snapshot and its table (pure).
//! - [`server`]: the daemon's side.
//! - [`client`]: the CLI's side.
//! - [`drill`]: the timeline of a switchover from the nodes' event streams (pure).
//! - [`preflight`]: the checks and steps of a switchover (pure).

pub mod client;
pub mod drill;
pub mod preflight;
pub mod server;
pub mod status;

use serde::{Deserialize, Serialize};

/// A client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// One status snapshot.
    Status {},
    /// The live event stream.
    Events {},
    /// Move the group to `to` (default: the node that does not hold it).
    Switchover {
        /// The node that should hold the group afterwards.
        #[serde(default)]
        to: Option<u16>,
        /// Only run the preflight and say what would happen.
        #[serde(default)]
        dry_run: bool,
    },
    /// Standby on or off on this node.
    Standby {
        /// On or off.
        on: bool,
    },
    /// Maintenance (monitor only, no actions) on or off on this node.
    Maintenance {
        /// On or off.
        on: bool,
    },
    /// End this node's start-up wait now.
    EndStartupWait {},
}

impl Request {
    /// The operator command this request carries, if it is one.
    pub fn command(self) -> Option<crate::core::cluster::Command> {
        use crate::core::cluster::Command;
        match self {
            Request::Status {} | Request::Events {} => None,
            Request::Switchover { to, .. } => Some(Command::Switchover { to }),
            Request::Standby { on } => Some(Command::Standby(on)),
            Request::Maintenance { on } => Some(Command::Maintenance(on)),
            Request::EndStartupWait {} => Some(Command::EndStartupWait),
        }
    }
}

/// Longest request line the server reads.
pub const MAX_REQUEST: usize = 4096;

/// Parses one request line; the error names what is wrong, for the client.
pub fn parse_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim()).map_err(|error| {
        format!(
            "bad request {:?}: {error} (expected {{\"command\":\"status\"}}, \
             {{\"command\":\"events\"}}, {{\"command\":\"switchover\",\"to\":NODE}}, \
             {{\"command\":\"standby\",\"on\":BOOL}}, \
             {{\"command\":\"maintenance\",\"on\":BOOL}} or \
             {{\"command\":\"end_startup_wait\"}})",
            line.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_request("{\"command\":\"status\"}\n"),
            Ok(Request::Status {})
        );
        assert_eq!(
            parse_request("{\"command\":\"events\"}"),
            Ok(Request::Events {})
        );
        for bad in [
            "",
            "status",
            "{\"command\":\"explode\"}",
            "{\"command\":\"status\",\"x\":1}",
        ] {
            let error = parse_request(bad).unwrap_err();
            assert!(error.starts_with("bad request"), "{error}");
        }
        let error = parse_request("{\"command\":\"explode\"}").unwrap_err();
        assert!(error.contains("explode"), "{error}");
        for request in [Request::Status {}, Request::Events {}] {
            let written = serde_json::to_string(&request).unwrap();
            assert_eq!(parse_request(&written), Ok(request), "{written}");
        }
    }

    #[test]
    fn operator_commands_parse_to_the_cores_commands() {
        use crate::core::cluster::Command;
        let cases = [
            (
                "{\"command\":\"switchover\"}",
                Command::Switchover { to: None },
            ),
            (
                "{\"command\":\"switchover\",\"to\":2}",
                Command::Switchover { to: Some(2) },
            ),
            (
                "{\"command\":\"switchover\",\"to\":2,\"dry_run\":true}",
                Command::Switchover { to: Some(2) },
            ),
            (
                "{\"command\":\"standby\",\"on\":true}",
                Command::Standby(true),
            ),
            (
                "{\"command\":\"maintenance\",\"on\":false}",
                Command::Maintenance(false),
            ),
            (
                "{\"command\":\"end_startup_wait\"}",
                Command::EndStartupWait,
            ),
        ];
        for (line, command) in cases {
            let request = parse_request(line).unwrap();
            assert_eq!(request.command(), Some(command), "{line}");
            let again = serde_json::to_string(&request).unwrap();
            assert_eq!(parse_request(&again), Ok(request), "{again}");
        }
        assert_eq!(Request::Status {}.command(), None);
        for bad in [
            "{\"command\":\"standby\"}",
            "{\"command\":\"standby\",\"on\":\"yes\"}",
            "{\"command\":\"switchover\",\"to\":70000}",
        ] {
            assert!(parse_request(bad).is_err(), "{bad}");
        }
    }
}
