//! `POST/GET /api/challenges`, `GET /api/challenges/:id`, `GET /api/languages`.
//! The interviewer key of a challenge (CONTRACT §6) goes to its creator
//! only: in the answer to its creation (top level and in the challenge)
//! and in the challenge objects its creator reads.

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::extract::{ApiJson, AuthUser};
use super::ApiError;
use crate::app::AppState;
use crate::challenges::model::{Challenge, NewChallenge, LANGUAGES};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/challenges", get(list).post(create))
        .route("/api/challenges/{id}", get(show))
        .route("/api/languages", get(languages))
}

async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<NewChallenge>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.api_limit.check(peer.ip())?;
    let new = body.validate()?;
    let challenge = state.store.create_challenge(&user.id, &new).await?;
    tracing::info!(challenge_id = %challenge.id, user_id = %user.id, "challenge created");
    let key = challenge.interviewer_key.clone();
    let body = json!({ "challenge": as_seen_by(&challenge, &user.id), "interviewer_key": key });
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Value>, ApiError> {
    let challenges = state.reader().challenges_of(&user.id).await?;
    let seen: Vec<Value> = challenges.iter().map(|c| as_seen_by(c, &user.id)).collect();
    Ok(Json(json!({ "challenges": seen })))
}

async fn show(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    // An id that is not even UTF-8 once decoded names no challenge.
    let Path(id) =
        id.map_err(|_| ApiError::BadRequest("malformed challenge id in the path".into()))?;
    match state.reader().challenge(&id).await? {
        Some(challenge) => Ok(Json(
            json!({ "challenge": as_seen_by(&challenge, &user.id) }),
        )),
        None => Err(ApiError::NotFound("no challenge with that id".into())),
    }
}

async fn languages() -> Json<Value> {
    let list: Vec<Value> = LANGUAGES
        .iter()
        .map(|(id, name)| json!({ "id": id, "name": name }))
        .collect();
    Json(json!({ "languages": list }))
}

/// A challenge as `user_id` may see it: with the interviewer key for its
/// creator, without for anyone else.
pub fn as_seen_by(challenge: &Challenge, user_id: &str) -> Value {
    let mut v = json!(challenge);
    if challenge.creator_id == user_id {
        v["interviewer_key"] = json!(challenge.interviewer_key);
    }
    v
}
