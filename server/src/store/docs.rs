//! Reading a challenge's document logs: the latest snapshot of a document
//! and the updates after it (what a room loads), and the responses a crash
//! left behind the log (which `challenges::read::repair_responses` rebuilds
//! at start-up). A challenge has two documents ([`DocKind`]).

use super::{Result, Store};

/// Which document of a challenge (the `doc` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// The answer (`challenges:<id>`).
    Answer,
    /// The interviewers' private notes (`notes:<id>`).
    Notes,
}

impl DocKind {
    pub fn column(self) -> i64 {
        match self {
            DocKind::Answer => 0,
            DocKind::Notes => 1,
        }
    }
}

/// What loading a room reads: the latest snapshot and the updates after it.
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub tail: Vec<Vec<u8>>,
}

impl Store {
    pub async fn load_doc(&self, challenge_id: &str, doc: DocKind) -> Result<StoredDoc> {
        let snap: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "select state_v1, last_update_id from doc_snapshot where challenge_id = ? and doc = ?",
        )
        .bind(challenge_id)
        .bind(doc.column())
        .fetch_optional(&self.pool)
        .await?;
        let after = snap.as_ref().map_or(0, |(_, id)| *id);
        let tail: Vec<(Vec<u8>,)> = sqlx::query_as(
            "select update_v1 from doc_update where challenge_id = ? and doc = ? and doc_update_id > ? order by doc_update_id",
        )
        .bind(challenge_id)
        .bind(doc.column())
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        Ok(StoredDoc {
            snapshot: snap.map(|(s, _)| s),
            tail: tail.into_iter().map(|(u,)| u).collect(),
        })
    }

    /// Challenges whose `response` lags behind their update log (the
    /// writer writes busy rooms' texts a few seconds late; a crash in
    /// between leaves them behind).
    pub async fn lagging_responses(&self) -> Result<Vec<String>> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "select c.challenge_id from challenge c
             where c.response_update_id < (select max(d.doc_update_id) from doc_update d where d.challenge_id = c.challenge_id and d.doc = 0)",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Sets a repaired `response`: the text of the whole log, with the
    /// commit time of its last update as `updated_at` (the edit is older
    /// than the start-up that repairs it).
    pub async fn set_repaired_response(&self, challenge_id: &str, text: &str) -> Result<()> {
        sqlx::query(
            "update challenge set response = ?1,
                response_update_id = (select max(doc_update_id) from doc_update where challenge_id = ?2 and doc = 0),
                updated_at = coalesce(
                  (select created_at from doc_update where challenge_id = ?2 and doc = 0
                   order by doc_update_id desc limit 1), updated_at)
             where challenge_id = ?2",
        )
        .bind(text)
        .bind(challenge_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
