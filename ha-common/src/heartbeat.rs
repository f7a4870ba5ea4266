//! The fixed header that starts every heartbeat datagram: the only part of a heartbeat
//! the kernel reads.
//!
//! ```text
//! offset  size  field
//!      0     4  MAGIC  b"HAhb"
//!      4     1  VERSION
//!      5     3  reserved, zero
//!      8     8  sequence number, big-endian
//! ```
//!
//! The rest of the heartbeat (cluster and node ids, epoch, role, flags, HMAC) follows this
//! header and is only read by the daemon. The kernel does not authenticate anything: a
//! count from the kernel is *unauthenticated* evidence.

/// First four bytes of every heartbeat.
pub const MAGIC: [u8; 4] = *b"HAhb";
/// Wire format version this build speaks.
pub const VERSION: u8 = 1;
/// Offset of [`VERSION`].
pub const VERSION_OFFSET: usize = 4;
/// Offset of the big-endian `u64` sequence number.
pub const SEQ_OFFSET: usize = 8;
/// Length of the fixed header; a shorter datagram is not a heartbeat.
pub const FIXED_HEADER_LEN: usize = 16;

/// The fixed header of a heartbeat with sequence number `seq`.
pub fn fixed_header(seq: u64) -> [u8; FIXED_HEADER_LEN] {
    let mut header = [0u8; FIXED_HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[VERSION_OFFSET] = VERSION;
    header[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_be_bytes());
    header
}

/// The sequence number of a datagram that starts with a valid fixed header.
pub fn parse_seq(datagram: &[u8]) -> Option<u64> {
    let header = datagram.get(..FIXED_HEADER_LEN)?;
    if header[..4] != MAGIC || header[VERSION_OFFSET] != VERSION {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&header[SEQ_OFFSET..SEQ_OFFSET + 8]);
    Some(u64::from_be_bytes(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        assert_eq!(
            parse_seq(&fixed_header(0x0102_0304_0506_0708)),
            Some(0x0102_0304_0506_0708)
        );
    }

    #[test]
    fn rejects_short_wrong_magic_and_wrong_version() {
        let good = fixed_header(5);
        assert_eq!(parse_seq(&good[..FIXED_HEADER_LEN - 1]), None);
        let mut bad_magic = good;
        bad_magic[0] = b'X';
        assert_eq!(parse_seq(&bad_magic), None);
        let mut bad_version = good;
        bad_version[VERSION_OFFSET] = VERSION + 1;
        assert_eq!(parse_seq(&bad_version), None);
    }
}
