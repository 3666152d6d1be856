//! `NotesChannel`, the `notes:<id>` topic (CONTRACT §6): the interviewers'
//! private notes, a Yjs document like the answer's (roots `notes` or
//! `response`), synchronised with the same `yjs_sync` / `yjs` messages and
//! persisted the same way. Only interviewers join (the creator, or with
//! `{"key": <interviewer key>}`); anyone else gets `forbidden` and never a
//! byte of it. No presence, no text, no runs.

use serde_json::Value;

use super::channel::{join_reply, join_room, YJS, YJS_SYNC};
use super::doc;
use super::room::{RoomCmd, RoomHandle, Rooms};
use super::SocketUser;
use crate::channels::channel::{Channel, ChannelCtx, ExitReason, HandleResult, ReplyHandle};
use crate::channels::message::Payload;
use crate::store::docs::DocKind;

pub struct NotesChannel {
    room: RoomHandle,
    user: SocketUser,
}

impl Channel for NotesChannel {
    type State = Rooms;
    type Info = ();

    async fn join(
        rooms: &Rooms,
        params: Value,
        ctx: &mut ChannelCtx<()>,
    ) -> Result<(Self, Value), Value> {
        let (_, user, room, joined) = join_room(rooms, DocKind::Notes, &params, ctx).await?;
        Ok((NotesChannel { room, user }, join_reply(&joined)))
    }

    async fn handle_in(
        &mut self,
        event: String,
        payload: Payload,
        reply: ReplyHandle,
        ctx: &mut ChannelCtx<()>,
    ) -> HandleResult {
        if event != YJS && event != YJS_SYNC {
            return HandleResult::error("unknown event");
        }
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
        let cmd = RoomCmd::Yjs {
            member: ctx.sub_id,
            user_id: self.user.id.clone(),
            msg,
            reply: reply.clone(),
            received: tokio::time::Instant::now(),
        };
        if !self.room.send(cmd).await {
            reply.error("room unavailable");
        }
        HandleResult::NoReply
    }

    async fn terminate(&mut self, _reason: &ExitReason, ctx: &mut ChannelCtx<()>) {
        self.room.send(RoomCmd::Leave { member: ctx.sub_id }).await;
    }
}
