//! Running the answer (CONTRACT §8): the per-room run board. Programs run in
//! one member's browser (the web app's sandboxed runner frame); the server
//! only referees: one run per room at a time, only the member who started a
//! run may send its output and its exit, the output is cut at
//! [`OUTPUT_CAP`] bytes whatever the runner says, and a run whose runner
//! leaves or stops answering is ended by the server. Members see the run as
//! `run:started`, `run:status`, `run:output` and `run:exited`; a member who
//! joins gets `run:state`, the current or last run with its output so far.
//!
//! Every broadcast of a board change is made while the board is locked (the
//! callbacks only queue frames), so a joiner's `run:state` and the relays
//! around it never overlap or leave a gap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::channel::Info;
use super::model::RESPONSE_MAX;
use super::SocketUser;
use crate::channels::channel::{ChannelCtx, HandleResult};
use crate::channels::message::Payload;
use crate::channels::pubsub::SubId;

pub const RUN_START: &str = "run:start";
pub const RUN_STATUS: &str = "run:status";
pub const RUN_OUTPUT: &str = "run:output";
pub const RUN_EXIT: &str = "run:exit";
pub const RUN_STARTED: &str = "run:started";
pub const RUN_EXITED: &str = "run:exited";
pub const RUN_STATE: &str = "run:state";

/// Output one run shows, stdout and stderr together, in UTF-8 bytes
/// (CONTRACT §8: cut at 64 KiB with a line saying so).
pub const OUTPUT_CAP: usize = 64 * 1024;
/// Memory the runner gives a program, in MiB: enough for interview-sized
/// data in Python (whose interpreter alone takes about 30 MiB), small enough
/// that a runaway program cannot take a laptop's tab down.
pub const MEMORY_MB: u64 = 256;
/// Time a runner may take to load its runtime before the program starts:
/// Python's first load fetches and compiles about 6 MB (3.5 MB gzipped),
/// which on a slow connection and laptop takes tens of seconds. The wall
/// limit counts from the `running` status, not from here.
pub const LOAD_ALLOWANCE: Duration = Duration::from_secs(60);
/// Time beyond the wall limit for the runner's `run:exit` to arrive: it
/// stops the program at the limit, then its report crosses a socket.
pub const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Longest stdin a run takes, in characters (a test case, not a data set).
pub const STDIN_MAX: usize = 100_000;
/// `run:exited` reasons when the server ends a run itself.
pub const RUNNER_LEFT: &str = "the runner left";
pub const STOPPED_ANSWERING: &str = "the runner stopped answering";
/// The languages the web app's runner can run.
pub const RUNNABLE: &[&str] = &["python", "javascript"];

/// What a client did wrong, as the `reason` of an error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("already running")]
    AlreadyRunning {
        run_id: String,
        user_id: String,
        first_name: String,
    },
    #[error("language not supported")]
    Unsupported,
    #[error("code too long")]
    CodeTooLong,
    #[error("stdin too long")]
    StdinTooLong,
    #[error("no such run")]
    NoSuchRun,
    #[error("not the runner")]
    NotRunner,
    #[error("invalid {0}")]
    Invalid(&'static str),
}

impl RunError {
    /// The error reply's payload: `{"reason"}`, plus who runs for "already running".
    pub fn reply(&self) -> Value {
        match self {
            RunError::AlreadyRunning {
                run_id,
                user_id,
                first_name,
            } => json!({
                "reason": self.to_string(),
                "run_id": run_id,
                "user_id": user_id,
                "first_name": first_name,
            }),
            _ => json!({ "reason": self.to_string() }),
        }
    }
}

/// The limits a run gets, told to the runner in the `run:start` reply.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub wall: Duration,
}

impl RunLimits {
    fn json(&self) -> Value {
        json!({
            "wall_ms": self.wall.as_millis() as u64,
            "output_bytes": OUTPUT_CAP,
            "memory_mb": MEMORY_MB,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Loading,
    Running,
    Exited,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Running => "running",
            Phase::Exited => "exited",
        }
    }
}

/// One run: who started it, its output so far, how it ended.
#[derive(Debug)]
struct Run {
    id: String,
    runner: SubId,
    user_id: String,
    first_name: String,
    language: String,
    started_at: String,
    started: Instant,
    phase: Phase,
    /// The server ends the run if the runner has not reported its exit by then.
    deadline: Instant,
    /// Stdout and stderr in arrival order, consecutive pieces of one stream merged.
    output: Vec<(&'static str, String)>,
    bytes: usize,
    truncated: bool,
    exited: Option<Value>,
}

impl Run {
    fn started_json(&self, limits: &RunLimits) -> Value {
        json!({
            "run_id": self.id,
            "user_id": self.user_id,
            "first_name": self.first_name,
            "language": self.language,
            "started_at": self.started_at,
            "limits": limits.json(),
        })
    }

    fn state_json(&self, limits: &RunLimits) -> Value {
        let mut v = self.started_json(limits);
        let output: Vec<Value> = self
            .output
            .iter()
            .map(|(stream, data)| json!({ "stream": stream, "data": data }))
            .collect();
        if let Value::Object(m) = &mut v {
            m.insert("phase".into(), json!(self.phase.as_str()));
            m.insert("output".into(), Value::Array(output));
            m.insert("truncated".into(), json!(self.truncated));
            m.insert("exit".into(), self.exited.clone().unwrap_or(Value::Null));
        }
        v
    }

    /// Keeps what fits under the cap; returns the part kept.
    fn append(&mut self, stream: &'static str, data: &str) -> String {
        let room = OUTPUT_CAP.saturating_sub(self.bytes);
        let mut kept = data;
        if data.len() > room {
            let mut cut = room;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            kept = &data[..cut];
            self.truncated = true;
        }
        self.bytes += kept.len();
        match self.output.last_mut() {
            Some((s, text)) if *s == stream => text.push_str(kept),
            _ if kept.is_empty() => {}
            _ => self.output.push((stream, kept.to_owned())),
        }
        kept.to_owned()
    }

    /// Ends the run: the `run:exited` payload, kept for late joiners.
    fn end(&mut self, exit: Option<i64>, flags: ExitFlags, now: Instant) -> Value {
        let elapsed = now.saturating_duration_since(self.started).as_millis() as u64;
        let payload = json!({
            "run_id": self.id,
            "exit": exit,
            "wall_ms": flags.wall_ms.map_or(elapsed, |ms| ms.min(elapsed)),
            "timed_out": flags.timed_out,
            "out_of_memory": flags.out_of_memory,
            "truncated": self.truncated || flags.truncated,
            "reason": flags.reason,
        });
        self.phase = Phase::Exited;
        self.exited = Some(payload.clone());
        payload
    }
}

#[derive(Debug, Default)]
struct ExitFlags {
    wall_ms: Option<u64>,
    timed_out: bool,
    out_of_memory: bool,
    truncated: bool,
    reason: Option<&'static str>,
}

/// A room's board: how many members it has, and its current or last run.
#[derive(Debug, Default)]
struct Board {
    members: usize,
    run: Option<Run>,
}

impl Board {
    /// The run `id` while it is going on, if `sub` started it.
    fn live_run(&mut self, id: &str, sub: SubId) -> Result<&mut Run, RunError> {
        let run = self
            .run
            .as_mut()
            .filter(|r| r.id == id && r.phase != Phase::Exited)
            .ok_or(RunError::NoSuchRun)?;
        if run.runner != sub {
            return Err(RunError::NotRunner);
        }
        Ok(run)
    }
}

/// Who asks: the member (channel) and the person behind it.
pub struct Member<'a> {
    pub sub: SubId,
    pub user: &'a SocketUser,
}

/// Sends an event to the room's members (every one, or every one but the sender).
pub type Notify<'a> = &'a mut dyn FnMut(&str, Value);

/// Told of every run that ended: the room, the runner, and the run as the
/// timeline keeps it (CONTRACT §7 `run`: its exit, and its output for
/// playback). Called with the board locked: it must only queue.
pub type Recorder = Arc<dyn Fn(&str, &SocketUser, Value) + Send + Sync>;

/// Every room's run board; a cheap handle.
#[derive(Clone)]
pub struct Runs {
    limits: RunLimits,
    boards: Arc<Mutex<HashMap<String, Board>>>,
    recorder: Option<Recorder>,
}

impl Runs {
    pub fn new(limits: RunLimits) -> Self {
        Runs {
            limits,
            boards: Arc::default(),
            recorder: None,
        }
    }

    /// Runs that end are also handed to `recorder`.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Ends `run` of `room`: the `run:exited` payload; the recorder gets
    /// the whole run.
    fn end(
        &self,
        room: &str,
        run: &mut Run,
        exit: Option<i64>,
        flags: ExitFlags,
        now: Instant,
    ) -> Value {
        let payload = run.end(exit, flags, now);
        if let Some(record) = &self.recorder {
            let mut kept = payload.clone();
            if let Value::Object(m) = &mut kept {
                let output: Vec<Value> = run
                    .output
                    .iter()
                    .map(|(stream, data)| json!({ "stream": stream, "data": data }))
                    .collect();
                m.insert("language".into(), json!(run.language));
                m.insert("output".into(), Value::Array(output));
            }
            let user = SocketUser {
                id: run.user_id.clone(),
                first_name: run.first_name.clone(),
            };
            record(room, &user, kept);
        }
        payload
    }

    fn with_board<T>(&self, room: &str, f: impl FnOnce(&mut Board) -> T) -> T {
        let mut boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        f(boards.entry(room.to_owned()).or_default())
    }

    /// A member joined: counts it and hands `push` the `run:state` payload.
    pub fn enter(&self, room: &str, push: Notify) {
        self.with_board(room, |b| {
            b.members += 1;
            let run = b.run.as_ref().map(|r| r.state_json(&self.limits));
            push(RUN_STATE, json!({ "run": run }));
        });
    }

    /// A member left: a run it started ends (`run:exited`, exit null); the
    /// board goes when its last member does.
    pub fn leave(&self, room: &str, sub: SubId, now: Instant, broadcast: Notify) {
        let mut boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = boards.get_mut(room) else {
            return;
        };
        b.members = b.members.saturating_sub(1);
        if let Some(run) = b
            .run
            .as_mut()
            .filter(|r| r.runner == sub && r.phase != Phase::Exited)
        {
            let flags = ExitFlags {
                reason: Some(RUNNER_LEFT),
                ..ExitFlags::default()
            };
            broadcast(RUN_EXITED, self.end(room, run, None, flags, now));
        }
        if b.members == 0 {
            boards.remove(room);
        }
    }

    /// `run:start` `{"code", "stdin"}`: a new run, announced to everyone
    /// with `run:started`. Answers the reply payload `{"run_id", "limits"}`
    /// and when the server will end the run if the runner goes quiet.
    pub fn start(
        &self,
        room: &str,
        who: Member,
        language: &str,
        payload: &Value,
        now: Instant,
        broadcast: Notify,
    ) -> Result<(Value, Instant), RunError> {
        if !RUNNABLE.contains(&language) {
            return Err(RunError::Unsupported);
        }
        let code = str_field(payload, "code").ok_or(RunError::Invalid("code"))?;
        let stdin = match payload.get("stdin") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(RunError::Invalid("stdin")),
        };
        if code.chars().count() > RESPONSE_MAX {
            return Err(RunError::CodeTooLong);
        }
        if stdin.chars().count() > STDIN_MAX {
            return Err(RunError::StdinTooLong);
        }
        self.with_board(room, |b| {
            // A run whose runner's channel crashed has no timer left: end it here.
            if let Some(r) = b
                .run
                .as_mut()
                .filter(|r| r.phase != Phase::Exited && now >= r.deadline)
            {
                let flags = ExitFlags {
                    reason: Some(STOPPED_ANSWERING),
                    ..ExitFlags::default()
                };
                broadcast(RUN_EXITED, self.end(room, r, None, flags, now));
            }
            if let Some(r) = b.run.as_ref().filter(|r| r.phase != Phase::Exited) {
                return Err(RunError::AlreadyRunning {
                    run_id: r.id.clone(),
                    user_id: r.user_id.clone(),
                    first_name: r.first_name.clone(),
                });
            }
            let run = Run {
                id: crate::store::random_id(12),
                runner: who.sub,
                user_id: who.user.id.clone(),
                first_name: who.user.first_name.clone(),
                language: language.to_owned(),
                started_at: crate::store::timestamp(),
                started: now,
                phase: Phase::Loading,
                deadline: now + LOAD_ALLOWANCE + self.limits.wall + EXIT_GRACE,
                output: Vec::new(),
                bytes: 0,
                truncated: false,
                exited: None,
            };
            broadcast(RUN_STARTED, run.started_json(&self.limits));
            let reply = json!({ "run_id": run.id, "limits": self.limits.json() });
            let deadline = run.deadline;
            b.run = Some(run);
            Ok((reply, deadline))
        })
    }

    /// `run:status` `{"run_id", "phase": "loading" | "running"}` from the
    /// runner, relayed to the others. Once running, the run must end within
    /// the wall limit (and [`EXIT_GRACE`]): answers that new deadline.
    pub fn status(
        &self,
        room: &str,
        sub: SubId,
        payload: &Value,
        now: Instant,
        relay: Notify,
    ) -> Result<Instant, RunError> {
        let id = str_field(payload, "run_id").ok_or(RunError::Invalid("run_id"))?;
        let phase = match str_field(payload, "phase") {
            Some("loading") => Phase::Loading,
            Some("running") => Phase::Running,
            _ => return Err(RunError::Invalid("phase")),
        };
        self.with_board(room, |b| {
            let run = b.live_run(id, sub)?;
            if phase == Phase::Running && run.phase == Phase::Loading {
                run.phase = Phase::Running;
                run.deadline = run.deadline.min(now + self.limits.wall + EXIT_GRACE);
            }
            relay(
                RUN_STATUS,
                json!({ "run_id": run.id, "phase": run.phase.as_str() }),
            );
            Ok(run.deadline)
        })
    }

    /// `run:output` from the runner, `{"run_id", "chunks": [{"stream":
    /// "stdout" | "stderr", "data"}, ...]}` (or one chunk as `{"run_id",
    /// "stream", "data"}`): kept and relayed to the others, in one
    /// `run:output` `{"run_id", "chunks"}`, up to [`OUTPUT_CAP`] bytes. The
    /// relay that reaches the cap carries `"truncated": true`, and nothing
    /// after it is relayed. Answers `{"truncated"}`.
    pub fn output(
        &self,
        room: &str,
        sub: SubId,
        payload: &Value,
        relay: Notify,
    ) -> Result<Value, RunError> {
        let id = str_field(payload, "run_id").ok_or(RunError::Invalid("run_id"))?;
        let chunks = chunks_of(payload)?;
        self.with_board(room, |b| {
            let run = b.live_run(id, sub)?;
            if run.truncated {
                return Ok(json!({ "truncated": true }));
            }
            let mut kept = Vec::with_capacity(chunks.len());
            for (stream, data) in chunks {
                let piece = run.append(stream, data);
                if !piece.is_empty() {
                    kept.push(json!({ "stream": stream, "data": piece }));
                }
                if run.truncated {
                    break;
                }
            }
            let mut relayed = json!({ "run_id": run.id, "chunks": kept });
            if run.truncated {
                relayed["truncated"] = Value::Bool(true);
            }
            if !kept.is_empty() || run.truncated {
                relay(RUN_OUTPUT, relayed);
            }
            Ok(json!({ "truncated": run.truncated }))
        })
    }

    /// `run:exit` `{"run_id", "exit", "wall_ms", "timed_out",
    /// "out_of_memory", "truncated"}` from the runner: `run:exited` to
    /// everyone. The wall time is at most the time since the start.
    pub fn exit(
        &self,
        room: &str,
        sub: SubId,
        payload: &Value,
        now: Instant,
        broadcast: Notify,
    ) -> Result<(), RunError> {
        let id = str_field(payload, "run_id").ok_or(RunError::Invalid("run_id"))?;
        let exit = match payload.get("exit") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .filter(|c| i32::try_from(*c).is_ok())
                    .ok_or(RunError::Invalid("exit"))?,
            ),
        };
        let flag = |name| payload.get(name).and_then(Value::as_bool).unwrap_or(false);
        let flags = ExitFlags {
            wall_ms: Some(payload.get("wall_ms").and_then(Value::as_u64).unwrap_or(0)),
            timed_out: flag("timed_out"),
            out_of_memory: flag("out_of_memory"),
            truncated: flag("truncated"),
            reason: None,
        };
        self.with_board(room, |b| {
            let run = b.live_run(id, sub)?;
            broadcast(RUN_EXITED, self.end(room, run, exit, flags, now));
            Ok(())
        })
    }

    /// The runner's deadline timer fired: ends run `id` if it is still going
    /// on past its deadline (`run:exited`, exit null, with the reason), or
    /// answers the deadline to wait for.
    pub fn expire(&self, room: &str, id: &str, now: Instant, broadcast: Notify) -> Option<Instant> {
        let mut boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        let run = boards
            .get_mut(room)?
            .run
            .as_mut()
            .filter(|r| r.id == id && r.phase != Phase::Exited)?;
        if now < run.deadline {
            return Some(run.deadline);
        }
        let flags = ExitFlags {
            reason: Some(STOPPED_ANSWERING),
            ..ExitFlags::default()
        };
        broadcast(RUN_EXITED, self.end(room, run, None, flags, now));
        None
    }

    /// Rooms with a board (members present), for tests and metrics.
    pub fn boards(&self) -> usize {
        self.boards.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A `run:output`'s pieces: its `chunks`, or the one `stream` and `data`.
fn chunks_of(payload: &Value) -> Result<Vec<(&'static str, &str)>, RunError> {
    fn chunk(c: &Value) -> Result<(&'static str, &str), RunError> {
        let stream = match str_field(c, "stream") {
            Some("stdout") => "stdout",
            Some("stderr") => "stderr",
            _ => return Err(RunError::Invalid("stream")),
        };
        Ok((
            stream,
            str_field(c, "data").ok_or(RunError::Invalid("data"))?,
        ))
    }
    match payload.get("chunks") {
        Some(Value::Array(list)) => list.iter().map(chunk).collect(),
        Some(_) => Err(RunError::Invalid("chunks")),
        None => Ok(vec![chunk(payload)?]),
    }
}

fn str_field<'a>(payload: &'a Value, name: &str) -> Option<&'a str> {
    payload.get(name).and_then(Value::as_str)
}

/// Is `event` one of the run events a client sends?
pub fn is_run_event(event: &str) -> bool {
    matches!(event, RUN_START | RUN_STATUS | RUN_OUTPUT | RUN_EXIT)
}

/// The channel's glue: one run event from `member` of `room`, answered.
/// Changes go to the others with `broadcast_from`; `run:started` and
/// `run:exited` go to everyone. Deadlines arm the runner's channel timer.
pub fn handle_in(
    runs: &Runs,
    room: &str,
    user: &SocketUser,
    language: &str,
    event: &str,
    payload: &Payload,
    ctx: &mut ChannelCtx<Info>,
) -> HandleResult {
    let empty = Value::Object(Map::new());
    let payload = payload.as_json().unwrap_or(&empty);
    let now = Instant::now();
    let sub = ctx.sub_id;
    let ctx_ref = &*ctx;
    let mut to_all = |e: &str, v: Value| ctx_ref.broadcast(e, Payload::Json(v));
    let mut to_others = |e: &str, v: Value| ctx_ref.broadcast_from(e, Payload::Json(v));
    let answer = match event {
        RUN_START => runs
            .start(
                room,
                Member { sub, user },
                language,
                payload,
                now,
                &mut to_all,
            )
            .map(|(reply, deadline)| (reply, Some(deadline))),
        RUN_STATUS => runs
            .status(room, sub, payload, now, &mut to_others)
            .map(|deadline| (json!({}), Some(deadline))),
        RUN_OUTPUT => runs
            .output(room, sub, payload, &mut to_others)
            .map(|r| (r, None)),
        RUN_EXIT => runs
            .exit(room, sub, payload, now, &mut to_all)
            .map(|()| (json!({}), None)),
        _ => Err(RunError::Invalid("event")),
    };
    match answer {
        Ok((reply, deadline)) => {
            if let (Some(deadline), Some(id)) = (deadline, run_id_of(event, payload, &reply)) {
                ctx.send_after(
                    deadline.saturating_duration_since(now),
                    Info::RunDeadline(id),
                );
            }
            HandleResult::ok(reply)
        }
        Err(err) => HandleResult::Reply(
            crate::channels::message::Status::Error,
            Payload::Json(err.reply()),
        ),
    }
}

fn run_id_of(event: &str, payload: &Value, reply: &Value) -> Option<String> {
    let from = if event == RUN_START { reply } else { payload };
    str_field(from, "run_id").map(str::to_owned)
}

/// The runner's channel timer for run `id` fired (see [`Runs::expire`]).
pub fn handle_deadline(runs: &Runs, room: &str, id: String, ctx: &mut ChannelCtx<Info>) {
    let now = Instant::now();
    let ctx_ref = &*ctx;
    let mut to_all = |e: &str, v: Value| ctx_ref.broadcast(e, Payload::Json(v));
    if let Some(deadline) = runs.expire(room, &id, now, &mut to_all) {
        ctx.send_after(
            deadline.saturating_duration_since(now),
            Info::RunDeadline(id),
        );
    }
}

/// The member's channel joined (`run:state` to it) or ended (its run ends).
pub fn enter(runs: &Runs, room: &str, ctx: &mut ChannelCtx<Info>) {
    let ctx_ref = &*ctx;
    runs.enter(room, &mut |e: &str, v: Value| {
        ctx_ref.push(e, Payload::Json(v))
    });
}

pub fn leave(runs: &Runs, room: &str, ctx: &mut ChannelCtx<Info>) {
    let ctx_ref = &*ctx;
    let mut to_all = |e: &str, v: Value| ctx_ref.broadcast(e, Payload::Json(v));
    runs.leave(room, ctx_ref.sub_id, Instant::now(), &mut to_all);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "room1";
    const WALL: Duration = Duration::from_secs(10);

    fn runs() -> Runs {
        Runs::new(RunLimits { wall: WALL })
    }

    fn user(id: &str, name: &str) -> SocketUser {
        SocketUser {
            id: id.into(),
            first_name: name.into(),
        }
    }

    type Sent = Vec<(String, Value)>;

    fn record(sent: &mut Sent) -> impl FnMut(&str, Value) + '_ {
        |e: &str, v: Value| sent.push((e.to_owned(), v))
    }

    /// Sophie (member 1) starts a Python run; answers its id.
    fn start(runs: &Runs, now: Instant) -> String {
        let sophie = user("u1", "Sophie");
        let who = Member {
            sub: 1,
            user: &sophie,
        };
        let payload = json!({"code": "print(1)", "stdin": ""});
        let (reply, _) = runs
            .start(ROOM, who, "python", &payload, now, &mut |_, _| {})
            .expect("start");
        reply["run_id"].as_str().expect("run_id").to_owned()
    }

    fn out(
        runs: &Runs,
        sub: SubId,
        id: &str,
        data: &str,
        sent: &mut Sent,
    ) -> Result<Value, RunError> {
        let payload = json!({"run_id": id, "stream": "stdout", "data": data});
        runs.output(ROOM, sub, &payload, &mut record(sent))
    }

    #[test]
    fn start_announces_the_run_and_replies_its_limits() {
        let runs = runs();
        let sophie = user("u1", "Sophie");
        let mut sent = Sent::new();
        let payload = json!({"code": "print(1)", "stdin": "x"});
        let (reply, deadline) = runs
            .start(
                ROOM,
                Member {
                    sub: 1,
                    user: &sophie,
                },
                "python",
                &payload,
                Instant::now(),
                &mut record(&mut sent),
            )
            .expect("start");
        assert_eq!(
            reply["limits"],
            json!({"wall_ms": 10_000, "output_bytes": 65_536, "memory_mb": 256})
        );
        let id = reply["run_id"].as_str().expect("id");
        assert!(id.len() >= 16, "unguessable run id: {id}");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, RUN_STARTED);
        assert_eq!(sent[0].1["run_id"], id);
        assert_eq!(sent[0].1["first_name"], "Sophie");
        assert_eq!(sent[0].1["user_id"], "u1");
        assert_eq!(sent[0].1["language"], "python");
        assert!(deadline > Instant::now() + LOAD_ALLOWANCE);
    }

    #[test]
    fn a_second_start_while_running_says_who_runs() {
        let runs = runs();
        let now = Instant::now();
        let id = start(&runs, now);
        let antoine = user("u2", "Antoine");
        let err = runs
            .start(
                ROOM,
                Member {
                    sub: 2,
                    user: &antoine,
                },
                "python",
                &json!({"code": ""}),
                now,
                &mut |_, _| {},
            )
            .expect_err("one run at a time");
        assert_eq!(
            err.reply(),
            json!({"reason": "already running", "run_id": id, "user_id": "u1", "first_name": "Sophie"})
        );
        // Once it has ended, the next run may start.
        let exit = json!({"run_id": id, "exit": 0, "wall_ms": 5});
        runs.exit(ROOM, 1, &exit, now, &mut |_, _| {})
            .expect("exit");
        let r = runs.start(
            ROOM,
            Member {
                sub: 2,
                user: &antoine,
            },
            "python",
            &json!({"code": ""}),
            now,
            &mut |_, _| {},
        );
        assert!(r.is_ok());
    }

    #[test]
    fn refuses_languages_the_runner_cannot_run_and_oversized_input() {
        let runs = runs();
        let sophie = user("u1", "Sophie");
        let now = Instant::now();
        let start = |language: &str, payload: Value| {
            runs.start(
                ROOM,
                Member {
                    sub: 1,
                    user: &sophie,
                },
                language,
                &payload,
                now,
                &mut |_, _| {},
            )
            .map(|_| ())
        };
        assert_eq!(
            start("rust", json!({"code": ""})),
            Err(RunError::Unsupported)
        );
        assert_eq!(start("python", json!({})), Err(RunError::Invalid("code")));
        assert_eq!(
            start("python", json!({"code": "", "stdin": 3})),
            Err(RunError::Invalid("stdin"))
        );
        let long_stdin = "x".repeat(STDIN_MAX + 1);
        assert_eq!(
            start("python", json!({"code": "", "stdin": long_stdin})),
            Err(RunError::StdinTooLong)
        );
        let long_code = "x".repeat(RESPONSE_MAX + 1);
        assert_eq!(
            start("python", json!({"code": long_code})),
            Err(RunError::CodeTooLong)
        );
        assert_eq!(runs.boards(), 0, "a refused start leaves no board");
        assert_eq!(start("javascript", json!({"code": "1"})), Ok(()));
    }

    #[test]
    fn only_the_runner_sends_output_status_and_exit() {
        let runs = runs();
        let now = Instant::now();
        let id = start(&runs, now);
        let mut sent = Sent::new();
        assert_eq!(
            out(&runs, 2, &id, "fake", &mut sent),
            Err(RunError::NotRunner)
        );
        let status = json!({"run_id": id, "phase": "running"});
        assert_eq!(
            runs.status(ROOM, 2, &status, now, &mut record(&mut sent)),
            Err(RunError::NotRunner)
        );
        let exit = json!({"run_id": id, "exit": 0});
        assert_eq!(
            runs.exit(ROOM, 2, &exit, now, &mut record(&mut sent)),
            Err(RunError::NotRunner)
        );
        assert_eq!(
            out(&runs, 1, "other", "x", &mut sent),
            Err(RunError::NoSuchRun)
        );
        assert!(sent.is_empty(), "nothing relayed: {sent:?}");
        assert_eq!(
            out(&runs, 1, &id, "real\n", &mut sent),
            Ok(json!({"truncated": false}))
        );
        assert_eq!(
            sent,
            vec![(
                RUN_OUTPUT.to_owned(),
                json!({"run_id": id, "chunks": [{"stream": "stdout", "data": "real\n"}]})
            )]
        );
    }

    #[test]
    fn output_is_cut_at_the_cap_on_a_character_boundary() {
        let runs = runs();
        let id = start(&runs, Instant::now());
        let mut sent = Sent::new();
        let first = "a".repeat(OUTPUT_CAP - 1);
        assert_eq!(
            out(&runs, 1, &id, &first, &mut sent),
            Ok(json!({"truncated": false}))
        );
        // "é" is two bytes: it does not fit in the last byte, so nothing of it is kept.
        assert_eq!(
            out(&runs, 1, &id, "éé", &mut sent),
            Ok(json!({"truncated": true}))
        );
        assert_eq!(
            sent[1].1,
            json!({"run_id": id, "chunks": [], "truncated": true})
        );
        // Nothing after the cut is relayed.
        assert_eq!(
            out(&runs, 1, &id, "more", &mut sent),
            Ok(json!({"truncated": true}))
        );
        assert_eq!(sent.len(), 2);
        let mut exited = Sent::new();
        let exit = json!({"run_id": id, "exit": 0, "wall_ms": 1});
        runs.exit(ROOM, 1, &exit, Instant::now(), &mut record(&mut exited))
            .expect("exit");
        assert_eq!(
            exited[0].1["truncated"], true,
            "the runner did not say so; the server did"
        );
    }

    #[test]
    fn output_cut_inside_a_piece_keeps_its_head() {
        let runs = runs();
        let id = start(&runs, Instant::now());
        let mut sent = Sent::new();
        let big = "line\n".repeat(20_000); // 100 000 bytes
        assert_eq!(
            out(&runs, 1, &id, &big, &mut sent),
            Ok(json!({"truncated": true}))
        );
        let data = sent[0].1["chunks"][0]["data"].as_str().expect("data");
        assert_eq!(data.len(), OUTPUT_CAP);
        assert!(big.starts_with(data));
    }

    #[test]
    fn a_batch_of_chunks_is_kept_in_order_and_relayed_as_one_message() {
        let runs = runs();
        let id = start(&runs, Instant::now());
        let mut sent = Sent::new();
        // Lines alternating between stdout and stderr: one message, not one per line.
        let chunks: Vec<Value> = (0..OUTPUT_CAP)
            .map(|i| json!({"stream": if i % 2 == 0 { "stdout" } else { "stderr" }, "data": "ab"}))
            .collect();
        let payload = json!({"run_id": id, "chunks": chunks});
        assert_eq!(
            runs.output(ROOM, 1, &payload, &mut record(&mut sent)),
            Ok(json!({"truncated": true}))
        );
        assert_eq!(sent.len(), 1);
        let relayed = sent[0].1["chunks"].as_array().expect("chunks");
        assert_eq!(relayed.len(), OUTPUT_CAP / 2);
        assert_eq!(relayed[1], json!({"stream": "stderr", "data": "ab"}));
        assert_eq!(sent[0].1["truncated"], true);
        let bad = json!({"run_id": id, "chunks": [{"stream": "stdin", "data": "x"}]});
        assert_eq!(
            runs.output(ROOM, 1, &bad, &mut |_, _| {}),
            Err(RunError::Invalid("stream"))
        );
        let bad = json!({"run_id": id, "chunks": "x"});
        assert_eq!(
            runs.output(ROOM, 1, &bad, &mut |_, _| {}),
            Err(RunError::Invalid("chunks"))
        );
    }

    #[test]
    fn a_joiner_gets_the_run_so_far_then_the_end() {
        let runs = runs();
        let now = Instant::now();
        let mut state = Sent::new();
        runs.enter(ROOM, &mut record(&mut state));
        assert_eq!(state[0], (RUN_STATE.to_owned(), json!({"run": null})));
        let id = start(&runs, now);
        let mut sent = Sent::new();
        out(&runs, 1, &id, "a", &mut sent).expect("out");
        out(&runs, 1, &id, "b\n", &mut sent).expect("out");
        let err = json!({"run_id": id, "stream": "stderr", "data": "oops\n"});
        runs.output(ROOM, 1, &err, &mut record(&mut sent))
            .expect("out");
        let mut late = Sent::new();
        runs.enter(ROOM, &mut record(&mut late));
        let run = &late[0].1["run"];
        assert_eq!(run["run_id"], id);
        assert_eq!(run["first_name"], "Sophie");
        assert_eq!(run["phase"], "loading");
        assert_eq!(
            run["output"],
            json!([{"stream": "stdout", "data": "ab\n"}, {"stream": "stderr", "data": "oops\n"}])
        );
        assert_eq!(run["exit"], Value::Null);
        let exit = json!({"run_id": id, "exit": 3, "wall_ms": 12, "out_of_memory": true});
        runs.exit(
            ROOM,
            1,
            &exit,
            now + Duration::from_millis(50),
            &mut |_, _| {},
        )
        .expect("exit");
        let mut later = Sent::new();
        runs.enter(ROOM, &mut record(&mut later));
        let exited = &later[0].1["run"]["exit"];
        assert_eq!(exited["exit"], 3);
        assert_eq!(exited["wall_ms"], 12);
        assert_eq!(exited["out_of_memory"], true);
        assert_eq!(exited["reason"], Value::Null);
    }

    #[test]
    fn a_runner_that_leaves_ends_its_run_and_the_last_leaver_drops_the_board() {
        let runs = runs();
        let now = Instant::now();
        runs.enter(ROOM, &mut |_, _| {});
        runs.enter(ROOM, &mut |_, _| {});
        let id = start(&runs, now);
        let mut sent = Sent::new();
        runs.leave(ROOM, 2, now, &mut record(&mut sent));
        assert!(
            sent.is_empty(),
            "a member who is not the runner leaves quietly"
        );
        runs.leave(
            ROOM,
            1,
            now + Duration::from_secs(2),
            &mut record(&mut sent),
        );
        assert_eq!(sent[0].0, RUN_EXITED);
        assert_eq!(sent[0].1["run_id"], id);
        assert_eq!(sent[0].1["exit"], Value::Null);
        assert_eq!(sent[0].1["wall_ms"], 2_000);
        assert_eq!(sent[0].1["reason"], RUNNER_LEFT);
        assert_eq!(runs.boards(), 0);
    }

    #[test]
    fn a_silent_runner_is_ended_at_wall_limit_plus_grace_once_running() {
        let runs = runs();
        let t0 = Instant::now();
        let id = start(&runs, t0);
        let loading_deadline = t0 + LOAD_ALLOWANCE + WALL + EXIT_GRACE;
        assert_eq!(
            runs.expire(ROOM, &id, t0 + WALL, &mut |_, _| {}),
            Some(loading_deadline)
        );
        let t1 = t0 + Duration::from_secs(4); // Python took 4 s to load
        let mut relayed = Sent::new();
        let status = json!({"run_id": id, "phase": "running"});
        let deadline = runs
            .status(ROOM, 1, &status, t1, &mut record(&mut relayed))
            .expect("status");
        assert_eq!(deadline, t1 + WALL + EXIT_GRACE);
        assert_eq!(
            relayed,
            vec![(
                RUN_STATUS.to_owned(),
                json!({"run_id": id, "phase": "running"})
            )]
        );
        let mut sent = Sent::new();
        assert_eq!(
            runs.expire(
                ROOM,
                &id,
                deadline - Duration::from_millis(1),
                &mut record(&mut sent)
            ),
            Some(deadline)
        );
        assert!(sent.is_empty());
        assert_eq!(
            runs.expire(ROOM, &id, deadline, &mut record(&mut sent)),
            None
        );
        assert_eq!(sent[0].0, RUN_EXITED);
        assert_eq!(sent[0].1["reason"], STOPPED_ANSWERING);
        assert_eq!(sent[0].1["exit"], Value::Null);
        // Too late now.
        let exit = json!({"run_id": id, "exit": 0});
        assert_eq!(
            runs.exit(ROOM, 1, &exit, deadline, &mut |_, _| {}),
            Err(RunError::NoSuchRun)
        );
    }

    #[test]
    fn a_run_past_its_deadline_does_not_block_the_next_start() {
        // Its runner's channel crashed: no timer is left to end it.
        let runs = runs();
        let t0 = Instant::now();
        let old = start(&runs, t0);
        let late = t0 + LOAD_ALLOWANCE + WALL + EXIT_GRACE;
        let antoine = user("u2", "Antoine");
        let mut sent = Sent::new();
        let r = runs.start(
            ROOM,
            Member {
                sub: 2,
                user: &antoine,
            },
            "python",
            &json!({"code": ""}),
            late,
            &mut record(&mut sent),
        );
        assert!(r.is_ok());
        assert_eq!(sent[0].0, RUN_EXITED);
        assert_eq!(sent[0].1["run_id"], old);
        assert_eq!(sent[1].0, RUN_STARTED);
    }

    #[test]
    fn the_reported_wall_time_is_at_most_the_time_since_the_start() {
        let runs = runs();
        let t0 = Instant::now();
        let id = start(&runs, t0);
        let mut sent = Sent::new();
        let exit = json!({"run_id": id, "exit": 0, "wall_ms": 999_999, "timed_out": true});
        runs.exit(
            ROOM,
            1,
            &exit,
            t0 + Duration::from_millis(300),
            &mut record(&mut sent),
        )
        .expect("exit");
        assert_eq!(sent[0].1["wall_ms"], 300);
        assert_eq!(sent[0].1["timed_out"], true);
        let id2 = start(&runs, t0);
        let bad = json!({"run_id": id2, "exit": 1.5});
        assert_eq!(
            runs.exit(ROOM, 1, &bad, t0, &mut |_, _| {}),
            Err(RunError::Invalid("exit"))
        );
        let bad = json!({"run_id": id2, "exit": i64::from(i32::MAX) + 1});
        assert_eq!(
            runs.exit(ROOM, 1, &bad, t0, &mut |_, _| {}),
            Err(RunError::Invalid("exit"))
        );
    }
}
