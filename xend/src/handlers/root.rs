//! `GET /xend/` and the vnet placeholders.
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, json, sxp};
use crate::params::Params;
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
        Format::Html => Html(crate::html::index(&state)).into_response(),
    }
}

/// `GET /xend/vnet`: no virtual networks exist yet.
pub async fn vnets(format: Format) -> Response {
    match format {
        Format::Json => json(&Vec::<String>::new()),
        _ => sxp(&sxp::Value::List(Vec::new())),
    }
}

/// `GET /xend/vnet/ID`.
pub async fn vnet(Path(id): Path<String>) -> ApiResult<Response> {
    Err(ApiError::not_found(format!("no such vnet: {id}")))
}

/// `POST /xend/vnet[/ID]`: not implemented yet (its own issue).
pub async fn vnet_op(params: Params) -> ApiResult<Response> {
    let op = params.op().ok_or_else(ApiError::missing_op)?;
    Err(ApiError::not_implemented(op))
}

/// `POST /xend/vnet/ID`.
pub async fn vnet_id_op(Path(_id): Path<String>, params: Params) -> ApiResult<Response> {
    vnet_op(params).await
}
