//! The `drbd` agent and its `DrbdWatch` against the DRBD emulator, as root, in two
//! network namespaces: validate, idempotent promote and demote, the typed refusals
//! (peer Primary, disk Outdated, resource not up), the live state after a failover and
//! after a cut replication link.
//!
//! Both agents run `drbdadm` through a wrapper script that logs every call, so "start on
//! a Primary runs nothing" is checked on the calls themselves.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ha_daemon::core::drbd_events::refusal::RefusalReason;
use ha_daemon::core::drbd_events::state::{ConnectionState, DiskState, ResourceState, Role};
use ha_daemon::core::drbd_events::version::Generation;
use ha_daemon::resource::drbd::watch::{DrbdWatch, Followed};
use ha_daemon::resource::drbd::{Drbd, DrbdError, DrbdSettings};
use ha_daemon::resource::{Agent, AgentError, Health};
use ha_tests::{
    Need,
    daemon::TempDir,
    drbd_emu::{config::EmuConfig, node::EmuNode, state::Fencing},
    netns::NetNs,
    topology::TwoNodes,
};
use tokio::sync::watch;

const PORT: u16 = 7789;
const RESOURCE: &str = "r0";
/// Bound on every wait for the emulator or a watch.
const LIMIT: Duration = Duration::from_secs(5);

fn config(ns: &NetNs, local: std::net::Ipv4Addr, peer: std::net::Ipv4Addr) -> EmuConfig {
    let mut config = EmuConfig::new((local, PORT).into(), (peer, PORT).into());
    config.netns = Some(ns.name().to_owned());
    config.size_mib = 16;
    config.ping_interval_ms = 200;
    config.ping_timeout_ms = 300;
    config.connect_interval_ms = 200;
    config.fencing = Fencing::ResourceOnly;
    config
}

/// An agent on `node` whose `drbdadm` is a wrapper (in `dir`) appending each call's
/// arguments to `dir/<label>.calls` before running the emulator's `drbdadm`.
struct Logged {
    agent: Drbd,
    calls: PathBuf,
}

impl Logged {
    fn new(label: &str, node: &EmuNode, dir: &Path) -> Self {
        let calls = dir.join(format!("{label}.calls"));
        let wrapper = dir.join(format!("{label}-drbdadm"));
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                calls.display(),
                node.drbdadm_path().display()
            ),
        )
        .expect("write the drbdadm wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("make the wrapper executable");
        std::fs::write(&calls, "").expect("create the call log");
        let agent = Drbd::new(DrbdSettings {
            resource: RESOURCE.to_owned(),
            drbdadm: wrapper,
            drbdsetup: node.drbdsetup_path(),
        });
        Self { agent, calls }
    }

    /// The state-changing calls so far (`primary r0`, `secondary r0`).
    fn changes(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .expect("read the call log")
            .lines()
            .filter(|line| line.starts_with("primary") || line.starts_with("secondary"))
            .map(str::to_owned)
            .collect()
    }

    async fn health(&self) -> Health {
        self.agent.monitor().await.expect("monitor")
    }
}

/// Runs `call`, prints and returns how long it took with its result.
async fn timed<T>(what: &str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = call.await;
    println!("{what}: {:?}", started.elapsed());
    result
}

/// Waits (at most [`LIMIT`]) until the followed state satisfies `wanted`; prints how
/// long it took. Panics with the last state on timeout.
async fn until(
    what: &str,
    receiver: &mut watch::Receiver<Followed>,
    wanted: impl FnMut(&Followed) -> bool,
) -> Followed {
    let started = Instant::now();
    let outcome = tokio::time::timeout(LIMIT, receiver.wait_for(wanted))
        .await
        .map(|result| result.map(|followed| followed.clone()));
    match outcome {
        Ok(Ok(followed)) => {
            println!("{what}: seen after {:?}", started.elapsed());
            followed
        }
        Ok(Err(_)) => panic!("{what}: the watch ended: {:?}", *receiver.borrow()),
        Err(_) => panic!("{what}: not within {LIMIT:?}: {:?}", *receiver.borrow()),
    }
}

/// The refusal inside a failed `start`/`stop`.
fn refusal(result: Result<(), AgentError>) -> (RefusalReason, Option<i32>, String, String) {
    let error = result.expect_err("DRBD must refuse");
    let text = error.to_string();
    let AgentError::Failed(inner) = error else {
        panic!("not a failure: {text}");
    };
    match inner.downcast_ref::<DrbdError>() {
        Some(DrbdError::Refused { refusal, .. }) => (
            refusal.reason.clone(),
            refusal.code,
            refusal.message.clone(),
            text,
        ),
        other => panic!("not a refusal: {other:?} ({text})"),
    }
}

fn role(node: &EmuNode) -> String {
    node.adm_ok(&["role", RESOURCE]).trim().to_owned()
}

fn local_disk(state: &ResourceState) -> Option<DiskState> {
    state.devices().get(&0).map(|device| device.disk.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drbd_agent_promotes_refuses_and_demotes_on_the_emulator() {
    if !ha_tests::require(
        "drbd_agent_promotes_refuses_and_demotes_on_the_emulator",
        &[
            Need::Root,
            Need::Program("losetup"),
            Need::Program("blockdev"),
            Need::Program("fusermount3"),
        ],
    ) {
        return;
    }
    let nodes = TwoNodes::new();
    let a = EmuNode::start("a", config(&nodes.a, TwoNodes::A_V4, TwoNodes::B_V4));
    let b = EmuNode::start("b", config(&nodes.b, TwoNodes::B_V4, TwoNodes::A_V4));
    for node in [&a, &b] {
        node.adm_ok(&["create-md", "--force", RESOURCE]);
        node.adm_ok(&["up", RESOURCE]);
    }
    a.wait_for("cstate", "Connected", LIMIT);
    a.adm_ok(&["--", "--clear-bitmap", "new-current-uuid", RESOURCE]);
    b.wait_for("dstate", "UpToDate/UpToDate", LIMIT);
    let dir = TempDir::new("drbd-agent");
    let (agent_a, agent_b) = (
        Logged::new("a", &a, dir.path()),
        Logged::new("b", &b, dir.path()),
    );
    let (watch_a, watch_b) = (
        DrbdWatch::start(agent_a.agent.settings()).expect("watch a"),
        DrbdWatch::start(agent_b.agent.settings()).expect("watch b"),
    );
    let (mut followed_a, mut followed_b) = (watch_a.subscribe(), watch_b.subscribe());

    // Node a alone: validate, idempotent promote and demote.
    agent_a.agent.validate().await.expect("validate on a");
    let version = agent_a.agent.version().await.expect("version");
    assert_eq!(version.generation(), Some(Generation::V84), "{version}");
    assert_eq!(agent_a.health().await, Health::Stopped);
    timed("a promote (start)", agent_a.agent.start())
        .await
        .expect("promote a");
    assert_eq!(agent_a.health().await, Health::Running);
    assert_eq!(role(&a), "Primary/Secondary");
    timed("a start on a Primary", agent_a.agent.start())
        .await
        .expect("start again");
    assert_eq!(
        agent_a.changes(),
        ["primary r0"],
        "a second start ran drbdadm"
    );
    assert_eq!(agent_a.health().await, Health::Running);
    timed("a demote (stop)", agent_a.agent.stop())
        .await
        .expect("demote a");
    assert_eq!(agent_a.health().await, Health::Stopped);
    assert_eq!(role(&a), "Secondary/Secondary");
    agent_a.agent.stop().await.expect("stop again");
    assert_eq!(agent_a.changes(), ["primary r0", "secondary r0"]);
    until("b's watch: peer Secondary", &mut followed_b, |f| {
        f.state.peer_role() == Role::Secondary
    })
    .await;

    // a Primary: b's promotion is refused with DRBD's own words; b stays Secondary.
    agent_a.agent.start().await.expect("promote a again");
    until("b sees a Primary", &mut followed_b, |f| {
        f.state.peer_role() == Role::Primary
    })
    .await;
    let (reason, code, message, text) = refusal(agent_b.agent.start().await);
    println!("b start while a is Primary: {text}");
    assert_eq!(reason, RefusalReason::PeerPrimary);
    assert_eq!(code, Some(11));
    assert!(
        message.contains("(-1) Multiple primaries not allowed by config"),
        "{message}"
    );
    assert!(
        text.contains("Multiple primaries not allowed by config"),
        "{text}"
    );
    assert_eq!(role(&b), "Secondary/Primary");
    assert_eq!(agent_b.health().await, Health::Stopped);

    // Failover by hand: a demotes, b promotes, a's watch follows.
    agent_a.agent.stop().await.expect("demote a");
    timed("b promote (start)", agent_b.agent.start())
        .await
        .expect("promote b");
    assert_eq!(agent_b.health().await, Health::Running);
    let seen = until("a's watch: peer Primary", &mut followed_a, |f| {
        f.state.peer_role() == Role::Primary
    })
    .await;
    assert_eq!(*seen.state.role(), Role::Secondary);
    assert_eq!(seen.ended, None);
    timed("b demote (stop)", agent_b.agent.stop())
        .await
        .expect("demote b");
    agent_a.agent.start().await.expect("promote a for the cut");
    until("b's watch: peer Primary again", &mut followed_b, |f| {
        f.state.peer_role() == Role::Primary
    })
    .await;

    link_cut(
        &nodes,
        &a,
        &b,
        &agent_a,
        &agent_b,
        &mut followed_a,
        &mut followed_b,
    )
    .await;

    // b not up: promotion refused as NotUp, monitor Failed, stop is a no-op.
    b.adm_ok(&["down", RESOURCE]);
    until("b's watch: resource gone", &mut followed_b, |f| {
        !f.state.exists()
    })
    .await;
    let before = agent_b.changes().len();
    let (reason, code, message, text) = refusal(agent_b.agent.start().await);
    println!("b start while not up: {text}");
    assert_eq!(reason, RefusalReason::NotUp);
    assert_eq!(code, Some(10));
    assert!(message.contains("Device minor not allocated"), "{message}");
    assert_eq!(
        agent_b.health().await,
        Health::Failed("resource r0 not up".to_owned())
    );
    agent_b
        .agent
        .stop()
        .await
        .expect("stop on a resource that is not up");
    assert_eq!(
        agent_b.changes().len(),
        before + 1,
        "only the refused primary ran"
    );
}

/// a Primary, b Secondary, both with resource-only fencing; the link is cut in a's
/// namespace. b's monitor works and its watch loses the peer; a marks b Outdated. b's
/// disk is then outdated (what a's fence-peer handler does on b over another path,
/// `drbdadm outdate`, capture 59) and b's promotion is refused.
async fn link_cut(
    nodes: &TwoNodes,
    a: &EmuNode,
    b: &EmuNode,
    agent_a: &Logged,
    agent_b: &Logged,
    followed_a: &mut watch::Receiver<Followed>,
    followed_b: &mut watch::Receiver<Followed>,
) {
    nodes.a.ip(&["link", "set", TwoNodes::A_IF, "down"]);
    let seen = until("b's watch: link cut, reconnecting", followed_b, |f| {
        f.state.connection() == ConnectionState::Connecting
    })
    .await;
    assert_eq!(seen.state.peer_disk(0), DiskState::DUnknown);
    let reported = seen.state.peer().map(|peer| peer.devices[&0].disk.clone());
    assert_eq!(reported, Some(DiskState::DUnknown));
    assert_eq!(seen.state.peer_role(), Role::Unknown);
    assert_eq!(agent_b.health().await, Health::Stopped);
    let seen = until("a's watch: peer Outdated", followed_a, |f| {
        f.state.connection() == ConnectionState::Connecting
            && f.state.peer_disk(0) == DiskState::Outdated
    })
    .await;
    assert_eq!(*seen.state.role(), Role::Primary);
    assert_eq!(a.adm_ok(&["dstate", RESOURCE]), "UpToDate/Outdated\n");
    assert_eq!(agent_a.health().await, Health::Running);

    b.adm_ok(&["outdate", RESOURCE]);
    until("b's watch: own disk Outdated", followed_b, |f| {
        local_disk(&f.state) == Some(DiskState::Outdated)
    })
    .await;
    let (reason, code, message, text) = refusal(agent_b.agent.start().await);
    println!("b start with an Outdated disk: {text}");
    assert_eq!(
        reason,
        RefusalReason::DiskNotUpToDate {
            disk: Some(DiskState::Outdated)
        }
    );
    assert_eq!(code, Some(17));
    assert!(
        message.contains("(-2) Need access to UpToDate data"),
        "{message}"
    );
    assert_eq!(role(b), "Secondary/Unknown");
    assert_eq!(agent_b.health().await, Health::Stopped);
}
