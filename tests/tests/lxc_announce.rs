//! The `lxc` agent announces its container's static address: node b hosts a busybox
//! container whose veth is on a bridge of b that also holds b's LAN interface; a client
//! that knew the container's address at node a's MAC switches to the container's MAC
//! from the agent's gratuitous ARP alone, within 50 ms, when the agent starts the
//! container and when a start finds it already running; stop cancels the rounds still
//! pending.
//!
//! Run as root, one at a time: `cargo test -p ha-tests --test lxc_announce --
//! --test-threads=1`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ha_daemon::io::announce::announce;
use ha_daemon::resource::lxc::{ContainerAddress, LxcAgent, LxcSettings};
use ha_daemon::resource::{Agent, Health};
use ha_tests::Need;
use ha_tests::daemon::TempDir;
use ha_tests::lan::{Lan, on_node, ping, switch_during};
use ha_tests::lxc::Container;

/// The deadline for the client's neighbour entry to switch.
const SWITCH_DEADLINE: Duration = Duration::from_millis(50);
/// How long the container may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the test watches for the switch before giving up: the start, and more.
const WATCH_LIMIT: Duration = START_TIMEOUT.saturating_add(Duration::from_secs(2));

/// The bridge in node b's namespace holding b's [`Lan::IF`] and the container's veth.
const HOST_BRIDGE: &str = "brc0";
const CONTAINER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// Locally administered, fixed (`lxc.net.0.hwaddr`).
const CONTAINER_MAC: [u8; 6] = [0x02, 0x48, 0x41, 0x00, 0x02, 0x50];

/// The second round of the schedule used to check that stop cancels it: later than the
/// container's stop (at most `stop_timeout` and a kill) and the check's own steps.
const LATE_ROUND: Duration = Duration::from_secs(5);
/// How long after [`LATE_ROUND`] the client's entry is read.
const AFTER_LATE_ROUND: Duration = Duration::from_millis(300);

#[test]
fn a_containers_address_moves_with_gratuitous_arp_from_its_mac() {
    if !ha_tests::require(
        "a_containers_address_moves_with_gratuitous_arp_from_its_mac",
        &[
            Need::Root,
            Need::Program("ip"),
            Need::Program("ping"),
            Need::Program("lxc-create"),
            Need::Program("lxc-start"),
            Need::Program("lxc-stop"),
            Need::Program("lxc-info"),
            Need::Program("lxc-destroy"),
            Need::Program("busybox"),
        ],
    ) {
        return;
    }
    // Dropped in reverse: the container (killed and destroyed inside b), its lxcpath,
    // then the namespaces with the bridge in b.
    let lan = Lan::new();
    let a_mac = Lan::mac(&lan.a);
    lan.b.ip(&["link", "add", HOST_BRIDGE, "type", "bridge"]);
    lan.b.ip(&["link", "set", Lan::IF, "master", HOST_BRIDGE]);
    lan.b.ip(&["link", "set", HOST_BRIDGE, "up"]);
    let lxcpath = TempDir::new("lxc-announce");
    let name = format!("hat{}", std::process::id());
    let network = format!(
        "lxc.net.0.type = veth\n\
         lxc.net.0.link = {HOST_BRIDGE}\n\
         lxc.net.0.flags = up\n\
         lxc.net.0.name = eth0\n\
         lxc.net.0.hwaddr = {}\n\
         lxc.net.0.ipv4.address = {CONTAINER_V4}/{}\n",
        format_mac(CONTAINER_MAC),
        Lan::PREFIX_V4
    );
    let _container = Container::busybox_in(&name, lxcpath.path(), &lan.b, &network);
    let address = IpAddr::V4(CONTAINER_V4);

    let mut settings = LxcSettings::new(&name, lxcpath.path());
    settings.start_timeout = START_TIMEOUT;
    settings.stop_timeout = Duration::from_secs(2);
    let agent = LxcAgent::new(settings.clone());

    lan.client_learns_a(address, Lan::PREFIX_V4);
    let client_sent_before = Lan::tx_packets(&lan.client);
    let (switched, started) = switch_during(
        &lan.b,
        &lan.client,
        (address, CONTAINER_MAC),
        WATCH_LIMIT,
        |clock| {
            let agent = &agent;
            async move {
                agent.validate().await.expect("validate");
                assert_eq!(agent.monitor().await.expect("monitor"), Health::Stopped);
                let expected = ContainerAddress {
                    link: HOST_BRIDGE.into(),
                    mac: CONTAINER_MAC,
                    address,
                    prefix_len: Lan::PREFIX_V4,
                };
                assert_eq!(agent.addresses().await.expect("addresses"), [expected]);
                let began = Instant::now();
                clock.send(began).expect("the watcher waits");
                agent.start().await.expect("start");
                began.elapsed()
            }
        },
    );
    println!(
        "start of a stopped container (lxc-start, RUNNING, first announcement round) took \
         {started:?}; the client's entry switched {switched:?} after start began"
    );
    assert!(
        switched <= started + SWITCH_DEADLINE,
        "the client switched {switched:?} after start began, more than {SWITCH_DEADLINE:?} \
         after start returned ({started:?})"
    );
    assert_eq!(
        Lan::tx_packets(&lan.client),
        client_sent_before,
        "the client sent packets itself while switching"
    );
    ping(&lan.client, address);
    let entry = Lan::neighbour(&lan.client, address).expect("entry kept");
    assert_eq!(
        entry.mac,
        Some(CONTAINER_MAC),
        "pings reached the container"
    );

    // Node a is back and claims the address again; a start that finds the container
    // running announces again, and its stop cancels the late round.
    lan.a.ip(&["link", "set", Lan::IF, "up"]);
    reclaim_for_a(&lan, address);
    let client_sent_before = Lan::tx_packets(&lan.client);
    settings.announce_schedule = vec![Duration::ZERO, LATE_ROUND];
    let again = LxcAgent::new(settings);
    let (switched, (started, stopped)) = switch_during(
        &lan.b,
        &lan.client,
        (address, CONTAINER_MAC),
        WATCH_LIMIT,
        |clock| {
            let (again, lan) = (&again, &lan);
            async move {
                assert_eq!(again.monitor().await.expect("monitor"), Health::Running);
                let began = Instant::now();
                clock.send(began).expect("the watcher waits");
                again.start().await.expect("start on a running container");
                let started = began.elapsed();
                assert_eq!(again.monitor().await.expect("monitor"), Health::Running);
                again.stop().await.expect("stop");
                let stopped = began.elapsed() - started;
                assert_eq!(again.monitor().await.expect("monitor"), Health::Stopped);
                again.stop().await.expect("stop on a stopped container");
                assert_eq!(again.monitor().await.expect("monitor"), Health::Stopped);
                reclaim_for_a(lan, address);
                let now = began.elapsed();
                assert!(
                    now + Duration::from_millis(500) < LATE_ROUND,
                    "stop and the reclaim took {now:?}: too late to see whether the round \
                     at {LATE_ROUND:?} was cancelled"
                );
                tokio::time::sleep_until((began + LATE_ROUND + AFTER_LATE_ROUND).into()).await;
                let entry = Lan::neighbour(&lan.client, address).expect("entry kept");
                assert_eq!(
                    entry.mac,
                    Some(a_mac),
                    "the round at {LATE_ROUND:?} went out after stop"
                );
                (started, stopped)
            }
        },
    );
    println!(
        "start of a running container (lxc-info, first announcement round) took {started:?}; \
         the client's entry switched after {switched:?}; stop took {stopped:?}"
    );
    assert!(
        switched <= SWITCH_DEADLINE,
        "the client switched after {switched:?}, more than {SWITCH_DEADLINE:?}"
    );
    assert_eq!(
        Lan::tx_packets(&lan.client),
        client_sent_before,
        "the client sent packets itself"
    );
}

/// Node a announces `address` at its own MAC (one round); the client's entry follows
/// within a second.
fn reclaim_for_a(lan: &Lan, address: IpAddr) {
    let began = Instant::now();
    on_node(&lan.a, async {
        announce(Lan::IF, address, None, &[Duration::ZERO])
            .await
            .expect("a announces");
    });
    let a_mac = Lan::mac(&lan.a);
    Lan::watch_switch(&lan.client, address, a_mac, began, Duration::from_secs(1));
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}
