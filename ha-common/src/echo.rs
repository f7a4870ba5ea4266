//! Echo packets: the BFD echo idea, done in XDP.
//!
//! A node sends echo *requests* to its peer's echo port on every link; the peer's XDP
//! program turns each request around in the kernel (XDP_TX) as a *reply*, stamped with the
//! peer's node id, without waking any process. A reply proves that the peer's kernel is
//! alive and that both directions of the link work, even when the peer's daemon is
//! stalled or dead. Both nodes send from and to the same echo port.
//!
//! ```text
//! offset  size  field
//!      0     4  MAGIC  b"HAec"
//!      4     1  VERSION
//!      5     1  kind: KIND_REQUEST or KIND_REPLY
//!      6     2  responder node id, big-endian (0 in requests; the reflector writes it)
//!      8     8  sequence number, big-endian
//!     16     8  sender's CLOCK_MONOTONIC time at sending, ns, big-endian
//!     24     2  sender node id, big-endian
//!     26     6  reserved, zero
//! ```
//!
//! The round trip time is measured on the sender's own clock: reply arrival (kernel time)
//! minus the time written at offset 16. Echo packets are not authenticated: an echo reply
//! is unauthenticated evidence (it can delay a takeover, never cause one).

/// First four bytes of every echo packet.
pub const MAGIC: [u8; 4] = *b"HAec";
/// Format version.
pub const VERSION: u8 = 1;
/// Offset of [`VERSION`].
pub const VERSION_OFFSET: usize = 4;
/// Offset of the kind byte.
pub const KIND_OFFSET: usize = 5;
/// Kind of a request (sent by a daemon).
pub const KIND_REQUEST: u8 = 1;
/// Kind of a reply (written by the reflecting kernel).
pub const KIND_REPLY: u8 = 2;
/// Offset of the responder node id.
pub const RESPONDER_OFFSET: usize = 6;
/// Offset of the sequence number.
pub const SEQ_OFFSET: usize = 8;
/// Offset of the sender's send time.
pub const SENT_NS_OFFSET: usize = 16;
/// Offset of the sender node id.
pub const SENDER_OFFSET: usize = 24;
/// Exact length of an echo packet's UDP payload.
pub const LEN: usize = 32;

/// An echo request from node `sender` with sequence `seq`, sent at `sent_ns`.
pub fn request(sender: u16, seq: u64, sent_ns: u64) -> [u8; LEN] {
    let mut packet = [0u8; LEN];
    packet[..4].copy_from_slice(&MAGIC);
    packet[VERSION_OFFSET] = VERSION;
    packet[KIND_OFFSET] = KIND_REQUEST;
    packet[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_be_bytes());
    packet[SENT_NS_OFFSET..SENT_NS_OFFSET + 8].copy_from_slice(&sent_ns.to_be_bytes());
    packet[SENDER_OFFSET..SENDER_OFFSET + 2].copy_from_slice(&sender.to_be_bytes());
    packet
}

/// The fields of an echo packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// [`KIND_REQUEST`] or [`KIND_REPLY`].
    pub kind: u8,
    /// Node id of the reflecting kernel (0 in requests).
    pub responder: u16,
    /// Sequence number.
    pub seq: u64,
    /// The sender's send time.
    pub sent_ns: u64,
    /// Node id of the sender.
    pub sender: u16,
}

/// Parses an echo packet's UDP payload; `None` unless it has the exact length, magic,
/// version and a known kind.
pub fn parse(payload: &[u8]) -> Option<Echo> {
    if payload.len() != LEN || payload[..4] != MAGIC || payload[VERSION_OFFSET] != VERSION {
        return None;
    }
    let kind = payload[KIND_OFFSET];
    if kind != KIND_REQUEST && kind != KIND_REPLY {
        return None;
    }
    let u16_at = |at: usize| u16::from_be_bytes([payload[at], payload[at + 1]]);
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[at..at + 8]);
        u64::from_be_bytes(b)
    };
    Some(Echo {
        kind,
        responder: u16_at(RESPONDER_OFFSET),
        seq: u64_at(SEQ_OFFSET),
        sent_ns: u64_at(SENT_NS_OFFSET),
        sender: u16_at(SENDER_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let echo = parse(&request(3, 77, 123_456)).unwrap();
        assert_eq!(
            echo,
            Echo {
                kind: KIND_REQUEST,
                responder: 0,
                seq: 77,
                sent_ns: 123_456,
                sender: 3
            }
        );
    }

    #[test]
    fn rejects_wrong_length_magic_version_and_kind() {
        let good = request(1, 1, 1);
        assert!(parse(&good[..LEN - 1]).is_none());
        let mut longer = [0u8; LEN + 1];
        longer[..LEN].copy_from_slice(&good);
        assert!(parse(&longer).is_none());
        for (at, value) in [
            (0, b'X'),
            (VERSION_OFFSET, 9),
            (KIND_OFFSET, 0),
            (KIND_OFFSET, 3),
        ] {
            let mut bad = good;
            bad[at] = value;
            assert!(parse(&bad).is_none(), "byte {at} = {value}");
        }
    }
}
