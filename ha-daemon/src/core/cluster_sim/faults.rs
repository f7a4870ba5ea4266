//! The simulation's fault schedule and the health it tracks for the calm invariant:
//! which links are healthy (both directions open, no loss) since when.

use std::time::Duration;

use super::{Ev, Group, LINKS, World, ms};
use crate::core::cluster::{Command, GroupResult};
use crate::core::time::Instant;

/// One link of the simulated network.
#[derive(Clone, Copy, Debug)]
pub(super) struct Link {
    /// `cut[from]`: packets sent by node `from` are dropped (one-way when only one is).
    pub(super) cut: [bool; 2],
    /// Loss probability of each packet, both directions.
    pub(super) loss: f64,
    /// Fixed delay.
    pub(super) delay: Duration,
    /// Healthy (no cut, no loss) continuously since then.
    pub(super) healthy_since: Option<Instant>,
}

impl Link {
    pub(super) fn new(delay: Duration) -> Self {
        Link {
            cut: [false; 2],
            loss: 0.0,
            delay,
            healthy_since: Some(Instant::ZERO),
        }
    }

    fn healthy(&self) -> bool {
        self.cut == [false; 2] && self.loss == 0.0
    }
}

impl World {
    /// Changes link `slot` and keeps its `healthy_since`.
    fn set_link(&mut self, slot: usize, change: impl FnOnce(&mut Link)) {
        let now = self.now;
        let link = &mut self.links[slot];
        change(link);
        link.healthy_since = if link.healthy() {
            link.healthy_since.or(Some(now))
        } else {
            None
        };
    }

    fn set_links(&mut self, change: impl Fn(&mut Link)) {
        for slot in 0..LINKS {
            self.set_link(slot, &change);
        }
    }

    /// Both directions of every link are cut.
    pub(super) fn partitioned(&self) -> bool {
        self.links.iter().all(|l| l.cut == [true; 2])
    }

    /// Both nodes up and some link healthy, each for at least `span`.
    pub(super) fn calm_for(&self, span: Duration) -> bool {
        let since = |at: Option<Instant>| at.is_some_and(|at| at.saturating_add(span) <= self.now);
        (0..2).all(|n| since(self.nodes[n].up_since))
            && self.links.iter().any(|l| since(l.healthy_since))
    }

    fn maintenance_on(&self) -> bool {
        self.nodes.iter().any(|n| n.core.is_some() && n.maintenance)
    }

    /// One random fault or operator command. While a node is in maintenance (which
    /// suspends every guard on it by definition) nothing that can cost a node its
    /// peer happens, and maintenance starts only while every link is healthy.
    pub(super) fn fault(&mut self) {
        let node = usize::from(self.rng.chance(0.5));
        let slot = usize::try_from(self.rng.below(LINKS as u64)).expect("small");
        let mut kind = self.rng.below(16);
        if self.maintenance_on() && matches!(kind, 0..=3 | 12..=14) {
            kind = 15;
        }
        match kind {
            0 | 1 => self.set_link(slot, |l| {
                let cut = l.cut == [false; 2];
                l.cut = [cut; 2];
            }),
            2 => {
                let loss = [0.0, 0.05, 0.2][self.rng.below(3) as usize];
                self.set_link(slot, |l| l.loss = loss);
            }
            3 => {
                self.set_links(|l| l.cut = [true; 2]);
                self.witness_side = [None, Some(0), Some(1)][self.rng.below(3) as usize];
            }
            4 => self.set_links(|l| {
                l.cut = [false; 2];
                l.loss = 0.0;
            }),
            5 => {
                self.crash(node);
                let after = ms(300 + self.rng.below(1_200));
                self.schedule(after, Ev::Restart(node));
            }
            6 => self.witness_down = !self.witness_down,
            7 => {
                if self.nodes[node].group == Group::Running {
                    let life = self.nodes[node].life;
                    let result = GroupResult::Failed;
                    self.schedule(Duration::ZERO, Ev::GroupDone { node, life, result });
                }
            }
            8 | 9 => self.command(node, Command::Switchover { to: None }),
            10 => {
                let on = self.rng.chance(0.5);
                self.command(node, Command::Standby(on));
            }
            11 => {
                if let Some(core) = &mut self.nodes[node].core {
                    let usable = self.rng.chance(0.7);
                    core.handle_disk(self.now, usable);
                    self.drain(node);
                }
            }
            // One way: `node`'s packets on one link, or on every link, are dropped
            // while it still hears its peer.
            12 | 13 => self.set_link(slot, |l| l.cut[node] = !l.cut[node]),
            14 => self.set_links(|l| {
                l.cut = [false; 2];
                l.cut[node] = true;
            }),
            _ => {
                let on = !self.nodes[node].maintenance;
                if !on || self.links.iter().all(|l| l.healthy_since.is_some()) {
                    self.command(node, Command::Maintenance(on));
                }
            }
        }
        self.log(format!(
            "fault {kind}: links {:?} witness_side {:?} down {}",
            self.links.map(|l| (l.cut, l.loss)),
            self.witness_side,
            self.witness_down
        ));
    }

    /// Heals every link and the witness, restarts crashed nodes, ends maintenance and
    /// standby, and makes every disk usable.
    pub(super) fn heal(&mut self) {
        self.set_links(|l| {
            l.cut = [false; 2];
            l.loss = 0.0;
        });
        self.witness_down = false;
        self.witness_side = None;
        for node in 0..2 {
            self.restart(node);
            if let Some(core) = &mut self.nodes[node].core {
                core.handle_disk(self.now, true);
            }
            self.command(node, Command::Maintenance(false));
            self.command(node, Command::Standby(false));
        }
    }
}
