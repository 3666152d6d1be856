//! The document of each challenge: an append-only log of Yjs v1 updates and
//! snapshots. [`DocWriter`] is the group-commit writer: it takes every
//! update queued while the previous transaction ran and commits them all in
//! one transaction (one fsync), then tells each waiter. Snapshots go through
//! the same queue, so a snapshot always covers exactly the updates queued
//! before it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{timestamp, Error, Result, Store};
use crate::telemetry::Histogram;

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Operations queued before producers wait: bounds memory under overload.
const QUEUE: usize = 8192;

/// Called once the operation is committed (or failed).
pub type Done = Box<dyn FnOnce(Result<()>) + Send + Sync>;

pub enum WriteOp {
    Append {
        challenge_id: Arc<str>,
        user_id: Option<String>,
        update: Vec<u8>,
        /// The document's text after this update: `challenge.response`.
        text: Arc<str>,
        done: Done,
    },
    Snapshot {
        challenge_id: Arc<str>,
        state: Vec<u8>,
    },
}

/// What loading a room reads: the latest snapshot and the updates after it.
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub tail: Vec<Vec<u8>>,
}

impl Store {
    pub async fn load_doc(&self, challenge_id: &str) -> Result<StoredDoc> {
        let snap: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "select state_v1, last_update_id from doc_snapshot where challenge_id = ?",
        )
        .bind(challenge_id)
        .fetch_optional(&self.pool)
        .await?;
        let after = snap.as_ref().map_or(0, |(_, id)| *id);
        let tail: Vec<(Vec<u8>,)> = sqlx::query_as(
            "select update_v1 from doc_update where challenge_id = ? and doc_update_id > ? order by doc_update_id",
        )
        .bind(challenge_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        Ok(StoredDoc {
            snapshot: snap.map(|(s, _)| s),
            tail: tail.into_iter().map(|(u,)| u).collect(),
        })
    }

    /// Every update of a challenge, oldest first (history).
    pub async fn doc_updates(&self, challenge_id: &str) -> Result<Vec<Vec<u8>>> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "select update_v1 from doc_update where challenge_id = ? order by doc_update_id",
        )
        .bind(challenge_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }
}

/// Handle to the group-commit writer task.
#[derive(Clone)]
pub struct DocWriter {
    tx: mpsc::Sender<WriteOp>,
}

impl DocWriter {
    /// Starts the writer. It ends when `stop` is cancelled (or every handle
    /// is dropped), after committing everything already queued.
    pub fn spawn(
        store: Store,
        latency: Arc<Histogram>,
        stop: CancellationToken,
    ) -> (DocWriter, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, rx, latency, stop));
        (DocWriter { tx }, task)
    }

    pub async fn send(&self, op: WriteOp) -> Result<()> {
        self.tx.send(op).await.map_err(|_| Error::WriterGone)
    }
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<WriteOp>,
    latency: Arc<Histogram>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(64);
    loop {
        let first = tokio::select! {
            op = rx.recv() => match op {
                Some(op) => op,
                None => break,
            },
            // Refuse new work; what is queued is still received, then `None`.
            _ = stop.cancelled(), if !rx.is_closed() => {
                rx.close();
                continue;
            }
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = commit(&store, &batch).await;
        latency.observe(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            tracing::error!(cause = %err, ops = batch.len(), "document commit failed");
        }
        for op in batch.drain(..) {
            if let WriteOp::Append { done, .. } = op {
                done(match &result {
                    Ok(()) => Ok(()),
                    Err(_) => Err(Error::WriterGone),
                });
            }
        }
    }
    tracing::debug!("document writer stopped");
}

/// Rows per multi-row statement: few statements per batch (each one is a
/// round trip to sqlx's SQLite thread), well under SQLite's variable limit.
const ROWS_PER_STATEMENT: usize = 128;

async fn commit(store: &Store, batch: &[WriteOp]) -> Result<()> {
    let now = timestamp();
    let mut tx = store.pool.begin().await?;
    // Every op in order; consecutive appends go in as one multi-row insert.
    let mut texts: HashMap<&str, &str> = HashMap::new();
    let mut i = 0;
    while i < batch.len() {
        match &batch[i] {
            WriteOp::Append { .. } => {
                let run: Vec<&WriteOp> = batch[i..]
                    .iter()
                    .take_while(|op| matches!(op, WriteOp::Append { .. }))
                    .take(ROWS_PER_STATEMENT)
                    .collect();
                i += run.len();
                let mut sql = String::from(
                    "insert into doc_update (challenge_id, user_id, update_v1, created_at) values ",
                );
                sql.push_str(&vec!["(?, ?, ?, ?)"; run.len()].join(", "));
                let mut query = sqlx::query(&sql);
                for op in run {
                    if let WriteOp::Append {
                        challenge_id,
                        user_id,
                        update,
                        text,
                        ..
                    } = op
                    {
                        query = query
                            .bind(&**challenge_id)
                            .bind(user_id)
                            .bind(update)
                            .bind(&now);
                        texts.insert(challenge_id, text);
                    }
                }
                query.execute(&mut *tx).await?;
            }
            WriteOp::Snapshot {
                challenge_id,
                state,
            } => {
                i += 1;
                sqlx::query(
                    "insert into doc_snapshot (challenge_id, state_v1, last_update_id, created_at)
                     values (?1, ?2, coalesce((select max(doc_update_id) from doc_update where challenge_id = ?1), 0), ?3)
                     on conflict (challenge_id) do update set state_v1 = excluded.state_v1,
                        last_update_id = excluded.last_update_id, created_at = excluded.created_at",
                )
                .bind(&**challenge_id)
                .bind(state)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    // `challenge.response` follows the document: one statement per chunk of rooms.
    let texts: Vec<(&str, &str)> = texts.into_iter().collect();
    for chunk in texts.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "update challenge set response = v.column2, updated_at = v.column3 from (values ",
        );
        sql.push_str(&vec!["(?, ?, ?)"; chunk.len()].join(", "));
        sql.push_str(") as v where challenge.challenge_id = v.column1");
        let mut query = sqlx::query(&sql);
        for (challenge_id, text) in chunk {
            query = query.bind(*challenge_id).bind(*text).bind(&now);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
