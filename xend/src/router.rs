//! Every route of the API in one place.
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::Redirect;
use axum::routing::get;

use crate::handlers::{console, domain, event, node, root};
use crate::state::AppState;

/// The application: routes, body cap, token check, error rendering, tracing.
pub fn app(state: AppState) -> Router {
    let limit = state.settings.max_request_bytes;
    Router::new()
        .route("/", get(|| async { Redirect::to("/xend/") }))
        .route("/xend", get(|| async { Redirect::to("/xend/") }))
        .route("/xend/", get(root::index))
        .route("/xend/node", get(node::info).post(node::op))
        .route("/xend/node/dmesg", get(node::dmesg).post(node::dmesg_op))
        .route("/xend/node/log", get(node::log))
        .route("/xend/domain", get(domain::list).post(domain::create))
        .route("/xend/domain/{dom}", get(domain::get).post(domain::act))
        .route("/xend/console", get(console::list))
        .route(
            "/xend/console/{port}",
            get(console::get).post(console::post),
        )
        .route("/xend/event", get(event::get).post(event::post))
        .route("/xend/vnet", get(root::vnets).post(root::vnet_op))
        .route("/xend/vnet/{id}", get(root::vnet).post(root::vnet_id_op))
        .fallback(|| async { crate::error::ApiError::not_found("no such resource") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(middleware::from_fn(crate::negotiate::render_errors))
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// Log every request with its status and duration.
async fn trace(req: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    let method = req.method().clone();
    let uri = req.uri().path().to_string();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let took: Duration = start.elapsed();
    tracing::debug!(%method, uri, status = resp.status().as_u16(), ?took, "request");
    resp
}
