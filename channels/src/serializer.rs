//! Phoenix's V2 serializer, pure over bytes: JSON text frames
//! `[join_ref, ref, topic, event, payload]` and the binary frames of
//! phoenix.js `serializer.js` (push kind 0, reply kind 1, broadcast kind 2).
//! Decoding never panics: every malformed input is a [`DecodeError`].

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::Value;

use super::message::{Broadcast, Message, Payload, Push, Reply, PHX_REPLY};

/// A frame as it travels on the wire: text (JSON) or binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame: a JSON array.
    Text(Bytes),
    /// A binary frame: phoenix.js's binary encoding.
    Binary(Bytes),
}

impl Frame {
    /// The frame's length in bytes (its payload, without a WebSocket header).
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b.len(),
        }
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The JSON is not a five-element array.
    #[error("a message must be a JSON array of 5 elements [join_ref, ref, topic, event, payload]")]
    Arity,
    /// A field that must be a string (topic, event) is not.
    #[error("{0} must be a string")]
    FieldType(&'static str),
    /// A `ref` that is neither a string nor null.
    #[error("{0} must be a string or null")]
    RefType(&'static str),
    /// A binary frame that ends before its header says.
    #[error("binary frame too short")]
    Truncated,
    /// A binary frame of a kind only the server sends.
    #[error("binary frame of kind {0}: clients may only send pushes (kind 0)")]
    Kind(u8),
    /// A binary frame's string field that is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    Utf8(&'static str),
}

/// Why a message could not be encoded (a binary field over 255 bytes).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} is longer than 255 bytes and cannot be sent in a binary frame")]
pub struct EncodeError(pub &'static str);

/// Decodes a frame from a client.
pub fn decode(frame: &Frame) -> Result<Message, DecodeError> {
    match frame {
        Frame::Text(bytes) => decode_text(bytes),
        Frame::Binary(bytes) => decode_binary(bytes),
    }
}

fn decode_text(bytes: &[u8]) -> Result<Message, DecodeError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(DecodeError::Arity);
    };
    let Ok::<[Value; 5], _>([join_ref, msg_ref, topic, event, payload]) = items.try_into() else {
        return Err(DecodeError::Arity);
    };
    Ok(Message {
        join_ref: opt_ref(join_ref, "join_ref")?,
        msg_ref: opt_ref(msg_ref, "ref")?,
        topic: string(topic, "topic")?,
        event: string(event, "event")?,
        payload: Payload::Json(payload),
    })
}

/// Marks a ref that came as a JSON number: phoenix.js always sends
/// strings, other clients send counters, and Phoenix echoes either as it
/// came. A ref is kept as a string: a number as its digits behind this
/// mark, a string that starts with the mark with the mark doubled.
const NUMBER_MARK: char = '\u{1}';

fn opt_ref(v: Value, name: &'static str) -> Result<Option<String>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.starts_with(NUMBER_MARK) => Ok(Some(format!("{NUMBER_MARK}{s}"))),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(format!("{NUMBER_MARK}{n}"))),
        _ => Err(DecodeError::RefType(name)),
    }
}

/// A ref as the client sent it: a number stays a number in JSON.
struct RefOut<'a>(Option<&'a str>);

impl Serialize for RefOut<'_> {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let Some(s) = self.0 else {
            return out.serialize_none();
        };
        match s.strip_prefix(NUMBER_MARK) {
            Some(rest) if !rest.starts_with(NUMBER_MARK) => {
                match rest.parse::<serde_json::Number>() {
                    Ok(n) => n.serialize(out),
                    Err(_) => out.serialize_str(rest),
                }
            }
            Some(rest) => out.serialize_str(rest),
            None => out.serialize_str(s),
        }
    }
}

/// A ref's text, for binary frames (whose refs are strings).
fn ref_text(s: &str) -> &str {
    s.strip_prefix(NUMBER_MARK).unwrap_or(s)
}

fn ref_out(r: &Option<String>) -> RefOut<'_> {
    RefOut(r.as_deref())
}

fn string(v: Value, name: &'static str) -> Result<String, DecodeError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(DecodeError::FieldType(name)),
    }
}

fn decode_binary(bytes: &Bytes) -> Result<Message, DecodeError> {
    // [kind][join_ref_size][ref_size][topic_size][event_size][join_ref][ref][topic][event][payload]
    let header = bytes.get(..5).ok_or(DecodeError::Truncated)?;
    if header[0] != KIND_PUSH {
        return Err(DecodeError::Kind(header[0]));
    }
    let sizes = [header[1], header[2], header[3], header[4]].map(usize::from);
    let mut offset = 5;
    let mut field = |name: &'static str, size: usize| -> Result<String, DecodeError> {
        let raw = bytes
            .get(offset..offset + size)
            .ok_or(DecodeError::Truncated)?;
        offset += size;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8(name))
    };
    let join_ref = field("join_ref", sizes[0])?;
    let msg_ref = field("ref", sizes[1])?;
    let topic = field("topic", sizes[2])?;
    let event = field("event", sizes[3])?;
    Ok(Message {
        join_ref: Some(join_ref).filter(|s| !s.is_empty()),
        msg_ref: Some(msg_ref).filter(|s| !s.is_empty()),
        topic,
        event,
        payload: Payload::Binary(bytes.slice(offset..)),
    })
}

#[derive(Serialize)]
struct ReplyBody<'a> {
    status: &'a str,
    response: &'a Value,
}

fn json_frame<T: Serialize>(value: &T) -> Frame {
    let mut buf = Vec::with_capacity(128);
    serde_json::to_writer(&mut buf, value).expect("serializing JSON values to a Vec cannot fail");
    Frame::Text(Bytes::from(buf))
}

fn field_len(s: &str, name: &'static str) -> Result<u8, EncodeError> {
    u8::try_from(s.len()).map_err(|_| EncodeError(name))
}

/// Encodes a `phx_reply`.
pub fn encode_reply(reply: &Reply) -> Result<Frame, EncodeError> {
    match &reply.payload {
        Payload::Json(response) => Ok(json_frame(&(
            ref_out(&reply.join_ref),
            ref_out(&reply.msg_ref),
            &reply.topic,
            PHX_REPLY,
            ReplyBody {
                status: reply.status.as_str(),
                response,
            },
        ))),
        Payload::Binary(data) => {
            let join_ref = reply.join_ref.as_deref().map_or("", ref_text);
            let msg_ref = reply.msg_ref.as_deref().map_or("", ref_text);
            let status = reply.status.as_str();
            let mut buf = BytesMut::with_capacity(
                5 + join_ref.len() + msg_ref.len() + reply.topic.len() + status.len() + data.len(),
            );
            buf.put_u8(KIND_REPLY);
            buf.put_u8(field_len(join_ref, "join_ref")?);
            buf.put_u8(field_len(msg_ref, "ref")?);
            buf.put_u8(field_len(&reply.topic, "topic")?);
            buf.put_u8(field_len(status, "status")?);
            buf.put_slice(join_ref.as_bytes());
            buf.put_slice(msg_ref.as_bytes());
            buf.put_slice(reply.topic.as_bytes());
            buf.put_slice(status.as_bytes());
            buf.put_slice(data);
            Ok(Frame::Binary(buf.freeze()))
        }
    }
}

/// Encodes a server push to one member (it carries the member's `join_ref`).
pub fn encode_push(push: &Push) -> Result<Frame, EncodeError> {
    match &push.payload {
        Payload::Json(payload) => Ok(json_frame(&(
            ref_out(&push.join_ref),
            None::<&str>,
            &push.topic,
            &push.event,
            payload,
        ))),
        Payload::Binary(data) => {
            let join_ref = push.join_ref.as_deref().map_or("", ref_text);
            let mut buf = BytesMut::with_capacity(
                4 + join_ref.len() + push.topic.len() + push.event.len() + data.len(),
            );
            buf.put_u8(KIND_PUSH);
            buf.put_u8(field_len(join_ref, "join_ref")?);
            buf.put_u8(field_len(&push.topic, "topic")?);
            buf.put_u8(field_len(&push.event, "event")?);
            buf.put_slice(join_ref.as_bytes());
            buf.put_slice(push.topic.as_bytes());
            buf.put_slice(push.event.as_bytes());
            buf.put_slice(data);
            Ok(Frame::Binary(buf.freeze()))
        }
    }
}

/// Encodes a broadcast: no `join_ref`, so one encoding serves every subscriber.
pub fn encode_broadcast(b: &Broadcast) -> Result<Frame, EncodeError> {
    match &b.payload {
        Payload::Json(payload) => Ok(encode_json_broadcast(&b.topic, &b.event, payload)),
        Payload::Binary(data) => {
            let mut buf = BytesMut::with_capacity(3 + b.topic.len() + b.event.len() + data.len());
            buf.put_u8(KIND_BROADCAST);
            buf.put_u8(field_len(&b.topic, "topic")?);
            buf.put_u8(field_len(&b.event, "event")?);
            buf.put_slice(b.topic.as_bytes());
            buf.put_slice(b.event.as_bytes());
            buf.put_slice(data);
            Ok(Frame::Binary(buf.freeze()))
        }
    }
}

/// A JSON broadcast serialized straight from `payload`, without building a
/// `Value` first (the hot path of every edit's `response:updated`).
pub fn encode_json_broadcast<T: Serialize + ?Sized>(
    topic: &str,
    event: &str,
    payload: &T,
) -> Frame {
    json_frame(&(None::<&str>, None::<&str>, topic, event, payload))
}

/// Encodes a channel exit (`phx_close` / `phx_error`): Phoenix sends it with
/// `ref` = `join_ref` and an empty payload.
pub fn encode_exit(join_ref: Option<&str>, topic: &str, event: &str) -> Frame {
    json_frame(&(
        RefOut(join_ref),
        RefOut(join_ref),
        topic,
        event,
        serde_json::json!({}),
    ))
}

/// Long-poll carries only text: phoenix.js's `LongPoll` hands every message
/// of a poll to `JSON.parse`, so it can never deliver an `ArrayBuffer`.
/// (Phoenix's own long-poll server puts the binary frame's raw bytes in the
/// JSON, which either fails to encode or reaches phoenix.js as a string it
/// cannot parse: Phoenix has no working binary server push over long-poll.)
/// A binary frame is therefore re-encoded as the equivalent JSON message
/// whose payload (or reply `response`) is the array of its byte values,
/// `[0, 1, 5, ...]`: what `new Uint8Array(payload)` reads as the same bytes,
/// as y-phoenix-channel's provider (and any client written for binary
/// payloads) does with a payload.
pub fn binary_to_text(frame: &[u8]) -> Option<Bytes> {
    #[derive(Serialize)]
    struct ReplyBody<'a> {
        status: String,
        response: &'a [u8],
    }
    let str_at = |from: usize, len: usize| -> Option<String> {
        frame
            .get(from..from + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    };
    let nonempty = |s: String| Some(s).filter(|s| !s.is_empty());
    match *frame.first()? {
        KIND_PUSH => {
            let (j, t, e) = (
                usize::from(*frame.get(1)?),
                usize::from(*frame.get(2)?),
                usize::from(*frame.get(3)?),
            );
            let join_ref = nonempty(str_at(4, j)?);
            let topic = str_at(4 + j, t)?;
            let event = str_at(4 + j + t, e)?;
            let data = frame.get(4 + j + t + e..)?;
            Some(bytes_of(&(join_ref, None::<&str>, topic, event, data)))
        }
        KIND_REPLY => {
            let sizes: Vec<usize> = frame.get(1..5)?.iter().map(|b| usize::from(*b)).collect();
            let mut at = 5;
            let mut next = |n: usize| {
                let s = str_at(at, n);
                at += n;
                s
            };
            let join_ref = nonempty(next(sizes[0])?);
            let msg_ref = nonempty(next(sizes[1])?);
            let topic = next(sizes[2])?;
            let status = next(sizes[3])?;
            let data = frame.get(at..)?;
            let body = ReplyBody {
                status,
                response: data,
            };
            Some(bytes_of(&(join_ref, msg_ref, topic, PHX_REPLY, body)))
        }
        KIND_BROADCAST => {
            let (t, e) = (usize::from(*frame.get(1)?), usize::from(*frame.get(2)?));
            let topic = str_at(3, t)?;
            let event = str_at(3 + t, e)?;
            let data = frame.get(3 + t + e..)?;
            Some(bytes_of(&(None::<&str>, None::<&str>, topic, event, data)))
        }
        _ => None,
    }
}

fn bytes_of<T: Serialize>(v: &T) -> Bytes {
    match json_frame(v) {
        Frame::Text(b) | Frame::Binary(b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Status;
    use serde_json::json;

    fn text(s: &str) -> Frame {
        Frame::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn json_of(f: &Frame) -> Value {
        match f {
            Frame::Text(b) => serde_json::from_slice(b).unwrap(),
            Frame::Binary(_) => panic!("a text frame expected"),
        }
    }

    #[test]
    fn decodes_json_push() {
        let m = decode(&text(r#"["1","2","room:lobby","new_msg",{"body":"hi"}]"#)).unwrap();
        assert_eq!(m.join_ref.as_deref(), Some("1"));
        assert_eq!(m.msg_ref.as_deref(), Some("2"));
        assert_eq!(m.topic, "room:lobby");
        assert_eq!(m.event, "new_msg");
        assert_eq!(m.payload, Payload::Json(json!({"body": "hi"})));
    }

    #[test]
    fn decodes_heartbeat_with_null_join_ref_and_numeric_ref() {
        let m = decode(&text(r#"[null,7,"phoenix","heartbeat",{}]"#)).unwrap();
        assert_eq!(m.join_ref, None);
        assert_eq!(m.msg_ref.as_deref().map(ref_text), Some("7"));
    }

    /// Phoenix echoes refs as they came: numbers as numbers, strings as
    /// strings (even ones that look like our mark for numbers).
    #[test]
    fn refs_keep_their_json_type_in_replies_pushes_and_exits() {
        for (join_ref, msg_ref) in [
            ("3", "7"),
            (r#""3""#, r#""7""#),
            ("3", r#""\u0001x""#),
            (r#""\u0001\u00012""#, "12.5"),
        ] {
            let m = decode(&text(&format!(r#"[{join_ref},{msg_ref},"t","e",{{}}]"#))).unwrap();
            let reply = encode_reply(&Reply {
                join_ref: m.join_ref.clone(),
                msg_ref: m.msg_ref.clone(),
                topic: "t".into(),
                status: Status::Ok,
                payload: Payload::Json(json!({})),
            })
            .unwrap();
            let v = json_of(&reply);
            let want: Value = serde_json::from_str(&format!("[{join_ref},{msg_ref}]")).unwrap();
            assert_eq!(&v[0], &want[0], "reply join_ref");
            assert_eq!(&v[1], &want[1], "reply ref");
            let push = encode_push(&Push {
                join_ref: m.join_ref.clone(),
                topic: "t".into(),
                event: "e".into(),
                payload: Payload::Json(json!({})),
            })
            .unwrap();
            let v = json_of(&push);
            assert_eq!(&v[0], &want[0], "push join_ref");
            let exit = encode_exit(m.join_ref.as_deref(), "t", "phx_close");
            let v = json_of(&exit);
            assert_eq!((&v[0], &v[1]), (&want[0], &want[0]), "exit refs");
        }
    }

    #[test]
    fn rejects_malformed_json_frames() {
        for bad in [
            "",
            "not json",
            "{}",
            "[]",
            r#"["1","2","t","e"]"#,
            r#"["1","2","t","e",{},6]"#,
            r#"[{},"2","t","e",{}]"#,
            r#"["1",[],"t","e",{}]"#,
            r#"["1","2",3,"e",{}]"#,
            r#"["1","2","t",null,{}]"#,
            "[\"1\",\"2\",\"t\",\"e\",{\"a\":",
        ] {
            assert!(decode(&text(bad)).is_err(), "{bad:?} should not decode");
        }
    }

    #[test]
    fn decodes_binary_push() {
        let mut f = vec![
            0, // kind: push
            2, // join_ref size
            1, // ref size
            4, // topic size
            3, // event size
        ];
        f.extend_from_slice(b"12"); // join_ref
        f.extend_from_slice(b"3"); // ref
        f.extend_from_slice(b"t:ab"); // topic
        f.extend_from_slice(b"yjs"); // event
        f.extend_from_slice(&[0, 1, 2, 255]); // payload
        let m = decode(&Frame::Binary(Bytes::from(f))).unwrap();
        assert_eq!(m.join_ref.as_deref(), Some("12"));
        assert_eq!(m.msg_ref.as_deref(), Some("3"));
        assert_eq!(m.topic, "t:ab");
        assert_eq!(m.event, "yjs");
        assert_eq!(
            m.payload,
            Payload::Binary(Bytes::from_static(&[0, 1, 2, 255]))
        );
    }

    #[test]
    fn rejects_malformed_binary_frames() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 1, 1, 1],
            vec![1, 0, 0, 0, 0],             // a reply kind from a client
            vec![2, 0, 0, 0, 0],             // a broadcast kind from a client
            vec![9, 0, 0, 0, 0],             // unknown kind
            vec![0, 5, 0, 0, 0, b'a'],       // join_ref longer than the frame
            vec![0, 0, 0, 2, 0, 0xff, 0xfe], // topic not UTF-8
        ];
        for c in cases {
            assert!(
                decode(&Frame::Binary(Bytes::from(c.clone()))).is_err(),
                "{c:?} should not decode"
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = decode(&Frame::Binary(Bytes::from(bytes.clone())));
            let _ = decode(&Frame::Text(Bytes::from(bytes.clone())));
            let _ = binary_to_text(&bytes);
        }
    }

    #[test]
    fn encodes_json_reply() {
        let r = Reply {
            join_ref: Some("1".into()),
            msg_ref: Some("2".into()),
            topic: "t".into(),
            status: Status::Ok,
            payload: Payload::Json(json!({"a": 1})),
        };
        let Frame::Text(b) = encode_reply(&r).unwrap() else {
            panic!("text")
        };
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            json!(["1", "2", "t", "phx_reply", {"status": "ok", "response": {"a": 1}}])
        );
    }

    #[test]
    fn encodes_binary_reply_as_phoenix_js_decodes_it() {
        let r = Reply {
            join_ref: Some("1".into()),
            msg_ref: Some("22".into()),
            topic: "t".into(),
            status: Status::Error,
            payload: Payload::Binary(Bytes::from_static(&[9, 8])),
        };
        let Frame::Binary(b) = encode_reply(&r).unwrap() else {
            panic!("binary")
        };
        let mut want = vec![
            1, // kind: reply
            1, // join_ref size
            2, // ref size
            1, // topic size
            5, // status size
        ];
        want.extend_from_slice(b"1");
        want.extend_from_slice(b"22");
        want.extend_from_slice(b"t");
        want.extend_from_slice(b"error");
        want.extend_from_slice(&[9, 8]);
        assert_eq!(&b[..], &want[..]);
    }

    #[test]
    fn encodes_binary_push_and_broadcast() {
        let p = Push {
            join_ref: Some("4".into()),
            topic: "ab".into(),
            event: "e".into(),
            payload: Payload::Binary(Bytes::from_static(&[7])),
        };
        let Frame::Binary(b) = encode_push(&p).unwrap() else {
            panic!()
        };
        // kind, join_ref size, topic size, event size, join_ref, topic, event, payload
        assert_eq!(&b[..], &[0, 1, 2, 1, b'4', b'a', b'b', b'e', 7]);
        let br = Broadcast {
            topic: "ab".into(),
            event: "e".into(),
            payload: Payload::Binary(Bytes::from_static(&[7])),
        };
        let Frame::Binary(b) = encode_broadcast(&br).unwrap() else {
            panic!()
        };
        // kind, topic size, event size, topic, event, payload
        assert_eq!(&b[..], &[2, 2, 1, b'a', b'b', b'e', 7]);
    }

    #[test]
    fn json_broadcast_has_null_refs() {
        let br = Broadcast {
            topic: "t".into(),
            event: "e".into(),
            payload: Payload::Json(json!({"x": true})),
        };
        let Frame::Text(b) = encode_broadcast(&br).unwrap() else {
            panic!()
        };
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"[null,null,"t","e",{"x":true}]"#
        );
    }

    #[test]
    fn long_fields_cannot_be_binary_encoded() {
        let p = Push {
            join_ref: None,
            topic: "t".repeat(256),
            event: "e".into(),
            payload: Payload::Binary(Bytes::new()),
        };
        assert_eq!(encode_push(&p), Err(EncodeError("topic")));
    }

    #[test]
    fn binary_frames_become_byte_arrays_in_json_for_long_poll() {
        let r = Reply {
            join_ref: Some("1".into()),
            msg_ref: Some("2".into()),
            topic: "t".into(),
            status: Status::Ok,
            payload: Payload::Binary(Bytes::from_static(b"hi")),
        };
        let Frame::Binary(b) = encode_reply(&r).unwrap() else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&binary_to_text(&b).unwrap()).unwrap();
        assert_eq!(
            v,
            json!(["1", "2", "t", "phx_reply", {"status": "ok", "response": [104, 105]}])
        );
        let p = Push {
            join_ref: Some("1".into()),
            topic: "t".into(),
            event: "e".into(),
            payload: Payload::Binary(Bytes::from_static(b"hi")),
        };
        let Frame::Binary(b) = encode_push(&p).unwrap() else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&binary_to_text(&b).unwrap()).unwrap();
        assert_eq!(v, json!(["1", null, "t", "e", [104, 105]]));
        let b = Broadcast {
            topic: "t".into(),
            event: "yjs".into(),
            payload: Payload::Binary(Bytes::from_static(&[0, 255])),
        };
        let Frame::Binary(b) = encode_broadcast(&b).unwrap() else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&binary_to_text(&b).unwrap()).unwrap();
        assert_eq!(v, json!([null, null, "t", "yjs", [0, 255]]));
    }
}
