//! The writer's Postgres backend: the same batch as SQLite's, in one
//! transaction, and what many nodes need on top (CONTRACT §5):
//! - each document's updates are numbered by `seq`: the batch first takes
//!   the numbers it needs from `doc_head` (`insert … on conflict do update
//!   … returning`, documents in a fixed order so two nodes never deadlock),
//!   whose row lock holds until the commit, so the commits of one room by
//!   different nodes are numbered gap-free and in commit order;
//! - the updates go in with one `insert … select from unnest(…)`, not a
//!   round trip each;
//! - a snapshot covers what its room says it holds (`covers`), since a room
//!   of a cluster also applies other nodes' updates.
//!
//! An ack still means committed: Postgres's `synchronous_commit` (on by
//! default) returns from `COMMIT` once the WAL is flushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};

use super::batch::{due_texts, Committed};
use super::{Stamped, WriteOp};
use crate::store::docs::DocKind;
use crate::store::{Error, Result};

/// Longest a commit may take before the writer gives up on it and on its
/// connection: edits get "unavailable" within 5 s of the database going
/// away (CONTRACT §5), even when it went silent rather than closed.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The writer's own connection (its cache stays warm, and readers never
/// wait behind it for one), taken again from the pool after a failure.
pub(crate) struct PgLog {
    pool: PgPool,
    conn: Option<PgConnection>,
    /// When the connection last did work.
    used: Instant,
}

/// Longest the writer waits for a new connection: the pool would go on
/// trying for its whole acquire timeout, and every batch queued behind a
/// database that went away would wait that long before its "unavailable"
/// (a connection on loopback or a LAN takes milliseconds). The writer's
/// connection is its own, outside the pool.
const WRITER_CONNECT: std::time::Duration = std::time::Duration::from_millis(1000);

/// A connection idle longer than this is pinged before a commit: Postgres
/// restarted meanwhile leaves it dead, and the first commit on it would
/// fail (a writer busy enough to commit back to back never pings).
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(20);

/// The updates of one batch, column by column, for `unnest`.
#[derive(Default)]
struct Rows {
    challenge_ids: Vec<String>,
    docs: Vec<i64>,
    seqs: Vec<i64>,
    user_ids: Vec<Option<String>>,
    updates: Vec<Vec<u8>>,
    inserted: Vec<i64>,
    deleted: Vec<i64>,
}

impl PgLog {
    pub(super) async fn open(pool: &PgPool) -> Result<PgLog> {
        let conn = pool.acquire().await.map_err(pg)?.detach();
        Ok(PgLog {
            pool: pool.clone(),
            conn: Some(conn),
            used: Instant::now(),
        })
    }

    /// The next number of each document the batch appends to, taken from
    /// `doc_head` (and held by its row lock until the commit).
    async fn reserve<'b>(
        tx: &mut PgConnection,
        ops: &[&'b WriteOp],
    ) -> Result<HashMap<(&'b str, DocKind), i64>> {
        let mut counts: BTreeMap<(&'b str, i64), (DocKind, i64)> = BTreeMap::new();
        for op in ops {
            if let WriteOp::Append {
                challenge_id, doc, ..
            } = op
            {
                counts
                    .entry((challenge_id, doc.column()))
                    .or_insert((*doc, 0))
                    .1 += 1;
            }
        }
        let mut next = HashMap::new();
        if counts.is_empty() {
            return Ok(next);
        }
        // One statement for every document of the batch (not a round trip
        // each, while holding the locks of the ones before), its rows
        // taken in (challenge, doc) order: two nodes' batches lock their
        // common rows in one order and never deadlock.
        let (ids, columns, ns): (Vec<&str>, Vec<i64>, Vec<i64>) = counts
            .iter()
            .map(|((id, column), (_, n))| (*id, *column, *n))
            .fold(
                (Vec::new(), Vec::new(), Vec::new()),
                |(mut a, mut b, mut c), (x, y, z)| {
                    a.push(x);
                    b.push(y);
                    c.push(z);
                    (a, b, c)
                },
            );
        let heads: Vec<(String, i64, i64)> = sqlx::query_as(
            "insert into doc_head (challenge_id, doc, seq)
             select * from unnest($1::text[], $2::bigint[], $3::bigint[]) as t (challenge_id, doc, seq)
             order by challenge_id, doc
             on conflict (challenge_id, doc) do update set seq = doc_head.seq + excluded.seq
             returning challenge_id, doc, seq",
        )
        .bind(&ids)
        .bind(&columns)
        .bind(&ns)
        .fetch_all(&mut *tx)
        .await
        .map_err(pg)?;
        let heads: HashMap<(String, i64), i64> = heads
            .into_iter()
            .map(|(id, column, head)| ((id, column), head))
            .collect();
        for ((id, column), (doc, n)) in counts {
            let head = heads
                .get(&(id.to_owned(), column))
                .copied()
                .ok_or_else(|| Error::Unavailable(format!("no head returned for {id}")))?;
            next.insert((id, doc), head - n + 1);
        }
        Ok(next)
    }

    /// The writer's connection, connecting first if the last one failed.
    async fn conn(&mut self) -> Result<&mut PgConnection> {
        if self.used.elapsed() > PING_AFTER_IDLE {
            if let Some(conn) = self.conn.as_mut() {
                if conn.ping().await.is_err() {
                    tracing::debug!("the writer's connection is dead; connecting again");
                    self.conn = None;
                }
            }
        }
        if self.conn.is_none() {
            // One attempt, not the pool's retries until its acquire timeout:
            // a database that refuses connections (down, restarting) fails
            // this batch at once, and one that does not answer within
            // WRITER_CONNECT fails it then.
            let options = self.pool.connect_options();
            let connected =
                tokio::time::timeout(WRITER_CONNECT, PgConnection::connect_with(&options)).await;
            match connected {
                Ok(Ok(conn)) => self.conn = Some(conn),
                Ok(Err(err)) => return Err(pg(err)),
                Err(_) => {
                    return Err(Error::Unavailable(format!(
                        "no connection to Postgres within {} ms",
                        WRITER_CONNECT.as_millis()
                    )))
                }
            }
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Unavailable("no connection".into()))
    }

    /// `result` of work on the connection, `None` if it took longer than
    /// [`COMMIT_TIMEOUT`]; a failure drops the connection, which may be
    /// dead or mid-transaction.
    fn settle<T>(&mut self, result: Option<Result<T>>) -> Result<T> {
        let result = result.unwrap_or_else(|| {
            Err(Error::Unavailable(format!(
                "no answer from Postgres within {} s",
                COMMIT_TIMEOUT.as_secs()
            )))
        });
        if result.is_err() {
            self.conn = None;
        }
        self.used = Instant::now();
        result
    }

    pub(super) async fn commit<'b>(
        &mut self,
        ops: Vec<&'b WriteOp>,
        now: &str,
        written: &HashMap<Arc<str>, Instant>,
        last_ids: &HashMap<Arc<str>, i64>,
    ) -> Result<Committed<'b>> {
        let work = async {
            let conn = self.conn().await?;
            commit_on(conn, ops, now, written, last_ids).await
        };
        let result = tokio::time::timeout(COMMIT_TIMEOUT, work).await.ok();
        self.settle(result)
    }

    pub(super) async fn update_responses(&mut self, rows: &[(&str, &Stamped, i64)]) -> Result<()> {
        let work = async {
            let conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(pg)?;
            let mut rows: Vec<&(&str, &Stamped, i64)> = rows.iter().collect();
            rows.sort_by_key(|(id, ..)| *id);
            for (id, text, update_id) in rows {
                update_response(&mut tx, id, text, *update_id).await?;
            }
            tx.commit().await.map_err(pg)
        };
        let result = tokio::time::timeout(COMMIT_TIMEOUT, work).await.ok();
        self.settle(result)
    }

    pub(super) async fn probe(&mut self, now: &str) -> Result<()> {
        let work = async {
            let conn = self.conn().await?;
            sqlx::query(
                "insert into write_probe (write_probe_id, written_at) values (1, $1)
                 on conflict (write_probe_id) do update set written_at = excluded.written_at",
            )
            .bind(now)
            .execute(conn)
            .await
            .map_err(pg)?;
            Ok(())
        };
        let result = tokio::time::timeout(COMMIT_TIMEOUT, work).await.ok();
        self.settle(result)
    }
}

/// One batch in one transaction on `conn`.
async fn commit_on<'b>(
    conn: &mut PgConnection,
    ops: Vec<&'b WriteOp>,
    now: &str,
    written: &HashMap<Arc<str>, Instant>,
    last_ids: &HashMap<Arc<str>, i64>,
) -> Result<Committed<'b>> {
    let started = Instant::now();
    let mut tx = conn.begin().await.map_err(pg)?;
    let mut next = PgLog::reserve(&mut tx, &ops).await?;
    let mut rows = Rows::default();
    let mut seqs = Vec::new();
    let mut ids: HashMap<&'b Arc<str>, i64> = HashMap::new();
    let mut texts: HashMap<&'b Arc<str>, (&'b Stamped, i64)> = HashMap::new();
    // An event comes after the updates queued before it, not after the
    // whole batch's (the updates all go in first, in one statement).
    let mut numbers: Vec<Option<i64>> = vec![None; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        match op {
            WriteOp::Event { challenge_id, .. } => {
                numbers[i] = next.get(&(&**challenge_id, DocKind::Answer)).map(|n| n - 1);
            }
            WriteOp::Append {
                challenge_id,
                doc,
                user_id,
                update,
                change,
                text,
                ..
            } => {
                let slot = next.entry((&**challenge_id, *doc)).or_insert(1);
                let seq = *slot;
                *slot += 1;
                seqs.push(seq);
                rows.challenge_ids.push(challenge_id.to_string());
                rows.docs.push(doc.column());
                rows.seqs.push(seq);
                rows.user_ids.push(user_id.clone());
                rows.updates.push(update.clone());
                rows.inserted.push(i64::from(change.inserted));
                rows.deleted.push(i64::from(change.deleted));
                if *doc == DocKind::Answer {
                    ids.insert(challenge_id, seq);
                    if let Some(text) = text {
                        texts.insert(challenge_id, (text, seq));
                    }
                }
            }
            WriteOp::Response {
                challenge_id,
                text,
                covers,
                ..
            } => {
                // The room's text may hold other nodes' updates beyond this
                // node's own commits: it covers what the room says.
                let own = ids
                    .get(challenge_id)
                    .or_else(|| last_ids.get(challenge_id))
                    .copied()
                    .unwrap_or(0);
                texts.insert(challenge_id, (text, own.max(*covers)));
            }
            _ => {}
        }
    }
    insert_updates(&mut tx, &rows, now).await?;
    snapshot_numbers(&ops, &ids, last_ids, &mut numbers);
    write_others(&mut tx, &ops, now, &numbers).await?;
    let (mut now_texts, later) = due_texts(texts, written, started);
    now_texts.sort_by(|a, b| a.challenge_id.cmp(b.challenge_id));
    for row in &now_texts {
        update_response(&mut tx, &row.challenge_id[..], row.text, row.update_id).await?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(Committed {
        seqs,
        last_ids: ids.into_iter().collect(),
        texts: now_texts,
        later,
    })
}

/// A Postgres failure as the writer reports it: a commit that failed, with
/// its SQLSTATE as the code when it is numeric (`23505`), else -1.
fn pg(err: sqlx::Error) -> Error {
    if crate::store::unreachable_db(&err) {
        return Error::Unavailable(err.to_string());
    }
    let state = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    Error::CommitFailed {
        code: state.as_deref().and_then(|c| c.parse().ok()).unwrap_or(-1),
        msg: match state {
            Some(state) => format!("{err} (SQLSTATE {state})"),
            None => err.to_string(),
        },
    }
}

async fn insert_updates(tx: &mut PgConnection, rows: &Rows, now: &str) -> Result<()> {
    if rows.seqs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into doc_update (challenge_id, doc, seq, user_id, update_v1, inserted, deleted, created_at)
         select c, d, s, u, b, i, x, $8
         from unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bytea[], $6::bigint[], $7::bigint[])
              as t(c, d, s, u, b, i, x)",
    )
    .bind(&rows.challenge_ids)
    .bind(&rows.docs)
    .bind(&rows.seqs)
    .bind(&rows.user_ids)
    .bind(&rows.updates)
    .bind(&rows.inserted)
    .bind(&rows.deleted)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(pg)?;
    Ok(())
}

/// A snapshot's number for `write_other`: the last number this node's
/// commits gave its answer.
fn snapshot_numbers(
    ops: &[&WriteOp],
    ids: &HashMap<&Arc<str>, i64>,
    last_ids: &HashMap<Arc<str>, i64>,
    numbers: &mut [Option<i64>],
) {
    for (i, op) in ops.iter().enumerate() {
        if let WriteOp::Snapshot {
            challenge_id,
            doc: DocKind::Answer,
            ..
        } = op
        {
            numbers[i] = ids
                .get(challenge_id)
                .or_else(|| last_ids.get(challenge_id))
                .copied();
        }
    }
}

/// The batch's snapshots and events. Rows other nodes' commits lock too
/// (snapshots, then challenges' texts) are locked in one order, by
/// challenge: two nodes' batches that share rooms then wait for each other
/// instead of deadlocking.
async fn write_others(
    tx: &mut PgConnection,
    ops: &[&WriteOp],
    now: &str,
    numbers: &[Option<i64>],
) -> Result<()> {
    let mut others: Vec<(usize, &&WriteOp)> = ops.iter().enumerate().collect();
    others.sort_by_key(|(_, op)| op.room().map(|(id, doc)| (id.clone(), doc.column())));
    for (i, op) in others {
        write_other(tx, op, now, numbers[i]).await?;
    }
    Ok(())
}

/// Snapshots (and their checkpoint) and events. `number`: for a snapshot,
/// the last number this node's commits gave its answer; for an event, the
/// last update of its answer before it when its batch has some (else the
/// log's last).
///
/// A snapshot's state holds every update up to `covers` and may hold more:
/// this node's own edits applied before it was taken and committed since
/// (numbered beyond `covers`). For loading that is harmless (the tail after
/// `covers` applies again, to no effect), but a checkpoint must hold
/// exactly what its number says (the playback seeks through it): it is
/// written only when none of this node's commits is beyond `covers`.
async fn write_other(
    tx: &mut PgConnection,
    op: &WriteOp,
    now: &str,
    number: Option<i64>,
) -> Result<()> {
    match op {
        WriteOp::Snapshot {
            challenge_id,
            doc,
            state,
            covers,
        } => {
            sqlx::query(
                "insert into doc_snapshot (challenge_id, doc, state_v1, last_update_id, created_at)
                 values ($1, $2, $3, $4, $5)
                 on conflict (challenge_id, doc) do update set state_v1 = excluded.state_v1,
                    last_update_id = excluded.last_update_id, created_at = excluded.created_at
                 where doc_snapshot.last_update_id <= excluded.last_update_id",
            )
            .bind(&**challenge_id)
            .bind(doc.column())
            .bind(state)
            .bind(covers)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
            if number.is_some_and(|own| own > *covers) {
                return Ok(());
            }
            sqlx::query(
                "insert into doc_checkpoint (challenge_id, doc, last_update_id, state_v1, created_at)
                 values ($1, $2, $3, $4, $5) on conflict do nothing",
            )
            .bind(&**challenge_id)
            .bind(doc.column())
            .bind(covers)
            .bind(state)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        }
        WriteOp::Event {
            challenge_id,
            user_id,
            first_name,
            kind,
            data,
        } => {
            sqlx::query(
                "insert into timeline_event (challenge_id, user_id, first_name, kind, data, created_at, after_update_id)
                 values ($1, $2, $3, $4, $5, $6, coalesce($7,
                    (select coalesce(max(seq), 0) from doc_update where challenge_id = $1 and doc = 0)))",
            )
            .bind(&**challenge_id)
            .bind(user_id)
            .bind(first_name)
            .bind(*kind)
            .bind(data)
            .bind(now)
            .bind(number)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        }
        _ => {}
    }
    Ok(())
}

async fn update_response(
    tx: &mut PgConnection,
    challenge_id: &str,
    text: &Stamped,
    update_id: i64,
) -> Result<()> {
    sqlx::query(
        "update challenge set response = $2, response_update_id = $3, updated_at = $4
         where challenge_id = $1 and response_update_id <= $3",
    )
    .bind(challenge_id)
    .bind(&*text.text)
    .bind(update_id)
    .bind(&*text.at)
    .execute(&mut *tx)
    .await
    .map_err(pg)?;
    Ok(())
}
