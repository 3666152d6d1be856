//! `GET /healthz` (200 once the database answers and its file is in place) and `GET /metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.health().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(why) => {
            tracing::error!(cause = why, "unhealthy");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "error": why })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::telemetry::render(
        &state.endpoint.metrics,
        state.rooms.loaded(),
        state.endpoint.longpoll.len(),
        &state.persist_latency,
        state.rooms.edit_latency(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
