//! The XDP program on crafted frames (`BPF_PROG_TEST_RUN`): it passes every frame
//! unaltered, however truncated or malformed, and counts exactly the evidence.

use std::net::{Ipv4Addr, Ipv6Addr};

use ha_common::{LinkConfig, PEER_IPV4, PEER_IPV6, echo, heartbeat, program_names::XDP_INGRESS};
use ha_tests::{
    Need,
    packet::{self, Transport},
    prog_test::TestRunner,
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const ECHO_PORT: u16 = 7401;
const SELF_ID: u16 = 1;
const PEER_ID: u16 = 2;
/// The kernel refuses to test-run shorter frames, and no Ethernet device delivers them.
const MIN_FRAME: usize = 14;
const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SELF_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const SELF_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

fn config() -> LinkConfig {
    LinkConfig {
        heartbeat_port: 7400,
        echo_port: ECHO_PORT,
        node_id: SELF_ID,
        peer_node_id: PEER_ID,
        replication_port_first: 7788,
        replication_port_last: 7799,
        peer_families: PEER_IPV4 | PEER_IPV6,
        peer_ipv4: PEER_V4.octets(),
        peer_ipv6: PEER_V6.octets(),
        ..LinkConfig::default()
    }
}

fn hb(seq: u64) -> Vec<u8> {
    let mut payload = heartbeat::fixed_header(seq).to_vec();
    payload.extend_from_slice(&[0x5A; 48]);
    payload
}

fn udp(dst_port: u16, payload: &[u8]) -> Transport<'_> {
    Transport::Udp {
        src_port: 40000,
        dst_port,
        payload,
    }
}

fn tcp(src_port: u16, dst_port: u16, payload: &[u8]) -> Transport<'_> {
    Transport::Tcp {
        src_port,
        dst_port,
        payload,
    }
}

/// Runs `frame`, asserts it passed unaltered.
fn assert_passes_unaltered(runner: &TestRunner, frame: &[u8], what: &str) {
    let outcome = runner.run(XDP_INGRESS, frame, 1);
    assert_eq!(outcome.action, XDP_PASS, "{what}: not passed");
    assert_eq!(outcome.frame, frame, "{what}: altered");
}

#[test]
fn every_frame_passes_unaltered_and_only_complete_evidence_counts() {
    if !ha_tests::require(
        "every_frame_passes_unaltered_and_only_complete_evidence_counts",
        &[Need::Root, Need::EbpfObject],
    ) {
        return;
    }
    let runner = TestRunner::new(config());
    let payload = hb(42);
    let data = [7u8; 100];
    let frames = [
        (
            "heartbeat v4",
            packet::ipv4(None, PEER_V4, SELF_V4, &udp(7400, &payload)),
        ),
        (
            "heartbeat v4 vlan",
            packet::ipv4(Some(10), PEER_V4, SELF_V4, &udp(7400, &payload)),
        ),
        (
            "heartbeat v6",
            packet::ipv6(PEER_V6, SELF_V6, &udp(7400, &payload)),
        ),
        (
            "replication v4",
            packet::ipv4(None, PEER_V4, SELF_V4, &tcp(51000, 7789, &data)),
        ),
        (
            "replication v6 sport",
            packet::ipv6(PEER_V6, SELF_V6, &tcp(7788, 51000, &data)),
        ),
    ];
    // Complete frames: counted. Every strict prefix of them: passed, not counted
    // (a prefix that still holds every header we read is the only exception, and our
    // builders put the payload last, so a cut payload changes only the byte count for
    // TCP: checked separately below).
    for (what, frame) in &frames {
        assert_passes_unaltered(&runner, frame, what);
    }
    let counted = runner.stats().rx;
    assert_eq!(counted.heartbeat_packets, 3);
    assert_eq!(counted.heartbeat_last_seq, 42);
    assert_eq!(counted.replication_packets, 2);
    assert_eq!(counted.replication_bytes, 200);

    for (what, frame) in &frames[..3] {
        for len in MIN_FRAME..frame.len() {
            assert_passes_unaltered(&runner, &frame[..len], &format!("{what} cut at {len}"));
        }
    }
    let hb_header_end = 14 + 20 + 8 + heartbeat::FIXED_HEADER_LEN;
    let after_cuts = runner.stats().rx;
    // A heartbeat cut after its fixed header is still a heartbeat (the kernel reads only
    // that header); one cut inside it is not. Each of the 3 frames contributes its
    // lengths from "fixed header complete" up to the full frame.
    let complete_prefixes: u64 = frames[..3]
        .iter()
        .map(|(what, frame)| {
            let header_end = hb_header_end
                + if what.contains("vlan") { 4 } else { 0 }
                + if what.contains("v6") { 20 } else { 0 };
            (frame.len() - header_end) as u64
        })
        .sum();
    assert_eq!(
        after_cuts.heartbeat_packets,
        3 + complete_prefixes,
        "no truncated fixed header counts as a heartbeat"
    );
}

#[test]
fn malformed_and_foreign_frames_pass_and_do_not_count() {
    if !ha_tests::require(
        "malformed_and_foreign_frames_pass_and_do_not_count",
        &[Need::Root, Need::EbpfObject],
    ) {
        return;
    }
    let runner = TestRunner::new(config());
    let payload = hb(1);
    let good = packet::ipv4(None, PEER_V4, SELF_V4, &udp(7400, &payload));
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        (
            "from a stranger".into(),
            packet::ipv4(
                None,
                Ipv4Addr::new(192, 0, 2, 9),
                SELF_V4,
                &udp(7400, &payload),
            ),
        ),
        (
            "to our address as source".into(),
            packet::ipv4(None, SELF_V4, PEER_V4, &udp(7400, &payload)),
        ),
        (
            "other udp port".into(),
            packet::ipv4(None, PEER_V4, SELF_V4, &udp(7401, &payload)),
        ),
        (
            "tcp outside the range".into(),
            packet::ipv4(None, PEER_V4, SELF_V4, &tcp(51000, 8080, &payload)),
        ),
        ("ethernet header only".into(), vec![0xFF; MIN_FRAME]),
        (
            "vlan tag without inner ethertype".into(),
            good[..12]
                .iter()
                .copied()
                .chain([0x81, 0x00, 0, 10])
                .collect(),
        ),
        (
            "garbage".into(),
            (0..200u32).map(|i| (i * 37 % 256) as u8).collect(),
        ),
    ];
    let mut mutate = |what: &str, at: usize, value: u8| {
        let mut frame = good.clone();
        frame[at] = value;
        cases.push((what.into(), frame));
    };
    mutate("ihl below 5", 14, 0x44);
    mutate("ip version 5", 14, 0x55);
    mutate("ihl 15 (options past the end)", 14, 0x4F);
    mutate("non-first fragment", 14 + 7, 0x10);
    mutate("unknown ethertype", 12, 0x99);
    mutate("bad magic", 14 + 20 + 8, b'X');
    mutate("bad version", 14 + 20 + 8 + heartbeat::VERSION_OFFSET, 9);
    let mut ipv6_ext = packet::ipv6(PEER_V6, SELF_V6, &udp(7400, &payload));
    ipv6_ext[14 + 6] = 0; // hop-by-hop extension header: not followed
    cases.push(("ipv6 extension header".into(), ipv6_ext));

    for (what, frame) in &cases {
        assert_passes_unaltered(&runner, frame, what);
    }
    let rx = runner.stats().rx;
    assert_eq!(
        rx.heartbeat_packets, 0,
        "none of these is a heartbeat from the peer"
    );
    assert_eq!(rx.replication_packets, 0);
}

fn echo_udp(payload: &[u8]) -> Transport<'_> {
    Transport::Udp {
        src_port: ECHO_PORT,
        dst_port: ECHO_PORT,
        payload,
    }
}

/// The ones' complement sum of a UDP datagram with its pseudo-header is 0xFFFF exactly
/// when its checksum is right.
fn udp_checksum_ok(addresses: &[u8], udp: &[u8]) -> bool {
    let mut sum: u64 = 17 + udp.len() as u64;
    for chunk in addresses.chunks(2).chain(udp.chunks(2)) {
        let word = [chunk[0], chunk.get(1).copied().unwrap_or(0)];
        sum += u64::from(u16::from_be_bytes(word));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum == 0xFFFF
}

#[test]
fn the_peers_echo_request_is_turned_around_with_a_valid_checksum() {
    if !ha_tests::require(
        "the_peers_echo_request_is_turned_around_with_a_valid_checksum",
        &[Need::Root, Need::EbpfObject],
    ) {
        return;
    }
    let runner = TestRunner::new(config());
    let request = echo::request(PEER_ID, 9, 123_456_789);
    for (what, frame, l3, ipv6) in [
        (
            "ipv4",
            packet::ipv4(None, PEER_V4, SELF_V4, &echo_udp(&request)),
            14,
            false,
        ),
        (
            "ipv4 vlan",
            packet::ipv4(Some(7), PEER_V4, SELF_V4, &echo_udp(&request)),
            18,
            false,
        ),
        (
            "ipv6",
            packet::ipv6(PEER_V6, SELF_V6, &echo_udp(&request)),
            14,
            true,
        ),
    ] {
        let outcome = runner.run(XDP_INGRESS, &frame, 1);
        assert_eq!(outcome.action, XDP_TX, "{what}: reflected");
        let reply = outcome.frame;
        assert_eq!(reply.len(), frame.len(), "{what}");
        assert_eq!(reply[..6], frame[6..12], "{what}: MACs swapped");
        assert_eq!(reply[6..12], frame[..6], "{what}: MACs swapped");
        let (addresses, l4) = if ipv6 {
            assert_eq!(reply[l3 + 8..l3 + 24], frame[l3 + 24..l3 + 40], "{what}");
            assert_eq!(reply[l3 + 24..l3 + 40], frame[l3 + 8..l3 + 24], "{what}");
            (&reply[l3 + 8..l3 + 40], l3 + 40)
        } else {
            assert_eq!(reply[l3 + 12..l3 + 16], frame[l3 + 16..l3 + 20], "{what}");
            assert_eq!(reply[l3 + 16..l3 + 20], frame[l3 + 12..l3 + 16], "{what}");
            (&reply[l3 + 12..l3 + 20], l3 + 20)
        };
        let parsed = echo::parse(&reply[l4 + 8..]).expect("a valid echo packet");
        assert_eq!(parsed.kind, echo::KIND_REPLY, "{what}");
        assert_eq!(
            parsed.responder, SELF_ID,
            "{what}: stamped with our node id"
        );
        assert_eq!(
            (parsed.seq, parsed.sent_ns, parsed.sender),
            (9, 123_456_789, PEER_ID)
        );
        assert!(udp_checksum_ok(addresses, &reply[l4..]), "{what}: checksum");
    }
    assert_eq!(runner.stats().rx.echo_reflected, 3);
    assert_eq!(
        runner.stats().rx.echo_packets,
        0,
        "a request is not a reply"
    );
}

#[test]
fn only_the_peers_complete_echo_requests_are_reflected_and_only_its_replies_count() {
    if !ha_tests::require(
        "only_the_peers_complete_echo_requests_are_reflected_and_only_its_replies_count",
        &[Need::Root, Need::EbpfObject],
    ) {
        return;
    }
    let runner = TestRunner::new(config());
    let request = packet::ipv4(
        None,
        PEER_V4,
        SELF_V4,
        &echo_udp(&echo::request(PEER_ID, 1, 5)),
    );
    for len in MIN_FRAME..request.len() {
        assert_passes_unaltered(&runner, &request[..len], &format!("request cut at {len}"));
    }
    let foreign_sender = echo::request(3, 1, 5);
    assert_passes_unaltered(
        &runner,
        &packet::ipv4(None, PEER_V4, SELF_V4, &echo_udp(&foreign_sender)),
        "request from another node id",
    );
    let from_stranger = echo::request(PEER_ID, 1, 5);
    assert_passes_unaltered(
        &runner,
        &packet::ipv4(
            None,
            Ipv4Addr::new(192, 0, 2, 9),
            SELF_V4,
            &echo_udp(&from_stranger),
        ),
        "request from another address",
    );
    let mut longer = echo::request(PEER_ID, 1, 5).to_vec();
    longer.push(0);
    assert_passes_unaltered(
        &runner,
        &packet::ipv4(None, PEER_V4, SELF_V4, &echo_udp(&longer)),
        "request of the wrong length",
    );
    assert_eq!(runner.stats().rx.echo_reflected, 0);

    // Replies: ours, stamped by the peer, count; stamped by anyone else, not.
    let reply = |responder: u16| {
        let mut payload = echo::request(SELF_ID, 4, 1_000);
        payload[echo::KIND_OFFSET] = echo::KIND_REPLY;
        payload[echo::RESPONDER_OFFSET..echo::RESPONDER_OFFSET + 2]
            .copy_from_slice(&responder.to_be_bytes());
        packet::ipv4(None, PEER_V4, SELF_V4, &echo_udp(&payload))
    };
    assert_passes_unaltered(&runner, &reply(PEER_ID), "reply from the peer");
    assert_passes_unaltered(&runner, &reply(9), "reply stamped by another node");
    let rx = runner.stats().rx;
    assert_eq!(rx.echo_packets, 1);
    assert!(
        rx.echo_last_rtt_ns > 0,
        "round trip measured from the sent time"
    );
}
