//! `challenge.response` is written at most every [`RESPONSE_EVERY`] per
//! room: a busy room's text is rewritten in full on each write, which at
//! thousands of edits/s across many rooms would dominate the commit. The
//! texts waiting (all of them durable in the update log) are kept in
//! [`Responses`], where reads see them; a crash is repaired at start-up
//! from the log (`challenges::read::repair_responses`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{LogDb, TextRow};
use super::{Stamped, RESPONSE_EVERY};

/// How often waiting responses are looked at.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Text bytes one flush of waiting responses writes at most: a flush of
/// every room's large document at once would hold up the acks behind it.
/// A quarter of a MiB four times a second (rather than 1 MiB once):
/// measured in docs/BENCHMARKS.md ("responses flush").
const FLUSH_BYTES: usize = 256 << 10;

/// A room's durable text waiting to be written.
#[derive(Clone)]
pub(super) struct Waiting {
    pub(super) text: Stamped,
    /// The last update it reflects.
    pub(super) update_id: i64,
}

/// The texts waiting, shared by the writer and the readers.
#[derive(Default)]
pub struct Responses {
    waiting: parking_lot::Mutex<HashMap<Arc<str>, Waiting>>,
}

impl Responses {
    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<Arc<str>, Waiting>> {
        self.waiting.lock()
    }

    /// The durable text of a challenge whose `response` lags behind.
    pub(super) fn get(&self, challenge_id: &str) -> Option<Stamped> {
        self.lock().get(challenge_id).map(|w| w.text.clone())
    }

    /// After a commit: the texts written are no longer waiting, the ones
    /// left for later are.
    pub(super) fn committed(&self, written: &[TextRow<'_>], later: &[TextRow<'_>]) {
        let mut waiting = self.lock();
        for row in written {
            waiting.remove(&**row.challenge_id);
        }
        for row in later {
            waiting.insert(
                row.challenge_id.clone(),
                Waiting {
                    text: row.text.clone(),
                    update_id: row.update_id,
                },
            );
        }
    }

    /// Writes the waiting responses that are due (their room's response was
    /// written [`RESPONSE_EVERY`] ago or more), up to [`FLUSH_BYTES`] of
    /// text, in one transaction; the rest wait for the next tick. With
    /// `all`, every one. `skip` names rooms whose writes are stopped.
    pub(super) async fn flush(
        &self,
        db: &mut LogDb,
        written: &mut HashMap<Arc<str>, Instant>,
        skip: &impl Fn(&str) -> bool,
        all: bool,
    ) {
        let now = Instant::now();
        let mut bytes = 0;
        let due: Vec<(Arc<str>, Waiting)> = self
            .lock()
            .iter()
            .filter(|(k, _)| !skip(k))
            .filter(|(k, _)| {
                all || written
                    .get(*k)
                    .is_none_or(|at| now.duration_since(*at) >= RESPONSE_EVERY)
            })
            .take_while(|(_, w)| {
                let len = w.text.text.len();
                bytes += len;
                all || bytes <= FLUSH_BYTES || bytes == len
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        written.retain(|_, at| now.duration_since(*at) < RESPONSE_EVERY * 4);
        if due.is_empty() {
            return;
        }
        let rows: Vec<(&str, &Stamped, i64)> = due
            .iter()
            .map(|(k, w)| (&**k, &w.text, w.update_id))
            .collect();
        let result = db.update_responses(rows).await;
        tracing::debug!(
            rooms = due.len(),
            ms = now.elapsed().as_secs_f64() * 1e3,
            "responses flushed"
        );
        match result {
            Ok(()) => {
                let mut map = self.lock();
                for (id, w) in &due {
                    // Only if no newer text arrived meanwhile.
                    if map
                        .get(id)
                        .is_some_and(|t| Arc::ptr_eq(&t.text.text, &w.text.text))
                    {
                        map.remove(id);
                    }
                    written.insert(id.clone(), now);
                }
            }
            Err(err) => tracing::error!(cause = %err, "writing responses failed"),
        }
    }
}
