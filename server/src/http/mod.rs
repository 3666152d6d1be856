//! The REST API of CONTRACT §1 and the embedded web app, one router per
//! area: [`session`] (sign-in, me), [`challenges`], [`health`] (healthz,
//! metrics), [`assets`] (pages and static files); [`limit`] is the
//! per-address limit on writes. Errors are [`ApiError`]; JSON bodies and
//! the bearer token go through the extractors in [`extract`]; [`security`]
//! holds the response headers every answer carries (CSP...).

pub mod assets;
pub mod challenges;
pub mod error;
pub mod extract;
pub mod health;
pub mod interviews;
pub mod limit;
pub mod security;
pub mod session;
pub mod timeline;

pub use error::ApiError;

use axum::Router;

use crate::app::AppState;

/// Largest JSON body the API accepts (a 20 000-character prompt fits many times).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(session::routes())
        .merge(challenges::routes())
        .merge(interviews::routes())
        .merge(timeline::routes())
        .merge(health::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(assets::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A known path asked with a method it does not take: 405 (axum adds the
/// `Allow` header), a JSON error where the answers are JSON.
async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    if path.starts_with("/api/") || path == "/healthz" {
        ApiError::MethodNotAllowed(format!("{method} is not allowed on {path}")).into_response()
    } else {
        (
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        )
            .into_response()
    }
}

/// Unknown paths: a JSON error under `/api`, plain text elsewhere.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        ApiError::NotFound(format!("no route for {}", uri.path())).into_response()
    } else {
        (axum::http::StatusCode::NOT_FOUND, "not found").into_response()
    }
}
