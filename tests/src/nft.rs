//! nftables counters: an independent count of packets, to check the XDP/tc counts
//! against.

use crate::netns::NetNs;

/// Loads `ruleset` (nft syntax) into the namespace.
pub fn load(ns: &NetNs, ruleset: &str) {
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name()));
    std::fs::write(&path, ruleset).expect("write nft ruleset");
    ns.exec("nft", &["-f", path.to_str().expect("utf-8 temp path")]);
    let _ = std::fs::remove_file(path);
}

/// Packets counted by the named counter `name` in table `inet TABLE`.
pub fn packets(ns: &NetNs, table: &str, name: &str) -> u64 {
    let out = ns.exec("nft", &["list", "counter", "inet", table, name]);
    let mut words = out.split_whitespace();
    while let Some(word) = words.next() {
        if word == "packets" {
            return words
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no packet count in `{out}`"));
        }
    }
    panic!("no packet count in `{out}`")
}
