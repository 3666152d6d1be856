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
        Ok(sqlx::query_as::<_, EventRow>(
            "select created_at as at, user_id, first_name, kind, data, after_update_id as after
             from timeline_event where challenge_id = ?1
               and timeline_event_id <= coalesce(
                   (select min(timeline_event_id) from timeline_event
                    where challenge_id = ?1 and kind = 'end'),
                   9223372036854775807)
             order by timeline_event_id",
        )
        .bind(challenge_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every update of a document, oldest first, with its author's name
    /// (this server's user's, or the one an imported file gave).
    pub async fn updates(&self, challenge_id: &str, doc: DocKind) -> Result<Vec<UpdateRow>> {
        Ok(sqlx::query_as::<_, UpdateRow>(
            "select d.doc_update_id as id, d.doc, d.created_at as at, d.user_id,
                    coalesce(u.first_name, a.first_name, '') as first_name, d.inserted, d.deleted, d.update_v1
             from doc_update d left join user u on u.user_id = d.user_id
                  left join challenge_author a on a.challenge_id = d.challenge_id and a.user_id = d.user_id
             where d.challenge_id = ? and d.doc = ? order by d.doc_update_id",
        )
        .bind(challenge_id)
        .bind(doc.column())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The answer's log as it stood at `at` (a timestamp as [`timestamp`]
    /// writes them): every update committed at or before it, none after.
    pub async fn answer_until(&self, challenge_id: &str, at: &str) -> Result<LogUntil> {
        let doc = DocKind::Answer.column();
        let last: Option<i64> = sqlx::query_scalar(
            "select max(doc_update_id) from doc_update
             where challenge_id = ? and doc = ? and created_at <= ?",
        )
        .bind(challenge_id)
        .bind(doc)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        let Some(last) = last else {
            return Ok(LogUntil {
                checkpoint: None,
                tail: Vec::new(),
            });
        };
        let checkpoint: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "select state_v1, last_update_id from doc_checkpoint
             where challenge_id = ? and doc = ? and last_update_id <= ?
             order by last_update_id desc limit 1",
        )
        .bind(challenge_id)
        .bind(doc)
        .bind(last)
        .fetch_optional(&self.pool)
        .await?;
        let after = checkpoint.as_ref().map_or(0, |(_, id)| *id);
        let tail: Vec<(Vec<u8>,)> = sqlx::query_as(
            "select update_v1 from doc_update
             where challenge_id = ? and doc = ? and doc_update_id > ? and doc_update_id <= ?
             order by doc_update_id",
        )
        .bind(challenge_id)
        .bind(doc)
        .bind(after)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        Ok(LogUntil {
            checkpoint: checkpoint.map(|(state, _)| state),
            tail: tail.into_iter().map(|(u,)| u).collect(),
        })
    }

    /// Recreates an exported challenge for `user_id`: a new id, ended (it
    /// opens read-only, with its playback), its logs and events as they
    /// were, with their times. Returns the new id.
    pub async fn import_challenge(&self, user_id: &str, file: &ImportFile) -> Result<String> {
        self.check_file()?;
        let id = random_id(12);
        let mut tx = self.pool.begin().await?;
        let c = &file.challenge;
        let ended_at = c.ended_at.clone().unwrap_or_else(timestamp);
        sqlx::query(
            "insert into challenge (challenge_id, user_id, title, prompt, language, response, created_at, updated_at,
                                    interviewer_key, status, ended_at, locked, run_enabled)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, 'ended', ?, 1, 0)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(&c.title)
        .bind(&c.prompt)
        .bind(&c.language)
        .bind(&file.answer)
        .bind(&c.created_at)
        .bind(&c.updated_at)
        .bind(random_id(12))
        .bind(&ended_at)
        .execute(&mut *tx)
        .await?;
        let mut events = file.events.iter().peekable();
        for (i, u) in file.updates.iter().enumerate() {
            while let Some(e) = events.next_if(|e| e.after <= i as i64) {
                insert_event(&mut tx, &id, e).await?;
            }
            sqlx::query(
                "insert into doc_update (challenge_id, doc, user_id, update_v1, inserted, deleted, created_at)
                 values (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(u.doc)
            .bind(&u.user_id)
            .bind(&u.update_v1)
            .bind(u.inserted)
            .bind(u.deleted)
            .bind(&u.at)
            .execute(&mut *tx)
            .await?;
        }
        for e in events {
            insert_event(&mut tx, &id, e).await?;
        }
        insert_authors(&mut tx, &id, file).await?;
        sqlx::query(
            "update challenge set response_update_id =
                coalesce((select max(doc_update_id) from doc_update where challenge_id = ?1 and doc = 0), 0)
             where challenge_id = ?1",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// Inserts an imported event after the updates inserted so far.
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    challenge_id: &str,
    e: &EventRow,
) -> Result<()> {
    sqlx::query(
        "insert into timeline_event (challenge_id, user_id, first_name, kind, data, created_at, after_update_id)
         values (?, ?, ?, ?, ?, ?, (select coalesce(max(doc_update_id), 0) from doc_update))",
    )
    .bind(challenge_id)
    .bind(&e.user_id)
    .bind(&e.first_name)
    .bind(&e.kind)
    .bind(&e.data)
    .bind(&e.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps the name the file gives each author of its updates, for those
/// this server does not know (see `updates`).
async fn insert_authors(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    challenge_id: &str,
    file: &ImportFile,
) -> Result<()> {
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
    for (user_id, first_name) in names {
        sqlx::query(
            "insert into challenge_author (challenge_id, user_id, first_name)
             select ?1, ?2, ?3 where not exists (select 1 from user where user_id = ?2)",
        )
        .bind(challenge_id)
        .bind(user_id)
        .bind(first_name)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

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
