//! Transports carry frames between a client and its [`Socket`](super::socket::Socket):
//! WebSocket at `/socket/websocket`, long-poll at `/socket/longpoll`. What
//! they share lives here: `check_origin` ([`origin`]), reading a body
//! ([`body`]), finding the token (query param, `authToken` sub-protocol or
//! header), the `vsn` check, and the routes.

pub mod body;
pub mod longpoll;
pub mod origin;
pub mod websocket;
pub mod wsframe;

pub use body::BodyTimeout;
pub use origin::ListenAddr;

use std::collections::HashMap;

use axum::http::{Extensions, HeaderMap};
use axum::routing::get;
use base64::Engine as _;

use super::Endpoint;

/// phoenix.js sends `authToken` as this sub-protocol prefix + base64(token).
pub const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";
/// The long-poll header carrying phoenix.js's `authToken`.
pub const AUTH_TOKEN_HEADER: &str = "x-phoenix-authtoken";

/// The socket routes, mounted by the application under `/socket`.
pub fn routes(endpoint: Endpoint) -> axum::Router {
    axum::Router::new()
        .route("/socket/websocket", get(websocket::upgrade))
        .route(
            "/socket/longpoll",
            get(longpoll::poll)
                .post(longpoll::publish)
                .options(longpoll::preflight),
        )
        .with_state(endpoint)
}

/// `check_origin` (see [`origin`]) on a request's headers and extensions.
pub fn origin_allowed(endpoint: &Endpoint, headers: &HeaderMap, extensions: &Extensions) -> bool {
    let listen = extensions.get::<ListenAddr>().map(|l| l.0);
    origin::allowed(&endpoint.allowed_origins, headers, listen)
}

/// The protocol version must be 2.x (the V2 serializer); absent means 2.0.0.
pub fn vsn_supported(params: &HashMap<String, String>) -> bool {
    params.get("vsn").is_none_or(|v| v.starts_with("2."))
}

/// Decodes the token from phoenix.js's `authToken` sub-protocol: `btoa(token)`
/// without `=` padding (standard or URL-safe alphabet).
pub fn token_from_protocol(protocol: &str) -> Option<String> {
    let b64 = protocol.strip_prefix(AUTH_TOKEN_PREFIX)?;
    let normalized: String = b64
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .filter(|c| *c != '=')
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(normalized)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_auth_token_protocol() {
        // btoa("a.b?c") = "YS5iP2M=" -> without padding
        assert_eq!(
            token_from_protocol("base64url.bearer.phx.YS5iP2M").as_deref(),
            Some("a.b?c")
        );
        assert_eq!(token_from_protocol("phoenix"), None);
        assert_eq!(token_from_protocol("base64url.bearer.phx.!!!"), None);
    }

    #[test]
    fn vsn_must_be_2() {
        let mut p = HashMap::new();
        assert!(vsn_supported(&p));
        p.insert("vsn".to_owned(), "2.0.0".to_owned());
        assert!(vsn_supported(&p));
        p.insert("vsn".to_owned(), "1.0.0".to_owned());
        assert!(!vsn_supported(&p));
    }
}
