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
//! - [`store`]: SQLite: users, challenges, the document log and snapshots.
//!
//! `unsafe` is denied everywhere but in `store::raw` (two calls into SQLite
//! and libc that no safe crate offers).
#![deny(unsafe_code)]

pub mod app;
pub mod auth;
pub mod challenges;
pub mod config;
pub mod conn;
pub mod http;
pub mod store;
pub mod telemetry;

/// The Phoenix Channels layer, a crate of its own (`channels/`): it cannot
/// name anything of this one, so it knows nothing of challenges.
pub use duet_channels as channels;
