//! `ha-daemon counters`: attach the kernel evidence counters to links and print them
//! while traffic flows, with every "first evidence after silence" edge as it happens.

use std::{fmt::Write as _, time::Duration};

use ha_common::{EdgeEvent, EvidenceKind, LinkStats};

use crate::{
    cli::CountersArgs,
    io::{
        clock,
        ebpf::{AttachedLink, EbpfError, KernelEvidence, LinkSpec},
    },
};

/// Runs the command until `args.count` reports were printed or Ctrl-C.
pub async fn run(args: CountersArgs) -> Result<(), EbpfError> {
    let specs: Vec<LinkSpec> = args
        .links
        .iter()
        .map(|link| LinkSpec {
            interface: link.interface.clone(),
            peer_ipv4: link.peer_ipv4,
            peer_ipv6: link.peer_ipv6,
            heartbeat_port: args.heartbeat_port,
            echo_port: args.echo_port,
            node_id: args.node_id,
            peer_node_id: args.peer_node_id,
            replication_ports: args.replication_ports.clone(),
            silence: Duration::from_millis(args.silence_ms),
        })
        .collect();
    let (kernel, mut events) = KernelEvidence::load(&specs, None)?;
    for link in kernel.links() {
        println!(
            "attached to {} (ifindex {}, XDP {:?})",
            link.interface, link.ifindex, link.xdp_mode
        );
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let rows = kernel
                    .links()
                    .iter()
                    .map(|link| Ok((link, kernel.stats(link.slot)?)))
                    .collect::<Result<Vec<_>, EbpfError>>()?;
                print!("{}", render_table(&rows, clock::monotonic_ns()));
                printed += 1;
                if args.count.is_some_and(|count| printed >= count) {
                    return Ok(());
                }
            }
            event = events.next() => match event {
                Ok(event) => println!("{}", render_edge(&event, kernel.links())),
                Err(error) => tracing::warn!(%error, "edge events unavailable"),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// One table of counters; `now_ns` is the kernel-clock time the ages are measured to.
pub fn render_table(rows: &[(&AttachedLink, LinkStats)], now_ns: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>8} {:>10} {:>10} {:>10} {:>12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "interface",
        "rx hb",
        "rx seq",
        "rx age",
        "rx repl",
        "rx bytes",
        "repl age",
        "echo rx",
        "rtt",
        "reflect",
        "tx hb",
        "tx repl",
    );
    for (link, stats) in rows {
        let (rx, tx) = (&stats.rx, &stats.tx);
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>10} {:>10} {:>10} {:>12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
            link.interface,
            rx.heartbeat_packets,
            rx.heartbeat_last_seq,
            age(rx.heartbeat_last_ns, now_ns),
            rx.replication_packets,
            rx.replication_bytes,
            age(rx.replication_last_ns, now_ns),
            rx.echo_packets,
            if rx.echo_packets == 0 {
                "-".to_owned()
            } else {
                span(rx.echo_last_rtt_ns)
            },
            rx.echo_reflected,
            tx.heartbeat_packets,
            tx.replication_packets,
        );
    }
    out
}

/// One line for an edge event.
pub fn render_edge(event: &EdgeEvent, links: &[AttachedLink]) -> String {
    let interface = links
        .iter()
        .find(|link| link.slot == event.slot)
        .map_or("?", |link| link.interface.as_str());
    let kind = match EvidenceKind::from_raw(event.kind) {
        Some(EvidenceKind::Heartbeat) => format!("heartbeat seq {}", event.seq),
        Some(EvidenceKind::Replication) => "replication".to_owned(),
        Some(EvidenceKind::Echo) => format!("echo reply, round trip {}", span(event.seq)),
        None => format!("unknown kind {}", event.kind),
    };
    let silence = if event.previous_ns == 0 {
        "first evidence ever".to_owned()
    } else {
        format!(
            "after {} of silence",
            age(event.previous_ns, event.ns).trim()
        )
    };
    format!("edge: {interface}: {kind}, {silence}")
}

/// `now - then` in a short human unit; "-" when `then` is zero (never).
fn age(then_ns: u64, now_ns: u64) -> String {
    if then_ns == 0 {
        return "-".to_owned();
    }
    span(now_ns.saturating_sub(then_ns))
}

/// A duration in ns, in a short human unit.
fn span(ns: u64) -> String {
    match ns {
        0..1_000_000 => format!("{}us", ns / 1_000),
        1_000_000..10_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{}s", ns / 1_000_000_000),
    }
}

#[cfg(test)]
mod tests {
    use aya::programs::XdpMode;
    use ha_common::Counters;

    use super::*;

    fn link() -> AttachedLink {
        AttachedLink {
            interface: "veth-a".into(),
            ifindex: 4,
            slot: 0,
            xdp_mode: XdpMode::Driver,
            adopted: false,
        }
    }

    #[test]
    fn table_shows_counts_and_ages() {
        let stats = LinkStats {
            rx: Counters {
                heartbeat_packets: 12,
                heartbeat_last_ns: 1_000_000_000,
                heartbeat_last_seq: 11,
                replication_packets: 3,
                replication_bytes: 4096,
                replication_last_ns: 0,
                ..Counters::default()
            },
            tx: Counters::default(),
        };
        let link = link();
        let table = render_table(&[(&link, stats)], 1_002_500_000);
        let row = table.lines().nth(1).unwrap();
        let cells: Vec<_> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "veth-a", "12", "11", "2.5ms", "3", "4096", "-", "0", "-", "0", "0", "0"
            ]
        );
    }

    #[test]
    fn edge_lines_name_link_kind_and_silence() {
        let event = EdgeEvent {
            ifindex: 4,
            slot: 0,
            kind: EvidenceKind::Heartbeat as u32,
            _pad0: 0,
            ns: 3_000_000_000,
            previous_ns: 1_000_000_000,
            seq: 9,
        };
        assert_eq!(
            render_edge(&event, &[link()]),
            "edge: veth-a: heartbeat seq 9, after 2000.0ms of silence"
        );
        let first = EdgeEvent {
            previous_ns: 0,
            kind: EvidenceKind::Replication as u32,
            ..event
        };
        assert_eq!(
            render_edge(&first, &[link()]),
            "edge: veth-a: replication, first evidence ever"
        );
    }
}
