//! The product on top of the channels layer: the challenge model and its
//! validation ([`model`]), `ChallengeChannel` ([`channel`]), the room task
//! that alone owns each yrs document ([`room`]), pure yrs helpers ([`doc`]),
//! the run board of each room ([`run`]), and the `echo:*` channel used by
//! protocol tests ([`echo`]).

pub mod channel;
pub mod doc;
pub mod echo;
pub mod model;
pub mod room;
pub mod run;

/// The authenticated user behind a socket (the socket's assigns).
#[derive(Debug, Clone)]
pub struct SocketUser {
    pub id: String,
    pub first_name: String,
}
