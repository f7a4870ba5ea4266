//! DRBD's state words (roles, disk, connection and replication states) as enums.
//!
//! Every enum keeps words it does not know in `Other` (a newer DRBD may add some), so
//! parsing a word never fails.

use std::fmt;

/// Defines a DRBD state word enum: the known words, and `Other` for words a newer DRBD
/// may print (kept verbatim, never an error).
macro_rules! drbd_words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A word this parser does not know, verbatim.
            Other(String),
        }

        impl $name {
            /// The state named by DRBD's word.
            pub fn parse(word: &str) -> Self {
                match word {
                    $(stringify!($variant) => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }

            /// DRBD's word for this state.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                    $name::Other(word) => word,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

drbd_words! {
    /// A node's role for a resource.
    Role {
        /// May write; DRBD allows one (without allow-two-primaries).
        Primary,
        /// Replica only.
        Secondary,
        /// Not known (a peer that is not connected).
        Unknown,
    }
}

drbd_words! {
    /// A volume's disk state.
    DiskState {
        /// No backing disk.
        Diskless,
        /// Being attached.
        Attaching,
        /// Being detached.
        Detaching,
        /// I/O failed.
        Failed,
        /// Attaching, negotiating with the peer.
        Negotiating,
        /// Partly synced: not usable as data source.
        Inconsistent,
        /// Consistent but known to be older than the peer's.
        Outdated,
        /// The peer's disk, not known (not connected).
        DUnknown,
        /// Consistent, not known whether current.
        Consistent,
        /// Current data.
        UpToDate,
    }
}

drbd_words! {
    /// The state of a connection to a peer (8.4's `WFConnection` is `Connecting` here).
    ConnectionState {
        /// Not trying to connect (configured so, or after a split brain).
        StandAlone,
        /// Tearing the connection down.
        Disconnecting,
        /// About to try connecting.
        Unconnected,
        /// The peer did not answer in time.
        Timeout,
        /// The TCP connection broke.
        BrokenPipe,
        /// The network failed.
        NetworkFailure,
        /// The peer spoke nonsense.
        ProtocolError,
        /// Closing after a failure.
        TearDown,
        /// Waiting for the peer to connect.
        Connecting,
        /// Connected to the peer.
        Connected,
    }
}

drbd_words! {
    /// A volume's replication state towards one peer.
    ReplicationState {
        /// Not replicating (not connected).
        Off,
        /// Replicating normally.
        Established,
        /// Starting a sync as source.
        StartingSyncS,
        /// Starting a sync as target.
        StartingSyncT,
        /// Exchanging bitmaps, as sync source.
        WFBitMapS,
        /// Exchanging bitmaps, as sync target.
        WFBitMapT,
        /// Waiting for the sync UUID.
        WFSyncUUID,
        /// Syncing to the peer.
        SyncSource,
        /// Syncing from the peer.
        SyncTarget,
        /// Sync to the peer paused.
        PausedSyncS,
        /// Sync from the peer paused.
        PausedSyncT,
        /// Online verify, as source.
        VerifyS,
        /// Online verify, as target.
        VerifyT,
        /// Congested: ahead of the peer.
        Ahead,
        /// Congested: behind the peer.
        Behind,
    }
}
