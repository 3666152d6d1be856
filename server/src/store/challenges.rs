//! Queries on `challenge`.

use crate::challenges::model::{Challenge, NewChallenge};

use super::{random_id, timestamp, Result, Store};

const COLUMNS: &str = "challenge_id, title, prompt, response, language, created_at, updated_at";

impl Store {
    pub async fn create_challenge(&self, user_id: &str, new: &NewChallenge) -> Result<Challenge> {
        self.check_file()?;
        let now = timestamp();
        let challenge = Challenge {
            // 96 bits of randomness: knowing the URL is what lets you in.
            id: random_id(12),
            title: new.title.clone(),
            prompt: new.prompt.clone(),
            response: String::new(),
            language: new.language.clone(),
            created_at: now.clone(),
            updated_at: now,
        };
        sqlx::query(
            "insert into challenge (challenge_id, user_id, title, prompt, language, response, created_at, updated_at) values (?, ?, ?, ?, ?, '', ?, ?)",
        )
        .bind(&challenge.id)
        .bind(user_id)
        .bind(&challenge.title)
        .bind(&challenge.prompt)
        .bind(&challenge.language)
        .bind(&challenge.created_at)
        .bind(&challenge.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(challenge)
    }

    pub async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>> {
        Ok(sqlx::query_as::<_, Challenge>(&format!(
            "select {COLUMNS} from challenge where challenge_id = ?"
        ))
        .bind(challenge_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The challenges `user_id` created, newest first.
    pub async fn list_challenges(&self, user_id: &str) -> Result<Vec<Challenge>> {
        Ok(sqlx::query_as::<_, Challenge>(&format!(
            "select {COLUMNS} from challenge where user_id = ? order by created_at desc, rowid desc limit 500"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
