//! Guest sign-in (`POST /api/session`) and `GET /api/me`.

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{ApiJson, AuthUser};
use super::ApiError;
use crate::app::AppState;
use crate::challenges::model::validate_first_name;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/session", post(sign_in))
        .route("/api/me", get(me))
}

#[derive(Deserialize)]
struct SignIn {
    first_name: String,
}

async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.api_limit.check(peer.ip())?;
    let first_name = validate_first_name(&body.first_name)?;
    let user = state.store.create_user(&first_name).await?;
    let token = state
        .keys
        .issue(&user.id, &user.first_name, crate::auth::now());
    tracing::info!(user_id = %user.id, "signed in");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "user": user })),
    ))
}

async fn me(AuthUser(user): AuthUser) -> Json<Value> {
    Json(json!({ "user": user }))
}
