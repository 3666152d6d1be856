//! `ApiError`: every failure of the HTTP API, with the contract's status and
//! a `{"error": "..."}` body. Internal causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("request body too large")]
    TooLarge,
    /// The body stopped arriving: 408, and the connection is closed.
    #[error("the request body did not arrive in time")]
    TimedOut,
    #[error("{0}")]
    Invalid(String),
    #[error("too many requests, slow down")]
    RateLimited {
        /// Seconds until the next request is allowed (`Retry-After`).
        retry_after_secs: u64,
    },
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The database cannot take writes now (its file is gone).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(err: crate::store::Error) -> Self {
        match err {
            crate::store::Error::DatabaseGone => ApiError::Unavailable(
                "the database is unavailable (its file is gone); nothing was saved".into(),
            ),
            err if err.is_unavailable() => ApiError::Unavailable(
                "the database is unavailable; nothing was saved, try again shortly".into(),
            ),
            err => ApiError::Internal(err.into()),
        }
    }
}

impl From<crate::challenges::model::Invalid> for ApiError {
    fn from(err: crate::challenges::model::Invalid) -> Self {
        ApiError::Invalid(err.1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = ?cause, "request failed");
        }
        let status = self.status();
        let mut res = (status, axum::Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let ApiError::TimedOut = self {
            res.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        if let ApiError::RateLimited { retry_after_secs } = self {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        res
    }
}
