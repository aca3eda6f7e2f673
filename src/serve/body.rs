//! Reading request bodies and URL parts into typed values, every refusal a JSON error: a body
//! that is not JSON is 400, JSON of the wrong shape 422 (serde's message names the field).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::jobs::JobId;
use crate::serve::error::{ApiError, ApiResult};

/// A JSON answer (axum's own `Json` would turn on serde_json's `raw_value` for the whole build).
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write the answer as JSON: {e}"),
            )
                .into_response(),
        }
    }
}

pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the body is empty: send a JSON object".to_owned(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(e.to_string()),
        _ => ApiError::BadRequest(format!("the body is not JSON: {e}")),
    })
}

/// A job id from the path.
pub fn job_id(path: Result<Path<i64>, PathRejection>) -> ApiResult<JobId> {
    path.map(|Path(id)| JobId(id))
        .map_err(|e| ApiError::NotFound(format!("no such job: {e}")))
}

/// A job id and an output index from the path.
pub fn job_output(path: Result<Path<(i64, usize)>, PathRejection>) -> ApiResult<(JobId, usize)> {
    path.map(|Path((id, index))| (JobId(id), index))
        .map_err(|e| ApiError::NotFound(format!("no such output: {e}")))
}

pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("the query string: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        n: u32,
    }

    #[test]
    fn syntax_is_400_and_shape_422() {
        let code = |b: &[u8]| json::<Shape>(b).unwrap_err().status().as_u16();
        assert_eq!(code(b""), 400);
        assert_eq!(code(b"{\"n\":"), 400);
        assert_eq!(code(b"\xff\xfe"), 400);
        assert_eq!(code(b"{\"n\":-1}"), 422);
        assert_eq!(code(b"[]"), 422);
        assert!(json::<Shape>(b"{\"n\":3}").is_ok());
    }
}
