//! Queries on `user`.

use serde::Serialize;

use super::{random_id, timestamp, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    #[sqlx(rename = "user_id")]
    pub id: String,
    pub first_name: String,
}

/// The ids of users seen in the database, so that a socket's connect (one
/// per page load, thousands a second in a reconnect storm) asks the
/// database only the first time. Users are never deleted while the server
/// runs; the set is emptied if it ever holds [`KnownUsers::MAX`] ids.
#[derive(Default)]
pub(super) struct KnownUsers(parking_lot::Mutex<std::collections::HashSet<Box<str>>>);

impl KnownUsers {
    const MAX: usize = 1 << 20;

    fn contains(&self, id: &str) -> bool {
        self.lock().contains(id)
    }

    fn insert(&self, id: &str) {
        let mut set = self.lock();
        if set.len() >= Self::MAX {
            set.clear();
        }
        set.insert(id.into());
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, std::collections::HashSet<Box<str>>> {
        self.0.lock()
    }
}

impl Store {
    /// Whether a user with this id exists (a valid token may name a user
    /// of another database: one reset while its secret was kept).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool> {
        if self.known_users.contains(user_id) {
            return Ok(true);
        }
        Ok(self.get_user(user_id).await?.is_some())
    }

    pub async fn create_user(&self, first_name: &str) -> Result<User> {
        self.check_file()?;
        let user = User {
            id: random_id(12),
            first_name: first_name.to_owned(),
        };
        crate::on_db!(self, |pool| {
            sqlx::query(
                r#"insert into "user" (user_id, first_name, created_at) values ($1, $2, $3)"#,
            )
            .bind(&user.id)
            .bind(&user.first_name)
            .bind(timestamp())
            .execute(pool)
            .await?;
        });
        self.known_users.insert(&user.id);
        Ok(user)
    }

    pub async fn get_user(&self, user_id: &str) -> Result<Option<User>> {
        let user: Option<User> = crate::on_db!(self, |pool| {
            sqlx::query_as(r#"select user_id, first_name from "user" where user_id = $1"#)
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        if let Some(user) = &user {
            self.known_users.insert(&user.id);
        }
        Ok(user)
    }
}
