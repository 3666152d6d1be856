//! The document of each challenge: an append-only log of Yjs v1 updates and
//! snapshots. [`DocWriter`] is the group-commit writer: it takes every
//! update queued while the previous transaction ran and commits them all in
//! one transaction (one fsync), then tells each waiter. Snapshots go through
//! the same queue, so a snapshot always covers exactly the updates queued
//! before it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{raw, timestamp, Error, Result, Store};
use crate::telemetry::Histogram;

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Operations queued before producers wait: bounds memory under overload.
const QUEUE: usize = 8192;

/// Called once the operation is committed (or failed).
pub type Done = Box<dyn FnOnce(Result<()>) + Send + Sync>;

/// A room's text (`challenge.response`) and the time of the edit it
/// reflects (`challenge.updated_at`, as the room's members were told).
#[derive(Clone)]
pub struct Stamped {
    pub text: Arc<str>,
    pub at: Arc<str>,
}

pub enum WriteOp {
    Append {
        challenge_id: Arc<str>,
        user_id: Option<String>,
        update: Vec<u8>,
        /// The document's text after this update (`challenge.response`), when
        /// the room has it at hand; otherwise a `Response` follows.
        text: Option<Stamped>,
        done: Done,
    },
    Snapshot {
        challenge_id: Arc<str>,
        state: Vec<u8>,
    },
    /// The document's text after the updates queued before it; `done`, if
    /// any, is called once reads see it (see `Rooms::settle`).
    Response {
        challenge_id: Arc<str>,
        text: Stamped,
        done: Option<Done>,
    },
    /// Writes nothing; `done` is called once everything queued before it
    /// is committed.
    Barrier { done: Done },
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
                    // `updated_at`: when the last update was committed,
                    // not now (the edit is older than this start-up).
                    sqlx::query(
                        "update challenge set response = ?1,
                            response_update_id = (select max(doc_update_id) from doc_update where challenge_id = ?2),
                            updated_at = coalesce(
                              (select created_at from doc_update where challenge_id = ?2
                               order by doc_update_id desc limit 1), updated_at)
                         where challenge_id = ?2",
                    )
                    .bind(crate::challenges::doc::text(&doc))
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
type Waiting = (Stamped, i64);

impl Responses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Waiting>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often one room's `challenge.response` is rewritten at most.
const RESPONSE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

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
        let shared = responses.clone();
        let completions = completer();
        let catch_up = Arc::new(AtomicBool::new(false));
        tokio::spawn(checkpointer(store.clone(), stop.clone(), catch_up.clone()));
        // A thread of its own: on the shared runtime each of the commit's
        // round trips to SQLite would wait behind every runnable socket
        // task, and under load a commit took 100 ms instead of 1.
        let task = tokio::task::spawn_blocking(move || {
            raise_priority();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(store, rx, latency, stop, shared, completions, catch_up)),
                Err(err) => tracing::error!(cause = %err, "document writer could not start"),
            }
        });
        (DocWriter { tx, responses }, task)
    }

    /// The durable text of a challenge whose `response` column lags behind.
    pub fn waiting_response(&self, challenge_id: &str) -> Option<Stamped> {
        self.responses
            .lock()
            .get(challenge_id)
            .map(|(text, _)| text.clone())
    }

    pub async fn send(&self, op: WriteOp) -> Result<()> {
        self.tx.send(op).await.map_err(|_| Error::WriterGone)
    }
}

/// Tells the waiters of each commit, in commit order (so acks and
/// broadcasts keep the order of the edits), on the main runtime.
type Completions = (mpsc::UnboundedSender<(bool, Vec<Done>)>, JoinHandle<()>);

fn completer() -> Completions {
    let (completed, mut to_complete) = mpsc::unbounded_channel::<(bool, Vec<Done>)>();
    let task = tokio::spawn(async move {
        while let Some((ok, dones)) = to_complete.recv().await {
            for done in dones {
                done(if ok { Ok(()) } else { Err(Error::WriterGone) });
            }
        }
    });
    (completed, task)
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<WriteOp>,
    latency: Arc<Histogram>,
    stop: CancellationToken,
    responses: Arc<Responses>,
    (completed, completer): Completions,
    catch_up: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(64);
    let mut written: HashMap<Arc<str>, Instant> = HashMap::new();
    // The latest update id of each room, for the response that reflects it.
    let mut last_ids: HashMap<Arc<str>, i64> = HashMap::new();
    let mut conn = WriterConnection(None);
    let mut last_commit = Instant::now() - COMMIT_EVERY;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
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
                flush_responses(&mut conn, &store, &responses, &mut written, false).await;
                last_ids.retain(|id, _| written.contains_key(id));
                continue;
            }
        };
        batch.push(first);
        // Under load (more edits already waiting), gather for a moment: a
        // commit rewrites whole pages and fsyncs, so fewer, larger commits
        // cost far less per edit. A lone edit is committed at once.
        // With a full batch's worth waiting already, there is nothing to
        // gather for.
        let due = last_commit + COMMIT_EVERY;
        if (1..GATHER_ENOUGH).contains(&rx.len()) && Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        last_commit = started;
        let result = match conn.get(&store).await {
            Ok(conn) => commit(conn, &batch, &mut written, &mut last_ids, &responses).await,
            Err(err) => Err(err),
        };
        latency.observe(started.elapsed().as_secs_f64());
        tracing::trace!(
            ops = batch.len(),
            queued = rx.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "committed"
        );
        if let Err(err) = &result {
            tracing::error!(cause = %err, ops = batch.len(), "document commit failed");
        }
        // The waiters are told by the completion task, so the next commit
        // starts now (their acks and broadcasts run on another core).
        let dones: Vec<Done> = batch
            .drain(..)
            .filter_map(|op| match op {
                WriteOp::Append { done, .. } => Some(done),
                WriteOp::Response { done, .. } => done,
                WriteOp::Barrier { done } => Some(done),
                WriteOp::Snapshot { .. } => None,
            })
            .collect();
        if !dones.is_empty() {
            let _ = completed.send((result.is_ok(), dones));
        }
        if catch_up.swap(false, Ordering::Relaxed) {
            let started = Instant::now();
            if let Ok(conn) = conn.get(&store).await {
                if let Err(err) = catch_up_checkpoint(conn).await {
                    tracing::warn!(cause = %err, "WAL checkpoint failed");
                }
            }
            tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "WAL caught up");
        }
    }
    drop(completed);
    let _ = completer.await;
    flush_responses(&mut conn, &store, &responses, &mut written, true).await;
    if let Some(c) = conn.0.take() {
        // Closed here: this thread's runtime ends with this function.
        let _ = c.close().await;
    }
    tracing::debug!("document writer stopped");
}

/// Every acknowledged edit waits for this one thread: when the machine is
/// busy it should not wait for a core behind the socket tasks. Raising a
/// thread's priority needs CAP_SYS_NICE (root); without it, nothing changes.
fn raise_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; errors are ignored.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, -10) != 0 {
            tracing::debug!("document writer keeps the default priority");
        }
    }
}

/// How often the WAL is checkpointed, from a pool connection (so on sqlx's
/// thread, beside the writer), in place of SQLite's automatic checkpoints.
#[cfg(not(test))]
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
#[cfg(test)]
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Checkpoints the WAL until `stop`; `passive` never blocks the writer.
///
/// Under a steady stream of commits a passive checkpoint never copies the
/// whole WAL (new frames arrive while it runs), and SQLite starts the WAL
/// over only once every frame is copied: the file grew by ~90 MB/s at
/// 20 000 edits/s, and every write past its end made the kernel zero fresh
/// pages. So after each checkpoint, `catch_up` asks the writer to copy the
/// few frames added meanwhile itself, between two commits: its next commit
/// then rewrites the WAL from the start.
///
/// SQLite syncs the database file only when a checkpoint reaches the end of
/// the WAL, so under load that sync fell to the writer's catch-up, which
/// then flushed every page the checkpointer had copied in the last second:
/// a pause of the writer that grew from 0.5 to 13 ms over a 20 s run at
/// 10 000 edits/s and set the acks' p99. The checkpointer syncs the file
/// itself before asking for the catch-up, which is left ~1 s of nothing.
async fn checkpointer(store: Store, stop: CancellationToken, catch_up: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let mut conn = match store.pool.acquire().await {
            Ok(conn) => Some(conn),
            Err(err) => {
                tracing::warn!(cause = %err, "WAL checkpoint: no connection");
                continue;
            }
        };
        // Twice: the second pass copies and syncs what came during the
        // first and its sync, so the writer is left a few milliseconds' worth.
        let mut pending = false;
        for _ in 0..2 {
            let Some(mut c) = conn.take() else { break };
            let checkpointed =
                sqlx::query_as::<_, (i64, i64, i64)>("pragma wal_checkpoint(passive)")
                    .fetch_one(&mut *c)
                    .await;
            match checkpointed {
                // `log` is the WAL as it was when the checkpoint began: the
                // writer has added to it since.
                Ok((_, log, copied)) => {
                    tracing::trace!(log, copied, "WAL checkpointed");
                    pending = log > 0;
                    if !pending {
                        break;
                    }
                    let (back, synced) = sync_database_file(c).await;
                    if let Err(err) = synced {
                        tracing::warn!(cause = %err, "database file sync failed");
                    }
                    conn = back;
                }
                Err(err) => {
                    tracing::warn!(cause = %err, "WAL checkpoint failed");
                    break;
                }
            }
        }
        if pending {
            catch_up.store(true, Ordering::Relaxed);
        }
    }
}

type PooledConn = sqlx::pool::PoolConnection<sqlx::Sqlite>;

/// Syncs the main database file through `conn`'s own descriptor (see
/// [`raw::Handle::sync_main_file`]) on a blocking thread that owns the
/// connection until the sync is over (even if this future is dropped), and
/// hands it back; `Ok(false)` for a database in memory.
async fn sync_database_file(conn: PooledConn) -> (Option<PooledConn>, std::io::Result<bool>) {
    let rt = tokio::runtime::Handle::current();
    let synced = tokio::task::spawn_blocking(move || {
        let mut conn = conn;
        let result = rt.block_on(async {
            let mut locked = conn.lock_handle().await.map_err(std::io::Error::other)?;
            raw::Handle::new(&mut locked).sync_main_file()
        });
        (conn, result)
    })
    .await;
    match synced {
        Ok((conn, result)) => (Some(conn), result),
        Err(err) => (None, Err(std::io::Error::other(err))),
    }
}

/// The writer's share of a checkpoint (see `checkpointer`).
async fn catch_up_checkpoint(conn: &mut sqlx::SqliteConnection) -> Result<()> {
    let mut locked = conn.lock_handle().await?;
    let (log, copied) = raw::Handle::new(&mut locked).checkpoint_passive()?;
    tracing::trace!(log, copied, "WAL frames copied by the writer");
    Ok(())
}

/// Edits waiting that make a batch big enough to commit without gathering.
const GATHER_ENOUGH: usize = 32;

/// Shortest time between two commits' starts while edits keep coming. At
/// 10 000 edits/s in rooms of 2, 1 ms gave acks p50 2.7 ms / p99 7.8–8.9 ms
/// against 3.7 / 10.9–15.9 ms with 2 ms, for the same CPU; with no
/// gathering at all, p50 fell to 1.3 ms but the burst when every member
/// starts typing took p99 to 156 ms (a commit per handful of edits).
const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(1);

/// The writer's own connection, taken from the pool once and kept: its page
/// cache stays warm, and readers never wait behind it for a connection.
struct WriterConnection(Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>);

impl WriterConnection {
    async fn get(&mut self, store: &Store) -> Result<&mut sqlx::SqliteConnection> {
        if self.0.is_none() {
            let mut conn = store.pool.acquire().await?;
            // Checkpoints copy the WAL into the database and fsync it: not
            // on the path of every ack. The checkpointer does them (below).
            sqlx::query("pragma wal_autocheckpoint = 0")
                .execute(&mut *conn)
                .await?;
            self.0 = Some(conn);
        }
        match self.0.as_mut() {
            Some(conn) => Ok(&mut **conn),
            None => Err(Error::WriterGone),
        }
    }
}

/// Text bytes of `challenge.response` one commit writes at most.
const COMMIT_RESPONSE_BYTES: usize = 256 << 10;

/// How often waiting responses are looked at.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Text bytes one flush of waiting responses writes at most: a flush of
/// every room's large document at once would hold up the acks behind it.
/// A quarter of a MiB four times a second (rather than 1 MiB once): at
/// 1 000 Yjs rooms of ~50 KB, the once-a-second flush paused the writer
/// 3-9 ms and set the p99 of the deliveries (31-33 ms vs 17-20).
const FLUSH_BYTES: usize = 256 << 10;

/// Writes the waiting responses that are due (their room's response was
/// written [`RESPONSE_EVERY`] ago or more), up to [`FLUSH_BYTES`] of text, in
/// one transaction; the rest wait for the next tick. With `all`, every one.
async fn flush_responses(
    conn: &mut WriterConnection,
    store: &Store,
    responses: &Responses,
    written: &mut HashMap<Arc<str>, Instant>,
    all: bool,
) {
    let now = Instant::now();
    let mut bytes = 0;
    let waiting: Vec<(Arc<str>, Waiting)> = responses
        .lock()
        .iter()
        .filter(|(k, _)| {
            all || written
                .get(*k)
                .is_none_or(|at| now.duration_since(*at) >= RESPONSE_EVERY)
        })
        .take_while(|(_, (stamped, _))| {
            let len = stamped.text.len();
            bytes += len;
            all || bytes <= FLUSH_BYTES || bytes == len
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    written.retain(|_, at| now.duration_since(*at) < RESPONSE_EVERY * 4);
    if waiting.is_empty() {
        return;
    }
    let result = match conn.get(store).await {
        Ok(conn) => {
            transaction(conn, |db| {
                update_responses(db, waiting.iter().map(|(k, (t, id))| (&**k, t, *id)))
            })
            .await
        }
        Err(err) => Err(err),
    };
    tracing::debug!(
        rooms = waiting.len(),
        ms = now.elapsed().as_secs_f64() * 1e3,
        "responses flushed"
    );
    match result {
        Ok(()) => {
            let mut map = responses.lock();
            for (id, (text, _)) in &waiting {
                // Only if no newer text arrived meanwhile.
                if map
                    .get(id)
                    .is_some_and(|(t, _)| Arc::ptr_eq(&t.text, &text.text))
                {
                    map.remove(id);
                }
                written.insert(id.clone(), now);
            }
        }
        Err(err) => tracing::error!(cause = %err, "writing responses failed"),
    }
}

/// What one commit wrote: each room's last update id, the texts written
/// now, and the texts left for later (see `Responses`).
type BatchRows<'b> = (
    Vec<(&'b Arc<str>, i64)>,
    Vec<(&'b Arc<str>, (&'b Stamped, i64))>,
    Vec<(&'b Arc<str>, (&'b Stamped, i64))>,
);

const INSERT_UPDATE: &str =
    "insert into doc_update (challenge_id, user_id, update_v1, created_at) values (?1, ?2, ?3, ?4)";
const UPSERT_SNAPSHOT: &str = "insert into doc_snapshot (challenge_id, state_v1, last_update_id, created_at)
     values (?1, ?2, coalesce((select max(doc_update_id) from doc_update where challenge_id = ?1), 0), ?3)
     on conflict (challenge_id) do update set state_v1 = excluded.state_v1,
        last_update_id = excluded.last_update_id, created_at = excluded.created_at";
const UPDATE_RESPONSE: &str =
    "update challenge set response = ?2, response_update_id = ?3, updated_at = ?4 where challenge_id = ?1";

/// Writes every op of the batch, in order, inside the open transaction.
fn write_batch<'b>(
    db: &raw::Handle<'_>,
    batch: &'b [WriteOp],
    now: &str,
    written: &HashMap<Arc<str>, Instant>,
    last_ids: &HashMap<Arc<str>, i64>,
    started: Instant,
) -> Result<BatchRows<'b>> {
    let mut ids: HashMap<&'b Arc<str>, i64> = HashMap::new();
    // The newest text of each room and the last update it reflects.
    let mut texts: HashMap<&'b Arc<str>, (&'b Stamped, i64)> = HashMap::new();
    let mut insert = db.prepare(INSERT_UPDATE)?;
    let mut snapshot = None;
    for op in batch {
        match op {
            WriteOp::Append {
                challenge_id,
                user_id,
                update,
                text,
                ..
            } => {
                insert.bind_text(1, challenge_id)?;
                insert.bind_opt_text(2, user_id.as_deref())?;
                insert.bind_blob(3, update)?;
                insert.bind_text(4, now)?;
                insert.run()?;
                let id = db.last_insert_rowid();
                ids.insert(challenge_id, id);
                if let Some(text) = text {
                    texts.insert(challenge_id, (text, id));
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
            WriteOp::Barrier { .. } => {}
            WriteOp::Snapshot {
                challenge_id,
                state,
            } => {
                let stmt = match &mut snapshot {
                    Some(stmt) => stmt,
                    None => snapshot.insert(db.prepare(UPSERT_SNAPSHOT)?),
                };
                stmt.bind_text(1, challenge_id)?;
                stmt.bind_blob(2, state)?;
                stmt.bind_text(3, now)?;
                stmt.run()?;
            }
        }
    }
    // `challenge.response` follows the document: now for rooms not written
    // lately, in a moment (see `Responses`) for the busy ones.
    // At most COMMIT_RESPONSE_BYTES of them per commit: large documents
    // would otherwise make some commits (and their acks) slow.
    let mut bytes = 0;
    let (now_texts, later): (Vec<_>, Vec<_>) = texts.into_iter().partition(|(id, (stamped, _))| {
        let due = written
            .get(*id)
            .is_none_or(|at| started.duration_since(*at) >= RESPONSE_EVERY);
        let len = stamped.text.len();
        if due && (bytes == 0 || bytes + len <= COMMIT_RESPONSE_BYTES) {
            bytes += len;
            true
        } else {
            false
        }
    });
    update_responses(
        db,
        now_texts
            .iter()
            .map(|(id, (stamped, update_id))| (&***id, *stamped, *update_id)),
    )?;
    Ok((ids.into_iter().collect(), now_texts, later))
}

/// Writes (challenge id, text and its time, id of the last update it
/// reflects) rows.
fn update_responses<'a>(
    db: &raw::Handle<'_>,
    rows: impl IntoIterator<Item = (&'a str, &'a Stamped, i64)>,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut update = db.prepare(UPDATE_RESPONSE)?;
    for (id, stamped, update_id) in rows {
        update.bind_text(1, id)?;
        update.bind_text(2, &stamped.text)?;
        update.bind_i64(3, update_id)?;
        update.bind_text(4, &stamped.at)?;
        update.run()?;
    }
    Ok(())
}

/// Runs `f` in one transaction on the writer's connection, on this thread:
/// sqlx's own thread is paused (`lock_handle`) and no statement is a round
/// trip to it. Rolled back if `f` or the commit fails.
async fn transaction<T>(
    conn: &mut sqlx::SqliteConnection,
    f: impl FnOnce(&raw::Handle<'_>) -> Result<T>,
) -> Result<T> {
    let mut locked = conn.lock_handle().await?;
    let db = raw::Handle::new(&mut locked);
    db.exec("begin immediate")?;
    let out = f(&db).and_then(|v| db.exec("commit").map(|()| v));
    if out.is_err() {
        let _ = db.exec("rollback");
    }
    out
}

async fn commit(
    conn: &mut sqlx::SqliteConnection,
    batch: &[WriteOp],
    written: &mut HashMap<Arc<str>, Instant>,
    last_ids: &mut HashMap<Arc<str>, i64>,
    responses: &Responses,
) -> Result<()> {
    let now = timestamp();
    let started = Instant::now();
    let (ids, now_texts, later) = transaction(conn, |db| {
        write_batch(db, batch, &now, written, last_ids, started)
    })
    .await?;
    for (id, update_id) in ids {
        last_ids.insert(id.clone(), update_id);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The checkpointer syncs the database file through SQLite's own
    /// descriptor (and nothing for a database in memory). That it leaves
    /// the locks alone, so that another process (`sqlite3` reading the
    /// database) cannot take the WAL, was checked by hand: neither a child
    /// of this test process nor a second `duet` on the database (with its
    /// own data dir) showed the old bug, which the `sqlite3` shell and a
    /// second start on the same data dir (now refused) did.
    #[tokio::test]
    async fn the_checkpointer_syncs_through_sqlites_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("found.db");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query("create table t (x)")
            .execute(&mut *conn)
            .await
            .unwrap();
        let (back, synced) = sync_database_file(conn).await;
        assert!(synced.unwrap(), "a file synced");
        assert!(back.is_some(), "the connection handed back");
        let memory = Store::open("sqlite::memory:").await.unwrap();
        let conn = memory.pool.acquire().await.unwrap();
        assert!(
            !sync_database_file(conn).await.1.unwrap(),
            "nothing to sync in memory"
        );
    }

    /// Under a steady stream of commits the WAL must start over (after
    /// each checkpoint and the writer's catch-up), not grow without end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_steady_stream_of_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wal.db");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let user = store.create_user("Wal").await.unwrap();
        let new = crate::challenges::model::NewChallenge {
            title: "wal".into(),
            prompt: String::new(),
            language: "python".into(),
        };
        let challenge: Arc<str> = store
            .create_challenge(&user.id, &new)
            .await
            .unwrap()
            .id
            .into();
        let hist = Arc::new(Histogram::new(crate::telemetry::LATENCY_BUCKETS));
        let stop = CancellationToken::new();
        let (writer, task) = DocWriter::spawn(store.clone(), hist, stop.clone());
        // One edit per commit, each filling a page of its own: without the
        // WAL starting over, its file holds at least one frame per edit.
        let started = Instant::now();
        let mut edits = 0usize;
        while started.elapsed() < std::time::Duration::from_millis(1500) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            writer
                .send(WriteOp::Append {
                    challenge_id: challenge.clone(),
                    user_id: None,
                    update: vec![(edits % 251) as u8; 4000],
                    text: None,
                    done: Box::new(move |r| {
                        let _ = tx.send(r.is_ok());
                    }),
                })
                .await
                .unwrap();
            assert!(rx.await.unwrap(), "edit {edits} not committed");
            edits += 1;
        }
        let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
            .unwrap()
            .len();
        let frame = 4096 + 24;
        assert!(edits > 100, "only {edits} edits committed in 1.5 s");
        assert!(
            wal < (edits as u64 * frame) / 2,
            "the WAL grew to {wal} bytes for {edits} edits of one page each"
        );
        stop.cancel();
        task.await.unwrap();
        let stored = store.load_doc(&challenge).await.unwrap();
        assert_eq!(
            stored.tail.len(),
            edits,
            "every committed edit is in the log"
        );
    }
}
