//! A room per loaded challenge: one task alone owns its yrs document, its
//! awareness states and its member list, so every change is serialized
//! without locks. [`Rooms`] finds or starts rooms; the task's life is in
//! [`task`] (load, serve, reload, unload), the y-protocols in [`yjs`], the
//! answer as text (`response:update`, `response:updated`, the `response`
//! column) in [`text`], cursors and selections in [`awareness`].
//!
//! An edit is checked, applied, queued to the group-commit writer, and
//! acknowledged and relayed only once committed. Two rules keep what is
//! acknowledged consistent with what is stored:
//! - a panic inside yrs (see `doc::guarded`) drops the document, and the
//!   room reloads it from its log once the writes queued before are
//!   committed; the sender gets "invalid update", the others notice nothing;
//! - a failed commit stops the room's writes in the writer (so nothing
//!   queued after it, which may build on what failed, is stored) until the
//!   room has reloaded its document from the log; the Yjs members are then
//!   asked for what they have that the log lacks (a sync step 1).

mod awareness;
mod task;
mod text;
mod yjs;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::doc::YMessage;
use super::model::Challenge;
use crate::channels::channel::{Pusher, ReplyHandle};
use crate::channels::pubsub::SubId;
use crate::store::writer::DocWriter;
use crate::store::Store;
use crate::telemetry::{Histogram, LATENCY_BUCKETS};

pub use self::task::Caps;
pub use self::text::RESPONSE_UPDATED;
pub use self::yjs::YJS;

/// Commands a room's queue holds before senders wait.
const ROOM_QUEUE: usize = 1024;

/// Longest a read waits for a room's text ([`Rooms::settle`]).
const SETTLE_WITHIN: Duration = Duration::from_secs(2);

/// Joins tried when the room found is unloading at that moment.
const JOIN_TRIES: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("not found")]
    NotFound,
    #[error("room unavailable")]
    Unavailable,
}

pub enum RoomCmd {
    Join {
        member: SubId,
        pusher: Pusher,
        reply: oneshot::Sender<Result<Challenge, RoomError>>,
    },
    Leave {
        member: SubId,
    },
    /// A Yjs message from a member (decoded and checked by the channel).
    Yjs {
        member: SubId,
        user_id: String,
        msg: YMessage,
        reply: ReplyHandle,
        /// When the channel took the message (for `duet_edit_seconds`).
        received: Instant,
    },
    /// A full text from a client without Yjs (`response:update`).
    ReplaceText {
        user_id: String,
        text: String,
        reply: ReplyHandle,
        received: Instant,
    },
    /// Queue the current text behind every edit before it; `reply` once
    /// it is committed (see [`Rooms::settle`]).
    Settle {
        reply: oneshot::Sender<()>,
    },
    /// Nothing: wakes the room to look at its signals (a failed commit).
    Wake,
}

impl RoomCmd {
    /// The reply of a command that expects one, to answer it if handling
    /// it panicked.
    fn reply_handle(&self) -> Option<ReplyHandle> {
        match self {
            RoomCmd::Yjs { reply, .. } | RoomCmd::ReplaceText { reply, .. } => Some(reply.clone()),
            _ => None,
        }
    }
}

/// Commands travel boxed: the queue's slots stay one pointer wide.
type CmdTx = mpsc::Sender<Box<RoomCmd>>;
type CmdRx = mpsc::Receiver<Box<RoomCmd>>;

/// Sends commands to one room.
#[derive(Clone)]
pub struct RoomHandle {
    tx: CmdTx,
}

impl RoomHandle {
    /// Sends a command; false when the room is gone.
    pub async fn send(&self, cmd: RoomCmd) -> bool {
        self.tx.send(Box::new(cmd)).await.is_ok()
    }
}

/// What other tasks tell a room without a command (the writer's
/// completions cannot wait for room in a full queue).
#[derive(Default)]
struct Signals {
    /// A commit of the room failed: reload the document from the log.
    reload: AtomicBool,
}

/// Settings shared by every room.
#[derive(Clone)]
pub struct RoomConfig {
    pub snapshot_every: u32,
    pub grace: Duration,
    pub caps: Caps,
}

struct RoomsInner {
    map: Mutex<HashMap<String, CmdTx>>,
    store: Store,
    writer: DocWriter,
    config: RoomConfig,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// From an edit reaching its channel to its ack (once committed).
    edit_latency: Arc<Histogram>,
}

/// The registry of loaded rooms: a cheap handle.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<RoomsInner>,
}

impl Rooms {
    pub fn new(
        store: Store,
        writer: DocWriter,
        config: RoomConfig,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Rooms {
            inner: Arc::new(RoomsInner {
                map: Mutex::default(),
                store,
                writer,
                config,
                shutdown,
                tracker,
                edit_latency: Arc::new(Histogram::new(LATENCY_BUCKETS)),
            }),
        }
    }

    /// Time from an edit reaching its channel to its ack (committed).
    pub fn edit_latency(&self) -> &Histogram {
        &self.inner.edit_latency
    }

    pub(super) fn writer(&self) -> &DocWriter {
        &self.inner.writer
    }

    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// If the room of `challenge_id` is loaded, waits (at most
    /// [`SETTLE_WITHIN`]) until its current text, which busy Yjs rooms
    /// compute only on demand, is queued behind every edit acknowledged
    /// before and committed (see `challenges::read`).
    pub async fn settle(&self, challenge_id: &str) {
        let tx = self
            .lock()
            .get(challenge_id)
            .filter(|tx| !tx.is_closed())
            .cloned();
        let Some(tx) = tx else { return };
        let (reply, rx) = oneshot::channel();
        if tx.send(Box::new(RoomCmd::Settle { reply })).await.is_ok() {
            let _ = tokio::time::timeout(SETTLE_WITHIN, rx).await;
        }
    }

    /// True when the room of `challenge_id` is loaded.
    pub fn is_loaded(&self, challenge_id: &str) -> bool {
        self.lock().contains_key(challenge_id)
    }

    pub fn loaded(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, CmdTx>> {
        self.inner.map.lock()
    }

    fn handle(&self, challenge_id: &str) -> CmdTx {
        let mut map = self.lock();
        if let Some(tx) = map.get(challenge_id).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        map.insert(challenge_id.to_owned(), tx.clone());
        let room = task::RoomTask::new(self.clone(), challenge_id.into(), rx, tx.clone());
        let span = tracing::info_span!("room", challenge_id);
        self.inner.tracker.spawn(room.run().instrument(span));
        tx
    }

    /// Leaves the map if `tx` is still the room there.
    fn forget(&self, challenge_id: &str, tx: &CmdTx) {
        let mut map = self.lock();
        if map.get(challenge_id).is_some_and(|t| t.same_channel(tx)) {
            map.remove(challenge_id);
        }
    }

    /// Joins a member to the room of `challenge_id`, loading it if needed.
    pub async fn join(
        &self,
        challenge_id: &str,
        member: SubId,
        pusher: Pusher,
    ) -> Result<(RoomHandle, Challenge), RoomError> {
        // A room may be unloading at the very moment we pick it: try again.
        for _ in 0..JOIN_TRIES {
            let tx = self.handle(challenge_id);
            let (reply, rx) = oneshot::channel();
            let cmd = RoomCmd::Join {
                member,
                pusher: pusher.clone(),
                reply,
            };
            if tx.send(Box::new(cmd)).await.is_err() {
                continue;
            }
            match rx.await {
                Ok(result) => return result.map(|c| (RoomHandle { tx }, c)),
                Err(_) => continue,
            }
        }
        Err(RoomError::Unavailable)
    }
}
