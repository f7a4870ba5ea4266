//! The `vip` agent for real: a floating address moves from node a to node b on a bridged
//! LAN, and a client that knew it at a's MAC switches to b's MAC from b's announcements
//! alone (gratuitous ARP for IPv4, an unsolicited NA for IPv6) within 50 ms.
//!
//! Run as root, one at a time: `cargo test -p ha-tests --test vip -- --test-threads=1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ha_daemon::io::announce::{AnnounceCause, announce};
use ha_daemon::resource::vip::{Vip, VipSettings};
use ha_daemon::resource::{Agent, AgentError, Health};
use ha_tests::Need;
use ha_tests::lan::{Lan, on_node, ping, switch_during};
use ha_tests::netns::NetNs;

/// The deadline for the client's neighbour entry to switch.
const SWITCH_DEADLINE: Duration = Duration::from_millis(50);
/// How long the test watches for the switch before giving up.
const WATCH_LIMIT: Duration = Duration::from_secs(2);

const VIP_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

#[test]
fn ipv4_vip_moves_with_gratuitous_arp() {
    if !ha_tests::require(
        "ipv4_vip_moves_with_gratuitous_arp",
        &[Need::Root, Need::Program("ip"), Need::Program("ping")],
    ) {
        return;
    }
    takeover(IpAddr::V4(VIP_V4), Lan::PREFIX_V4);
}

#[test]
fn ipv6_vip_moves_with_unsolicited_neighbour_advertisement() {
    if !ha_tests::require(
        "ipv6_vip_moves_with_unsolicited_neighbour_advertisement",
        &[Need::Root, Need::Program("ip"), Need::Program("ping")],
    ) {
        return;
    }
    takeover(IpAddr::V6(VIP_V6), Lan::PREFIX_V6);
}

#[test]
fn announcements_follow_the_schedule_in_both_forms() {
    if !ha_tests::require(
        "announcements_follow_the_schedule_in_both_forms",
        &[Need::Root, Need::Program("ip"), Need::Program("tcpdump")],
    ) {
        return;
    }
    let lan = Lan::new();
    let b_mac = format_mac(Lan::mac(&lan.b));
    let v4 = IpAddr::V4(VIP_V4);
    let v6 = IpAddr::V6(VIP_V6);
    let request = format!("Request who-has {v4} tell {v4}");
    let reply = format!("Reply {v4} is-at {b_mac}");
    let advertisement = format!("neighbor advertisement, tgt is {v6}");
    for (vip, prefix_len, filter, round) in [
        (
            v4,
            Lan::PREFIX_V4,
            "arp",
            vec![request.as_str(), reply.as_str()],
        ),
        (
            v6,
            Lan::PREFIX_V6,
            "icmp6 and ip6[40] == 136",
            vec![advertisement.as_str()],
        ),
    ] {
        let settings = VipSettings::new(Lan::IF, vip, prefix_len);
        let schedule = settings.announce_schedule.clone();
        let capture = Capture::start(&lan.client, filter, schedule.len() * round.len());
        let agent = Vip::new(settings);
        on_node(&lan.b, async {
            agent.start().await.expect("start");
            tokio::time::sleep(schedule[schedule.len() - 1] + Duration::from_millis(200)).await;
            agent.stop().await.expect("stop");
        });
        let frames = capture.finish();
        let first = frames[0].0;
        let offsets: Vec<Duration> = frames
            .chunks(round.len())
            .map(|frames| Duration::from_secs_f64(frames[0].0 - first))
            .collect();
        println!("{vip}: announcement rounds seen at {offsets:?} (schedule {schedule:?})");
        for (index, (_, line)) in frames.iter().enumerate() {
            let expected = round[index % round.len()];
            assert!(
                line.contains(&format!("{b_mac} > ")),
                "from b's MAC: {line}"
            );
            assert!(
                line.contains(expected),
                "frame {index} is not {expected:?}: {line}"
            );
        }
        for (seen, planned) in offsets.iter().zip(&schedule) {
            assert!(
                *seen + Duration::from_millis(5) >= *planned
                    && *seen <= *planned + Duration::from_millis(250),
                "round planned at {planned:?} seen at {seen:?}"
            );
        }
    }
}

#[test]
fn a_missing_or_down_interface_is_refused_and_reported() {
    if !ha_tests::require(
        "a_missing_or_down_interface_is_refused_and_reported",
        &[Need::Root, Need::Program("ip")],
    ) {
        return;
    }
    let lan = Lan::new();
    let vip = IpAddr::V4(VIP_V4);
    let missing = Vip::new(VipSettings::new("hat-none0", vip, Lan::PREFIX_V4));
    let down = Vip::new(VipSettings::new(Lan::IF, vip, Lan::PREFIX_V4));
    lan.b.ip(&["link", "set", Lan::IF, "down"]);
    on_node(&lan.b, async {
        let error = missing.validate().await.expect_err("no such interface");
        assert!(matches!(error, AgentError::Invalid(_)), "{error}");
        assert!(error.to_string().contains("hat-none0"), "{error}");
        let Health::Failed(reason) = missing.monitor().await.expect("monitor") else {
            panic!("a missing interface is a failure");
        };
        assert!(reason.contains("does not exist"), "{reason}");
        missing
            .stop()
            .await
            .expect("nothing to remove from a missing interface");

        down.validate().await.expect("the interface exists");
        let error = down.start().await.expect_err("the interface is down");
        assert_eq!(
            error.to_string(),
            "vip 192.0.2.10/24 on lan0: start: interface is down"
        );
        let Health::Failed(reason) = down.monitor().await.expect("monitor") else {
            panic!("a down interface is a failure");
        };
        assert!(
            reason.contains("is down (address 192.0.2.10/24 absent)"),
            "{reason}"
        );

        let error = announce("lo", vip, None, &[Duration::ZERO])
            .await
            .expect_err("loopback carries no Ethernet");
        assert!(
            matches!(error.cause, AnnounceCause::NotEthernet(772)),
            "{error}"
        );
        let error = announce("hat-none0", vip, None, &[Duration::ZERO])
            .await
            .expect_err("no such interface");
        assert_eq!(
            error.to_string(),
            "announcing 192.0.2.10 on hat-none0: no such interface"
        );
    });
    assert_eq!(
        Lan::address_count(&lan.b, vip),
        0,
        "a refused start adds nothing"
    );
}

/// Node a holds `vip`, the client reaches it, node a goes down
/// ([`Lan::client_learns_a`]; an experiment with a delayed schedule confirmed the switch
/// comes from the announcement), the agent starts the address on node b; then the
/// checks of the issue, and idempotence of start and stop.
fn takeover(vip: IpAddr, prefix_len: u8) {
    let lan = Lan::new();
    let b_mac = Lan::mac(&lan.b);
    lan.client_learns_a(vip, prefix_len);

    let client_sent_before = Lan::tx_packets(&lan.client);
    let settings = VipSettings::new(Lan::IF, vip, prefix_len);
    let vip_agent = Vip::new(settings);
    let (switched, (started, one_round)) =
        switch_during(&lan.b, &lan.client, (vip, b_mac), WATCH_LIMIT, |clock| {
            let vip_agent = &vip_agent;
            async move {
                vip_agent.validate().await.expect("validate");
                assert_eq!(vip_agent.monitor().await.expect("monitor"), Health::Stopped);
                let began = Instant::now();
                clock.send(began).expect("the watcher waits");
                vip_agent.start().await.expect("start");
                let started = began.elapsed();
                let round = Instant::now();
                announce(Lan::IF, vip, None, &[Duration::ZERO])
                    .await
                    .expect("a one-round announcement");
                (started, round.elapsed())
            }
        });
    let client_sent_after = Lan::tx_packets(&lan.client);
    println!(
        "{vip}: start (address add + first announcement round) {started:?}; \
         one announcement round alone {one_round:?}; client entry switched after {switched:?}"
    );
    assert!(
        switched <= SWITCH_DEADLINE,
        "the client switched after {switched:?}, more than {SWITCH_DEADLINE:?}"
    );
    assert_eq!(
        client_sent_after, client_sent_before,
        "the client sent packets itself while switching"
    );

    ping(&lan.client, vip);
    let after = Lan::neighbour(&lan.client, vip).expect("entry kept");
    assert_eq!(after.mac, Some(b_mac), "pings reached b: {after:?}");

    on_node(&lan.b, async {
        assert_eq!(vip_agent.monitor().await.expect("monitor"), Health::Running);
        vip_agent.start().await.expect("second start");
        assert_eq!(vip_agent.monitor().await.expect("monitor"), Health::Running);
    });
    assert_eq!(Lan::address_count(&lan.b, vip), 1, "start twice adds once");

    on_node(&lan.b, async {
        vip_agent.stop().await.expect("stop");
        assert_eq!(vip_agent.monitor().await.expect("monitor"), Health::Stopped);
        vip_agent.stop().await.expect("second stop");
        assert_eq!(vip_agent.monitor().await.expect("monitor"), Health::Stopped);
    });
    assert_eq!(
        Lan::address_count(&lan.b, vip),
        0,
        "stop removed the address"
    );
}

/// `tcpdump` in a namespace, capturing a number of frames; stopped on drop unless
/// [`Capture::finish`] reaped it.
struct Capture {
    child: Option<std::process::Child>,
}

impl Capture {
    /// Starts capturing `count` frames matching `filter` on [`Lan::IF`] and waits until
    /// tcpdump listens.
    fn start(member: &NetNs, filter: &str, count: usize) -> Self {
        let count = count.to_string();
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", member.name(), "timeout", "10", "tcpdump"])
            .args([
                "-i",
                Lan::IF,
                "-nn",
                "-e",
                "-tt",
                "-l",
                "-c",
                &count,
                filter,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        let stderr = child.stderr.take().expect("stderr piped");
        let capture = Capture { child: Some(child) };
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let listening = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("listening on"));
        assert!(listening, "tcpdump did not start");
        capture
    }

    /// Waits for the capture to end; each frame as (seconds since the epoch, the line).
    fn finish(mut self) -> Vec<(f64, String)> {
        let mut child = self.child.take().expect("not finished yet");
        let mut text = String::new();
        let mut stdout = child.stdout.take().expect("stdout piped");
        std::io::Read::read_to_string(&mut stdout, &mut text).expect("read tcpdump");
        let status = child.wait().expect("wait for tcpdump");
        assert!(status.success(), "tcpdump ended with {status}: {text}");
        text.lines()
            .map(|line| {
                let (time, _) = line.split_once(' ').expect("a timestamp");
                (time.parse().expect("seconds"), line.to_owned())
            })
            .collect()
    }
}

impl Drop for Capture {
    /// SIGTERM, not SIGKILL: `timeout` passes it on to tcpdump, its child. The pid is
    /// still ours: the child is not reaped until the `wait` here.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = child.wait();
    }
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}
