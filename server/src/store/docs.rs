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
    /// The column that numbers a document's updates in commit order:
    /// SQLite's global `doc_update_id`; Postgres's `seq`, counted per
    /// document under its `doc_head` row lock, so that nodes committing
    /// the same room in turn get it gap-free (the bus relies on it).
    pub(crate) fn log_id(&self) -> &'static str {
        if self.is_postgres() {
            "seq"
        } else {
            "doc_update_id"
        }
    }

    pub async fn load_doc(&self, challenge_id: &str, doc: DocKind) -> Result<StoredDoc> {
        let (snap, tail) = self.load_doc_after(challenge_id, doc).await?;
        Ok(StoredDoc {
            snapshot: snap.map(|(s, _)| s),
            tail: tail.into_iter().map(|(_, u)| u).collect(),
        })
    }

    /// The latest snapshot (and the last update it covers) and the updates
    /// after it, each with its number (see [`Store::log_id`]).
    pub async fn load_doc_after(
        &self,
        challenge_id: &str,
        doc: DocKind,
    ) -> Result<(Option<(Vec<u8>, i64)>, Vec<(i64, Vec<u8>)>)> {
        let snap: Option<(Vec<u8>, i64)> = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "select state_v1, last_update_id from doc_snapshot where challenge_id = $1 and doc = $2",
            )
            .bind(challenge_id)
            .bind(doc.column())
            .fetch_optional(pool)
            .await?
        });
        let after = snap.as_ref().map_or(0, |(_, id)| *id);
        let tail = self.updates_after(challenge_id, doc, after).await?;
        Ok((snap, tail))
    }

    /// A document's updates numbered above `after`, in order.
    pub async fn updates_after(
        &self,
        challenge_id: &str,
        doc: DocKind,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = self.edits_after(challenge_id, doc, after).await?;
        Ok(rows.into_iter().map(|(n, _, update)| (n, update)).collect())
    }

    /// A document's updates numbered above `after`, in order, with who
    /// made each (null for server-side edits).
    pub async fn edits_after(
        &self,
        challenge_id: &str,
        doc: DocKind,
        after: i64,
    ) -> Result<Vec<(i64, Option<String>, Vec<u8>)>> {
        let id = self.log_id();
        let sql = format!(
            "select {id}, user_id, update_v1 from doc_update where challenge_id = $1 and doc = $2 and {id} > $3 order by {id}"
        );
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(challenge_id)
                .bind(doc.column())
                .bind(after)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The last number of each of these challenges' documents (Postgres's
    /// `doc_head`; a document never written has none): one query for
    /// every room a node holds, to notice updates the bus lost.
    pub async fn doc_heads(&self, challenge_ids: &[String]) -> Result<Vec<(String, DocKind, i64)>> {
        let Some(pool) = self.pg_pool() else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "select challenge_id, doc, seq from doc_head where challenge_id = any($1)",
        )
        .bind(challenge_ids)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, doc, seq)| {
                let kind = if doc == DocKind::Notes.column() {
                    DocKind::Notes
                } else {
                    DocKind::Answer
                };
                (id, kind, seq)
            })
            .collect())
    }

    /// Challenges whose `response` lags behind their update log (the
    /// writer writes busy rooms' texts a few seconds late; a crash in
    /// between leaves them behind).
    pub async fn lagging_responses(&self) -> Result<Vec<String>> {
        let id = self.log_id();
        let sql = format!(
            "select c.challenge_id from challenge c
             where c.response_update_id < (select max(d.{id}) from doc_update d where d.challenge_id = c.challenge_id and d.doc = 0)"
        );
        let ids: Vec<(String,)> =
            crate::on_db!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Of these challenges, those whose `response` lags behind their log's
    /// head (Postgres: another node may hold the newest text, written a
    /// few seconds late; SQLite has one node, whose reads see it).
    pub async fn behind_responses(&self, challenge_ids: &[String]) -> Result<Vec<String>> {
        let Some(pool) = self.pg_pool() else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String,)> = sqlx::query_as(
            "select c.challenge_id from challenge c
             join doc_head h on h.challenge_id = c.challenge_id and h.doc = 0
             where c.challenge_id = any($1) and c.response_update_id < h.seq",
        )
        .bind(challenge_ids)
        .fetch_all(pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Sets `response` to `text`, the log's text up to update `covers`
    /// (committed at `at`), unless a text covering as much is there.
    pub async fn catch_up_response(
        &self,
        challenge_id: &str,
        text: &str,
        covers: i64,
        at: &str,
    ) -> Result<()> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "update challenge set response = $1, response_update_id = $2, updated_at = $3
                 where challenge_id = $4 and response_update_id < $2",
            )
            .bind(text)
            .bind(covers)
            .bind(at)
            .bind(challenge_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// When update `seq` of a challenge's answer was committed.
    pub async fn update_time(&self, challenge_id: &str, seq: i64) -> Result<Option<String>> {
        let id = self.log_id();
        let sql = format!(
            "select created_at from doc_update where challenge_id = $1 and doc = 0 and {id} = $2"
        );
        let at: Option<(String,)> = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(challenge_id)
                .bind(seq)
                .fetch_optional(pool)
                .await?
        });
        Ok(at.map(|(at,)| at))
    }
}
