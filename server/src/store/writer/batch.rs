//! The SQL of the writer: [`LogDb`], the seam between the writer loop
//! (`writer::Writer`) and its backends, and the SQLite backend, on its own
//! rusqlite connection: one commit of a batch of operations (updates,
//! snapshots, responses, events) in one transaction, the responses flushed
//! later, the WAL catch-up, and a probe write while commits fail. The
//! Postgres backend is in [`super::pg`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{params, Connection, TransactionBehavior};

use super::{Stamped, WriteOp, RESPONSE_EVERY};
use crate::store::docs::DocKind;
use crate::store::{Durability, Error, Result, Store};

/// Text bytes of `challenge.response` one commit writes at most: large
/// documents would otherwise make some commits (and their acks) slow.
const COMMIT_RESPONSE_BYTES: usize = 256 << 10;

/// How long a statement waits for another connection's write lock (a
/// sign-in, a challenge created) before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const INSERT_UPDATE: &str =
    "insert into doc_update (challenge_id, doc, user_id, update_v1, inserted, deleted, created_at)
     values (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const UPSERT_SNAPSHOT: &str = "insert into doc_snapshot (challenge_id, doc, state_v1, last_update_id, created_at)
     values (?1, ?2, ?3, coalesce((select max(doc_update_id) from doc_update where challenge_id = ?1 and doc = ?2), 0), ?4)
     on conflict (challenge_id, doc) do update set state_v1 = excluded.state_v1,
        last_update_id = excluded.last_update_id, created_at = excluded.created_at";
const INSERT_CHECKPOINT: &str = "insert or ignore into doc_checkpoint (challenge_id, doc, last_update_id, state_v1, created_at)
     select challenge_id, doc, last_update_id, state_v1, created_at from doc_snapshot where challenge_id = ?1 and doc = ?2";
/// An event, after the updates committed before it (this batch's too).
const INSERT_EVENT: &str = "insert into timeline_event (challenge_id, user_id, first_name, kind, data, created_at, after_update_id)
     values (?1, ?2, ?3, ?4, ?5, ?6, (select coalesce(max(doc_update_id), 0) from doc_update))";
const UPDATE_RESPONSE: &str =
    "update challenge set response = ?2, response_update_id = ?3, updated_at = ?4 where challenge_id = ?1";

/// A room's text to write, and the id of the last update it reflects.
pub(super) struct TextRow<'b> {
    pub(super) challenge_id: &'b Arc<str>,
    pub(super) text: &'b Stamped,
    pub(super) update_id: i64,
}

/// What one commit wrote.
pub(super) struct Committed<'b> {
    /// The number of each update written, in order.
    pub(super) seqs: Vec<i64>,
    /// Each room's last update id.
    pub(super) last_ids: Vec<(&'b Arc<str>, i64)>,
    /// Texts written to `challenge.response` now.
    pub(super) texts: Vec<TextRow<'b>>,
    /// Texts left for later (their room's response was written lately).
    pub(super) later: Vec<TextRow<'b>>,
}

/// The writer's database: the backends Duet can log to.
pub(super) enum LogDb {
    Sqlite(SqliteLog),
    Postgres(super::pg::PgLog),
}

impl LogDb {
    pub(super) async fn open(store: &Store) -> Result<LogDb> {
        if let crate::store::Db::Postgres(pool) = &store.db {
            return super::pg::PgLog::open(pool).await.map(LogDb::Postgres);
        }
        let Some(path) = store.path() else {
            return Err(Error::CommitFailed {
                code: -1,
                msg: "the document writer needs a database file, not one in memory".into(),
            });
        };
        SqliteLog::open(path, store.durability()).map(LogDb::Sqlite)
    }

    /// Writes `ops` (those `write` allows) in one transaction.
    pub(super) async fn commit<'b>(
        &mut self,
        ops: impl Iterator<Item = &'b WriteOp>,
        now: &str,
        written: &HashMap<Arc<str>, Instant>,
        last_ids: &HashMap<Arc<str>, i64>,
    ) -> Result<Committed<'b>> {
        match self {
            LogDb::Sqlite(db) => db.commit(ops, now, written, last_ids),
            LogDb::Postgres(db) => db.commit(ops.collect(), now, written, last_ids).await,
        }
    }

    pub(super) async fn update_responses<'a>(
        &mut self,
        rows: Vec<(&'a str, &'a Stamped, i64)>,
    ) -> Result<()> {
        match self {
            LogDb::Postgres(db) => db.update_responses(&rows).await,
            LogDb::Sqlite(db) => {
                let tx = db
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                update_responses(&tx, rows)?;
                tx.commit()?;
                Ok(())
            }
        }
    }

    /// Whether the database file is still there (checked before each
    /// commit: a stat, about a microsecond).
    pub(super) fn file_exists(&self) -> bool {
        match self {
            LogDb::Sqlite(db) => db.path.exists(),
            LogDb::Postgres(_) => true,
        }
    }

    /// The writer's share of a checkpoint (see `checkpoint`): copies the
    /// frames added since the checkpointer's pass, so the next commit
    /// starts the WAL over.
    pub(super) async fn catch_up(&mut self) -> Result<()> {
        match self {
            LogDb::Postgres(_) => Ok(()),
            LogDb::Sqlite(db) => {
                let (_, log, copied): (i64, i64, i64) =
                    db.conn
                        .query_row("pragma wal_checkpoint(passive)", [], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?;
                tracing::trace!(log, copied, "WAL frames copied by the writer");
                Ok(())
            }
        }
    }

    /// A small real write, to tell when writes work again after failing.
    pub(super) async fn probe(&mut self, now: &str) -> Result<()> {
        match self {
            LogDb::Postgres(db) => db.probe(now).await,
            LogDb::Sqlite(db) => {
                db.conn.execute(
                    "insert into write_probe (write_probe_id, written_at) values (1, ?1)
                     on conflict (write_probe_id) do update set written_at = excluded.written_at",
                    params![now],
                )?;
                Ok(())
            }
        }
    }
}

/// The SQLite backend: the writer's own connection.
pub(super) struct SqliteLog {
    conn: Connection,
    path: PathBuf,
}

impl SqliteLog {
    fn open(path: &Path, durability: Durability) -> Result<SqliteLog> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let synchronous = match durability {
            Durability::Fsync => "full",
            Durability::Commit => "normal",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        // A page cache of 128 KiB, not SQLite's 2 MiB: the writer appends
        // and updates rows by key, so it reads little, and the pages every
        // timeline event wrote stayed cached (10 000 joins: 430 bytes per
        // socket of RSS; durable acks at 10 000 edits/s unchanged, p99
        // 4.54 ms against 4.67, medians of three alternating runs).
        conn.pragma_update(None, "cache_size", -128)?;
        // Checkpoints copy the WAL into the database and fsync it: not on
        // the path of every ack. The checkpointer does them.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let mode: String = conn.query_row("pragma journal_mode = wal", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "the database is not in WAL mode");
        }
        Ok(SqliteLog {
            conn,
            path: path.to_owned(),
        })
    }

    fn commit<'b>(
        &mut self,
        ops: impl Iterator<Item = &'b WriteOp>,
        now: &str,
        written: &HashMap<Arc<str>, Instant>,
        last_ids: &HashMap<Arc<str>, i64>,
    ) -> Result<Committed<'b>> {
        let started = Instant::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids: HashMap<&'b Arc<str>, i64> = HashMap::new();
        let mut seqs = Vec::new();
        // The newest text of each room and the last update it reflects.
        let mut texts: HashMap<&'b Arc<str>, (&'b Stamped, i64)> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(INSERT_UPDATE)?;
            for op in ops {
                match op {
                    WriteOp::Append {
                        challenge_id,
                        doc,
                        user_id,
                        update,
                        change,
                        text,
                        ..
                    } => {
                        insert.execute(params![
                            &**challenge_id,
                            doc.column(),
                            user_id,
                            update,
                            change.inserted,
                            change.deleted,
                            now
                        ])?;
                        seqs.push(tx.last_insert_rowid());
                        if *doc == DocKind::Answer {
                            let id = tx.last_insert_rowid();
                            ids.insert(challenge_id, id);
                            if let Some(text) = text {
                                texts.insert(challenge_id, (text, id));
                            }
                        }
                    }
                    WriteOp::Response {
                        challenge_id, text, ..
                    } => {
                        let id = ids
                            .get(challenge_id)
                            .or_else(|| last_ids.get(challenge_id))
                            .copied()
                            .unwrap_or(0);
                        texts.insert(challenge_id, (text, id));
                    }
                    other => write_other(&tx, other, now)?,
                }
            }
        }
        let (now_texts, later) = due_texts(texts, written, started);
        update_responses(
            &tx,
            now_texts
                .iter()
                .map(|r| (&**r.challenge_id, r.text, r.update_id)),
        )?;
        tx.commit()?;
        Ok(Committed {
            seqs,
            last_ids: ids.into_iter().collect(),
            texts: now_texts,
            later,
        })
    }
}

/// `challenge.response` follows the document: now for rooms not written
/// lately, in a moment (see `Responses`) for the busy ones, and at most
/// [`COMMIT_RESPONSE_BYTES`] of them per commit.
pub(super) fn due_texts<'b>(
    texts: HashMap<&'b Arc<str>, (&'b Stamped, i64)>,
    written: &HashMap<Arc<str>, Instant>,
    started: Instant,
) -> (Vec<TextRow<'b>>, Vec<TextRow<'b>>) {
    let mut bytes = 0;
    let (now, later): (Vec<_>, Vec<_>) = texts
        .into_iter()
        .map(|(challenge_id, (text, update_id))| TextRow {
            challenge_id,
            text,
            update_id,
        })
        .partition(|row| {
            let due = written
                .get(row.challenge_id)
                .is_none_or(|at| started.duration_since(*at) >= RESPONSE_EVERY);
            let len = row.text.text.len();
            if due && (bytes == 0 || bytes + len <= COMMIT_RESPONSE_BYTES) {
                bytes += len;
                true
            } else {
                false
            }
        });
    (now, later)
}

/// Writes (challenge id, text and its time, id of the last update it
/// reflects) rows.
fn update_responses<'a>(
    db: &Connection,
    rows: impl IntoIterator<Item = (&'a str, &'a Stamped, i64)>,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut update = db.prepare_cached(UPDATE_RESPONSE)?;
    for (id, stamped, update_id) in rows {
        update.execute(params![id, &*stamped.text, update_id, &*stamped.at])?;
    }
    Ok(())
}

/// Opens a second connection on the same file (the checkpointer's).
pub(super) fn open_side_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Snapshots (and their checkpoint) and timeline events.
fn write_other(tx: &rusqlite::Transaction<'_>, op: &WriteOp, now: &str) -> Result<()> {
    match op {
        WriteOp::Snapshot {
            challenge_id,
            doc,
            state,
            ..
        } => {
            tx.prepare_cached(UPSERT_SNAPSHOT)?.execute(params![
                &**challenge_id,
                doc.column(),
                state,
                now
            ])?;
            tx.prepare_cached(INSERT_CHECKPOINT)?
                .execute(params![&**challenge_id, doc.column()])?;
        }
        WriteOp::Event {
            challenge_id,
            user_id,
            first_name,
            kind,
            data,
        } => {
            tx.prepare_cached(INSERT_EVENT)?.execute(params![
                &**challenge_id,
                user_id,
                first_name,
                kind,
                data,
                now
            ])?;
        }
        _ => {}
    }
    Ok(())
}
