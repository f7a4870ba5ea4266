//! Runs the eBPF programs on crafted frames with `BPF_PROG_TEST_RUN`: nothing is
//! attached, so this needs BPF privileges but no network setup.

use std::time::Duration;

use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use ha_common::{LinkConfig, LinkStats, LinkTable, map_names};

/// Interface index the kernel reports to XDP under `BPF_PROG_TEST_RUN` (loopback).
const TEST_RUN_IFINDEX: u32 = 1;

/// The loaded (not attached) eBPF object with one link configured for test runs.
pub struct TestRunner {
    ebpf: Ebpf,
}

/// What one program run did.
#[derive(Debug)]
pub struct Outcome {
    /// The program's return value (2 = XDP_PASS).
    pub action: u32,
    /// The frame after the program ran.
    pub frame: Vec<u8>,
    /// Average run time per repetition, as the kernel measured it.
    pub per_run: Duration,
}

impl TestRunner {
    /// Loads the object embedded in ha-daemon and configures `config` in slot 0 for test
    /// runs (its interface index is set to the one test runs report).
    pub fn new(config: LinkConfig) -> Self {
        let object = ha_daemon::io::ebpf::object().expect("eBPF object built");
        let mut ebpf = Ebpf::load(object).expect("load eBPF object");
        let mut table: Array<_, LinkTable> = ebpf
            .map_mut(map_names::LINK_TABLE)
            .expect("link table map")
            .try_into()
            .expect("link table map type");
        let mut links = LinkTable::default();
        links.links[0] = LinkConfig {
            ifindex: TEST_RUN_IFINDEX,
            ..config
        };
        table.set(0, links, 0).expect("write link table");
        for name in [
            ha_common::program_names::XDP_INGRESS,
            ha_common::program_names::XDP_PASS_BASELINE,
            ha_common::program_names::XDP_CLOCK_BASELINE,
        ] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .expect("program")
                .try_into()
                .expect("xdp program");
            program.load().expect("verifier accepts the program");
        }
        Self { ebpf }
    }

    /// Runs XDP program `name` on `frame`, `repeat` times.
    pub fn run(&self, name: &str, frame: &[u8], repeat: u32) -> Outcome {
        let program: &Xdp = self
            .ebpf
            .program(name)
            .expect("program")
            .try_into()
            .expect("xdp program");
        let mut out = vec![0u8; frame.len() + 256];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat,
                ..TestRunOptions::default()
            })
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e:?}", frame.len()));
        out.truncate(result.data_size_out as usize);
        Outcome {
            action: result.return_value,
            frame: out,
            per_run: result.duration,
        }
    }

    /// The link's counters, merged over CPUs.
    pub fn stats(&self) -> LinkStats {
        let stats: PerCpuArray<_, LinkStats> = self
            .ebpf
            .map(map_names::LINK_STATS)
            .expect("stats map")
            .try_into()
            .expect("stats map type");
        stats
            .get(&0, 0)
            .expect("read stats")
            .iter()
            .fold(LinkStats::default(), |mut total, cpu| {
                total.merge(cpu);
                total
            })
    }
}
