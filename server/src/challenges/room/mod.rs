//! A room per loaded challenge: one task alone owns its yrs document, its
//! awareness states and its member list, so every change is serialized
//! without locks. [`Rooms`] finds or starts rooms; the task's life is in
//! [`task`] (load, serve, reload, unload), the y-protocols in [`yjs`], the
//! answer as text (`response:update`, `response:updated`, the `response`
//! column) in [`text`], cursors and selections in [`awareness`].
//!
//! A challenge has two rooms, one per document ([`DocKind`]): the answer
//! (`challenges:<id>`, everyone with the link) and the interviewers'
//! private notes (`notes:<id>`). The answer's room is also where an
//! interview is run (CONTRACT §6): it knows each member's role, refuses
//! edits as the challenge's state says (`locked`, `ended`), applies the
//! interviewers' controls and tells the members (`challenge:updated`), and
//! records joins, leaves and integrity signals on the timeline.
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
mod interview;
mod numbers;
mod remote;
mod task;
mod text;
mod yjs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::doc::YMessage;
use super::model::{Challenge, Role};
use super::SocketUser;
use crate::channels::channel::{Pusher, ReplyHandle};
use crate::channels::pubsub::SubId;
use crate::store::challenges::Control;
use crate::store::docs::DocKind;
use crate::store::writer::{DocWriter, WriteOp};
use crate::store::Store;
use crate::telemetry::Histogram;

pub use self::remote::{BusStats, InterviewState, Remote, RoomBus};
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
    /// A wrong interviewer key, or a candidate at the private notes.
    #[error("forbidden")]
    Forbidden,
}

/// What a member who joined gets back.
#[derive(Debug, Clone)]
pub struct Joined {
    pub challenge: Challenge,
    pub role: Role,
}

pub enum RoomCmd {
    Join {
        member: SubId,
        user: SocketUser,
        /// The interviewer key the member presented, if any.
        key: Option<String>,
        pusher: Pusher,
        reply: oneshot::Sender<Result<Joined, RoomError>>,
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
        member: SubId,
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
    /// An interviewer's control (lock, unlock, end, Run on or off), by
    /// `actor` (for the timeline); the challenge as it is now.
    Control {
        control: Control,
        actor: SocketUser,
        reply: oneshot::Sender<Result<Challenge, RoomError>>,
    },
    /// An integrity signal from a member's page (`paste`, `away`, `back`):
    /// recorded on the timeline and shown live to the interviewers.
    Activity {
        member: SubId,
        kind: &'static str,
        data: serde_json::Value,
    },
    /// What another node of the cluster did in this room.
    Remote(Remote),
    /// Nothing: wakes the room to look at its signals (a failed commit).
    Wake,
}

impl RoomCmd {
    /// Whether it changes the document (refused while the room cannot
    /// reload it).
    fn is_edit(&self) -> bool {
        match self {
            RoomCmd::ReplaceText { .. } => true,
            RoomCmd::Yjs { msg, .. } => {
                matches!(msg, YMessage::Update(_) | YMessage::SyncStep2(_))
            }
            _ => false,
        }
    }

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
    flags: Arc<Flags>,
}

impl RoomHandle {
    /// Sends a command; false when the room is gone.
    pub async fn send(&self, cmd: RoomCmd) -> bool {
        self.tx.send(Box::new(cmd)).await.is_ok()
    }

    /// The challenge's state as the room last set it.
    pub fn flags(&self) -> &Flags {
        &self.flags
    }
}

/// The state of an interview, kept by its room, read by its channels (to
/// refuse a read-only edit before it sets `typing`, or a run when Run is
/// off); the room checks again.
#[derive(Debug, Default)]
pub struct Flags {
    locked: AtomicBool,
    ended: AtomicBool,
    run_off: AtomicBool,
    /// Every update numbered up to this is in the room's document (see
    /// `numbers`), for the cluster's look at the log's heads.
    seq: std::sync::atomic::AtomicI64,
}

impl Flags {
    fn set(&self, challenge: &Challenge) {
        self.locked.store(challenge.locked, Ordering::Release);
        self.ended.store(challenge.is_ended(), Ordering::Release);
        self.run_off
            .store(!challenge.run_enabled, Ordering::Release);
    }

    /// Whether a member with `role` may edit the answer.
    pub fn may_edit(&self, role: Role) -> bool {
        !self.ended.load(Ordering::Acquire)
            && (role == Role::Interviewer || !self.locked.load(Ordering::Acquire))
    }

    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    pub fn run_enabled(&self) -> bool {
        !self.run_off.load(Ordering::Acquire)
    }
}

/// What other tasks tell a room without a command (the writer's
/// completions cannot wait for room in a full queue).
#[derive(Default)]
struct Signals {
    /// A commit of the room failed: reload the document from the log.
    reload: AtomicBool,
    /// The numbers its commits got (kept only when the log numbers each
    /// document's updates, on Postgres: see `numbers`).
    committed: parking_lot::Mutex<Vec<i64>>,
    numbered: AtomicBool,
}

impl Signals {
    /// A commit of the room got number `seq`.
    fn committed(&self, seq: i64) {
        if seq > 0 && self.numbered.load(Ordering::Relaxed) {
            self.committed.lock().push(seq);
        }
    }
}

/// Settings shared by every room.
#[derive(Clone)]
pub struct RoomConfig {
    pub snapshot_every: u32,
    pub grace: Duration,
    pub caps: Caps,
    /// This node's number (see `channels::presence`): owners of awareness
    /// states are (node, member).
    pub node: u32,
    /// The other nodes of a cluster, if there are any.
    pub bus: Option<Arc<dyn RoomBus>>,
}

/// A loaded room's queue and flags.
#[derive(Clone)]
struct Entry {
    tx: CmdTx,
    flags: Arc<Flags>,
}

struct RoomsInner {
    map: Mutex<HashMap<(String, DocKind), Entry>>,
    store: Store,
    writer: DocWriter,
    config: RoomConfig,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// From an edit reaching its channel to its ack (once committed).
    edit_latency: Histogram,
    bus_stats: BusStats,
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
                edit_latency: crate::telemetry::latency_histogram(),
                bus_stats: BusStats::default(),
            }),
        }
    }

    /// Time from an edit reaching its channel to its ack (committed).
    pub fn edit_latency(&self) -> &Histogram {
        &self.inner.edit_latency
    }

    /// What the cluster's bus did to this node's rooms.
    pub fn bus_stats(&self) -> &BusStats {
        &self.inner.bus_stats
    }

    /// Hands what another node did to the room of `challenge_id`, if it is
    /// loaded here (a room loads everything committed before anyway).
    /// Never waits: a full queue drops it, and the room finds a lost
    /// update at the next look at the log's heads.
    pub fn remote(&self, challenge_id: &str, doc: DocKind, remote: Remote) {
        if let Some(entry) = self.loaded_entry(challenge_id, doc) {
            if entry
                .tx
                .try_send(Box::new(RoomCmd::Remote(remote)))
                .is_err()
            {
                tracing::debug!(challenge_id, "room queue full: a bus message was dropped");
            }
        }
    }

    /// Node `node` is gone: every room drops its members' cursors.
    pub fn node_down(&self, node: u32) {
        let entries: Vec<Entry> = self.lock().values().cloned().collect();
        for entry in entries {
            let _ = entry
                .tx
                .try_send(Box::new(RoomCmd::Remote(Remote::NodeDown(node))));
        }
    }

    /// The loaded rooms and the number up to which each holds its log.
    pub fn held(&self) -> Vec<(String, DocKind, i64)> {
        self.lock()
            .iter()
            .map(|((id, doc), e)| (id.clone(), *doc, e.flags.seq.load(Ordering::Acquire)))
            .collect()
    }

    pub(super) fn writer(&self) -> &DocWriter {
        &self.inner.writer
    }

    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// If the answer's room of `challenge_id` is loaded, waits (at most
    /// [`SETTLE_WITHIN`]) until its current text, which busy Yjs rooms
    /// compute only on demand, is queued behind every edit acknowledged
    /// before and committed (see `challenges::read`).
    pub async fn settle(&self, challenge_id: &str) {
        let Some(entry) = self.loaded_entry(challenge_id, DocKind::Answer) else {
            return;
        };
        let (reply, rx) = oneshot::channel();
        if entry
            .tx
            .send(Box::new(RoomCmd::Settle { reply }))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(SETTLE_WITHIN, rx).await;
        }
    }

    fn loaded_entry(&self, challenge_id: &str, doc: DocKind) -> Option<Entry> {
        self.lock()
            .get(&(challenge_id.to_owned(), doc))
            .filter(|e| !e.tx.is_closed())
            .cloned()
    }

    /// True when the answer's room of `challenge_id` is loaded.
    pub fn is_loaded(&self, challenge_id: &str) -> bool {
        self.loaded_entry(challenge_id, DocKind::Answer).is_some()
    }

    pub fn loaded(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, DocKind), Entry>> {
        self.inner.map.lock()
    }

    fn handle(&self, challenge_id: &str, doc: DocKind) -> Entry {
        let mut map = self.lock();
        let key = (challenge_id.to_owned(), doc);
        if let Some(entry) = map.get(&key).filter(|e| !e.tx.is_closed()) {
            return entry.clone();
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let entry = Entry {
            tx: tx.clone(),
            flags: Arc::default(),
        };
        map.insert(key, entry.clone());
        let room = task::RoomTask::new(self.clone(), challenge_id.into(), doc, rx, entry.clone());
        let span = tracing::info_span!("room", challenge_id, ?doc);
        self.inner.tracker.spawn(room.run().instrument(span));
        entry
    }

    /// Leaves the map if `tx` is still the room there.
    fn forget(&self, challenge_id: &str, doc: DocKind, tx: &CmdTx) {
        let mut map = self.lock();
        let key = (challenge_id.to_owned(), doc);
        if map.get(&key).is_some_and(|e| e.tx.same_channel(tx)) {
            map.remove(&key);
        }
    }

    /// Sends a command built by `cmd` (with the reply's sender) to the room
    /// of `challenge_id`, loading it if needed; its answer.
    async fn ask<T>(
        &self,
        challenge_id: &str,
        doc: DocKind,
        cmd: impl Fn(oneshot::Sender<Result<T, RoomError>>) -> RoomCmd,
    ) -> Result<(T, Entry), RoomError> {
        // A room may be unloading at the very moment we pick it: try again.
        for _ in 0..JOIN_TRIES {
            let entry = self.handle(challenge_id, doc);
            let (reply, rx) = oneshot::channel();
            if entry.tx.send(Box::new(cmd(reply))).await.is_err() {
                continue;
            }
            match rx.await {
                Ok(result) => return result.map(|v| (v, entry)),
                Err(_) => continue,
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Joins a member to a room of `challenge_id`, loading it if needed:
    /// its role follows from who it is and the key it presents (CONTRACT
    /// §6); the private notes take interviewers only.
    pub async fn join(
        &self,
        challenge_id: &str,
        doc: DocKind,
        member: SubId,
        user: &SocketUser,
        key: Option<&str>,
        pusher: Pusher,
    ) -> Result<(RoomHandle, Joined), RoomError> {
        let cmd = |reply| RoomCmd::Join {
            member,
            user: user.clone(),
            key: key.map(str::to_owned),
            pusher: pusher.clone(),
            reply,
        };
        let (joined, entry) = self.ask(challenge_id, doc, cmd).await?;
        let handle = RoomHandle {
            tx: entry.tx,
            flags: entry.flags,
        };
        Ok((handle, joined))
    }

    /// Applies an interviewer's control to a challenge through its answer's
    /// room (loading it if needed, so the room and the database agree): the
    /// challenge as it is now. The caller checked who may.
    pub async fn control(
        &self,
        challenge_id: &str,
        control: Control,
        actor: &SocketUser,
    ) -> Result<Challenge, RoomError> {
        let cmd = |reply| RoomCmd::Control {
            control,
            actor: actor.clone(),
            reply,
        };
        Ok(self.ask(challenge_id, DocKind::Answer, cmd).await?.0)
    }

    /// Records a timeline event that is not a room's own (a run's end),
    /// without waiting (the caller may hold a lock).
    pub fn record_now(
        &self,
        challenge_id: &str,
        user: Option<&SocketUser>,
        kind: &'static str,
        data: &serde_json::Value,
    ) {
        let op = WriteOp::Event {
            challenge_id: challenge_id.into(),
            user_id: user.map(|u| u.id.clone()),
            first_name: user.map(|u| u.first_name.clone()).unwrap_or_default(),
            kind,
            data: data.to_string(),
        };
        if let Err(err) = self.inner.writer.try_send(op) {
            tracing::warn!(cause = %err, kind, "timeline event not recorded");
        }
    }
}
