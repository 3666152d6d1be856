//! The long-poll transport, as phoenix.js's `LongPoll` speaks it. The HTTP
//! status is always 200 and the JSON body carries the protocol status:
//! - GET without a session: authenticate, start a session, answer
//!   `{"status": 410, "token": "lp_..."}`; refused: `{"status": 403}`.
//! - GET with a session: wait up to the poll window for messages:
//!   `{"status": 200, "token", "messages": [...]}` or `{"status": 204}`.
//! - POST with a session: ndjson batch of messages; a line starting with `[`
//!   is a JSON frame, any other line is a base64 binary frame.
//! - A session that is gone (closed, expired): `{"status": 410}`, before any
//!   of a POST's body is read.
//! - A POST body over twice the frame limit, or one that stops arriving
//!   within the body deadline: HTTP 413 / 408 (the JSON status says the same;
//!   a slow one also closes the connection).
//!
//! phoenix.js sends its `params` (the JWT `token`) and the session `token`
//! in the same query string; session tokens start with `lp_`, which no JWT
//! does, so the two never mix up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use dashmap::DashMap;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};
use tracing::{info, Instrument};

use super::body::{read_limited, BodyError, BodyTimeout, DEFAULT_BODY_TIMEOUT};
use super::{origin_allowed, vsn_supported, AUTH_TOKEN_HEADER};
use crate::serializer::{binary_to_text, Frame};
use crate::socket::{RateLimited, Socket};
use crate::{Closer, ConnectInfo, Endpoint, Outbound, OutboundRx};

/// Largest POST body, in frames of the largest size: a base64 line of a
/// frame at the limit (4/3 of it) fits, and so does a batch of smaller
/// messages (phoenix.js sends what queued while a POST was under way).
/// More would only let a client make the server hold more.
const MAX_BODY_FRAMES: usize = 2;
/// Messages returned by one poll at most.
const MAX_MESSAGES_PER_POLL: usize = 1000;
/// Frames a session's socket may have waiting before POSTs wait.
const SESSION_INBOX: usize = 256;
/// A poll the client gave up on (phoenix.js aborts its requests when it
/// closes) ends the session unless another request comes within this.
const ABANDONED_GRACE: Duration = Duration::from_millis(400);
/// A client that has no poll waiting and sends nothing for this long is
/// gone (CONTRACT: a crashed socket leaves within 1 s). phoenix.js polls
/// again as soon as a poll is answered; one that comes later finds the
/// session gone (410) and phoenix.js opens a new one and rejoins.
const BETWEEN_POLLS: Duration = Duration::from_millis(800);

/// One long-poll client: its socket's inbox and outgoing queue, and when
/// it was last heard from.
pub struct Session {
    inbox: mpsc::Sender<Frame>,
    outgoing: Mutex<OutboundRx>,
    /// Milliseconds since the session started, at the last request.
    last_seen_ms: AtomicU64,
    /// Requests so far, to tell whether one came after a poll was abandoned.
    requests: AtomicU64,
    /// A waiting poll was dropped unanswered: the client closed it.
    abandoned: tokio::sync::Notify,
    /// `requests` when that happened.
    abandoned_at_request: AtomicU64,
    started: tokio::time::Instant,
}

/// Tells the session if the poll is dropped before it answers.
struct PollGuard<'a> {
    session: &'a Session,
    answered: bool,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let seen = self.session.requests.load(Ordering::Relaxed);
            self.session
                .abandoned_at_request
                .store(seen, Ordering::Relaxed);
            self.session.abandoned.notify_one();
        }
    }
}

/// The live long-poll sessions by token.
#[derive(Default)]
pub struct Sessions(DashMap<String, Arc<Session>>);

impl Sessions {
    /// Live sessions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn status(body: Value) -> Response {
    let mut res = axum::Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// phoenix.js's query string, split: it sends its `params` (the JWT
/// `token` among them) and the session `token` under the same name.
#[derive(Debug, Default)]
struct Query {
    /// The JWT; an empty or `"null"` one counts as none.
    jwt: Option<String>,
    /// The session token (`lp_...`).
    session: Option<String>,
    /// Every other parameter (`vsn`, the client's own).
    params: HashMap<String, String>,
}

impl Query {
    /// Splits a raw query string (`None`: no query at all).
    fn parse(raw: Option<&str>) -> Query {
        let mut query = Query::default();
        let pairs = form_urlencoded::parse(raw.unwrap_or("").as_bytes());
        for (k, v) in pairs.into_owned() {
            match k.as_str() {
                "token" if v.starts_with("lp_") => query.session = Some(v),
                "token" if v.is_empty() || v == "null" => {}
                "token" => query.jwt = Some(v),
                _ => {
                    query.params.insert(k, v);
                }
            }
        }
        query
    }
}

/// `OPTIONS`: the CORS preflight phoenix.js's requests may need.
pub async fn preflight(headers: HeaderMap) -> Response {
    let requested = headers
        .get("access-control-request-headers")
        .cloned()
        .unwrap_or(HeaderValue::from_static(""));
    (
        StatusCode::OK,
        [
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, requested),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("get, post, options"),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("3600"),
            ),
        ],
    )
        .into_response()
}

/// `GET`: start a session, or wait for its messages (see the module doc).
pub async fn poll(
    State(endpoint): State<Endpoint>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    if !origin_allowed(&endpoint, &headers, &extensions) {
        return status(json!({ "status": 403 }));
    }
    let Query {
        jwt,
        session,
        params,
    } = Query::parse(query.as_deref());
    if let Some(token) = session {
        let Some(session) = endpoint.longpoll.0.get(&token).map(|s| s.clone()) else {
            return status(json!({ "status": 410 }));
        };
        return listen(&endpoint, &session, token).await;
    }
    if !vsn_supported(&params) {
        return status(json!({ "status": 403 }));
    }
    let header_token = headers
        .get(AUTH_TOKEN_HEADER)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let token = jwt.or(header_token);
    match endpoint
        .handler
        .connect(ConnectInfo {
            token: token.as_deref(),
            params: &params,
        })
        .await
    {
        Ok(connected) => {
            let token = new_session(endpoint, connected);
            status(json!({ "status": 410, "token": token }))
        }
        Err(why) => {
            info!(cause = %why, "long-poll refused");
            status(json!({ "status": 403 }))
        }
    }
}

async fn listen(endpoint: &Endpoint, session: &Session, token: String) -> Response {
    session.touch();
    let mut guard = PollGuard {
        session,
        answered: false,
    };
    let mut outgoing = session.outgoing.lock().await;
    let first = tokio::select! {
        f = tokio::time::timeout(endpoint.limits.longpoll_window, outgoing.recv()) => f,
        _ = endpoint.shutdown.cancelled() => return status(json!({ "status": 410 })),
    };
    session.touch();
    guard.answered = true;
    let first = match first {
        Err(_) => return status(json!({ "status": 204, "token": token })),
        Ok(None) => return status(json!({ "status": 410 })), // the socket ended
        Ok(Some(frame)) => frame,
    };
    let mut messages = vec![frame_text(first)];
    while messages.len() < MAX_MESSAGES_PER_POLL {
        match outgoing.try_recv() {
            Some(frame) => messages.push(frame_text(frame)),
            None => break,
        }
    }
    let messages: Vec<Value> = messages.into_iter().flatten().map(Value::String).collect();
    status(json!({ "status": 200, "token": token, "messages": messages }))
}

fn frame_text(frame: Frame) -> Option<String> {
    let bytes = match frame {
        Frame::Text(b) => b,
        Frame::Binary(b) => binary_to_text(&b)?,
    };
    String::from_utf8(bytes.to_vec()).ok()
}

/// A POST: the origin and the session are checked before a byte of the
/// body is read (no session: 410, the body unread), then the body is read
/// up to its limit and within the body deadline.
pub async fn publish(
    State(endpoint): State<Endpoint>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    if !origin_allowed(&endpoint, &parts.headers, &parts.extensions) {
        return status(json!({ "status": 403 }));
    }
    let session = Query::parse(query.as_deref()).session;
    let Some(session) = session.and_then(|t| endpoint.longpoll.0.get(&t).map(|s| s.clone())) else {
        return status(json!({ "status": 410 }));
    };
    session.touch();
    let within = parts
        .extensions
        .get::<BodyTimeout>()
        .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
    let limit = endpoint
        .limits
        .max_frame_bytes
        .saturating_mul(MAX_BODY_FRAMES);
    let body = match read_limited(&parts.headers, body, limit, within).await {
        Ok(body) => body,
        Err(err) => return body_refused(&err),
    };
    session.touch();
    let headers = parts.headers;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes().starts_with(b"application/x-ndjson"));
    let lines: Vec<Bytes> = if ndjson {
        body.split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .map(|l| body.slice_ref(l))
            .collect()
    } else {
        vec![body]
    };
    for line in lines {
        let frame = if line.first() == Some(&b'[') {
            Frame::Text(line)
        } else {
            match base64::engine::general_purpose::STANDARD.decode(&line) {
                Ok(bytes) => Frame::Binary(bytes.into()),
                Err(_) => Frame::Text(line), // undecodable: the socket drops it
            }
        };
        if frame.len() > endpoint.limits.max_frame_bytes || session.inbox.send(frame).await.is_err()
        {
            return status(json!({ "status": 410 }));
        }
    }
    status(json!({ "status": 200 }))
}

/// A body that could not be read: a real HTTP status (phoenix.js reads
/// the JSON status, which says the same), and a slow one closes the
/// connection.
fn body_refused(err: &BodyError) -> Response {
    let code = match err {
        BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
        BodyError::Broken(_) => StatusCode::BAD_REQUEST,
    };
    info!(cause = %err, "long-poll body refused");
    let mut res = status(json!({ "status": code.as_u16() }));
    *res.status_mut() = code;
    if matches!(err, BodyError::TimedOut) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

impl Session {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_seen_ms.store(ms, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// No request came since a poll was abandoned, and none is waiting.
    fn gone_since_abandoned(&self) -> bool {
        let seen = self.abandoned_at_request.load(Ordering::Relaxed);
        self.requests.load(Ordering::Relaxed) == seen && self.outgoing.try_lock().is_ok()
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_seen_ms.load(Ordering::Relaxed)))
    }
}

/// Starts a session for an accepted client; returns its token.
fn new_session(endpoint: Endpoint, connected: crate::Connected) -> String {
    let mut raw = [0u8; 18];
    rand::Rng::fill(&mut rand::thread_rng(), &mut raw[..]);
    let token = format!(
        "lp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let (outbound, out_rx, closer) = Outbound::new(
        endpoint.limits.outbound_queue,
        endpoint.limits.outbound_bytes,
        endpoint.metrics.clone(),
        &endpoint.shutdown,
    );
    let (inbox, in_rx) = mpsc::channel::<Frame>(SESSION_INBOX);
    let session = Arc::new(Session {
        inbox,
        outgoing: Mutex::new(out_rx),
        last_seen_ms: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        abandoned: tokio::sync::Notify::new(),
        abandoned_at_request: AtomicU64::new(0),
        started: tokio::time::Instant::now(),
    });
    endpoint.longpoll.0.insert(token.clone(), session.clone());
    let socket = Socket::new(endpoint.clone(), connected, outbound);
    let span = tracing::info_span!("longpoll", socket_id = socket.id().unwrap_or(""));
    let live = LiveSession {
        endpoint: endpoint.clone(),
        token: token.clone(),
        session,
        socket,
        in_rx,
        closer,
    };
    endpoint.tracker.spawn(live.run().instrument(span));
    token
}

/// A session's task and what it owns.
struct LiveSession {
    endpoint: Endpoint,
    token: String,
    session: Arc<Session>,
    socket: Socket,
    /// What POSTs hand the socket.
    in_rx: mpsc::Receiver<Frame>,
    closer: Arc<Closer>,
}

impl LiveSession {
    /// Hands POSTed frames to the socket until the socket closes, the
    /// server shuts down, or the client stops polling or goes away; then
    /// forgets the session. Not an `async fn`: it would keep `self` twice
    /// for the session's whole life.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl std::future::Future<Output = ()> + Send {
        async move {
            info!("connected");
            let mut check = tokio::time::interval(Duration::from_millis(100));
            // After an abandoned poll: when to look whether another came.
            let mut abandoned: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    biased;
                    _ = self.endpoint.shutdown.cancelled() => break,
                    _ = self.closer.token().cancelled() => break,
                    frame = self.in_rx.recv() => {
                        let Some(frame) = frame else { break };
                        if let Err(RateLimited) = self.socket.handle_frame(frame).await {
                            info!("closing long-poll session: message rate limit exceeded");
                            break;
                        }
                    }
                    _ = check.tick() => {
                        if self.session.idle_for() > BETWEEN_POLLS && self.session.outgoing.try_lock().is_ok() {
                            info!("long-poll client stopped polling");
                            break;
                        }
                    }
                    _ = self.session.abandoned.notified() => {
                        abandoned = Some(tokio::time::Instant::now() + ABANDONED_GRACE);
                    }
                    _ = tokio::time::sleep_until(abandoned.unwrap_or_else(tokio::time::Instant::now)),
                        if abandoned.is_some() =>
                    {
                        abandoned = None;
                        if self.session.gone_since_abandoned() {
                            info!("long-poll client went away");
                            break;
                        }
                    }
                }
            }
            self.endpoint.longpoll.0.remove(&self.token);
            drop(self.socket);
            info!("disconnected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_separates_jwt_session_and_params() {
        let q = Query::parse(Some("token=eyJ.a.b&vsn=2.0.0&token=lp_xyz"));
        assert_eq!(q.jwt.as_deref(), Some("eyJ.a.b"));
        assert_eq!(q.session.as_deref(), Some("lp_xyz"));
        assert_eq!(q.params.get("vsn").map(String::as_str), Some("2.0.0"));
        // The session first, as phoenix.js sends it once it has one.
        let q = Query::parse(Some("token=lp_xyz&token=eyJ.a.b"));
        assert_eq!(q.jwt.as_deref(), Some("eyJ.a.b"));
        assert_eq!(q.session.as_deref(), Some("lp_xyz"));
        let q = Query::parse(Some("vsn=2.0.0&"));
        assert!(q.jwt.is_none() && q.session.is_none());
        let q = Query::parse(Some("token=null&token="));
        assert!(q.jwt.is_none() && q.session.is_none());
        assert!(Query::parse(None).params.is_empty());
    }

    #[test]
    fn query_values_are_form_decoded() {
        let q = Query::parse(Some("a=a%20b+c%2&b=%zz&token=ey%2Ej"));
        assert_eq!(q.params.get("a").map(String::as_str), Some("a b c%2"));
        assert_eq!(q.params.get("b").map(String::as_str), Some("%zz"));
        assert_eq!(q.jwt.as_deref(), Some("ey.j"));
    }
}
