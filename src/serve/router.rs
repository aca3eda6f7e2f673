//! Every route of the server in one table (the OpenAPI document is checked against it), the
//! token guard on all but health, the body limit, and JSON for the refusals axum makes itself.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};

use crate::serve::error::ApiError;
use crate::serve::state::AppState;
use crate::serve::{a1111, auth, log_stream, native, openai, preview, sse, system, ws};

/// One route: its method and path (axum's and OpenAPI's `{param}` syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// Answered without a token (health checks of load balancers and supervisors).
    pub open: bool,
}

const fn route(method: &'static str, path: &'static str) -> Route {
    Route {
        method,
        path,
        open: false,
    }
}

/// Every route the server answers.
pub const ROUTES: [Route; 28] = [
    Route {
        method: "get",
        path: "/api/v1/health",
        open: true,
    },
    route("get", "/api/v1/openapi.json"),
    route("get", "/api/v1/models"),
    route("get", "/api/v1/doctor"),
    route("get", "/api/v1/system"),
    route("post", "/api/v1/queue/pause"),
    route("post", "/api/v1/jobs"),
    route("get", "/api/v1/jobs"),
    route("get", "/api/v1/jobs/{id}"),
    route("post", "/api/v1/jobs/{id}/cancel"),
    route("post", "/api/v1/jobs/{id}/retry"),
    route("post", "/api/v1/jobs/{id}/move"),
    route("get", "/api/v1/jobs/{id}/events"),
    route("get", "/api/v1/jobs/{id}/outputs/{index}"),
    route("get", "/api/v1/jobs/{id}/preview"),
    route("get", "/api/v1/events"),
    route("get", "/api/v1/events/ws"),
    route("get", "/api/v1/logs"),
    route("get", "/api/v1/jobs/{id}/events/ws"),
    route("post", "/v1/images/generations"),
    route("post", "/v1/images/edits"),
    route("post", "/sdapi/v1/txt2img"),
    route("post", "/sdapi/v1/img2img"),
    route("get", "/sdapi/v1/options"),
    route("post", "/sdapi/v1/options"),
    route("get", "/sdapi/v1/sd-models"),
    route("get", "/sdapi/v1/samplers"),
    route("get", "/v1/models"),
];

/// The handler of `route`.
fn handler(route: &Route) -> MethodRouter<AppState> {
    match (route.method, route.path) {
        ("get", "/api/v1/health") => get(system::health),
        ("get", "/api/v1/openapi.json") => get(system::openapi),
        ("get", "/api/v1/models") => get(system::models),
        ("get", "/api/v1/doctor") => get(system::doctor),
        ("get", "/api/v1/system") => get(system::system),
        ("post", "/api/v1/queue/pause") => post(native::pause_queue),
        ("post", "/api/v1/jobs") => post(native::submit_job),
        ("get", "/api/v1/jobs") => get(native::list_jobs),
        ("get", "/api/v1/jobs/{id}") => get(native::get_job),
        ("post", "/api/v1/jobs/{id}/cancel") => post(native::cancel_job),
        ("post", "/api/v1/jobs/{id}/retry") => post(native::retry_job),
        ("post", "/api/v1/jobs/{id}/move") => post(native::move_job),
        ("get", "/api/v1/jobs/{id}/events") => get(sse::job_events),
        ("get", "/api/v1/jobs/{id}/outputs/{index}") => get(native::get_output),
        ("get", "/api/v1/jobs/{id}/preview") => get(preview::job_preview),
        ("get", "/api/v1/events") => get(sse::all_events),
        ("get", "/api/v1/events/ws") => get(ws::all_events),
        ("get", "/api/v1/logs") => get(log_stream::logs),
        ("get", "/api/v1/jobs/{id}/events/ws") => get(ws::job_events),
        ("post", "/v1/images/generations") => post(openai::generations),
        ("post", "/v1/images/edits") => post(openai::edits),
        ("get", "/v1/models") => get(openai::models),
        ("post", "/sdapi/v1/txt2img") => post(a1111::txt2img),
        ("post", "/sdapi/v1/img2img") => post(a1111::img2img),
        ("get", "/sdapi/v1/options") => get(a1111::get_options),
        ("post", "/sdapi/v1/options") => post(a1111::set_options),
        ("get", "/sdapi/v1/sd-models") => get(a1111::sd_models),
        ("get", "/sdapi/v1/samplers") => get(a1111::samplers),
        _ => get(unrouted),
    }
}

async fn unrouted() -> ApiError {
    ApiError::NotFound("no such route; see /api/v1/openapi.json".to_owned())
}

/// The application: every route of `ROUTES`, bodies up to `max_body` bytes.
pub fn build(state: AppState, max_body: usize) -> Router {
    let (mut open, mut guarded) = (Router::new(), Router::new());
    for r in &ROUTES {
        if r.open {
            open = open.route(r.path, handler(r));
        } else {
            guarded = guarded.route(r.path, handler(r));
        }
    }
    let guarded = guarded.route_layer(middleware::from_fn_with_state(
        state.token.clone(),
        auth::require_token,
    ));
    Router::new()
        .merge(open)
        .merge(guarded)
        .fallback(unrouted)
        .layer(middleware::map_response(as_json))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            max_body,
            crate::serve::limits::announced_size,
        ))
        .with_state(state)
}

/// axum's own refusals (a body over the limit, a wrong method) in the API's JSON shape.
async fn as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the body is larger than this server takes (--max-body)",
        StatusCode::METHOD_NOT_ALLOWED => "this route does not take that method",
        _ => status.canonical_reason().unwrap_or("refused"),
    };
    let mut json = ApiError::response(status, "invalid_request_error", message);
    if let Some(allow) = response.headers().get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    json
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(system::OPENAPI).unwrap();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, routed);
        let open: Vec<&str> = ROUTES.iter().filter(|r| r.open).map(|r| r.path).collect();
        assert_eq!(open, ["/api/v1/health"], "only health goes without a token");
    }
}
