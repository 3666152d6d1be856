//! WAL checkpoints, in place of SQLite's automatic ones (which would run
//! inside a commit, on the path of every ack), on a thread and a
//! connection of their own beside the writer.
//!
//! Under a steady stream of commits a passive checkpoint never copies the
//! whole WAL (new frames arrive while it runs), and SQLite starts the WAL
//! over only once every frame is copied: the file grew by ~90 MB/s at
//! 20 000 edits/s, and every write past its end made the kernel zero fresh
//! pages. So after each checkpoint, `catch_up` asks the writer to copy the
//! few frames added meanwhile itself, between two commits: its next commit
//! then rewrites the WAL from the start.
//!
//! SQLite syncs the database file only when a checkpoint reaches the end of
//! the WAL, so under load that sync fell to the writer's catch-up, which
//! then flushed every page the checkpointer had copied in the last second
//! (a pause of the writer that grew to 13 ms and set the acks' p99). The
//! checkpointer syncs the file itself before asking for the catch-up.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

/// How often the WAL is checkpointed.
#[cfg(not(test))]
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
#[cfg(test)]
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// How often the thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Starts the checkpointer's thread; it ends soon after `stop`.
pub(super) fn spawn(path: PathBuf, stop: CancellationToken, catch_up: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("duet-checkpoint".into())
        .spawn(move || {
            let conn = match super::batch::open_side_connection(&path) {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(cause = %err, "WAL checkpointer could not start");
                    return;
                }
            };
            while sleep_unless_stopped(&stop) {
                if checkpoint(&conn) {
                    catch_up.store(true, Ordering::Relaxed);
                }
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(cause = %err, "WAL checkpointer could not start");
    }
}

/// Sleeps [`CHECKPOINT_EVERY`]; false once `stop` is cancelled.
fn sleep_unless_stopped(stop: &CancellationToken) -> bool {
    let mut slept = Duration::ZERO;
    while slept < CHECKPOINT_EVERY {
        if stop.is_cancelled() {
            return false;
        }
        std::thread::sleep(STOP_CHECK);
        slept += STOP_CHECK;
    }
    !stop.is_cancelled()
}

/// One checkpoint, twice: the second pass copies and syncs what came
/// during the first and its sync, so the writer is left a few
/// milliseconds' worth. True when frames were left for the writer.
fn checkpoint(conn: &Connection) -> bool {
    let mut pending = false;
    for _ in 0..2 {
        let passed = conn.query_row("pragma wal_checkpoint(passive)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match passed {
            // `log` is the WAL as it was when the checkpoint began: the
            // writer has added to it since.
            Ok((log, copied)) => {
                tracing::trace!(log, copied, "WAL checkpointed");
                pending = log > 0;
                if !pending {
                    break;
                }
                if let Err(err) = crate::store::raw::sync_main_file(conn) {
                    tracing::warn!(cause = %err, "database file sync failed");
                }
            }
            Err(err) => {
                tracing::warn!(cause = %err, "WAL checkpoint failed");
                break;
            }
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    /// The checkpointer syncs the database file through SQLite's own
    /// descriptor (and nothing for a database in memory). That it leaves
    /// the locks alone, so that another process (`sqlite3` reading the
    /// database) cannot take the WAL, was checked by hand: neither a child
    /// of this test process nor a second `duet` on the database (with its
    /// own data dir) showed the old bug, which the `sqlite3` shell and a
    /// second start on the same data dir (now refused) did.
    #[test]
    fn the_checkpointer_syncs_through_sqlites_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("found.db")).unwrap();
        conn.execute_batch("pragma journal_mode = wal; create table t (x)")
            .unwrap();
        assert!(
            crate::store::raw::sync_main_file(&conn).unwrap(),
            "a file synced"
        );
        let memory = rusqlite::Connection::open_in_memory().unwrap();
        assert!(
            !crate::store::raw::sync_main_file(&memory).unwrap(),
            "nothing to sync in memory"
        );
    }
}
