//! The cluster's small pure rules, each a function of plain values.

use super::settings::ClusterSettings;

/// Whether a claim `(peer_epoch, peer_id)` outranks ours `(our_epoch, our_id)`: the
/// higher epoch wins, and on equal epochs the higher node id wins (the lower gives way).
pub(super) fn outranks(peer: (u64, u16), ours: (u64, u16)) -> bool {
    peer > ours
}

/// Which node should acquire when both are alive and neither holds the group: the
/// preferred node if it is eligible, else the lower id among the eligible ones, else
/// nobody.
pub(super) fn designated(
    settings: &ClusterSettings,
    we_eligible: bool,
    peer_eligible: bool,
) -> Option<u16> {
    let eligible =
        |id| (id == settings.node_id && we_eligible) || (id == settings.peer_id && peer_eligible);
    if let Some(preferred) = settings.preferred_node.filter(|&id| eligible(id)) {
        return Some(preferred);
    }
    [settings.node_id, settings.peer_id]
        .into_iter()
        .filter(|&id| eligible(id))
        .min()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_higher_epoch_wins_and_a_tie_goes_to_the_higher_node_id() {
        assert!(outranks((5, 1), (4, 2)));
        assert!(!outranks((4, 2), (5, 1)));
        assert!(outranks((5, 2), (5, 1)), "tie: the lower id gives way");
        assert!(!outranks((5, 1), (5, 2)));
        assert!(!outranks((5, 1), (5, 1)));
    }

    #[test]
    fn the_preferred_eligible_node_else_the_lowest_eligible_id_is_designated() {
        let mut settings = ClusterSettings::new(2, 1, Duration::from_millis(250));
        assert_eq!(designated(&settings, true, true), Some(1));
        assert_eq!(designated(&settings, true, false), Some(2));
        assert_eq!(designated(&settings, false, false), None);
        settings.preferred_node = Some(2);
        assert_eq!(designated(&settings, true, true), Some(2));
        assert_eq!(designated(&settings, false, true), Some(1));
    }
}
