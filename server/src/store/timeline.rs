//! What happened in a challenge, for its timeline and playback (CONTRACT
//! §7): the events the rooms recorded (`timeline_event`), the edits of the
//! answer's log (`doc_update`, with what each did to the text), the log up
//! to an instant (the checkpoint before it and the updates after it), and
//! a whole challenge as one file to export and import again.

use serde::{Deserialize, Serialize};

use super::docs::DocKind;
use super::{random_id, timestamp, Result, Store};

/// One event of a timeline, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct EventRow {
    pub at: String,
    pub user_id: Option<String>,
    pub first_name: String,
    pub kind: String,
    /// JSON (`{"chars": 120}`), merged into the event when shown.
    pub data: String,
    /// Stored: the last update (of any challenge) committed before it. In
    /// an export file: how many of the file's updates come before it.
    #[serde(default)]
    pub after: i64,
}

/// One update of a document's log, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct UpdateRow {
    pub id: i64,
    pub doc: i64,
    pub at: String,
    pub user_id: Option<String>,
    pub first_name: String,
    pub inserted: i64,
    pub deleted: i64,
    #[serde(with = "base64_bytes")]
    pub update_v1: Vec<u8>,
}

/// The answer's log up to an instant: the checkpoint before it (if any)
/// and the updates after that checkpoint, up to the instant.
pub struct LogUntil {
    pub checkpoint: Option<Vec<u8>>,
    pub tail: Vec<Vec<u8>>,
}

impl Store {
    /// The events of the session, oldest first: what the rooms recorded up
    /// to the interview's end, that included. What comes after (people
    /// opening the ended room to review it, a run that finished late, a
    /// control repeated) is not part of the session.
    pub async fn events(&self, challenge_id: &str) -> Result<Vec<EventRow>> {
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(
                "select created_at as at, user_id, first_name, kind, data, after_update_id as after
                 from timeline_event where challenge_id = $1
                   and timeline_event_id <= coalesce(
                       (select min(timeline_event_id) from timeline_event
                        where challenge_id = $1 and kind = 'end'),
                       9223372036854775807)
                 order by timeline_event_id",
            )
            .bind(challenge_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every update of a document, oldest first, with its author's name
    /// (this server's user's, or the one an imported file gave); `id`
    /// numbers it as [`Store::log_id`] says.
    pub async fn updates(&self, challenge_id: &str, doc: DocKind) -> Result<Vec<UpdateRow>> {
        let id = self.log_id();
        let sql = format!(
            r#"select d.{id} as id, d.doc, d.created_at as at, d.user_id,
                    coalesce(u.first_name, a.first_name, '') as first_name, d.inserted, d.deleted, d.update_v1
             from doc_update d left join "user" u on u.user_id = d.user_id
                  left join challenge_author a on a.challenge_id = d.challenge_id and a.user_id = d.user_id
             where d.challenge_id = $1 and d.doc = $2 order by d.{id}"#
        );
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(challenge_id)
                .bind(doc.column())
                .fetch_all(pool)
                .await?
        }))
    }

    /// The answer's log as it stood at `at` (a timestamp as [`timestamp`]
    /// writes them): every update committed at or before it, none after.
    pub async fn answer_until(&self, challenge_id: &str, at: &str) -> Result<LogUntil> {
        let doc = DocKind::Answer.column();
        let id = self.log_id();
        let last_sql = format!(
            "select max({id}) from doc_update where challenge_id = $1 and doc = $2 and created_at <= $3"
        );
        let last: Option<i64> = crate::on_db!(self, |pool| {
            sqlx::query_scalar(&last_sql)
                .bind(challenge_id)
                .bind(doc)
                .bind(at)
                .fetch_one(pool)
                .await?
        });
        let Some(last) = last else {
            return Ok(LogUntil {
                checkpoint: None,
                tail: Vec::new(),
            });
        };
        let checkpoint: Option<(Vec<u8>, i64)> = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "select state_v1, last_update_id from doc_checkpoint
                 where challenge_id = $1 and doc = $2 and last_update_id <= $3
                 order by last_update_id desc limit 1",
            )
            .bind(challenge_id)
            .bind(doc)
            .bind(last)
            .fetch_optional(pool)
            .await?
        });
        let after = checkpoint.as_ref().map_or(0, |(_, id)| *id);
        let tail_sql = format!(
            "select update_v1 from doc_update
             where challenge_id = $1 and doc = $2 and {id} > $3 and {id} <= $4 order by {id}"
        );
        let tail: Vec<(Vec<u8>,)> = crate::on_db!(self, |pool| {
            sqlx::query_as(&tail_sql)
                .bind(challenge_id)
                .bind(doc)
                .bind(after)
                .bind(last)
                .fetch_all(pool)
                .await?
        });
        Ok(LogUntil {
            checkpoint: checkpoint.map(|(state, _)| state),
            tail: tail.into_iter().map(|(u,)| u).collect(),
        })
    }

    /// Recreates an exported challenge for `user_id`: a new id, ended (it
    /// opens read-only, with its playback), its logs and events as they
    /// were, with their times, in one transaction. Returns the new id.
    pub async fn import_challenge(&self, user_id: &str, file: &ImportFile) -> Result<String> {
        self.check_file()?;
        let id = random_id(12);
        let sql = ImportSql::new(self.is_postgres());
        crate::on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            import_into!(tx, sql, id, user_id, file);
            tx.commit().await?;
        });
        Ok(id)
    }
}

/// The statements of an import, for SQLite or Postgres.
struct ImportSql {
    pg: bool,
    insert_event: String,
    insert_update: &'static str,
    insert_author: &'static str,
    set_response: String,
}

impl ImportSql {
    fn new(pg: bool) -> ImportSql {
        // SQLite numbers updates by their row id; Postgres by `seq`.
        let (log_id, after) = if pg {
            (
                "seq",
                "(select coalesce(max(seq), 0) from doc_update where challenge_id = $1 and doc = 0)",
            )
        } else {
            (
                "doc_update_id",
                "(select coalesce(max(doc_update_id), 0) from doc_update)",
            )
        };
        ImportSql {
            pg,
            insert_event: format!(
                "insert into timeline_event (challenge_id, user_id, first_name, kind, data, created_at, after_update_id)
                 values ($1, $2, $3, $4, $5, $6, {after})"
            ),
            insert_update: if pg {
                "insert into doc_update (challenge_id, doc, user_id, update_v1, inserted, deleted, created_at, seq)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)"
            } else {
                "insert into doc_update (challenge_id, doc, user_id, update_v1, inserted, deleted, created_at)
                 values ($1, $2, $3, $4, $5, $6, $7)"
            },
            insert_author: r#"insert into challenge_author (challenge_id, user_id, first_name)
                 select $1, $2, $3 where not exists (select 1 from "user" where user_id = $2)"#,
            set_response: format!(
                "update challenge set response_update_id =
                    coalesce((select max({log_id}) from doc_update where challenge_id = $1 and doc = 0), 0)
                 where challenge_id = $1"
            ),
        }
    }
}

/// The names an imported file gives the authors of its updates.
fn authors(file: &ImportFile) -> std::collections::BTreeMap<&str, &str> {
    let mut names = std::collections::BTreeMap::new();
    for u in &file.updates {
        if let Some(user_id) = &u.user_id {
            if !u.first_name.is_empty() {
                names
                    .entry(user_id.as_str())
                    .or_insert(u.first_name.as_str());
            }
        }
    }
    names
}

/// The body of `import_challenge` on transaction `$tx` of either backend:
/// the challenge, its updates and events in their order, the names of
/// authors this server does not know, and what its response covers.
macro_rules! import_into {
    ($tx:ident, $sql:ident, $id:ident, $user_id:ident, $file:ident) => {{
        let c = &$file.challenge;
        sqlx::query(
            "insert into challenge (challenge_id, user_id, title, prompt, language, response, created_at, updated_at,
                                    interviewer_key, status, ended_at, locked, run_enabled)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'ended', $10, 1, 0)",
        )
        .bind(&$id)
        .bind($user_id)
        .bind(&c.title)
        .bind(&c.prompt)
        .bind(&c.language)
        .bind(&$file.answer)
        .bind(&c.created_at)
        .bind(&c.updated_at)
        .bind(random_id(12))
        .bind(c.ended_at.clone().unwrap_or_else(timestamp))
        .execute(&mut *$tx)
        .await?;
        let mut events = $file.events.iter().peekable();
        let mut seqs = [0i64; 2];
        let event = |e: &EventRow| {
            sqlx::query(&$sql.insert_event)
                .bind(&$id)
                .bind(e.user_id.clone())
                .bind(e.first_name.clone())
                .bind(e.kind.clone())
                .bind(e.data.clone())
                .bind(e.at.clone())
        };
        for (i, u) in $file.updates.iter().enumerate() {
            while let Some(e) = events.next_if(|e| e.after <= i as i64) {
                event(e).execute(&mut *$tx).await?;
            }
            let seq = &mut seqs[usize::from(u.doc != 0)];
            *seq += 1;
            let query = sqlx::query($sql.insert_update)
                .bind(&$id)
                .bind(u.doc)
                .bind(&u.user_id)
                .bind(&u.update_v1)
                .bind(u.inserted)
                .bind(u.deleted)
                .bind(&u.at);
            let query = if $sql.pg { query.bind(*seq) } else { query };
            query.execute(&mut *$tx).await?;
        }
        for e in events {
            event(e).execute(&mut *$tx).await?;
        }
        for (doc, seq) in seqs.iter().enumerate().filter(|(_, s)| $sql.pg && **s > 0) {
            sqlx::query("insert into doc_head (challenge_id, doc, seq) values ($1, $2, $3)")
                .bind(&$id)
                .bind(doc as i64)
                .bind(*seq)
                .execute(&mut *$tx)
                .await?;
        }
        for (author, first_name) in authors($file) {
            sqlx::query($sql.insert_author)
                .bind(&$id)
                .bind(author)
                .bind(first_name)
                .execute(&mut *$tx)
                .await?;
        }
        sqlx::query(&$sql.set_response).bind(&$id).execute(&mut *$tx).await?;
    }};
}
use import_into;

/// The challenge's own fields in an export file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedChallenge {
    pub title: String,
    pub prompt: String,
    pub language: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
}

/// What an import needs of an export file (CONTRACT §7).
#[derive(Debug, Clone, Deserialize)]
pub struct ImportFile {
    pub challenge: ExportedChallenge,
    #[serde(default)]
    pub answer: String,
    #[serde(default)]
    pub updates: Vec<UpdateRow>,
    #[serde(default)]
    pub events: Vec<EventRow>,
}

/// Bytes as base64 in JSON.
mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}
