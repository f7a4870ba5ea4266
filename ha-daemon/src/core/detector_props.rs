//! Properties of the failure detector in simulated time (issue 3, "Tests that must pass").
//!
//! - (a) all evidence stops at `t0` after a clean history: the peer is lost no later than
//!   `t0 + dead_after_min + one interval`;
//! - (b) two links with independent random 30 % loss each: no "peer lost" over a long run.
//!   The run is `HA_LONG_SIM` heartbeat intervals at 5 ms (default 10⁷ in release builds
//!   and 10⁶ in debug builds, where 10⁷ would take minutes); one seeded, deterministic run;
//! - (c) 50 % loss on one link, none on the other: no "peer lost", and the lossy link does
//!   not flap;
//! - (d) a link that flaps every 3 s ends up dampened (its `rise` grows) and recovers once
//!   it stays clean;
//! - (e) dampening never delays "peer lost": after any flap history, the peer is lost
//!   within the dead time in force when the evidence stopped.
//!
//! Every timer fires exactly when due ([`Sim::run_until`]), which also checks that a
//! handled timeout is never still due.

use std::time::Duration;

use proptest::prelude::*;

use super::detector::{Event, PeerState};
use super::detector_config::DetectorConfig;
use super::evidence::EvidenceKind;
use super::test_sim::{Sim, SplitMix64, link, ms};
use super::time::Instant;

const INTERVAL: Duration = Duration::from_millis(5);

/// Arrivals of one interval starting at `start`: per link, whether it arrives and its
/// offset; fed in time order.
fn arrivals(start: Instant, offsets: &[Option<Duration>]) -> Vec<(Instant, u8)> {
    let mut arrivals: Vec<(Instant, u8)> = offsets
        .iter()
        .zip(0u8..)
        .filter_map(|(offset, slot)| offset.map(|offset| (start.saturating_add(offset), slot)))
        .collect();
    arrivals.sort();
    arrivals
}

fn interval_start(i: u64) -> Instant {
    Instant::from_nanos(i * 5_000_000)
}

/// Heartbeat intervals for the long run (b): `HA_LONG_SIM`, else 10⁷ (release) or 10⁶
/// (debug).
fn long_run_intervals() -> u64 {
    std::env::var("HA_LONG_SIM")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            1_000_000
        } else {
            10_000_000
        })
}

/// Runs `intervals` heartbeat intervals on two links with independent loss `loss[slot]`
/// and ±50 µs of jitter. Returns the simulation (events: link changes only).
fn lossy_run(seed: u64, intervals: u64, loss: [f64; 2]) -> Sim {
    let mut rng = SplitMix64::new(seed);
    let mut sim = Sim::new(DetectorConfig::default(), 2);
    for i in 1..=intervals {
        let offsets = loss.map(|p| {
            let jitter = Duration::from_micros(rng.below(100));
            (!rng.chance(p)).then_some(Duration::from_micros(1_000).saturating_add(jitter))
        });
        for (at, slot) in arrivals(interval_start(i), &offsets) {
            sim.evidence(at, slot, EvidenceKind::VerifiedHeartbeat);
        }
        // Keep memory flat over 10⁷ intervals: only peer events matter here.
        if sim.events.len() > 10_000 {
            sim.events.retain(|event| {
                !matches!(
                    event,
                    Event::LinkUp { .. }
                        | Event::LinkDown { .. }
                        | Event::Degraded { .. }
                        | Event::AllLinksUp { .. }
                )
            });
        }
    }
    sim.run_until(interval_start(intervals + 1));
    sim
}

fn peer_events(sim: &Sim) -> Vec<Event> {
    sim.events
        .iter()
        .filter(|event| matches!(event, Event::PeerLost { .. } | Event::PeerDaemonDown { .. }))
        .copied()
        .collect()
}

#[test]
fn b_two_links_with_30_percent_loss_never_lose_the_peer() {
    let intervals = long_run_intervals();
    let sim = lossy_run(0x5eed_0003, intervals, [0.3, 0.3]);
    let link_downs = sim.count(|event| matches!(event, Event::LinkDown { .. }));
    eprintln!(
        "(b) {intervals} intervals: {link_downs} link downs kept, dead_after {:?} / {:?}",
        sim.dead_after(0),
        sim.dead_after(1)
    );
    assert_eq!(peer_events(&sim), [], "after {intervals} intervals");
    assert_eq!(sim.peer(), PeerState::Alive);
    for slot in 0..2 {
        let dead_after = sim.dead_after(slot);
        assert!(
            dead_after > Duration::from_millis(50) && dead_after < Duration::from_millis(100),
            "30 % loss: dead time grows to about 13 intervals, got {dead_after:?}"
        );
    }
}

#[test]
fn c_half_the_heartbeats_lost_on_one_link_never_lose_the_peer() {
    let sim = lossy_run(0x5eed_0004, 400_000, [0.5, 0.0]);
    let lossy_downs =
        sim.count(|event| matches!(event, Event::LinkDown { link: l, .. } if *l == link(0)));
    eprintln!(
        "(c) lossy link went down {lossy_downs} times; dead_after {:?}",
        sim.dead_after(0)
    );
    assert_eq!(peer_events(&sim), []);
    assert_eq!(sim.peer(), PeerState::Alive);
    assert!(
        lossy_downs <= 3,
        "the lossy link must not flap: {lossy_downs} downs"
    );
    assert!(
        sim.dead_after(0) > Duration::from_millis(100),
        "{:?}",
        sim.dead_after(0)
    );
    assert_eq!(sim.dead_after(1), DetectorConfig::default().dead_after_min);
}

#[test]
fn d_a_flapping_link_is_dampened_and_recovers_when_clean() {
    let config = DetectorConfig::default();
    let mut sim = Sim::new(config, 2);
    let rise_of_link_0 = |sim: &Sim| sim.detector.link_status(link(0)).unwrap().rise_required;
    let per_cycle = 600; // 3 s
    let mut max_rise = 0;
    let mut ups_per_cycle = Vec::new();
    for cycle in 0..20u64 {
        let ups_before =
            sim.count(|event| matches!(event, Event::LinkUp { link: l, .. } if *l == link(0)));
        for i in 0..per_cycle {
            let n = cycle * per_cycle + i + 1;
            // Link 0 carries evidence for 1.5 s, then is silent for 1.5 s.
            let link_0 = (i < per_cycle / 2).then_some(Duration::from_micros(1_000));
            for (at, slot) in arrivals(
                interval_start(n),
                &[link_0, Some(Duration::from_micros(2_000))],
            ) {
                sim.evidence(at, slot, EvidenceKind::VerifiedHeartbeat);
            }
        }
        max_rise = max_rise.max(rise_of_link_0(&sim));
        let ups =
            sim.count(|event| matches!(event, Event::LinkUp { link: l, .. } if *l == link(0)));
        ups_per_cycle.push(ups - ups_before);
    }
    eprintln!("(d) link 0 came up per cycle: {ups_per_cycle:?}; largest rise {max_rise}");
    assert!(
        max_rise > config.rise * 10,
        "flapping grows the rise: {max_rise}"
    );
    assert_eq!(ups_per_cycle[0], 1);
    assert!(
        ups_per_cycle[10..].contains(&0),
        "a dampened link stays down through some of its good spells: {ups_per_cycle:?}"
    );

    // Now link 0 stays clean.
    let clean_from = 20 * per_cycle + 1;
    let mut up_again = None;
    for n in clean_from..clean_from + 15_000 {
        let offsets = [
            Some(Duration::from_micros(1_000)),
            Some(Duration::from_micros(2_000)),
        ];
        for (at, slot) in arrivals(interval_start(n), &offsets) {
            sim.evidence(at, slot, EvidenceKind::VerifiedHeartbeat);
        }
        if up_again.is_none() && sim.detector.link_status(link(0)).unwrap().state.is_up() {
            up_again = Some(n - clean_from);
        }
    }
    let up_again = up_again.expect("a clean link comes back");
    eprintln!("(d) up again after {up_again} clean intervals");
    assert!(
        up_again <= u64::from(config.dampening.max_rise),
        "{up_again}"
    );
    let status = sim.detector.link_status(link(0)).unwrap();
    assert!(status.state.is_up());
    assert_eq!(
        status.rise_required, config.rise,
        "75 s clean: dampening has decayed"
    );
    assert!(status.penalty < config.dampening.threshold);
    assert_eq!(peer_events(&sim), [], "link 1 was clean throughout");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_peer_lost_within_dead_after_min_plus_a_tick_on_a_clean_history(
        links in 1usize..=3,
        history in 1_100u64..1_600,
        phases in proptest::array::uniform3(0u64..5_000),
        jitter_us in 0u64..=100,
        kernel_too in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let config = DetectorConfig::default();
        let mut rng = SplitMix64::new(seed);
        let mut sim = Sim::new(config, links);
        let mut t0 = Instant::ZERO;
        for i in 1..=history {
            let offsets: Vec<Option<Duration>> = phases[..links]
                .iter()
                .map(|&phase| Some(Duration::from_micros(phase + rng.below(jitter_us + 1))))
                .collect();
            for (at, slot) in arrivals(interval_start(i), &offsets) {
                if kernel_too {
                    sim.evidence(at, slot, EvidenceKind::KernelHeartbeat);
                }
                let verified_at = at.saturating_add(Duration::from_micros(if kernel_too { 30 } else { 0 }));
                sim.evidence(verified_at, slot, EvidenceKind::VerifiedHeartbeat);
                t0 = t0.max(verified_at);
            }
        }
        prop_assert_eq!(sim.peer(), PeerState::Alive);
        prop_assert_eq!(sim.peer_lost_at(), None);
        sim.run_until(t0.saturating_add(Duration::from_secs(10)));
        let lost_at = sim.peer_lost_at();
        let bound = t0.saturating_add(config.dead_after_min).saturating_add(INTERVAL);
        prop_assert!(lost_at.is_some_and(|at| at <= bound), "lost at {:?}, bound {}", lost_at, bound);
        prop_assert!(lost_at.is_some_and(|at| at > t0));
    }

    #[test]
    fn e_dampening_never_delays_peer_lost(
        flaps in proptest::collection::vec((0u64..400, 0u64..400, 0usize..2), 1..12),
        seed in any::<u64>(),
    ) {
        let config = DetectorConfig::default();
        let mut rng = SplitMix64::new(seed);
        let mut sim = Sim::new(config, 2);
        let mut n = 0;
        // Spells of evidence, each followed by a silence of one link or the other.
        for (good, silent, silent_link) in flaps {
            for _ in 0..good + 3 {
                n += 1;
                let offsets = [Some(Duration::from_micros(1_000 + rng.below(50))), Some(Duration::from_micros(3_000))];
                for (at, slot) in arrivals(interval_start(n), &offsets) {
                    sim.evidence(at, slot, EvidenceKind::VerifiedHeartbeat);
                }
            }
            for _ in 0..silent {
                n += 1;
                let mut offsets = [Some(Duration::from_micros(1_000)), Some(Duration::from_micros(3_000))];
                offsets[silent_link] = None;
                for (at, slot) in arrivals(interval_start(n), &offsets) {
                    sim.evidence(at, slot, EvidenceKind::VerifiedHeartbeat);
                }
            }
        }
        sim.run_until(interval_start(n + 1));
        prop_assume!(sim.peer() == PeerState::Alive);
        let t0 = sim.detector.now();
        let newest = (0..2)
            .filter_map(|slot| sim.detector.link_status(link(slot)).unwrap().newest_evidence)
            .map(|evidence| evidence.at.saturating_add(sim.dead_after(evidence.link.slot())))
            .max()
            .unwrap();
        sim.run_until(t0.saturating_add(Duration::from_secs(10)));
        let lost_at = sim.peer_lost_at();
        prop_assert!(lost_at.is_some_and(|at| at <= newest), "lost at {:?}, evidence ran out at {}", lost_at, newest);
        prop_assert!(newest <= t0.saturating_add(config.dead_after_max));
    }
}

#[test]
fn the_simulation_clock_is_what_the_tests_assume() {
    assert_eq!(interval_start(3), ms(15));
    assert_eq!(DetectorConfig::default().interval, INTERVAL);
}
