//! Duet: live pair-programming rooms. Phoenix Channels, Presence and a
//! Yjs-merged shared answer, in Rust.
//!
//! Layout:
//! - [`config`]: command line and environment settings.
//! - [`app`]: `AppState`, the router, `run` (serve, drain, flush).
//! - [`conn`]: HTTP connections: accept, timeouts, the per-address cap.
//! - [`telemetry`]: logging setup and `/metrics` text.
//! - [`auth`]: JWT keys, claims, `issue` and `verify`.
//! - [`http`]: the REST API and the embedded web app.
//! - [`channels`]: the generic Phoenix Channels layer (sockets, transports,
//!   PubSub, Presence); it knows nothing of challenges.
//! - [`challenges`]: the product: challenge model, `ChallengeChannel`, the
//!   room task owning each yrs document, the run board of each room.
//! - [`store`]: SQLite or Postgres: users, challenges, the document log and snapshots.
//! - [`cluster`]: many nodes on one Postgres and one Redis (the bus).
//!
//! `unsafe` is denied everywhere but in `store::raw` (two calls into SQLite
//! and libc that no safe crate offers).
//!
//! Who owns what: state that async code changes has one owner task and a
//! handle; what is shared sits behind a short lock that no `.await` holds
//! (the one exception says so).
//!
//! | state | owner | lock |
//! |---|---|---|
//! | a room's yrs document, members, text | its room task (`challenges::room`); commands in by `mpsc`, answers by `oneshot` | none |
//! | a socket's joins and rate limit | its connection task (WebSocket) or session task (long-poll) | none |
//! | a channel's own state | its channel task; the socket reaches it through a mailbox | none |
//! | the document log's connection and batch | the writer thread (`store::writer`); acks go out in commit order on its completer task | none |
//! | the WAL checkpoints | the checkpointer thread, woken through an `AtomicBool` | none |
//! | a socket's outgoing queue | shared by its channels and its transport (`channels::mailbox`) | std `Mutex`, a few instructions |
//! | which rooms are loaded | `Rooms` | `parking_lot::Mutex` |
//! | texts waiting for the response column | `store::writer`'s `Responses`, read by HTTP | `parking_lot::Mutex` |
//! | whether commits fail (`/healthz`) | `WriteHealth` | `parking_lot::Mutex` |
//! | users known to exist | `store::users` | `parking_lot::Mutex` |
//! | rooms' run boards | `challenges::run::Runs` | std `Mutex` |
//! | topic subscribers | `channels::pubsub::LocalPubSub` | `DashMap` |
//! | presence entries and pending diffs, every topic | `channels::presence::Presence` | one `parking_lot::Mutex` |
//! | long-poll sessions | `channels::transport::longpoll::Sessions` | `DashMap` by token |
//! | a long-poll session's outgoing queue | its polls | tokio `Mutex`, held across a poll's wait on purpose: one poll at a time |
//! | requests per address | `http::limit::ApiLimit` (governor) | its keyed map |
//! | connections per address | `conn` | std `Mutex` |
//! | counters for `/metrics` | `channels::Metrics`, `telemetry` | atomics |
#![deny(unsafe_code)]

pub mod app;
pub mod auth;
pub mod challenges;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod http;
pub mod store;
pub mod telemetry;

/// The Phoenix Channels layer, a crate of its own (`channels/`): it cannot
/// name anything of this one, so it knows nothing of challenges.
pub use duet_channels as channels;
