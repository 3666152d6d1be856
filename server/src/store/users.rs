//! Queries on `user`.

use serde::Serialize;

use super::{random_id, timestamp, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    #[sqlx(rename = "user_id")]
    pub id: String,
    pub first_name: String,
}

impl Store {
    pub async fn create_user(&self, first_name: &str) -> Result<User> {
        let user = User {
            id: random_id(12),
            first_name: first_name.to_owned(),
        };
        sqlx::query("insert into user (user_id, first_name, created_at) values (?, ?, ?)")
            .bind(&user.id)
            .bind(&user.first_name)
            .bind(timestamp())
            .execute(&self.pool)
            .await?;
        Ok(user)
    }

    pub async fn get_user(&self, user_id: &str) -> Result<Option<User>> {
        Ok(
            sqlx::query_as::<_, User>("select user_id, first_name from user where user_id = ?")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
