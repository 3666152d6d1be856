//! Phoenix.Presence: who is on a topic. `track`, `update`, `untrack` and
//! `list` over (topic, key, meta); every entry gets a unique `phx_ref`, an
//! update carries `phx_ref_prev`. Changes become `presence_diff` broadcasts
//! `{joins, leaves}`; changes that arrive within [`BATCH_WINDOW`] (or the
//! longer window an update may ask for) are merged into one diff, as
//! phoenix.js applies them the same way.
//!
//! Replicas: every entry is owned by one channel of one node ([`Owner`]).
//! A node only ever changes its own entries; each change is handed to the
//! [`Replicator`] (the cluster, when there is one), and other nodes' changes
//! come back through [`Presence::apply_remote`], merged by owner as
//! `Phoenix.Tracker` does (its partition per node, without the causal
//! context: transfers always come from the owner). A node that goes away
//! takes its entries with it ([`Presence::drop_node`]). Diffs are broadcast
//! on this node's own pubsub only: every node computes its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::message::{Broadcast, Payload, PRESENCE_DIFF};
use super::pubsub::{PubSub, SubId};

/// Diffs produced within this window are merged into one broadcast: a burst
/// of joins costs one message per member, not one per join, and a human
/// cannot tell 10 ms apart.
pub const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Who owns a presence entry: a channel (its subscription id) on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The node the channel runs on (entries of a node leave with it).
    pub node: u32,
    /// The channel's subscription id, unique on its node.
    pub sub: SubId,
}

#[derive(Debug, Clone)]
struct Entry {
    owner: Owner,
    /// The meta as sent, `phx_ref` (and `phx_ref_prev`) included, kept as
    /// its JSON text: a member costs one small string, not a map of values.
    meta: Meta,
}

/// A meta as its JSON text.
pub type Meta = Box<RawValue>;

fn encode_meta(meta: &Map<String, Value>) -> Meta {
    // A map of JSON values always serializes.
    serde_json::value::to_raw_value(meta).unwrap_or_else(|_| empty_meta())
}

fn empty_meta() -> Meta {
    RawValue::from_string("{}".to_owned()).expect("{} is JSON")
}

fn decode_meta(meta: &Meta) -> Map<String, Value> {
    serde_json::from_str(meta.get()).unwrap_or_default()
}

#[derive(Default)]
struct TopicState {
    entries: HashMap<Box<str>, Vec<Entry>>,
    pending: Option<PendingDiff>,
}

#[derive(Debug)]
struct PendingDiff {
    joins: Vec<(Box<str>, Meta)>,
    leaves: Vec<(Box<str>, Meta)>,
    /// When the diff is to be broadcast: a flush is scheduled for then.
    due: Instant,
}

/// A change of this node's entries, for the other nodes.
#[derive(Debug, Clone)]
pub enum Change {
    /// `sub`'s entry for `key` is now `meta` (a track or an update).
    Join {
        /// The presence key (a user id).
        key: Box<str>,
        /// The owning subscription on its node.
        sub: SubId,
        /// The meta, `phx_ref` included.
        meta: Meta,
    },
    /// `sub`'s entry for `key` is gone.
    Leave {
        /// The presence key.
        key: Box<str>,
        /// The owning subscription on its node.
        sub: SubId,
    },
}

/// One entry of a node's partition: (topic, key, owner's sub, meta).
pub type PartitionEntry = (String, Box<str>, SubId, Meta);

/// Where this node's changes go, in the order they happen (called under
/// the tracker's lock: keep it short).
pub type Replicator = Arc<dyn Fn(&str, Change) + Send + Sync>;

struct Inner {
    topics: Mutex<HashMap<String, TopicState>>,
    pubsub: Arc<dyn PubSub>,
    refs: AtomicU64,
    node: u32,
    /// Prefix making refs unique across restarts and nodes (clients keep
    /// old refs, and see other nodes' refs).
    epoch: String,
    replicator: std::sync::OnceLock<Replicator>,
    /// Where scheduled flushes run, so shutdown waits for them (a flush
    /// is due within its window: at most a few hundred milliseconds).
    tracker: TaskTracker,
}

/// A cheap handle to the tracker.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

impl Presence {
    /// A tracker for node `node` (a number no other node of the cluster
    /// uses, new at each start), broadcasting diffs on `pubsub`, which
    /// must be this node's alone; its scheduled flushes are tasks of
    /// `tracker`.
    pub fn new(pubsub: Arc<dyn PubSub>, node: u32, tracker: TaskTracker) -> Self {
        let epoch = format!("{node:x}.");
        Presence {
            inner: Arc::new(Inner {
                topics: Mutex::default(),
                pubsub,
                refs: AtomicU64::new(0),
                node,
                epoch,
                replicator: std::sync::OnceLock::new(),
                tracker,
            }),
        }
    }

    /// This node's number.
    pub fn node(&self) -> u32 {
        self.inner.node
    }

    /// Hands every later change of this node's entries to `replicator`;
    /// false if one was set already.
    pub fn set_replicator(&self, replicator: Replicator) -> bool {
        self.inner.replicator.set(replicator).is_ok()
    }

    fn replicate(&self, topic: &str, change: impl FnOnce() -> Change) {
        if let Some(r) = self.inner.replicator.get() {
            r(topic, change());
        }
    }

    /// The owner of the entries a subscription tracks on this node.
    pub fn owner(&self, sub: SubId) -> Owner {
        Owner {
            node: self.inner.node,
            sub,
        }
    }

    fn next_ref(&self) -> String {
        let n = self.inner.refs.fetch_add(1, Ordering::Relaxed);
        format!("{}{:x}", self.inner.epoch, n)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, TopicState>> {
        self.inner.topics.lock()
    }

    /// Tracks `key` on `topic` with `meta`; returns the entry's `phx_ref`.
    pub fn track(
        &self,
        topic: &str,
        key: &str,
        owner: Owner,
        mut meta: Map<String, Value>,
    ) -> String {
        let phx_ref = self.next_ref();
        meta.insert("phx_ref".into(), Value::String(phx_ref.clone()));
        let meta = encode_meta(&meta);
        let schedule = {
            let mut topics = self.lock();
            let state = topics.entry(topic.to_owned()).or_default();
            state
                .entries
                .entry(key.into())
                // Most keys have one entry: no room for four.
                .or_insert_with(|| Vec::with_capacity(1))
                .push(Entry {
                    owner,
                    meta: meta.clone(),
                });
            self.replicate(topic, || Change::Join {
                key: key.into(),
                sub: owner.sub,
                meta: meta.clone(),
            });
            push_pending(state, BATCH_WINDOW, |p| p.joins.push((key.into(), meta)))
        };
        self.maybe_schedule(topic, schedule);
        phx_ref
    }

    /// Replaces the meta of `owner`'s entry for `key`, through `f`. Returns
    /// false when there is no such entry. A new `phx_ref` is issued and the
    /// old one kept as `phx_ref_prev`. The diff goes out within `window`
    /// (at least [`BATCH_WINDOW`]), or sooner with a join or leave.
    pub fn update(
        &self,
        topic: &str,
        key: &str,
        owner: Owner,
        window: Duration,
        f: impl FnOnce(&mut Map<String, Value>),
    ) -> bool {
        let new_ref = self.next_ref();
        let schedule = {
            let mut topics = self.lock();
            let Some(state) = topics.get_mut(topic) else {
                return false;
            };
            let Some(entry) = state
                .entries
                .get_mut(key)
                .and_then(|es| es.iter_mut().find(|e| e.owner == owner))
            else {
                return false;
            };
            let old_meta = entry.meta.clone();
            let mut meta = decode_meta(&entry.meta);
            meta.remove("phx_ref_prev");
            let old_ref = meta.remove("phx_ref").unwrap_or(Value::Null);
            f(&mut meta);
            meta.insert("phx_ref".into(), Value::String(new_ref));
            meta.insert("phx_ref_prev".into(), old_ref);
            let meta = encode_meta(&meta);
            entry.meta = meta.clone();
            self.replicate(topic, || Change::Join {
                key: key.into(),
                sub: owner.sub,
                meta: meta.clone(),
            });
            push_pending(state, window.max(BATCH_WINDOW), |p| {
                p.leaves.push((key.into(), old_meta));
                p.joins.push((key.into(), meta));
            })
        };
        self.maybe_schedule(topic, schedule);
        true
    }

    /// Removes every entry `owner` has on `topic` (a channel ending, for any
    /// reason). Returns how many entries went.
    pub fn untrack_owner(&self, topic: &str, owner: Owner) -> usize {
        let (removed, schedule) = {
            let mut topics = self.lock();
            let Some(state) = topics.get_mut(topic) else {
                return 0;
            };
            let mut gone = Vec::new();
            state.entries.retain(|key, entries| {
                entries.retain(|e| {
                    if e.owner == owner {
                        gone.push((key.clone(), e.meta.clone()));
                        false
                    } else {
                        true
                    }
                });
                !entries.is_empty()
            });
            let n = gone.len();
            for (key, _) in &gone {
                self.replicate(topic, || Change::Leave {
                    key: key.clone(),
                    sub: owner.sub,
                });
            }
            let schedule = if n > 0 {
                push_pending(state, BATCH_WINDOW, |p| p.leaves.extend(gone))
            } else {
                None
            };
            if state.entries.is_empty() && state.pending.is_none() {
                topics.remove(topic);
            }
            (n, schedule)
        };
        self.maybe_schedule(topic, schedule);
        removed
    }

    /// Applies node `node`'s changes on `topic` (from the cluster): its
    /// entries there become what they say; local members get the diff.
    /// A change that changes nothing (heard twice) is no change.
    pub fn apply_remote(&self, node: u32, topic: &str, changes: Vec<Change>) {
        let schedule = {
            let mut topics = self.lock();
            let state = topics.entry(topic.to_owned()).or_default();
            let mut joins = Vec::new();
            let mut leaves = Vec::new();
            for change in changes {
                match change {
                    Change::Join { key, sub, meta } => {
                        let owner = Owner { node, sub };
                        let entries = state.entries.entry(key.clone()).or_default();
                        match entries.iter_mut().find(|e| e.owner == owner) {
                            Some(e) if e.meta.get() == meta.get() => {}
                            Some(e) => {
                                leaves.push((
                                    key.clone(),
                                    std::mem::replace(&mut e.meta, meta.clone()),
                                ));
                                joins.push((key, meta));
                            }
                            None => {
                                entries.push(Entry {
                                    owner,
                                    meta: meta.clone(),
                                });
                                joins.push((key, meta));
                            }
                        }
                    }
                    Change::Leave { key, sub } => {
                        let owner = Owner { node, sub };
                        if let Some(entries) = state.entries.get_mut(&key) {
                            if let Some(i) = entries.iter().position(|e| e.owner == owner) {
                                leaves.push((key.clone(), entries.swap_remove(i).meta));
                            }
                            if entries.is_empty() {
                                state.entries.remove(&key);
                            }
                        }
                    }
                }
            }
            let schedule = if joins.is_empty() && leaves.is_empty() {
                None
            } else {
                push_pending(state, BATCH_WINDOW, |p| {
                    p.joins.extend(joins);
                    p.leaves.extend(leaves);
                })
            };
            if state.entries.is_empty() && state.pending.is_none() {
                topics.remove(topic);
            }
            schedule
        };
        self.maybe_schedule(topic, schedule);
    }

    /// Removes every entry of node `node` (gone, or about to be replaced by
    /// its full partition); returns how many went.
    pub fn drop_node(&self, node: u32) -> usize {
        self.retain_node(node, |_, _, _| false)
    }

    /// Keeps the entries of `node` that `keep(topic, key, entry)` wants;
    /// leaves for the others. Returns how many went.
    fn retain_node(&self, node: u32, mut keep: impl FnMut(&str, &str, &Entry) -> bool) -> usize {
        let mut schedules = Vec::new();
        let mut removed = 0;
        {
            let mut topics = self.lock();
            topics.retain(|topic, state| {
                let mut gone = Vec::new();
                state.entries.retain(|key, entries| {
                    entries.retain(|e| {
                        if e.owner.node != node || keep(topic, key, e) {
                            return true;
                        }
                        gone.push((key.clone(), e.meta.clone()));
                        false
                    });
                    !entries.is_empty()
                });
                removed += gone.len();
                if !gone.is_empty() {
                    if let Some(due) = push_pending(state, BATCH_WINDOW, |p| p.leaves.extend(gone))
                    {
                        schedules.push((topic.clone(), due));
                    }
                }
                !(state.entries.is_empty() && state.pending.is_none())
            });
        }
        for (topic, due) in schedules {
            self.maybe_schedule(&topic, Some(due));
        }
        removed
    }

    /// This node's entries, on every topic (for a node that needs them all).
    pub fn partition(&self) -> Vec<PartitionEntry> {
        let me = self.inner.node;
        let topics = self.lock();
        let mut out = Vec::new();
        for (topic, state) in topics.iter() {
            for (key, entries) in &state.entries {
                for e in entries.iter().filter(|e| e.owner.node == me) {
                    out.push((topic.clone(), key.clone(), e.owner.sub, e.meta.clone()));
                }
            }
        }
        out
    }

    /// Node `node`'s entries become exactly `entries` (its full partition):
    /// those it no longer has leave, the others join or change.
    pub fn replace_partition(&self, node: u32, entries: Vec<PartitionEntry>) {
        let wanted: std::collections::HashSet<(&str, &str, SubId)> = entries
            .iter()
            .map(|(t, k, sub, _)| (t.as_str(), &**k, *sub))
            .collect();
        self.retain_node(node, |topic, key, e| {
            wanted.contains(&(topic, key, e.owner.sub))
        });
        let mut by_topic: HashMap<String, Vec<Change>> = HashMap::new();
        for (topic, key, sub, meta) in entries {
            by_topic
                .entry(topic)
                .or_default()
                .push(Change::Join { key, sub, meta });
        }
        for (topic, changes) in by_topic {
            self.apply_remote(node, &topic, changes);
        }
    }

    /// The `presence_state` payload: `{key: {"metas": [...]}}`.
    pub fn list(&self, topic: &str) -> Value {
        let topics = self.lock();
        let mut out = Map::new();
        if let Some(state) = topics.get(topic) {
            for (key, entries) in &state.entries {
                let metas: Vec<Value> = entries
                    .iter()
                    .map(|e| Value::Object(decode_meta(&e.meta)))
                    .collect();
                out.insert(key.to_string(), serde_json::json!({ "metas": metas }));
            }
        }
        Value::Object(out)
    }

    /// Number of topics with state (members or a pending diff).
    pub fn topic_count(&self) -> usize {
        self.lock().len()
    }

    fn maybe_schedule(&self, topic: &str, schedule: Option<Instant>) {
        let Some(due) = schedule else {
            return;
        };
        let this = self.clone();
        let topic = topic.to_owned();
        self.inner.tracker.spawn(async move {
            tokio::time::sleep_until(due).await;
            this.flush_due(&topic);
        });
    }

    /// Broadcasts the topic's pending diff if it is due (a flush scheduled
    /// for a diff that was since brought forward and sent finds the next
    /// diff, which has its own).
    fn flush_due(&self, topic: &str) {
        let due = {
            let topics = self.lock();
            topics
                .get(topic)
                .and_then(|s| s.pending.as_ref())
                .is_some_and(|p| p.due <= Instant::now())
        };
        if due {
            self.flush(topic);
        }
    }

    /// Broadcasts the topic's pending diff now, if any.
    pub fn flush(&self, topic: &str) {
        if let Some(diff) = self.take_diff(topic) {
            self.inner.pubsub.broadcast(
                Broadcast {
                    topic: topic.to_owned(),
                    event: PRESENCE_DIFF.into(),
                    payload: Payload::Json(diff),
                },
                None,
            );
        }
    }

    /// Takes the merged pending diff of a topic, as the `presence_diff` payload.
    pub fn take_diff(&self, topic: &str) -> Option<Value> {
        let pending = {
            let mut topics = self.lock();
            let state = topics.get_mut(topic)?;
            let pending = state.pending.take();
            if state.entries.is_empty() {
                topics.remove(topic);
            }
            pending?
        };
        // A ref that joined and left within one window is sent in both
        // lists, never cancelled out: a member whose `presence_state` was
        // taken in between holds that ref and needs the leave. phoenix.js
        // applies joins before leaves, so the others end up right too.
        let group = |items: &[(Box<str>, Meta)]| {
            let mut out = Map::new();
            for (key, meta) in items {
                let slot = out
                    .entry(key.to_string())
                    .or_insert_with(|| serde_json::json!({ "metas": [] }));
                slot["metas"]
                    .as_array_mut()
                    .expect("metas is an array")
                    .push(Value::Object(decode_meta(meta)));
            }
            Value::Object(out)
        };
        let joins = group(&pending.joins);
        let leaves = group(&pending.leaves);
        if joins.as_object().is_some_and(|j| j.is_empty())
            && leaves.as_object().is_some_and(|l| l.is_empty())
        {
            return None;
        }
        Some(serde_json::json!({ "joins": joins, "leaves": leaves }))
    }
}

/// Records a change in the pending diff, to be sent within `window`; the
/// time of the flush to schedule, if the diff was not due that soon.
fn push_pending(
    state: &mut TopicState,
    window: Duration,
    f: impl FnOnce(&mut PendingDiff),
) -> Option<Instant> {
    let due = Instant::now() + window;
    match &mut state.pending {
        Some(pending) => {
            f(pending);
            (due < pending.due).then(|| {
                pending.due = due;
                due
            })
        }
        None => {
            let mut pending = PendingDiff {
                joins: Vec::new(),
                leaves: Vec::new(),
                due,
            };
            f(&mut pending);
            state.pending = Some(pending);
            Some(due)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::LocalPubSub;
    use serde_json::json;

    fn presence() -> Presence {
        Presence::new(Arc::new(LocalPubSub::new()), 1, TaskTracker::new())
    }

    /// A tracker whose broadcasts on topic "t" reach the returned queue.
    fn subscribed_to_t() -> (Presence, crate::OutboundRx, Arc<crate::Closer>) {
        let pubsub = Arc::new(LocalPubSub::new());
        let p = Presence::new(pubsub.clone(), 1, TaskTracker::new());
        let (outbound, rx, closer) =
            crate::Outbound::new(8, usize::MAX, Default::default(), &Default::default());
        pubsub.subscribe(
            "t",
            1,
            crate::pubsub::Subscriber {
                outbound,
                intercepts: &[],
                on_intercept: None,
            },
        );
        (p, rx, closer)
    }

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn track_lists_with_unique_refs_and_multi_meta_keys() {
        let p = presence();
        let (a, b) = (p.owner(1), p.owner(2));
        let r1 = p.track("t", "u1", a, meta(json!({"name": "A"})));
        let r2 = p.track("t", "u1", b, meta(json!({"name": "A"})));
        assert_ne!(r1, r2);
        let list = p.list("t");
        assert_eq!(list["u1"]["metas"].as_array().unwrap().len(), 2);
        assert_eq!(list["u1"]["metas"][0]["phx_ref"], json!(r1));
    }

    #[tokio::test]
    async fn update_sets_phx_ref_prev_and_diff_has_leave_and_join() {
        let p = presence();
        let a = p.owner(1);
        let r1 = p.track("t", "u1", a, meta(json!({"typing": false})));
        p.take_diff("t");
        assert!(p.update("t", "u1", a, BATCH_WINDOW, |m| {
            m.insert("typing".into(), json!(true));
        }));
        let list = p.list("t");
        let m = &list["u1"]["metas"][0];
        assert_eq!(m["typing"], json!(true));
        assert_eq!(m["phx_ref_prev"], json!(r1));
        let diff = p.take_diff("t").unwrap();
        assert_eq!(diff["leaves"]["u1"]["metas"][0]["phx_ref"], json!(r1));
        assert_eq!(diff["joins"]["u1"]["metas"][0]["typing"], json!(true));
        assert!(!p.update("t", "u1", p.owner(9), BATCH_WINDOW, |_| {}));
    }

    #[tokio::test]
    async fn untrack_owner_removes_only_that_owners_entries_and_empty_topics() {
        let p = presence();
        let (a, b) = (p.owner(1), p.owner(2));
        p.track("t", "u1", a, meta(json!({})));
        p.track("t", "u1", b, meta(json!({})));
        p.track("t", "u2", a, meta(json!({})));
        p.take_diff("t");
        assert_eq!(p.untrack_owner("t", a), 2);
        let list = p.list("t");
        assert_eq!(list["u1"]["metas"].as_array().unwrap().len(), 1);
        assert!(list.get("u2").is_none());
        let diff = p.take_diff("t").unwrap();
        assert_eq!(diff["leaves"]["u1"]["metas"].as_array().unwrap().len(), 1);
        assert!(diff["leaves"]["u2"].is_object());
        assert_eq!(p.untrack_owner("t", b), 1);
        p.take_diff("t");
        assert_eq!(p.topic_count(), 0);
    }

    #[tokio::test]
    async fn joins_and_leaves_in_one_window_merge_into_one_diff() {
        let p = presence();
        let (a, b) = (p.owner(1), p.owner(2));
        p.track("t", "u1", a, meta(json!({})));
        let r2 = p.track("t", "u2", b, meta(json!({})));
        // A joiner now gets a presence_state that holds u2's ref...
        assert!(p.list("t")["u2"].is_object());
        p.untrack_owner("t", b);
        let diff = p.take_diff("t").unwrap();
        assert!(diff["joins"]["u1"].is_object());
        // ...so the leave must be sent, not cancelled against the join.
        assert_eq!(
            diff["joins"]["u2"]["metas"][0]["phx_ref"],
            json!(r2),
            "{diff}"
        );
        assert_eq!(
            diff["leaves"]["u2"]["metas"][0]["phx_ref"],
            json!(r2),
            "{diff}"
        );
        assert!(p.take_diff("t").is_none());
    }

    #[tokio::test]
    async fn diffs_are_broadcast_after_the_window() {
        let (p, mut rx, _closer) = subscribed_to_t();
        p.track("t", "u1", p.owner(1), meta(json!({})));
        p.track("t", "u2", p.owner(2), meta(json!({})));
        let frame = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let crate::serializer::Frame::Text(b) = frame else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v[3], json!("presence_diff"));
        assert!(
            v[4]["joins"]["u1"].is_object() && v[4]["joins"]["u2"].is_object(),
            "one merged diff: {v}"
        );
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn a_join_or_leave_brings_a_pending_update_forward() {
        let mut state = TopicState::default();
        let window = Duration::from_millis(200);
        let first = push_pending(&mut state, window, |_| {}).unwrap();
        assert!(push_pending(&mut state, window, |_| {}).is_none());
        let sooner = push_pending(&mut state, BATCH_WINDOW, |_| {}).unwrap();
        assert!(sooner < first);
        assert_eq!(state.pending.as_ref().unwrap().due, sooner);
        assert!(push_pending(&mut state, window, |_| {}).is_none());
    }

    #[tokio::test]
    async fn typing_updates_of_a_room_within_the_window_go_out_as_one_diff() {
        let (p, mut rx, _closer) = subscribed_to_t();
        let (a, b) = (p.owner(1), p.owner(2));
        p.track("t", "u1", a, meta(json!({"typing": false})));
        p.track("t", "u2", b, meta(json!({"typing": false})));
        p.take_diff("t");
        const WINDOW: Duration = Duration::from_millis(200);
        let typing = |m: &mut Map<String, Value>| {
            m.insert("typing".into(), json!(true));
        };
        assert!(p.update("t", "u1", a, WINDOW, typing));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(p.update("t", "u2", b, WINDOW, typing));
        let frame = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let crate::serializer::Frame::Text(bytes) = frame else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v[4]["joins"]["u1"]["metas"][0]["typing"],
            json!(true),
            "{v}"
        );
        assert_eq!(
            v[4]["joins"]["u2"]["metas"][0]["typing"],
            json!(true),
            "{v}"
        );
        assert!(rx.try_recv().is_none());
    }

    /// Node 2's tracker fed node 1's changes, as the cluster's bus does:
    /// node 1's replicator collects them, the test hands them over.
    /// What node 1's replicator handed over.
    type Sent = Arc<parking_lot::Mutex<Vec<(String, Change)>>>;

    fn replicated() -> (Presence, Presence, Sent) {
        let one = Presence::new(Arc::new(LocalPubSub::new()), 1, TaskTracker::new());
        let two = Presence::new(Arc::new(LocalPubSub::new()), 2, TaskTracker::new());
        let sent: Sent = Arc::default();
        let out = sent.clone();
        assert!(
            one.set_replicator(Arc::new(move |topic: &str, change: Change| {
                out.lock().push((topic.to_owned(), change));
            }))
        );
        (one, two, sent)
    }

    fn deliver(
        to: &Presence,
        from: u32,
        sent: &parking_lot::Mutex<Vec<(String, Change)>>,
        twice: bool,
    ) {
        let changes = std::mem::take(&mut *sent.lock());
        for (topic, change) in changes {
            let again = match &change {
                Change::Join { key, sub, meta } => Change::Join {
                    key: key.clone(),
                    sub: *sub,
                    meta: meta.clone(),
                },
                Change::Leave { key, sub } => Change::Leave {
                    key: key.clone(),
                    sub: *sub,
                },
            };
            to.apply_remote(from, &topic, vec![change]);
            if twice {
                to.apply_remote(from, &topic, vec![again]);
            }
        }
    }

    #[tokio::test]
    async fn remote_changes_replicate_once_even_when_heard_twice() {
        let (one, two, sent) = replicated();
        let a = one.owner(1);
        two.track("t", "u2", two.owner(1), meta(json!({"n": 2})));
        two.take_diff("t");
        one.track("t", "u1", a, meta(json!({"typing": false})));
        one.update("t", "u1", a, BATCH_WINDOW, |m| {
            m.insert("typing".into(), json!(true));
        });
        deliver(&two, 1, &sent, true);
        let list = two.list("t");
        assert_eq!(list["u1"]["metas"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["u1"]["metas"][0]["typing"], json!(true));
        assert_eq!(list, one_and(&one, &two));
        let diff = two.take_diff("t").unwrap();
        assert!(diff["joins"]["u1"].is_object(), "{diff}");
        // Nothing of node 2's own goes to the replicator of node 1, and
        // node 2's list keeps its own member.
        assert_eq!(list["u2"]["metas"][0]["n"], json!(2));
        one.untrack_owner("t", a);
        deliver(&two, 1, &sent, true);
        assert!(two.list("t").get("u1").is_none());
        let diff = two.take_diff("t").unwrap();
        assert!(diff["leaves"]["u1"].is_object(), "{diff}");
    }

    /// Node 1's list with node 2's entries added, as node 2 should see it.
    fn one_and(one: &Presence, two: &Presence) -> Value {
        let mut all = one.list("t").as_object().unwrap().clone();
        for (k, v) in two.list("t").as_object().unwrap() {
            all.entry(k.clone()).or_insert(v.clone());
        }
        Value::Object(all)
    }

    #[tokio::test]
    async fn a_partition_replaces_what_was_missed_and_a_node_down_leaves() {
        let (one, two, sent) = replicated();
        let (a, b) = (one.owner(1), one.owner(2));
        one.track("t", "u1", a, meta(json!({})));
        one.track("s", "u3", b, meta(json!({})));
        deliver(&two, 1, &sent, false);
        // Lost on the bus: u1 leaves, u4 joins.
        one.untrack_owner("t", a);
        one.track("t", "u4", a, meta(json!({})));
        sent.lock().clear();
        two.take_diff("t");
        two.replace_partition(1, one.partition());
        assert!(two.list("t").get("u1").is_none());
        assert!(two.list("t").get("u4").is_some());
        assert!(two.list("s").get("u3").is_some());
        let diff = two.take_diff("t").unwrap();
        assert!(
            diff["leaves"]["u1"].is_object() && diff["joins"]["u4"].is_object(),
            "{diff}"
        );
        // The same partition again changes nothing.
        two.replace_partition(1, one.partition());
        assert!(two.take_diff("t").is_none());
        // Node 1 goes: all its entries leave node 2's lists.
        assert_eq!(two.drop_node(1), 2);
        assert_eq!(two.topic_count(), 2, "diffs pending on both topics");
        assert!(two.list("t").as_object().unwrap().is_empty());
        assert!(two.take_diff("s").unwrap()["leaves"]["u3"].is_object());
        assert!(two.partition().is_empty(), "node 2 owns nothing");
    }
}
