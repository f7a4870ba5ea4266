//! `ha-daemon run`: load the configuration and the key, validate the resource group,
//! bind the control socket, lock memory, start the detection thread, survey the resource
//! group, and write every detector event and group report to stdout, and to `events`
//! clients of the control socket, as one JSON object per line until SIGTERM or SIGINT.
//!
//! With `[cluster]`, the [`cluster`] driver owns the role decisions from the survey on:
//! it adopts a running group, acquires, releases and supervises it as the core decides,
//! and its events and group runs are printed too; it follows the disk of every `drbd`
//! member for the core and runs the preflight of every switchover. Without it the daemon
//! only watches:
//! a group found fully running is adopted, untouched, and supervised.

mod cluster;

use std::path::Path;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::{
    config::{Config, ConfigError},
    control::{
        server::{ControlError, ControlSocket, Query, SwitchoverAnswer},
        status::{ClusterStatus, DetectionStatus, Status},
    },
    core::{
        cluster::{Advert, Cluster, SettingsError},
        supervision::Survey,
        wire::{Flags, ResourceHealth, Role},
    },
    detection::{AdvertChannels, Detection, DetectionError, EvidenceMode, Report, ReportBody},
    io::{clock, ebpf, epoch_file, key_file, realtime},
    resource::{
        build::{AgentSettings, group_from},
        drbd::DrbdSettings,
        group::ResourceGroup,
        supervise,
    },
};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Bad configuration.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The key file is missing, unsafe or too short.
    #[error("{0}")]
    Key(#[from] key_file::KeyFileError),
    /// Detection could not start.
    #[error("{0}")]
    Detection(#[from] DetectionError),
    /// The detection thread could not be started or died.
    #[error("detection thread: {0}")]
    Thread(String),
    /// A resource failed validation (every failure, one per line).
    #[error("invalid resources:\n  {}", .0.join("\n  "))]
    Resources(Vec<String>),
    /// The control socket could not be set up (or another daemon holds it).
    #[error("{0}")]
    Control(#[from] ControlError),
    /// The epoch file cannot be read.
    #[error("{0}")]
    Epoch(#[from] epoch_file::EpochFileError),
    /// The epoch file's directory cannot be created.
    #[error("epoch file directory {path}: {source}")]
    EpochDirectory {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The cluster settings break an invariant.
    #[error("cluster: {0}")]
    Cluster(#[from] SettingsError),
}

/// The answer to an operator command without `[cluster]`.
const NO_CLUSTER: &str =
    "this daemon only watches: its configuration has no [cluster] table (no role decisions)";

/// What our heartbeats say before the cluster core runs (and always without
/// `[cluster]`): not holding, epoch 0, health unknown.
const WATCHING: Advert = Advert {
    role: Role::Secondary,
    epoch: 0,
    flags: Flags::empty(),
    health: ResourceHealth::Unknown,
};

/// Everything the daemon prints goes to stdout and to the control socket's `events`
/// clients.
struct Output {
    events: broadcast::Sender<String>,
}

impl Output {
    /// Prints `line` (an object) with `monotonic_ns`, the time now, added.
    fn emit_at(&self, line: impl serde::Serialize) {
        match serde_json::to_value(&line) {
            Ok(serde_json::Value::Object(mut object)) => {
                object.insert("monotonic_ns".into(), clock::monotonic_ns().into());
                self.emit(object);
            }
            Ok(other) => self.emit(other),
            Err(error) => error!(%error, "cannot encode a report"),
        }
    }

    fn emit(&self, line: impl serde::Serialize) {
        match serde_json::to_string(&line) {
            Ok(line) => {
                println!("{line}");
                // No events client listening is fine.
                let _ = self.events.send(line);
            }
            Err(error) => error!(%error, "cannot encode a report"),
        }
    }
}

/// Runs the daemon with the configuration at `path`.
pub async fn run(path: &Path) -> Result<(), DaemonError> {
    // Signal masks survive exec: a parent that blocked SIGTERM would leave the daemon
    // deaf to it. Unblocked here (the runtime's main thread; threads started later
    // inherit it), the kernel delivers them to this thread at least.
    let stop_signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT]);
    stop_signals
        .thread_unblock()
        .map_err(|error| DaemonError::Thread(format!("unblocking SIGTERM: {error}")))?;
    let config = Config::load(path)?;
    let key = key_file::load(&config.key_file)?;
    let group = Arc::new(group_from(&config.resources));
    group.validate().await.map_err(|errors| {
        DaemonError::Resources(errors.iter().map(ToString::to_string).collect())
    })?;
    let control = ControlSocket::bind(&config.control_socket, config.control_group.as_deref())?;
    if config.realtime.lock_memory {
        match realtime::lock_memory() {
            Ok(()) => info!("memory locked (mlockall)"),
            Err(error) => warn!(%error, "could not lock memory"),
        }
    }
    let identity = (config.cluster_id, config.node_id, config.peer_node_id);
    let link_names: Vec<String> = config.links.iter().map(|link| link.name.clone()).collect();
    let drbd: Vec<DrbdSettings> = config
        .resources
        .iter()
        .filter_map(|resource| match &resource.agent {
            AgentSettings::Drbd(settings) => Some(settings.clone()),
            AgentSettings::Mount(_)
            | AgentSettings::Lxc(_)
            | AgentSettings::Vip(_)
            | AgentSettings::Exec(_)
            | AgentSettings::Ocf(_) => None,
        })
        .collect();
    let supervision = config.group;
    let cluster_config = config.cluster.clone();
    let epoch = match &cluster_config {
        Some(cluster) => {
            if let Some(dir) = cluster.epoch_file.parent() {
                std::fs::create_dir_all(dir).map_err(|source| DaemonError::EpochDirectory {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            epoch_file::load(&cluster.epoch_file)?
        }
        None => 0,
    };
    let (advert_tx, advert_rx) = watch::channel(WATCHING);
    let (peer_advert_tx, peer_advert_rx) = watch::channel(None);
    let adverts = AdvertChannels {
        ours: advert_rx,
        peers: peer_advert_tx,
    };
    let (reports_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    let (detection_status, status_requests) = mpsc::unbounded_channel();
    let (thread, mode) = start_detection(config, key, adverts, reports_tx, status_requests)?;
    match &mode {
        EvidenceMode::Ebpf { pinned, adopted } => info!(
            pinned,
            adopted, "kernel evidence: eBPF counters and echo reflector attached"
        ),
        EvidenceMode::Userspace { reason } => {
            warn!(%reason, "DEGRADED: no kernel evidence, userspace socket timestamps only");
        }
    }
    let output = Output {
        events: broadcast::channel(1024).0,
    };
    output.emit(serde_json::json!({ "monotonic_ns": clock::monotonic_ns(), "started": mode }));

    let (survey, report) = supervise::survey(&group).await;
    output.emit(serde_json::json!({ "monotonic_ns": clock::monotonic_ns(), "resources": report }));
    let (group_tx, mut group_reports) = mpsc::unbounded_channel();
    let mut driver = match cluster_config {
        Some(cluster_config) => {
            let core = Cluster::new(
                cluster_config.settings.clone(),
                clock::now(),
                epoch,
                cluster::found(&survey),
            )?;
            let mut driver = cluster::ClusterDriver::new(
                core,
                cluster_config,
                Arc::clone(&group),
                supervision,
                (advert_tx, peer_advert_rx),
                &drbd,
                &link_names,
            );
            driver.drain(&output);
            Some(driver)
        }
        None => {
            if survey == Survey::Running {
                info!("resource group already running: adopted as it is");
                let group = Arc::clone(&group);
                tokio::spawn(
                    async move { supervise::supervise(&group, supervision, group_tx).await },
                );
            }
            None
        }
    };

    let (queries_tx, mut queries) = mpsc::unbounded_channel::<Query>();
    let serving = control.serve(queries_tx, output.events.clone());
    tokio::pin!(serving);
    let evidence = match &mode {
        EvidenceMode::Ebpf { .. } => "ebpf",
        EvidenceMode::Userspace { .. } => "userspace (degraded)",
    };
    let started = tokio::time::Instant::now();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| DaemonError::Thread(error.to_string()))?;
    loop {
        tokio::select! {
            report = reports.recv() => match report {
                Some(report) => {
                    if let (Some(driver), ReportBody::Event(event)) = (&mut driver, &report.body) {
                        driver.detector(&output, event);
                    }
                    output.emit(report);
                }
                None => {
                    let _ = thread.join();
                    return Err(DaemonError::Thread("stopped".into()));
                }
            },
            () = step(&mut driver, &output) => {}
            Some(report) = group_reports.recv() => output.emit(report),
            Some(query) = queries.recv() => match query {
                Query::Command(command, reply) => {
                    let answer = match &mut driver {
                        Some(driver) => driver.command(&output, command).map_err(|e| e.to_string()),
                        None => Err(NO_CLUSTER.to_owned()),
                    };
                    let _ = reply.send(answer);
                }
                Query::Switchover { to, dry_run, reply } => {
                    let answer = match &mut driver {
                        Some(driver) => driver.switchover(&output, to, dry_run),
                        None => SwitchoverAnswer {
                            result: Err(NO_CLUSTER.to_owned()),
                            preflight: None,
                        },
                    };
                    let _ = reply.send(answer);
                }
                Query::Status(reply) => {
                    let asked = StatusAsked {
                        identity,
                        evidence,
                        uptime_s: started.elapsed().as_secs_f64(),
                        detection: detection_status.clone(),
                        group: Arc::clone(&group),
                        cluster: driver.as_ref().map(cluster::ClusterDriver::status),
                    };
                    tokio::spawn(asked.answer(reply));
                }
            },
            () = &mut serving => {}
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info!("stopping");
    // A node that still runs any of its group is alive and holding: its kernel side must
    // stay, so the peer sees "daemon down" (echoes answered), never "peer lost", and a
    // restarted daemon adopts it. Only a node that runs nothing detaches on exit.
    if !group.members().is_empty() && supervise::survey(&group).await.0 != Survey::Stopped {
        ebpf::keep_pinned_at_exit();
        info!("resources still run here: the kernel side stays pinned for the next daemon");
    }
    // Closing the channel ends the detection loop, which drops (detaches) the programs.
    drop(reports);
    let _ = thread.join();
    Ok(())
}

/// The cluster driver's next step; never, without one.
async fn step(driver: &mut Option<cluster::ClusterDriver>, output: &Output) {
    match driver {
        Some(driver) => driver.step(output).await,
        None => std::future::pending().await,
    }
}

/// Starts the detection thread (SCHED_FIFO when configured) and waits until detection
/// runs; returns the thread and the evidence mode it runs in.
fn start_detection(
    config: Config,
    key: crate::core::wire::HeartbeatKey,
    adverts: AdvertChannels,
    reports: mpsc::UnboundedSender<Report>,
    status: mpsc::UnboundedReceiver<oneshot::Sender<DetectionStatus>>,
) -> Result<(std::thread::JoinHandle<()>, EvidenceMode), DaemonError> {
    let (started_tx, started) = std::sync::mpsc::channel();
    let realtime = config.realtime;
    let thread = std::thread::Builder::new()
        .name("ha-detection".into())
        .spawn(move || {
            if realtime.enabled {
                match realtime::make_current_thread_realtime(realtime.priority) {
                    Ok(()) => info!(
                        priority = realtime.priority,
                        "detection thread runs SCHED_FIFO"
                    ),
                    Err(error) => {
                        warn!(%error, "detection thread could not get a real-time priority")
                    }
                }
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started_tx.send(Err(DaemonError::Thread(error.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                match Detection::start(config, key, adverts, clock::now()) {
                    Ok((detection, edges, mode)) => {
                        let _ = started_tx.send(Ok(mode));
                        detection.run(edges, reports, status).await;
                    }
                    Err(error) => {
                        let _ = started_tx.send(Err(error.into()));
                    }
                }
            });
        })
        .map_err(|error| DaemonError::Thread(error.to_string()))?;
    let mode = started
        .recv()
        .map_err(|_| DaemonError::Thread("exited during start".into()))??;
    Ok((thread, mode))
}

/// What a status answer is made of; answered on its own task, so a slow resource
/// monitor never holds up the event stream.
struct StatusAsked {
    identity: (u32, u16, u16),
    evidence: &'static str,
    uptime_s: f64,
    detection: mpsc::UnboundedSender<oneshot::Sender<DetectionStatus>>,
    group: Arc<ResourceGroup>,
    cluster: Option<ClusterStatus>,
}

impl StatusAsked {
    async fn answer(self, reply: oneshot::Sender<Status>) {
        let (ask, detection) = oneshot::channel();
        if self.detection.send(ask).is_err() {
            return;
        }
        let Ok(detection) = detection.await else {
            return;
        };
        let resources = if self.group.members().is_empty() {
            None
        } else {
            let (_, report) = supervise::survey(&self.group).await;
            serde_json::to_value(report).ok()
        };
        let (cluster_id, node_id, peer_node_id) = self.identity;
        let _ = reply.send(Status {
            cluster_id,
            node_id,
            peer_node_id,
            evidence: self.evidence.to_owned(),
            uptime_s: self.uptime_s,
            detection,
            resources,
            cluster: self.cluster,
        });
    }
}
