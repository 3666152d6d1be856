//! Topic fan-out behind the [`PubSub`] trait. The in-process [`LocalPubSub`]
//! encodes a broadcast once and queues the same `Bytes` for every subscriber
//! (Phoenix's fastlane); subscribers that intercept an event get the
//! [`Broadcast`] itself instead, for their channel's `handle_out`.
//!
//! A multi-node implementation (Redis) would publish `(topic, broadcast,
//! from)` to the other nodes and run the same local fan-out on each of them;
//! nothing outside this file would change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::message::Broadcast;
use super::serializer::{encode_broadcast, Frame};
use super::Outbound;

/// Identifies one subscription (one joined channel, or one socket id).
pub type SubId = u64;

/// A callback for intercepted events (the channel's `handle_out` inbox).
pub type InterceptFn = Arc<dyn Fn(&Arc<Broadcast>) + Send + Sync>;

/// Where a subscriber's broadcasts go.
#[derive(Clone)]
pub struct Subscriber {
    /// The socket's outgoing queue, where encoded broadcasts go.
    pub outbound: Outbound,
    /// Events this subscriber intercepts, and where they go.
    pub intercepts: &'static [&'static str],
    /// Where intercepted broadcasts go (none: the subscriber intercepts nothing).
    pub on_intercept: Option<InterceptFn>,
}

/// Topic fan-out: subscribers by topic, and broadcasts to them.
pub trait PubSub: Send + Sync + 'static {
    /// A fresh subscription id, unique on this node.
    fn next_id(&self) -> SubId;
    /// Adds `sub` to `topic` under `id` (a new id per subscription).
    fn subscribe(&self, topic: &str, id: SubId, sub: Subscriber);
    /// Removes the subscription `id` from `topic`; unknown ids are ignored.
    fn unsubscribe(&self, topic: &str, id: SubId);
    /// Sends to every subscriber of the topic except `from`.
    fn broadcast(&self, msg: Broadcast, from: Option<SubId>);
    /// Number of local subscribers of a topic.
    fn subscriber_count(&self, topic: &str) -> usize;
}

/// The in-process PubSub.
#[derive(Default)]
pub struct LocalPubSub {
    topics: DashMap<Box<str>, Vec<(SubId, Subscriber)>>,
    ids: AtomicU64,
}

impl LocalPubSub {
    /// A PubSub with no topics.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PubSub for LocalPubSub {
    fn next_id(&self) -> SubId {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn subscribe(&self, topic: &str, id: SubId, sub: Subscriber) {
        self.topics.entry(topic.into()).or_default().push((id, sub));
    }

    fn unsubscribe(&self, topic: &str, id: SubId) {
        let empty = match self.topics.get_mut(topic) {
            Some(mut subs) => {
                if let Some(i) = subs.iter().position(|(s, _)| *s == id) {
                    subs.swap_remove(i);
                }
                subs.is_empty()
            }
            None => false,
        };
        if empty {
            self.topics.remove_if(topic, |_, subs| subs.is_empty());
        }
    }

    fn broadcast(&self, msg: Broadcast, from: Option<SubId>) {
        let Some(subs) = self.topics.get(msg.topic.as_str()) else {
            return;
        };
        let intercepted = subs
            .iter()
            .any(|(_, s)| s.intercepts.contains(&msg.event.as_str()));
        let frame: Option<Frame> = match encode_broadcast(&msg) {
            Ok(f) => Some(f),
            Err(err) => {
                tracing::warn!(cause = %err, topic = msg.topic, "broadcast not encodable");
                None
            }
        };
        let shared = intercepted.then(|| Arc::new(msg.clone()));
        for (id, sub) in subs.iter() {
            if Some(*id) == from {
                continue;
            }
            if let (Some(b), Some(cb)) = (&shared, &sub.on_intercept) {
                if sub.intercepts.contains(&b.event.as_str()) {
                    cb(b);
                    continue;
                }
            }
            if let Some(frame) = &frame {
                sub.outbound.send(frame.clone());
            }
        }
    }

    fn subscriber_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Payload;
    use crate::Metrics;
    use serde_json::json;

    fn sub(cap: usize) -> (Subscriber, crate::OutboundRx) {
        let (outbound, rx, _closer) = Outbound::new(
            cap,
            usize::MAX,
            Arc::new(Metrics::default()),
            &Default::default(),
        );
        (
            Subscriber {
                outbound,
                intercepts: &[],
                on_intercept: None,
            },
            rx,
        )
    }

    #[test]
    fn broadcast_from_skips_sender_and_shares_bytes() {
        let ps = LocalPubSub::new();
        let (a, mut ra) = sub(8);
        let (b, mut rb) = sub(8);
        let (ia, ib) = (ps.next_id(), ps.next_id());
        ps.subscribe("t", ia, a);
        ps.subscribe("t", ib, b);
        let msg = Broadcast {
            topic: "t".into(),
            event: "e".into(),
            payload: Payload::Json(json!({})),
        };
        ps.broadcast(msg.clone(), Some(ia));
        assert!(ra.try_recv().is_none());
        let Frame::Text(fb) = rb.try_recv().unwrap() else {
            panic!()
        };
        ps.broadcast(msg, None);
        let Frame::Text(fa) = ra.try_recv().unwrap() else {
            panic!()
        };
        let Frame::Text(fb2) = rb.try_recv().unwrap() else {
            panic!()
        };
        // Encoded once: both subscribers hold the same allocation.
        assert_eq!(fa.as_ptr(), fb2.as_ptr());
        assert_eq!(fb, fb2);
    }

    #[test]
    fn full_queue_closes_the_slow_subscriber() {
        let ps = LocalPubSub::new();
        let (a, _ra) = sub(1);
        let closer = a.outbound.closer().clone();
        ps.subscribe("t", 1, a);
        for _ in 0..2 {
            ps.broadcast(
                Broadcast {
                    topic: "t".into(),
                    event: "e".into(),
                    payload: Payload::empty(),
                },
                None,
            );
        }
        assert!(closer.token().is_cancelled());
    }

    #[test]
    fn unsubscribe_removes_empty_topics() {
        let ps = LocalPubSub::new();
        let (a, _ra) = sub(1);
        ps.subscribe("t", 1, a);
        assert_eq!(ps.subscriber_count("t"), 1);
        ps.unsubscribe("t", 1);
        assert_eq!(ps.subscriber_count("t"), 0);
        assert!(ps.topics.is_empty());
    }
}
