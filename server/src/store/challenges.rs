//! Queries on `challenge`.

use crate::challenges::model::{Challenge, NewChallenge};

use super::{random_id, timestamp, Result, Store};

const COLUMNS: &str = "challenge_id, title, prompt, response, language, created_at, updated_at, \
     status, ended_at, locked <> 0 as locked, run_enabled <> 0 as run_enabled, user_id, interviewer_key";

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
            status: crate::challenges::model::LIVE.into(),
            ended_at: None,
            locked: false,
            run_enabled: true,
            creator_id: user_id.to_owned(),
            // 96 bits: whoever has it is an interviewer.
            interviewer_key: random_id(12),
        };
        crate::on_db!(self, |pool| {
            sqlx::query(
                "insert into challenge (challenge_id, user_id, title, prompt, language, response, created_at, updated_at, interviewer_key)
                 values ($1, $2, $3, $4, $5, '', $6, $7, $8)",
            )
            .bind(&challenge.id)
            .bind(user_id)
            .bind(&challenge.title)
            .bind(&challenge.prompt)
            .bind(&challenge.language)
            .bind(&challenge.created_at)
            .bind(&challenge.updated_at)
            .bind(&challenge.interviewer_key)
            .execute(pool)
            .await?;
        });
        Ok(challenge)
    }

    pub async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>> {
        let sql = format!("select {COLUMNS} from challenge where challenge_id = $1");
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(challenge_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The challenges `user_id` created, newest first.
    pub async fn list_challenges(&self, user_id: &str) -> Result<Vec<Challenge>> {
        // Ties (one millisecond): the later insert first (SQLite's rowid;
        // Postgres keeps no such order, the id decides).
        let tiebreak = if self.is_postgres() {
            "challenge_id"
        } else {
            "rowid"
        };
        let sql = format!(
            "select {COLUMNS} from challenge where user_id = $1 order by created_at desc, {tiebreak} desc limit 500"
        );
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?
        }))
    }
}

/// A change of an interview's state (CONTRACT §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Lock,
    Unlock,
    End,
    /// Run allowed or not.
    Run(bool),
}

impl Control {
    /// The timeline's name for it (`run` settings have none).
    pub fn event(self) -> Option<&'static str> {
        match self {
            Control::Lock => Some("lock"),
            Control::Unlock => Some("unlock"),
            Control::End => Some("end"),
            Control::Run(_) => None,
        }
    }
}

impl Store {
    /// Applies `control` to a challenge and returns it as it is now.
    pub async fn control_challenge(
        &self,
        challenge_id: &str,
        control: Control,
    ) -> Result<Option<Challenge>> {
        self.check_file()?;
        let sql = match control {
            Control::Lock => "update challenge set locked = 1 where challenge_id = $1",
            Control::Unlock => "update challenge set locked = 0 where challenge_id = $1",
            Control::End => {
                "update challenge set status = 'ended', ended_at = coalesce(ended_at, $2) where challenge_id = $1"
            }
            Control::Run(true) => "update challenge set run_enabled = 1 where challenge_id = $1",
            Control::Run(false) => "update challenge set run_enabled = 0 where challenge_id = $1",
        };
        let now = timestamp();
        crate::on_db!(self, |pool| {
            let query = sqlx::query(sql).bind(challenge_id);
            let query = if control == Control::End {
                query.bind(&now)
            } else {
                query
            };
            query.execute(pool).await?;
        });
        self.get_challenge(challenge_id).await
    }
}
