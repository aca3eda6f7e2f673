//! `ApiError`: every refusal the HTTP API answers, with its status code, as one JSON shape
//! `{"error": {"message": ..., "type": ...}}` (OpenAI's, which its clients read; the others read
//! the message).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not what the endpoint reads (not JSON, not base64).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well formed but the job is refused: the CLI's own message.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    NotFound(String),
    /// The body is over `--max-body`.
    #[error("{0}")]
    TooLarge(String),
    /// The job is not in a state the action applies to (retry a running job, cancel a done one).
    #[error("{0}")]
    Conflict(String),
    /// The server is stopping; try again later (or elsewhere).
    #[error("{0}")]
    Unavailable(String),
    /// A job ran and failed, or the server could not do its part.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::Unprocessable(_) | Self::TooLarge(_) => {
                "invalid_request_error"
            }
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "server_error",
        }
    }

    /// A refusal that is not an endpoint's own (auth, limits), in the same shape.
    pub fn response(status: StatusCode, kind: &str, message: &str) -> Response {
        let body = serde_json::json!({"error": {"message": message, "type": kind}});
        (status, crate::serve::body::Json(body)).into_response()
    }
}

impl From<crate::Error> for ApiError {
    /// What the user can fix is 422 with the message the CLI prints; the rest is the server's.
    fn from(err: crate::Error) -> Self {
        match err {
            crate::Error::BadInput { message } => Self::Unprocessable(message),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::jobs::store::StoreError> for ApiError {
    fn from(err: crate::jobs::store::StoreError) -> Self {
        use crate::jobs::store::StoreError;
        match err {
            StoreError::NotFound(_) => Self::NotFound(err.to_string()),
            StoreError::InvalidTransition { .. } => Self::Conflict(err.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Internal(format!("the request's work stopped: {err}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        Self::response(self.status(), self.kind(), &self.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_422_with_the_message_and_store_errors_keep_their_meaning() {
        let e = ApiError::from(crate::Error::bad_input("--steps must be at least 1"));
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.to_string(), "--steps must be at least 1");
        let missing = crate::jobs::store::StoreError::NotFound(crate::jobs::JobId(9));
        assert_eq!(ApiError::from(missing).status(), StatusCode::NOT_FOUND);
        let failed = ApiError::from(crate::Error::job_failed("boom"));
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
