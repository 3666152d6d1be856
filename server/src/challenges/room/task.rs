//! A room's task: loads the room (snapshot + tail of the log) on first
//! join, serves its commands one at a time, reloads the document from the
//! log when yrs panicked or a commit failed, and unloads after its last
//! member left (memory stays bounded with many idle challenges).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;
use tracing::{info, warn};

use super::awareness::Awareness;
use super::{CmdRx, CmdTx, Entry, Flags, RoomCmd, RoomError, Rooms, Signals};
use crate::challenges::doc;
use crate::challenges::model::{Challenge, Role};
use crate::challenges::SocketUser;
use crate::channels::channel::Pusher;
use crate::channels::pubsub::SubId;
use crate::store::docs::DocKind;
use crate::store::writer::{Done, WriteOp};

/// Size limits of a room (CONTRACT §3 "Limits"; README "Threat model").
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Largest Yjs update accepted, in bytes.
    pub max_update_bytes: usize,
    /// Largest document (its encoded state), in bytes: below the frame
    /// limit, so a joiner's sync step 2 fits in one frame.
    pub max_doc_bytes: usize,
    /// Largest awareness state (one client's JSON), in bytes.
    pub max_awareness_bytes: usize,
    /// Largest frame the room sends a member: the awareness states a
    /// joiner gets are split to fit.
    pub max_frame_bytes: usize,
}

/// After a reload that followed a failed commit, the Yjs members are asked
/// for what they have and the log lacks at most this often: while the disk
/// stays full, every resync fails again.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// How often a room whose document could not be reloaded (the database
/// unreachable) tries again; its edits get "unavailable" meanwhile.
const RELOAD_RETRY: Duration = Duration::from_secs(1);

/// A member of the room.
pub(super) struct Member {
    pub(super) pusher: Pusher,
    /// Speaks Yjs (sent a sync step 1): gets `yjs` relays; the others get
    /// `response:updated` notices for Yjs edits instead.
    pub(super) yjs: bool,
    pub(super) role: Role,
    pub(super) user: SocketUser,
}

/// Why a room reloads its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reload {
    /// yrs panicked: the document may be inconsistent.
    Panicked,
    /// A commit failed: the document holds updates the log does not.
    CommitFailed,
}

pub(super) struct RoomTask {
    rooms: Rooms,
    id: Arc<str>,
    kind: DocKind,
    rx: CmdRx,
    entry: Entry,
}

/// A loaded room's state (owned by its task).
pub(super) struct Room {
    pub(super) id: Arc<str>,
    /// Which document of the challenge this room holds.
    pub(super) kind: DocKind,
    pub(super) topic: String,
    pub(super) challenge: Challenge,
    pub(super) doc: yrs::Doc,
    /// The document's text; stale after a Yjs edit until refreshed
    /// (computing it walks the whole document, so not once per keystroke).
    pub(super) text: Arc<str>,
    pub(super) text_stale: bool,
    /// The text changed since `challenge.response` was last queued.
    pub(super) response_dirty: bool,
    pub(super) members: HashMap<SubId, Member>,
    pub(super) awareness: Awareness,
    pub(super) since_snapshot: u32,
    /// The document's encoded size, an upper bound: measured at load and
    /// at snapshots, grown by each update's size (see `Room::fits`).
    pub(super) doc_bytes: usize,
    /// Bytes added to `doc_bytes` since it was last measured.
    pub(super) unmeasured: usize,
    /// Editor of the latest Yjs edit not yet announced as `response:updated`.
    pub(super) notice_user: Option<String>,
    /// When to refresh the text (and announce it).
    pub(super) notice_at: Option<Instant>,
    pub(super) last_notice: Instant,
    /// When the text last went to the writer.
    pub(super) last_push: Instant,
    /// When the latest Yjs edit was applied: `updated_at` once the text
    /// is computed.
    pub(super) edited_at: time::OffsetDateTime,
    /// yrs panicked on the document: reload it before anything else.
    pub(super) broken: bool,
    /// When to ask the Yjs members for what the log lacks.
    pub(super) resync_at: Option<Instant>,
    pub(super) last_resync: Option<Instant>,
    pub(super) signals: Arc<Signals>,
    /// This room's own queue, for the writer's completions to wake it.
    pub(super) me: CmdTx,
    /// Every update numbered up to this is in the document (see `numbers`).
    pub(super) seq: i64,
    /// Numbers held beyond `seq`.
    pub(super) ahead: std::collections::BTreeSet<i64>,
    /// Other nodes' updates that came before their turn (see `remote`).
    pub(super) waiting: super::remote::Waiting,
    /// When to read from the database a gap the bus left.
    pub(super) gap_at: Option<Instant>,
    /// The document could not be reloaded (the database unreachable):
    /// edits are refused as "unavailable" until it is, tried again then.
    pub(super) reload_retry: Option<(Reload, Instant)>,
    /// This node's number (owners of awareness states).
    pub(super) node: u32,
    /// The challenge's state as the channels read it.
    pub(super) flags: Arc<Flags>,
    pub(super) caps: Caps,
}

impl RoomTask {
    pub(super) fn new(rooms: Rooms, id: Arc<str>, kind: DocKind, rx: CmdRx, entry: Entry) -> Self {
        RoomTask {
            rooms,
            id,
            kind,
            rx,
            entry,
        }
    }

    pub(super) async fn run(mut self) {
        // Boxed (as below): the load and command futures are large, and an
        // idle room's task should hold only its own state.
        let loaded = Box::pin(load_patiently(
            &self.rooms,
            &self.id,
            self.kind,
            &self.entry,
        ))
        .await;
        let mut room = match loaded {
            Ok(Some(room)) => room,
            Ok(None) => return self.refuse_joins(RoomError::NotFound).await,
            Err(err) => {
                warn!(cause = %err, "room failed to load");
                return self.refuse_joins(RoomError::Unavailable).await;
            }
        };
        info!(bytes = room.text.len(), "room loaded");
        let grace = self.rooms.inner.config.grace;
        let shutdown = self.rooms.inner.shutdown.clone();
        let mut unload_at: Option<Instant> = Some(Instant::now() + grace);
        room.publish_seq();
        loop {
            if let Some(why) = room.reload_due() {
                if let Err(err) = Box::pin(room.reload(&self.rooms, why)).await {
                    warn!(cause = %err, "room could not reload; edits are refused until it can");
                    room.reload_retry = Some((why, Instant::now() + RELOAD_RETRY));
                }
            }
            let (notice_at, resync_at, gap_at) = (room.notice_at, room.resync_at, room.gap_at);
            let retry_at = room.reload_retry.map(|(_, at)| at);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    room.serve(*cmd, &self.rooms).await;
                    unload_at = room.members.is_empty().then(|| unload_at.unwrap_or_else(|| Instant::now() + grace));
                }
                _ = sleep_until_opt(notice_at) => Box::pin(room.refresh(&self.rooms, false)).await,
                _ = sleep_until_opt(resync_at) => room.resync(),
                _ = sleep_until_opt(gap_at) => Box::pin(room.fill_gap(&self.rooms)).await,
                _ = sleep_until_opt(retry_at) => {}
                _ = sleep_until_opt(unload_at) => {
                    if self.try_unload(&room) {
                        break;
                    }
                    unload_at = Some(Instant::now() + grace);
                }
            }
        }
        Box::pin(room.close(&self.rooms)).await;
        self.rooms.forget(&self.id, self.kind, &self.entry.tx);
        info!("room unloaded");
    }

    /// The room did not load: answer the joins queued, leave the map.
    async fn refuse_joins(mut self, error: RoomError) {
        self.rooms.forget(&self.id, self.kind, &self.entry.tx);
        // Closed first: a join sent from now on fails at once (and is
        // tried again on a new room); every one sent before is answered.
        self.rx.close();
        while let Some(cmd) = self.rx.recv().await {
            match *cmd {
                RoomCmd::Join { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                RoomCmd::Control { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                _ => {}
            }
        }
    }

    /// Leaves the map if nobody joined meanwhile; true when it did.
    fn try_unload(&self, room: &Room) -> bool {
        if !room.members.is_empty() || !self.rx.is_empty() {
            return false;
        }
        self.rooms.forget(&self.id, self.kind, &self.entry.tx);
        true
    }
}

pub(super) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A document as its log has it.
pub(super) struct LoadedDoc {
    pub(super) doc: yrs::Doc,
    /// Its encoded size.
    pub(super) bytes: usize,
    /// Updates since the snapshot.
    pub(super) since: u32,
    /// The number of the last update it holds (see `numbers`).
    pub(super) seq: i64,
}

/// How long a room's reload waits to reach the database before it counts
/// as down.
const REACHABLE_WITHIN: Duration = Duration::from_millis(500);

/// The document of a room as its log has it. Waits first for every write
/// queued for the room (a previous life's last snapshot, writes stopped
/// after a failed commit), so the log read is the whole of what was
/// committed.
pub(super) async fn load_doc(
    rooms: &Rooms,
    id: &Arc<str>,
    kind: DocKind,
) -> anyhow::Result<LoadedDoc> {
    rooms.writer().resume(id.clone(), kind).await?;
    let (snapshot, tail) = rooms.store().load_doc_after(id, kind).await?;
    let since = u32::try_from(tail.len()).unwrap_or(u32::MAX);
    let seq = tail
        .last()
        .map(|(n, _)| *n)
        .or(snapshot.as_ref().map(|(_, n)| *n))
        .unwrap_or(0);
    let updates: Vec<Vec<u8>> = tail.into_iter().map(|(_, u)| u).collect();
    let loaded = doc::load(snapshot.as_ref().map(|(s, _)| s.as_slice()), &updates);
    if loaded.skipped > 0 {
        warn!(
            skipped = loaded.skipped,
            "stored updates that do not apply were skipped"
        );
    }
    let bytes = doc::encode_state(&loaded.doc).len();
    Ok(LoadedDoc {
        doc: loaded.doc,
        bytes,
        since,
        seq,
    })
}

/// How long after its first try a room's load is tried again when the
/// pool had no connection for one of its reads in time. A join storm
/// (thousands of rooms loading at once on Postgres: 50 000 sockets over
/// three nodes) can queue a load's reads behind the pool's connections for
/// longer than its acquire timeout, and their joins got "room unavailable".
/// With the database down the first read fails after the acquire timeout
/// (3 s), the second try's too: joins are refused within about 6 s, inside
/// a phoenix.js join's 10 s. (Letting only a few loads read at once was
/// tried and is worse: a load also waits for the writer, and the storm's
/// loads overlap those waits.)
const LOAD_RETRY_WITHIN: Duration = Duration::from_secs(6);

/// [`load`], tried again after a pool timeout (see [`LOAD_RETRY_WITHIN`]).
/// Any other error (the database down, a refusal) is the answer at once.
async fn load_patiently(
    rooms: &Rooms,
    id: &Arc<str>,
    kind: DocKind,
    entry: &Entry,
) -> anyhow::Result<Option<Room>> {
    let started = Instant::now();
    loop {
        match load(rooms, id, kind, entry).await {
            Err(err) if pool_timed_out(&err) && started.elapsed() < LOAD_RETRY_WITHIN => {
                info!("room load waited too long for a database connection; trying again");
            }
            done => return done,
        }
    }
}

/// Whether `err` is the pool's "no connection in time" (the pool busy, or
/// the database unreachable: the second try then fails as the first). The
/// store's error keeps sqlx's as its source, so the chain reaches it.
fn pool_timed_out(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        )
    })
}

async fn load(
    rooms: &Rooms,
    id: &Arc<str>,
    kind: DocKind,
    entry: &Entry,
) -> anyhow::Result<Option<Room>> {
    let Some(challenge) = rooms.store().get_challenge(id).await? else {
        return Ok(None);
    };
    entry.flags.set(&challenge);
    let LoadedDoc {
        doc,
        bytes: doc_bytes,
        since: since_snapshot,
        seq,
    } = load_doc(rooms, id, kind).await?;
    let text: Arc<str> = match kind {
        DocKind::Answer => doc::text(&doc).into(),
        DocKind::Notes => "".into(),
    };
    let now = Instant::now();
    let prefix = match kind {
        DocKind::Answer => crate::challenges::channel::TOPIC_PREFIX,
        DocKind::Notes => crate::challenges::channel::NOTES_PREFIX,
    };
    Ok(Some(Room {
        id: id.clone(),
        kind,
        topic: format!("{prefix}{id}"),
        challenge,
        doc,
        text,
        text_stale: false,
        response_dirty: false,
        members: HashMap::new(),
        awareness: Awareness::default(),
        since_snapshot,
        doc_bytes,
        unmeasured: 0,
        notice_user: None,
        notice_at: None,
        last_notice: now.checked_sub(super::text::NOTICE_EVERY).unwrap_or(now),
        last_push: now,
        edited_at: time::OffsetDateTime::now_utc(),
        broken: false,
        resync_at: None,
        last_resync: None,
        signals: Arc::new(Signals {
            numbered: rooms.store().is_postgres().into(),
            ..Signals::default()
        }),
        me: entry.tx.clone(),
        seq,
        ahead: Default::default(),
        waiting: Default::default(),
        gap_at: None,
        reload_retry: None,
        node: rooms.inner.config.node,
        flags: entry.flags.clone(),
        caps: rooms.inner.config.caps,
    }))
}

impl Room {
    /// Handles one command; a panic while handling it answers the command
    /// with an error and has the document reloaded.
    async fn serve(&mut self, cmd: RoomCmd, rooms: &Rooms) {
        let reply = cmd.reply_handle();
        if self.reload_retry.is_some() && cmd.is_edit() {
            if let Some(reply) = reply {
                reply.error("unavailable");
            }
            return;
        }
        let handled = AssertUnwindSafe(Box::pin(self.handle(cmd, rooms)))
            .catch_unwind()
            .await;
        if handled.is_err() {
            warn!("a room command panicked; the document is reloaded");
            if let Some(reply) = reply {
                reply.error("invalid update");
            }
            self.broken = true;
        }
    }

    async fn handle(&mut self, cmd: RoomCmd, rooms: &Rooms) {
        match cmd {
            RoomCmd::Join {
                member,
                user,
                key,
                pusher,
                reply,
            } => {
                let joined = self.join(member, user, key.as_deref(), pusher, rooms).await;
                let _ = reply.send(joined);
            }
            RoomCmd::Leave { member } => {
                if let Some(gone) = self.members.remove(&member) {
                    self.record(Some(&gone.user), "leave", serde_json::json!({}), rooms)
                        .await;
                }
                self.remove_awareness_of(member, rooms);
            }
            RoomCmd::Control {
                control,
                actor,
                reply,
            } => {
                let _ = reply.send(self.control(control, &actor, rooms).await);
            }
            RoomCmd::Activity { member, kind, data } => {
                self.activity(member, kind, data, rooms).await
            }
            RoomCmd::Yjs {
                member,
                user_id,
                msg,
                reply,
                received,
            } => {
                let edit = super::yjs::Edit {
                    member,
                    user_id,
                    reply,
                    received,
                };
                self.yjs(edit, msg, rooms).await
            }
            RoomCmd::ReplaceText {
                member,
                user_id,
                text,
                reply,
                received,
            } => {
                if !self.may_edit(member) {
                    return reply.error("read only");
                }
                self.replace_text(user_id, text, reply, received, rooms)
                    .await
            }
            RoomCmd::Settle { reply } => {
                // Many nodes: another node's acknowledged edit may still be
                // on its way over the bus; a read sees it anyway. (One node
                // has no other writer: no query.)
                if rooms.inner.config.bus.is_some() {
                    self.fill_gap(rooms).await;
                }
                self.fresh_text();
                let done: Done = Box::new(move |_| {
                    let _ = reply.send(());
                });
                self.after_queued_writes(done, rooms).await;
            }
            RoomCmd::Remote(remote) => self.remote(remote, rooms).await,
            RoomCmd::Wake => {}
        }
    }

    fn reload_due(&mut self) -> Option<Reload> {
        if let Some((why, at)) = self.reload_retry {
            if Instant::now() < at {
                return None;
            }
            self.reload_retry = None;
            self.broken = false;
            self.signals.reload.store(false, Ordering::Release);
            return Some(why);
        }
        if std::mem::take(&mut self.broken) {
            Some(Reload::Panicked)
        } else if self.signals.reload.swap(false, Ordering::AcqRel) {
            Some(Reload::CommitFailed)
        } else {
            None
        }
    }

    /// Rebuilds the document from the log, once every write queued before
    /// is committed (or, after a failed commit, refused by the writer).
    async fn reload(&mut self, rooms: &Rooms, why: Reload) -> anyhow::Result<()> {
        warn!(?why, "reloading the document from the log");
        // A database that is down is tried again later, at once: waiting
        // the pool's whole acquire timeout here would hold up the room's
        // replies (its edits get "unavailable" meanwhile, CONTRACT §5).
        // Only here: a first load waits its turn for a connection.
        if !rooms.store().reachable(REACHABLE_WITHIN).await {
            anyhow::bail!("the database is unreachable");
        }
        let loaded = load_doc(rooms, &self.id, self.kind).await?;
        let (doc, bytes, since) = (loaded.doc, loaded.bytes, loaded.since);
        self.signals.committed.lock().clear();
        self.ahead.clear();
        self.waiting.clear();
        self.gap_at = None;
        self.seq = loaded.seq;
        self.publish_seq();
        self.doc = doc;
        self.doc_bytes = bytes;
        self.unmeasured = 0;
        self.since_snapshot = since;
        self.text_stale = self.kind == DocKind::Answer;
        if self.kind == DocKind::Answer && (self.fresh_text() || why == Reload::CommitFailed) {
            // The column may have been given a text of what failed.
            self.response_dirty = true;
            self.push_text(None, rooms).await;
        }
        if why == Reload::CommitFailed {
            let due = self
                .last_resync
                .map_or_else(Instant::now, |at| at + RESYNC_EVERY)
                .max(Instant::now());
            self.resync_at = Some(due);
        }
        Ok(())
    }

    /// Why an edit that was not stored is refused: on Postgres, the
    /// database is unreachable (CONTRACT §5); on SQLite, the disk refused.
    pub(super) fn unsaved_reason(&self) -> &'static str {
        if self.signals.numbered.load(Ordering::Relaxed) {
            "unavailable"
        } else {
            "not saved"
        }
    }

    /// Asks every Yjs member for what it has and the log lacks (edits
    /// refused as "not saved"): its answer is a sync step 2.
    fn resync(&mut self) {
        self.resync_at = None;
        self.last_resync = Some(Instant::now());
        let step1 = doc::sync_step1(&doc::state_vector(&self.doc));
        for m in self.members.values().filter(|m| m.yjs) {
            m.pusher.push(
                super::yjs::YJS,
                crate::channels::message::Payload::Binary(step1.clone().into()),
            );
        }
    }

    /// The room's last moments: its text and a snapshot go to the writer.
    async fn close(&mut self, rooms: &Rooms) {
        if self.broken {
            return;
        }
        self.refresh(rooms, true).await;
        if self.since_snapshot > 0 {
            let op = WriteOp::Snapshot {
                challenge_id: self.id.clone(),
                doc: self.kind,
                covers: self.covers(),
                state: doc::encode_state(&self.doc),
            };
            let _ = rooms.writer().send(op).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pool_timed_out;
    use crate::store::Error;

    #[test]
    fn a_pool_timeout_is_seen_through_the_stores_error() {
        assert!(pool_timed_out(&Error::Db(sqlx::Error::PoolTimedOut).into()));
        assert!(pool_timed_out(
            &anyhow::Error::from(Error::Db(sqlx::Error::PoolTimedOut)).context("loading")
        ));
        assert!(!pool_timed_out(&Error::Db(sqlx::Error::PoolClosed).into()));
        assert!(!pool_timed_out(&Error::DatabaseGone.into()));
    }
}
