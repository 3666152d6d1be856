//! One simulated client: a task that owns one WebSocket, bound to a
//! loopback source address, speaks Phoenix V2 like phoenix.js (join,
//! heartbeat, replies by `ref`) and plays a role: a member that edits the
//! response, a presence watcher, or a churner that joins and leaves.
//!
//! Clients never share a lock on the hot path: latencies go into a
//! `Recorder` batch, counters into the `ClientStats` the task returns.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{client_async_with_config, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Text, Transact};

use crate::api::User;
use crate::harness::Target;
use crate::protocol::{self, BinaryFrame, Marker};
use crate::stats::{Recorder, ShardedHistogram};

/// phoenix.js sends a heartbeat every 30 s; the server closes after 60 s.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// Give up on a TCP connect or WebSocket upgrade after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// phoenix.js `reconnectAfterMs` steps, then 5 s.
const RECONNECT_STEPS_MS: [u64; 9] = [10, 50, 100, 150, 200, 250, 500, 1000, 2000];
/// Per-socket WebSocket buffers: tungstenite's default is 128 KiB each way,
/// far too much for tens of thousands of mostly idle sockets.
const READ_BUFFER: usize = 8 * 1024;

type Ws = WebSocketStream<TcpStream>;

/// Where the run is. Clients watch it; the scenario moves it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connect and join, then wait.
    Setup,
    /// Act (edit, churn) from `start` until `end`, then keep reading.
    Run { start: Instant, end: Instant },
    /// Close the socket and hand back the stats.
    Stop,
}

/// How edits travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditMode {
    /// `response:update` `{"response": text}`; receipt is `response:updated`.
    Json,
    /// Binary `yjs` sync update; receipt is the relayed binary `yjs`.
    Yjs,
}

/// What clients tell the scenario while it sets up or reconnects.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// Connected and (unless a churner) joined — or failed (`ok == false`).
    Ready { ok: bool, at: Instant },
    /// Reconnected and rejoined after losing the socket.
    Rejoined { at: Instant },
    /// The socket was lost (only sent when `ctx.reconnect` is on).
    Lost { at: Instant },
}

/// Everything the clients of one run share. Built once, behind an `Arc`.
pub struct Ctx {
    /// The nodes (one per `--url`); a client connects to `targets[spec.node]`
    /// and sends its own node's origin, as a browser on that node's page would.
    pub targets: Vec<Target>,
    /// The node of each client, by `ClientSpec::idx` (a marker's sender), to
    /// tell same-node deliveries from cross-node ones.
    pub node_of: Vec<u16>,
    pub sources: Vec<Ipv4Addr>,
    pub connect_permits: Semaphore,
    /// The instant markers count micros from.
    pub epoch: std::time::Instant,
    pub mode: EditMode,
    pub text_bytes: usize,
    /// Reconnect and rejoin (phoenix.js backoff) when the socket is lost.
    pub reconnect: bool,
    pub phase: watch::Receiver<Phase>,
    pub events: mpsc::UnboundedSender<Event>,
    /// Sender's push to another member's receipt.
    pub delivery: ShardedHistogram,
    /// The same, split by whether sender and receiver were on one node
    /// (recorded only with more than one node).
    pub delivery_same: ShardedHistogram,
    pub delivery_cross: ShardedHistogram,
    /// Edit push to the sender's ok reply.
    pub ack: ShardedHistogram,
    /// TCP connect + WebSocket upgrade (after the connect permit).
    pub connect: ShardedHistogram,
    /// `phx_join` push to its ok reply.
    pub join: ShardedHistogram,
    /// Churner's join push to a watcher's `presence_diff` holding it.
    pub presence: ShardedHistogram,
    /// The same, split by node as `delivery_same` / `delivery_cross`.
    pub presence_same: ShardedHistogram,
    pub presence_cross: ShardedHistogram,
}

impl Ctx {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// More than one node: latencies are also split same / cross node.
    fn multi_node(&self) -> bool {
        self.targets.len() > 1
    }

    /// Whether a sample from a client on `from` to one on `to` crossed nodes.
    fn crossed(&self, from: Option<u16>, to: usize) -> bool {
        from.is_some_and(|n| usize::from(n) != to)
    }
}

/// When a room's churners last pushed a join, and from which node, by user
/// id (the presence key).
#[derive(Default)]
pub struct JoinTable {
    inner: Mutex<HashMap<Arc<str>, (u32, Instant, u16)>>,
}

impl JoinTable {
    fn sent(&self, key: &Arc<str>, cycle: u32, at: Instant, node: u16) {
        self.inner
            .lock()
            .expect("join table poisoned")
            .insert(key.clone(), (cycle, at, node));
    }
    fn last(&self, key: &str) -> Option<(u32, Instant, u16)> {
        self.inner
            .lock()
            .expect("join table poisoned")
            .get(key)
            .copied()
    }
}

/// Edits of one member: every `period`, first at `start + offset`.
#[derive(Debug, Clone, Copy)]
pub struct EditPlan {
    pub period: Duration,
    pub offset: Duration,
}

pub enum Role {
    /// Joins the room; edits if given a plan; counts deliveries either way.
    Member(Option<EditPlan>),
    /// Joins the room and times `presence_diff` joins of the churners.
    Watcher(Arc<JoinTable>),
    /// Connects once, then joins and leaves every `period` from `offset`.
    Churner {
        table: Arc<JoinTable>,
        period: Duration,
        offset: Duration,
    },
}

pub struct ClientSpec {
    /// Unique in the process: source address choice, marker sender id.
    pub idx: u32,
    pub user: Arc<User>,
    pub topic: Arc<str>,
    /// The scenario's room index, to add stats up per room.
    pub room: usize,
    /// The node (index into `--url`) this client connects to.
    pub node: usize,
    pub role: Role,
}

/// What one client saw. Added up per room and per run by the scenario.
#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub room: usize,
    /// The node (index into `--url`) it connected to.
    pub node: usize,
    pub connected: bool,
    /// Joined right now (as far as this client knows).
    pub joined: bool,
    /// Joined at least once.
    pub was_joined: bool,
    /// Played the churner role (so it is not a receiver of edits).
    pub churner: bool,
    pub connect_error: Option<String>,
    pub join_error: Option<String>,
    /// The socket closed or failed during the run.
    pub lost_socket: Option<String>,
    pub reconnects: u64,
    pub channel_errors: u64,
    pub edits_sent: u64,
    pub edits_ok: u64,
    pub edits_err: u64,
    pub edit_error_sample: Option<String>,
    pub deliveries_total: u64,
    pub deliveries_unique: u64,
    /// Churner: joins pushed / answered ok / refused; ticks skipped because
    /// the previous cycle had not finished.
    pub joins_sent: u64,
    pub joins_ok: u64,
    pub joins_err: u64,
    pub churn_skipped: u64,
    /// Watcher: churner joins seen in a `presence_diff`, and repeats.
    pub presence_seen: u64,
    pub presence_dups: u64,
    pub frames_in: u64,
    pub undecodable: u64,
}

/// What a sent message with a `ref` is waiting for.
enum Pending {
    Join(Instant),
    Leave,
    Edit(Instant),
}

enum ChurnState {
    Idle,
    Joining,
    Joined { leave_at: Instant },
    Leaving,
}

/// Why a session (one socket's life) ended.
enum End {
    Stop,
    Lost(String),
}

/// Runs one client until the phase says `Stop` (or its socket is lost and
/// `ctx.reconnect` is off). Never panics on anything the server sends.
pub async fn run_client(ctx: Arc<Ctx>, spec: ClientSpec) -> ClientStats {
    let mut client = Client::new(&ctx, spec);
    let mut attempt = 0usize;
    let mut ever_ready = false;
    loop {
        let ws = {
            let _permit = ctx
                .connect_permits
                .acquire()
                .await
                .expect("semaphore never closed");
            let t = Instant::now();
            let ws = connect(&ctx, &client.spec, &client.spec.user.token).await;
            if ws.is_ok() {
                client.connect.record(t.elapsed().as_micros() as u64);
            }
            ws
        };
        let ws = match ws {
            Ok(ws) => ws,
            Err(e) => {
                if !ever_ready && !ctx.reconnect {
                    client.stats.connect_error = Some(e);
                    let _ = ctx.events.send(Event::Ready {
                        ok: false,
                        at: Instant::now(),
                    });
                    return client.finish();
                }
                if *ctx.phase.borrow() == Phase::Stop {
                    client.stats.connect_error.get_or_insert(e);
                    return client.finish();
                }
                let ms = RECONNECT_STEPS_MS.get(attempt).copied().unwrap_or(5000);
                attempt += 1;
                let mut phase = ctx.phase.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    _ = phase.wait_for(|p| *p == Phase::Stop) => {}
                }
                continue;
            }
        };
        client.stats.connected = true;
        if ever_ready {
            client.stats.reconnects += 1;
        }
        match client.session(ws, ever_ready).await {
            End::Stop => return client.finish(),
            End::Lost(why) => {
                if !client.ready_sent {
                    client.stats.join_error.get_or_insert(why.clone());
                    let _ = ctx.events.send(Event::Ready {
                        ok: false,
                        at: Instant::now(),
                    });
                    client.ready_sent = true;
                }
                let stopping = *ctx.phase.borrow() == Phase::Stop;
                if !ctx.reconnect || stopping {
                    if !stopping {
                        client.stats.lost_socket = Some(why);
                    }
                    return client.finish();
                }
                let _ = ctx.events.send(Event::Lost { at: Instant::now() });
                client.stats.lost_socket.get_or_insert(why);
                ever_ready = ever_ready || client.stats.joined;
                attempt = 0;
            }
        }
    }
}

/// Binds a loopback source address, connects to the client's node and
/// upgrades.
async fn connect(ctx: &Ctx, spec: &ClientSpec, token: &str) -> Result<Ws, String> {
    let node = &ctx.targets[spec.node % ctx.targets.len()];
    let src = ctx.sources[spec.idx as usize % ctx.sources.len()];
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))
        .map_err(|e| format!("bind {src}: {e}"))?;
    let stream = timeout(CONNECT_TIMEOUT, sock.connect(node.addr))
        .await
        .map_err(|_| "connect: timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut req = format!("{}{}", node.ws_url, token)
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    if let Ok(origin) = HeaderValue::from_str(&node.origin) {
        req.headers_mut().insert("origin", origin);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(4 << 20);
    let (ws, _resp) = timeout(
        CONNECT_TIMEOUT,
        client_async_with_config(req, stream, Some(config)),
    )
    .await
    .map_err(|_| "upgrade: timed out".to_string())?
    .map_err(|e| match e {
        WsError::Http(resp) => format!("upgrade refused: HTTP {}", resp.status()),
        other => format!("upgrade: {other}"),
    })?;
    Ok(ws)
}

struct Client<'a> {
    ctx: &'a Ctx,
    spec: ClientSpec,
    stats: ClientStats,
    next_ref: u64,
    join_ref: Option<String>,
    pending: HashMap<String, Pending>,
    ready_sent: bool,
    /// (sender, seq) of every delivery seen, to tell repeats.
    seen: HashSet<(u32, u32)>,
    seq: u32,
    next_edit: Option<Instant>,
    /// With `ctx.reconnect`: when to push `phx_join` again after a refusal
    /// (phoenix.js `rejoinAfterMs`).
    rejoin_at: Option<Instant>,
    rejoin_attempt: usize,
    /// Yjs only: this member's own document; edits are its updates.
    doc: Option<(yrs::Doc, yrs::TextRef)>,
    /// Yjs only: the length of the marker that starts the document's text.
    marker_len: u32,
    churn: ChurnState,
    churn_cycle: u32,
    /// Watcher: the last churn cycle matched, by presence key.
    matched: HashMap<String, u32>,
    user_key: Arc<str>,
    delivery: Recorder<'a>,
    delivery_same: Recorder<'a>,
    delivery_cross: Recorder<'a>,
    ack: Recorder<'a>,
    connect: Recorder<'a>,
    join: Recorder<'a>,
    presence: Recorder<'a>,
    presence_same: Recorder<'a>,
    presence_cross: Recorder<'a>,
}

impl<'a> Client<'a> {
    fn new(ctx: &'a Ctx, spec: ClientSpec) -> Self {
        let shard = spec.idx as usize;
        let doc =
            (ctx.mode == EditMode::Yjs && matches!(spec.role, Role::Member(Some(_)))).then(|| {
                let doc = yrs::Doc::with_client_id(u64::from(rand::random::<u32>()));
                let text = doc.get_or_insert_text("response");
                (doc, text)
            });
        Self {
            ctx,
            stats: ClientStats {
                room: spec.room,
                node: spec.node,
                churner: matches!(spec.role, Role::Churner { .. }),
                ..Default::default()
            },
            user_key: Arc::from(spec.user.id.as_str()),
            spec,
            next_ref: 0,
            join_ref: None,
            pending: HashMap::new(),
            ready_sent: false,
            seen: HashSet::new(),
            seq: 0,
            next_edit: None,
            rejoin_at: None,
            rejoin_attempt: 0,
            doc,
            marker_len: 0,
            churn: ChurnState::Idle,
            churn_cycle: 0,
            matched: HashMap::new(),
            delivery: Recorder::new(&ctx.delivery, shard),
            delivery_same: Recorder::new(&ctx.delivery_same, shard),
            delivery_cross: Recorder::new(&ctx.delivery_cross, shard),
            ack: Recorder::new(&ctx.ack, shard),
            connect: Recorder::new(&ctx.connect, shard),
            join: Recorder::new(&ctx.join, shard),
            presence: Recorder::new(&ctx.presence, shard),
            presence_same: Recorder::new(&ctx.presence_same, shard),
            presence_cross: Recorder::new(&ctx.presence_cross, shard),
        }
    }

    fn finish(mut self) -> ClientStats {
        self.stats.deliveries_unique = self.seen.len() as u64;
        for r in [
            &mut self.delivery,
            &mut self.delivery_same,
            &mut self.delivery_cross,
            &mut self.ack,
            &mut self.connect,
            &mut self.join,
            &mut self.presence,
            &mut self.presence_same,
            &mut self.presence_cross,
        ] {
            r.flush();
        }
        self.stats
    }

    fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    fn ready(&mut self, ok: bool) {
        if !self.ready_sent {
            self.ready_sent = true;
            let _ = self.ctx.events.send(Event::Ready {
                ok,
                at: Instant::now(),
            });
        }
    }

    /// Sends `phx_join` for the room; returns the frame.
    fn join_frame(&mut self) -> String {
        let r = self.make_ref();
        self.join_ref = Some(r.clone());
        self.pending
            .insert(r.clone(), Pending::Join(Instant::now()));
        protocol::text_frame(
            Some(&r),
            Some(&r),
            &self.spec.topic,
            protocol::PHX_JOIN,
            &json!({}),
        )
    }

    /// One socket's life: join (unless churner), then the loop.
    async fn session(&mut self, mut ws: Ws, rejoin: bool) -> End {
        if let Err(end) = self.begin(&mut ws).await {
            return end;
        }
        let mut phase_rx = self.ctx.phase.clone();
        let mut phase = *phase_rx.borrow_and_update();
        self.plan(phase);
        let mut next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
        let mut awaiting_rejoin = rejoin;
        // The timer and the phase watch live across frames: made anew for
        // every frame, they took the timer wheel's and the shared watch's
        // locks twice per frame in all the clients at once.
        let timer = tokio::time::sleep_until(next_heartbeat);
        tokio::pin!(timer);
        let mut phase_changed = Box::pin(next_phase(phase_rx));
        loop {
            if phase == Phase::Stop {
                let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                return End::Stop;
            }
            let wake = self.wake(next_heartbeat);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            let step = tokio::select! {
                m = ws.next() => Step::Frame(m),
                _ = &mut timer => Step::Timer,
                p = &mut phase_changed => Step::Phase(p),
            };
            let now = Instant::now();
            let mut out: Vec<Message> = Vec::new();
            match step {
                Step::Phase((rx, next)) => {
                    phase = next.unwrap_or(Phase::Stop);
                    self.plan(phase);
                    phase_changed.set(next_phase(rx));
                }
                Step::Timer => {
                    if now >= next_heartbeat {
                        out.push(self.heartbeat());
                        next_heartbeat = now + HEARTBEAT_EVERY;
                    }
                    self.on_timer(now, phase, &mut out);
                }
                Step::Frame(None) => return End::Lost("closed by server (no close frame)".into()),
                Step::Frame(Some(Err(e))) => return End::Lost(format!("read: {e}")),
                Step::Frame(Some(Ok(msg))) => {
                    if let Err(end) = self.on_frame(msg, &mut out) {
                        return end;
                    }
                    if awaiting_rejoin && self.stats.joined {
                        awaiting_rejoin = false;
                        let _ = self.ctx.events.send(Event::Rejoined { at: Instant::now() });
                    }
                }
            }
            for m in out {
                if let Err(e) = ws.send(m).await {
                    return End::Lost(format!("send: {e}"));
                }
            }
        }
    }

    /// Resets the per-socket state and sends the join (a churner joins
    /// later, on its schedule).
    async fn begin(&mut self, ws: &mut Ws) -> Result<(), End> {
        self.pending.clear();
        self.join_ref = None;
        self.stats.joined = false;
        self.rejoin_at = None;
        self.churn = ChurnState::Idle;
        if matches!(self.spec.role, Role::Churner { .. }) {
            self.ready(true);
            return Ok(());
        }
        let f = self.join_frame();
        ws.send(Message::text(f))
            .await
            .map_err(|e| End::Lost(format!("send join: {e}")))
    }

    /// The next time something is due: a heartbeat, an edit, a rejoin or
    /// a churner's leave.
    fn wake(&self, next_heartbeat: Instant) -> Instant {
        let mut wake = next_heartbeat;
        if let Some(t) = self.next_edit {
            wake = wake.min(t);
        }
        if let Some(t) = self.rejoin_at {
            wake = wake.min(t);
        }
        if let ChurnState::Joined { leave_at } = self.churn {
            wake = wake.min(leave_at);
        }
        wake
    }

    fn heartbeat(&mut self) -> Message {
        let r = self.make_ref();
        let hb = protocol::text_frame(
            None,
            Some(&r),
            protocol::PHOENIX_TOPIC,
            protocol::HEARTBEAT,
            &json!({}),
        );
        Message::text(hb)
    }

    /// A frame from the server; `Err` when it closed the socket.
    fn on_frame(&mut self, msg: Message, out: &mut Vec<Message>) -> Result<(), End> {
        self.stats.frames_in += 1;
        match msg {
            Message::Text(t) => self.on_text(t.as_str(), out),
            Message::Binary(b) => self.on_binary(&b, out),
            Message::Close(frame) => {
                let why = match frame {
                    Some(f) => format!("closed by server: {} {}", u16::from(f.code), f.reason),
                    None => "closed by server".into(),
                };
                return Err(End::Lost(why));
            }
            _ => {}
        }
        Ok(())
    }

    /// Schedules the first action of a run phase.
    fn plan(&mut self, phase: Phase) {
        self.next_edit = None;
        if let Phase::Run { start, end } = phase {
            let first = match &self.spec.role {
                Role::Member(Some(p)) => Some(start + p.offset),
                Role::Churner { offset, .. } => Some(start + *offset),
                _ => None,
            };
            self.next_edit = first.filter(|t| *t < end);
        }
    }

    fn on_timer(&mut self, now: Instant, phase: Phase, out: &mut Vec<Message>) {
        if self.rejoin_at.is_some_and(|t| now >= t) {
            self.rejoin_at = None;
            let f = self.join_frame();
            out.push(Message::text(f));
        }
        if let ChurnState::Joined { leave_at } = self.churn {
            if now >= leave_at {
                if let Some(jr) = self.join_ref.clone() {
                    let r = self.make_ref();
                    self.pending.insert(r.clone(), Pending::Leave);
                    let f = protocol::text_frame(
                        Some(&jr),
                        Some(&r),
                        &self.spec.topic,
                        protocol::PHX_LEAVE,
                        &json!({}),
                    );
                    out.push(Message::text(f));
                }
                self.churn = ChurnState::Leaving;
            }
        }
        let Some(due) = self.next_edit else { return };
        if now < due {
            return;
        }
        let Phase::Run { end, .. } = phase else {
            self.next_edit = None;
            return;
        };
        let (churner, period) = match &self.spec.role {
            Role::Member(Some(p)) => (false, p.period),
            Role::Churner { period, .. } => (true, *period),
            _ => return,
        };
        if !churner {
            if self.stats.joined {
                if let Some(m) = self.edit_message() {
                    out.push(m);
                }
            }
        } else if matches!(self.churn, ChurnState::Idle) {
            self.churn_cycle += 1;
            if let Role::Churner { table, .. } = &self.spec.role {
                table.sent(&self.user_key, self.churn_cycle, now, self.spec.node as u16);
            }
            let f = self.join_frame();
            self.stats.joins_sent += 1;
            self.churn = ChurnState::Joining;
            out.push(Message::text(f));
        } else {
            self.stats.churn_skipped += 1;
        }
        // Next slot on the schedule; slots missed while blocked are skipped.
        let mut next = due + period;
        while next <= now {
            next += period;
        }
        self.next_edit = (next < end).then_some(next);
    }

    /// Builds the next edit: JSON `response:update` or a binary `yjs` update.
    fn edit_message(&mut self) -> Option<Message> {
        let join_ref = self.join_ref.clone()?;
        self.seq += 1;
        let marker = Marker {
            sender: self.spec.idx,
            seq: self.seq,
            sent_us: self.ctx.now_us(),
        };
        let text = protocol::edit_text(marker, self.ctx.text_bytes);
        let r = self.make_ref();
        self.pending
            .insert(r.clone(), Pending::Edit(Instant::now()));
        self.stats.edits_sent += 1;
        let msg = match &self.doc {
            None => {
                let f = protocol::text_frame(
                    Some(&join_ref),
                    Some(&r),
                    &self.spec.topic,
                    protocol::RESPONSE_UPDATE,
                    &json!({ "response": text }),
                );
                Message::text(f)
            }
            Some((doc, ytext)) => {
                // The change a `response:update` makes, as a Yjs editor
                // sends it: the first edit inserts the whole text (marker
                // and filler), each later one replaces the marker at its
                // start and keeps the rest, as the server's own Y.Text edit
                // for a JSON update does. The new marker goes in after the
                // old one, so the markers' tombstones merge into one run
                // (the server does the same). These clients do not apply
                // what they receive (that would cost the load tool more than
                // the server): each edits its own text, and a room holds its
                // members' texts, ~1 KB.
                let marker = protocol::marker_text(marker);
                let update = {
                    let mut txn = doc.transact_mut();
                    if ytext.len(&txn) == 0 {
                        ytext.insert(&mut txn, 0, &text);
                    } else {
                        ytext.insert(&mut txn, self.marker_len, &marker);
                        ytext.remove_range(&mut txn, 0, self.marker_len);
                    }
                    txn.encode_update_v1()
                };
                self.marker_len = marker.len() as u32;
                let payload = protocol::sync_message(protocol::SYNC_UPDATE, &update);
                let f =
                    protocol::binary_push(&join_ref, &r, &self.spec.topic, protocol::YJS, &payload);
                Message::Binary(Bytes::from(f))
            }
        };
        Some(msg)
    }

    fn on_text(&mut self, text: &str, out: &mut Vec<Message>) {
        let Ok(f) = protocol::parse_text(text) else {
            self.stats.undecodable += 1;
            return;
        };
        if f.topic != *self.spec.topic {
            return; // heartbeat replies on "phoenix"
        }
        match f.event.as_str() {
            protocol::PHX_REPLY => {
                let Some(r) = f.msg_ref.as_deref() else {
                    return;
                };
                let (ok, detail) =
                    match serde_json::from_str::<protocol::ReplyPayload>(f.payload.get()) {
                        Ok(p) => (p.status == "ok", p.response.map(|r| r.get().to_string())),
                        Err(_) => (false, Some(f.payload.get().to_string())),
                    };
                let detail = detail.unwrap_or_default();
                self.on_reply(r, ok, &detail, out);
            }
            protocol::RESPONSE_UPDATED if self.ctx.mode == EditMode::Json => {
                self.on_delivery(f.payload.get().as_bytes());
            }
            protocol::PRESENCE_DIFF => {
                if let Role::Watcher(table) = &self.spec.role {
                    let table = table.clone();
                    if let Some(keys) = protocol::presence_diff_join_keys(f.payload) {
                        self.on_presence_joins(&table, keys);
                    }
                }
            }
            // A leave we asked for ends with phx_close too; only count the
            // channel going away while we believed we were joined.
            protocol::PHX_ERROR | protocol::PHX_CLOSE
                if f.join_ref.is_some()
                    && f.join_ref == self.join_ref
                    && self.stats.joined
                    && !matches!(self.spec.role, Role::Churner { .. }) =>
            {
                self.stats.channel_errors += 1;
                self.stats.joined = false;
            }
            _ => {}
        }
    }

    fn on_binary(&mut self, buf: &[u8], out: &mut Vec<Message>) {
        let Some(frame) = protocol::parse_binary(buf) else {
            self.stats.undecodable += 1;
            return;
        };
        if frame.topic() != &*self.spec.topic {
            return;
        }
        match frame {
            BinaryFrame::Reply {
                msg_ref,
                status,
                payload,
                ..
            } => {
                let detail = String::from_utf8_lossy(payload).into_owned();
                self.on_reply(msg_ref, status == "ok", &detail, out);
            }
            BinaryFrame::Push { event, payload, .. }
            | BinaryFrame::Broadcast { event, payload, .. } => {
                if event != protocol::YJS {
                    return;
                }
                match protocol::parse_sync_message(payload) {
                    Some((protocol::SYNC_STEP1, sv)) => self.answer_sync_step1(sv, out),
                    Some((protocol::SYNC_STEP2 | protocol::SYNC_UPDATE, update))
                        if self.ctx.mode == EditMode::Yjs =>
                    {
                        self.on_delivery(update)
                    }
                    _ => {}
                }
            }
        }
    }

    /// The server's sync step 1: send what it lacks (y-websocket does).
    fn answer_sync_step1(&mut self, sv: &[u8], out: &mut Vec<Message>) {
        let (Some((doc, _)), Some(jr)) = (&self.doc, self.join_ref.clone()) else {
            return;
        };
        let Ok(sv) = StateVector::decode_v1(sv) else {
            self.stats.undecodable += 1;
            return;
        };
        let diff = doc.transact().encode_diff_v1(&sv);
        let payload = protocol::sync_message(protocol::SYNC_STEP2, &diff);
        let r = self.make_ref();
        let f = protocol::binary_push(&jr, &r, &self.spec.topic, protocol::YJS, &payload);
        out.push(Message::Binary(Bytes::from(f)));
    }

    fn on_reply(&mut self, r: &str, ok: bool, detail: &str, out: &mut Vec<Message>) {
        let Some(p) = self.pending.remove(r) else {
            return;
        };
        let now = Instant::now();
        match p {
            Pending::Join(sent) if ok => self.on_joined(now, sent, out),
            Pending::Join(_) => self.on_join_refused(now, detail),
            Pending::Leave => {
                self.stats.joined = false;
                self.churn = ChurnState::Idle;
            }
            Pending::Edit(sent) if ok => {
                self.stats.edits_ok += 1;
                let latency = (now - sent).as_micros() as u64;
                self.ack.record(latency);
                let sent_us = sent
                    .into_std()
                    .saturating_duration_since(self.ctx.epoch)
                    .as_micros();
                crate::stats::timeline::ack(sent_us as u64, latency);
            }
            Pending::Edit(_) => {
                self.stats.edits_err += 1;
                self.stats
                    .edit_error_sample
                    .get_or_insert_with(|| detail.to_string());
            }
        }
    }

    /// The join sent at `sent` was accepted: a churner schedules its leave,
    /// a member is ready and (speaking Yjs) asks for what it lacks.
    fn on_joined(&mut self, now: Instant, sent: Instant, out: &mut Vec<Message>) {
        self.join.record((now - sent).as_micros() as u64);
        self.stats.joined = true;
        self.stats.was_joined = true;
        self.rejoin_attempt = 0;
        if let Role::Churner { period, .. } = &self.spec.role {
            self.stats.joins_ok += 1;
            self.churn = ChurnState::Joined {
                leave_at: now + *period / 2,
            };
            return;
        }
        self.ready(true);
        let sv = self
            .doc
            .as_ref()
            .map(|(doc, _)| doc.transact().state_vector().encode_v1());
        if let Some(sv) = sv {
            // As the provider does after joining: our state vector, so the
            // server sends what we lack.
            let payload = protocol::sync_message(protocol::SYNC_STEP1, &sv);
            let jr = self.join_ref.clone().unwrap_or_default();
            let r = self.make_ref();
            let f = protocol::binary_push(&jr, &r, &self.spec.topic, protocol::YJS_SYNC, &payload);
            out.push(Message::Binary(Bytes::from(f)));
        }
    }

    /// The join was refused: a churner counts it, a member that had joined
    /// before rejoins later (with `--reconnect`), any other gives up.
    fn on_join_refused(&mut self, now: Instant, detail: &str) {
        if matches!(self.spec.role, Role::Churner { .. }) {
            self.stats.joins_err += 1;
            self.stats
                .join_error
                .get_or_insert_with(|| detail.to_string());
            self.churn = ChurnState::Idle;
            return;
        }
        self.stats.join_error = Some(format!("join refused: {detail}"));
        if self.ctx.reconnect && self.stats.was_joined {
            // phoenix.js rejoins after 1, 2, 5, then every 10 s.
            let secs = [1, 2, 5].get(self.rejoin_attempt).copied().unwrap_or(10);
            self.rejoin_attempt += 1;
            self.rejoin_at = Some(now + Duration::from_secs(secs));
        } else {
            self.ready(false);
        }
    }

    /// Every marker from another member is one delivery.
    fn on_delivery(&mut self, bytes: &[u8]) {
        let now_us = self.ctx.now_us();
        for m in protocol::find_markers(bytes) {
            if m.sender == self.spec.idx {
                continue;
            }
            self.stats.deliveries_total += 1;
            if self.seen.insert((m.sender, m.seq)) {
                let latency = now_us.saturating_sub(m.sent_us);
                self.delivery.record(latency);
                if self.ctx.multi_node() {
                    let from = self.ctx.node_of.get(m.sender as usize).copied();
                    if self.ctx.crossed(from, self.spec.node) {
                        self.delivery_cross.record(latency);
                    } else {
                        self.delivery_same.record(latency);
                    }
                }
                crate::stats::timeline::delivery(m.sent_us, latency);
            }
        }
    }

    /// A watcher's `presence_diff` joins: the first diff holding a churner's
    /// key after its join was pushed times that join.
    fn on_presence_joins(&mut self, table: &JoinTable, keys: Vec<String>) {
        let now = Instant::now();
        for key in keys {
            let Some((cycle, sent, from)) = table.last(&key) else {
                continue;
            };
            let last = self.matched.get(&key).copied().unwrap_or(0);
            if cycle > last {
                let latency = (now - sent).as_micros() as u64;
                self.presence.record(latency);
                if self.ctx.multi_node() {
                    if self.ctx.crossed(Some(from), self.spec.node) {
                        self.presence_cross.record(latency);
                    } else {
                        self.presence_same.record(latency);
                    }
                }
                self.stats.presence_seen += 1;
                self.matched.insert(key, cycle);
            } else {
                self.stats.presence_dups += 1;
            }
        }
    }
}

enum Step {
    Frame(Option<Result<Message, WsError>>),
    Timer,
    /// The watch back, and the new phase (`None`: the run is gone).
    Phase((watch::Receiver<Phase>, Option<Phase>)),
}

/// The next phase change, with the watch to wait on for the one after.
async fn next_phase(mut rx: watch::Receiver<Phase>) -> (watch::Receiver<Phase>, Option<Phase>) {
    let next = match rx.changed().await {
        Ok(()) => Some(*rx.borrow_and_update()),
        Err(_) => None,
    };
    (rx, next)
}
