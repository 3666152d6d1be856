//! The interviewers' controls (CONTRACT §6): `POST /api/challenges/:id/lock`,
//! `/unlock`, `/end`, and `/run` (`{"enabled": bool}`: Run on or off for the
//! room), each with `{"key": <interviewer key>}` (the creator may omit it).
//! 200 with the challenge as it is now; anyone else 403. The room applies
//! the control and tells its members (`challenge:updated`).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{AuthUser, OptionalJson};
use super::ApiError;
use crate::app::AppState;
use crate::challenges::model::{Challenge, Role};
use crate::challenges::room::RoomError;
use crate::challenges::SocketUser;
use crate::store::challenges::Control;
use crate::store::users::User;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/challenges/{id}/lock", post(lock))
        .route("/api/challenges/{id}/unlock", post(unlock))
        .route("/api/challenges/{id}/end", post(end))
        .route("/api/challenges/{id}/run", post(run))
}

/// What a control's body may hold.
#[derive(Debug, Default, Deserialize)]
pub struct ControlBody {
    #[serde(default)]
    key: Option<String>,
    /// For `/run`: Run on or off.
    #[serde(default)]
    enabled: Option<bool>,
}

type Id = Result<Path<String>, PathRejection>;

async fn lock(
    s: State<AppState>,
    u: AuthUser,
    id: Id,
    b: OptionalJson<ControlBody>,
) -> Result<Json<Value>, ApiError> {
    apply(s, u, id, b, |_| Ok(Control::Lock)).await
}

async fn unlock(
    s: State<AppState>,
    u: AuthUser,
    id: Id,
    b: OptionalJson<ControlBody>,
) -> Result<Json<Value>, ApiError> {
    apply(s, u, id, b, |_| Ok(Control::Unlock)).await
}

async fn end(
    s: State<AppState>,
    u: AuthUser,
    id: Id,
    b: OptionalJson<ControlBody>,
) -> Result<Json<Value>, ApiError> {
    apply(s, u, id, b, |_| Ok(Control::End)).await
}

async fn run(
    s: State<AppState>,
    u: AuthUser,
    id: Id,
    b: OptionalJson<ControlBody>,
) -> Result<Json<Value>, ApiError> {
    apply(s, u, id, b, |body| match body.enabled {
        Some(on) => Ok(Control::Run(on)),
        None => Err(ApiError::Invalid("enabled must be true or false".into())),
    })
    .await
}

/// Checks that the caller is an interviewer of the challenge, then has its
/// room apply the control.
async fn apply(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    id: Id,
    OptionalJson(body): OptionalJson<ControlBody>,
    control: impl FnOnce(&ControlBody) -> Result<Control, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) =
        id.map_err(|_| ApiError::BadRequest("malformed challenge id in the path".into()))?;
    let control = control(&body)?;
    let Some(challenge) = state.store.get_challenge(&id).await? else {
        return Err(ApiError::NotFound("no challenge with that id".into()));
    };
    interviewer(&challenge, &user, body.key.as_deref())?;
    let actor = SocketUser {
        id: user.id.clone(),
        first_name: user.first_name.clone(),
    };
    match state.rooms.control(&id, control, &actor).await {
        Ok(now) => {
            tracing::info!(challenge_id = %id, user_id = %user.id, ?control, "interview control");
            Ok(Json(json!({ "challenge": now })))
        }
        Err(RoomError::NotFound) => Err(ApiError::NotFound("no challenge with that id".into())),
        Err(_) => Err(ApiError::Unavailable(
            "the room is unavailable; try again".into(),
        )),
    }
}

/// 403 unless `user` is an interviewer of `challenge` (its creator, or
/// holding its key).
pub fn interviewer(challenge: &Challenge, user: &User, key: Option<&str>) -> Result<(), ApiError> {
    match challenge.role_of(&user.id, key) {
        Ok(Role::Interviewer) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "only an interviewer of this challenge may do this (the creator, or with the interviewer key)".into(),
        )),
    }
}
