//! End-to-end failover scenarios in the two-node lab ([`ha_tests::lab`]), for real, as
//! root: DRBD (emulator), ext4, an LXC container, the VIP, both daemons, a client and a
//! witness. Each test asserts what happened; the lab removes everything on drop.

use ha_tests::{
    Need,
    lab::{
        Lab, LabOptions,
        scenario::{self, Cut},
    },
};

fn lab_needs(test: &str) -> bool {
    ha_tests::require(
        test,
        &[
            Need::Root,
            Need::EbpfObject,
            Need::DaemonBinary,
            Need::Program("nsenter"),
            Need::Program("unshare"),
            Need::Program("fusermount3"),
            Need::Program("mkfs.ext4"),
            Need::Program("lxc-create"),
            Need::Program("busybox"),
            Need::Program("nft"),
        ],
    )
}

#[test]
fn a_crashed_primary_is_replaced_and_its_data_is_on_the_survivor() {
    if !lab_needs("a_crashed_primary_is_replaced_and_its_data_is_on_the_survivor") {
        return;
    }
    let mut lab = Lab::new(&LabOptions::default());
    let holder = lab.start_cluster();
    let report = scenario::crash(&mut lab, holder).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}

#[test]
fn losing_one_link_degrades_without_a_role_change() {
    if !lab_needs("losing_one_link_degrades_without_a_role_change") {
        return;
    }
    let mut lab = Lab::new(&LabOptions::default());
    let holder = lab.start_cluster();
    for cut in [Cut::BackToBack, Cut::Lan] {
        let report = scenario::link_cut(&mut lab, holder, cut).unwrap_or_else(|e| panic!("{e}"));
        println!("{report}");
    }
}
