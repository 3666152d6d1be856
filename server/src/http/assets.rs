//! The web app, embedded in the binary with rust-embed: `index.html` for
//! `/` and `/challenges/:id` (with the pages' Content-Security-Policy),
//! hashed files under `/assets/` with long-lived
//! caching, and the code runner: its frame page at `/runner` under a strict
//! Content-Security-Policy, and its files under `/assets/runner/`, which the
//! frame's opaque origin fetches cross-origin (so they carry CORS headers)
//! and which are stored gzipped. A binary built without the web app says how
//! to build it.

use std::io::Read;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

use super::security::{csp, PAGE_POLICY, RUNNER_POLICY};
use crate::app::AppState;

#[derive(RustEmbed)]
#[folder = "../web/dist/"]
struct Dist;

/// Where the runner's files live under `/assets/`.
const RUNNER_DIR: &str = "runner/";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/challenges/{id}", get(index))
        .route("/challenges/{id}/", get(index))
        .route("/runner", get(runner))
        .route("/assets/{*path}", get(asset))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

fn not_built() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html("<!doctype html><title>Duet</title><p>The web app is not built into this binary. Run <code>make build</code>.</p>"),
    )
        .into_response()
}

async fn index() -> Response {
    match Dist::get("index.html") {
        Some(file) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (header::CONTENT_SECURITY_POLICY, csp(PAGE_POLICY)),
            ],
            file.data,
        )
            .into_response(),
        None => not_built(),
    }
}

/// The runner frame's page (see `web/src/runner/frame.js`).
async fn runner() -> Response {
    let Some(file) = Dist::get("runner.html") else {
        return not_built();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, csp(RUNNER_POLICY)),
            // Only our own pages embed it (CSP's frame-ancestors says so too).
            (
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        file.data,
    )
        .into_response()
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let (data, gzipped) = match Dist::get(&format!("assets/{path}")) {
        Some(file) => (file.data, false),
        None => match Dist::get(&format!("assets/{path}.gz")) {
            Some(file) => (file.data, true),
            None => return (StatusCode::NOT_FOUND, "not found").into_response(),
        },
    };
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    // Built files carry a content hash in their name, runtimes a version in
    // their folder's: cache them for good.
    let cache = if is_hashed(&path) || is_versioned(&path) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if gzipped && !accepts_gzip(&headers) {
        match gunzip(&data) {
            Ok(plain) => plain.into_response(),
            Err(err) => {
                tracing::error!(cause = %err, path, "stored gzip does not inflate");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    } else {
        data.into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if gzipped {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if accepts_gzip(&headers) {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    if path.starts_with(RUNNER_DIR) {
        // The runner frame's origin is opaque: every fetch it makes is cross-origin.
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

/// Does the client take `Content-Encoding: gzip`? (`gzip;q=0` is a no.)
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused =
                parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
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

/// `runner/pyodide-314.0.8/pyodide.asm.wasm` sits in a versioned folder.
fn is_versioned(path: &str) -> bool {
    let mut dirs = path.split('/').rev().skip(1);
    dirs.any(|dir| {
        dir.rsplit_once('-').is_some_and(|(name, version)| {
            !name.is_empty()
                && version.starts_with(|c: char| c.is_ascii_digit())
                && version.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn hashed_names() {
        assert!(super::is_hashed("app-3F2A1BCD.js"));
        assert!(super::is_hashed("chunks/room-ABCDEF12.js"));
        assert!(!super::is_hashed("app.js"));
        assert!(!super::is_hashed("y-codemirror.js"));
    }

    #[test]
    fn versioned_folders() {
        assert!(super::is_versioned(
            "runner/pyodide-314.0.8/pyodide.asm.wasm"
        ));
        assert!(super::is_versioned("runner/pyodide-0.27.1/pyodide.mjs"));
        assert!(!super::is_versioned("runner/pyodide-314.0.8"));
        assert!(!super::is_versioned("runner/frame.js"));
        assert!(!super::is_versioned("runner/js-worker/x.js"));
        assert!(!super::is_versioned("runner/-1.0/x.js"));
    }

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(v).expect("header"),
        );
        h
    }

    #[test]
    fn gzip_acceptance() {
        assert!(super::accepts_gzip(&accept("gzip, deflate, br")));
        assert!(super::accepts_gzip(&accept("br;q=1.0, gzip;q=0.8")));
        assert!(super::accepts_gzip(&accept("*")));
        assert!(!super::accepts_gzip(&accept("gzip;q=0")));
        assert!(!super::accepts_gzip(&accept("br, identity")));
        assert!(!super::accepts_gzip(&HeaderMap::new()));
    }
}
