//! End-to-end failover scenarios in the two-node lab ([`ha_tests::lab`]), for real, as
//! root: DRBD (emulator), ext4, an LXC container, the VIP, both daemons, a client and a
//! witness. Each scenario checks what must hold and fails with the first thing that did
//! not ([`ha_tests::lab::scenario`]); the lab removes everything on drop, also when a
//! scenario fails. `cargo xtask lab --scenario NAME` runs the same scenarios.

use ha_tests::lab::{self, Lab, scenario::Name};

/// Builds the lab `name` needs, starts the cluster, runs the scenario; panics with what
/// did not hold.
fn run(test: &str, name: Name) {
    if !ha_tests::require(test, lab::NEEDS) {
        return;
    }
    let mut lab = Lab::new(&name.options());
    let holder = lab.start_cluster();
    if let Err(failure) = name.run(&mut lab, holder) {
        panic!("{test}: {failure}");
    }
}

#[test]
fn a_crashed_primary_is_replaced_and_its_data_is_on_the_survivor() {
    run(
        "a_crashed_primary_is_replaced_and_its_data_is_on_the_survivor",
        Name::Crash,
    );
}

#[test]
fn losing_one_link_degrades_without_a_role_change() {
    run(
        "losing_one_link_degrades_without_a_role_change",
        Name::LinkCut,
    );
}

#[test]
fn a_partition_moves_the_group_to_the_side_with_the_witness_and_heals_to_one_primary() {
    run(
        "a_partition_moves_the_group_to_the_side_with_the_witness_and_heals_to_one_primary",
        Name::Partition,
    );
}

#[test]
fn thirty_percent_loss_on_both_links_for_a_minute_changes_no_role() {
    run(
        "thirty_percent_loss_on_both_links_for_a_minute_changes_no_role",
        Name::Loss,
    );
}

#[test]
fn a_starved_secondary_never_takes_over() {
    run("a_starved_secondary_never_takes_over", Name::Starve);
}

#[test]
fn a_switchover_there_and_back_from_the_cli() {
    run("a_switchover_there_and_back_from_the_cli", Name::Switchover);
}

#[test]
fn standby_and_maintenance_behave_as_documented() {
    run("standby_and_maintenance_behave_as_documented", Name::Modes);
}

#[test]
fn restarting_the_primary_daemon_stops_nothing_and_moves_nothing() {
    run(
        "restarting_the_primary_daemon_stops_nothing_and_moves_nothing",
        Name::Restart,
    );
}

#[test]
fn a_daemon_killed_mid_takeover_ends_with_one_consistent_owner() {
    run(
        "a_daemon_killed_mid_takeover_ends_with_one_consistent_owner",
        Name::MidTakeover,
    );
}
