//! `cargo xtask bench`: what `ha_xdp_ingress` costs per packet, measured in the kernel
//! with BPF_PROG_TEST_RUN, next to a program that only returns XDP_PASS.
//!
//! Each round runs the frame `REPEAT` times through the baseline and then through our
//! program; the kernel reports whole nanoseconds per run, averaged over the round. The
//! table shows the medians over `ROUNDS` rounds, and "added" is the median of the
//! per-round differences (pairing the two runs cancels most of the machine's drift).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    process::ExitCode,
};

use ha_common::{
    LinkConfig, PEER_IPV4, PEER_IPV6, heartbeat,
    program_names::{XDP_CLOCK_BASELINE, XDP_INGRESS, XDP_PASS_BASELINE},
};
use ha_tests::{
    Need,
    packet::{self, Transport},
    prog_test::TestRunner,
};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 15;
const BUDGET_NS: u64 = 50;

fn main() -> ExitCode {
    if !ha_tests::require("bench-xdp", &[Need::Root, Need::EbpfObject]) {
        return ExitCode::FAILURE;
    }
    let peer_v4 = Ipv4Addr::new(192, 0, 2, 2);
    let self_v4 = Ipv4Addr::new(192, 0, 2, 1);
    let peer_v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    let self_v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let runner = TestRunner::new(LinkConfig {
        heartbeat_port: 7400,
        replication_port_first: 7788,
        replication_port_last: 7799,
        peer_families: PEER_IPV4 | PEER_IPV6,
        peer_ipv4: peer_v4.octets(),
        peer_ipv6: peer_v6.octets(),
        ..LinkConfig::default()
    });
    let mut hb = heartbeat::fixed_header(1).to_vec();
    hb.extend_from_slice(&[0; 112]);
    let data = vec![0x42; 1400];
    let frames = [
        (
            "heartbeat (UDP, IPv4)",
            packet::ipv4(
                None,
                peer_v4,
                self_v4,
                &Transport::Udp {
                    src_port: 40000,
                    dst_port: 7400,
                    payload: &hb,
                },
            ),
        ),
        (
            "DRBD segment (TCP 1400 B, IPv4)",
            packet::ipv4(
                None,
                peer_v4,
                self_v4,
                &Transport::Tcp {
                    src_port: 51000,
                    dst_port: 7789,
                    payload: &data,
                },
            ),
        ),
        (
            "DRBD segment (TCP 1400 B, IPv6)",
            packet::ipv6(
                peer_v6,
                self_v6,
                &Transport::Tcp {
                    src_port: 51000,
                    dst_port: 7789,
                    payload: &data,
                },
            ),
        ),
        (
            "unrelated (UDP from a stranger)",
            packet::ipv4(
                None,
                Ipv4Addr::new(203, 0, 113, 9),
                self_v4,
                &Transport::Udp {
                    src_port: 5353,
                    dst_port: 53,
                    payload: &data[..64],
                },
            ),
        ),
    ];
    println!(
        "XDP cost per packet, BPF_PROG_TEST_RUN, {REPEAT} runs x {ROUNDS} paired rounds, medians"
    );
    println!();
    println!("| frame | ha_xdp_ingress ns | XDP_PASS baseline ns | added ns |");
    println!("|---|---:|---:|---:|");
    let mut worst = 0;
    for (name, frame) in &frames {
        let Paired {
            ours,
            baseline,
            added,
        } = paired(&runner, XDP_INGRESS, frame);
        worst = worst.max(added);
        println!("| {name} | {ours} | {baseline} | {added} |");
    }
    let clock = paired(&runner, XDP_CLOCK_BASELINE, &frames[0].1).added;
    println!();
    println!(
        "one precise kernel clock read (bpf_ktime_get_ns), which each heartbeat needs: {clock} ns"
    );
    let verdict = if worst < BUDGET_NS { "within" } else { "OVER" };
    println!("worst added cost {worst} ns: {verdict} the {BUDGET_NS} ns budget");
    ExitCode::SUCCESS
}

/// Medians of `program`, of the XDP_PASS baseline, and of their per-round difference.
struct Paired {
    ours: u64,
    baseline: u64,
    added: u64,
}

fn paired(runner: &TestRunner, program: &str, frame: &[u8]) -> Paired {
    let run = |name: &str| {
        let outcome = runner.run(name, frame, REPEAT);
        assert_eq!(outcome.action, 2, "{name} must pass every frame");
        outcome.per_run.as_nanos() as u64
    };
    let (mut ours, mut baseline, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let base = run(XDP_PASS_BASELINE);
        let own = run(program);
        baseline.push(base);
        ours.push(own);
        added.push(own.saturating_sub(base));
    }
    Paired {
        ours: median(ours),
        baseline: median(baseline),
        added: median(added),
    }
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}
