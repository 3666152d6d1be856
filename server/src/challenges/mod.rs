//! The product on top of the channels layer: the challenge model and its
//! validation ([`model`]), `ChallengeChannel` ([`channel`]), the room task
//! that alone owns each yrs document ([`room`]), yrs helpers and the
//! checks every Yjs message passes ([`doc`]), the one read path of a live
//! answer ([`read`]), the interviewers' private notes ([`notes`]), the run board of each room ([`run`]), and the
//! `echo:*` channel used by protocol tests ([`echo`]).

pub mod channel;
pub mod doc;
pub mod echo;
pub mod model;
pub mod notes;
pub mod read;
pub mod room;
pub mod run;

/// The authenticated user behind a socket (the socket's assigns).
#[derive(Debug, Clone)]
pub struct SocketUser {
    pub id: String,
    pub first_name: String,
}
