//! Evidence and the links it arrives on: the vocabulary the detector's inputs are made of.

use std::fmt;

use super::time::Instant;
use super::wire::LINK_SLOTS;

/// A link, named by its slot (its index in `ha_common::LinkTable` and the kernel stats).
///
/// Invariant: the slot is below `ha_common::MAX_LINKS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LinkId(u8);

impl LinkId {
    /// The link in `slot`; `None` when `slot` is not below `ha_common::MAX_LINKS`.
    pub const fn new(slot: u8) -> Option<Self> {
        if (slot as usize) < LINK_SLOTS {
            Some(Self(slot))
        } else {
            None
        }
    }

    /// The slot.
    pub const fn slot(self) -> u8 {
        self.0
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link {}", self.0)
    }
}

/// A set of links, as a bitmask over the slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(into = "Vec<LinkId>")]
pub struct LinkSet(u8);
const _: () = assert!(LINK_SLOTS <= u8::BITS as usize);

impl LinkSet {
    /// No link.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The links in slots `0..count` (all slots if `count` is larger).
    pub fn first(count: usize) -> Self {
        (0..count.min(LINK_SLOTS))
            .filter_map(|slot| u8::try_from(slot).ok().and_then(LinkId::new))
            .collect()
    }

    /// `self` plus `link`.
    pub const fn with(self, link: LinkId) -> Self {
        Self(self.0 | 1 << link.0)
    }

    /// Whether `link` is in the set.
    pub const fn contains(self, link: LinkId) -> bool {
        self.0 & 1 << link.0 != 0
    }

    /// Number of links in the set.
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The links, lowest slot first.
    pub fn iter(self) -> impl Iterator<Item = LinkId> {
        (0..LINK_SLOTS as u8)
            .filter_map(LinkId::new)
            .filter(move |&link| self.contains(link))
    }
}

impl FromIterator<LinkId> for LinkSet {
    fn from_iter<I: IntoIterator<Item = LinkId>>(links: I) -> Self {
        links.into_iter().fold(Self::empty(), Self::with)
    }
}

/// What a piece of evidence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A heartbeat counted by our XDP program (kernel timestamp; not authenticated).
    KernelHeartbeat,
    /// A heartbeat that decoded, authenticated and passed the replay guard.
    VerifiedHeartbeat,
    /// One of our echo packets, turned around by the peer's XDP program: the peer's
    /// kernel is alive and both directions of the link work (not authenticated).
    Echo,
    /// DRBD replication traffic from the peer (not authenticated).
    Replication,
}

/// One piece of evidence: the peer was alive on `link` at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Evidence {
    /// Where it arrived.
    pub link: LinkId,
    /// What it was.
    pub kind: EvidenceKind,
    /// When it arrived (kernel or socket timestamp).
    pub at: Instant,
}

impl From<LinkSet> for Vec<LinkId> {
    fn from(set: LinkSet) -> Self {
        set.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_ids_stay_below_max_links() {
        assert_eq!(LinkId::new(7).map(LinkId::slot), Some(7));
        assert_eq!(LinkId::new(8), None);
        assert_eq!(LinkId(3).to_string(), "link 3");
    }

    #[test]
    fn link_sets() {
        let set = LinkSet::first(3);
        assert_eq!(set.len(), 3);
        assert!(set.contains(LinkId(2)) && !set.contains(LinkId(3)));
        assert_eq!(set.iter().map(LinkId::slot).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(LinkSet::first(100).len(), 8);
        assert!(LinkSet::empty().is_empty());
        assert_eq!(
            [LinkId(5), LinkId(1)].into_iter().collect::<LinkSet>(),
            LinkSet::empty().with(LinkId(1)).with(LinkId(5))
        );
    }
}
