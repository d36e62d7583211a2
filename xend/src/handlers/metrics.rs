//! `/metrics`: xend's own figures and the bulk snapshot for Prometheus (see
//! [`crate::metrics`]).
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::metrics::Format;
use crate::state::AppState;

/// `GET /metrics`: the same cached figures as `GET /xend/domain?op=stats`,
/// in OpenMetrics text when the `Accept` header asks for it, else in the
/// text format 0.0.4.
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let snap = super::domain::snapshot(&state);
    (
        [(CONTENT_TYPE, format.content_type())],
        crate::metrics::render(snap, format),
    )
        .into_response()
}
