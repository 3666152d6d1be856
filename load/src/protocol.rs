//! The wire, pure over bytes: Phoenix V2 frames (JSON text and the binary
//! kinds of phoenix.js `serializer.js`), y-protocols sync messages, and the
//! `@@sender:seq:micros@@` marker that lets a receiver match a delivery to
//! its send without any shared state.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Wire strings, as phoenix.js keeps them in `constants.js`.
pub const PHX_JOIN: &str = "phx_join";
pub const PHX_LEAVE: &str = "phx_leave";
pub const PHX_REPLY: &str = "phx_reply";
pub const PHX_ERROR: &str = "phx_error";
pub const PHX_CLOSE: &str = "phx_close";
pub const HEARTBEAT: &str = "heartbeat";
pub const PHOENIX_TOPIC: &str = "phoenix";
pub const PRESENCE_DIFF: &str = "presence_diff";
pub const RESPONSE_UPDATE: &str = "response:update";
pub const RESPONSE_UPDATED: &str = "response:updated";
pub const YJS: &str = "yjs";
pub const YJS_SYNC: &str = "yjs_sync";

/// Binary frame kinds of phoenix.js `serializer.js`.
const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// y-protocols: outer message type and sync sub-types (y-websocket's bytes).
pub const MESSAGE_SYNC: u8 = 0;
pub const SYNC_STEP1: u8 = 0;
pub const SYNC_STEP2: u8 = 1;
pub const SYNC_UPDATE: u8 = 2;

/// Encodes a text frame `[join_ref, ref, topic, event, payload]`.
pub fn text_frame(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &serde_json::Value,
) -> String {
    serde_json::to_string(&(join_ref, msg_ref, topic, event, payload))
        .expect("a tuple of strings and a Value always serializes")
}

/// Encodes a binary push (kind 0) as phoenix.js `binaryEncode` does.
/// Each of join_ref, ref, topic and event must be at most 255 bytes.
pub fn binary_push(
    join_ref: &str,
    msg_ref: &str,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Vec<u8> {
    let parts = [join_ref, msg_ref, topic, event];
    let meta: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(5 + meta + payload.len());
    out.push(KIND_PUSH);
    for p in parts {
        out.push(u8::try_from(p.len()).expect("frame metadata fields are short"));
    }
    for p in parts {
        out.extend_from_slice(p.as_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// A text frame as received; the payload is left raw so that hot paths can
/// scan it without building a `Value`.
#[derive(Debug, Deserialize)]
pub struct TextFrame<'a> {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

/// Decodes `[join_ref, ref, topic, event, payload]`.
pub fn parse_text(s: &str) -> Result<TextFrame<'_>, serde_json::Error> {
    let (join_ref, msg_ref, topic, event, payload): (
        Option<String>,
        Option<String>,
        String,
        String,
        &RawValue,
    ) = serde_json::from_str(s)?;
    Ok(TextFrame {
        join_ref,
        msg_ref,
        topic,
        event,
        payload,
    })
}

/// The payload of a JSON `phx_reply`.
#[derive(Debug, Deserialize)]
pub struct ReplyPayload<'a> {
    pub status: String,
    #[serde(borrow, default)]
    pub response: Option<&'a RawValue>,
}

/// A binary frame as received.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryFrame<'a> {
    /// Kind 0 from the server: a push to one socket (no ref).
    Push {
        join_ref: &'a str,
        topic: &'a str,
        event: &'a str,
        payload: &'a [u8],
    },
    /// Kind 1: a reply; `status` stands where the event would be.
    Reply {
        join_ref: &'a str,
        msg_ref: &'a str,
        topic: &'a str,
        status: &'a str,
        payload: &'a [u8],
    },
    /// Kind 2: a broadcast.
    Broadcast {
        topic: &'a str,
        event: &'a str,
        payload: &'a [u8],
    },
}

impl<'a> BinaryFrame<'a> {
    pub fn topic(&self) -> &'a str {
        match self {
            BinaryFrame::Push { topic, .. }
            | BinaryFrame::Reply { topic, .. }
            | BinaryFrame::Broadcast { topic, .. } => topic,
        }
    }
}

/// Decodes a binary frame sent by the server (phoenix.js `binaryDecode`).
pub fn parse_binary(buf: &[u8]) -> Option<BinaryFrame<'_>> {
    let kind = *buf.first()?;
    // The sizes come first, then the strings in the same order.
    let header = match kind {
        KIND_PUSH => 3,
        KIND_REPLY => 4,
        KIND_BROADCAST => 2,
        _ => return None,
    };
    let sizes = buf.get(1..1 + header)?;
    let mut at = 1 + header;
    let mut fields: [&str; 4] = [""; 4];
    for (i, &size) in sizes.iter().enumerate() {
        let end = at + size as usize;
        fields[i] = std::str::from_utf8(buf.get(at..end)?).ok()?;
        at = end;
    }
    let payload = &buf[at..];
    Some(match kind {
        KIND_PUSH => BinaryFrame::Push {
            join_ref: fields[0],
            topic: fields[1],
            event: fields[2],
            payload,
        },
        KIND_REPLY => BinaryFrame::Reply {
            join_ref: fields[0],
            msg_ref: fields[1],
            topic: fields[2],
            status: fields[3],
            payload,
        },
        _ => BinaryFrame::Broadcast {
            topic: fields[0],
            event: fields[1],
            payload,
        },
    })
}

/// lib0 `writeVarUint`: 7 bits per byte, least significant first.
pub fn write_var_uint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// lib0 `readVarUint`; returns the value and the bytes it took.
pub fn read_var_uint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut n: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// A y-protocols sync message: `messageSync`, the sub-type, then the body as
/// a `varUint8Array`.
pub fn sync_message(sync_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    write_var_uint(&mut out, u64::from(MESSAGE_SYNC));
    write_var_uint(&mut out, u64::from(sync_type));
    write_var_uint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// Splits a y-protocols sync message into its sub-type and body; `None` for
/// anything else (awareness, query-awareness, garbage).
pub fn parse_sync_message(buf: &[u8]) -> Option<(u8, &[u8])> {
    let (outer, a) = read_var_uint(buf)?;
    if outer != u64::from(MESSAGE_SYNC) {
        return None;
    }
    let (sync_type, b) = read_var_uint(&buf[a..])?;
    let (len, c) = read_var_uint(&buf[a + b..])?;
    let start = a + b + c;
    let body = buf.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
    Some((u8::try_from(sync_type).ok()?, body))
}

/// Who sent an edit, its per-sender sequence number, and when (micros since
/// the run's epoch, which every client of one process shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Marker {
    pub sender: u32,
    pub seq: u32,
    pub sent_us: u64,
}

/// Letters only, so the filler can never contain `@@`, a digit run or a
/// character JSON would escape.
const FILLER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// The text of one edit: the marker, then filler up to `len` bytes (the
/// marker alone if it is longer than `len`).
pub fn edit_text(marker: Marker, len: usize) -> String {
    let mut s = marker_text(marker);
    let mut i = 0;
    while s.len() < len {
        s.push(FILLER[i % FILLER.len()] as char);
        i += 1;
    }
    s
}

/// The marker alone, `@@sender:seq:micros@@`, as it starts an edit's text.
pub fn marker_text(marker: Marker) -> String {
    format!("@@{}:{}:{}@@", marker.sender, marker.seq, marker.sent_us)
}

/// Every marker in `buf`, in order. Works on raw Yjs v1 update bytes (which
/// carry inserted strings verbatim) and on raw JSON alike.
pub fn find_markers(buf: &[u8]) -> Vec<Marker> {
    let mut found = Vec::new();
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'@' && buf[i + 1] == b'@' {
            if let Some((m, used)) = parse_marker_body(&buf[i + 2..]) {
                found.push(m);
                i += 2 + used;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// Parses `sender:seq:micros@@` and returns the marker and the bytes used.
fn parse_marker_body(buf: &[u8]) -> Option<(Marker, usize)> {
    let mut nums = [0u64; 3];
    let mut at = 0;
    for (k, num) in nums.iter_mut().enumerate() {
        let start = at;
        while at < buf.len() && buf[at].is_ascii_digit() && at - start < 20 {
            *num = num
                .checked_mul(10)?
                .checked_add(u64::from(buf[at] - b'0'))?;
            at += 1;
        }
        if at == start {
            return None;
        }
        let sep: &[u8] = if k < 2 { b":" } else { b"@@" };
        if !buf[at..].starts_with(sep) {
            return None;
        }
        at += sep.len();
    }
    let marker = Marker {
        sender: u32::try_from(nums[0]).ok()?,
        seq: u32::try_from(nums[1]).ok()?,
        sent_us: nums[2],
    };
    Some((marker, at))
}

/// The keys that a `presence_diff` payload's `joins` holds.
pub fn presence_diff_join_keys(payload: &RawValue) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Diff {
        #[serde(default)]
        joins: std::collections::HashMap<String, serde::de::IgnoredAny>,
    }
    let diff: Diff = serde_json::from_str(payload.get()).ok()?;
    Some(diff.joins.into_keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_frame_is_a_five_element_array() {
        let s = text_frame(Some("1"), Some("2"), "challenges:abc", PHX_JOIN, &json!({}));
        assert_eq!(s, r#"["1","2","challenges:abc","phx_join",{}]"#);
        let hb = text_frame(None, Some("7"), PHOENIX_TOPIC, HEARTBEAT, &json!({}));
        assert_eq!(hb, r#"[null,"7","phoenix","heartbeat",{}]"#);
    }

    #[test]
    fn parses_text_reply_with_raw_payload() {
        let f = parse_text(
            r#"["1","1","challenges:x","phx_reply",{"status":"ok","response":{"a":1}}]"#,
        )
        .unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("1"));
        assert_eq!(f.msg_ref.as_deref(), Some("1"));
        assert_eq!(f.event, PHX_REPLY);
        let r: ReplyPayload = serde_json::from_str(f.payload.get()).unwrap();
        assert_eq!(r.status, "ok");
        assert_eq!(r.response.unwrap().get(), r#"{"a":1}"#);
        let b =
            parse_text(r#"[null,null,"challenges:x","presence_diff",{"joins":{},"leaves":{}}]"#)
                .unwrap();
        assert!(b.join_ref.is_none() && b.msg_ref.is_none());
        assert!(parse_text("[1,2]").is_err());
    }

    #[test]
    fn binary_push_layout() {
        let b = binary_push("12", "3", "t", "yjs", &[9, 8]);
        assert_eq!(
            b,
            vec![
                0, // kind: push
                2, // join_ref size
                1, // ref size
                1, // topic size
                3, // event size
                b'1', b'2', b'3', b't', b'y', b'j', b's', // strings
                9, 8, // payload
            ]
        );
    }

    #[test]
    fn decodes_server_binary_kinds() {
        // Push: kind, join_ref size, topic size, event size (no ref).
        let push = [0, 1, 1, 3, b'5', b't', b'y', b'j', b's', 1, 2];
        assert_eq!(
            parse_binary(&push),
            Some(BinaryFrame::Push {
                join_ref: "5",
                topic: "t",
                event: "yjs",
                payload: &[1, 2]
            })
        );
        // Reply: kind, join_ref size, ref size, topic size, status size.
        let reply = [1, 1, 2, 1, 2, b'5', b'1', b'0', b't', b'o', b'k', 7];
        assert_eq!(
            parse_binary(&reply),
            Some(BinaryFrame::Reply {
                join_ref: "5",
                msg_ref: "10",
                topic: "t",
                status: "ok",
                payload: &[7]
            })
        );
        // Broadcast: kind, topic size, event size.
        let bc = [2, 1, 3, b't', b'y', b'j', b's'];
        assert_eq!(
            parse_binary(&bc),
            Some(BinaryFrame::Broadcast {
                topic: "t",
                event: "yjs",
                payload: &[]
            })
        );
        // Truncated and unknown kinds.
        assert_eq!(parse_binary(&[2, 5, 3, b't']), None);
        assert_eq!(parse_binary(&[7]), None);
        assert_eq!(parse_binary(&[]), None);
    }

    #[test]
    fn var_uint_round_trips() {
        for n in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64] {
            let mut v = Vec::new();
            write_var_uint(&mut v, n);
            assert_eq!(read_var_uint(&v), Some((n, v.len())));
        }
        let mut v = Vec::new();
        write_var_uint(&mut v, 300);
        assert_eq!(v, vec![0xac, 0x02]);
        assert_eq!(read_var_uint(&[0x80]), None);
    }

    #[test]
    fn sync_update_message_bytes() {
        let m = sync_message(SYNC_UPDATE, &[1, 2, 3]);
        assert_eq!(m, vec![0, 2, 3, 1, 2, 3]);
        assert_eq!(
            parse_sync_message(&m),
            Some((SYNC_UPDATE, &[1u8, 2, 3][..]))
        );
        // awareness (type 1) is not a sync message
        assert_eq!(parse_sync_message(&[1, 0]), None);
        // body shorter than announced
        assert_eq!(parse_sync_message(&[0, 2, 5, 1]), None);
    }

    #[test]
    fn edit_text_has_marker_and_length() {
        let m = Marker {
            sender: 42,
            seq: 7,
            sent_us: 123_456,
        };
        let t = edit_text(m, 256);
        assert_eq!(t.len(), 256);
        assert!(t.starts_with("@@42:7:123456@@abc"));
        assert_eq!(find_markers(t.as_bytes()), vec![m]);
    }

    #[test]
    fn finds_markers_in_noise_and_json() {
        let a = Marker {
            sender: 1,
            seq: 2,
            sent_us: 3,
        };
        let b = Marker {
            sender: 10,
            seq: 20,
            sent_us: 30,
        };
        let mut buf = vec![0u8, 0xff, b'@'];
        buf.extend_from_slice(b"@@x@@1:2@@");
        buf.extend_from_slice(edit_text(a, 20).as_bytes());
        buf.extend_from_slice(&[0, 1, 2]);
        buf.extend_from_slice(edit_text(b, 10).as_bytes());
        assert_eq!(find_markers(&buf), vec![a, b]);
        let json = format!(
            r#"{{"challenge":{{"response":"{}"}},"user_id":"u"}}"#,
            edit_text(b, 64)
        );
        assert_eq!(find_markers(json.as_bytes()), vec![b]);
        assert!(find_markers(b"@@1:2:@@ @@:1:2@@ @@1:2:3@").is_empty());
    }

    #[test]
    fn yrs_update_carries_marker_verbatim() {
        use yrs::{Doc, Text, Transact};
        let doc = Doc::with_client_id(99);
        let text = doc.get_or_insert_text("response");
        let m = Marker {
            sender: 5,
            seq: 9,
            sent_us: 77,
        };
        let update = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, &edit_text(m, 256));
            txn.encode_update_v1()
        };
        let msg = sync_message(SYNC_UPDATE, &update);
        let (t, body) = parse_sync_message(&msg).unwrap();
        assert_eq!(t, SYNC_UPDATE);
        assert_eq!(find_markers(body), vec![m]);
    }

    #[test]
    fn presence_diff_joins() {
        let raw: Box<RawValue> = serde_json::from_str(
            r#"{"joins":{"u1":{"metas":[{"phx_ref":"a"}]},"u2":{"metas":[]}},"leaves":{"u3":{"metas":[]}}}"#,
        )
        .unwrap();
        let mut keys = presence_diff_join_keys(&raw).unwrap();
        keys.sort();
        assert_eq!(keys, vec!["u1", "u2"]);
    }
}
