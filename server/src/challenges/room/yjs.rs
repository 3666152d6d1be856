//! The y-protocols side of a room (as y-websocket's server speaks them):
//! a sync step 1 gets the member what it lacks, then the room's own step 1
//! and the others' awareness; an update (or step 2) is checked against the
//! document, applied, persisted, then acknowledged and relayed; awareness
//! is checked, kept and relayed, never persisted.

use bytes::Bytes;
use serde_json::json;
use tokio::time::Instant;
use yrs::StateVector;

use super::task::Room;
use super::Rooms;
use crate::challenges::doc::{self, check, DocError, YMessage};
use crate::channels::channel::ReplyHandle;
use crate::channels::fanout::Fanout;
use crate::channels::message::{Payload, Status};
use crate::channels::pubsub::SubId;
use crate::store::docs::DocKind;
use crate::store::writer::TextChange;

/// The event carrying y-protocols messages, both ways.
pub const YJS: &str = "yjs";

/// Who sent a message and how to answer it.
pub(super) struct Edit {
    pub(super) member: SubId,
    pub(super) user_id: String,
    pub(super) reply: ReplyHandle,
    /// When the channel took the message (for `duet_edit_seconds`).
    pub(super) received: Instant,
}

/// Updates measured again only once this share of the cap was added since
/// the last measure (measuring encodes the whole document).
const MEASURE_AFTER: usize = 16;

impl Room {
    pub(super) async fn yjs(&mut self, edit: Edit, msg: YMessage, rooms: &Rooms) {
        match msg {
            YMessage::SyncStep1(sv) => self.sync_step1(&edit, &sv),
            YMessage::SyncStep2(update) => self.update(edit, update, true, rooms).await,
            YMessage::Update(update) => self.update(edit, update, false, rooms).await,
            YMessage::Awareness(update) => {
                match self
                    .awareness
                    .apply(self.owner(edit.member), update, &self.caps)
                {
                    Ok(accepted) if !accepted.is_empty() => {
                        let message = doc::awareness_message(accepted);
                        if let Some(bus) = &rooms.inner.config.bus {
                            bus.awareness(&self.id, self.kind, edit.member, &message);
                        }
                        self.relay(edit.member, message).send();
                        edit.reply.ok(json!({}));
                    }
                    Ok(_) => edit.reply.ok(json!({})),
                    Err(reason) => {
                        tracing::debug!(reason, "awareness refused");
                        edit.reply.error(reason);
                    }
                }
            }
            YMessage::QueryAwareness => {
                if let Some(m) = self.members.get(&edit.member) {
                    for states in self.awareness.messages(|_| true, &self.caps) {
                        m.pusher.push(YJS, Payload::Binary(states.into()));
                    }
                }
                edit.reply.ok(json!({}));
            }
        }
    }

    /// What the member lacks, then the room's own state vector (so the
    /// member sends what the room lacks), then the others' awareness.
    fn sync_step1(&mut self, edit: &Edit, sv: &StateVector) {
        let Some(m) = self.members.get_mut(&edit.member) else {
            return;
        };
        m.yjs = true;
        let step2 = doc::sync_step2(&doc::diff(&self.doc, sv));
        m.pusher.push(YJS, Payload::Binary(step2.into()));
        let step1 = doc::sync_step1(&doc::state_vector(&self.doc));
        m.pusher.push(YJS, Payload::Binary(step1.into()));
        let member = crate::channels::presence::Owner {
            node: self.node,
            sub: edit.member,
        };
        for states in self.awareness.messages(|owner| owner != member, &self.caps) {
            m.pusher.push(YJS, Payload::Binary(states.into()));
        }
        edit.reply.ok(json!({}));
    }

    /// `catching_up`: a sync step 2 (what a member has and the room lacks,
    /// after being offline): bounded by the document's cap, not an update's.
    async fn update(&mut self, edit: Edit, update: Vec<u8>, catching_up: bool, rooms: &Rooms) {
        let max = if catching_up {
            self.caps.max_doc_bytes
        } else {
            self.caps.max_update_bytes
        };
        if !self.may_edit(edit.member) {
            // Changes nothing and reaches nobody; the member's client must
            // show the room's text again (the web app syncs anew).
            return edit.reply.error("read only");
        }
        if update.len() > max {
            return edit.reply.error("update too large");
        }
        let shape = match check::update(&update, Some(&doc::state_vector(&self.doc))) {
            Ok(shape) => shape,
            Err(check::Refused::MissingDependencies) => {
                // An edit built on one the room refused or could not save:
                // the member must sync again (the room asks it to after a
                // failed commit; a client may also send a sync step 1).
                return edit.reply.error("out of sync");
            }
            Err(why) => {
                tracing::debug!(cause = %why, "update refused");
                return edit.reply.error("invalid update");
            }
        };
        if shape.is_empty() {
            return edit.reply.ok(json!({}));
        }
        // What it adds at most: its bytes, less the text it deletes.
        let growth = update
            .len()
            .saturating_sub(usize::try_from(shape.deleted).unwrap_or(usize::MAX));
        if !self.fits(growth) {
            return edit.reply.error("document too large");
        }
        let applied = match self.kind {
            DocKind::Answer => doc::apply_update_counted(&self.doc, &update),
            DocKind::Notes => doc::apply_update(&self.doc, &update).map(|()| (0, 0)),
        };
        let (inserted, deleted) = match applied {
            Ok(counts) => counts,
            Err(err) => {
                tracing::debug!(cause = %err, "update refused");
                self.broken |= err == DocError::Panicked;
                return edit.reply.error("invalid update");
            }
        };
        if !self.grew(update.len(), growth < update.len()) {
            // Its deletions were not what they claimed (text deleted
            // already): the document is over its cap. Undone by a reload.
            self.broken = true;
            return edit.reply.error("document too large");
        }
        if self.kind == DocKind::Answer {
            // The text is computed later, at most every NOTICE_EVERY
            // (`refresh`), or when a read asks (`Rooms::settle`).
            self.text_stale = true;
            self.edited_at = time::OffsetDateTime::now_utc();
            self.notice_user = Some(edit.user_id.clone());
            if self.notice_at.is_none() {
                let due = self.last_notice + super::text::NOTICE_EVERY;
                self.notice_at = Some(due.max(Instant::now()));
            }
        }
        let relay = self.relay(edit.member, doc::sync_update(&update));
        let ok = edit.reply.prepare(Status::Ok, Payload::Json(json!({})));
        let latency = rooms.inner.edit_latency.clone();
        let (reply, received) = (edit.reply, edit.received);
        let unsaved = self.unsaved_reason();
        let done = Box::new(
            move |result: crate::store::Result<crate::store::writer::Written>| match result {
                Ok(_) => {
                    latency.observe(received.elapsed().as_secs_f64());
                    ok.send();
                    relay.send();
                }
                Err(_) => reply.error(unsaved),
            },
        );
        let change = TextChange { inserted, deleted };
        self.persist(Some(edit.user_id), false, update, change, done, rooms)
            .await;
    }

    /// Whether `adding` more bytes keep the document under its cap. The
    /// estimate only grows between measures; it is measured again (the
    /// whole state encoded) when it says no and enough was added since.
    pub(super) fn fits(&mut self, adding: usize) -> bool {
        let cap = self.caps.max_doc_bytes;
        if self.doc_bytes + adding <= cap {
            return true;
        }
        if self.unmeasured >= cap / MEASURE_AFTER {
            self.doc_bytes = doc::encode_state(&self.doc).len();
            self.unmeasured = 0;
        }
        self.doc_bytes + adding <= cap
    }

    /// After an edit of `by` bytes: the estimate grows by all of it. With
    /// `verify` (the edit was let in on what it deletes), an estimate over
    /// the cap is checked against the document's real size; false when the
    /// document really is over its cap.
    pub(super) fn grew(&mut self, by: usize, verify: bool) -> bool {
        self.doc_bytes += by;
        self.unmeasured += by;
        if verify && self.doc_bytes > self.caps.max_doc_bytes {
            self.doc_bytes = doc::encode_state(&self.doc).len();
            self.unmeasured = 0;
        }
        self.doc_bytes <= self.caps.max_doc_bytes || !verify
    }

    /// A `yjs` message for every Yjs member but `from`, sent when
    /// [`Fanout::send`] is called (for an edit: once it is durable).
    pub(super) fn relay(&self, from: SubId, message: Vec<u8>) -> Fanout {
        Fanout::new(
            &self.topic,
            YJS,
            || Payload::Binary(Bytes::from(message)),
            self.members
                .iter()
                .filter(|(id, m)| **id != from && m.yjs)
                .map(|(_, m)| &m.pusher),
        )
    }

    /// A member left: its awareness states go, and the others are told (as
    /// y-websocket's server does).
    pub(super) fn remove_awareness_of(&mut self, member: SubId, rooms: &Rooms) {
        let gone = self.awareness.remove_member(self.owner(member));
        if !gone.is_empty() {
            let message = doc::awareness_message(gone);
            if let Some(bus) = &rooms.inner.config.bus {
                bus.awareness(&self.id, self.kind, member, &message);
            }
            self.relay(member, message).send();
        }
    }

    /// The owner of a local member's awareness states.
    pub(super) fn owner(&self, member: SubId) -> crate::channels::presence::Owner {
        crate::channels::presence::Owner {
            node: self.node,
            sub: member,
        }
    }
}
