//! Timeline and playback (CONTRACT §7):
//! - `GET /api/challenges/:id/timeline`: every event in order — joins,
//!   leaves, edits (with the characters they inserted and deleted), pastes,
//!   away / back, runs, lock / unlock / end — with author and time.
//! - `GET /api/challenges/:id/text?at=<RFC 3339>`: the answer as it was at
//!   that instant: every edit acknowledged at or before it, none after
//!   (from the checkpoint before it and at most a snapshot interval of
//!   updates, so a seek stays fast on long sessions).
//! - `GET /api/challenges/:id/export`: one file (JSON) with the challenge,
//!   the final answer, the timeline and every update playback needs. The
//!   timeline is there once: `updates` are its edits (each with its author,
//!   time, counts and bytes) and `events` everything else, each event with
//!   `after`, how many of the updates come before it. (It once also held
//!   the merged `timeline`, which repeated every edit and event: on a
//!   session of 20 000 edits, 2.6 MB of a 6.1 MB file.)
//! - `POST /api/challenges/import`: that file, recreated as a new ended
//!   challenge of the caller's, with its playback.
//!
//! Who may: interviewers (the creator, or `?key=<interviewer key>`), and
//! candidates once the interview has ended; anyone else 403.

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::extract::{AuthUser, BigJson};
use super::ApiError;
use crate::app::AppState;
use crate::challenges::doc;
use crate::challenges::model::{Challenge, Role};
use crate::store::docs::DocKind;
use crate::store::timeline::{EventRow, ExportedChallenge, ImportFile, UpdateRow};
use crate::store::users::User;

/// The format of an export file, and its version (an import refuses others).
pub const EXPORT_FORMAT: &str = "duet-export";
pub const EXPORT_VERSION: u64 = 1;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/challenges/{id}/timeline", get(timeline))
        .route("/api/challenges/{id}/text", get(text_at))
        .route("/api/challenges/{id}/export", get(export))
        // Its own limit (BigJson reads up to IMPORT_MAX_BYTES): without this
        // layer, axum's Json would still apply the API's default limit
        // (256 KiB) to the body BigJson already read, and refuse every
        // real session's file with 413.
        .route(
            "/api/challenges/import",
            post(import).layer(DefaultBodyLimit::max(super::extract::IMPORT_MAX_BYTES)),
        )
}

#[derive(Debug, Default, Deserialize)]
struct Access {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

type Id = Result<Path<String>, PathRejection>;

/// The challenge, if `user` (with `key`) may review it: an interviewer
/// always, a candidate once it has ended.
async fn reviewable(
    state: &AppState,
    id: Id,
    user: &User,
    key: Option<&str>,
) -> Result<Challenge, ApiError> {
    let Path(id) =
        id.map_err(|_| ApiError::BadRequest("malformed challenge id in the path".into()))?;
    let Some(challenge) = state.reader().challenge(&id).await? else {
        return Err(ApiError::NotFound("no challenge with that id".into()));
    };
    match challenge.role_of(&user.id, key) {
        Ok(Role::Interviewer) => Ok(challenge),
        Ok(Role::Candidate) if challenge.is_ended() => Ok(challenge),
        Ok(Role::Candidate) => Err(ApiError::Forbidden(
            "the timeline is for interviewers until the interview has ended".into(),
        )),
        Err(_) => Err(ApiError::Forbidden("wrong interviewer key".into())),
    }
}

/// The timeline of a challenge: its events and its edits, in time order.
fn merge(events: Vec<EventRow>, edits: &[UpdateRow]) -> Vec<Value> {
    let mut out = Vec::with_capacity(events.len() + edits.len());
    let (mut e, mut u) = (events.into_iter().peekable(), edits.iter().peekable());
    loop {
        // An event comes after the updates committed before it.
        let take_event = match (e.peek(), u.peek()) {
            (Some(ev), Some(up)) => ev.after < up.id,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_event {
            if let Some(ev) = e.next() {
                out.push(event_json(ev));
            }
        } else if let Some(up) = u.next() {
            out.push(json!({
                "at": up.at, "user_id": up.user_id, "first_name": up.first_name,
                "kind": "edit", "inserted": up.inserted, "deleted": up.deleted,
            }));
        }
    }
    out
}

fn event_json(ev: EventRow) -> Value {
    let mut v = Map::new();
    v.insert("at".into(), json!(ev.at));
    // (`after` orders it; it is not part of the event.)
    v.insert("user_id".into(), json!(ev.user_id));
    v.insert("first_name".into(), json!(ev.first_name));
    v.insert("kind".into(), json!(ev.kind));
    if let Ok(Value::Object(data)) = serde_json::from_str::<Value>(&ev.data) {
        for (k, val) in data {
            v.entry(k).or_insert(val);
        }
    }
    Value::Object(v)
}

async fn timeline(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    id: Id,
    Query(q): Query<Access>,
) -> Result<Json<Value>, ApiError> {
    let c = reviewable(&state, id, &user, q.key.as_deref()).await?;
    let events = state.store.events(&c.id).await?;
    let edits = state.store.updates(&c.id, DocKind::Answer).await?;
    Ok(Json(json!({ "events": merge(events, &edits) })))
}

/// An RFC 3339 instant as the database writes times (UTC, milliseconds).
fn instant(at: &str) -> Result<String, ApiError> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "at must be an RFC 3339 time (2026-12-06T10:00:00.000Z), not {at:?}"
            ))
        })?;
    Ok(crate::store::timestamp_of(
        t.to_offset(time::UtcOffset::UTC),
    ))
}

async fn text_at(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    id: Id,
    Query(q): Query<Access>,
) -> Result<Json<Value>, ApiError> {
    let c = reviewable(&state, id, &user, q.key.as_deref()).await?;
    let at = match q.at.as_deref() {
        Some(at) => instant(at)?,
        None => crate::store::timestamp(),
    };
    let log = state.store.answer_until(&c.id, &at).await?;
    let loaded = doc::load(log.checkpoint.as_deref(), &log.tail);
    Ok(Json(json!({ "text": doc::text(&loaded.doc), "at": at })))
}

async fn export(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    id: Id,
    Query(q): Query<Access>,
) -> Result<Response, ApiError> {
    let c = reviewable(&state, id, &user, q.key.as_deref()).await?;
    let mut events = state.store.events(&c.id).await?;
    let updates = state.store.updates(&c.id, DocKind::Answer).await?;
    // In the file, an event's `after` is how many of its updates precede it.
    for e in &mut events {
        e.after = updates.partition_point(|u| u.id <= e.after) as i64;
    }
    let body = json!({
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": crate::store::timestamp(),
        "challenge": ExportedChallenge {
            title: c.title.clone(),
            prompt: c.prompt.clone(),
            language: c.language.clone(),
            created_at: c.created_at.clone(),
            updated_at: c.updated_at.clone(),
            ended_at: c.ended_at.clone(),
        },
        "status": c.status,
        "answer": c.response,
        "events": events,
        "updates": updates,
    });
    let mut res = Json(body).into_response();
    let name = format!("attachment; filename=\"duet-{}.json\"", c.id);
    if let Ok(v) = HeaderValue::from_str(&name) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

async fn import(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    BigJson(file): BigJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if file.get("format").and_then(Value::as_str) != Some(EXPORT_FORMAT)
        || file.get("version").and_then(Value::as_u64) != Some(EXPORT_VERSION)
    {
        return Err(ApiError::Invalid(format!(
            "not a {EXPORT_FORMAT} file of version {EXPORT_VERSION}"
        )));
    }
    let file: ImportFile = serde_json::from_value(file)
        .map_err(|e| ApiError::Invalid(format!("the export file does not read: {e}")))?;
    check_import(&state, &file)?;
    let id = state.store.import_challenge(&user.id, &file).await?;
    tracing::info!(challenge_id = %id, user_id = %user.id, updates = file.updates.len(), "challenge imported");
    let Some(c) = state.store.get_challenge(&id).await? else {
        return Err(ApiError::NotFound("the imported challenge is gone".into()));
    };
    Ok((StatusCode::CREATED, Json(json!({ "challenge": c }))))
}

/// An import is hostile input like any other: its fields are validated as a
/// new challenge's, every update passes the checks a client's does, and
/// the answer it rebuilds fits the document cap.
fn check_import(state: &AppState, file: &ImportFile) -> Result<(), ApiError> {
    crate::challenges::model::NewChallenge {
        title: file.challenge.title.clone(),
        prompt: file.challenge.prompt.clone(),
        language: file.challenge.language.clone(),
    }
    .validate()?;
    for at in file
        .updates
        .iter()
        .map(|u| &u.at)
        .chain(file.events.iter().map(|e| &e.at))
    {
        instant(at)?;
    }
    // Authors' names are kept and shown as a signed-in user's are.
    for name in file
        .updates
        .iter()
        .map(|u| &u.first_name)
        .chain(file.events.iter().map(|e| &e.first_name))
        .filter(|n| !n.is_empty())
    {
        crate::challenges::model::validate_first_name(name)?;
    }
    let answer = doc::new_doc();
    for (i, u) in file.updates.iter().enumerate() {
        if u.doc != DocKind::Answer.column() && u.doc != DocKind::Notes.column() {
            return Err(ApiError::Invalid(format!(
                "update {i} is of no known document"
            )));
        }
        doc::check::update(&u.update_v1, None)
            .map_err(|why| ApiError::Invalid(format!("update {i} is refused: {why}")))?;
        if u.doc == DocKind::Answer.column() {
            doc::apply_update(&answer, &u.update_v1)
                .map_err(|why| ApiError::Invalid(format!("update {i} does not apply: {why}")))?;
        }
    }
    if doc::encode_state(&answer).len() > state.config.caps().max_doc_bytes {
        return Err(ApiError::Invalid(
            "the answer is larger than this server's document cap".into(),
        ));
    }
    Ok(())
}
