//! The demo behind `cargo xtask lab` (until the two-node failover lab replaces it).
//!
//! 1. Kernel counters: two network namespaces joined by a veth link, `ha-daemon
//!    counters` attached on node A, and node B sending heartbeats, then DRBD-like
//!    replication traffic, then a silence, then heartbeats again.
//! 2. Failure detection: two `ha-daemon run` daemons over two links; one link is cut
//!    (degraded), then the other (peer lost, with the detection time), then both are
//!    restored (peer alive after `rise`).
//!
//! Everything is removed on exit, on error and on Ctrl-C.

use std::{
    io::Write as _,
    process::{Child, Command, ExitCode},
    time::Duration,
};

use ha_common::heartbeat;
use ha_daemon::io::clock::monotonic_ns;
use ha_tests::{
    cluster::write_configs,
    daemon::{Daemon, TempDir, event_type},
    topology::TwoNodes,
};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, UdpSocket},
    time::sleep,
};

/// Kills and reaps the child on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    let daemon = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("ha-daemon"),
        Err(e) => return fail(&format!("cannot locate ha-daemon: {e}")),
    };
    if !daemon.exists() {
        return fail(&format!(
            "{} is missing: run `cargo xtask lab`",
            daemon.display()
        ));
    }
    if !ha_tests::require(
        "lab",
        &[ha_tests::Need::Root, ha_tests::Need::Program("ip")],
    ) {
        return ExitCode::FAILURE;
    }
    let nodes = TwoNodes::new();
    println!(
        "lab: node A = netns {} ({} {} {}), node B = netns {} ({} {} {})",
        nodes.a.name(),
        TwoNodes::A_IF,
        TwoNodes::A_V4,
        TwoNodes::A_V6,
        nodes.b.name(),
        TwoNodes::B_IF,
        TwoNodes::B_V4,
        TwoNodes::B_V6
    );
    let link = format!("{}={},{}", TwoNodes::A_IF, TwoNodes::B_V4, TwoNodes::B_V6);
    let child = Command::new("ip")
        .args(["netns", "exec", nodes.a.name()])
        .arg(&daemon)
        .args([
            "counters",
            "--link",
            &link,
            "--interval-ms",
            "500",
            "--count",
            "13",
            "--silence-ms",
            "200",
        ])
        .spawn();
    let mut child = match child {
        Ok(child) => ChildGuard(child),
        Err(e) => return fail(&format!("starting ha-daemon: {e}")),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = scenario(&nodes) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    let waited = child.0.wait();
    let _ = std::io::stdout().flush();
    match (outcome, waited) {
        (Ok(()), Ok(status)) if status.success() => {}
        (Ok(()), Ok(status)) => return fail(&format!("ha-daemon exited with {status}")),
        (Ok(()), Err(e)) => return fail(&format!("waiting for ha-daemon: {e}")),
        (Err(e), _) => return fail(&e),
    }
    drop(nodes);
    match detection() {
        Ok(()) => {
            println!("lab: done; daemons stopped, namespaces and veths removed");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Part 2: two daemons, link cuts, the detector's events as A reports them.
fn detection() -> Result<(), String> {
    const INTERVAL_MS: u64 = 5;
    println!();
    println!("lab: part 2: two daemons (heartbeat every {INTERVAL_MS} ms) over two links");
    let nodes = TwoNodes::with_links(2);
    let dir = TempDir::new("lab");
    let (a_config, b_config) = write_configs(&dir, 2, INTERVAL_MS, None);
    let started = monotonic_ns();
    let mut a = Daemon::start(&nodes.a, &a_config);
    let _b = Daemon::start(&nodes.b, &b_config);
    let wait = |daemon: &mut Daemon, kind: &'static str, secs: u64| {
        daemon
            .wait_for(Duration::from_secs(secs), |line| {
                event_type(line) == Some(kind)
            })
            .ok_or_else(|| format!("A reported no {kind} within {secs} s"))
    };
    let alive = wait(&mut a, "peer_alive", 5)?;
    println!("lab: A sees B alive {}", since(started, &alive));
    println!("lab: 5 s of clean heartbeats, so the adaptive dead time can settle");
    std::thread::sleep(Duration::from_secs(5));
    a.collect_for(Duration::ZERO);

    let (link0, link1) = (TwoNodes::link(0), TwoNodes::link(1));
    println!("lab: cutting link 1 ({} <-> {})", link1.a_v4, link1.b_v4);
    let cut = monotonic_ns();
    nodes.b.ip(&["link", "set", &link1.b_if, "down"]);
    for line in a.collect_for(Duration::from_millis(500)) {
        println!("lab:   A: {} {}", since(cut, &line), describe(&line));
    }
    println!(
        "lab: cutting link 0 ({} <-> {}): B is gone",
        link0.a_v4, link0.b_v4
    );
    let cut = monotonic_ns();
    nodes.b.ip(&["link", "set", &link0.b_if, "down"]);
    let lost = wait(&mut a, "peer_lost", 2)?;
    for line in a.seen().iter().filter(|line| at_ns(line) >= cut) {
        println!("lab:   A: {} {}", since(cut, line), describe(line));
    }
    println!(
        "lab: peer lost {:.1} ms after the cut was started",
        (at_ns(&lost) - cut) as f64 / 1e6
    );
    println!("lab: restoring both links");
    let restore = monotonic_ns();
    nodes.b.ip(&["link", "set", &link0.b_if, "up"]);
    nodes.b.ip(&["link", "set", &link1.b_if, "up"]);
    wait(&mut a, "peer_alive", 5)?;
    for line in a.seen().iter().filter(|line| at_ns(line) >= restore) {
        println!("lab:   A: {} {}", since(restore, line), describe(line));
    }
    Ok(())
}

fn at_ns(line: &Value) -> u64 {
    line["monotonic_ns"].as_u64().unwrap_or(0)
}

fn since(start: u64, line: &Value) -> String {
    format!("+{:.1} ms", at_ns(line).saturating_sub(start) as f64 / 1e6)
}

/// One event line in a few words.
fn describe(line: &Value) -> String {
    let event = &line["event"];
    let kind = event_type(line).unwrap_or("?");
    match kind {
        "link_down" => format!(
            "{kind} link {} ({})",
            event["link"],
            event["reason"]["reason"].as_str().unwrap_or("?")
        ),
        "link_up" => format!("{kind} link {} (rise {})", event["link"], event["rise"]),
        "degraded" => format!("{kind}: links {} down", event["down"]),
        _ => kind.to_owned(),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lab: {message}; cleaning up");
    ExitCode::FAILURE
}

/// B's side of the demo: about six seconds of traffic, bounded in count and time.
fn err(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

async fn scenario(nodes: &TwoNodes) -> Result<(), String> {
    // Give the daemon time to attach.
    sleep(Duration::from_millis(700)).await;
    let (heartbeats, listener) = {
        let _inside_b = nodes.b.enter();
        let udp = std::net::UdpSocket::bind((TwoNodes::B_V4, 0)).map_err(err("bind"))?;
        drop(_inside_b);
        let _inside_a = nodes.a.enter();
        let tcp = std::net::TcpListener::bind((TwoNodes::A_V6, 7789)).map_err(err("listen"))?;
        (udp, tcp)
    };
    heartbeats
        .set_nonblocking(true)
        .map_err(err("nonblocking"))?;
    listener.set_nonblocking(true).map_err(err("nonblocking"))?;
    let heartbeats = UdpSocket::from_std(heartbeats).map_err(err("udp"))?;
    let listener = TcpListener::from_std(listener).map_err(err("tcp"))?;

    println!("lab: B sends a heartbeat every 10 ms for 2 s");
    send_heartbeats(&heartbeats, 1..=200).await?;
    println!("lab: B replicates 4 MiB to A over IPv6 TCP port 7789 (DRBD range)");
    replicate(nodes, &listener, 4 << 20).await?;
    println!("lab: B goes silent for 1 s, then heartbeats resume (watch for the edge event)");
    sleep(Duration::from_secs(1)).await;
    send_heartbeats(&heartbeats, 201..=350).await?;
    Ok(())
}

async fn send_heartbeats(
    socket: &UdpSocket,
    seqs: std::ops::RangeInclusive<u64>,
) -> Result<(), String> {
    for seq in seqs {
        let mut datagram = heartbeat::fixed_header(seq).to_vec();
        datagram.extend_from_slice(&[0; 48]);
        socket
            .send_to(&datagram, (TwoNodes::A_V4, 7400))
            .await
            .map_err(|e| format!("send heartbeat: {e}"))?;
        sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn replicate(nodes: &TwoNodes, listener: &TcpListener, bytes: usize) -> Result<(), String> {
    let client = {
        let _inside_b = nodes.b.enter();
        let socket = tokio::net::TcpSocket::new_v6().map_err(|e| format!("socket: {e}"))?;
        socket.connect((TwoNodes::A_V6, 7789).into())
    };
    let (client, accepted) = tokio::join!(client, listener.accept());
    let mut client: TcpStream = client.map_err(|e| format!("connect: {e}"))?;
    let (mut server, _) = accepted.map_err(|e| format!("accept: {e}"))?;
    let writer = async {
        client.write_all(&vec![0x42; bytes]).await?;
        client.shutdown().await
    };
    let reader = async {
        let mut sink = Vec::with_capacity(bytes);
        server.read_to_end(&mut sink).await.map(|_| sink.len())
    };
    let (written, read) = tokio::join!(writer, reader);
    written.map_err(|e| format!("replicate: {e}"))?;
    let read = read.map_err(|e| format!("receive: {e}"))?;
    if read != bytes {
        return Err(format!("A received {read} of {bytes} bytes"));
    }
    Ok(())
}
