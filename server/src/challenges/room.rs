//! A room per loaded challenge: one task alone owns its yrs document, its
//! awareness states and its member list, so every change is serialized
//! without locks. It loads on first join (snapshot + tail of the log),
//! applies edits, queues them to the group-commit writer, relays them once
//! durable, and unloads after its last member left (memory stays bounded
//! with many idle challenges). [`Rooms`] finds or starts rooms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use super::doc::{self, AwarenessEntry, YMessage};
use super::model::{Challenge, WithResponse};
use crate::channels::channel::{Pusher, ReplyHandle};
use crate::channels::message::{Broadcast, Payload, Status};
use crate::channels::pubsub::SubId;
use crate::channels::serializer::{encode_broadcast, encode_json_broadcast, Frame};
use crate::channels::Outbound;
use crate::store::doc_log::{DocWriter, Done, Stamped, WriteOp};
use crate::store::Store;
use crate::telemetry::{Histogram, LATENCY_BUCKETS};

/// Commands a room's queue holds before senders wait.
const ROOM_QUEUE: usize = 1024;
/// Clients that only speak `response:update` hear about Yjs edits at most
/// this often per room (and always of the final state).
const NOTICE_EVERY: Duration = Duration::from_millis(100);
/// Event names of the challenge channel.
/// How often a busy room hands its text to the writer when no member needs
/// it sooner (members without Yjs get it with every notice): computing it
/// walks the whole document, and reads ask for it anyway ([`Rooms::settle`]).
const PUSH_TEXT_EVERY: Duration = Duration::from_secs(2);

/// Longest a read waits for a room's text ([`Rooms::settle`]).
const SETTLE_WITHIN: Duration = Duration::from_secs(2);

pub const YJS: &str = "yjs";
pub const RESPONSE_UPDATED: &str = "response:updated";

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
        user_id: String,
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

/// Settings shared by every room.
#[derive(Clone)]
pub struct RoomConfig {
    pub snapshot_every: u32,
    pub grace: Duration,
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

    /// The durable text of a challenge if its `response` column lags behind.
    pub fn waiting_response(&self, challenge_id: &str) -> Option<Stamped> {
        self.inner.writer.waiting_response(challenge_id)
    }

    /// Before a read of `challenge.response`: if the room is loaded, waits
    /// (at most [`SETTLE_WITHIN`]) until its current text, which busy Yjs
    /// rooms compute only on demand, is where reads see it
    /// ([`Rooms::waiting_response`] or the column), behind every edit
    /// acknowledged before.
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CmdTx>> {
        self.inner.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&self, challenge_id: &str) -> CmdTx {
        let mut map = self.lock();
        if let Some(tx) = map.get(challenge_id).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        map.insert(challenge_id.to_owned(), tx.clone());
        let room = RoomTask {
            rooms: self.clone(),
            id: challenge_id.into(),
            rx,
            tx: tx.clone(),
        };
        let span = tracing::info_span!("room", challenge_id);
        self.inner.tracker.spawn(room.run().instrument(span));
        tx
    }

    /// Joins a member to the room of `challenge_id`, loading it if needed.
    pub async fn join(
        &self,
        challenge_id: &str,
        member: SubId,
        user_id: &str,
        pusher: Pusher,
    ) -> Result<(RoomHandle, Challenge), RoomError> {
        // A room may be unloading at the very moment we pick it: try again.
        for _ in 0..3 {
            let tx = self.handle(challenge_id);
            let (reply, rx) = oneshot::channel();
            let cmd = RoomCmd::Join {
                member,
                user_id: user_id.to_owned(),
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

/// A member of the room.
struct Member {
    pusher: Pusher,
    /// Speaks Yjs (sent a sync step 1): gets `yjs` relays; the others get
    /// `response:updated` notices for Yjs edits instead.
    yjs: bool,
}

/// One awareness client's last known state.
struct AwarenessState {
    clock: u64,
    /// `None` once the client went away.
    json: Option<String>,
    owner: SubId,
}

struct RoomTask {
    rooms: Rooms,
    id: Arc<str>,
    rx: CmdRx,
    tx: CmdTx,
}

struct Room {
    id: Arc<str>,
    topic: String,
    challenge: Challenge,
    doc: yrs::Doc,
    /// The document's text; stale after a Yjs edit until [`Room::refresh`]
    /// (computing it walks the whole document, so not once per keystroke).
    text: Arc<str>,
    text_stale: bool,
    /// The text changed since `challenge.response` was last queued.
    response_dirty: bool,
    members: HashMap<SubId, Member>,
    awareness: HashMap<u64, AwarenessState>,
    since_snapshot: u32,
    /// Editor of the latest Yjs edit not yet announced as `response:updated`.
    notice_user: Option<String>,
    /// When to refresh the text (and announce it): at most every
    /// [`NOTICE_EVERY`], right away when the room is quiet.
    notice_at: Option<Instant>,
    last_notice: Instant,
    /// When the text last went to the writer.
    last_push: Instant,
    /// When the latest Yjs edit was applied: `updated_at` once the text
    /// is computed.
    edited_at: time::OffsetDateTime,
}

impl RoomTask {
    async fn run(mut self) {
        let inner = self.rooms.inner.clone();
        // Boxed (as below): the load and command futures are large, and an
        // idle room's task should hold only its own state.
        let loaded = Box::pin(load(&inner.store, &self.id)).await;
        let mut room = match loaded {
            Ok(Some(room)) => room,
            Ok(None) | Err(_) => {
                let error = if matches!(loaded, Ok(None)) {
                    RoomError::NotFound
                } else {
                    RoomError::Unavailable
                };
                if let Err(err) = &loaded {
                    warn!(cause = %err, "room failed to load");
                }
                // Answer what is queued, then leave the map.
                self.forget();
                while let Ok(cmd) = self.rx.try_recv() {
                    if let RoomCmd::Join { reply, .. } = *cmd {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                return;
            }
        };
        info!(bytes = room.text.len(), "room loaded");
        let mut unload_at: Option<Instant> = Some(Instant::now() + inner.config.grace);
        loop {
            let notice_at = room.notice_at;
            tokio::select! {
                biased;
                _ = inner.shutdown.cancelled() => break,
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    Box::pin(room.handle(*cmd, &inner)).await;
                    unload_at = room.members.is_empty().then(|| unload_at.unwrap_or_else(|| Instant::now() + inner.config.grace));
                }
                _ = sleep_until_opt(notice_at) => Box::pin(room.refresh(&inner, false)).await,
                _ = sleep_until_opt(unload_at) => {
                    if self.try_unload(&room) {
                        break;
                    }
                    unload_at = Some(Instant::now() + inner.config.grace);
                }
            }
        }
        Box::pin(room.refresh(&inner, true)).await;
        if room.since_snapshot > 0 {
            let op = WriteOp::Snapshot {
                challenge_id: room.id.clone(),
                state: doc::encode_state(&room.doc),
            };
            let _ = inner.writer.send(op).await;
        }
        self.forget();
        info!("room unloaded");
    }

    /// Leaves the map if nobody joined meanwhile; true when it did.
    fn try_unload(&self, room: &Room) -> bool {
        let mut map = self.rooms.lock();
        if !room.members.is_empty() || !self.rx.is_empty() {
            return false;
        }
        if map
            .get(&*self.id)
            .is_some_and(|tx| tx.same_channel(&self.tx))
        {
            map.remove(&*self.id);
        }
        true
    }

    fn forget(&self) {
        let mut map = self.rooms.lock();
        if map
            .get(&*self.id)
            .is_some_and(|tx| tx.same_channel(&self.tx))
        {
            map.remove(&*self.id);
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn load(store: &Store, id: &Arc<str>) -> anyhow::Result<Option<Room>> {
    let Some(challenge) = store.get_challenge(id).await? else {
        return Ok(None);
    };
    let stored = store.load_doc(id).await?;
    let doc = doc::load(stored.snapshot.as_deref(), &stored.tail)?;
    let text: Arc<str> = doc::text(&doc).into();
    Ok(Some(Room {
        id: id.clone(),
        topic: format!("challenges:{id}"),
        challenge,
        doc,
        text,
        text_stale: false,
        response_dirty: false,
        members: HashMap::new(),
        awareness: HashMap::new(),
        since_snapshot: stored.tail.len() as u32,
        notice_user: None,
        notice_at: None,
        last_notice: Instant::now()
            .checked_sub(NOTICE_EVERY)
            .unwrap_or_else(Instant::now),
        last_push: Instant::now(),
        edited_at: time::OffsetDateTime::now_utc(),
    }))
}

impl Room {
    fn challenge_json(&self) -> Challenge {
        Challenge {
            response: self.text.to_string(),
            ..self.challenge.clone()
        }
    }

    async fn handle(&mut self, cmd: RoomCmd, inner: &RoomsInner) {
        match cmd {
            RoomCmd::Join {
                member,
                user_id: _,
                pusher,
                reply,
            } => {
                self.members.insert(member, Member { pusher, yjs: false });
                self.fresh_text();
                let _ = reply.send(Ok(self.challenge_json()));
            }
            RoomCmd::Leave { member } => {
                self.members.remove(&member);
                self.remove_awareness_of(member);
            }
            RoomCmd::Yjs {
                member,
                user_id,
                msg,
                reply,
                received,
            } => self.yjs(member, user_id, msg, reply, received, inner).await,
            RoomCmd::ReplaceText {
                user_id,
                text,
                reply,
                received,
            } => {
                self.replace_text(user_id, text, reply, received, inner)
                    .await;
            }
            RoomCmd::Settle { reply } => {
                self.fresh_text();
                let done: Done = Box::new(move |_| {
                    let _ = reply.send(());
                });
                self.after_queued_writes(done, inner).await;
            }
        }
    }

    async fn replace_text(
        &mut self,
        user_id: String,
        text: String,
        reply: ReplyHandle,
        received: Instant,
        inner: &RoomsInner,
    ) {
        self.fresh_text();
        // Yjs members see the edit itself (and may be typing in the same
        // word): the exact edit, as the contract says.
        let cut = if self.members.values().any(|m| m.yjs) {
            doc::Cut::Exact
        } else {
            doc::Cut::Words
        };
        let edit = doc::replace_text_from(&self.doc, &self.text, &text, cut);
        match edit {
            Some(update) => {
                // The document now reads exactly `text`.
                self.text = text.into();
                self.challenge.updated_at = crate::store::timestamp();
                // Every Yjs member gets the edit, the sender too if it
                // speaks Yjs: its own document does not have it yet.
                let message = doc::sync_update(&update);
                let relay =
                    self.relay_to(|_, m| m.yjs, YJS, || Payload::Binary(Bytes::from(message)));
                // Encoded here, in the room's task, so the completion of
                // the commit only queues bytes.
                let notice = self.notice(&user_id, |_, _| true);
                let ok = reply.prepare(Status::Ok, Payload::Json(json!({})));
                let latency = inner.edit_latency.clone();
                let done = Box::new(move |result: crate::store::Result<()>| match result {
                    Ok(()) => {
                        latency.observe(received.elapsed().as_secs_f64());
                        ok.send();
                        notice.send();
                        relay.send();
                    }
                    Err(_) => reply.error("not saved"),
                });
                self.persist(Some(user_id), update, done, inner).await;
            }
            None => {
                // Nothing to write, but the text may still be on its way to
                // the disk: answer once it is there, in order with the
                // notices of the edits before.
                let ok = reply.prepare(Status::Ok, Payload::Json(json!({})));
                let notice = self.notice(&user_id, |_, _| true);
                let done: Done = Box::new(move |result| match result {
                    Ok(()) => {
                        ok.send();
                        notice.send();
                    }
                    Err(_) => reply.error("not saved"),
                });
                self.after_queued_writes(done, inner).await;
            }
        }
    }

    async fn yjs(
        &mut self,
        member: SubId,
        user_id: String,
        msg: YMessage,
        reply: ReplyHandle,
        received: Instant,
        inner: &RoomsInner,
    ) {
        match msg {
            YMessage::SyncStep1(sv) => {
                let Some(m) = self.members.get_mut(&member) else {
                    return;
                };
                m.yjs = true;
                let pusher = m.pusher.clone();
                match doc::diff(&self.doc, &sv) {
                    Ok(update) => {
                        pusher.push(YJS, Payload::Binary(doc::sync_step2(&update).into()));
                        pusher.push(
                            YJS,
                            Payload::Binary(doc::sync_step1(&doc::state_vector(&self.doc)).into()),
                        );
                        if let Some(states) = self.awareness_message(|owner| owner != member) {
                            pusher.push(YJS, Payload::Binary(states.into()));
                        }
                        reply.ok(json!({}));
                    }
                    Err(_) => reply.error("invalid update"),
                }
            }
            YMessage::SyncStep2(update) | YMessage::Update(update) => {
                if is_empty_update(&update) {
                    return reply.ok(json!({}));
                }
                if let Err(err) = doc::apply_update(&self.doc, &update) {
                    tracing::debug!(cause = %err, "update refused");
                    return reply.error("invalid update");
                }
                // The text is computed later, at most every NOTICE_EVERY
                // (`refresh`), or when a read asks (`Rooms::settle`).
                self.text_stale = true;
                self.edited_at = time::OffsetDateTime::now_utc();
                self.notice_user = Some(user_id.clone());
                let now = Instant::now();
                if self.notice_at.is_none() {
                    self.notice_at = Some((self.last_notice + NOTICE_EVERY).max(now));
                }
                let relay = self.relay(member, doc::sync_update(&update));
                let ok = reply.prepare(Status::Ok, Payload::Json(json!({})));
                let latency = inner.edit_latency.clone();
                let done = Box::new(move |result: crate::store::Result<()>| match result {
                    Ok(()) => {
                        latency.observe(received.elapsed().as_secs_f64());
                        ok.send();
                        relay.send();
                    }
                    Err(_) => reply.error("not saved"),
                });
                self.persist(Some(user_id), update, done, inner).await;
            }
            YMessage::Awareness(raw, entries) => {
                for e in entries {
                    let accept = match self.awareness.get(&e.client_id) {
                        None => true,
                        Some(cur) => {
                            cur.clock < e.clock
                                || (cur.clock == e.clock && e.json == "null" && cur.json.is_some())
                        }
                    };
                    if accept {
                        let json = (e.json != "null").then_some(e.json);
                        self.awareness.insert(
                            e.client_id,
                            AwarenessState {
                                clock: e.clock,
                                json,
                                owner: member,
                            },
                        );
                    }
                }
                self.relay(member, doc::frame_awareness(&raw)).send();
                reply.ok(json!({}));
            }
            YMessage::QueryAwareness => {
                if let (Some(m), Some(states)) =
                    (self.members.get(&member), self.awareness_message(|_| true))
                {
                    m.pusher.push(YJS, Payload::Binary(states.into()));
                }
                reply.ok(json!({}));
            }
        }
    }

    async fn persist(
        &mut self,
        user_id: Option<String>,
        update: Vec<u8>,
        done: Done,
        inner: &RoomsInner,
    ) {
        let text = (!self.text_stale).then(|| self.stamped());
        if text.is_some() {
            self.last_push = Instant::now();
        }
        let op = WriteOp::Append {
            challenge_id: self.id.clone(),
            user_id,
            update,
            text,
            done,
        };
        if let Err(err) = inner.writer.send(op).await {
            warn!(cause = %err, "edit not queued");
            return;
        }
        self.since_snapshot += 1;
        if self.since_snapshot >= inner.config.snapshot_every.max(1) {
            self.since_snapshot = 0;
            let op = WriteOp::Snapshot {
                challenge_id: self.id.clone(),
                state: doc::encode_state(&self.doc),
            };
            let _ = inner.writer.send(op).await;
        }
    }

    /// The awareness states (not gone) whose owner passes `keep`, as one message.
    fn awareness_message(&self, keep: impl Fn(SubId) -> bool) -> Option<Vec<u8>> {
        let entries: Vec<AwarenessEntry> = self
            .awareness
            .iter()
            .filter(|(_, s)| s.json.is_some() && keep(s.owner))
            .map(|(id, s)| AwarenessEntry {
                client_id: *id,
                clock: s.clock,
                json: s.json.clone().unwrap_or_default(),
            })
            .collect();
        (!entries.is_empty()).then(|| doc::encode_awareness(&entries))
    }

    /// A member left: its awareness states go, and the others are told (as
    /// y-websocket's server does).
    fn remove_awareness_of(&mut self, member: SubId) {
        let mut gone = Vec::new();
        self.awareness.retain(|id, s| {
            if s.owner == member {
                if s.json.is_some() {
                    gone.push(AwarenessEntry {
                        client_id: *id,
                        clock: s.clock + 1,
                        json: "null".into(),
                    });
                }
                false
            } else {
                true
            }
        });
        if !gone.is_empty() {
            self.relay(member, doc::encode_awareness(&gone)).send();
        }
    }

    /// A frame for the members `to` picks, encoded once now and queued
    /// when [`Relay::send`] is called (for an edit: once it is durable).
    fn relay_to(
        &self,
        to: impl Fn(SubId, &Member) -> bool,
        event: &str,
        payload: impl FnOnce() -> Payload,
    ) -> Relay {
        self.relay_frame(to, || {
            encode_broadcast(&Broadcast {
                topic: self.topic.clone(),
                event: event.into(),
                payload: payload(),
            })
            .ok()
        })
    }

    /// The members `to` picks, and the frame for them (encoded only if
    /// there is anyone to send it to).
    fn relay_frame(
        &self,
        to: impl Fn(SubId, &Member) -> bool,
        frame: impl FnOnce() -> Option<Frame>,
    ) -> Relay {
        let targets: Vec<Outbound> = self
            .members
            .iter()
            .filter(|(id, m)| to(**id, m))
            .map(|(_, m)| m.pusher.outbound().clone())
            .collect();
        let frame = if targets.is_empty() { None } else { frame() };
        Relay { targets, frame }
    }

    /// `response:updated` with the room's text, after an edit by `user_id`.
    /// Serialized straight from the room's state: no copy of the challenge.
    fn notice(&self, user_id: &str, to: impl Fn(SubId, &Member) -> bool) -> Relay {
        #[derive(serde::Serialize)]
        struct Notice<'a> {
            challenge: WithResponse<'a>,
            user_id: &'a str,
        }
        self.relay_frame(to, || {
            Some(encode_json_broadcast(
                &self.topic,
                RESPONSE_UPDATED,
                &Notice {
                    challenge: self.challenge.with_response(&self.text),
                    user_id,
                },
            ))
        })
    }

    /// A `yjs` message for every Yjs member but `from`.
    fn relay(&self, from: SubId, message: Vec<u8>) -> Relay {
        self.relay_to(
            |id, m| id != from && m.yjs,
            YJS,
            || Payload::Binary(Bytes::from(message)),
        )
    }

    /// The text, and when it was last edited, for `challenge`.
    fn stamped(&self) -> Stamped {
        Stamped {
            text: self.text.clone(),
            at: self.challenge.updated_at.as_str().into(),
        }
    }

    /// Computes the text if a Yjs edit made it stale.
    fn fresh_text(&mut self) -> bool {
        if !self.text_stale {
            return false;
        }
        self.text_stale = false;
        let text: Arc<str> = doc::text(&self.doc).into();
        let changed = text != self.text;
        if changed {
            self.text = text;
            self.challenge.updated_at = crate::store::timestamp_of(self.edited_at);
            self.response_dirty = true;
        }
        changed
    }

    /// After Yjs edits: refresh the text, queue it for `challenge.response`
    /// (after the edits it reflects), and send `response:updated` to the
    /// members that do not speak Yjs (Yjs members already have the edit).
    /// With only Yjs members, the text is computed at most every
    /// [`PUSH_TEXT_EVERY`] (or when a read asks), unless `all`.
    async fn refresh(&mut self, inner: &RoomsInner, all: bool) {
        let now = Instant::now();
        self.notice_at = None;
        self.last_notice = now;
        let user_id = self.notice_user.take();
        let notify = user_id.is_some() && self.members.values().any(|m| !m.yjs);
        if !all && !notify && self.text_stale && now < self.last_push + PUSH_TEXT_EVERY {
            self.notice_at = Some(self.last_push + PUSH_TEXT_EVERY);
            return;
        }
        self.fresh_text();
        // Announce every Yjs edit (throttled) to the members without Yjs,
        // once the edits it reflects are committed: behind the notices of
        // the `response:update`s queued before them, which go out on their
        // commit, so a client's last `response:updated` is the latest text.
        match (user_id, notify) {
            (Some(user_id), true) => {
                let notice = self.notice(&user_id, |_, m| !m.yjs);
                self.after_queued_writes(Box::new(move |_| notice.send()), inner)
                    .await;
            }
            _ if self.response_dirty => self.push_text(None, inner).await,
            _ => {}
        }
    }

    /// Calls `done` once every write queued so far is committed, the
    /// room's text too if it changed since it was last queued.
    async fn after_queued_writes(&mut self, done: Done, inner: &RoomsInner) {
        if self.response_dirty {
            self.push_text(Some(done), inner).await;
        } else {
            let _ = inner.writer.send(WriteOp::Barrier { done }).await;
        }
    }

    /// Queues the text for `challenge.response`, behind the edits it reflects.
    async fn push_text(&mut self, done: Option<Done>, inner: &RoomsInner) {
        self.response_dirty = false;
        self.last_push = Instant::now();
        let op = WriteOp::Response {
            challenge_id: self.id.clone(),
            text: self.stamped(),
            done,
        };
        let _ = inner.writer.send(op).await;
    }
}

/// A pre-encoded broadcast and the queues it goes to.
struct Relay {
    targets: Vec<Outbound>,
    frame: Option<Frame>,
}

impl Relay {
    fn send(self) {
        if let Some(frame) = self.frame {
            for target in &self.targets {
                target.send(frame.clone());
            }
        }
    }
}

/// A v1 update with no structs and no deletions: `[0, 0]`.
fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}
