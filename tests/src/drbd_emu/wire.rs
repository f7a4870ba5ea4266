//! Frames on the replication TCP connection, and the control-socket messages between
//! the commands and `drbd-emu serve`. Pure encoding and decoding.
//!
//! A frame is `tag: u8, length: u32 (big endian), payload`. State-like payloads are
//! JSON; data payloads are `seq: u64, offset: u64, bytes` (big endian). The
//! [`Decoder`] accepts bytes in any split (a read timeout may cut a frame anywhere).

use serde::{Deserialize, Serialize};

use super::state::{PeerState, Uuids};

/// The largest payload accepted (a resync chunk plus header, with margin).
pub const MAX_PAYLOAD: usize = 4 << 20;

/// One replication frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Liveness probe (DRBD's ping); answered with `PingAck`.
    Ping,
    /// Answer to `Ping`.
    PingAck,
    /// The sender's role, disk and generation (handshake and updates).
    State(PeerState),
    /// The sender ran clear-bitmap: adopt `Uuids` and become UpToDate.
    ClearBitmap(Uuids),
    /// A write on the primary, to be acknowledged once on the peer's disk (protocol C).
    Data {
        /// Sequence number echoed by `DataAck`.
        seq: u64,
        /// Byte offset in the image.
        offset: u64,
        /// The written bytes.
        bytes: Vec<u8>,
    },
    /// The write `seq` is on the peer's disk.
    DataAck {
        /// Sequence number of the acknowledged `Data`.
        seq: u64,
    },
    /// A chunk of a full resync.
    Resync {
        /// Byte offset in the image.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The resync is complete; the target's data is now generation `Uuids`.
    ResyncDone(Uuids),
}

/// A malformed frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Unknown tag byte.
    #[error("unknown frame tag {0}")]
    Tag(u8),
    /// Length over [`MAX_PAYLOAD`].
    #[error("frame of {0} bytes is over the limit")]
    TooLong(usize),
    /// Payload does not parse.
    #[error("bad payload for frame tag {tag}: {reason}")]
    Payload {
        /// The tag.
        tag: u8,
        /// What is wrong.
        reason: String,
    },
}

impl Frame {
    fn tag(&self) -> u8 {
        match self {
            Self::Ping => 1,
            Self::PingAck => 2,
            Self::State(_) => 3,
            Self::ClearBitmap(_) => 4,
            Self::Data { .. } => 5,
            Self::DataAck { .. } => 6,
            Self::Resync { .. } => 7,
            Self::ResyncDone(_) => 8,
        }
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let payload = match self {
            Self::Ping | Self::PingAck => Vec::new(),
            Self::State(state) => json(state),
            Self::ClearBitmap(uuids) | Self::ResyncDone(uuids) => json(uuids),
            Self::Data { seq, offset, bytes } => {
                [&seq.to_be_bytes()[..], &offset.to_be_bytes(), bytes].concat()
            }
            Self::DataAck { seq } => seq.to_be_bytes().to_vec(),
            Self::Resync { offset, bytes } => [&offset.to_be_bytes()[..], bytes].concat(),
        };
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        [&[self.tag()][..], &length.to_be_bytes(), &payload].concat()
    }

    fn decode(tag: u8, payload: &[u8]) -> Result<Self, WireError> {
        let bad = |reason: &str| WireError::Payload {
            tag,
            reason: reason.to_owned(),
        };
        let u64_at = |at: usize| {
            payload
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| bad("short"))
        };
        Ok(match tag {
            1 => Self::Ping,
            2 => Self::PingAck,
            3 => Self::State(from_json(tag, payload)?),
            4 => Self::ClearBitmap(from_json(tag, payload)?),
            5 => Self::Data {
                seq: u64_at(0)?,
                offset: u64_at(8)?,
                bytes: payload[16..].to_vec(),
            },
            6 => Self::DataAck { seq: u64_at(0)? },
            7 => Self::Resync {
                offset: u64_at(0)?,
                bytes: payload[8..].to_vec(),
            },
            8 => Self::ResyncDone(from_json(tag, payload)?),
            other => return Err(WireError::Tag(other)),
        })
    }
}

fn from_json<T: serde::de::DeserializeOwned>(tag: u8, payload: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(payload).map_err(|e| WireError::Payload {
        tag,
        reason: e.to_string(),
    })
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Reassembles frames from a byte stream.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Result<Frame, WireError>> {
        let header = self.buffer.get(..5)?;
        let tag = header[0];
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if length > MAX_PAYLOAD {
            return Some(Err(WireError::TooLong(length)));
        }
        let payload = self.buffer.get(5..5 + length)?;
        let frame = Frame::decode(tag, payload);
        self.buffer.drain(..5 + length);
        Some(frame)
    }
}

/// One message from `drbd-emu serve` to a command, as a JSON line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Print on stdout.
    Stdout(String),
    /// Print on stderr.
    Stderr(String),
    /// Exit with this code (last message).
    Exit(i32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd_emu::state::{Disk, Role};

    #[test]
    fn frames_round_trip_in_any_split() {
        let frames = vec![
            Frame::Ping,
            Frame::State(PeerState {
                role: Role::Primary,
                disk: Disk::UpToDate,
                uuids: Uuids {
                    current: 9,
                    history: 3,
                },
            }),
            Frame::Data {
                seq: 7,
                offset: 4096,
                bytes: vec![0xab; 5000],
            },
            Frame::DataAck { seq: 7 },
            Frame::Resync {
                offset: 1 << 20,
                bytes: vec![1, 2, 3],
            },
            Frame::ResyncDone(Uuids::default()),
            Frame::PingAck,
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        for split in [1, 3, 5, 4099, bytes.len()] {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(split) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame() {
                    got.push(frame.unwrap());
                }
            }
            assert_eq!(got, frames, "split {split}");
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut decoder = Decoder::default();
        decoder.push(&[99, 0, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Some(Err(WireError::Tag(99))));
        decoder.push(&[5, 0, 0, 0, 2, 1, 2]);
        assert!(matches!(
            decoder.next_frame(),
            Some(Err(WireError::Payload { tag: 5, .. }))
        ));
        decoder.push(&[5, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decoder.next_frame(),
            Some(Err(WireError::TooLong(_)))
        ));
    }
}
