//! The HTTP half of the contract the tool needs: sign in (`POST
//! /api/session`) and create rooms (`POST /api/challenges`), many at a time
//! but bounded, retrying politely on 429.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

/// How often a rate-limited (429) or refused-connection request is retried.
const MAX_TRIES: u32 = 20;

/// A signed-in user: the token opens sockets, the id is its presence key.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
}

#[derive(Deserialize)]
struct SessionReply {
    token: String,
    user: UserReply,
}

#[derive(Deserialize)]
struct UserReply {
    id: String,
}

#[derive(Deserialize)]
struct ChallengeReply {
    challenge: ChallengeId,
}

#[derive(Deserialize)]
struct ChallengeId {
    id: String,
}

impl Api {
    pub fn new(base: Url) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base })
    }

    /// Sends one JSON POST, retrying on 429 and connection errors.
    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let url = self.base.join(path).context("joining the API path")?;
        let mut backoff = Duration::from_millis(50);
        for attempt in 1..=MAX_TRIES {
            let mut req = self.http.post(url.clone()).json(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let wait = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(Duration::from_secs_f64)
                        .unwrap_or(backoff);
                    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status != StatusCode::CREATED && status != StatusCode::OK {
                        bail!("POST {path}: {status}: {text}");
                    }
                    return serde_json::from_str(&text)
                        .with_context(|| format!("POST {path}: bad JSON: {text}"));
                }
                Err(e) if attempt < MAX_TRIES && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e).with_context(|| format!("POST {path}")),
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        bail!("POST {path}: still refused after {MAX_TRIES} tries")
    }

    pub async fn sign_in(&self, first_name: &str) -> Result<User> {
        let v = self
            .post("/api/session", None, &json!({ "first_name": first_name }))
            .await?;
        let s: SessionReply = serde_json::from_value(v).context("POST /api/session answer")?;
        Ok(User {
            id: s.user.id,
            token: s.token,
        })
    }

    pub async fn create_challenge(&self, token: &str, title: &str) -> Result<String> {
        let body = json!({
            "title": title,
            "prompt": "Write a function that reverses a string. (created by duet-load)",
            "language": "python",
        });
        let v = self.post("/api/challenges", Some(token), &body).await?;
        let c: ChallengeReply = serde_json::from_value(v).context("POST /api/challenges answer")?;
        Ok(c.challenge.id)
    }

    /// Signs in `n` users named `<prefix> <i>`, `concurrency` at a time.
    pub async fn sign_in_many(
        &self,
        prefix: &str,
        n: usize,
        concurrency: usize,
    ) -> Result<Vec<Arc<User>>> {
        stream::iter(0..n)
            .map(|i| {
                let name = format!("{prefix} {i}");
                async move { self.sign_in(&name).await.map(Arc::new) }
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    /// Creates `n` challenges, owned round-robin by `users`.
    pub async fn create_many(
        &self,
        users: &[Arc<User>],
        label: &str,
        n: usize,
        concurrency: usize,
    ) -> Result<Vec<Arc<str>>> {
        stream::iter(0..n)
            .map(|i| {
                let token = users[i % users.len()].token.clone();
                let title = format!("{label} room {i}");
                async move { self.create_challenge(&token, &title).await.map(Arc::from) }
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    pub async fn healthy(&self) -> bool {
        let Ok(url) = self.base.join("/healthz") else {
            return false;
        };
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }
}
