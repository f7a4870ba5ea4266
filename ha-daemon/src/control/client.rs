//! The CLI's side of the control socket: `ha-daemon status`, `events` and the operator
//! commands (`switchover [--dry-run]`, `standby`, `maintenance`, `end-startup-wait`,
//! `drill`).

use std::path::Path;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

use super::Request;
use super::drill::Drill;
use super::preflight::Preflight;
use super::status::Status;

/// Prints the daemon's status: the table, or the JSON object with `json`.
pub async fn status(socket: &Path, json: bool) -> Result<(), String> {
    let (line, value) = answer(socket, Request::Status {}).await?;
    if json {
        println!("{line}");
        return Ok(());
    }
    let status: Status =
        serde_json::from_value(value).map_err(|error| format!("the daemon's status: {error}"))?;
    print!("{status}");
    Ok(())
}

/// Sends an operator command (`request` must be one) and waits for its answer; the
/// error is the daemon's reason for refusing it.
pub async fn command(socket: &Path, request: Request) -> Result<(), String> {
    answer(socket, request).await.map(drop)
}

/// Asks for a switchover to `to` (`dry_run`: only its preflight). A dry run prints the
/// preflight's checks and steps; a refusal names every failed check.
pub async fn switchover(socket: &Path, to: Option<u16>, dry_run: bool) -> Result<(), String> {
    let (_, value) = answer_line(socket, Request::Switchover { to, dry_run }).await?;
    let preflight = value
        .get("preflight")
        .cloned()
        .map(serde_json::from_value::<Preflight>)
        .transpose()
        .map_err(|error| format!("the daemon's preflight: {error}"))?;
    if dry_run && let Some(preflight) = &preflight {
        print!("{preflight}");
    }
    match (value.get("error"), dry_run) {
        (Some(error), true) => Err(format!("the switchover would be refused: {}", text(error))),
        (Some(error), false) => Err(format!("the daemon refused: {}", text(error))),
        (None, true) => {
            println!("the switchover would be accepted (dry run: nothing changed)");
            Ok(())
        }
        (None, false) => Ok(()),
    }
}

/// A JSON string's text, or the JSON of anything else.
fn text(value: &serde_json::Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// Sends `request` and reads the one-line answer, as text and parsed, whether it is an
/// error or not.
async fn answer_line(
    socket: &Path,
    request: Request,
) -> Result<(String, serde_json::Value), String> {
    let mut lines = self::request(socket, request).await?;
    let line = lines
        .next_line()
        .await
        .map_err(|error| format!("reading from {}: {error}", socket.display()))?
        .ok_or_else(|| format!("{} closed without an answer", socket.display()))?;
    let value =
        serde_json::from_str(&line).map_err(|error| format!("the daemon's answer: {error}"))?;
    Ok((line, value))
}

/// Sends `request` and reads the one-line answer, as text and parsed; an answer with an
/// `error` key is the daemon's refusal, returned as the error.
async fn answer(socket: &Path, request: Request) -> Result<(String, serde_json::Value), String> {
    let (line, value) = answer_line(socket, request).await?;
    match value.get("error") {
        Some(error) => Err(format!("the daemon refused: {}", text(error))),
        None => Ok((line, value)),
    }
}

/// Runs a drill: follows the events of this node (and of the peer, when its control
/// socket is reachable from here), asks this node for a switchover, waits up to
/// `timeout` until every followed node ended its part, and prints their timelines.
/// Fails when the switchover is refused, fails, or does not end in time.
pub async fn drill(
    socket: &Path,
    peer_socket: Option<&Path>,
    ids: (u16, u16),
    to: Option<u16>,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let mut ours = request(socket, Request::Events {}).await?;
    let mut peers = match peer_socket {
        Some(peer) => Some(request(peer, Request::Events {}).await?),
        None => None,
    };
    let watched: Vec<u16> = match peer_socket {
        Some(_) => vec![ids.0, ids.1],
        None => vec![ids.0],
    };
    let mut drill = Drill::new(crate::io::clock::monotonic_ns(), &watched);
    switchover(socket, to, false).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    while !drill.done() {
        let next = async {
            match &mut peers {
                Some(peers) => tokio::select! {
                    line = ours.next_line() => (0, line),
                    line = peers.next_line() => (1, line),
                },
                None => (0, ours.next_line().await),
            }
        };
        let (node, line) = match tokio::time::timeout_at(deadline, next).await {
            Ok((node, Ok(Some(line)))) => (node, line),
            Ok((_, Ok(None))) => return Err("a daemon closed its event stream".to_owned()),
            Ok((_, Err(error))) => return Err(format!("reading events: {error}")),
            Err(_) => {
                print!("{drill}");
                return Err(format!("the switchover did not end within {timeout:?}"));
            }
        };
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
            drill.observe(node, &value);
        }
    }
    print!("{drill}");
    match drill.failure() {
        Some((node, end)) => Err(format!(
            "the switchover failed on node {node}; the group is held by {} (as node {node} sees it)",
            end.owner
        )),
        None => Ok(()),
    }
}

/// Prints the daemon's events, one JSON object per line, until it stops or Ctrl-C.
pub async fn events(socket: &Path) -> Result<(), String> {
    let mut lines = request(socket, Request::Events {}).await?;
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => println!("{line}"),
                Ok(None) => return Ok(()),
                Err(error) => return Err(format!("reading from {}: {error}", socket.display())),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn request(
    socket: &Path,
    request: Request,
) -> Result<tokio::io::Lines<BufReader<UnixStream>>, String> {
    let mut stream = UnixStream::connect(socket).await.map_err(|error| {
        format!(
            "cannot connect to {}: {error} (is `ha-daemon run` running for this configuration, \
             and may you use its control socket?)",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_string(&request).map_err(|error| error.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|error| format!("writing to {}: {error}", socket.display()))?;
    Ok(BufReader::new(stream).lines())
}
