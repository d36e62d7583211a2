//! `/metrics`: the bulk snapshot for Prometheus (see [`crate::metrics`]).
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /metrics`: the same cached figures as `GET /xend/domain?op=stats`,
/// in the text exposition format 0.0.4.
pub async fn get(State(state): State<AppState>) -> Response {
    let snap = super::domain::snapshot(&state);
    (
        [(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&snap),
    )
        .into_response()
}
