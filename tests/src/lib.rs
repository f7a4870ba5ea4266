//! Support for the privileged end-to-end tests and benchmarks: Drop guards for every
//! kernel object a test creates, and the skip policy.
//!
//! - [`require`]: decides whether a privileged test can run here. When it cannot, the
//!   test prints why and passes as skipped, unless `HA_REQUIRE_PRIVILEGED=1` (set by
//!   `.ci/run`), where a skip is a failure.
//! - [`netns::NetNs`]: a network namespace that is deleted on drop (with everything in
//!   it: veths, addresses, attached XDP programs, nftables rules).
//! - [`topology::TwoNodes`]: two namespaces joined by veth pairs, the smallest "cluster".
//! - [`daemon::Daemon`]: `ha-daemon run` in a namespace with its event stream; stopped
//!   on drop.
//! - [`loopdev::LoopDevice`], [`loopdev::MountGuard`]: an ext4 loop device, detached on
//!   drop; a mount, unmounted on drop.
//! - [`lxc::Container`], [`lxc::TestUser`]: a busybox container (privileged or owned by a
//!   test user), destroyed on drop; the user, deleted on drop.
//!
//! - [`lab::Lab`]: the two-node lab (both nodes with DRBD, filesystem, container, VIP
//!   and daemon; a client; a witness), removed on drop; [`mountns::MountNs`]: a node's
//!   own mount namespace.
//! - [`witness::WitnessLan`]: a witness namespace both nodes of a [`topology::TwoNodes`]
//!   reach; deleted on drop.
//!
//! Tests that change kernel state run one at a time (`--test-threads=1`).

pub mod bpffs;
pub mod cluster;
pub mod daemon;
pub mod drbd_emu;
pub mod lab;
pub mod lan;
pub mod loopdev;
pub mod lxc;
pub mod mountns;
pub mod netns;
pub mod nft;
pub mod packet;
pub mod peers;
pub mod prog_test;
pub mod topology;
pub mod witness;

use std::process::Command;

/// Something a privileged test needs.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// Effective uid 0.
    Root,
    /// The daemon was built with its eBPF object (bpf-linker was present at build time).
    EbpfObject,
    /// A program on PATH.
    Program(&'static str),
    /// The `ha-daemon` binary is built next to the tests.
    DaemonBinary,
}

/// Environment variable that turns a skip into a failure.
pub const REQUIRE_PRIVILEGED: &str = "HA_REQUIRE_PRIVILEGED";

/// Returns `true` when every need is met. Otherwise prints the reason and returns
/// `false` (the caller returns early: skipped), or panics with the reason when
/// `HA_REQUIRE_PRIVILEGED=1`.
pub fn require(test: &str, needs: &[Need]) -> bool {
    let Some(missing) = needs.iter().find_map(|need| unmet(*need)) else {
        return true;
    };
    if std::env::var(REQUIRE_PRIVILEGED).is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run: {missing} ({REQUIRE_PRIVILEGED}=1 makes this a failure)");
    }
    eprintln!("SKIPPED {test}: {missing}");
    false
}

fn unmet(need: Need) -> Option<String> {
    match need {
        Need::Root => (!nix::unistd::geteuid().is_root())
            .then(|| "needs root (network namespaces, BPF)".to_owned()),
        Need::EbpfObject => ha_daemon::io::ebpf::object().is_none().then(|| {
            "ha-daemon was built without its eBPF object (run `cargo xtask build-ebpf`)".to_owned()
        }),
        Need::DaemonBinary => (!daemon::binary().exists()).then(|| {
            format!(
                "{} is not built (run `cargo build -p ha-daemon`; `cargo xtask test` does)",
                daemon::binary().display()
            )
        }),
        Need::Program(program) => {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .output()
                .is_ok_and(|out| out.status.success());
            (!found).then(|| format!("needs `{program}` on PATH"))
        }
    }
}

/// The program `name` of the same build as the running test or tool
/// (`target/<profile>/<name>`): tests run from `target/<profile>/deps/`, tools from
/// `target/<profile>/`.
pub fn sibling_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("own executable path");
    let dir = exe.parent().expect("executable directory");
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().expect("profile directory")
    } else {
        dir
    };
    profile_dir.join(name)
}

/// Runs a command and returns its stdout; panics with the command, status and stderr
/// when it fails (test code: a failed setup step is a failed test).
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
