//! The demo behind `cargo xtask lab` (until the two-node lab replaces it): two network
//! namespaces joined by a veth link, `ha-daemon counters` attached on node A, and node B
//! sending heartbeats, then DRBD-like replication traffic, then a silence, then
//! heartbeats again. Everything is removed on exit, on error and on Ctrl-C.

use std::{
    io::Write as _,
    process::{Child, Command, ExitCode},
    time::Duration,
};

use ha_common::heartbeat;
use ha_tests::topology::TwoNodes;
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
        (Ok(()), Ok(status)) if status.success() => {
            println!("lab: done; namespaces and veths removed");
            ExitCode::SUCCESS
        }
        (Ok(()), Ok(status)) => fail(&format!("ha-daemon exited with {status}")),
        (Ok(()), Err(e)) => fail(&format!("waiting for ha-daemon: {e}")),
        (Err(e), _) => fail(&e),
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
