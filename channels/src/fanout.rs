//! A broadcast prepared for a set of members: encoded once now, queued to
//! each member later with [`Fanout::send`]. A product that answers an edit
//! only once it is durable prepares the frame while it has the state at
//! hand (in its own task) and hands the [`Fanout`] to whoever completes
//! the write, which then only queues bytes. Unlike a PubSub broadcast it
//! goes to an explicit member set (e.g. the members that speak Yjs).

use serde::Serialize;

use super::channel::Pusher;
use super::message::{Broadcast, Payload};
use super::serializer::{encode_broadcast, encode_json_broadcast, Frame};
use super::Outbound;

/// A frame and the queues it goes to.
#[must_use = "a fanout does nothing until it is sent"]
pub struct Fanout {
    targets: Vec<Outbound>,
    frame: Option<Frame>,
}

impl Fanout {
    /// `event` with the payload `payload()` builds, for the members `to`
    /// (the payload is built and encoded only if there is anyone).
    pub fn new<'a>(
        topic: &str,
        event: &str,
        payload: impl FnOnce() -> Payload,
        to: impl IntoIterator<Item = &'a Pusher>,
    ) -> Fanout {
        Self::with_frame(to, || {
            encode_broadcast(&Broadcast {
                topic: topic.to_owned(),
                event: event.to_owned(),
                payload: payload(),
            })
            .map_err(|err| tracing::warn!(cause = %err, "broadcast not encodable"))
            .ok()
        })
    }

    /// `event` with a JSON payload serialized straight from `payload`.
    pub fn json<'a, T: Serialize + ?Sized>(
        topic: &str,
        event: &str,
        payload: &T,
        to: impl IntoIterator<Item = &'a Pusher>,
    ) -> Fanout {
        Self::with_frame(to, || Some(encode_json_broadcast(topic, event, payload)))
    }

    fn with_frame<'a>(
        to: impl IntoIterator<Item = &'a Pusher>,
        frame: impl FnOnce() -> Option<Frame>,
    ) -> Fanout {
        let targets: Vec<Outbound> = to.into_iter().map(|p| p.outbound().clone()).collect();
        let frame = if targets.is_empty() { None } else { frame() };
        Fanout { targets, frame }
    }

    /// Nothing to send (no member, or the payload did not encode).
    pub fn is_empty(&self) -> bool {
        self.frame.is_none()
    }

    /// Queues the frame for every member (the same bytes for all).
    pub fn send(self) {
        if let Some(frame) = self.frame {
            for target in &self.targets {
                target.send(frame.clone());
            }
        }
    }
}
