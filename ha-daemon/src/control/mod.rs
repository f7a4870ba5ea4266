//! The control socket: a Unix stream socket (root only, or root and `control_group`)
//! where `ha-daemon status` and `ha-daemon events` talk to the running daemon.
//!
//! Protocol: the client sends one request, a JSON object on one line
//! (`{"command":"status"}` or `{"command":"events"}`); the daemon answers with one JSON
//! object per line: one status for `status`, the live stream of what the daemon prints
//! (detector events, group reports) for `events`, until the client leaves. A request that
//! does not parse gets `{"error":"..."}` naming the problem, and the connection closes.
//!
//! - [`status`]: the status snapshot and its table (pure).
//! - [`server`]: the daemon's side.
//! - [`client`]: the CLI's side.

pub mod client;
pub mod server;
pub mod status;

use serde::{Deserialize, Serialize};

/// A client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// One status snapshot.
    Status,
    /// The live event stream.
    Events,
}

/// A request as written: exactly one key, `command`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    command: String,
}

/// Longest request line the server reads.
pub const MAX_REQUEST: usize = 4096;

/// Parses one request line; the error names what is wrong, for the client.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let line = line.trim();
    let bad = |problem: String| {
        format!(
            "bad request {line:?}: {problem} (expected {{\"command\":\"status\"}} or {{\"command\":\"events\"}})"
        )
    };
    let written: Written = serde_json::from_str(line).map_err(|error| bad(error.to_string()))?;
    match written.command.as_str() {
        "status" => Ok(Request::Status),
        "events" => Ok(Request::Events),
        other => Err(bad(format!("unknown command {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_request("{\"command\":\"status\"}\n"),
            Ok(Request::Status)
        );
        assert_eq!(
            parse_request("{\"command\":\"events\"}"),
            Ok(Request::Events)
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
        for request in [Request::Status, Request::Events] {
            let written = serde_json::to_string(&request).unwrap();
            assert_eq!(parse_request(&written), Ok(request), "{written}");
        }
    }
}
