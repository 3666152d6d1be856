//! The one way to read a challenge's live answer, and its rule:
//!
//! **A read sees every acknowledged edit.**
//!
//! Three places may hold the text, newest first: a loaded room's document
//! (a busy Yjs room computes its text only on demand), the writer's
//! waiting responses (a busy room's `challenge.response` is rewritten at
//! most every few seconds; the texts waiting are durable in the update
//! log), and the `challenge.response` column. So a read first asks a
//! loaded room to queue its current text behind every edit acknowledged
//! before, waits until that is committed ([`Rooms::settle`]), then reads
//! the column and lays the waiting text over it. With many nodes, a room
//! only other nodes hold may be ahead of the column: the column is caught
//! up from the log first ([`Reader::catch_up`]). At start-up
//! [`repair_responses`] rebuilds the responses a crash left behind the log.

use super::doc;
use super::model::Challenge;
use super::room::Rooms;
use crate::store::writer::DocWriter;
use crate::store::Store;

/// What a read of the live answer needs.
pub struct Reader<'a> {
    pub store: &'a Store,
    pub rooms: &'a Rooms,
    pub writer: &'a DocWriter,
}

impl Reader<'_> {
    /// One challenge, with every acknowledged edit in its response.
    pub async fn challenge(&self, id: &str) -> crate::store::Result<Option<Challenge>> {
        self.rooms.settle(id).await;
        self.catch_up(&[id.to_owned()]).await?;
        let mut challenge = self.store.get_challenge(id).await?;
        if let Some(c) = &mut challenge {
            self.overlay(c);
        }
        Ok(challenge)
    }

    /// The challenges `user_id` created, newest first, each with every
    /// acknowledged edit in its response.
    pub async fn challenges_of(&self, user_id: &str) -> crate::store::Result<Vec<Challenge>> {
        let mut challenges = self.store.list_challenges(user_id).await?;
        let mut settled = false;
        for c in &challenges {
            if self.rooms.is_loaded(&c.id) {
                self.rooms.settle(&c.id).await;
                settled = true;
            }
        }
        let ids: Vec<String> = challenges.iter().map(|c| c.id.clone()).collect();
        settled |= self.catch_up(&ids).await?;
        if settled {
            challenges = self.store.list_challenges(user_id).await?;
        }
        for c in &mut challenges {
            self.overlay(c);
        }
        Ok(challenges)
    }

    /// Many nodes: a room held only by other nodes may have acknowledged
    /// edits whose text is not in the column yet (each node writes a busy
    /// room's text a few seconds late). Such a column is caught up with
    /// the log's text here. True if one was.
    async fn catch_up(&self, ids: &[String]) -> crate::store::Result<bool> {
        let mut caught_up = false;
        for id in self.store.behind_responses(ids).await? {
            if self.rooms.is_loaded(&id) || self.writer.waiting_response(&id).is_some() {
                continue;
            }
            caught_up |= catch_up_from_log(self.store, &id).await?;
        }
        Ok(caught_up)
    }

    /// The writer's waiting text, newer than the column, if any.
    fn overlay(&self, challenge: &mut Challenge) {
        if let Some(waiting) = self.writer.waiting_response(&challenge.id) {
            challenge.response = waiting.text.to_string();
            challenge.updated_at = waiting.at.to_string();
        }
    }
}

/// After a crash, `challenge.response` may lag behind the update log:
/// rebuilds the text of those challenges from the log. Returns how many.
pub async fn repair_responses(store: &Store) -> crate::store::Result<usize> {
    let mut repaired = 0;
    for id in store.lagging_responses().await? {
        repaired += usize::from(catch_up_from_log(store, &id).await?);
    }
    Ok(repaired)
}

/// Sets a challenge's `response` to the text of its whole log, with the
/// commit time of the last update as `updated_at` (the edit is older than
/// the read or start-up that catches it up), unless a text covering as
/// much is there already. False if the log is empty.
async fn catch_up_from_log(store: &Store, id: &str) -> crate::store::Result<bool> {
    let (snapshot, tail) = store
        .load_doc_after(id, crate::store::docs::DocKind::Answer)
        .await?;
    let Some(covers) = tail
        .last()
        .map(|(n, _)| *n)
        .or_else(|| snapshot.as_ref().map(|(_, n)| *n))
    else {
        return Ok(false);
    };
    let updates: Vec<Vec<u8>> = tail.into_iter().map(|(_, u)| u).collect();
    let loaded = doc::load(snapshot.as_ref().map(|(s, _)| &s[..]), &updates);
    if loaded.skipped > 0 {
        tracing::warn!(challenge_id = %id, skipped = loaded.skipped, "stored updates that do not apply were skipped");
    }
    let Some(at) = store.update_time(id, covers).await? else {
        return Ok(false);
    };
    store
        .catch_up_response(id, &doc::text(&loaded.doc), covers, &at)
        .await?;
    Ok(true)
}
