//! `ha-daemon run`: load the configuration and the key, validate the resource group,
//! lock memory, start the detection thread, survey the resource group (adopting it,
//! untouched, when it is already fully running, and then watching it), and write every
//! detector event and group report to stdout as one JSON object per line until SIGTERM
//! or SIGINT. (Cluster logic and the control socket build on this.)

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::{
    config::{Config, ConfigError},
    core::supervision::Survey,
    detection::{Detection, DetectionError, EvidenceMode, Report},
    io::{clock, key_file, realtime},
    resource::{build::group_from, supervise},
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
}

/// Runs the daemon with the configuration at `path`.
pub async fn run(path: &Path) -> Result<(), DaemonError> {
    let config = Config::load(path)?;
    let key = key_file::load(&config.key_file)?;
    let group = Arc::new(group_from(&config.resources));
    group.validate().await.map_err(|errors| {
        DaemonError::Resources(errors.iter().map(ToString::to_string).collect())
    })?;
    let supervision = config.group;
    if config.realtime.lock_memory {
        match realtime::lock_memory() {
            Ok(()) => info!("memory locked (mlockall)"),
            Err(error) => warn!(%error, "could not lock memory"),
        }
    }
    let (reports_tx, mut reports) = mpsc::unbounded_channel::<Report>();
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
                match Detection::start(config, key, clock::now()) {
                    Ok((detection, edges, mode)) => {
                        let _ = started_tx.send(Ok(mode));
                        detection.run(edges, reports_tx).await;
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
    match &mode {
        EvidenceMode::Ebpf { pinned, adopted } => info!(
            pinned,
            adopted, "kernel evidence: eBPF counters and echo reflector attached"
        ),
        EvidenceMode::Userspace { reason } => {
            warn!(%reason, "DEGRADED: no kernel evidence, userspace socket timestamps only");
        }
    }
    println!(
        "{}",
        serde_json::json!({ "monotonic_ns": clock::monotonic_ns(), "started": mode })
    );

    let (survey, report) = supervise::survey(&group).await;
    println!(
        "{}",
        serde_json::json!({ "monotonic_ns": clock::monotonic_ns(), "resources": report })
    );
    let (group_tx, mut group_reports) = mpsc::unbounded_channel();
    if survey == Survey::Running {
        info!("resource group already running: adopted as it is");
        let group = Arc::clone(&group);
        tokio::spawn(async move { supervise::supervise(&group, supervision, group_tx).await });
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| DaemonError::Thread(error.to_string()))?;
    loop {
        tokio::select! {
            report = reports.recv() => match report {
                Some(report) => match serde_json::to_string(&report) {
                    Ok(line) => println!("{line}"),
                    Err(error) => error!(%error, "cannot encode event"),
                },
                None => {
                    let _ = thread.join();
                    return Err(DaemonError::Thread("stopped".into()));
                }
            },
            Some(report) = group_reports.recv() => match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(error) => error!(%error, "cannot encode group report"),
            },
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info!("stopping");
    // Closing the channel ends the detection loop, which drops (detaches) the programs.
    drop(reports);
    let _ = thread.join();
    Ok(())
}
