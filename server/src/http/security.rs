//! Response headers that tell browsers what a response may do. Every
//! response gets `X-Content-Type-Options: nosniff` (a JSON body that echoes
//! `<script>` is never taken for HTML or script). The pages get
//! [`PAGE_POLICY`]; everything else (JSON, assets, errors) gets
//! [`OTHER_POLICY`] and `X-Frame-Options: DENY`, unless its handler set
//! its own: a document with other needs (a sandboxed runner frame, say)
//! gets a policy of its own here and sets it in its handler.

use axum::http::{header, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// A Content-Security-Policy as (directive, sources) pairs.
pub type Policy = &'static [(&'static str, &'static str)];

/// The web app's pages (`/`, `/challenges/:id`): scripts, styles and
/// connections from our own origin only, never framed.
pub const PAGE_POLICY: Policy = &[
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    // CodeMirror injects <style> elements, and y-codemirror.next writes
    // each remote caret's colour into a style attribute.
    ("style-src", "'self' 'unsafe-inline'"),
    // The favicon is a data: URL.
    ("img-src", "'self' data:"),
    // 'self' covers the socket's ws:// and wss:// on the page's own host
    // (CSP Level 3).
    ("connect-src", "'self'"),
    ("object-src", "'none'"),
    ("base-uri", "'none'"),
    ("form-action", "'self'"),
    ("frame-ancestors", "'none'"),
];

/// The code runner's frame (`/runner`, see `web/src/runner/`).
/// `sandbox allow-scripts` gives the page an opaque origin however it is
/// loaded (the room's iframe also says so); scripts and runtime files come
/// from this server only, wasm may compile, workers start only from data:
/// URLs (the frame makes them), nothing else loads, no form posts, and only
/// our own pages may embed it. The workers inherit this policy: the
/// programs they run cannot fetch anything but this server's files, which
/// need no credentials (the API takes a bearer token the frame never has).
pub const RUNNER_POLICY: Policy = &[
    ("sandbox", "allow-scripts"),
    ("default-src", "'none'"),
    ("script-src", "'self' 'wasm-unsafe-eval'"),
    ("worker-src", "data:"),
    ("connect-src", "'self'"),
    ("base-uri", "'none'"),
    ("form-action", "'none'"),
    ("frame-ancestors", "'self'"),
];

/// Anything that is not a page: it renders nothing and is never framed.
pub const OTHER_POLICY: Policy = &[("default-src", "'none'"), ("frame-ancestors", "'none'")];

/// The header value of a policy.
pub fn csp(policy: Policy) -> HeaderValue {
    let text: Vec<String> = policy
        .iter()
        .map(|(directive, sources)| format!("{directive} {sources}"))
        .collect();
    HeaderValue::from_str(&text.join("; ")).expect("policies are ASCII constants")
}

/// Adds the headers to every response of `router` (see the module doc).
pub fn headers(router: Router) -> Router {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp(OTHER_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_read_as_csp_headers() {
        assert_eq!(
            csp(OTHER_POLICY),
            "default-src 'none'; frame-ancestors 'none'"
        );
        let page = csp(PAGE_POLICY);
        let page = page.to_str().unwrap();
        assert!(page.starts_with("default-src 'self'; script-src 'self'; "));
        assert!(page.ends_with("; frame-ancestors 'none'"));
    }
}
