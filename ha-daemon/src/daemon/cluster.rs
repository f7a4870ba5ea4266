//! The cluster driver: the thin runtime around the pure [`Cluster`]. It feeds the core
//! (detector events, the peer's adverts, operator commands, and the results of what it
//! carried out), carries out the core's actions on tasks of their own, publishes what
//! our heartbeats must say, and prints the core's events and every group run.
//!
//! Invariants:
//! - the epoch is stored durably ([`epoch_file::store`]) before the core hears it is
//!   persisted, so no acquire precedes its epoch on disk; stores run one at a time, in
//!   the order the core asked for them, so the file never goes back to an older epoch;
//! - at most one group run (acquire, release, survey) is in flight: the core asks for
//!   the next only after the result of the last;
//! - the group is supervised (monitored and restarted) exactly while the core holds it,
//!   no run is under way, maintenance is off and the group has not failed; supervision
//!   is aborted before any release or acquire starts;
//! - every advert change is published right after the input that caused it;
//! - with `drbd` members, each is followed live ([`DrbdWatch`], restarted a second after
//!   its stream ends) and the core hears the disk is usable only while every one is
//!   (see [`disk_verdict`]); until the first complete state, and while a stream is
//!   down, it counts as not usable.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument as _, error, warn};

use super::Output;
use crate::{
    config::ClusterConfig,
    control::{
        preflight::{Facts, Preflight},
        server::SwitchoverAnswer,
        status::{ClusterStatus, DiskReport, FailoverReport},
    },
    core::{
        cluster::{
            Action, Advert, Cluster, Command, CommandError, Event, Found, GroupResult,
            ReleaseReason,
            disk::{DiskVerdict, disk_verdict},
        },
        detector,
        plan::Outcome,
        supervision::Survey,
        wire::{Flags, ResourceHealth},
    },
    detection::tokio_deadline,
    io::{clock, epoch_file, witness},
    resource::{
        command::Invocation,
        drbd::{DrbdSettings, watch::DrbdWatch},
        group::{ResourceGroup, Timeline},
        supervise::{self, GroupReport, SupervisionSettings, TimelineReport},
    },
};

/// A result of something the driver carried out, back for the core.
#[derive(Debug)]
enum Input {
    Witness(bool),
    EpochPersisted(u64),
    Fence(bool),
    Run(RunReport),
    Survey(Found),
    Supervision(GroupReport),
    /// The verdict on the disk of the `drbd` member at this index of the followed ones.
    Disk(usize, DiskVerdict),
}

/// How long a DRBD follower waits before it starts a new `drbdsetup events2` after the
/// last one ended.
const DISK_RESTART: Duration = Duration::from_secs(1);

/// One group run the core asked for, as printed (`{"run": ...}`) and kept for status.
#[derive(Clone, Debug, Serialize)]
struct RunReport {
    /// `acquire` or `release`.
    action: &'static str,
    /// The tenure's epoch (acquire).
    epoch: Option<u64>,
    /// Why (the core's reason, snake case).
    reason: String,
    /// What the core is told.
    result: GroupResult,
    /// CLOCK_MONOTONIC ns when the run started.
    started_ns: u64,
    /// The run step by step (`None`: it outlived its timeout and was cut short).
    timeline: Option<TimelineReport>,
}

/// The runtime of one node's cluster core. See the module doc.
pub(super) struct ClusterDriver {
    cluster: Cluster,
    config: ClusterConfig,
    group: Arc<ResourceGroup>,
    supervision: SupervisionSettings,
    advert: watch::Sender<Advert>,
    peer_adverts: watch::Receiver<Option<Advert>>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    inputs: mpsc::UnboundedReceiver<Input>,
    /// Epochs to store, in order (see [`persister`]).
    persist: mpsc::UnboundedSender<u64>,
    running: bool,
    supervisor: Option<JoinHandle<()>>,
    /// CLOCK_MONOTONIC ns of the latest claim (the decision of a failover).
    claimed_ns: Option<u64>,
    last_failover: Option<FailoverReport>,
    /// The latest verdict on each followed DRBD disk, in member order.
    disks: Vec<DiskVerdict>,
    /// The DRBD followers (aborted on drop, which ends their `drbdsetup`).
    followers: Vec<JoinHandle<()>>,
    /// Every link by name, in slot order, and whether the detector has it up.
    links: Vec<(String, bool)>,
}

impl ClusterDriver {
    /// The driver of a core that starts with the stored epoch and the group as
    /// `found`; publishes its first advert on `advert`; follows the disks of `drbd`
    /// (the group's `drbd` members). Must run inside a tokio runtime.
    pub(super) fn new(
        mut cluster: Cluster,
        config: ClusterConfig,
        group: Arc<ResourceGroup>,
        supervision: SupervisionSettings,
        channels: (watch::Sender<Advert>, watch::Receiver<Option<Advert>>),
        drbd: &[DrbdSettings],
        links: &[String],
    ) -> Self {
        let (advert, peer_adverts) = channels;
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let persist = persister(config.epoch_file.clone(), inputs_tx.clone());
        let disks: Vec<DiskVerdict> = drbd
            .iter()
            .map(|settings| DiskVerdict::unknown(&settings.resource, "state not known yet"))
            .collect();
        if !disks.is_empty() {
            cluster.handle_disk(clock::now(), false);
        }
        let followers = drbd
            .iter()
            .enumerate()
            .map(|(index, settings)| {
                tokio::spawn(follow_disk(index, settings.clone(), inputs_tx.clone()))
            })
            .collect();
        Self {
            cluster,
            config,
            group,
            supervision,
            advert,
            peer_adverts,
            inputs_tx,
            inputs,
            persist,
            running: false,
            supervisor: None,
            claimed_ns: None,
            last_failover: None,
            disks,
            followers,
            links: links.iter().map(|name| (name.clone(), false)).collect(),
        }
    }

    /// Feeds a detector event.
    pub(super) fn detector(&mut self, output: &Output, event: &detector::Event) {
        let link = match event {
            detector::Event::LinkUp { link, .. } => Some((link, true)),
            detector::Event::LinkDown { link, .. } => Some((link, false)),
            detector::Event::Degraded { .. }
            | detector::Event::AllLinksUp { .. }
            | detector::Event::PeerAlive { .. }
            | detector::Event::PeerDaemonDown { .. }
            | detector::Event::PeerLost { .. } => None,
        };
        if let Some((link, up)) = link
            && let Some((_, state)) = self.links.get_mut(usize::from(link.slot()))
        {
            *state = up;
        }
        self.cluster.handle_detector(clock::now(), event);
        self.drain(output);
    }

    /// Carries out an operator command.
    pub(super) fn command(
        &mut self,
        output: &Output,
        command: Command,
    ) -> Result<(), CommandError> {
        let result = self.cluster.handle_command(clock::now(), command);
        self.drain(output);
        result
    }

    /// Runs the preflight of a switchover to `to` and, unless `dry_run` or a check
    /// failed, starts it.
    pub(super) fn switchover(
        &mut self,
        output: &Output,
        to: Option<u16>,
        dry_run: bool,
    ) -> SwitchoverAnswer {
        let settings = self.cluster.settings();
        let members: Vec<String> = self
            .group
            .members()
            .iter()
            .map(|member| member.name.clone())
            .collect();
        let preflight = Preflight::new(&Facts {
            me: settings.node_id,
            peer: settings.peer_id,
            request: self.cluster.check_switchover(to),
            links: &self.links,
            peer_advert: self.cluster.peer_advert(),
            disks: &self.disks,
            members: &members,
            step_timeout: settings.switchover_timeout,
        });
        let result = match preflight.refusal() {
            Some(refusal) => Err(refusal),
            None if dry_run => Ok(()),
            None => self
                .command(output, Command::Switchover { to })
                .map_err(|error| error.to_string()),
        };
        SwitchoverAnswer {
            result,
            preflight: Some(preflight),
        }
    }

    /// Waits for the next input of the core (a result, a peer advert, or a timer) and
    /// feeds it.
    pub(super) async fn step(&mut self, output: &Output) {
        let deadline = self
            .cluster
            .poll_timeout()
            .map(tokio_deadline)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            Some(input) = self.inputs.recv() => self.feed(output, input),
            Ok(()) = self.peer_adverts.changed() => {
                let advert = *self.peer_adverts.borrow_and_update();
                if let Some(advert) = advert {
                    self.cluster.handle_peer_advert(clock::now(), advert);
                }
            }
            () = tokio::time::sleep_until(deadline) => self.cluster.handle_timeout(clock::now()),
        }
        self.drain(output);
    }

    /// The cluster part of `status`.
    pub(super) fn status(&self) -> ClusterStatus {
        let advert = self.cluster.advertised();
        ClusterStatus {
            role: if self.cluster.holds_group() {
                "primary"
            } else {
                "secondary"
            }
            .to_owned(),
            epoch: self.cluster.epoch(),
            owner: enum_name(&self.cluster.owner()),
            standby: advert.flags.contains(Flags::STANDBY),
            maintenance: advert.flags.contains(Flags::MAINTENANCE),
            switchover: advert.flags.contains(Flags::SWITCHOVER_REQUEST)
                || advert.flags.contains(Flags::SWITCHOVER_ACK),
            health: health_name(advert.health).to_owned(),
            last_failover: self.last_failover.clone(),
            disks: self
                .disks
                .iter()
                .map(|disk| DiskReport {
                    state: disk.state.clone(),
                    usable: disk.usable,
                })
                .collect(),
            takeover_blocked: self.cluster.blocked().map(|cause| enum_name(&cause)),
            startup_wait_left_ms: self.cluster.startup_wait_until().map(|until| {
                let left = until.saturating_duration_since(clock::now());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
            }),
        }
    }

    fn feed(&mut self, output: &Output, input: Input) {
        let now = clock::now();
        match input {
            Input::Witness(reachable) => self.cluster.handle_witness(now, reachable),
            Input::EpochPersisted(epoch) => self.cluster.handle_epoch_persisted(now, epoch),
            Input::Fence(fenced) => self.cluster.handle_fence(now, fenced),
            Input::Run(run) => {
                self.running = false;
                output.emit_at(serde_json::json!({ "run": &run }));
                if run.action == "acquire" {
                    self.last_failover = Some(FailoverReport {
                        decided_ns: self.claimed_ns,
                        run: serde_json::to_value(&run).unwrap_or_default(),
                        done_ns: clock::monotonic_ns(),
                    });
                }
                self.cluster.handle_group(now, run.result);
            }
            Input::Survey(found) => {
                self.running = false;
                self.cluster.handle_survey(now, found);
            }
            Input::Disk(index, verdict) => {
                if let Some(disk) = self.disks.get_mut(index) {
                    output.emit_at(serde_json::json!({
                        "disk": { "state": &verdict.state, "usable": verdict.usable }
                    }));
                    *disk = verdict;
                }
                let usable = self.disks.iter().all(|disk| disk.usable);
                self.cluster.handle_disk(now, usable);
            }
            Input::Supervision(report) => {
                let failed = matches!(report, GroupReport::Failed { .. });
                output.emit_at(&report);
                if failed {
                    self.supervisor = None;
                    self.cluster.handle_group(now, GroupResult::Failed);
                }
            }
        }
    }

    /// Carries out every pending action, prints every event, publishes the advert and
    /// starts or stops supervision.
    pub(super) fn drain(&mut self, output: &Output) {
        loop {
            while let Some(action) = self.cluster.poll_action() {
                self.carry_out(action);
            }
            let mut any = false;
            while let Some(event) = self.cluster.poll_event() {
                any = true;
                if let Event::Claiming { .. } = event {
                    self.claimed_ns = Some(clock::monotonic_ns());
                }
                output.emit_at(serde_json::json!({ "cluster": event }));
            }
            if !any {
                break;
            }
        }
        self.advert.send_if_modified(|advert| {
            let now = self.cluster.advertised();
            let changed = *advert != now;
            *advert = now;
            changed
        });
        self.sync_supervision();
    }

    fn carry_out(&mut self, action: Action) {
        let inputs = self.inputs_tx.clone();
        match action {
            Action::ProbeWitness => {
                let addresses = self.config.witnesses.clone();
                let timeout = self.config.settings.witness_timeout;
                tokio::spawn(async move {
                    let reachable = witness::reachable(&addresses, timeout).await;
                    let _ = inputs.send(Input::Witness(reachable));
                });
            }
            Action::FencePeer => {
                let timeout = self.config.fence_timeout;
                let Some(argv) = self.config.fence.clone() else {
                    error!("the core asked to fence without a fence command");
                    let _ = inputs.send(Input::Fence(false));
                    return;
                };
                tokio::spawn(async move {
                    let fenced = fence(&argv, timeout).await;
                    let _ = inputs.send(Input::Fence(fenced));
                });
            }
            Action::PersistEpoch { epoch } => {
                if self.persist.send(epoch).is_err() {
                    error!(epoch, "the epoch store task ended: epoch not persisted");
                }
            }
            Action::Acquire { epoch, reason } => {
                self.stop_supervision();
                self.running = true;
                let group = Arc::clone(&self.group);
                let limit = self.config.settings.acquire_timeout;
                let span = tracing::info_span!("acquire", epoch, reason = ?reason);
                let run = async move {
                    let started_ns = clock::monotonic_ns();
                    let timeline = tokio::time::timeout(limit, group.start()).await.ok();
                    let _ = inputs.send(Input::Run(RunReport {
                        action: "acquire",
                        epoch: Some(epoch),
                        reason: enum_name(&reason),
                        result: acquire_result(timeline.as_ref()),
                        started_ns,
                        timeline: timeline.as_ref().map(TimelineReport::from),
                    }));
                };
                tokio::spawn(run.instrument(span));
            }
            Action::Release { reason } => {
                self.stop_supervision();
                self.running = true;
                let group = Arc::clone(&self.group);
                let limit = self.config.settings.release_timeout;
                let span = tracing::info_span!("release", reason = ?reason);
                let run = async move {
                    let started_ns = clock::monotonic_ns();
                    let timeline = tokio::time::timeout(limit, group.stop()).await.ok();
                    let _ = inputs.send(Input::Run(release_report(
                        reason,
                        started_ns,
                        timeline.as_ref(),
                    )));
                };
                tokio::spawn(run.instrument(span));
            }
            Action::SurveyGroup => {
                self.running = true;
                let group = Arc::clone(&self.group);
                tokio::spawn(async move {
                    let (survey, _) = supervise::survey(&group).await;
                    let _ = inputs.send(Input::Survey(found(&survey)));
                });
            }
        }
    }

    fn sync_supervision(&mut self) {
        let advert = self.cluster.advertised();
        let wanted = self.cluster.holds_group()
            && !self.running
            && !advert.flags.contains(Flags::MAINTENANCE)
            && advert.health == ResourceHealth::Healthy;
        if self
            .supervisor
            .as_ref()
            .is_some_and(JoinHandle::is_finished)
        {
            self.supervisor = None;
        }
        match (wanted, self.supervisor.is_some()) {
            (true, false) => {
                let group = Arc::clone(&self.group);
                let settings = self.supervision;
                let inputs = self.inputs_tx.clone();
                self.supervisor = Some(tokio::spawn(async move {
                    let (reports, mut received) = mpsc::unbounded_channel();
                    let forward = async {
                        while let Some(report) = received.recv().await {
                            if inputs.send(Input::Supervision(report)).is_err() {
                                return;
                            }
                        }
                    };
                    tokio::join!(supervise::supervise(&group, settings, reports), forward);
                }));
            }
            (false, true) => self.stop_supervision(),
            _ => {}
        }
    }

    /// Aborts supervision (and any restart it runs: dropping it kills its programs).
    fn stop_supervision(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
    }
}

impl Drop for ClusterDriver {
    fn drop(&mut self) {
        self.stop_supervision();
        for follower in &self.followers {
            follower.abort();
        }
    }
}

/// Follows the disk of one `drbd` member for as long as the driver lives: reports
/// every change of its verdict as `Input::Disk(index, ..)`; when the events2 stream
/// ends (or cannot start) reports the disk not usable and starts a new one
/// [`DISK_RESTART`] later.
async fn follow_disk(index: usize, settings: DrbdSettings, inputs: mpsc::UnboundedSender<Input>) {
    let mut last: Option<DiskVerdict> = None;
    let mut report = |verdict: DiskVerdict| {
        if last.as_ref() == Some(&verdict) {
            return true;
        }
        last = Some(verdict.clone());
        inputs.send(Input::Disk(index, verdict)).is_ok()
    };
    loop {
        let ended = match DrbdWatch::start(&settings) {
            Ok(watch) => {
                let mut changes = watch.subscribe();
                loop {
                    let followed = changes.borrow_and_update().clone();
                    if let Some(ended) = followed.ended {
                        break ended;
                    }
                    if !report(disk_verdict(&followed.state)) {
                        return;
                    }
                    if changes.changed().await.is_err() {
                        break "the follower stopped".to_owned();
                    }
                }
            }
            Err(error) => error.to_string(),
        };
        warn!(resource = %settings.resource, %ended, "DRBD state not followed: disk counts as not usable");
        let why = format!("state not followed ({ended})");
        let verdict = DiskVerdict::unknown(&settings.resource, &why);
        if !report(verdict) {
            return;
        }
        tokio::time::sleep(DISK_RESTART).await;
    }
}

/// The task that stores epochs one at a time, in the order received, and reports each
/// stored one. A failed store is logged; its claim is never announced and ends by its
/// own timeout.
fn persister(
    path: std::path::PathBuf,
    inputs: mpsc::UnboundedSender<Input>,
) -> mpsc::UnboundedSender<u64> {
    let (persist, mut epochs) = mpsc::unbounded_channel::<u64>();
    tokio::spawn(async move {
        while let Some(epoch) = epochs.recv().await {
            let path = path.clone();
            match tokio::task::spawn_blocking(move || epoch_file::store(&path, epoch)).await {
                Ok(Ok(())) => {
                    if inputs.send(Input::EpochPersisted(epoch)).is_err() {
                        return;
                    }
                }
                Ok(Err(error)) => error!(%error, epoch, "epoch not persisted: no acquire"),
                Err(error) => error!(%error, epoch, "epoch store task failed: no acquire"),
            }
        }
    });
    persist
}

/// Runs the fence command; `true` only when it exits 0 within `timeout`.
async fn fence(argv: &[String], timeout: Duration) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let invocation = Invocation::new(program, args);
    match tokio::time::timeout(timeout, invocation.run()).await {
        Ok(Ok(outcome)) if outcome.success() => true,
        Ok(Ok(outcome)) => {
            warn!(
                command = ?argv,
                code = ?outcome.code,
                stderr = %outcome.stderr.trim(),
                "fence command failed: no takeover"
            );
            false
        }
        Ok(Err(error)) => {
            warn!(%error, "fence command could not run: no takeover");
            false
        }
        Err(_) => {
            warn!(command = ?argv, ?timeout, "fence command timed out (killed): no takeover");
            false
        }
    }
}

/// What an acquire run (`None`: cut short by its timeout) means for the core.
fn acquire_result(timeline: Option<&Timeline>) -> GroupResult {
    match timeline.map(|timeline| &timeline.outcome) {
        Some(Outcome::Started) => GroupResult::Acquired,
        Some(Outcome::StartFailed {
            rollback_failed: None,
            ..
        }) => GroupResult::AcquireFailed { rolled_back: true },
        Some(_) | None => GroupResult::AcquireFailed { rolled_back: false },
    }
}

/// What a release run (`None`: cut short by its timeout) means for the core.
fn release_result(timeline: Option<&Timeline>) -> GroupResult {
    match timeline.map(|timeline| &timeline.outcome) {
        Some(Outcome::Stopped) => GroupResult::Released,
        Some(_) | None => GroupResult::ReleaseFailed,
    }
}

fn release_report(
    reason: ReleaseReason,
    started_ns: u64,
    timeline: Option<&Timeline>,
) -> RunReport {
    RunReport {
        action: "release",
        epoch: None,
        reason: enum_name(&reason),
        result: release_result(timeline),
        started_ns,
        timeline: timeline.map(TimelineReport::from),
    }
}

/// A survey as the core takes it.
pub(super) fn found(survey: &Survey) -> Found {
    match survey {
        Survey::Running => Found::Running,
        Survey::Stopped => Found::Stopped,
        Survey::Partial(_) => Found::Partial,
    }
}

fn health_name(health: ResourceHealth) -> &'static str {
    match health {
        ResourceHealth::Unknown => "unknown",
        ResourceHealth::Healthy => "healthy",
        ResourceHealth::Degraded => "degraded",
        ResourceHealth::Failed => "failed",
    }
}

/// The snake-case name serde gives a unit variant.
fn enum_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(outcome: Outcome) -> Timeline {
        Timeline {
            steps: Vec::new(),
            outcome,
            total: Duration::ZERO,
        }
    }

    #[test]
    fn an_acquire_counts_as_rolled_back_only_when_every_start_was_undone() {
        let started = timeline(Outcome::Started);
        assert_eq!(acquire_result(Some(&started)), GroupResult::Acquired);
        let undone = timeline(Outcome::StartFailed {
            failed: 1,
            rollback_failed: None,
        });
        assert_eq!(
            acquire_result(Some(&undone)),
            GroupResult::AcquireFailed { rolled_back: true }
        );
        let stuck = timeline(Outcome::StartFailed {
            failed: 2,
            rollback_failed: Some(0),
        });
        assert_eq!(
            acquire_result(Some(&stuck)),
            GroupResult::AcquireFailed { rolled_back: false }
        );
        assert_eq!(
            acquire_result(None),
            GroupResult::AcquireFailed { rolled_back: false },
            "a run cut short by its timeout may have left members running"
        );
    }

    #[test]
    fn a_release_succeeds_only_when_everything_stopped_in_time() {
        assert_eq!(
            release_result(Some(&timeline(Outcome::Stopped))),
            GroupResult::Released
        );
        assert_eq!(
            release_result(Some(&timeline(Outcome::StopFailed { failed: 0 }))),
            GroupResult::ReleaseFailed
        );
        assert_eq!(release_result(None), GroupResult::ReleaseFailed);
    }

    use crate::core::cluster::AcquireReason;

    #[test]
    fn names_are_the_serde_names() {
        assert_eq!(enum_name(&ReleaseReason::Isolated), "isolated");
        assert_eq!(enum_name(&AcquireReason::PeerLost), "peer_lost");
        assert_eq!(found(&Survey::Partial(Vec::new())), Found::Partial);
    }
}
