//! The group-commit writer of the document log: it takes every operation
//! queued while the previous transaction ran and commits them all in one
//! transaction (one fsync), then tells each waiter, in commit order, on
//! the main runtime. A loop of four steps ([`Writer::run`]): gather (for a
//! moment under load), commit ([`batch`]), complete (the waiters), catch up
//! (the WAL, see [`checkpoint`]). Snapshots and texts go through the same
//! queue, so a snapshot covers exactly the updates queued before it.
//!
//! After a failed commit, the rooms it held are stopped: their later
//! operations are refused ([`Error::AfterFailure`]) until the room sends
//! [`WriteOp::Resume`], which it does before reloading its document from
//! the log. So nothing stored can build on an update that was not.
//! [`WriteHealth`] says whether commits fail, for `/healthz`.

mod batch;
mod checkpoint;
mod pg;
mod responses;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::batch::LogDb;
use self::responses::{Responses, FLUSH_EVERY};
use super::docs::DocKind;
use super::{timestamp, Error, Result, Store};
use crate::telemetry::Histogram;

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Operations queued before producers wait: bounds memory under overload.
const QUEUE: usize = 8192;
/// Edits waiting that make a batch big enough to commit without gathering.
const GATHER_ENOUGH: usize = 32;
/// Shortest time between two commits' starts while edits keep coming: a
/// commit rewrites whole pages and fsyncs, so under load fewer, larger
/// commits cost far less per edit (1 ms against 2 ms and none is measured
/// in docs/BENCHMARKS.md, "group commit").
const COMMIT_EVERY: Duration = Duration::from_millis(1);
/// How often one room's `challenge.response` is rewritten at most.
pub(super) const RESPONSE_EVERY: Duration = Duration::from_secs(5);

/// Called once the operation is committed (or failed).
pub type Done = Box<dyn FnOnce(Result<Written>) + Send + Sync>;

/// What a committed operation got: for an update, its number in its
/// document's log (SQLite's `doc_update_id`; Postgres's per-document
/// `seq`, which a cluster's bus carries); 0 for anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub seq: i64,
}

/// A room's text (`challenge.response`) and the time of the edit it
/// reflects (`challenge.updated_at`, as the room's members were told).
#[derive(Clone)]
pub struct Stamped {
    pub text: Arc<str>,
    pub at: Arc<str>,
}

/// What an update did to its document's text, in UTF-16 units (for the
/// timeline; 0 and 0 when not known).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextChange {
    pub inserted: u32,
    pub deleted: u32,
}

pub enum WriteOp {
    Append {
        challenge_id: Arc<str>,
        doc: DocKind,
        user_id: Option<String>,
        update: Vec<u8>,
        change: TextChange,
        /// The document's text after this update (`challenge.response`), when
        /// the room has it at hand; otherwise a `Response` follows.
        text: Option<Stamped>,
        done: Done,
    },
    Snapshot {
        challenge_id: Arc<str>,
        doc: DocKind,
        state: Vec<u8>,
        /// The room's own count of the updates the state holds (every
        /// number up to it): what a Postgres snapshot covers, since a
        /// room of a cluster also applies other nodes' updates. SQLite
        /// (one node) takes the log's last number instead.
        covers: i64,
    },
    /// The document's text after the updates queued before it; `done`, if
    /// any, is called once reads see it (see `Rooms::settle`).
    Response {
        challenge_id: Arc<str>,
        text: Stamped,
        /// Every update numbered up to this is in the text (Postgres,
        /// where a room also holds other nodes' updates; 0 if unknown).
        covers: i64,
        done: Option<Done>,
    },
    /// Writes nothing; `done` is called once everything queued before it
    /// is committed (or failed).
    Barrier { done: Done },
    /// Like a barrier, and lifts the stop of a room after a failed commit.
    Resume {
        challenge_id: Arc<str>,
        doc: DocKind,
        done: Done,
    },
    /// A timeline event (CONTRACT §7): `kind` and its JSON `data`.
    Event {
        challenge_id: Arc<str>,
        user_id: Option<String>,
        first_name: String,
        kind: &'static str,
        data: String,
    },
}

impl WriteOp {
    /// The document an operation writes for (none for barriers and
    /// events, which no later write builds on).
    pub(super) fn room(&self) -> Option<(&Arc<str>, DocKind)> {
        match self {
            WriteOp::Append {
                challenge_id, doc, ..
            }
            | WriteOp::Snapshot {
                challenge_id, doc, ..
            } => Some((challenge_id, *doc)),
            WriteOp::Response { challenge_id, .. } => Some((challenge_id, DocKind::Answer)),
            WriteOp::Barrier { .. } | WriteOp::Resume { .. } | WriteOp::Event { .. } => None,
        }
    }

    /// Whether it writes something (barriers and resumes do not).
    fn writes(&self) -> bool {
        !matches!(self, WriteOp::Barrier { .. } | WriteOp::Resume { .. })
    }

    fn take_done(self) -> Option<Done> {
        match self {
            WriteOp::Append { done, .. }
            | WriteOp::Barrier { done }
            | WriteOp::Resume { done, .. } => Some(done),
            WriteOp::Response { done, .. } => done,
            WriteOp::Snapshot { .. } | WriteOp::Event { .. } => None,
        }
    }
}

/// Whether the writer's commits fail, and why (for `/healthz`).
#[derive(Default)]
pub struct WriteHealth {
    failing: parking_lot::Mutex<Option<String>>,
}

impl WriteHealth {
    pub fn failing(&self) -> Option<String> {
        self.lock().clone()
    }

    fn set(&self, failing: Option<String>) {
        *self.lock() = failing;
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Option<String>> {
        self.failing.lock()
    }
}

/// Handle to the group-commit writer.
#[derive(Clone)]
pub struct DocWriter {
    tx: mpsc::Sender<WriteOp>,
    responses: Arc<Responses>,
}

impl DocWriter {
    /// Starts the writer. It ends when `stop` is cancelled (or every handle
    /// is dropped), after committing everything already queued.
    pub async fn spawn(
        store: Store,
        latency: Histogram,
        stop: CancellationToken,
    ) -> Result<(DocWriter, WriterTask)> {
        let db = LogDb::open(&store).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let responses = Arc::new(Responses::default());
        let catch_up = Arc::new(AtomicBool::new(false));
        if let Some(path) = store.path() {
            checkpoint::spawn(path.to_owned(), stop.clone(), catch_up.clone());
        }
        let (completed, completer) = completer();
        let writer = Writer {
            health: store.write_health().clone(),
            db,
            rx,
            latency,
            stop,
            responses: responses.clone(),
            completed,
            catch_up,
            written: HashMap::new(),
            last_ids: HashMap::new(),
            stopped: HashSet::new(),
            last_commit: Instant::now() - COMMIT_EVERY,
            last_edit: Instant::now(),
            last_probe: Instant::now(),
        };
        // A thread of its own: on the shared runtime each step of a commit
        // would wait behind every runnable socket task, and under load a
        // commit took 100 ms instead of 1. Not a `spawn_blocking` task: one
        // that lives as long as the server would keep tokio's paused clock
        // (tests) from ever advancing by itself.
        let (finished, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("duet-writer".into())
            .spawn(move || {
                super::raw::raise_priority();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(writer.run(completer)),
                    Err(err) => tracing::error!(cause = %err, "document writer could not start"),
                }
                let _ = finished.send(());
            })
            .map_err(|err| Error::CommitFailed {
                code: -1,
                msg: format!("the document writer's thread did not start: {err}"),
            })?;
        Ok((DocWriter { tx, responses }, WriterTask(done)))
    }

    /// The durable text of a challenge whose `response` column lags behind.
    pub fn waiting_response(&self, challenge_id: &str) -> Option<Stamped> {
        self.responses.get(challenge_id)
    }

    pub async fn send(&self, op: WriteOp) -> Result<()> {
        self.tx.send(op).await.map_err(|_| Error::WriterGone)
    }

    /// Queues `op` without waiting (from code that holds a lock); fails
    /// when the queue is full or the writer gone.
    pub fn try_send(&self, op: WriteOp) -> Result<()> {
        self.tx.try_send(op).map_err(|_| Error::WriterGone)
    }

    /// Waits until every operation queued before is done, and lets the
    /// room's writes through again if a failed commit had stopped them.
    pub async fn resume(&self, challenge_id: Arc<str>, doc: DocKind) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let done: Done = Box::new(move |_| {
            let _ = tx.send(());
        });
        self.send(WriteOp::Resume {
            challenge_id,
            doc,
            done,
        })
        .await?;
        rx.await.map_err(|_| Error::WriterGone)
    }
}

/// The writer's thread, to wait for its end (after `stop`).
pub struct WriterTask(oneshot::Receiver<()>);

impl WriterTask {
    /// Resolves once the writer has committed what was queued and stopped.
    pub async fn finished(self) {
        let _ = self.0.await;
    }
}

/// What the completion task gets: each waiter and its outcome, in commit order.
type Completions = Vec<(Done, Result<Written>)>;

/// Tells the waiters of each commit, in commit order (so acks and
/// broadcasts keep the order of the edits), on the main runtime.
fn completer() -> (mpsc::UnboundedSender<Completions>, JoinHandle<()>) {
    let (completed, mut to_complete) = mpsc::unbounded_channel::<Completions>();
    let task = tokio::spawn(async move {
        while let Some(dones) = to_complete.recv().await {
            for (done, result) in dones {
                done(result);
            }
        }
    });
    (completed, task)
}

/// The writer's state, on its own thread.
struct Writer {
    db: LogDb,
    rx: mpsc::Receiver<WriteOp>,
    latency: Histogram,
    stop: CancellationToken,
    responses: Arc<Responses>,
    completed: mpsc::UnboundedSender<Completions>,
    catch_up: Arc<AtomicBool>,
    health: Arc<WriteHealth>,
    /// When each room's response was last written.
    written: HashMap<Arc<str>, Instant>,
    /// The latest update id of each room, for the response that reflects it.
    last_ids: HashMap<Arc<str>, i64>,
    /// Documents whose writes are refused since a failed commit (until Resume).
    stopped: HashSet<(Arc<str>, DocKind)>,
    last_commit: Instant,
    /// When edits were last committed or failed (a probe is only tried
    /// when none came for a while: their own outcome says more).
    last_edit: Instant,
    last_probe: Instant,
}

/// While commits fail and no edit comes, a probe write is tried at most
/// this often, to tell when writes work again.
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl Writer {
    async fn run(mut self, completer: JoinHandle<()>) {
        let mut batch = Vec::with_capacity(64);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                op = self.rx.recv() => match op {
                    Some(op) => op,
                    None => break,
                },
                // Refuse new work; what is queued is still received, then `None`.
                _ = self.stop.cancelled(), if !self.rx.is_closed() => {
                    self.rx.close();
                    continue;
                }
                _ = tick.tick() => {
                    self.on_tick().await;
                    continue;
                }
            };
            self.gather(first, &mut batch).await;
            let outcome = self.commit(&batch).await;
            self.complete(&mut batch, outcome);
            self.catch_up_wal().await;
        }
        drop(self.completed);
        let _ = completer.await;
        let stopped = std::mem::take(&mut self.stopped);
        self.responses
            .flush(
                &mut self.db,
                &mut self.written,
                &|id: &str| stopped.contains(&(Arc::from(id), DocKind::Answer)),
                true,
            )
            .await;
        tracing::debug!("document writer stopped");
    }

    /// `first` and whatever else is queued. Under load (more edits already
    /// waiting), waits for a moment first; a lone edit goes at once, and so
    /// does a batch that is already large.
    async fn gather(&mut self, first: WriteOp, batch: &mut Vec<WriteOp>) {
        batch.push(first);
        let due = self.last_commit + COMMIT_EVERY;
        if (1..GATHER_ENOUGH).contains(&self.rx.len()) && Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
    }

    /// Commits the operations of rooms not stopped. Returns which
    /// operations were written (`true`) and the commit's result.
    async fn commit(&mut self, batch: &[WriteOp]) -> (Vec<bool>, Result<Vec<i64>>) {
        let started = Instant::now();
        self.last_commit = started;
        let write: Vec<bool> = batch
            .iter()
            .map(|op| match op {
                WriteOp::Resume {
                    challenge_id, doc, ..
                } => {
                    self.stopped.remove(&(challenge_id.clone(), *doc));
                    true
                }
                op => op
                    .room()
                    .is_none_or(|(id, doc)| !self.stopped.contains(&(id.clone(), doc))),
            })
            .collect();
        let writes = batch.iter().zip(&write).any(|(op, w)| *w && op.writes());
        let result = if !writes {
            // Barriers, or only refused operations: nothing to commit.
            Ok(Vec::new())
        } else if self.db.file_exists() {
            let now = timestamp();
            let ops = batch
                .iter()
                .zip(&write)
                .filter(|(_, w)| **w)
                .map(|(op, _)| op);
            match self
                .db
                .commit(ops, &now, &self.written, &self.last_ids)
                .await
            {
                Ok(committed) => {
                    for (id, update_id) in committed.last_ids {
                        self.last_ids.insert(id.clone(), update_id);
                    }
                    for row in &committed.texts {
                        self.written.insert(row.challenge_id.clone(), started);
                    }
                    self.responses.committed(&committed.texts, &committed.later);
                    Ok(committed.seqs)
                }
                Err(err) => Err(err),
            }
        } else {
            Err(Error::DatabaseGone)
        };
        self.latency.observe(started.elapsed().as_secs_f64());
        tracing::trace!(
            ops = batch.len(),
            queued = self.rx.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "committed"
        );
        // Only edits say whether writes work: a response rewritten in place
        // may commit on a full disk where every edit fails.
        let appended = |op: &&WriteOp| matches!(op, WriteOp::Append { .. });
        let edits = batch
            .iter()
            .zip(&write)
            .filter(|(_, w)| **w)
            .map(|(op, _)| op);
        match &result {
            Ok(_) if edits.clone().any(|op| appended(&op)) => {
                self.health.set(None);
                self.last_edit = started;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(cause = %err, ops = batch.len(), "document commit failed");
                self.health.set(Some(err.to_string()));
                self.last_edit = started;
                // Later edits of these rooms may build on the ones lost; a
                // lost snapshot or response loses nothing (the log has it).
                for op in edits.filter(appended) {
                    if let Some((id, doc)) = op.room() {
                        self.stopped.insert((id.clone(), doc));
                    }
                }
            }
        }
        (write, result)
    }

    /// Hands each waiter its outcome to the completion task, so the next
    /// commit starts now (acks and broadcasts run on another core).
    fn complete(
        &mut self,
        batch: &mut Vec<WriteOp>,
        (write, result): (Vec<bool>, Result<Vec<i64>>),
    ) {
        let failed = |err: &Error| match err {
            Error::CommitFailed { code, msg } => Error::CommitFailed {
                code: *code,
                msg: msg.clone(),
            },
            Error::DatabaseGone => Error::DatabaseGone,
            _ => Error::WriterGone,
        };
        // The numbers of the updates written, in order.
        let mut seqs = result.as_ref().map(|s| s.iter()).ok();
        let dones: Completions = batch
            .drain(..)
            .zip(write)
            .filter_map(|(op, written)| {
                let barrier = !op.writes();
                let append = matches!(op, WriteOp::Append { .. });
                let done = op.take_done()?;
                let outcome = match &result {
                    Ok(_) if written => {
                        let seq = match seqs.as_mut() {
                            Some(seqs) if append => seqs.next().copied().unwrap_or(0),
                            _ => 0,
                        };
                        Ok(Written { seq })
                    }
                    Ok(_) => Err(Error::AfterFailure),
                    // Barriers only promise that what came before is done.
                    Err(_) if barrier => Ok(Written::default()),
                    Err(err) if written => Err(failed(err)),
                    Err(_) => Err(Error::AfterFailure),
                };
                Some((done, outcome))
            })
            .collect();
        if !dones.is_empty() {
            let _ = self.completed.send(dones);
        }
    }

    async fn catch_up_wal(&mut self) {
        if self.catch_up.swap(false, Ordering::Relaxed) {
            let started = Instant::now();
            if let Err(err) = self.db.catch_up().await {
                tracing::warn!(cause = %err, "WAL checkpoint failed");
            }
            tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "WAL caught up");
        }
    }

    /// Every [`FLUSH_EVERY`]: the waiting responses that are due, and while
    /// commits fail, a probe write to tell when they work again.
    async fn on_tick(&mut self) {
        let stopped = &self.stopped;
        self.responses
            .flush(
                &mut self.db,
                &mut self.written,
                &|id: &str| stopped.contains(&(Arc::from(id), DocKind::Answer)),
                false,
            )
            .await;
        let written = &self.written;
        self.last_ids.retain(|id, _| written.contains_key(id));
        if self.health.failing().is_some()
            && self.last_probe.elapsed() >= PROBE_EVERY
            && self.last_edit.elapsed() >= PROBE_EVERY
        {
            self.last_probe = Instant::now();
            let probed = if self.db.file_exists() {
                self.db.probe(&timestamp()).await
            } else {
                Err(Error::DatabaseGone)
            };
            match probed {
                Ok(()) => {
                    tracing::info!("writes work again");
                    self.health.set(None);
                }
                Err(err) => self.health.set(Some(err.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests;
