//! The daemon's side of the control socket.
//!
//! Invariants: the socket file is mode 0600 (root) or 0660 with the configured group, so
//! only they can connect; a socket another daemon still answers on is never taken over
//! (a second daemon for the same node refuses to start); the file is removed when the
//! [`ControlSocket`] drops. A client that sends nothing within [`REQUEST_TIMEOUT`] or more
//! than [`super::MAX_REQUEST`] bytes is answered with an error and dropped; a slow events
//! client that falls behind is told how many lines it missed.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::{Group, chown};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::preflight::Preflight;
use super::status::Status;
use super::{MAX_REQUEST, Request, parse_request};

/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client asks of the daemon's main loop; it answers on the sender.
#[derive(Debug)]
pub enum Query {
    /// A status snapshot.
    Status(oneshot::Sender<Status>),
    /// An operator command; the answer is `Ok` or the reason it was refused.
    Command(
        crate::core::cluster::Command,
        oneshot::Sender<Result<(), String>>,
    ),
    /// A switchover (`dry_run`: only its preflight), answered with the preflight (none
    /// without `[cluster]`) and whether it was accepted (or why not).
    Switchover {
        /// The node that should hold the group afterwards.
        to: Option<u16>,
        /// Only the preflight.
        dry_run: bool,
        /// The answer.
        reply: oneshot::Sender<SwitchoverAnswer>,
    },
}

/// The answer to [`Query::Switchover`].
#[derive(Debug)]
pub struct SwitchoverAnswer {
    /// `Ok`: accepted (or, for a dry run, it would be); `Err`: why not.
    pub result: Result<(), String>,
    /// The checks and steps, when the daemon has a cluster core.
    pub preflight: Option<Preflight>,
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A daemon already answers on this socket.
    #[error("control socket {0}: another ha-daemon is running for this node")]
    InUse(PathBuf),
    /// The configured group does not exist.
    #[error("control_group {0:?}: no such group")]
    NoGroup(String),
    /// Creating, binding or securing the socket failed.
    #[error("control socket {path}: {what}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The bound control socket; removes its file on drop.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ControlSocket {
    /// Binds `path` (creating its directory), usable by root and `group`. Must run
    /// inside a tokio runtime.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<Self, ControlError> {
        let io = |what| {
            move |source| ControlError::Io {
                path: path.to_owned(),
                what,
                source,
            }
        };
        let gid = match group {
            Some(name) => match Group::from_name(name) {
                Ok(Some(group)) => Some(group.gid),
                _ => return Err(ControlError::NoGroup(name.to_owned())),
            },
            None => None,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating its directory"))?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(io("removing a stale socket"))?;
        }
        let listener = UnixListener::bind(path).map_err(io("binding"))?;
        let socket = ControlSocket {
            path: path.to_owned(),
            listener,
        };
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io("setting its mode"))?;
        if gid.is_some() {
            chown(path, None, gid).map_err(|errno| io("setting its group")(errno.into()))?;
        }
        Ok(socket)
    }

    /// Serves clients until the daemon ends: status queries and commands go to
    /// `queries`, events clients get every line sent on `events`.
    pub async fn serve(
        &self,
        queries: mpsc::UnboundedSender<Query>,
        events: broadcast::Sender<String>,
    ) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let queries = queries.clone();
                    let events = events.subscribe();
                    tokio::spawn(async move {
                        if let Err(error) = handle(stream, queries, events).await {
                            tracing::debug!(%error, "control client");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(
    stream: UnixStream,
    queries: mpsc::UnboundedSender<Query>,
    mut events: broadcast::Receiver<String>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    let mut line = String::new();
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Err(format!("no request within {REQUEST_TIMEOUT:?}")),
        Ok(Err(error)) => Err(format!("unreadable request: {error}")),
        Ok(Ok(_)) if !line.ends_with('\n') => Err(format!(
            "a request is one line of at most {MAX_REQUEST} bytes ending in a newline"
        )),
        Ok(Ok(_)) => parse_request(&line),
    };
    let request = match request {
        Ok(request) => request,
        Err(error) => {
            let answer = serde_json::json!({ "error": error }).to_string();
            return write.write_all(format!("{answer}\n").as_bytes()).await;
        }
    };
    match request {
        Request::Switchover { to, dry_run } => {
            let (reply, answer) = oneshot::channel();
            let answer = match queries.send(Query::Switchover { to, dry_run, reply }) {
                Ok(()) => answer.await.ok(),
                Err(_) => None,
            };
            let line = match answer {
                Some(SwitchoverAnswer { result, preflight }) => {
                    let mut line = match result {
                        Ok(()) => serde_json::json!({ "ok": true }),
                        Err(error) => serde_json::json!({ "error": error }),
                    };
                    if let Some(preflight) = preflight {
                        line["preflight"] = serde_json::to_value(preflight).unwrap_or_default();
                    }
                    line
                }
                None => serde_json::json!({ "error": "the daemon is stopping" }),
            };
            write.write_all(format!("{line}\n").as_bytes()).await
        }
        Request::Standby { .. } | Request::Maintenance { .. } | Request::EndStartupWait {} => {
            let (reply, answer) = oneshot::channel();
            let answer = match request.command() {
                Some(command) if queries.send(Query::Command(command, reply)).is_ok() => {
                    answer.await.ok()
                }
                _ => None,
            };
            let line = match answer {
                Some(Ok(())) => serde_json::json!({ "ok": true }),
                Some(Err(error)) => serde_json::json!({ "error": error }),
                None => serde_json::json!({ "error": "the daemon is stopping" }),
            };
            write.write_all(format!("{line}\n").as_bytes()).await
        }
        Request::Status {} => {
            let (reply, answer) = oneshot::channel();
            let status = match queries.send(Query::Status(reply)) {
                Ok(()) => answer.await.ok(),
                Err(_) => None,
            };
            let line = match status.map(|status| serde_json::to_string(&status)) {
                Some(Ok(json)) => json,
                _ => serde_json::json!({ "error": "the daemon is stopping" }).to_string(),
            };
            write.write_all(format!("{line}\n").as_bytes()).await
        }
        Request::Events {} => {
            let mut rest = reader.into_inner();
            let mut scratch = [0u8; 64];
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(line) => write.write_all(format!("{line}\n").as_bytes()).await?,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let note = serde_json::json!({ "error": "lagged", "missed": missed });
                            write.write_all(format!("{note}\n").as_bytes()).await?;
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                    read = rest.read(&mut scratch) => match read {
                        Ok(0) | Err(_) => return Ok(()),
                        Ok(_) => {}
                    },
                }
            }
        }
    }
}
