//! `POST/GET /api/challenges`, `GET /api/challenges/:id`, `GET /api/languages`.
//! The interviewer key of a challenge (CONTRACT §6) goes to its creator
//! only, in the answer to its creation, beside the challenge: a challenge
//! object is the same for everyone who reads it (the key is never in it);
//! interviewers find the key again in their join reply.

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::extract::{ApiJson, AuthUser};
use super::ApiError;
use crate::app::AppState;
use crate::challenges::model::{NewChallenge, LANGUAGES};

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
    let body = json!({ "challenge": challenge, "interviewer_key": key });
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Value>, ApiError> {
    let challenges = state.reader().challenges_of(&user.id).await?;
    Ok(Json(json!({ "challenges": challenges })))
}

async fn show(
    State(state): State<AppState>,
    _user: AuthUser,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    // An id that is not even UTF-8 once decoded names no challenge.
    let Path(id) =
        id.map_err(|_| ApiError::BadRequest("malformed challenge id in the path".into()))?;
    match state.reader().challenge(&id).await? {
        Some(challenge) => Ok(Json(json!({ "challenge": challenge }))),
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
