//! Configuration files for a two-node cluster over [`TwoNodes`] links.

use std::{
    fmt::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use crate::{daemon::TempDir, topology::TwoNodes};

/// Writes the shared key (mode 0600) and both nodes' configurations into `dir`, with
/// `links` links and heartbeats every `interval_ms`; returns (A's, B's) config paths.
/// Each node pins its kernel side under `pins/<a|b>` when `pins` is given (a bpffs);
/// otherwise under `dir`, which is no bpffs, so nothing is pinned. The control sockets
/// are `dir/a.sock` and `dir/b.sock`.
pub fn write_configs(
    dir: &TempDir,
    links: usize,
    interval_ms: u64,
    pins: Option<&Path>,
) -> (PathBuf, PathBuf) {
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, b"test-cluster-key-0123456789abcdef").expect("write key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    let mut paths = Vec::new();
    for (name, node, peer) in [("a", 1, 2), ("b", 2, 1)] {
        let mut toml = format!(
            "cluster_id = 7\nnode_id = {node}\npeer_node_id = {peer}\nkey_file = \"{}\"\n\
             bpf_pin_directory = \"{}\"\ncontrol_socket = \"{}\"\n\n\
             [heartbeat]\ninterval_ms = {interval_ms}\n\n[realtime]\nenabled = true\n",
            key.display(),
            pins.unwrap_or(dir.path()).join(name).display(),
            dir.path().join(format!("{name}.sock")).display()
        );
        for index in 0..links {
            let link = TwoNodes::link(index);
            let (interface, local, remote) = if name == "a" {
                (link.a_if, link.a_v4, link.b_v4)
            } else {
                (link.b_if, link.b_v4, link.a_v4)
            };
            let _ = write!(
                toml,
                "\n[[link]]\nname = \"link{index}\"\ninterface = \"{interface}\"\n\
                 local = \"{local}\"\npeer = \"{remote}\"\n"
            );
        }
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml).expect("write config");
        paths.push(path);
    }
    (paths[0].clone(), paths[1].clone())
}
