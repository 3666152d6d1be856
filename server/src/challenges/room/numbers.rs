//! What a room has of its document's log, by number. On Postgres each
//! document's updates are numbered 1, 2, 3… in commit order (`seq`, see
//! `store::writer::pg`), whichever node committed them: a room knows the
//! highest number up to which it has every update (`seq`) and the numbers
//! it has beyond (`ahead`: its own commits, or other nodes' updates that
//! came early). A snapshot claims to cover `seq`; in a cluster, a gap
//! after `seq` is fetched from the database. On SQLite (one node) the
//! numbers are the log's row ids and only the snapshot uses them (SQLite's
//! writer takes the log's last id itself).

use super::task::Room;

impl Room {
    /// Takes the numbers the room's commits got since last time, and
    /// moves `seq` over every number now held.
    pub(super) fn absorb_committed(&mut self) {
        let committed = std::mem::take(&mut *self.signals.committed.lock());
        self.ahead.extend(committed);
        self.advance();
    }

    /// Moves `seq` over the numbers held in `ahead`.
    pub(super) fn advance(&mut self) {
        while self.ahead.remove(&(self.seq + 1)) {
            self.seq += 1;
        }
        // Numbers at or below `seq` are held anyway.
        let seq = self.seq;
        self.ahead.retain(|n| *n > seq);
        self.publish_seq();
    }

    /// Shows `seq` to the cluster's look at the log's heads.
    pub(super) fn publish_seq(&self) {
        self.flags
            .seq
            .store(self.seq, std::sync::atomic::Ordering::Release);
    }

    /// What a snapshot of the document now covers (every number up to it).
    pub(super) fn covers(&mut self) -> i64 {
        self.absorb_committed();
        self.seq
    }
}
