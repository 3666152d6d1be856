//! The web app, embedded in the binary with rust-embed: `index.html` for
//! `/` and `/challenges/:id` (with the pages' Content-Security-Policy),
//! hashed files under `/assets/` with long-lived caching. A binary built without the web app says how to build it.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

use super::security::{csp, PAGE_POLICY};
use crate::app::AppState;

#[derive(RustEmbed)]
#[folder = "../web/dist/"]
struct Dist;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/challenges/{id}", get(index))
        .route("/challenges/{id}/", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

async fn index() -> Response {
    match Dist::get("index.html") {
        Some(file) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (header::CONTENT_SECURITY_POLICY, csp(PAGE_POLICY)),
            ],
            file.data,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Html("<!doctype html><title>Duet</title><p>The web app is not built into this binary. Run <code>make build</code>.</p>"),
        )
            .into_response(),
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    let Some(file) = Dist::get(&format!("assets/{path}")) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    // Built files carry a content hash in their name: cache them for good.
    let cache = if is_hashed(&path) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, mime.as_ref()),
            (header::CACHE_CONTROL, cache),
        ],
        file.data,
    )
        .into_response()
}

/// `app-3F2A1BCD.js` is hashed; `app.js` is not.
fn is_hashed(path: &str) -> bool {
    let stem = path.rsplit('/').next().unwrap_or(path);
    let stem = stem.split('.').next().unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        hash.len() == 8
            && hash
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashed_names() {
        assert!(super::is_hashed("app-3F2A1BCD.js"));
        assert!(super::is_hashed("chunks/room-ABCDEF12.js"));
        assert!(!super::is_hashed("app.js"));
        assert!(!super::is_hashed("y-codemirror.js"));
    }
}
