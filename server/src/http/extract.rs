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
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared.filter(|len| *len > super::MAX_BODY_BYTES as u64) {
            drain(req.into_body().into_data_stream(), len).await;
            return Err(ApiError::TooLarge);
        }
        // Read here, up to the limit: a chunked body (no length to refuse
        // it by) that goes over it is drained like a declared one.
        let (parts, body) = req.into_parts();
        let bytes = read_at_most(body, super::MAX_BODY_BYTES).await?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
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

/// Bodies up to this size are read (and dropped) before a 413 is sent.
const DRAIN_AT_MOST: u64 = 16 << 20;
/// How long reading a refused body may take.
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a refused body of `len` bytes to its end (if it is not huge): a
/// server that answers and closes while the client is still sending makes
/// the client's kernel reset the connection, and the client may never see
/// the 413 (it sees EPIPE or ECONNRESET instead).
async fn drain(mut stream: axum::body::BodyDataStream, len: u64) {
    use futures_util::StreamExt;
    if len > DRAIN_AT_MOST {
        return;
    }
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_WITHIN, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len() as u64;
            if read > len {
                break;
            }
        }
    })
    .await;
}

/// The whole body if it is at most `limit` bytes; a longer one is drained
/// (see [`drain`]) and refused with 413.
async fn read_at_most(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        if buf.len() + chunk.len() > limit {
            drain(stream, DRAIN_AT_MOST).await;
            return Err(ApiError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
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
