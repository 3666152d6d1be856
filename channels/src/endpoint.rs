//! What every socket and channel shares: the [`Endpoint`] handle (the
//! product's [`SocketHandler`], the channel router, PubSub, Presence, the
//! [`Limits`], the [`Metrics`], shutdown and the task tracker), and what a
//! transport learns about a connecting client ([`ConnectInfo`],
//! [`Connected`]).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::presence::Presence;
use crate::pubsub::PubSub;
use crate::router::Router;
use crate::transport::longpoll::Sessions;

/// What the socket's `connect` callback attached to a connection (Phoenix's
/// `socket.assigns`); channels downcast it to the product's type.
pub type Assigns = Arc<dyn Any + Send + Sync>;

/// What a transport learned about a connecting client.
pub struct ConnectInfo<'a> {
    /// The `token` query parameter, or the `authToken` (sub-protocol / header).
    pub token: Option<&'a str>,
    /// The other query parameters (`vsn`, the client's `params`).
    pub params: &'a HashMap<String, String>,
}

/// An accepted connection: what its channels will see as assigns.
pub struct Connected {
    /// The product's value for this connection (e.g. the signed-in user).
    pub assigns: Assigns,
}

/// Phoenix's `UserSocket`: decides who may connect, and names sockets.
pub trait SocketHandler: Send + Sync + 'static {
    /// `Err` refuses the connection (403); the string is logged, never sent.
    fn connect<'a>(
        &'a self,
        info: ConnectInfo<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Connected, String>>;

    /// Phoenix's `id/1`: the id of a socket with these assigns
    /// (`"user_socket:42"`), or none. Broadcasting `disconnect` to the id
    /// closes every socket that carries it.
    fn id(&self, _assigns: &Assigns) -> Option<String> {
        None
    }
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

impl Limits {
    /// The defaults, in one place: a server's settings take their
    /// defaults from here (`duet`'s clap attributes name these fields).
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: 1 << 20,
        max_topics: 100,
        rate_per_sec: 200,
        rate_burst: 400,
        outbound_queue: 1024,
        // Eight of the largest frames a client may send (1 MiB), or a few
        // seconds of a busy room's fan-out; 1 024 frames of up to 1 MiB
        // each would let one socket that never reads pin 1 GiB.
        outbound_bytes: 8 << 20,
        idle_timeout: Duration::from_secs(60),
        longpoll_window: Duration::from_secs(10),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sockets connected now (WebSocket and long-poll).
    pub sockets: AtomicU64,
    /// Channels joined now.
    pub channels: AtomicU64,
    /// Frames received from clients, in total.
    pub messages_in: AtomicU64,
    /// Frames queued for clients, in total.
    pub messages_out: AtomicU64,
    /// Sockets closed because their outgoing queue was full, in total.
    pub slow_disconnects: AtomicU64,
}

impl Metrics {
    /// Reads one of the counters.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Everything the channels layer shares: a cheap `Clone` handle (one
/// pointer: every socket and channel holds one).
#[derive(Clone)]
pub struct Endpoint(Arc<EndpointParts>);

impl Endpoint {
    /// The handle over `parts`.
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
    /// The product's `UserSocket`: who may connect, and socket ids.
    pub handler: Arc<dyn SocketHandler>,
    /// Topic patterns to channels.
    pub router: Arc<Router>,
    /// Topic fan-out.
    pub pubsub: Arc<dyn PubSub>,
    /// The presence tracker.
    pub presence: Presence,
    /// Limits of every socket.
    pub limits: Arc<Limits>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Allowed `Origin`s besides the server's own host (`check_origin`).
    pub allowed_origins: Arc<Vec<String>>,
    /// Cancelled at shutdown: sockets close with 1001.
    pub shutdown: CancellationToken,
    /// Socket and channel tasks, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Live long-poll sessions.
    pub longpoll: Arc<Sessions>,
}
