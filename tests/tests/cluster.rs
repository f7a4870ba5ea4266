//! The cluster in real namespaces: the witness probe, then two daemons with a resource
//! group of `exec` markers, a witness and a fence command.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use ha_daemon::io::witness;
use ha_tests::{Need, topology::TwoNodes, witness::WitnessLan};

/// Runs `probe` on a thread inside `node`'s namespace (raw sockets belong to the
/// namespace of the thread that opens them).
fn in_namespace<T: Send>(
    node: &ha_tests::netns::NetNs,
    probe: impl Future<Output = T> + Send,
) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _inside = node.enter();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(probe)
            })
            .join()
            .expect("probe thread")
    })
}

#[test]
fn the_witness_answers_until_the_lan_is_cut_and_nobody_else_answers() {
    if !ha_tests::require(
        "the_witness_answers_until_the_lan_is_cut_and_nobody_else_answers",
        &[Need::Root, Need::Program("ip")],
    ) {
        return;
    }
    let nodes = TwoNodes::new();
    let _lan = WitnessLan::new(&nodes);
    let address = IpAddr::V4(WitnessLan::ADDRESS);
    let timeout = Duration::from_millis(250);

    let began = Instant::now();
    let answered = in_namespace(&nodes.a, witness::probe(address, timeout));
    println!("witness answered in {:?}", began.elapsed());
    assert!(answered.expect("probe"), "the witness did not answer");
    let from_b = in_namespace(&nodes.b, witness::reachable(&[address], timeout));
    assert!(from_b, "the witness did not answer B");

    let nobody = IpAddr::V4(WitnessLan::NOBODY);
    let both = in_namespace(&nodes.a, witness::reachable(&[nobody, address], timeout));
    assert!(both, "one answering witness of two is enough");
    let began = Instant::now();
    let silent = in_namespace(&nodes.a, witness::probe(nobody, timeout));
    let waited = began.elapsed();
    println!("no answer from {nobody} after {waited:?}");
    assert!(!silent.expect("probe"), "{nobody} answered");
    assert!(
        waited < timeout * 4,
        "the probe outlived its timeout: {waited:?}"
    );

    WitnessLan::set(&nodes.a, WitnessLan::A_IF, false);
    let cut = in_namespace(&nodes.a, witness::reachable(&[address], timeout));
    assert!(!cut, "the witness answered over a link that is down");
    assert!(
        in_namespace(&nodes.b, witness::reachable(&[address], timeout)),
        "B lost the witness when A's link went down"
    );
}
