//! The answer as text: `response:update` (a full text from a client
//! without Yjs, turned into the minimal Yjs edit), `response:updated`
//! notices, and the `response` column, which follows the document behind
//! the edits it reflects (see `challenges::read` for the rule reads keep).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::time::Instant;

use super::task::Room;
use super::yjs::YJS;
use super::Rooms;
use crate::challenges::doc::{self, DocError};
use crate::challenges::model::{Challenge, WithResponse};
use crate::channels::channel::ReplyHandle;
use crate::channels::fanout::Fanout;
use crate::channels::message::{Payload, Status};
use crate::store::docs::DocKind;
use crate::store::writer::{Done, Stamped, TextChange, WriteOp};

/// Clients that only speak `response:update` hear about Yjs edits at most
/// this often per room (and always of the final state).
pub(super) const NOTICE_EVERY: Duration = Duration::from_millis(100);

/// How often a busy room hands its text to the writer when no member needs
/// it sooner (members without Yjs get it with every notice): computing it
/// walks the whole document, and reads ask for it anyway ([`Rooms::settle`]).
const PUSH_TEXT_EVERY: Duration = Duration::from_secs(2);

pub const RESPONSE_UPDATED: &str = "response:updated";

impl Room {
    pub(super) fn challenge_json(&self) -> Challenge {
        Challenge {
            response: self.text.to_string(),
            ..self.challenge.clone()
        }
    }

    pub(super) async fn replace_text(
        &mut self,
        user_id: String,
        text: String,
        reply: ReplyHandle,
        received: Instant,
        rooms: &Rooms,
    ) {
        self.fresh_text();
        if !self.fits(doc::edit_growth(&self.text, &text)) {
            return reply.error("document too large");
        }
        // Yjs members see the edit itself (and may be typing in the same
        // word): the exact edit, as the contract says.
        let cut = if self.members.values().any(|m| m.yjs) {
            doc::Cut::Exact
        } else {
            doc::Cut::Words
        };
        match doc::replace_text_from(&self.doc, &self.text, &text, cut) {
            Ok(Some(update)) => {
                let old_text = self.text.clone();
                if !self.grew(update.len(), true) {
                    // Over the cap after all: undone by a reload.
                    self.broken = true;
                    return reply.error("document too large");
                }
                // The document now reads exactly `text`.
                self.text = text.into();
                self.challenge.updated_at = crate::store::timestamp();
                // Every Yjs member gets the edit, the sender too if it
                // speaks Yjs: its own document does not have it yet.
                let message = doc::sync_update(&update);
                let relay = Fanout::new(
                    &self.topic,
                    YJS,
                    || Payload::Binary(Bytes::from(message)),
                    self.members.values().filter(|m| m.yjs).map(|m| &m.pusher),
                );
                // Encoded here, in the room's task, so the completion of
                // the commit only queues bytes.
                let notice = self.notice(&user_id, false);
                let ok = reply.prepare(Status::Ok, Payload::Json(json!({})));
                let latency = rooms.inner.edit_latency.clone();
                let unsaved = self.unsaved_reason();
                let done = Box::new(
                    move |result: crate::store::Result<crate::store::writer::Written>| match result
                    {
                        Ok(_) => {
                            latency.observe(received.elapsed().as_secs_f64());
                            ok.send();
                            notice.send();
                            relay.send();
                        }
                        Err(_) => reply.error(unsaved),
                    },
                );
                let (inserted, deleted) = doc::edit_counts(&old_text, &self.text);
                let change = TextChange { inserted, deleted };
                self.persist(Some(user_id), true, update, change, done, rooms)
                    .await;
            }
            Ok(None) => {
                // Nothing to write, but the text may still be on its way to
                // the disk: answer once it is there, in order with the
                // notices of the edits before.
                let ok = reply.prepare(Status::Ok, Payload::Json(json!({})));
                let notice = self.notice(&user_id, false);
                let unsaved = self.unsaved_reason();
                let done: Done = Box::new(move |result| match result {
                    Ok(_) => {
                        ok.send();
                        notice.send();
                    }
                    Err(_) => reply.error(unsaved),
                });
                self.after_queued_writes(done, rooms).await;
            }
            Err(err) => {
                self.broken |= err == DocError::Panicked;
                tracing::warn!(cause = %err, "text edit failed");
                reply.error(self.unsaved_reason());
            }
        }
    }

    /// Queues an update (and a snapshot every `snapshot_every` updates).
    /// `done` is told once it is committed; a failed commit also has the
    /// room reload its document (see the module `room`).
    pub(super) async fn persist(
        &mut self,
        user_id: Option<String>,
        notice: bool,
        update: Vec<u8>,
        change: TextChange,
        done: Done,
        rooms: &Rooms,
    ) {
        let answer = self.kind == DocKind::Answer;
        let text = (answer && !self.text_stale).then(|| self.stamped());
        if text.is_some() {
            self.last_push = Instant::now();
        }
        let (signals, me) = (self.signals.clone(), self.me.clone());
        // Other nodes hear of it once it is committed, with its number.
        let publish = rooms.inner.config.bus.clone().map(|bus| {
            let (id, kind, user, update) =
                (self.id.clone(), self.kind, user_id.clone(), update.clone());
            move |seq: i64| bus.update(&id, kind, seq, user.as_deref(), notice, &update)
        });
        let done: Done = Box::new(move |result| {
            if let Ok(written) = &result {
                signals.committed(written.seq);
                if let Some(publish) = publish {
                    publish(written.seq);
                }
            }
            if let Err(err) = &result {
                if err.lost_a_write() {
                    signals
                        .reload
                        .store(true, std::sync::atomic::Ordering::Release);
                    let _ = me.try_send(Box::new(super::RoomCmd::Wake));
                }
            }
            done(result)
        });
        let op = WriteOp::Append {
            challenge_id: self.id.clone(),
            doc: self.kind,
            user_id,
            update,
            change,
            text,
            done,
        };
        if let Err(err) = rooms.writer().send(op).await {
            tracing::warn!(cause = %err, "edit not queued");
            return;
        }
        self.since_snapshot += 1;
        if self.since_snapshot >= rooms.inner.config.snapshot_every.max(1) {
            self.since_snapshot = 0;
            let state = doc::encode_state(&self.doc);
            self.doc_bytes = state.len();
            self.unmeasured = 0;
            let op = WriteOp::Snapshot {
                challenge_id: self.id.clone(),
                doc: self.kind,
                state,
                covers: self.covers(),
            };
            let _ = rooms.writer().send(op).await;
        }
    }

    /// `response:updated` with the room's text, after an edit by
    /// `user_id`, for every member (or, with `plain_only`, the members
    /// without Yjs). Serialized straight from the room's state.
    pub(super) fn notice(&self, user_id: &str, plain_only: bool) -> Fanout {
        #[derive(serde::Serialize)]
        struct Notice<'a> {
            challenge: WithResponse<'a>,
            user_id: &'a str,
        }
        let notice = Notice {
            challenge: self.challenge.with_response(&self.text),
            user_id,
        };
        let to = self
            .members
            .values()
            .filter(|m| !(plain_only && m.yjs))
            .map(|m| &m.pusher);
        Fanout::json(&self.topic, RESPONSE_UPDATED, &notice, to)
    }

    /// The text, and when it was last edited, for `challenge`.
    pub(super) fn stamped(&self) -> Stamped {
        Stamped {
            text: self.text.clone(),
            at: self.challenge.updated_at.as_str().into(),
        }
    }

    /// Computes the text if a Yjs edit made it stale; true if it changed.
    pub(super) fn fresh_text(&mut self) -> bool {
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
    pub(super) async fn refresh(&mut self, rooms: &Rooms, all: bool) {
        if self.kind != DocKind::Answer {
            return;
        }
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
                let notice = self.notice(&user_id, true);
                let done: Done = Box::new(move |result| {
                    if result.is_ok() {
                        notice.send()
                    }
                });
                self.after_queued_writes(done, rooms).await;
            }
            _ if self.response_dirty => self.push_text(None, rooms).await,
            _ => {}
        }
    }

    /// Calls `done` once every write queued so far is committed, the
    /// room's text too if it changed since it was last queued.
    pub(super) async fn after_queued_writes(&mut self, done: Done, rooms: &Rooms) {
        if self.response_dirty && self.kind == DocKind::Answer {
            self.push_text(Some(done), rooms).await;
        } else {
            let _ = rooms.writer().send(WriteOp::Barrier { done }).await;
        }
    }

    /// Queues the text for `challenge.response`, behind the edits it reflects.
    pub(super) async fn push_text(&mut self, done: Option<Done>, rooms: &Rooms) {
        self.response_dirty = false;
        self.last_push = Instant::now();
        let op = WriteOp::Response {
            challenge_id: self.id.clone(),
            text: self.stamped(),
            covers: if self
                .signals
                .numbered
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                self.covers()
            } else {
                0
            },
            done,
        };
        let _ = rooms.writer().send(op).await;
    }
}
