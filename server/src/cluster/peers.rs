//! The other nodes as this one hears them: when each was last heard, and
//! which of its presence deltas this node has applied. Pure bookkeeping
//! (no I/O), so its rules are tested alone:
//! - a node is *up* from its first message, and *down* after
//!   `peer_down` without one (or at once, when it says bye, when Redis
//!   says nobody listens on its own channel any more, or when a new node
//!   of the same name appears: it restarted);
//! - its presence deltas are numbered (`pseq`); one that does not follow
//!   the last applied, or a heartbeat announcing a number not seen, means
//!   something was lost: ask the node for its whole partition (at most
//!   every [`ASK_EVERY`]), and apply nothing of it until it comes.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Least time between two requests for the same node's partition: one
/// answer fixes every gap seen while it travels.
pub const ASK_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Peer {
    name: String,
    last: Instant,
    /// The last delta applied; `None` until its partition came.
    pseq: Option<u64>,
    asked: Option<Instant>,
}

/// What to do with a delta.
#[derive(Debug, PartialEq, Eq)]
pub enum Delta {
    Apply,
    /// Heard before (or already in the partition applied).
    Ignore,
    /// Out of order or after a loss: ask for the partition (if `ask`).
    Resync {
        ask: bool,
    },
}

/// How long without this node's own heartbeat coming back through the
/// bus before the bus itself counts as down (its heartbeats go every
/// 500 ms): the others' silence then proves nothing about them.
pub const BUS_SILENT: Duration = Duration::from_millis(800);

/// After the bus comes back, how long before a node that is still not
/// heard of is probed: the others resubscribe within their reconnect
/// delay, and asking Redis who listens before that finds nobody.
pub const BUS_SETTLE: Duration = Duration::from_millis(1000);

/// The table of peers.
#[derive(Debug, Default)]
pub struct Peers {
    peers: HashMap<u32, Peer>,
    /// When this node last heard its own heartbeat through the bus.
    own: Option<Instant>,
    /// Since when the bus has carried this node's heartbeats.
    bus_since: Option<Instant>,
}

impl Peers {
    /// A message from `node`; returns the nodes it replaces (an older node
    /// of the same name, which restarted) when its name is known.
    pub fn heard(&mut self, node: u32, name: Option<&str>, now: Instant) -> Vec<u32> {
        let peer = self.peers.entry(node).or_insert_with(|| Peer {
            name: String::new(),
            last: now,
            pseq: None,
            asked: None,
        });
        peer.last = now;
        let Some(name) = name else {
            return Vec::new();
        };
        if peer.name != name {
            peer.name = name.to_owned();
        }
        let replaced: Vec<u32> = self
            .peers
            .iter()
            .filter(|(id, p)| **id != node && p.name == name)
            .map(|(id, _)| *id)
            .collect();
        for id in &replaced {
            self.peers.remove(id);
        }
        replaced
    }

    /// A heartbeat saying `node`'s last delta is `pseq`: whether to ask
    /// for its partition (a delta was lost, or none was ever applied).
    pub fn heartbeat(&mut self, node: u32, pseq: u64, now: Instant) -> bool {
        let Some(peer) = self.peers.get_mut(&node) else {
            return false;
        };
        if peer.pseq == Some(pseq) {
            return false;
        }
        // A delta newer than the heartbeat's may have been applied
        // already (the heartbeat was sent first): not a loss.
        if peer.pseq.is_some_and(|p| p > pseq) {
            return false;
        }
        ask(peer, now)
    }

    /// Delta number `pseq` of `node`.
    pub fn delta(&mut self, node: u32, pseq: u64, now: Instant) -> Delta {
        let Some(peer) = self.peers.get_mut(&node) else {
            return Delta::Resync { ask: false };
        };
        match peer.pseq {
            Some(p) if pseq == p + 1 => {
                peer.pseq = Some(pseq);
                Delta::Apply
            }
            Some(p) if pseq <= p => Delta::Ignore,
            _ => Delta::Resync {
                ask: ask(peer, now),
            },
        }
    }

    /// `node`'s whole partition, as of its delta `pseq`, was applied.
    pub fn synced(&mut self, node: u32, pseq: u64) {
        if let Some(peer) = self.peers.get_mut(&node) {
            peer.pseq = Some(pseq);
            peer.asked = None;
        }
    }

    /// Forgets every node's deltas (after this node missed messages: the
    /// bus dropped its connection or it fell behind): each is asked for
    /// its partition at its next heartbeat.
    pub fn forget_deltas(&mut self) {
        for peer in self.peers.values_mut() {
            peer.pseq = None;
            peer.asked = None;
        }
    }

    /// This node's own heartbeat came back through the bus. After the bus
    /// was silent, every node gets a fresh window: none was heard from
    /// meanwhile, through no fault of its own.
    pub fn heard_self(&mut self, now: Instant) {
        if !self.bus_up(now) {
            for peer in self.peers.values_mut() {
                peer.last = now;
            }
            self.bus_since = Some(now);
        }
        self.own = Some(now);
    }

    /// Whether the bus carries this node's messages: only then does
    /// another node's silence say something about it.
    pub fn bus_up(&self, now: Instant) -> bool {
        self.own
            .is_some_and(|at| now.duration_since(at) < BUS_SILENT)
    }

    /// Whether the bus has been up long enough for every live node to
    /// listen again.
    pub fn bus_settled(&self, now: Instant) -> bool {
        self.bus_up(now)
            && self
                .bus_since
                .is_some_and(|at| now.duration_since(at) >= BUS_SETTLE)
    }

    /// Removes `node`; true if it was up.
    pub fn remove(&mut self, node: u32) -> bool {
        self.peers.remove(&node).is_some()
    }

    /// Nodes not heard for `after`, removed.
    pub fn silent(&mut self, after: Duration, now: Instant) -> Vec<u32> {
        let gone: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.last) >= after)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.peers.remove(id);
        }
        gone
    }

    /// Nodes not heard for `after` (not removed): worth a closer look.
    pub fn quiet(&self, after: Duration, now: Instant) -> Vec<u32> {
        self.peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.last) >= after)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many nodes are up (this one not counted).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no other node is up.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The names of the nodes that are up.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.peers.values().map(|p| p.name.clone()).collect();
        names.sort();
        names
    }
}

fn ask(peer: &mut Peer, now: Instant) -> bool {
    if peer
        .asked
        .is_some_and(|at| now.duration_since(at) < ASK_EVERY)
    {
        return false;
    }
    peer.asked = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deltas_apply_in_order_and_a_gap_asks_once_per_interval() {
        let mut p = Peers::default();
        let t0 = Instant::now();
        p.heard(1, Some("a"), t0);
        // Nothing applied before its partition comes.
        assert_eq!(p.delta(1, 1, t0), Delta::Resync { ask: true });
        assert_eq!(p.delta(1, 2, t0), Delta::Resync { ask: false });
        p.synced(1, 2);
        assert_eq!(p.delta(1, 2, t0), Delta::Ignore);
        assert_eq!(p.delta(1, 3, t0), Delta::Apply);
        // 4 lost: 5 asks; 6 right after does not ask again.
        assert_eq!(p.delta(1, 5, t0), Delta::Resync { ask: true });
        assert_eq!(p.delta(1, 6, t0), Delta::Resync { ask: false });
        let later = t0 + ASK_EVERY;
        assert_eq!(p.delta(1, 7, later), Delta::Resync { ask: true });
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_reveals_a_lost_last_delta() {
        let mut p = Peers::default();
        let t0 = Instant::now();
        p.heard(1, Some("a"), t0);
        p.synced(1, 4);
        assert!(!p.heartbeat(1, 4, t0));
        assert!(!p.heartbeat(1, 3, t0), "an older heartbeat is no loss");
        assert!(p.heartbeat(1, 5, t0));
        p.forget_deltas();
        assert!(p.heartbeat(1, 5, t0), "forgotten: asks again at once");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_nodes_go_and_a_restart_replaces_the_old_node() {
        let mut p = Peers::default();
        let t0 = Instant::now();
        p.heard(1, Some("a"), t0);
        p.heard(2, Some("b"), t0);
        assert_eq!(p.heard(3, Some("a"), t0), vec![1]);
        assert_eq!(p.len(), 2);
        let t1 = t0 + Duration::from_millis(1000);
        p.heard(2, None, t1);
        assert_eq!(p.quiet(Duration::from_millis(600), t1), vec![3]);
        let mut gone = p.silent(
            Duration::from_millis(1500),
            t0 + Duration::from_millis(1600),
        );
        gone.sort();
        assert_eq!(gone, vec![3]);
        assert_eq!(p.names(), vec!["b".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_bus_says_nothing_about_the_others() {
        let mut p = Peers::default();
        let t0 = Instant::now();
        assert!(!p.bus_up(t0), "not up before this node hears itself");
        p.heard_self(t0);
        p.heard(1, Some("a"), t0);
        assert!(p.bus_up(t0) && !p.bus_settled(t0));
        let beat = t0 + Duration::from_millis(500);
        p.heard_self(beat);
        assert!(p.bus_settled(t0 + BUS_SETTLE));
        // The bus freezes: no heartbeat, not even this node's own.
        let frozen = beat + BUS_SILENT;
        assert!(!p.bus_up(frozen));
        // It thaws 5 s later: node 1 gets a fresh window from then.
        let thaw = t0 + Duration::from_secs(5);
        p.heard_self(thaw);
        assert!(p.bus_up(thaw) && !p.bus_settled(thaw));
        assert!(p
            .silent(
                Duration::from_millis(1500),
                thaw + Duration::from_millis(1400)
            )
            .is_empty());
        assert_eq!(
            p.silent(
                Duration::from_millis(1500),
                thaw + Duration::from_millis(1500)
            ),
            vec![1]
        );
    }
}
