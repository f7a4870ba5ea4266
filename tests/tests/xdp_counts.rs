//! The kernel evidence counters, for real: two network namespaces joined by a veth pair,
//! the programs attached on node A's side, traffic sent from node B.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use ha_common::{EdgeEvent, EvidenceKind, LinkStats, echo, heartbeat};
use ha_daemon::io::{
    clock::monotonic_ns,
    ebpf::{EdgeEvents, KernelEvidence, LinkSpec},
};
use ha_tests::{Need, nft, topology::TwoNodes};

const HEARTBEAT_PORT: u16 = 7400;
const ECHO_PORT: u16 = 7401;
const OTHER_PORT: u16 = 7402;
const REPLICATION_PORT: u16 = 7789;

fn needs(test: &str) -> bool {
    ha_tests::require(
        test,
        &[
            Need::Root,
            Need::EbpfObject,
            Need::Program("ip"),
            Need::Program("nft"),
        ],
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Attaches the programs on A's interface (node 1), with B (node 2) as the peer.
fn attach(nodes: &TwoNodes, silence: Duration) -> (KernelEvidence, EdgeEvents) {
    attach_node(nodes, Node::A, silence)
}

#[derive(Clone, Copy)]
enum Node {
    A,
    B,
}

fn attach_node(nodes: &TwoNodes, node: Node, silence: Duration) -> (KernelEvidence, EdgeEvents) {
    let (ns, interface, peer_ipv4, peer_ipv6, node_id, peer_node_id) = match node {
        Node::A => (
            &nodes.a,
            TwoNodes::A_IF,
            TwoNodes::B_V4,
            TwoNodes::B_V6,
            1,
            2,
        ),
        Node::B => (
            &nodes.b,
            TwoNodes::B_IF,
            TwoNodes::A_V4,
            TwoNodes::A_V6,
            2,
            1,
        ),
    };
    let _inside = ns.enter();
    KernelEvidence::load(
        &[LinkSpec {
            interface: interface.to_owned(),
            peer_ipv4: Some(peer_ipv4),
            peer_ipv6: Some(peer_ipv6),
            heartbeat_port: HEARTBEAT_PORT,
            echo_port: ECHO_PORT,
            node_id,
            peer_node_id,
            replication_ports: 7788..=7799,
            silence,
        }],
        None,
    )
    .expect("load and attach the eBPF programs")
}

fn heartbeat(seq: u64) -> Vec<u8> {
    let mut datagram = heartbeat::fixed_header(seq).to_vec();
    datagram.extend_from_slice(&[0xAB; 64]);
    datagram
}

/// Receives datagrams until none arrives for 200 ms; returns how many.
fn drain(socket: &UdpSocket) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set timeout");
    let mut buf = [0u8; 2048];
    let mut count = 0;
    while socket.recv(&mut buf).is_ok() {
        count += 1;
    }
    count
}

fn stats(kernel: &KernelEvidence) -> LinkStats {
    kernel.stats(0).expect("read stats")
}

#[test]
fn heartbeats_from_the_peer_are_counted_exactly_and_nothing_else_is() {
    if !needs("heartbeats_from_the_peer_are_counted_exactly_and_nothing_else_is") {
        return;
    }
    let nodes = TwoNodes::new();
    // A second address on B: same link, not the peer.
    nodes
        .b
        .ip(&["addr", "add", "192.0.2.3/24", "dev", TwoNodes::B_IF]);
    let rt = runtime();
    let _rt = rt.enter();
    let (kernel, _events) = attach(&nodes, Duration::ZERO);

    let (hb_socket, other_socket) = {
        let _inside = nodes.a.enter();
        (
            UdpSocket::bind((TwoNodes::A_V4, HEARTBEAT_PORT)).expect("bind heartbeat port"),
            UdpSocket::bind((TwoNodes::A_V4, OTHER_PORT)).expect("bind other port"),
        )
    };
    let (peer, stranger) = {
        let _inside = nodes.b.enter();
        (
            UdpSocket::bind((TwoNodes::B_V4, 0)).expect("bind peer"),
            UdpSocket::bind(("192.0.2.3", 0)).expect("bind stranger"),
        )
    };
    let to_hb = (TwoNodes::A_V4, HEARTBEAT_PORT);

    let before = monotonic_ns();
    for seq in 1..=50 {
        peer.send_to(&heartbeat(seq), to_hb).expect("send");
    }
    let after = monotonic_ns();
    assert_eq!(drain(&hb_socket), 50, "every heartbeat reaches the socket");
    let first = stats(&kernel);
    assert_eq!(first.rx.heartbeat_packets, 50);
    assert_eq!(first.rx.heartbeat_last_seq, 50);
    assert!(
        (before..=after).contains(&first.rx.heartbeat_last_ns),
        "kernel time {} of the last heartbeat lies within the sending window {before}..={after}",
        first.rx.heartbeat_last_ns
    );

    for seq in 51..=100 {
        peer.send_to(&heartbeat(seq), to_hb).expect("send");
    }
    // Not evidence: from another address, to another port, truncated, wrong magic.
    for seq in 1..=100 {
        stranger.send_to(&heartbeat(seq), to_hb).expect("send");
        peer.send_to(&heartbeat(seq), (TwoNodes::A_V4, OTHER_PORT))
            .expect("send");
    }
    for len in 0..heartbeat::FIXED_HEADER_LEN {
        peer.send_to(&heartbeat(7)[..len], to_hb).expect("send");
    }
    let mut bad_magic = heartbeat(8);
    bad_magic[0] ^= 0xFF;
    peer.send_to(&bad_magic, to_hb).expect("send");

    let expected_at_hb = 50 + 100 + heartbeat::FIXED_HEADER_LEN + 1;
    assert_eq!(
        drain(&hb_socket),
        expected_at_hb,
        "every packet still arrives"
    );
    assert_eq!(drain(&other_socket), 100, "every packet still arrives");
    let second = stats(&kernel);
    assert_eq!(
        second.rx.heartbeat_packets, 100,
        "only the peer's heartbeats count"
    );
    assert_eq!(second.rx.heartbeat_last_seq, 100);
    assert!(second.rx.heartbeat_last_ns > first.rx.heartbeat_last_ns);
    assert_eq!(second.rx.replication_packets, 0);
}

#[test]
fn egress_counts_what_this_node_sends_to_the_peer() {
    if !needs("egress_counts_what_this_node_sends_to_the_peer") {
        return;
    }
    let nodes = TwoNodes::new();
    let rt = runtime();
    let _rt = rt.enter();
    let (kernel, _events) = attach(&nodes, Duration::ZERO);
    let receiver = {
        let _inside = nodes.b.enter();
        UdpSocket::bind((TwoNodes::B_V4, HEARTBEAT_PORT)).expect("bind")
    };
    let sender = {
        let _inside = nodes.a.enter();
        UdpSocket::bind((TwoNodes::A_V4, 0)).expect("bind")
    };
    for seq in 1..=40 {
        sender
            .send_to(&heartbeat(seq), (TwoNodes::B_V4, HEARTBEAT_PORT))
            .expect("send");
        // Not to the peer's heartbeat port: not counted.
        sender
            .send_to(&heartbeat(seq), (TwoNodes::B_V4, OTHER_PORT))
            .expect("send");
    }
    assert_eq!(drain(&receiver), 40);
    let tx = stats(&kernel).tx;
    assert_eq!(tx.heartbeat_packets, 40);
    assert_eq!(tx.heartbeat_last_seq, 40);
    assert_eq!(
        stats(&kernel).rx.heartbeat_packets,
        0,
        "nothing was received"
    );
}

/// Sends `to_server` bytes from B to A and `to_client` bytes back over one TCP connection
/// to `server`; returns after both sides read everything (content checked).
fn tcp_exchange(nodes: &TwoNodes, server: SocketAddr, to_server: usize, to_client: usize) {
    let listener = {
        let _inside = nodes.a.enter();
        TcpListener::bind(server).expect("listen")
    };
    let mut client = {
        let _inside = nodes.b.enter();
        TcpStream::connect(server).expect("connect")
    };
    let (mut accepted, _) = listener.accept().expect("accept");
    let payload = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<_>>();
    client.write_all(&payload(to_server)).expect("write");
    let mut got = vec![0u8; to_server];
    accepted.read_exact(&mut got).expect("read");
    assert_eq!(
        got,
        payload(to_server),
        "replication data arrives unaltered"
    );
    accepted.write_all(&payload(to_client)).expect("write back");
    let mut back = vec![0u8; to_client];
    client.read_exact(&mut back).expect("read back");
    assert_eq!(back, payload(to_client));
}

#[test]
fn replication_traffic_is_counted_in_packets_and_bytes_on_ipv4_and_ipv6() {
    if !needs("replication_traffic_is_counted_in_packets_and_bytes_on_ipv4_and_ipv6") {
        return;
    }
    let nodes = TwoNodes::new();
    // Independent counts of the same segments, from netfilter.
    nft::load(
        &nodes.a,
        &format!(
            "table inet hat {{
                counter rx4 {{}}
                counter rx6 {{}}
                counter tx {{}}
                chain in {{
                    type filter hook input priority 0;
                    ip saddr {b4} tcp dport 7788-7799 counter name rx4
                    ip6 saddr {b6} tcp dport 7788-7799 counter name rx6
                }}
                chain out {{
                    type filter hook output priority 0;
                    ip daddr {b4} tcp sport 7788-7799 counter name tx
                    ip6 daddr {b6} tcp sport 7788-7799 counter name tx
                }}
            }}",
            b4 = TwoNodes::B_V4,
            b6 = TwoNodes::B_V6
        ),
    );
    let rt = runtime();
    let _rt = rt.enter();
    let (kernel, _events) = attach(&nodes, Duration::ZERO);

    let (v4_in, v4_out, v6_in, v6_out) = (300_000, 20_000, 200_000, 10_000);
    tcp_exchange(
        &nodes,
        SocketAddr::new(IpAddr::V4(TwoNodes::A_V4), REPLICATION_PORT),
        v4_in,
        v4_out,
    );
    let after_v4 = stats(&kernel);
    assert_eq!(after_v4.rx.replication_bytes, v4_in as u64);
    assert_eq!(after_v4.tx.replication_bytes, v4_out as u64);
    tcp_exchange(
        &nodes,
        SocketAddr::new(IpAddr::V6(TwoNodes::A_V6), REPLICATION_PORT),
        v6_in,
        v6_out,
    );
    // Not replication: another port.
    tcp_exchange(
        &nodes,
        SocketAddr::new(IpAddr::V4(TwoNodes::A_V4), 8080),
        50_000,
        50_000,
    );
    // Let the closing segments settle before comparing with netfilter.
    std::thread::sleep(Duration::from_millis(100));

    let total = stats(&kernel);
    assert_eq!(total.rx.replication_bytes, (v4_in + v6_in) as u64);
    assert_eq!(total.tx.replication_bytes, (v4_out + v6_out) as u64);
    let rx_packets = nft::packets(&nodes.a, "hat", "rx4") + nft::packets(&nodes.a, "hat", "rx6");
    assert_eq!(
        total.rx.replication_packets, rx_packets,
        "XDP saw exactly the segments netfilter saw arrive"
    );
    assert_eq!(
        total.tx.replication_packets,
        nft::packets(&nodes.a, "hat", "tx"),
        "tc saw exactly the segments netfilter saw leave"
    );
    assert!(total.rx.replication_last_ns >= after_v4.rx.replication_last_ns);
    assert_eq!(total.rx.heartbeat_packets, 0);
}

/// Waits up to `wait` for edge events and returns all that arrived.
fn collect_events(
    rt: &tokio::runtime::Runtime,
    events: &mut EdgeEvents,
    wait: Duration,
) -> Vec<EdgeEvent> {
    rt.block_on(async {
        let mut got = Vec::new();
        while let Ok(event) = tokio::time::timeout(wait, events.next()).await {
            got.push(event.expect("read ring buffer"));
        }
        got
    })
}

#[test]
fn first_heartbeat_after_silence_produces_exactly_one_edge_event() {
    if !needs("first_heartbeat_after_silence_produces_exactly_one_edge_event") {
        return;
    }
    let nodes = TwoNodes::new();
    let rt = runtime();
    let _rt = rt.enter();
    let silence = Duration::from_millis(150);
    let (_kernel, mut events) = attach(&nodes, silence);
    let peer = {
        let _inside = nodes.b.enter();
        UdpSocket::bind((TwoNodes::B_V4, 0)).expect("bind")
    };
    let send_burst = |seqs: std::ops::RangeInclusive<u64>| {
        for seq in seqs {
            peer.send_to(&heartbeat(seq), (TwoNodes::A_V4, HEARTBEAT_PORT))
                .expect("send");
            std::thread::sleep(Duration::from_millis(2));
        }
    };

    send_burst(1..=20);
    let first = collect_events(&rt, &mut events, Duration::from_millis(100));
    assert_eq!(
        first.len(),
        1,
        "one event for the first evidence ever: {first:?}"
    );
    assert_eq!(first[0].previous_ns, 0);
    assert_eq!(first[0].seq, 1);
    assert_eq!(
        EvidenceKind::from_raw(first[0].kind),
        Some(EvidenceKind::Heartbeat)
    );

    std::thread::sleep(silence * 2);
    send_burst(21..=40);
    let second = collect_events(&rt, &mut events, Duration::from_millis(100));
    assert_eq!(second.len(), 1, "one event after the silence: {second:?}");
    assert_eq!(
        second[0].seq, 21,
        "the event is the first heartbeat after the silence"
    );
    assert!(second[0].ns - second[0].previous_ns >= silence.as_nanos() as u64);
}

#[test]
fn the_peers_kernel_reflects_echo_requests_with_no_process_listening() {
    if !needs("the_peers_kernel_reflects_echo_requests_with_no_process_listening") {
        return;
    }
    let nodes = TwoNodes::new();
    let rt = runtime();
    let _rt = rt.enter();
    let (a, _a_events) = attach_node(&nodes, Node::A, Duration::ZERO);
    // B's kernel has the programs but no process of B listens on the echo port.
    let (b, _b_events) = attach_node(&nodes, Node::B, Duration::ZERO);
    let (v4, v6) = {
        let _inside = nodes.a.enter();
        (
            UdpSocket::bind((TwoNodes::A_V4, ECHO_PORT)).expect("bind"),
            UdpSocket::bind((TwoNodes::A_V6, ECHO_PORT)).expect("bind"),
        )
    };
    // Resolve B's addresses first, as the steady flow of heartbeats does in a cluster:
    // requests sent before that may wait in, or fall out of, the neighbour queue.
    for address in [TwoNodes::B_V4.to_string(), TwoNodes::B_V6.to_string()] {
        nodes.a.exec("ping", &["-c", "1", "-W", "2", &address]);
    }
    for seq in 1..=30 {
        let request = echo::request(1, seq, monotonic_ns());
        v4.send_to(&request, (TwoNodes::B_V4, ECHO_PORT))
            .expect("send");
        v6.send_to(&request, (TwoNodes::B_V6, ECHO_PORT))
            .expect("send");
    }
    // The replies reach A's sockets: their rewritten UDP checksums are valid (a bad one
    // is silently dropped by the receiving stack).
    let replies = |socket: &UdpSocket| {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 128];
        let mut seqs = Vec::new();
        while let Ok(len) = socket.recv(&mut buf) {
            let reply = echo::parse(&buf[..len]).expect("an echo packet");
            assert_eq!(
                (reply.kind, reply.responder, reply.sender),
                (echo::KIND_REPLY, 2, 1)
            );
            seqs.push(reply.seq);
        }
        seqs
    };
    assert_eq!(replies(&v4), (1..=30).collect::<Vec<_>>());
    assert_eq!(replies(&v6), (1..=30).collect::<Vec<_>>());

    let (a, b) = (stats(&a), stats(&b));
    assert_eq!(
        b.rx.echo_reflected, 60,
        "B's kernel turned every request around"
    );
    assert_eq!(a.tx.echo_packets, 60, "A's egress counted its requests");
    assert_eq!(a.rx.echo_packets, 60, "A's XDP counted every reply");
    assert!(
        a.rx.echo_last_rtt_ns > 0 && a.rx.echo_last_rtt_ns < 100_000_000,
        "round trip {} ns",
        a.rx.echo_last_rtt_ns
    );
}
