//! A room of a cluster (CONTRACT §5): every node that has members in a
//! room holds a replica of it. What a node's room does that the others
//! must see goes out through the [`RoomBus`] (the cluster's Redis bus) once
//! it is durable; what the others did comes in as [`Remote`] commands.
//!
//! The bus may lose, repeat or reorder messages; the database may not.
//! Each committed update carries its number in the document's log (`seq`,
//! gap-free per document, see `numbers`): a room applies the numbers in
//! order, holds back the ones that come early, fetches from the database
//! a gap that does not fill within [`GAP_WAIT`], and ignores what it holds
//! already. A number the bus lost with nothing after it is found by the
//! cluster's periodic look at the log's heads ([`Remote::Head`]).
//! Remote updates are applied and relayed, never stored again.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::task::Room;
use super::Rooms;
use crate::challenges::doc::{self, DocError, YMessage};
use crate::challenges::model::{Challenge, Role};
use crate::channels::fanout::Fanout;
use crate::channels::presence::Owner;
use crate::channels::pubsub::SubId;
use crate::store::docs::DocKind;

/// How long an update that came before its predecessor waits for it on
/// the bus before the room reads the gap from the database (the bus
/// delivers another node's commit a millisecond or so apart from ours).
pub const GAP_WAIT: Duration = Duration::from_millis(150);

/// Where a room tells the other nodes what happened in it; called from
/// the room's task or the writer's completions, so it must not block.
pub trait RoomBus: Send + Sync + 'static {
    /// An update of `doc` committed as number `seq`, by `user_id`;
    /// `notice`: a `response:update`, whose `response:updated` every
    /// member gets at once (Yjs edits' notices are throttled).
    fn update(
        &self,
        id: &str,
        doc: DocKind,
        seq: i64,
        user_id: Option<&str>,
        notice: bool,
        update: &[u8],
    );
    /// Awareness entries (an awareness message) of local member `sub`.
    fn awareness(&self, id: &str, doc: DocKind, sub: SubId, message: &[u8]);
    /// An interviewer's control changed the challenge.
    fn interview(&self, id: &str, state: &InterviewState);
    /// An integrity signal shown to the interviewers.
    fn activity(&self, id: &str, shown: &Value);
}

/// The part of a challenge an interviewer's control changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterviewState {
    pub status: String,
    pub ended_at: Option<String>,
    pub locked: bool,
    pub run_enabled: bool,
}

impl InterviewState {
    pub fn of(c: &Challenge) -> Self {
        InterviewState {
            status: c.status.clone(),
            ended_at: c.ended_at.clone(),
            locked: c.locked,
            run_enabled: c.run_enabled,
        }
    }
}

/// What other nodes tell a room.
#[derive(Debug)]
pub enum Remote {
    /// An update another node committed as number `seq`.
    Update {
        seq: i64,
        user_id: Option<String>,
        /// A `response:update`: notice every member at once.
        notice: bool,
        update: Vec<u8>,
    },
    /// Awareness entries of a member of another node.
    Awareness { owner: Owner, message: Vec<u8> },
    /// The challenge's interview state after a control on another node.
    Interview(InterviewState),
    /// An integrity signal on another node, for this node's interviewers.
    Activity(Value),
    /// A node is gone: its members' cursors go.
    NodeDown(u32),
    /// The log's last number: anything the room lacks up to it is fetched.
    Head(i64),
}

impl Room {
    pub(super) async fn remote(&mut self, remote: Remote, rooms: &Rooms) {
        match remote {
            Remote::Update {
                seq,
                user_id,
                notice,
                update,
            } => {
                self.absorb_committed();
                if seq <= self.seq || self.ahead.contains(&seq) {
                    rooms.inner.bus_stats.duplicates.fetch_add(1, Relaxed);
                    return;
                }
                self.waiting.insert(seq, (user_id, notice, update));
                self.apply_waiting();
                if !self.waiting.is_empty() && self.gap_at.is_none() {
                    self.gap_at = Some(Instant::now() + GAP_WAIT);
                }
            }
            Remote::Head(head) => {
                self.absorb_committed();
                if head > self.seq {
                    self.fill_gap(rooms).await;
                }
            }
            Remote::Awareness { owner, message } => self.remote_awareness(owner, &message),
            Remote::NodeDown(node) => {
                let gone = self.awareness.remove_node(node);
                if !gone.is_empty() {
                    self.relay_all(doc::awareness_message(gone)).send();
                }
            }
            Remote::Interview(state) => self.remote_interview(state),
            Remote::Activity(shown) => {
                let interviewers = self
                    .members
                    .values()
                    .filter(|m| m.role == Role::Interviewer)
                    .map(|m| &m.pusher);
                Fanout::json(
                    &self.topic,
                    super::interview::ACTIVITY,
                    &shown,
                    interviewers,
                )
                .send();
            }
        }
    }

    /// Applies the updates waiting whose turn has come.
    fn apply_waiting(&mut self) {
        loop {
            self.advance();
            let next = self.seq + 1;
            let Some((user_id, notice, update)) = self.waiting.remove(&next) else {
                break;
            };
            self.apply_remote_update(user_id, notice, &update);
            self.seq = next;
        }
        let keep = self.waiting.split_off(&(self.seq + 1));
        self.waiting = keep;
        self.publish_seq();
        if self.waiting.is_empty() {
            self.gap_at = None;
        }
    }

    /// Reads what the room lacks from the database (a gap the bus did not
    /// fill in time, or a head beyond what it holds).
    pub(super) async fn fill_gap(&mut self, rooms: &Rooms) {
        self.gap_at = None;
        self.absorb_committed();
        match rooms
            .store()
            .edits_after(&self.id, self.kind, self.seq)
            .await
        {
            Ok(updates) => {
                let fetched = updates.len();
                tracing::debug!(after = self.seq, fetched, "read the updates the room lacks");
                for (n, user_id, update) in updates {
                    if !self.ahead.contains(&n) {
                        // Whether it was a `response:update` is not stored:
                        // its members without Yjs are told at once either
                        // way (a throttled notice could skip the edit).
                        let notice = user_id.is_some();
                        self.waiting.entry(n).or_insert((user_id, notice, update));
                    }
                }
                if fetched > 0 {
                    rooms
                        .inner
                        .bus_stats
                        .fetched
                        .fetch_add(fetched as u64, Relaxed);
                }
                self.apply_waiting();
            }
            Err(err) => tracing::warn!(cause = %err, "could not read the updates the bus lost"),
        }
        if !self.waiting.is_empty() {
            // Numbers the database does not show yet: look again later.
            self.gap_at = Some(Instant::now() + GAP_WAIT);
        }
    }

    /// Applies a committed update of another node and relays it; the
    /// members without Yjs get `response:updated` (at once for a
    /// `response:update`, as on its own node; throttled for Yjs edits).
    fn apply_remote_update(&mut self, user_id: Option<String>, notice: bool, update: &[u8]) {
        match doc::apply_update(&self.doc, update) {
            Ok(()) => {}
            Err(DocError::Panicked) => {
                self.broken = true;
                return;
            }
            Err(err) => {
                tracing::warn!(cause = %err, "a committed update of another node does not apply");
                return;
            }
        }
        self.grew(update.len(), false);
        if self.kind == DocKind::Answer {
            self.text_stale = true;
            self.edited_at = time::OffsetDateTime::now_utc();
            if let (true, Some(user_id)) = (notice, &user_id) {
                self.fresh_text();
                self.notice(user_id, false).send();
                self.relay_all(doc::sync_update(update)).send();
                return;
            }
            if let Some(user_id) = user_id {
                self.notice_user = Some(user_id);
            }
            if self.notice_at.is_none() {
                let due = self.last_notice + super::text::NOTICE_EVERY;
                self.notice_at = Some(due.max(Instant::now()));
            }
        }
        self.relay_all(doc::sync_update(update)).send();
    }

    fn remote_awareness(&mut self, owner: Owner, message: &[u8]) {
        let Ok(YMessage::Awareness(update)) = doc::decode_message(message) else {
            return;
        };
        if let Ok(accepted) = self.awareness.apply(owner, update, &self.caps) {
            if !accepted.is_empty() {
                self.relay_all(doc::awareness_message(accepted)).send();
            }
        }
    }

    fn remote_interview(&mut self, state: InterviewState) {
        self.challenge.status = state.status;
        self.challenge.ended_at = state.ended_at;
        self.challenge.locked = state.locked;
        self.challenge.run_enabled = state.run_enabled;
        self.flags.set(&self.challenge);
        self.fresh_text();
        let payload = serde_json::json!({ "challenge": self.challenge_json() });
        Fanout::json(
            &self.topic,
            super::interview::CHALLENGE_UPDATED,
            &payload,
            self.members.values().map(|m| &m.pusher),
        )
        .send();
    }

    /// A `yjs` message for every Yjs member.
    pub(super) fn relay_all(&self, message: Vec<u8>) -> Fanout {
        Fanout::new(
            &self.topic,
            super::yjs::YJS,
            || crate::channels::message::Payload::Binary(bytes::Bytes::from(message)),
            self.members.values().filter(|m| m.yjs).map(|m| &m.pusher),
        )
    }
}

/// Updates that came before their turn, by number.
pub(super) type Waiting = BTreeMap<i64, (Option<String>, bool, Vec<u8>)>;

/// What the bus did to this node's rooms (for `/metrics`).
#[derive(Debug, Default)]
pub struct BusStats {
    /// Updates heard again (or already held): ignored.
    pub duplicates: AtomicU64,
    /// Updates read from the database because the bus lost them.
    pub fetched: AtomicU64,
}
