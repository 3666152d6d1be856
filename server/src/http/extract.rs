//! Extractors: [`ApiJson`] (our JSON body, whose rejections are
//! [`ApiError`]s: 400 malformed, 408 too slow, 413 too large, 422 invalid
//! field or not an object) and [`AuthUser`] (the bearer token, verified,
//! and its user).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::app::AppState;
use crate::auth::AuthError;
use crate::channels::transport::body::{read_limited, BodyError, DEFAULT_BODY_TIMEOUT};
use crate::channels::transport::BodyTimeout;
use crate::store::users::User;

/// A JSON object body; failures answer in the API's error format. The body
/// is read here, up to [`super::MAX_BODY_BYTES`] and within the body
/// deadline (see [`read_limited`]: an over-limit body is drained before
/// the 413). Then, in this order: not JSON at all is 400 (even when a type
/// error comes first in the text, as in `[[[[`), JSON that is not an object
/// is 422, and an object whose fields do not fit `T` is 422.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, bytes) = read_body(req, super::MAX_BODY_BYTES).await?;
        parse_json(parts, bytes, state).await.map(ApiJson)
    }
}

/// Like [`ApiJson`], up to [`IMPORT_MAX_BYTES`]: an exported challenge
/// with its whole log (`POST /api/challenges/import`).
pub struct BigJson<T>(pub T);

/// Largest import: an hour-long session of 20 000 edits exports to a few
/// MB; 64 MiB leaves room for long ones.
pub const IMPORT_MAX_BYTES: usize = 64 << 20;

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for BigJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, bytes) = read_body(req, IMPORT_MAX_BYTES).await?;
        parse_json(parts, bytes, state).await.map(BigJson)
    }
}

/// Like [`ApiJson`], but an empty body is `T::default()` (the creator's
/// controls need no key: `POST /api/challenges/:id/lock` with no body).
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, bytes) = read_body(req, super::MAX_BODY_BYTES).await?;
        if bytes.trim_ascii().is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(parts, bytes, state).await.map(OptionalJson)
    }
}

/// The body, read up to the limit and within the body deadline.
async fn read_body(req: Request, limit: usize) -> Result<(Parts, bytes::Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let within = parts
        .extensions
        .get::<BodyTimeout>()
        .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
    let bytes = read_limited(&parts.headers, body, limit, within)
        .await
        .map_err(|err| match err {
            BodyError::TooLarge => ApiError::TooLarge,
            BodyError::TimedOut => ApiError::TimedOut,
            BodyError::Broken(e) => ApiError::BadRequest(e),
        })?;
    Ok((parts, bytes))
}

/// A JSON object body as `T` (see [`ApiJson`] for the order of the checks).
async fn parse_json<T: DeserializeOwned, S: Send + Sync>(
    parts: Parts,
    bytes: bytes::Bytes,
    state: &S,
) -> Result<T, ApiError> {
    {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
            return Err(ApiError::BadRequest("malformed JSON body".into()));
        }
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(ApiError::Invalid("the body must be a JSON object".into()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(v),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::Invalid(e.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                )),
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::BadRequest("malformed JSON body".into())
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
                    "expected a JSON body with content-type: application/json".into(),
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// The signed-in user, from `Authorization: Bearer <jwt>`.
pub struct AuthUser(pub User);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        let Some(token) = header.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        }) else {
            return Err(ApiError::Unauthorized(
                "missing bearer token: sign in with POST /api/session".into(),
            ));
        };
        let claims = state
            .keys
            .verify(token, crate::auth::now())
            .map_err(|e| match e {
                AuthError::Expired => ApiError::Unauthorized("token expired: sign in again".into()),
                _ => ApiError::Unauthorized("invalid token: sign in again".into()),
            })?;
        match state.store.get_user(&claims.sub).await? {
            Some(user) => Ok(AuthUser(user)),
            None => Err(ApiError::Unauthorized("unknown user: sign in again".into())),
        }
    }
}
