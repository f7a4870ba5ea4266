//! The detection loop: the thin driver around the pure [`Detector`].
//!
//! It runs on its own thread, with a real-time priority when configured, so a loaded
//! machine does not delay our heartbeats (a false takeover on the peer) or our view of
//! the peer's (a false alarm here). Every interval it sends a heartbeat and an echo
//! request on every link, drains the heartbeats queued on the sockets (verified, and fed
//! with their kernel receive time) and reads the kernel counters: one wakeup per
//! interval, however many packets arrived. Before the detector judges silence
//! (`handle_timeout`), the kernel counters are always read first: evidence the kernel
//! saw while this thread was descheduled is never mistaken for silence.
//!
//! Carrier changes of the link interfaces come from netlink and take a link down at
//! once.
//!
//! Outputs, each stamped, sent to the daemon's main runtime: detector events, and
//! rejected heartbeats (per link and reason, when the count reaches 1, 2, 4, 8, ...:
//! every kind of trouble is reported at once, a flood only logarithmically).
//!
//! The cluster's side of the heartbeats: every heartbeat sent carries the [`Advert`] last
//! published by the main runtime (role, epoch, flags, health), and the advert of each
//! verified peer heartbeat newer than the last one forwarded is published back when it
//! differs from it.

use std::{sync::Arc, time::Duration};

use ha_common::{Counters, echo};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::{
    config::Config,
    control::status::{DetectionStatus, LinkReport},
    core::{
        cluster::Advert,
        detector::{Detector, Event},
        evidence::{EvidenceKind, LinkId, LinkSet},
        time::Instant,
        wire::{self, Heartbeat, HeartbeatKey, RejectCounts, ReplayGuard},
    },
    io::{
        bpf_pins::PinDir,
        carrier::{self, CarrierChange},
        clock,
        ebpf::{EbpfError, EdgeEvents, KernelEvidence, LinkSpec},
        link_socket::{LinkAddresses, LinkSocket},
    },
};

/// Why detection could not start.
#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    /// A link's sockets could not be opened.
    #[error("link {link}: {source}")]
    Socket {
        /// Link name.
        link: String,
        /// What the socket calls said.
        source: std::io::Error,
    },
    /// The detector refused its configuration.
    #[error("detector: {0}")]
    Detector(#[from] crate::core::detector_config::ConfigError),
}

/// Whether kernel evidence is in use, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum EvidenceMode {
    /// XDP/tc counters, echo reflection and edge events are active.
    Ebpf {
        /// Pinned in bpffs: they outlive a crash of this daemon.
        pinned: bool,
        /// Links whose attachments were adopted from a previous daemon.
        adopted: usize,
    },
    /// Userspace only (socket receive times): degraded.
    Userspace {
        /// Why eBPF is not in use.
        reason: String,
    },
}

/// One line of the daemon's report stream.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    /// CLOCK_MONOTONIC ns when the driver saw it.
    pub monotonic_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: ReportBody,
}

/// What a [`Report`] says.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportBody {
    /// A detector event.
    Event(Event),
    /// Datagrams on the heartbeat port that were not accepted.
    Rejected {
        /// The link's name.
        link: String,
        /// Why.
        reason: wire::Reject,
        /// How many for this link and reason so far.
        count: u64,
    },
}

/// The state of the loop (see the module doc).
pub struct Detection {
    config: Config,
    key: HeartbeatKey,
    detector: Detector,
    sockets: Vec<Arc<LinkSocket>>,
    kernel: Option<KernelEvidence>,
    /// Kernel counters as last read, per link, to see what advanced.
    seen: Vec<Counters>,
    replay: Vec<ReplayGuard>,
    rejects: Vec<RejectCounts>,
    /// Reports not yet sent (rejections found while verifying).
    pending: Vec<ReportBody>,
    seq: u64,
    /// When this loop last woke up.
    last_wake: Instant,
    /// Silence is not judged before this (see [`Detection::woke`]).
    judge_after: Instant,
    /// What our heartbeats say (published by the main runtime).
    advert: watch::Receiver<Advert>,
    /// The peer's latest advert, for the main runtime.
    peer_advert: watch::Sender<Option<Advert>>,
    /// Sequence number of the peer heartbeat whose advert was forwarded last.
    peer_seq: u64,
}

/// The advert channels between the detection thread and the main runtime.
pub struct AdvertChannels {
    /// What our heartbeats say.
    pub ours: watch::Receiver<Advert>,
    /// The peer's latest advert.
    pub peers: watch::Sender<Option<Advert>>,
}

impl Detection {
    /// Opens the link sockets and, when possible, loads the kernel programs (else the
    /// reason lands in the returned mode). Must run inside a tokio runtime.
    pub fn start(
        config: Config,
        key: HeartbeatKey,
        adverts: AdvertChannels,
        now: Instant,
    ) -> Result<(Self, Option<EdgeEvents>, EvidenceMode), DetectionError> {
        let sockets = config
            .links
            .iter()
            .map(|link| {
                LinkSocket::open(&LinkAddresses {
                    interface: link.interface.clone(),
                    local: link.local,
                    peer: link.peer,
                    heartbeat_port: config.heartbeat.port,
                    echo_port: config.heartbeat.echo_port,
                    dscp: config.heartbeat.dscp,
                })
                .map(Arc::new)
                .map_err(|source| DetectionError::Socket {
                    link: link.name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let specs: Vec<LinkSpec> = config
            .links
            .iter()
            .map(|link| LinkSpec {
                interface: link.interface.clone(),
                peer_ipv4: match link.peer {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(_) => None,
                },
                peer_ipv6: match link.peer {
                    std::net::IpAddr::V6(v6) => Some(v6),
                    std::net::IpAddr::V4(_) => None,
                },
                heartbeat_port: config.heartbeat.port,
                echo_port: config.heartbeat.echo_port,
                node_id: config.node_id,
                peer_node_id: config.peer_node_id,
                replication_ports: config.replication_ports.clone(),
                silence: config.heartbeat.interval * 2,
            })
            .collect();
        let loaded = if config.ebpf {
            let pins = match PinDir::prepare(&config.bpf_pin_directory) {
                Ok(pins) => Some(pins),
                Err(error) => {
                    warn!(%error, "kernel programs NOT pinned: they will end with this daemon");
                    None
                }
            };
            let pinned = pins.is_some();
            KernelEvidence::load(&specs, pins).map(|loaded| (loaded, pinned))
        } else {
            Err(EbpfError::Disabled)
        };
        let (kernel, edges, mode) = match loaded {
            Ok(((kernel, edges), pinned)) => {
                let adopted = kernel.links().iter().filter(|link| link.adopted).count();
                (
                    Some(kernel),
                    Some(edges),
                    EvidenceMode::Ebpf { pinned, adopted },
                )
            }
            Err(error) => {
                warn!(%error, "running WITHOUT kernel evidence: userspace socket timestamps only");
                (
                    None,
                    None,
                    EvidenceMode::Userspace {
                        reason: error.to_string(),
                    },
                )
            }
        };
        let detector = Detector::new(config.detector, LinkSet::first(config.links.len()), now)?;
        let links = config.links.len();
        // Survives restarts without a stored counter: a new process starts above any
        // sequence number the old one can have sent (see wire::Heartbeat::seq).
        let seq = clock::realtime_ns();
        Ok((
            Self {
                config,
                key,
                detector,
                sockets,
                kernel,
                seen: vec![Counters::default(); links],
                replay: vec![ReplayGuard::new(); links],
                rejects: vec![RejectCounts::default(); links],
                pending: Vec::new(),
                seq,
                last_wake: now,
                judge_after: now,
                advert: adverts.ours,
                peer_advert: adverts.peers,
                peer_seq: 0,
            },
            edges,
            mode,
        ))
    }

    /// Runs until `reports` is closed, answering status queries from `status`.
    pub async fn run(
        mut self,
        mut edges: Option<EdgeEvents>,
        reports: mpsc::UnboundedSender<Report>,
        mut status: mpsc::UnboundedReceiver<oneshot::Sender<DetectionStatus>>,
    ) {
        let (carrier_tx, mut carrier_changes) = mpsc::unbounded_channel();
        let ifindexes = self
            .config
            .links
            .iter()
            .map(|link| nix::net::if_::if_nametoindex(link.interface.as_str()).unwrap_or(0))
            .collect();
        tokio::spawn(async move {
            if let Err(error) = carrier::watch(ifindexes, carrier_tx).await {
                warn!(%error, "no carrier notifications: link loss is seen by silence only");
            }
        });
        let mut tick = tokio::time::interval(self.config.heartbeat.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            let deadline = self
                .detector
                .poll_timeout()
                .map(|at| tokio_deadline(at.max(self.judge_after)))
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tick.tick() => {
                    if reports.is_closed() {
                        return;
                    }
                    self.woke();
                    self.send_all();
                    self.catch_up();
                    self.judge();
                }
                Some(reply) = status.recv() => {
                    self.woke();
                    self.catch_up();
                    self.judge();
                    let _ = reply.send(self.status());
                }
                Some(CarrierChange { link, up }) = carrier_changes.recv() => {
                    self.catch_up();
                    if let Some(id) = u8::try_from(link).ok().and_then(LinkId::new) {
                        let _ = self.detector.handle_carrier(clock::now(), id, up);
                    }
                }
                edge = next_edge(&mut edges) => {
                    if let Err(error) = edge {
                        warn!(%error, "edge events stopped");
                        edges = None;
                    }
                    self.woke();
                    self.read_kernel();
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.woke();
                    self.catch_up();
                    self.judge();
                }
            }
            let events = std::iter::from_fn(|| self.detector.poll_event()).map(ReportBody::Event);
            let bodies: Vec<ReportBody> = self.pending.drain(..).chain(events).collect();
            for body in bodies {
                debug!(?body, "report");
                let report = Report {
                    monotonic_ns: clock::monotonic_ns(),
                    body,
                };
                if reports.send(report).is_err() {
                    return;
                }
            }
        }
    }

    /// The detector's view of the peer and of every link, now.
    fn status(&self) -> DetectionStatus {
        let now = self.detector.now();
        let peer = serde_json::to_value(self.detector.peer_state())
            .ok()
            .and_then(|peer| peer.as_str().map(str::to_owned))
            .unwrap_or_default();
        let links = self
            .config
            .links
            .iter()
            .enumerate()
            .filter_map(|(slot, link)| {
                let id = u8::try_from(slot).ok().and_then(LinkId::new)?;
                let status = self.detector.link_status(id)?;
                Some(LinkReport::new(&link.name, &link.interface, &status, now))
            })
            .collect();
        DetectionStatus { peer, links }
    }

    fn send_all(&mut self) {
        self.seq += 1;
        let advert = *self.advert.borrow();
        let heartbeat = Heartbeat {
            seq: self.seq,
            cluster_id: self.config.cluster_id,
            node_id: self.config.node_id,
            epoch: advert.epoch,
            role: advert.role,
            flags: advert.flags,
            health: advert.health,
            hears: self.detector.hearing(),
        };
        let datagram = wire::encode(&heartbeat, &self.key);
        let request = echo::request(self.config.node_id, self.seq, clock::monotonic_ns());
        for (socket, link) in self.sockets.iter().zip(&self.config.links) {
            if let Err(error) = socket.send_heartbeat(&datagram) {
                debug!(link = %link.name, %error, "heartbeat not sent");
            }
            if self.kernel.is_some()
                && let Err(error) = socket.send_echo(&request)
            {
                debug!(link = %link.name, %error, "echo request not sent");
            }
        }
    }

    /// Notes a wakeup. After a stall of this thread (a wakeup more than two intervals
    /// after the previous one), silence is not judged for one more interval: while we
    /// were stalled we sent no echo requests, so the echoes' silence was ours, not the
    /// link's, and the ones we send now need a round trip to come back. Detection is
    /// late by at most one interval, and only right after our own stall.
    fn woke(&mut self) {
        let now = clock::now();
        let interval = self.config.heartbeat.interval;
        if now.saturating_duration_since(self.last_wake) > interval * 2 {
            self.judge_after = now.saturating_add(interval);
        }
        self.last_wake = now;
    }

    /// Judges silence now, unless right after a stall of this thread.
    fn judge(&mut self) {
        let now = clock::now();
        if now >= self.judge_after {
            self.detector.handle_timeout(now);
        }
    }

    /// Feeds all evidence that arrived up to now, before silence is judged: every
    /// heartbeat queued on the sockets, with its kernel receive time, and what the
    /// kernel counted.
    fn catch_up(&mut self) {
        let mut buf = [0u8; 2048];
        for link in 0..self.sockets.len() {
            while let Ok(received) = self.sockets[link].recv_heartbeat_now(&mut buf) {
                self.verify(link, &buf[..received.len], received.at_ns);
            }
        }
        self.read_kernel();
    }

    /// Feeds every kernel timestamp that advanced since the last read.
    fn read_kernel(&mut self) {
        let Some(kernel) = &self.kernel else { return };
        for (slot, seen) in self.seen.iter_mut().enumerate() {
            let Ok(stats) = kernel.stats(slot as u32) else {
                continue;
            };
            let Some(link) = u8::try_from(slot).ok().and_then(LinkId::new) else {
                continue;
            };
            let rx = stats.rx;
            for (now_ns, before_ns, kind) in [
                (
                    rx.heartbeat_last_ns,
                    seen.heartbeat_last_ns,
                    EvidenceKind::KernelHeartbeat,
                ),
                (rx.echo_last_ns, seen.echo_last_ns, EvidenceKind::Echo),
                (
                    rx.replication_last_ns,
                    seen.replication_last_ns,
                    EvidenceKind::Replication,
                ),
            ] {
                if now_ns > before_ns {
                    let _ = self
                        .detector
                        .handle_evidence(Instant::from_nanos(now_ns), link, kind);
                }
            }
            *seen = rx;
        }
    }

    fn verify(&mut self, link: usize, bytes: &[u8], at_ns: u64) {
        let decoded = wire::decode(
            bytes,
            &self.key,
            self.config.cluster_id,
            self.config.node_id,
        )
        .and_then(|heartbeat| {
            if heartbeat.node_id != self.config.peer_node_id {
                return Err(wire::Reject::UnknownNode);
            }
            self.replay[link].check(&heartbeat).map(|()| heartbeat)
        });
        match (decoded, u8::try_from(link).ok().and_then(LinkId::new)) {
            (Ok(heartbeat), Some(id)) => {
                let _ =
                    self.detector
                        .handle_heartbeat(Instant::from_nanos(at_ns), id, heartbeat.seq);
                if heartbeat.seq > self.peer_seq {
                    self.peer_seq = heartbeat.seq;
                    let advert = Some(Advert::from(&heartbeat));
                    self.peer_advert.send_if_modified(|last| {
                        let changed = *last != advert;
                        *last = advert;
                        changed
                    });
                }
            }
            (Err(reject), _) => {
                self.rejects[link].record(reject);
                let count = self.rejects[link].count(reject);
                if count.is_power_of_two() {
                    self.pending.push(ReportBody::Rejected {
                        link: self.config.links[link].name.clone(),
                        reason: reject,
                        count,
                    });
                }
            }
            (Ok(_), None) => {}
        }
    }
}

async fn next_edge(edges: &mut Option<EdgeEvents>) -> std::io::Result<()> {
    match edges {
        Some(edges) => edges.next().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// The tokio instant at which CLOCK_MONOTONIC reaches `at`.
pub(crate) fn tokio_deadline(at: Instant) -> tokio::time::Instant {
    let ahead = at.as_nanos().saturating_sub(clock::monotonic_ns());
    tokio::time::Instant::now() + Duration::from_nanos(ahead)
}
