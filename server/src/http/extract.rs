//! Extractors: [`ApiJson`] (our JSON body, whose rejections are
//! [`ApiError`]s: 400 malformed, 413 too large, 422 invalid field) and
//! [`AuthUser`] (the bearer token, verified, and its user).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::app::AppState;
use crate::auth::AuthError;
use crate::store::users::User;

/// A JSON body; failures answer in the API's error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
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
