//! `GET /xend/`.
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::negotiate::{Format, json, sxp};
use crate::state::AppState;

/// The resources under the root.
pub const RESOURCES: [&str; 5] = ["node", "domain", "console", "event", "vnet"];

/// `GET /xend/`: `(ls node domain console event vnet)`; the overview page for browsers.
pub async fn index(State(state): State<AppState>, format: Format) -> Response {
    match format {
        Format::Sxp => {
            let mut items = vec![sxp::Value::str("ls")];
            items.extend(RESOURCES.iter().map(|r| sxp::Value::str(*r)));
            sxp(&sxp::Value::List(items))
        }
        Format::Json => json(&RESOURCES),
        Format::Html => {
            let (node, doms) = super::domain::all_stats(&state);
            Html(crate::html::index(&state.csrf, &node, &doms)).into_response()
        }
    }
}
