//! A Rust implementation of Phoenix Channels, generic over products: it knows
//! sockets, topics, channels, PubSub and Presence, and nothing of challenges.
//!
//! Layout:
//! - [`message`]: the protocol's nouns and wire strings.
//! - [`serializer`]: V2 JSON and binary frames, pure over bytes.
//! - [`pubsub`]: topic fan-out; a broadcast is encoded once.
//! - [`presence`]: Phoenix.Presence: track/update/untrack/list and diffs.
//! - [`endpoint`]: the shared [`Endpoint`], [`Limits`], [`Metrics`], and the
//!   product's [`SocketHandler`] (who may connect).
//! - [`outbound`]: a socket's bounded outgoing queue, its [`Closer`], close codes.
//! - [`channel`]: the [`Channel`](channel::Channel) trait and the per-join task.
//! - [`fanout`]: a broadcast encoded once for an explicit member set, sent later.
//! - [`mailbox`]: the small bounded queue behind every socket and channel.
//! - [`router`]: topic patterns (`"challenges:*"`) to channel handlers.
//! - [`socket`]: per-connection state: joins by topic, heartbeat, limits.
//! - [`transport`]: WebSocket and long-poll, auth at connect, `check_origin`.
//!
//! It is a crate of its own so that the compiler keeps it generic: it
//! cannot name the product that uses it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod endpoint;
pub mod fanout;
pub mod mailbox;
pub mod message;
pub mod outbound;
pub mod presence;
pub mod pubsub;
pub mod router;
pub mod serializer;
pub mod socket;
pub mod transport;

pub use endpoint::{
    Assigns, ConnectInfo, Connected, Endpoint, EndpointParts, Limits, Metrics, SocketHandler,
};
pub use outbound::{CloseCode, Closer, Outbound, OutboundRx};
