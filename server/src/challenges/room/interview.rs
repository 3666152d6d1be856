//! The interview side of a room (CONTRACT §6, §7): who joins as what, who
//! may edit, the interviewers' controls (lock, unlock, end, Run on or off)
//! and what the room records on the timeline (joins, leaves, pastes, away
//! and back) or shows only to the interviewers.

use serde_json::{json, Value};

use super::task::{Member, Room};
use super::{Joined, RoomError, Rooms};
use crate::challenges::model::{Challenge, Role};
use crate::challenges::SocketUser;
use crate::channels::channel::Pusher;
use crate::channels::fanout::Fanout;
use crate::channels::pubsub::SubId;
use crate::store::challenges::Control;
use crate::store::docs::DocKind;
use crate::store::writer::WriteOp;

/// Broadcast to the members when an interviewer changes the interview.
pub const CHALLENGE_UPDATED: &str = "challenge:updated";
/// Pushed to the interviewers when a member pastes or leaves the page.
pub const ACTIVITY: &str = "activity";

impl Room {
    /// Adds a member with the role its identity and key give it.
    pub(super) async fn join(
        &mut self,
        member: SubId,
        user: SocketUser,
        key: Option<&str>,
        pusher: Pusher,
        rooms: &Rooms,
    ) -> Result<Joined, RoomError> {
        let role = self
            .challenge
            .role_of(&user.id, key)
            .map_err(|_| RoomError::Forbidden)?;
        if self.kind == DocKind::Notes && role != Role::Interviewer {
            return Err(RoomError::Forbidden);
        }
        self.record(Some(&user), "join", json!({ "role": role.as_str() }), rooms)
            .await;
        self.members.insert(
            member,
            Member {
                pusher,
                yjs: false,
                role,
                user,
            },
        );
        self.fresh_text();
        Ok(Joined {
            challenge: self.challenge_json(),
            role,
        })
    }

    /// Whether `member` may edit this room's document now: the answer as
    /// the challenge's state says; the notes always (interviewers only
    /// join them).
    pub(super) fn may_edit(&self, member: SubId) -> bool {
        match (self.kind, self.members.get(&member)) {
            (DocKind::Notes, Some(_)) => true,
            (DocKind::Answer, Some(m)) => self.challenge.may_edit(m.role),
            (_, None) => false,
        }
    }

    /// Applies an interviewer's control: the database first, then the
    /// room's state, the timeline, and every member is told.
    pub(super) async fn control(
        &mut self,
        control: Control,
        actor: &SocketUser,
        rooms: &Rooms,
    ) -> Result<Challenge, RoomError> {
        let was_ended = self.challenge.is_ended();
        let now = match rooms.store().control_challenge(&self.id, control).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(RoomError::NotFound),
            Err(err) => {
                tracing::warn!(cause = %err, ?control, "control not applied");
                return Err(RoomError::Unavailable);
            }
        };
        self.challenge.status = now.status;
        self.challenge.ended_at = now.ended_at;
        self.challenge.locked = now.locked;
        self.challenge.run_enabled = now.run_enabled;
        self.flags.set(&self.challenge);
        // An interview ends once: a repeated `end` is not recorded again.
        if let Some(kind) = control.event().filter(|_| !was_ended) {
            self.record(Some(actor), kind, json!({}), rooms).await;
        }
        if let Some(bus) = &rooms.inner.config.bus {
            bus.interview(&self.id, &super::InterviewState::of(&self.challenge));
        }
        self.fresh_text();
        let challenge = self.challenge_json();
        let payload = json!({ "challenge": challenge });
        Fanout::json(
            &self.topic,
            CHALLENGE_UPDATED,
            &payload,
            self.members.values().map(|m| &m.pusher),
        )
        .send();
        Ok(challenge)
    }

    /// A member's integrity signal: on the timeline, and live to the
    /// interviewers (the member's page told them it is recorded).
    pub(super) async fn activity(
        &mut self,
        member: SubId,
        kind: &'static str,
        data: Value,
        rooms: &Rooms,
    ) {
        let Some(user) = self.members.get(&member).map(|m| m.user.clone()) else {
            return;
        };
        self.record(Some(&user), kind, data.clone(), rooms).await;
        let mut shown = json!({
            "user_id": user.id,
            "first_name": user.first_name,
            "kind": kind,
            "at": crate::store::timestamp(),
        });
        if let (Some(shown), Some(data)) = (shown.as_object_mut(), data.as_object()) {
            shown.extend(data.clone());
        }
        if let Some(bus) = &rooms.inner.config.bus {
            bus.activity(&self.id, &shown);
        }
        let interviewers = self
            .members
            .values()
            .filter(|m| m.role == Role::Interviewer)
            .map(|m| &m.pusher);
        Fanout::json(&self.topic, ACTIVITY, &shown, interviewers).send();
    }

    /// Queues a timeline event of the answer's room (the notes' room
    /// records nothing: its members are the interviewers). Once the
    /// interview has ended nothing more is part of it: only its `end`.
    pub(super) async fn record(
        &self,
        user: Option<&SocketUser>,
        kind: &'static str,
        data: Value,
        rooms: &Rooms,
    ) {
        if self.kind != DocKind::Answer
            || (self.challenge.is_ended() && Some(kind) != Control::End.event())
        {
            return;
        }
        let op = WriteOp::Event {
            challenge_id: self.id.clone(),
            user_id: user.map(|u| u.id.clone()),
            first_name: user.map(|u| u.first_name.clone()).unwrap_or_default(),
            kind,
            data: data.to_string(),
        };
        if let Err(err) = rooms.writer().send(op).await {
            tracing::warn!(cause = %err, kind, "timeline event not recorded");
        }
    }
}
