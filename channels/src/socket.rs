//! One connection's state, whatever the transport: the channels it joined by
//! topic (with their `join_ref`), heartbeat, the message rate limit, the
//! topic limit, and the socket-id subscription that lets a `disconnect`
//! broadcast close it. Transports feed it frames; it never sees a WebSocket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

use serde_json::{json, Value};
use tracing::debug;

use super::channel::{ChannelInput, JoinArgs};
use super::mailbox::{mailbox, Mailbox};
use super::message::{
    Message, Payload, Reply, Status, DISCONNECT, HEARTBEAT, PHOENIX_TOPIC, PHX_JOIN, PHX_LEAVE,
};
use super::pubsub::{SubId, Subscriber};
use super::serializer::{decode, encode_reply, Frame};
use super::{Assigns, CloseCode, Connected, Endpoint, Outbound};

/// Messages a channel task may have queued before the socket waits for it.
const CHANNEL_INBOX: usize = 64;
/// Longest topic: binary frames carry its length in one byte.
const MAX_TOPIC_BYTES: usize = 255;

struct Joined {
    topic: String,
    join_ref: Option<String>,
    inbox: Mailbox<ChannelInput>,
}

/// Per-connection state.
pub struct Socket {
    endpoint: Endpoint,
    assigns: Assigns,
    id: Option<String>,
    id_sub: Option<SubId>,
    outbound: Outbound,
    /// Joined channels; a short list (at most `max_topics`), so a Vec.
    channels: Vec<Joined>,
    bucket: TokenBucket,
}

/// The client sent messages faster than its rate limit allows: the socket
/// must close (the WebSocket transport says so with 1008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited;

impl Socket {
    /// The state of a new connection; subscribes it to its socket id, if any.
    pub fn new(endpoint: Endpoint, connected: Connected, outbound: Outbound) -> Self {
        let id = endpoint.handler.id(&connected.assigns);
        let id_sub = id.as_ref().map(|id| {
            let sub = endpoint.pubsub.next_id();
            let closer = outbound.closer().clone();
            endpoint.pubsub.subscribe(
                id,
                sub,
                Subscriber {
                    outbound: outbound.clone(),
                    intercepts: &[DISCONNECT],
                    on_intercept: Some(Arc::new(move |_| closer.close(CloseCode::NORMAL))),
                },
            );
            sub
        });
        endpoint.metrics.sockets.fetch_add(1, Ordering::Relaxed);
        let bucket = TokenBucket::new(endpoint.limits.rate_per_sec, endpoint.limits.rate_burst);
        Socket {
            endpoint,
            assigns: connected.assigns,
            id,
            id_sub,
            outbound,
            channels: Vec::new(),
            bucket,
        }
    }

    /// The socket's id ([`SocketHandler::id`](crate::SocketHandler::id)), if it has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The endpoint the socket belongs to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Handles one frame from the client. `Err` means: close the connection.
    pub async fn handle_frame(&mut self, frame: Frame) -> Result<(), RateLimited> {
        if !self.bucket.take(Instant::now()) {
            tracing::warn!(
                socket_id = self.id.as_deref().unwrap_or(""),
                "message rate limit exceeded, closing"
            );
            return Err(RateLimited);
        }
        self.endpoint
            .metrics
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
        let msg = match decode(&frame) {
            Ok(msg) => msg,
            Err(err) => {
                // Phoenix would crash the socket; we drop the frame and keep serving.
                debug!(cause = %err, "undecodable frame dropped");
                return Ok(());
            }
        };
        self.handle_message(msg).await;
        Ok(())
    }

    async fn handle_message(&mut self, msg: Message) {
        if msg.topic == PHOENIX_TOPIC && msg.event == HEARTBEAT {
            return self.reply(&msg, Status::Ok, json!({}));
        }
        if msg.event == PHX_JOIN {
            return self.join(msg).await;
        }
        let Some(joined) = self.joined(&msg.topic) else {
            if msg.event == PHX_LEAVE {
                // Leaving a topic one is not in succeeds, as in Phoenix.
                return self.reply(&msg, Status::Ok, json!({}));
            }
            return self.reply(&msg, Status::Error, json!({ "reason": "unmatched topic" }));
        };
        if msg.join_ref.is_some() && msg.join_ref != joined.join_ref {
            debug!(topic = %msg.topic, "message for an outdated join_ref ignored");
            return;
        }
        if msg.event == PHX_LEAVE {
            let sent = joined
                .inbox
                .send(ChannelInput::Leave {
                    msg_ref: msg.msg_ref.clone(),
                })
                .await
                .is_ok();
            self.remove(&msg.topic);
            if !sent {
                // The channel had already ended: leaving still succeeds.
                self.reply(&msg, Status::Ok, json!({}));
            }
            return;
        }
        if let Err(ChannelInput::Message(msg)) = joined
            .inbox
            .send(ChannelInput::Message(Box::new(msg)))
            .await
        {
            // The channel task ended (crashed or stopped) since: forget it.
            self.remove(&msg.topic);
            self.reply(&msg, Status::Error, json!({ "reason": "unmatched topic" }));
        }
    }

    async fn join(&mut self, msg: Message) {
        if let Some(old) = self.remove(&msg.topic) {
            debug!(topic = %msg.topic, "duplicate join, closing the previous channel");
            let _ = old.inbox.send(ChannelInput::Close).await;
            old.inbox.close();
        }
        if msg.topic.len() > MAX_TOPIC_BYTES {
            return self.reply(&msg, Status::Error, json!({ "reason": "topic too long" }));
        }
        self.channels.retain(|j| !j.inbox.is_closed());
        let max = self.endpoint.limits.max_topics;
        if self.channels.len() >= max {
            return self.reply(
                &msg,
                Status::Error,
                json!({ "reason": format!("too many joined topics (limit {max})") }),
            );
        }
        let Some(route) = self.endpoint.router.lookup(&msg.topic) else {
            return self.reply(&msg, Status::Error, json!({ "reason": "unmatched topic" }));
        };
        let params = match msg.payload {
            Payload::Json(v @ Value::Object(_)) => v,
            Payload::Json(Value::Null) => json!({}),
            _ => {
                return self.reply(
                    &msg,
                    Status::Error,
                    json!({ "reason": "join params must be a JSON object" }),
                )
            }
        };
        let (tx, inbox) = mailbox(CHANNEL_INBOX);
        route.spawn(JoinArgs {
            topic: msg.topic.clone(),
            join_ref: msg.join_ref.clone(),
            msg_ref: msg.msg_ref.clone(),
            params,
            assigns: self.assigns.clone(),
            endpoint: self.endpoint.clone(),
            outbound: self.outbound.clone(),
            inbox,
            inbox_tx: tx.clone(),
        });
        self.channels.push(Joined {
            topic: msg.topic,
            join_ref: msg.join_ref,
            inbox: tx,
        });
    }

    fn joined(&self, topic: &str) -> Option<&Joined> {
        self.channels.iter().find(|j| j.topic == topic)
    }

    fn remove(&mut self, topic: &str) -> Option<Joined> {
        let i = self.channels.iter().position(|j| j.topic == topic)?;
        Some(self.channels.swap_remove(i))
    }

    fn reply(&self, msg: &Message, status: Status, payload: Value) {
        if msg.msg_ref.is_none() {
            return;
        }
        let reply = Reply {
            join_ref: msg.join_ref.clone(),
            msg_ref: msg.msg_ref.clone(),
            topic: msg.topic.clone(),
            status,
            payload: Payload::Json(payload),
        };
        if let Ok(frame) = encode_reply(&reply) {
            self.outbound.send(frame);
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Closing the inboxes ends every channel task (ExitReason::SocketGone).
        for joined in self.channels.drain(..) {
            joined.inbox.close();
        }
        if let (Some(id), Some(sub)) = (&self.id, self.id_sub) {
            self.endpoint.pubsub.unsubscribe(id, sub);
        }
        self.endpoint
            .metrics
            .sockets
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The per-socket message rate limit: `rate` tokens a second, up to `burst`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::new(10, 5);
        b.last = start;
        assert!((0..5).all(|_| b.take(start)));
        assert!(!b.take(start));
        assert!(b.take(start + Duration::from_millis(100)));
        assert!(!b.take(start + Duration::from_millis(100)));
    }
}
