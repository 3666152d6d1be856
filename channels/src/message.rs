//! The protocol's nouns: [`Message`] (what a client sends), [`Reply`] and
//! [`Broadcast`] (what the server sends), [`Payload`] (JSON or raw bytes), and
//! the wire strings of Phoenix Channels, kept as constants the way phoenix.js
//! keeps them in `constants.js`. Nothing here does I/O.

use bytes::Bytes;
use serde_json::Value;

/// Topic of the socket-level control messages (heartbeat).
pub const PHOENIX_TOPIC: &str = "phoenix";
/// The event of a heartbeat (on [`PHOENIX_TOPIC`]); the socket replies ok.
pub const HEARTBEAT: &str = "heartbeat";
/// A client joins a topic.
pub const PHX_JOIN: &str = "phx_join";
/// A client leaves a topic.
pub const PHX_LEAVE: &str = "phx_leave";
/// The event of every reply to a client's push.
pub const PHX_REPLY: &str = "phx_reply";
/// Tells a client its channel crashed (phoenix.js rejoins).
pub const PHX_ERROR: &str = "phx_error";
/// Tells a client its channel ended normally (left, or closed by the server).
pub const PHX_CLOSE: &str = "phx_close";
/// Broadcast to a socket id topic to close every socket of that id.
pub const DISCONNECT: &str = "disconnect";
/// Everyone on a topic, pushed to a member once after it joined.
pub const PRESENCE_STATE: &str = "presence_state";
/// Who joined and who left a topic since the last diff, broadcast.
pub const PRESENCE_DIFF: &str = "presence_diff";

/// A message payload: a JSON value (text frames) or bytes (binary frames).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A JSON value, sent in a text frame.
    Json(Value),
    /// Raw bytes, sent in a binary frame.
    Binary(Bytes),
}

impl Payload {
    /// The empty JSON object `{}`.
    pub fn empty() -> Self {
        Payload::Json(Value::Object(Default::default()))
    }

    /// The JSON value, if the payload is JSON.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Binary(_) => None,
        }
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}

/// A message from a client: `[join_ref, ref, topic, event, payload]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The `ref` of the join this message belongs to (`null` on control messages).
    pub join_ref: Option<String>,
    /// The message's own `ref`; a reply echoes it. `null`: no reply wanted.
    pub msg_ref: Option<String>,
    /// The channel's topic, e.g. `"room:42"`.
    pub topic: String,
    /// The event name, e.g. `"phx_join"` or a channel's own.
    pub event: String,
    /// What the event carries.
    pub payload: Payload,
}

/// Reply status, as in `phx_reply` `{"status": "ok" | "error"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `"ok"`: the push was handled.
    Ok,
    /// `"error"`: the push was refused; the payload says why.
    Error,
}

impl Status {
    /// The wire string: `"ok"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// A reply to a client's push (`phx_reply`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The `join_ref` of the push replied to.
    pub join_ref: Option<String>,
    /// The `ref` of the push replied to.
    pub msg_ref: Option<String>,
    /// The push's topic.
    pub topic: String,
    /// Ok or error.
    pub status: Status,
    /// The `response` of the reply.
    pub payload: Payload,
}

/// A server push to one channel member or a broadcast to a topic. A push
/// carries the member's `join_ref`; a broadcast carries none, which is what
/// lets it be encoded once for every subscriber (Phoenix's fastlane).
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The member's `join_ref` (none for a broadcast).
    pub join_ref: Option<String>,
    /// The channel's topic.
    pub topic: String,
    /// The event name.
    pub event: String,
    /// What the event carries.
    pub payload: Payload,
}

/// A broadcast to every subscriber of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The topic broadcast to.
    pub topic: String,
    /// The event name.
    pub event: String,
    /// What the event carries.
    pub payload: Payload,
}
