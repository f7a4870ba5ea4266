//! End-to-end failover scenarios in the two-node lab ([`ha_tests::lab`]), for real, as
//! root: DRBD (emulator), ext4, an LXC container, the VIP, both daemons, a client and a
//! witness. Each test asserts what happened; the lab removes everything on drop.

use std::time::Duration;

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

#[test]
fn a_partition_moves_the_group_to_the_side_with_the_witness_and_heals_to_one_primary() {
    if !lab_needs(
        "a_partition_moves_the_group_to_the_side_with_the_witness_and_heals_to_one_primary",
    ) {
        return;
    }
    let options = LabOptions {
        fence: false,
        ..LabOptions::default()
    };
    let mut lab = Lab::new(&options);
    let holder = lab.start_cluster();
    let isolation = Duration::from_millis(options.isolation_timeout_ms);
    let report = scenario::partition(&mut lab, holder, isolation).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}

#[test]
fn thirty_percent_loss_on_both_links_for_a_minute_changes_no_role() {
    if !lab_needs("thirty_percent_loss_on_both_links_for_a_minute_changes_no_role") {
        return;
    }
    let mut lab = Lab::new(&LabOptions::default());
    lab.start_cluster();
    let report =
        scenario::loss(&mut lab, 30, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}

#[test]
fn a_starved_secondary_never_takes_over() {
    if !lab_needs("a_starved_secondary_never_takes_over") {
        return;
    }
    let mut lab = Lab::new(&LabOptions::default());
    let holder = lab.start_cluster();
    let stopped = scenario::stopped_secondary(&mut lab, holder, Duration::from_millis(500))
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{stopped}");
    let busy =
        scenario::busy_cores(&mut lab, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    println!("{busy}");
}

#[test]
fn a_switchover_there_and_back_from_the_cli() {
    if !lab_needs("a_switchover_there_and_back_from_the_cli") {
        return;
    }
    let mut lab = Lab::new(&LabOptions::default());
    let holder = lab.start_cluster();
    for report in scenario::switchover(&mut lab, holder).unwrap_or_else(|e| panic!("{e}")) {
        println!("{report}");
    }
}

#[test]
fn standby_and_maintenance_behave_as_documented() {
    if !lab_needs("standby_and_maintenance_behave_as_documented") {
        return;
    }
    let mut lab = Lab::new(&LabOptions::default());
    let holder = lab.start_cluster();
    let report =
        scenario::standby_and_maintenance(&mut lab, holder).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}

#[test]
fn restarting_the_primary_daemon_stops_nothing_and_moves_nothing() {
    if !lab_needs("restarting_the_primary_daemon_stops_nothing_and_moves_nothing") {
        return;
    }
    let mut lab = Lab::new(&LabOptions::default());
    let holder = lab.start_cluster();
    let report = scenario::restart(&mut lab, holder).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}

#[test]
fn a_daemon_killed_mid_takeover_ends_with_one_consistent_owner() {
    if !lab_needs("a_daemon_killed_mid_takeover_ends_with_one_consistent_owner") {
        return;
    }
    let options = LabOptions {
        stall_after_promote: true,
        ..LabOptions::default()
    };
    let mut lab = Lab::new(&options);
    let holder = lab.start_cluster();
    let report = scenario::kill_mid_takeover(&mut lab, holder).unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
}
