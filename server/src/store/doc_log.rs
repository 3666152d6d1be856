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
        /// The document's text after this update (`challenge.response`), when
        /// the room has it at hand; otherwise a `Response` follows.
        text: Option<Arc<str>>,
        done: Done,
    },
    Snapshot {
        challenge_id: Arc<str>,
        state: Vec<u8>,
    },
    /// The document's text after the updates queued before it.
    Response {
        challenge_id: Arc<str>,
        text: Arc<str>,
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

    /// After a crash, `challenge.response` may lag behind the update log
    /// (see `Responses`): rebuild the text of those challenges from the log.
    pub async fn repair_responses(&self) -> Result<usize> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "select c.challenge_id from challenge c
             where c.response_update_id < (select max(d.doc_update_id) from doc_update d where d.challenge_id = c.challenge_id)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut repaired = 0;
        for (id,) in ids {
            let stored = self.load_doc(&id).await?;
            match crate::challenges::doc::load(stored.snapshot.as_deref(), &stored.tail) {
                Ok(doc) => {
                    sqlx::query(
                        "update challenge set response = ?, updated_at = ? where challenge_id = ?",
                    )
                    .bind(crate::challenges::doc::text(&doc))
                    .bind(timestamp())
                    .bind(&id)
                    .execute(&self.pool)
                    .await?;
                    repaired += 1;
                }
                Err(err) => {
                    tracing::error!(challenge_id = %id, cause = %err, "document does not load")
                }
            }
        }
        Ok(repaired)
    }
}

/// Handle to the group-commit writer task.
#[derive(Clone)]
pub struct DocWriter {
    tx: mpsc::Sender<WriteOp>,
    responses: Arc<Responses>,
}

/// `challenge.response` is written at most every [`RESPONSE_EVERY`] per
/// room: a busy room's text is rewritten in full on each write, which at
/// thousands of edits/s across many rooms would dominate the commit. The
/// texts waiting (all of them durable in the update log) are kept here, so
/// reads see them; a crash is repaired at start-up from the log.
#[derive(Default)]
pub struct Responses {
    waiting: std::sync::Mutex<HashMap<Arc<str>, Waiting>>,
}

/// A room's durable text and the id of the last update it reflects.
type Waiting = (Arc<str>, i64);

impl Responses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Waiting>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often one room's `challenge.response` is rewritten at most.
const RESPONSE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl DocWriter {
    /// Starts the writer. It ends when `stop` is cancelled (or every handle
    /// is dropped), after committing everything already queued.
    pub fn spawn(
        store: Store,
        latency: Arc<Histogram>,
        stop: CancellationToken,
    ) -> (DocWriter, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let responses = Arc::new(Responses::default());
        let task = tokio::spawn(run(store, rx, latency, stop, responses.clone()));
        (DocWriter { tx, responses }, task)
    }

    /// The durable text of a challenge whose `response` column lags behind.
    pub fn waiting_response(&self, challenge_id: &str) -> Option<Arc<str>> {
        self.responses
            .lock()
            .get(challenge_id)
            .map(|(text, _)| text.clone())
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
    responses: Arc<Responses>,
) {
    let mut batch = Vec::with_capacity(64);
    let mut written: HashMap<Arc<str>, Instant> = HashMap::new();
    // The latest update id of each room, for the response that reflects it.
    let mut last_ids: HashMap<Arc<str>, i64> = HashMap::new();
    let mut tick = tokio::time::interval(RESPONSE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            _ = tick.tick() => {
                flush_responses(&store, &responses, &mut written).await;
                last_ids.retain(|id, _| written.contains_key(id));
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
        let result = commit(&store, &batch, &mut written, &mut last_ids, &responses).await;
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
    flush_responses(&store, &responses, &mut written).await;
    tracing::debug!("document writer stopped");
}

/// Writes the responses that waited, in one transaction.
async fn flush_responses(
    store: &Store,
    responses: &Responses,
    written: &mut HashMap<Arc<str>, Instant>,
) {
    let waiting: Vec<(Arc<str>, Waiting)> = responses
        .lock()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let now = Instant::now();
    written.retain(|_, at| now.duration_since(*at) < RESPONSE_EVERY * 4);
    if waiting.is_empty() {
        return;
    }
    let rows: Vec<(&str, &str, i64)> = waiting
        .iter()
        .map(|(k, (t, id))| (&**k, &**t, *id))
        .collect();
    let result = async {
        let mut tx = store.pool.begin().await?;
        write_responses(&mut tx, &rows, &timestamp()).await?;
        tx.commit().await?;
        Ok::<(), Error>(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut map = responses.lock();
            for (id, (text, _)) in &waiting {
                // Only if no newer text arrived meanwhile.
                if map.get(id).is_some_and(|(t, _)| Arc::ptr_eq(t, text)) {
                    map.remove(id);
                }
                written.insert(id.clone(), now);
            }
        }
        Err(err) => tracing::error!(cause = %err, "writing responses failed"),
    }
}

/// Writes (challenge id, text, id of the last update it reflects) rows.
async fn write_responses(
    tx: &mut sqlx::SqliteConnection,
    rows: &[(&str, &str, i64)],
    now: &str,
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "update challenge set response = v.column2, response_update_id = v.column3, updated_at = v.column4 from (values ",
        );
        sql.push_str(&vec!["(?, ?, ?, ?)"; chunk.len()].join(", "));
        sql.push_str(") as v where challenge.challenge_id = v.column1");
        let mut query = sqlx::query(&sql);
        for (challenge_id, text, update_id) in chunk {
            query = query
                .bind(*challenge_id)
                .bind(*text)
                .bind(*update_id)
                .bind(now);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Rows per multi-row statement: few statements per batch (each one is a
/// round trip to sqlx's SQLite thread), well under SQLite's variable limit.
const ROWS_PER_STATEMENT: usize = 128;

async fn commit(
    store: &Store,
    batch: &[WriteOp],
    written: &mut HashMap<Arc<str>, Instant>,
    last_ids: &mut HashMap<Arc<str>, i64>,
    responses: &Responses,
) -> Result<()> {
    let now = timestamp();
    let mut tx = store.pool.begin().await?;
    // Every op in order; consecutive appends go in as one multi-row insert.
    // `texts`: the newest text of each room and the last update it reflects.
    let mut texts: HashMap<&Arc<str>, (&Arc<str>, i64)> = HashMap::new();
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
                for op in &run {
                    if let WriteOp::Append {
                        challenge_id,
                        user_id,
                        update,
                        ..
                    } = op
                    {
                        query = query
                            .bind(&**challenge_id)
                            .bind(user_id)
                            .bind(update)
                            .bind(&now);
                    }
                }
                // One statement's rows get consecutive ids, ending here.
                let last = query.execute(&mut *tx).await?.last_insert_rowid();
                let first = last - run.len() as i64 + 1;
                for (k, op) in run.iter().enumerate() {
                    if let WriteOp::Append {
                        challenge_id, text, ..
                    } = op
                    {
                        let id = first + k as i64;
                        last_ids.insert(challenge_id.clone(), id);
                        if let Some(text) = text {
                            texts.insert(challenge_id, (text, id));
                        }
                    }
                }
            }
            WriteOp::Response { challenge_id, text } => {
                i += 1;
                let id = last_ids.get(challenge_id).copied().unwrap_or(0);
                texts.insert(challenge_id, (text, id));
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
    // `challenge.response` follows the document: now for rooms not written
    // lately, in a moment (see `Responses`) for the busy ones.
    let started = Instant::now();
    let (now_texts, later): (Vec<_>, Vec<_>) = texts.into_iter().partition(|(id, _)| {
        written
            .get(*id)
            .is_none_or(|at| started.duration_since(*at) >= RESPONSE_EVERY)
    });
    let rows: Vec<(&str, &str, i64)> = now_texts
        .iter()
        .map(|(k, (t, id))| (&***k, &***t, *id))
        .collect();
    write_responses(&mut tx, &rows, &now).await?;
    tx.commit().await?;
    let mut waiting = responses.lock();
    for (id, _) in &now_texts {
        written.insert((*id).clone(), started);
        waiting.remove(&***id);
    }
    for (id, (text, update_id)) in later {
        waiting.insert(id.clone(), (text.clone(), update_id));
    }
    Ok(())
}
