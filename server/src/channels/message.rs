//! The protocol's nouns: [`Message`] (what a client sends), [`Reply`] and
//! [`Broadcast`] (what the server sends), [`Payload`] (JSON or raw bytes), and
//! the wire strings of Phoenix Channels, kept as constants the way phoenix.js
//! keeps them in `constants.js`. Nothing here does I/O.

use bytes::Bytes;
use serde_json::Value;

/// Topic of the socket-level control messages (heartbeat).
pub const PHOENIX_TOPIC: &str = "phoenix";
pub const HEARTBEAT: &str = "heartbeat";
pub const PHX_JOIN: &str = "phx_join";
pub const PHX_LEAVE: &str = "phx_leave";
pub const PHX_REPLY: &str = "phx_reply";
pub const PHX_ERROR: &str = "phx_error";
pub const PHX_CLOSE: &str = "phx_close";
/// Broadcast to a socket id topic to close every socket of that id.
pub const DISCONNECT: &str = "disconnect";
pub const PRESENCE_STATE: &str = "presence_state";
pub const PRESENCE_DIFF: &str = "presence_diff";

/// A message payload: a JSON value (text frames) or bytes (binary frames).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Json(Value),
    Binary(Bytes),
}

impl Payload {
    /// The empty JSON object `{}`.
    pub fn empty() -> Self {
        Payload::Json(Value::Object(Default::default()))
    }

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
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Payload,
}

/// Reply status, as in `phx_reply` `{"status": "ok" | "error"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
}

impl Status {
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
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub status: Status,
    pub payload: Payload,
}

/// A server push to one channel member or a broadcast to a topic. A push
/// carries the member's `join_ref`; a broadcast carries none, which is what
/// lets it be encoded once for every subscriber (Phoenix's fastlane).
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub join_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Payload,
}

/// A broadcast to every subscriber of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    pub topic: String,
    pub event: String,
    pub payload: Payload,
}
