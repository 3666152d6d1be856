//! The bus's frames: a JSON header saying what it is, then the bytes it
//! carries (an update, an awareness message, a broadcast's payload) as
//! they are. `[u32 little-endian header length][header][body]`: binary
//! bodies are not base64-encoded, and a frame from a newer node whose
//! header this one does not know is skipped, not fatal.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Bumped when a frame's meaning changes; other versions are skipped.
pub const VERSION: u8 = 1;

/// What a frame is. `node` is always the sender's number (new at each
/// start: see `cluster`). Externally tagged (`{"hb": {...}}`): serde
/// buffers an internally tagged enum's fields, and a buffered field can
/// no longer be read as a `RawValue` (the metas and states carried as they
/// are).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Header {
    /// The sender is alive; `pseq` is the number of its last presence delta.
    Hb { node: u32, name: String, pseq: u64 },
    /// The sender is stopping: its members are gone now.
    Bye { node: u32 },
    /// Changes of the sender's presence entries on one topic.
    Presence {
        node: u32,
        pseq: u64,
        topic: String,
        changes: Vec<WireChange>,
    },
    /// The sender asks node `to` for its whole presence partition.
    SyncReq { node: u32, to: u32 },
    /// The sender's whole presence partition, as of `pseq`, for node `to`.
    State {
        node: u32,
        to: u32,
        pseq: u64,
        entries: Vec<WireEntry>,
    },
    /// A committed update of document `d` of challenge `c`, numbered
    /// `seq`, by `user` (for `response:updated`).
    Update {
        node: u32,
        c: String,
        d: i64,
        seq: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// A `response:update` (its notice goes out at once).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        notice: bool,
    },
    /// Awareness entries (a y-protocols awareness message) of the
    /// sender's member `sub` in a room.
    Awareness {
        node: u32,
        c: String,
        d: i64,
        sub: u64,
    },
    /// An interviewer's control changed the challenge (its new state).
    Challenge {
        node: u32,
        c: String,
        challenge: Box<RawValue>,
    },
    /// An integrity signal, for the interviewers of the room.
    Activity {
        node: u32,
        c: String,
        shown: Box<RawValue>,
    },
    /// A channel broadcast (`PubSub::broadcast`); the body is its payload:
    /// JSON text, or bytes when `binary`.
    Broadcast {
        node: u32,
        topic: String,
        event: String,
        binary: bool,
    },
}

impl Header {
    /// The sending node.
    pub fn node(&self) -> u32 {
        match self {
            Header::Hb { node, .. }
            | Header::Bye { node }
            | Header::Presence { node, .. }
            | Header::SyncReq { node, .. }
            | Header::State { node, .. }
            | Header::Update { node, .. }
            | Header::Awareness { node, .. }
            | Header::Challenge { node, .. }
            | Header::Activity { node, .. }
            | Header::Broadcast { node, .. } => *node,
        }
    }
}

/// A presence change: `meta` present is a join (or an update), absent a leave.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireChange {
    pub key: Box<str>,
    pub sub: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Box<RawValue>>,
}

/// A presence entry of a partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEntry {
    pub topic: String,
    pub key: Box<str>,
    pub sub: u64,
    pub meta: Box<RawValue>,
}

/// A frame that is not one.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame too short")]
    Short,
    #[error("frame of version {0}, not {VERSION}")]
    Version(u8),
    #[error("bad header: {0}")]
    Header(#[from] serde_json::Error),
}

/// Encodes a frame.
pub fn encode(header: &Header, body: &[u8]) -> Vec<u8> {
    // A header of strings and numbers always serializes.
    let head = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(5 + head.len() + body.len());
    out.push(VERSION);
    out.extend_from_slice(&u32::try_from(head.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    out
}

/// Decodes a frame: its header and its body.
pub fn decode(frame: &[u8]) -> Result<(Header, &[u8]), WireError> {
    let (&version, rest) = frame.split_first().ok_or(WireError::Short)?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let len = rest.get(..4).ok_or(WireError::Short)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let head = rest.get(4..4 + len).ok_or(WireError::Short)?;
    let header = serde_json::from_slice(head)?;
    Ok((header, &rest[4 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_binary_bodies() {
        let h = Header::Update {
            node: 7,
            c: "abc".into(),
            d: 0,
            seq: 42,
            user: None,
            notice: false,
        };
        let body = [0u8, 255, 1, 2];
        let frame = encode(&h, &body);
        let (back, rest) = decode(&frame).unwrap();
        assert!(matches!(
            back,
            Header::Update {
                node: 7,
                seq: 42,
                ..
            }
        ));
        assert_eq!(rest, body);
        assert!(matches!(decode(&frame[..3]), Err(WireError::Short)));
        let mut other = frame.clone();
        other[0] = 9;
        assert!(matches!(decode(&other), Err(WireError::Version(9))));
        let unknown = [&[VERSION][..], &5u32.to_le_bytes(), b"{\"t\":"].concat();
        assert!(matches!(decode(&unknown), Err(WireError::Header(_))));
    }

    /// Metas and states travel as raw JSON, inside the header.
    #[test]
    fn raw_json_fields_round_trip() {
        let meta = RawValue::from_string(r#"{"typing":true,"phx_ref":"a.1"}"#.into()).unwrap();
        let frames = [
            Header::Presence {
                node: 1,
                pseq: 3,
                topic: "challenges:x".into(),
                changes: vec![
                    WireChange {
                        key: "u".into(),
                        sub: 9,
                        meta: Some(meta.clone()),
                    },
                    WireChange {
                        key: "u".into(),
                        sub: 8,
                        meta: None,
                    },
                ],
            },
            Header::State {
                node: 1,
                to: 2,
                pseq: 3,
                entries: vec![WireEntry {
                    topic: "t".into(),
                    key: "u".into(),
                    sub: 9,
                    meta: meta.clone(),
                }],
            },
            Header::Challenge {
                node: 1,
                c: "x".into(),
                challenge: meta.clone(),
            },
            Header::Activity {
                node: 1,
                c: "x".into(),
                shown: meta.clone(),
            },
        ];
        for h in frames {
            let frame = encode(&h, &[]);
            let (back, _) = decode(&frame).unwrap_or_else(|e| panic!("{h:?}: {e}"));
            assert_eq!(format!("{back:?}"), format!("{h:?}"));
        }
    }
}
