//! `ChallengeChannel`, the `challenges:<id>` topic of CONTRACT §3: join
//! replies with the challenge, tracks the member in Presence, speaks the
//! y-protocols sync over binary `yjs_sync` / `yjs` payloads, turns
//! `response:update` into Yjs edits, and keeps `typing` in the member's
//! presence meta (true on an edit, false on request or 3 s after the last
//! edit; a presence update is sent only when `typing` changes). The
//! `run:*` events go to the room's run board ([`super::run`]).
//!
//! Interviews (CONTRACT §6): a join with `{"key": <interviewer key>}`, or
//! by the challenge's creator, is an interviewer's; any other key is
//! refused (`forbidden`); everyone else is a candidate. The role is in the
//! join reply and the presence meta. Edits the challenge's state does not
//! allow get `{"reason": "read only"}`; `paste`, `away` and `back` report a
//! member's page (recorded, shown live to the interviewers).

use std::time::Duration;

use tokio::time::Instant;

use serde_json::{json, Map, Value};

use super::doc::{self, YMessage};
use super::model::{color_for, Role, RESPONSE_MAX};
pub use super::room::YJS;
use super::room::{Joined, RoomCmd, RoomError, RoomHandle, Rooms};
use super::run::{self, Runs};
use super::SocketUser;
use crate::channels::channel::{Channel, ChannelCtx, ExitReason, HandleResult, ReplyHandle};
use crate::channels::message::Payload;
use crate::channels::pubsub::SubId;
use crate::store::docs::DocKind;

pub const TOPIC_PREFIX: &str = "challenges:";
/// The interviewers' private notes of a challenge (CONTRACT §6).
pub const NOTES_PREFIX: &str = "notes:";
/// A member's page reports a paste (`{"chars"}`), leaving it, coming back.
pub const PASTE: &str = "paste";
pub const AWAY: &str = "away";
pub const BACK: &str = "back";
pub const RESPONSE_UPDATE: &str = "response:update";
pub const YJS_SYNC: &str = "yjs_sync";
pub const TYPING_REMOVE: &str = "current_participant_typing:remove";
/// `typing` falls back to false after this long without an edit.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `typing: true` may wait to be merged with the room's other
/// presence changes. Everyone in a room who starts typing within it is told
/// in one diff: when four people start together that is 4 messages instead
/// of 16. With Presence's 10 ms, the moment 1 000 rooms of 4 began typing at
/// 20 edits/s per room, the typing diffs doubled the messages sent for
/// 200 ms and set the p99 of the edits' deliveries (145 ms, against 25 ms
/// over the rest of the run). An indicator 200 ms late is not noticed;
/// `typing: false` still goes out at once.
const TYPING_ON_WINDOW: Duration = Duration::from_millis(200);

/// What every join of `challenges:*` shares: the rooms and their run boards.
#[derive(Clone)]
pub struct ChallengeState {
    pub rooms: Rooms,
    pub runs: Runs,
}

pub struct ChallengeChannel {
    room: RoomHandle,
    runs: Runs,
    challenge_id: String,
    language: String,
    user: SocketUser,
    role: Role,
    color: &'static str,
    typing: bool,
    last_edit: Instant,
    typing_check_armed: bool,
}

/// Joins the room of the topic's challenge with the join's `key`, as the
/// socket's user: the challenge id, the user, the room and what it said.
pub(crate) async fn join_room<I: Send + 'static>(
    rooms: &Rooms,
    doc: DocKind,
    params: &Value,
    ctx: &mut ChannelCtx<I>,
) -> Result<(String, SocketUser, RoomHandle, Joined), Value> {
    let Some(user) = ctx.assigns::<SocketUser>().cloned() else {
        return Err(json!({ "reason": "unauthorized" }));
    };
    let prefix = match doc {
        DocKind::Answer => TOPIC_PREFIX,
        DocKind::Notes => NOTES_PREFIX,
    };
    let id = ctx
        .topic
        .strip_prefix(prefix)
        .unwrap_or_default()
        .to_owned();
    if id.is_empty() {
        return Err(json!({ "reason": "not found" }));
    }
    let key = params.get("key").and_then(Value::as_str);
    match rooms
        .join(&id, doc, ctx.sub_id, &user, key, ctx.pusher())
        .await
    {
        Ok((room, joined)) => Ok((id, user, room, joined)),
        Err(RoomError::NotFound) => Err(json!({ "reason": "not found" })),
        Err(RoomError::Forbidden) => Err(json!({ "reason": "forbidden" })),
        Err(RoomError::Unavailable) => Err(json!({ "reason": "room unavailable, try again" })),
    }
}

/// The join reply: `{"challenge"}` (CONTRACT §3) for a candidate; an
/// interviewer's also says `"role": "interviewer"` and gives the
/// interviewer key (to share the interviewer link). Everyone's role is in
/// their presence meta.
pub(crate) fn join_reply(joined: &Joined) -> Value {
    let mut reply = json!({ "challenge": joined.challenge });
    if joined.role == Role::Interviewer {
        reply["role"] = json!(joined.role.as_str());
        reply["interviewer_key"] = json!(joined.challenge.interviewer_key);
    }
    reply
}

pub enum Info {
    TypingCheck,
    /// The deadline of run `.0`, which this member started.
    RunDeadline(String),
}

impl ChallengeChannel {
    fn set_typing(&mut self, typing: bool, ctx: &mut ChannelCtx<Info>) {
        if typing {
            self.last_edit = Instant::now();
            if !self.typing_check_armed {
                self.typing_check_armed = true;
                ctx.send_after(TYPING_TIMEOUT, Info::TypingCheck);
            }
        }
        if self.typing != typing {
            self.typing = typing;
            let window = if typing {
                TYPING_ON_WINDOW
            } else {
                Duration::ZERO
            };
            ctx.update_presence(&self.user.id, window, |meta| {
                meta.insert("typing".into(), Value::Bool(typing));
            });
        }
    }

    /// `paste` `{"chars"}`, `away`, `back`: to the room (timeline, and
    /// live to the interviewers).
    async fn activity(&self, member: SubId, event: &str, payload: &Payload) -> HandleResult {
        let (kind, data) = match event {
            PASTE => {
                let chars = payload
                    .as_json()
                    .and_then(|p| p.get("chars"))
                    .and_then(Value::as_u64);
                let Some(chars) = chars else {
                    return HandleResult::error("chars must be a number");
                };
                (PASTE, json!({ "chars": chars }))
            }
            AWAY => (AWAY, json!({})),
            _ => (BACK, json!({})),
        };
        let cmd = RoomCmd::Activity { member, kind, data };
        if self.room.send(cmd).await {
            HandleResult::ok(json!({}))
        } else {
            HandleResult::error("room unavailable")
        }
    }

    async fn to_room(&self, cmd: RoomCmd, reply: &ReplyHandle) -> HandleResult {
        if self.room.send(cmd).await {
            HandleResult::NoReply // the room replies once the edit is durable
        } else {
            reply.error("room unavailable");
            HandleResult::NoReply
        }
    }
}

impl Channel for ChallengeChannel {
    type State = ChallengeState;
    type Info = Info;

    async fn join(
        state: &ChallengeState,
        params: Value,
        ctx: &mut ChannelCtx<Info>,
    ) -> Result<(Self, Value), Value> {
        let (id, user, room, joined) =
            join_room(&state.rooms, DocKind::Answer, &params, ctx).await?;
        let reply = join_reply(&joined);
        let channel = ChallengeChannel {
            room,
            runs: state.runs.clone(),
            challenge_id: id,
            language: joined.challenge.language,
            color: color_for(&user.id),
            user,
            role: joined.role,
            typing: false,
            last_edit: Instant::now(),
            typing_check_armed: false,
        };
        Ok((channel, reply))
    }

    async fn after_join(&mut self, ctx: &mut ChannelCtx<Info>) {
        let mut meta = Map::new();
        meta.insert("user_id".into(), json!(self.user.id));
        meta.insert("first_name".into(), json!(self.user.first_name));
        meta.insert("color".into(), json!(self.color));
        meta.insert("role".into(), json!(self.role.as_str()));
        meta.insert("typing".into(), json!(false));
        meta.insert("online_at".into(), json!(crate::auth::now().to_string()));
        ctx.track(&self.user.id, meta);
        ctx.push_presence_state();
        run::enter(&self.runs, &self.challenge_id, ctx);
    }

    async fn handle_in(
        &mut self,
        event: String,
        payload: Payload,
        reply: ReplyHandle,
        ctx: &mut ChannelCtx<Info>,
    ) -> HandleResult {
        let member = ctx.sub_id;
        let received = Instant::now();
        match event.as_str() {
            RESPONSE_UPDATE => {
                let Some(text) = payload
                    .as_json()
                    .and_then(|p| p.get("response"))
                    .and_then(Value::as_str)
                else {
                    return HandleResult::error("response must be a string");
                };
                if text.chars().count() > RESPONSE_MAX {
                    return HandleResult::error("response too long");
                }
                if !self.room.flags().may_edit(self.role) {
                    return HandleResult::error("read only");
                }
                self.set_typing(true, ctx);
                let cmd = RoomCmd::ReplaceText {
                    member,
                    user_id: self.user.id.clone(),
                    text: text.to_owned(),
                    reply: reply.clone(),
                    received,
                };
                self.to_room(cmd, &reply).await
            }
            YJS_SYNC | YJS => {
                let Payload::Binary(bytes) = payload else {
                    return HandleResult::error("invalid update");
                };
                let msg = match doc::decode_message(&bytes) {
                    Ok(msg) => msg,
                    Err(err) => {
                        tracing::debug!(cause = %err, "invalid yjs message");
                        return HandleResult::error("invalid update");
                    }
                };
                let is_edit = match &msg {
                    YMessage::Update(u) | YMessage::SyncStep2(u) => u.as_slice() != [0, 0],
                    _ => false,
                };
                if is_edit {
                    if !self.room.flags().may_edit(self.role) {
                        return HandleResult::error("read only");
                    }
                    self.set_typing(true, ctx);
                }
                let cmd = RoomCmd::Yjs {
                    member,
                    user_id: self.user.id.clone(),
                    msg,
                    reply: reply.clone(),
                    received,
                };
                self.to_room(cmd, &reply).await
            }
            TYPING_REMOVE => {
                self.set_typing(false, ctx);
                HandleResult::ok(json!({}))
            }
            PASTE | AWAY | BACK => self.activity(member, &event, &payload).await,
            run::RUN_START if self.room.flags().ended() => HandleResult::error("interview ended"),
            run::RUN_START if !self.room.flags().run_enabled() => HandleResult::error("run is off"),
            e if run::is_run_event(e) => {
                let (runs, room, user) = (&self.runs, &self.challenge_id, &self.user);
                run::handle_in(runs, room, user, &self.language, e, &payload, ctx)
            }
            _ => HandleResult::error("unknown event"),
        }
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut ChannelCtx<Info>) -> Option<String> {
        match info {
            Info::TypingCheck => {
                self.typing_check_armed = false;
                if self.typing {
                    let idle = self.last_edit.elapsed();
                    if idle >= TYPING_TIMEOUT {
                        self.set_typing(false, ctx);
                    } else {
                        self.typing_check_armed = true;
                        ctx.send_after(TYPING_TIMEOUT - idle, Info::TypingCheck);
                    }
                }
            }
            Info::RunDeadline(id) => run::handle_deadline(&self.runs, &self.challenge_id, id, ctx),
        }
        None
    }

    async fn terminate(&mut self, _reason: &ExitReason, ctx: &mut ChannelCtx<Info>) {
        run::leave(&self.runs, &self.challenge_id, ctx);
        self.room.send(RoomCmd::Leave { member: ctx.sub_id }).await;
    }
}
