//! Many nodes (CONTRACT §5): with `DUET_REDIS_URL`, this process is a node
//! of a cluster whose nodes share one Postgres database (the truth) and
//! one Redis, used as a fast and lossy bus (pub/sub, nothing stored).
//!
//! Every node that has members in a room holds a replica of it; what a
//! room does goes on the bus once it is durable, and other nodes' rooms
//! apply it (see `challenges::room::remote`, which also says how a lost
//! or repeated message is caught: numbered updates, gaps read from the
//! database, a look at the log's heads every [`HEAD_CHECK_EVERY`]).
//! Presence is a partition per node, each node the only writer of its
//! own (as `Phoenix.Tracker`): changes go out as numbered deltas, and a
//! node that missed one asks for the whole partition ([`peers`]). Channel
//! broadcasts cross through [`ClusterPubSub`].
//!
//! Liveness: a heartbeat every [`HEARTBEAT_EVERY`]; a node not heard for
//! `peer_down` (1.5 s by default) is down, and so is one quiet for
//! [`QUIET_AFTER`] that Redis says no longer listens on its own channel
//! (a killed process's connection closes at once). A node stopping says
//! bye first. A down node's members leave everyone's presence, and its
//! cursors go. Nobody is judged while the bus itself is down or frozen
//! (a node that does not hear its own heartbeat back cannot tell a dead
//! node from a dead bus): when it returns, everyone gets a fresh window.
//!
//! All of it is one Redis channel (`duet:<cluster>:bus`) of frames
//! ([`wire`]); a node also listens on a channel of its own, only so that
//! others can ask Redis whether it is still there. `<cluster>` is a name
//! the database keeps (`Store::cluster_key`): clusters that share a Redis
//! never hear each other.

pub mod peers;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use fred::clients::SubscriberClient;
use fred::prelude::{
    ClientLike, Config as RedisConfig, EventInterface, PubsubInterface, ReconnectPolicy,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::peers::{Delta, Peers};
use self::wire::{Header, WireChange, WireEntry};
use crate::challenges::room::{InterviewState, Remote, RoomBus, Rooms};
use crate::channels::message::{Broadcast, Payload};
use crate::channels::presence::{Change, Owner, Presence};
use crate::channels::pubsub::{PubSub, SubId, Subscriber};
use crate::store::docs::DocKind;
use crate::store::Store;

/// The Redis channel of every frame.
pub const BUS: &str = "bus";
/// A node says it is alive this often.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// A node not heard for this long is down unless configured otherwise
/// (three heartbeats: one late or lost is no death).
pub const DEFAULT_PEER_DOWN: Duration = Duration::from_millis(1500);
/// A node quiet this long is looked at more closely: does Redis still see
/// it listening?
pub const QUIET_AFTER: Duration = Duration::from_millis(600);
/// How often liveness is checked.
const TICK: Duration = Duration::from_millis(100);
/// How often each room's log head is compared with what the room holds.
pub const HEAD_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Frames waiting to be published before new ones are dropped (the bus
/// is lossy anyway; this bounds memory while Redis is slow or frozen).
const OUT_QUEUE: usize = 65_536;
/// Frames published in one pipeline.
const PUBLISH_BATCH: usize = 512;
/// Frames received and not yet handled before the oldest are dropped
/// (then every partition and head is checked again). fred gives each of
/// its event channels (messages, reconnections, errors...) of both
/// clients this many slots up front: at 65 536 a node started with 92 MB
/// RSS instead of 12 MB; 8 192 is well over a second of a node's share of
/// the bus at 30 000 deliveries/s and costs about 10 MB.
const RECEIVE_QUEUE: usize = 8_192;
/// Longest a Redis command may take: a frozen Redis must not hold the
/// publisher (nor a stopping node's bye) for long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Delay between two attempts to reach Redis again.
const RECONNECT_DELAY_MS: u32 = 250;

/// A node's settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis_url: String,
    /// The node's name (`/healthz`), unique in the cluster.
    pub name: String,
    pub peer_down: Duration,
    pub faults: Faults,
}

/// Faults injected into received room and presence frames (tests only:
/// the bus must lose nothing that matters when it drops or repeats).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub drop: f64,
    pub dup: f64,
}

impl Faults {
    /// Parses `drop=0.1,dup=0.05`.
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part}: expected drop=<p> or dup=<p>"))?;
            let p: f64 = value
                .parse()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| format!("{part}: a probability between 0 and 1"))?;
            match key {
                "drop" => faults.drop = p,
                "dup" => faults.dup = p,
                _ => return Err(format!("{part}: expected drop or dup")),
            }
        }
        Ok(faults)
    }
}

/// What the cluster talks to on this node, once the app is built.
pub struct Wired {
    pub presence: Presence,
    /// This node's own fan-out (remote broadcasts and diffs end there).
    pub local: Arc<dyn PubSub>,
    pub rooms: Rooms,
    pub store: Store,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct BusCounters {
    pub published: AtomicU64,
    pub received: AtomicU64,
    /// Frames not published: the queue was full or Redis unreachable.
    pub dropped: AtomicU64,
    /// Presence partitions asked for after a loss.
    pub resyncs: AtomicU64,
    pub nodes_down: AtomicU64,
}

/// This node of the cluster: a cheap handle.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    id: u32,
    name: String,
    config: ClusterConfig,
    client: fred::clients::Client,
    subscriber: SubscriberClient,
    out: mpsc::Sender<Vec<u8>>,
    out_rx: Mutex<Option<mpsc::Receiver<Vec<u8>>>>,
    peers: Mutex<Peers>,
    deltas: Mutex<Deltas>,
    deltas_ready: Notify,
    check_heads: Notify,
    wired: OnceLock<Wired>,
    /// `duet:<cluster>:`, the start of this cluster's channel names.
    prefix: OnceLock<String>,
    /// Stopping: nothing more about presence goes out.
    leaving: AtomicBool,
    counters: BusCounters,
}

/// This node's presence changes not yet published, and the number of the
/// last delta published.
#[derive(Default)]
struct Deltas {
    pending: Vec<(String, Change)>,
    pseq: u64,
}

impl Cluster {
    /// Sets up this node's Redis clients (connecting in the background:
    /// a node starts, and serves its own members, while Redis is down).
    pub fn new(config: ClusterConfig) -> anyhow::Result<Cluster> {
        let mut redis = RedisConfig::from_url(&config.redis_url)
            .with_context(|| "DUET_REDIS_URL is not a Redis URL (redis://host:port)")?;
        redis.fail_fast = false;
        let mut builder = fred::types::Builder::from_config(redis);
        builder
            .set_policy(ReconnectPolicy::new_constant(0, RECONNECT_DELAY_MS))
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = RECEIVE_QUEUE;
            })
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
                c.max_command_attempts = 1;
            });
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let id = loop {
            let id = rand::random::<u32>();
            if id != 0 {
                break id;
            }
        };
        Ok(Cluster {
            inner: Arc::new(Inner {
                id,
                name: config.name.clone(),
                config,
                client,
                subscriber,
                out,
                out_rx: Mutex::new(Some(out_rx)),
                peers: Mutex::default(),
                deltas: Mutex::default(),
                deltas_ready: Notify::new(),
                check_heads: Notify::new(),
                wired: OnceLock::new(),
                prefix: OnceLock::new(),
                leaving: AtomicBool::new(false),
                counters: BusCounters::default(),
            }),
        })
    }

    /// This node's number: new at each start, so that a restarted node is
    /// a new node to the others (its old members leave).
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Live nodes this node sees, itself included.
    pub fn live_nodes(&self) -> usize {
        self.inner.peers.lock().len() + 1
    }

    pub fn counters(&self) -> &BusCounters {
        &self.inner.counters
    }

    /// Where rooms tell the other nodes what happened.
    pub fn room_bus(&self) -> Arc<dyn RoomBus> {
        Arc::new(self.clone())
    }

    /// A PubSub whose broadcasts also reach the other nodes' subscribers.
    pub fn pubsub(&self, local: Arc<dyn PubSub>) -> Arc<dyn PubSub> {
        Arc::new(ClusterPubSub {
            local,
            cluster: self.clone(),
        })
    }

    /// Starts the node's tasks (they end with `shutdown`, saying bye first).
    pub fn start(
        &self,
        wired: Wired,
        cluster_key: &str,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let _ = self.inner.prefix.set(format!("duet:{cluster_key}:"));
        let replicator = {
            let me = self.clone();
            Arc::new(move |topic: &str, change: Change| me.replicate(topic, change))
        };
        wired.presence.set_replicator(replicator);
        if self.inner.wired.set(wired).is_err() {
            tracing::warn!("the cluster was started twice");
            return;
        }
        self.inner.client.connect();
        self.inner.subscriber.connect();
        // Resubscribes after every reconnection; its task runs on its own.
        drop(self.inner.subscriber.manage_subscriptions());
        if let Some(rx) = self.inner.out_rx.lock().take() {
            tracker.spawn(self.clone().publisher(rx, shutdown.clone()));
        }
        tracker.spawn(self.clone().receiver(shutdown.clone()));
        tracker.spawn(self.clone().subscriptions(shutdown.clone()));
        tracker.spawn(self.clone().deltas(shutdown.clone()));
        tracker.spawn(self.clone().heads(shutdown.clone()));
        tracker.spawn(self.clone().liveness(shutdown));
        tracing::info!(
            node = self.inner.name,
            id = format!("{:08x}", self.inner.id),
            "cluster node started"
        );
    }

    fn prefix(&self) -> &str {
        self.inner.prefix.get().map_or("duet:", String::as_str)
    }

    /// The cluster's bus channel.
    fn bus(&self) -> String {
        format!("{}{BUS}", self.prefix())
    }

    /// The channel only node `node` listens on.
    fn own_channel(&self, node: u32) -> String {
        format!("{}n:{node:08x}", self.prefix())
    }

    fn wired(&self) -> Option<&Wired> {
        self.inner.wired.get()
    }

    /// Queues a frame for the bus; dropped when the queue is full.
    fn send(&self, header: &Header, body: &[u8]) {
        if self.inner.out.try_send(wire::encode(header, body)).is_err() {
            self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes queued frames, in order, in pipelines.
    async fn publisher(self, mut rx: mpsc::Receiver<Vec<u8>>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        let mut warned_at: Option<Instant> = None;
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, PUBLISH_BATCH) => n,
                // Frames queued while stopping (the last edits) still go.
                _ = shutdown.cancelled(), if rx.is_empty() => break,
            };
            if n == 0 {
                break;
            }
            let count = batch.len() as u64;
            if !self.inner.client.is_connected() {
                self.inner
                    .counters
                    .dropped
                    .fetch_add(count, Ordering::Relaxed);
                batch.clear();
                continue;
            }
            let pipeline = self.inner.client.pipeline();
            for frame in batch.drain(..) {
                let _: Result<(), _> = pipeline.publish(self.bus(), frame).await;
            }
            let results: Vec<Result<i64, fred::error::Error>> = pipeline.try_all().await;
            let failed = results.iter().filter(|r| r.is_err()).count() as u64;
            self.inner
                .counters
                .published
                .fetch_add(count - failed, Ordering::Relaxed);
            if failed > 0 {
                self.inner
                    .counters
                    .dropped
                    .fetch_add(failed, Ordering::Relaxed);
                if warned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    warned_at = Some(Instant::now());
                    if let Some(Err(err)) = results.iter().find(|r| r.is_err()) {
                        tracing::warn!(cause = %err, failed, "bus frames not published");
                    }
                }
            }
        }
    }

    /// Subscribes (again, after every reconnection: fred's
    /// `manage_subscriptions` does that) and, each time Redis comes back,
    /// asks for every partition and looks at every head: whatever went on
    /// the bus meanwhile was lost.
    async fn subscriptions(self, shutdown: CancellationToken) {
        let own = self.own_channel(self.inner.id);
        let mut reconnects = self.inner.subscriber.reconnect_rx();
        loop {
            let subscribed = async {
                self.inner.subscriber.subscribe(self.bus()).await?;
                self.inner.subscriber.subscribe(own.as_str()).await
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                result = subscribed => match result {
                    Ok(()) => break,
                    Err(err) => {
                        tracing::debug!(cause = %err, "not subscribed to the bus yet");
                        tokio::time::sleep(Duration::from_millis(u64::from(RECONNECT_DELAY_MS))).await;
                    }
                },
            }
        }
        tracing::info!("listening on the cluster bus");
        self.after_a_loss();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = reconnects.recv() => match event {
                    Ok(_) => {
                        tracing::info!("the bus is back");
                        self.after_a_loss();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.after_a_loss(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Frames may have been lost: every node's partition is asked for
    /// again at its next heartbeat, and every room's head is looked at.
    fn after_a_loss(&self) {
        self.inner.peers.lock().forget_deltas();
        self.inner.check_heads.notify_one();
        self.heartbeat();
    }

    /// Handles every frame received.
    async fn receiver(self, shutdown: CancellationToken) {
        let mut rx = self.inner.subscriber.message_rx();
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = rx.recv() => m,
            };
            match message {
                Ok(message) => {
                    if let Some(frame) = message.value.as_bytes() {
                        self.inner.counters.received.fetch_add(1, Ordering::Relaxed);
                        self.receive(frame);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "fell behind the bus; checking everything again");
                    self.after_a_loss();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn receive(&self, frame: &[u8]) {
        let (header, body) = match wire::decode(frame) {
            Ok(decoded) => decoded,
            Err(err) => {
                tracing::debug!(cause = %err, "a bus frame skipped");
                return;
            }
        };
        if header.node() == self.inner.id {
            if matches!(header, Header::Hb { .. }) {
                self.inner.peers.lock().heard_self(Instant::now());
            }
            return;
        }
        let faults = self.inner.config.faults;
        let faulty = !matches!(
            header,
            Header::Hb { .. } | Header::Bye { .. } | Header::SyncReq { .. } | Header::State { .. }
        );
        if faulty && faults.drop > 0.0 && rand::random::<f64>() < faults.drop {
            return;
        }
        let twice = faulty && faults.dup > 0.0 && rand::random::<f64>() < faults.dup;
        if twice {
            if let Ok((again, body)) = wire::decode(frame) {
                self.handle(again, body);
            }
        }
        self.handle(header, body);
    }

    fn handle(&self, header: Header, body: &[u8]) {
        let Some(wired) = self.wired() else {
            return;
        };
        let node = header.node();
        let now = Instant::now();
        match header {
            Header::Hb { name, pseq, .. } => {
                let (replaced, ask) = {
                    let mut peers = self.inner.peers.lock();
                    let replaced = peers.heard(node, Some(&name), now);
                    (replaced, peers.heartbeat(node, pseq, now))
                };
                for old in replaced {
                    tracing::info!(node = name, "node restarted");
                    self.node_down(old);
                }
                if ask {
                    self.ask(node);
                }
            }
            Header::Bye { .. } => {
                self.inner.peers.lock().remove(node);
                self.node_down(node);
            }
            Header::Presence {
                pseq,
                topic,
                changes,
                ..
            } => {
                let delta = {
                    let mut peers = self.inner.peers.lock();
                    peers.heard(node, None, now);
                    peers.delta(node, pseq, now)
                };
                match delta {
                    Delta::Apply => wired.presence.apply_remote(
                        node,
                        &topic,
                        changes.into_iter().map(change_of).collect(),
                    ),
                    Delta::Ignore | Delta::Resync { ask: false } => {}
                    Delta::Resync { ask: true } => self.ask(node),
                }
            }
            Header::SyncReq { to, .. } => {
                self.inner.peers.lock().heard(node, None, now);
                if to == self.inner.id {
                    self.send_state(node);
                }
            }
            Header::State {
                to, pseq, entries, ..
            } => {
                self.inner.peers.lock().heard(node, None, now);
                if to == self.inner.id {
                    let entries = entries
                        .into_iter()
                        .map(|e| (e.topic, e.key, e.sub, e.meta))
                        .collect();
                    wired.presence.replace_partition(node, entries);
                    self.inner.peers.lock().synced(node, pseq);
                }
            }
            other => self.handle_room(wired, node, other, body),
        }
    }

    /// Room frames and broadcasts.
    fn handle_room(&self, wired: &Wired, node: u32, header: Header, body: &[u8]) {
        self.inner.peers.lock().heard(node, None, Instant::now());
        match header {
            Header::Update {
                c,
                d,
                seq,
                user,
                notice,
                ..
            } => wired.rooms.remote(
                &c,
                doc_of(d),
                Remote::Update {
                    seq,
                    user_id: user,
                    notice,
                    update: body.to_vec(),
                },
            ),
            Header::Awareness { c, d, sub, .. } => wired.rooms.remote(
                &c,
                doc_of(d),
                Remote::Awareness {
                    owner: Owner { node, sub },
                    message: body.to_vec(),
                },
            ),
            Header::Challenge { c, challenge, .. } => {
                if let Ok(state) = serde_json::from_str::<InterviewState>(challenge.get()) {
                    wired
                        .rooms
                        .remote(&c, DocKind::Answer, Remote::Interview(state));
                }
            }
            Header::Activity { c, shown, .. } => {
                if let Ok(shown) = serde_json::from_str(shown.get()) {
                    wired
                        .rooms
                        .remote(&c, DocKind::Answer, Remote::Activity(shown));
                }
            }
            Header::Broadcast {
                topic,
                event,
                binary,
                ..
            } => {
                let payload = if binary {
                    Payload::Binary(bytes::Bytes::copy_from_slice(body))
                } else {
                    match serde_json::from_slice(body) {
                        Ok(v) => Payload::Json(v),
                        Err(_) => return,
                    }
                };
                wired.local.broadcast(
                    Broadcast {
                        topic,
                        event,
                        payload,
                    },
                    None,
                );
            }
            _ => {}
        }
    }

    /// Node `node` is gone: its members leave, its cursors go.
    fn node_down(&self, node: u32) {
        let Some(wired) = self.wired() else {
            return;
        };
        self.inner
            .counters
            .nodes_down
            .fetch_add(1, Ordering::Relaxed);
        let left = wired.presence.drop_node(node);
        wired.rooms.node_down(node);
        tracing::info!(node = format!("{node:08x}"), left, "node down");
    }

    /// Asks `node` for its whole presence partition.
    fn ask(&self, node: u32) {
        self.inner.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        self.send(
            &Header::SyncReq {
                node: self.inner.id,
                to: node,
            },
            &[],
        );
    }

    /// This node's whole partition, for `to`.
    fn send_state(&self, to: u32) {
        if self.inner.leaving.load(Ordering::Acquire) {
            return;
        }
        let Some(wired) = self.wired() else {
            return;
        };
        // Deltas first: the partition then holds at least what they say.
        let pseq = self.flush_deltas();
        let entries = wired
            .presence
            .partition()
            .into_iter()
            .map(|(topic, key, sub, meta)| WireEntry {
                topic,
                key,
                sub,
                meta,
            })
            .collect();
        self.send(
            &Header::State {
                node: self.inner.id,
                to,
                pseq,
                entries,
            },
            &[],
        );
    }

    /// Called by Presence, under its lock, for each change of this node's
    /// entries.
    fn replicate(&self, topic: &str, change: Change) {
        if self.inner.leaving.load(Ordering::Acquire) {
            return;
        }
        self.inner
            .deltas
            .lock()
            .pending
            .push((topic.to_owned(), change));
        self.inner.deltas_ready.notify_one();
    }

    /// Publishes the pending presence changes, one numbered delta per run
    /// of the same topic; returns the last number.
    fn flush_deltas(&self) -> u64 {
        let mut deltas = self.inner.deltas.lock();
        let pending = std::mem::take(&mut deltas.pending);
        let mut runs: Vec<(String, Vec<WireChange>)> = Vec::new();
        for (topic, change) in pending {
            match runs.last_mut() {
                Some((t, changes)) if *t == topic => changes.push(wire_change(change)),
                _ => runs.push((topic, vec![wire_change(change)])),
            }
        }
        for (topic, changes) in runs {
            deltas.pseq += 1;
            let header = Header::Presence {
                node: self.inner.id,
                pseq: deltas.pseq,
                topic,
                changes,
            };
            self.send(&header, &[]);
        }
        deltas.pseq
    }

    async fn deltas(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.deltas_ready.notified() => { self.flush_deltas(); }
            }
        }
    }

    fn heartbeat(&self) {
        if self.inner.leaving.load(Ordering::Acquire) {
            return;
        }
        let pseq = self.inner.deltas.lock().pseq;
        self.send(
            &Header::Hb {
                node: self.inner.id,
                name: self.inner.name.clone(),
                pseq,
            },
            &[],
        );
    }

    /// Heartbeats, and nodes gone silent; at shutdown, the bye.
    async fn liveness(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_beat: Option<Instant> = None;
        let mut probing: HashMap<u32, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            if last_beat.is_none_or(|at| now.duration_since(at) >= HEARTBEAT_EVERY) {
                last_beat = Some(now);
                self.heartbeat();
            }
            let (gone, quiet) = {
                let mut peers = self.inner.peers.lock();
                if peers.bus_up(now) {
                    let gone = peers.silent(self.inner.config.peer_down, now);
                    let quiet = if peers.bus_settled(now) {
                        peers.quiet(QUIET_AFTER, now)
                    } else {
                        Vec::new()
                    };
                    (gone, quiet)
                } else {
                    (Vec::new(), Vec::new())
                }
            };
            for node in gone {
                self.node_down(node);
            }
            probing.retain(|_, at| now.duration_since(*at) < QUIET_AFTER);
            for node in quiet {
                if probing.insert(node, now).is_none() {
                    tokio::spawn(self.clone().probe(node));
                }
            }
        }
        self.bye().await;
    }

    /// Whether a quiet node still listens on its own channel; if Redis
    /// says nobody does, it is down now (its process is gone).
    async fn probe(self, node: u32) {
        let channel = self.own_channel(node);
        let counts: Result<Vec<(String, i64)>, _> =
            self.inner.client.pubsub_numsub(channel.as_str()).await;
        if let Ok(counts) = counts {
            if counts.iter().any(|(c, n)| *c == channel && *n == 0)
                && self.inner.peers.lock().remove(node)
            {
                tracing::info!(node = format!("{node:08x}"), "node no longer listening");
                self.node_down(node);
            }
        }
    }

    /// Tells the others this node is going (its members leave at once);
    /// nothing more about presence goes out after it.
    async fn bye(&self) {
        self.inner.leaving.store(true, Ordering::Release);
        let frame = wire::encode(
            &Header::Bye {
                node: self.inner.id,
            },
            &[],
        );
        let sent: Result<Result<i64, _>, _> = tokio::time::timeout(
            COMMAND_TIMEOUT,
            self.inner.client.publish(self.bus(), frame),
        )
        .await;
        if !matches!(sent, Ok(Ok(_))) {
            tracing::warn!("could not say bye on the bus; the others will notice in a moment");
        }
    }

    /// Every room's log head against what the room holds; a room behind
    /// reads what it lacks.
    async fn heads(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(HEAD_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.inner.check_heads.notified() => {}
            }
            let Some(wired) = self.wired() else {
                continue;
            };
            let held = wired.rooms.held();
            if held.is_empty() {
                continue;
            }
            let mut ids: Vec<String> = held.iter().map(|(id, _, _)| id.clone()).collect();
            ids.sort();
            ids.dedup();
            let heads = match wired.store.doc_heads(&ids).await {
                Ok(heads) => heads,
                Err(err) => {
                    tracing::debug!(cause = %err, "log heads not read");
                    continue;
                }
            };
            let held: HashMap<(String, DocKind), i64> = held
                .into_iter()
                .map(|(id, d, seq)| ((id, d), seq))
                .collect();
            for (id, doc, head) in heads {
                tracing::trace!(challenge_id = id, ?doc, head, held = ?held.get(&(id.clone(), doc)), "log head");
                if held.get(&(id.clone(), doc)).is_some_and(|seq| *seq < head) {
                    wired.rooms.remote(&id, doc, Remote::Head(head));
                }
            }
        }
    }
}

impl RoomBus for Cluster {
    fn update(
        &self,
        id: &str,
        doc: DocKind,
        seq: i64,
        user_id: Option<&str>,
        notice: bool,
        update: &[u8],
    ) {
        let header = Header::Update {
            node: self.inner.id,
            c: id.to_owned(),
            d: doc.column(),
            seq,
            user: user_id.map(str::to_owned),
            notice,
        };
        self.send(&header, update);
    }

    fn awareness(&self, id: &str, doc: DocKind, sub: SubId, message: &[u8]) {
        let header = Header::Awareness {
            node: self.inner.id,
            c: id.to_owned(),
            d: doc.column(),
            sub,
        };
        self.send(&header, message);
    }

    fn interview(&self, id: &str, state: &InterviewState) {
        if let Ok(challenge) = serde_json::value::to_raw_value(state) {
            let header = Header::Challenge {
                node: self.inner.id,
                c: id.to_owned(),
                challenge,
            };
            self.send(&header, &[]);
        }
    }

    fn activity(&self, id: &str, shown: &serde_json::Value) {
        if let Ok(shown) = serde_json::value::to_raw_value(shown) {
            let header = Header::Activity {
                node: self.inner.id,
                c: id.to_owned(),
                shown,
            };
            self.send(&header, &[]);
        }
    }
}

/// The local fan-out, and every broadcast also to the other nodes.
struct ClusterPubSub {
    local: Arc<dyn PubSub>,
    cluster: Cluster,
}

impl PubSub for ClusterPubSub {
    fn next_id(&self) -> SubId {
        self.local.next_id()
    }

    fn subscribe(&self, topic: &str, id: SubId, sub: Subscriber) {
        self.local.subscribe(topic, id, sub)
    }

    fn unsubscribe(&self, topic: &str, id: SubId) {
        self.local.unsubscribe(topic, id)
    }

    fn broadcast(&self, msg: Broadcast, from: Option<SubId>) {
        let (binary, body) = match &msg.payload {
            Payload::Json(v) => (false, serde_json::to_vec(v).unwrap_or_default()),
            Payload::Binary(b) => (true, b.to_vec()),
        };
        let header = Header::Broadcast {
            node: self.cluster.inner.id,
            topic: msg.topic.clone(),
            event: msg.event.clone(),
            binary,
        };
        self.cluster.send(&header, &body);
        self.local.broadcast(msg, from);
    }

    fn subscriber_count(&self, topic: &str) -> usize {
        self.local.subscriber_count(topic)
    }
}

fn doc_of(column: i64) -> DocKind {
    if column == DocKind::Notes.column() {
        DocKind::Notes
    } else {
        DocKind::Answer
    }
}

fn wire_change(change: Change) -> WireChange {
    match change {
        Change::Join { key, sub, meta } => WireChange {
            key,
            sub,
            meta: Some(meta),
        },
        Change::Leave { key, sub } => WireChange {
            key,
            sub,
            meta: None,
        },
    }
}

fn change_of(change: WireChange) -> Change {
    match change.meta {
        Some(meta) => Change::Join {
            key: change.key,
            sub: change.sub,
            meta,
        },
        None => Change::Leave {
            key: change.key,
            sub: change.sub,
        },
    }
}
