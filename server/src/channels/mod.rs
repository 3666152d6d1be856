//! A Rust implementation of Phoenix Channels, generic over products: it knows
//! sockets, topics, channels, PubSub and Presence, and nothing of challenges.
//!
//! Layout:
//! - [`message`]: the protocol's nouns and wire strings.
//! - [`serializer`]: V2 JSON and binary frames, pure over bytes.
//! - [`pubsub`]: topic fan-out; a broadcast is encoded once.
//! - [`presence`]: Phoenix.Presence: track/update/untrack/list and diffs.
//! - [`channel`]: the [`Channel`](channel::Channel) trait and the per-join task.
//! - [`fanout`]: a broadcast encoded once for an explicit member set, sent later.
//! - [`mailbox`]: the small bounded queue behind every socket and channel.
//! - [`router`]: topic patterns (`"challenges:*"`) to channel handlers.
//! - [`socket`]: per-connection state: joins by topic, heartbeat, limits.
//! - [`transport`]: WebSocket and long-poll, auth at connect, `check_origin`.

pub mod channel;
pub mod fanout;
pub mod mailbox;
pub mod message;
pub mod presence;
pub mod pubsub;
pub mod router;
pub mod serializer;
pub mod socket;
pub mod transport;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::presence::Presence;
use self::pubsub::PubSub;
use self::router::Router;
use self::serializer::Frame;

/// What the socket's `connect` callback attached to a connection (Phoenix's
/// `socket.assigns`); channels downcast it to the product's type.
pub type Assigns = Arc<dyn Any + Send + Sync>;

/// What a transport learned about a connecting client.
pub struct ConnectInfo<'a> {
    /// The `token` query parameter, or the `authToken` (sub-protocol / header).
    pub token: Option<&'a str>,
    pub params: &'a HashMap<String, String>,
}

/// An accepted connection: its assigns and optional id (`user_socket:42`);
/// broadcasting `disconnect` to the id closes every socket that carries it.
pub struct Connected {
    pub assigns: Assigns,
    pub id: Option<String>,
}

/// Phoenix's `UserSocket`: decides who may connect.
pub trait SocketHandler: Send + Sync + 'static {
    /// `Err` refuses the connection (403); the string is logged, never sent.
    fn connect<'a>(
        &'a self,
        info: ConnectInfo<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Connected, String>>;
}

/// Limits applied to every socket (CONTRACT §3 "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame a client may send; bigger closes the WebSocket with 1009.
    pub max_frame_bytes: usize,
    /// Topics one socket may have joined at once.
    pub max_topics: usize,
    /// Sustained messages per second a socket may send.
    pub rate_per_sec: u32,
    /// Messages a socket may send in a burst above the sustained rate.
    pub rate_burst: u32,
    /// Frames queued for a socket before it counts as too slow and is dropped.
    pub outbound_queue: usize,
    /// Bytes queued for a socket before it counts as too slow and is dropped
    /// (a frame alone on an empty queue goes out whatever its size).
    pub outbound_bytes: usize,
    /// A socket that sends nothing (not even a heartbeat) for this long is closed.
    pub idle_timeout: Duration,
    /// How long a long-poll request waits for messages before answering 204.
    pub longpoll_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1 << 20,
            max_topics: 100,
            rate_per_sec: 200,
            rate_burst: 400,
            outbound_queue: 1024,
            // Eight of the largest frames a client may send (1 MiB), or a
            // few seconds of a busy room's fan-out; 1 024 frames of up to
            // 1 MiB each would let one socket that never reads pin 1 GiB.
            outbound_bytes: 8 << 20,
            idle_timeout: Duration::from_secs(60),
            longpoll_window: Duration::from_secs(10),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sockets: AtomicU64,
    pub channels: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub slow_disconnects: AtomicU64,
}

impl Metrics {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Everything the channels layer shares: a cheap `Clone` handle (one
/// pointer: every socket and channel holds one).
#[derive(Clone)]
pub struct Endpoint(Arc<EndpointParts>);

impl Endpoint {
    pub fn new(parts: EndpointParts) -> Self {
        Endpoint(Arc::new(parts))
    }
}

impl std::ops::Deref for Endpoint {
    type Target = EndpointParts;

    fn deref(&self) -> &EndpointParts {
        &self.0
    }
}

/// What an [`Endpoint`] shares.
pub struct EndpointParts {
    pub handler: Arc<dyn SocketHandler>,
    pub router: Arc<Router>,
    pub pubsub: Arc<dyn PubSub>,
    pub presence: Presence,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
    /// Allowed `Origin`s besides the server's own host (`check_origin`).
    pub allowed_origins: Arc<Vec<String>>,
    /// Cancelled at shutdown: sockets close with 1001.
    pub shutdown: CancellationToken,
    /// Socket and channel tasks, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Live long-poll sessions.
    pub longpoll: Arc<transport::longpoll::Sessions>,
}

/// Close codes the server uses.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// A socket's bounded outgoing queue, in frames and in bytes. Sending never
/// waits: a full queue means the client cannot keep up, and the socket is
/// closed (1008) instead of buffering. The bytes are counted when a frame is
/// queued and uncounted when the transport takes it (WebSocket or
/// long-poll, through [`OutboundRx`]); the count lives in the queue's
/// shared state, which is no larger for it (see [`mailbox`]).
#[derive(Clone)]
pub struct Outbound {
    queue: mailbox::Mailbox<Frame>,
    closer: Arc<Closer>,
    metrics: Arc<Metrics>,
}

/// The transport's end of an [`Outbound`] queue; taking a frame uncounts
/// its bytes.
pub type OutboundRx = mailbox::Receiver<Frame>;

/// A frame counts its bytes against the outgoing queue's byte bound.
impl mailbox::Weigh for Frame {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// Asks a socket's transport to close it, with a code and reason.
#[derive(Debug, Default)]
pub struct Closer {
    token: CancellationToken,
    code: AtomicU16,
}

impl Closer {
    pub fn close(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
        self.token.cancel();
    }

    pub fn code(&self) -> u16 {
        match self.code.load(Ordering::Relaxed) {
            0 => close_code::NORMAL,
            c => c,
        }
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Outbound {
    /// A queue of at most `capacity` frames and `max_bytes` bytes; its
    /// closer is cancelled with `parent` (the server's shutdown) too.
    pub fn new(
        capacity: usize,
        max_bytes: usize,
        metrics: Arc<Metrics>,
        parent: &CancellationToken,
    ) -> (Self, OutboundRx, Arc<Closer>) {
        let (queue, rx) = mailbox::weighed(capacity, max_bytes);
        let closer = Arc::new(Closer {
            token: parent.child_token(),
            code: AtomicU16::new(0),
        });
        (
            Outbound {
                queue,
                closer: closer.clone(),
                metrics,
            },
            rx,
            closer,
        )
    }

    /// Queues a frame; returns false when the socket is gone or was too slow.
    pub fn send(&self, frame: Frame) -> bool {
        match self.queue.try_send(frame) {
            Ok(()) => {
                self.metrics.messages_out.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mailbox::SendError::Full(_)) => {
                if !self.closer.token.is_cancelled() {
                    self.metrics
                        .slow_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "outgoing queue full (frames or bytes), disconnecting slow client"
                    );
                }
                self.closer.close(close_code::POLICY);
                false
            }
            Err(mailbox::SendError::Closed(_)) => false,
        }
    }

    pub fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }

    pub fn is_closed(&self) -> bool {
        self.closer.token.is_cancelled() || self.queue.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(len: usize) -> Frame {
        Frame::Text(Bytes::from(vec![b'x'; len]))
    }

    #[test]
    fn a_queue_over_its_byte_cap_closes_with_1008_once() {
        let metrics = Arc::new(Metrics::default());
        let (out, mut rx, closer) = Outbound::new(1024, 1000, metrics.clone(), &Default::default());
        // Bigger than the cap, on an empty queue: it goes out (a joiner's
        // sync of a large document).
        assert!(out.send(frame(5000)));
        assert_eq!(rx.weight(), 5000);
        assert_eq!(rx.try_recv().map(|f| f.len()), Some(5000));
        // Taking a frame uncounts its bytes: 1000 fit again.
        assert!(out.send(frame(600)));
        assert!(out.send(frame(400)));
        assert!(!closer.token().is_cancelled());
        assert!(!out.send(frame(1)));
        assert!(!out.send(frame(1)));
        assert!(closer.token().is_cancelled());
        assert_eq!(closer.code(), close_code::POLICY);
        assert_eq!(Metrics::get(&metrics.slow_disconnects), 1);
    }
}
