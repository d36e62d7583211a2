//! `/xend/console`: console ports, one console's state, `op=disconnect`.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, json, sxp};
use crate::params::Params;
use crate::state::AppState;

/// `GET /xend/console`: the console ports, e.g. `(9605 9606)`.
pub async fn list(State(state): State<AppState>, format: Format) -> Response {
    let ports: Vec<u16> = state.sup.domains().iter().map(|d| d.console.port).collect();
    match format {
        Format::Json => json(&ports),
        Format::Html => {
            let consoles: Vec<_> = state
                .sup
                .domains()
                .iter()
                .map(|d| (d.name.clone(), d.console.info()))
                .collect();
            Html(crate::html::consoles(&state.csrf, &consoles)).into_response()
        }
        Format::Sxp => sxp(&sxp::Value::list(ports.into_iter().map(sxp::Value::from))),
    }
}

fn port_of(raw: &str) -> ApiResult<u16> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no console on port {raw}")))
}

/// `GET /xend/console/PORT` (also `?op=disconnect`, as the seed lists it).
pub async fn get(
    State(state): State<AppState>,
    Path(port): Path<String>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    if params.op().is_some() {
        return post(State(state), Path(port), format, params).await;
    }
    let port = port_of(&port)?;
    let dom = state
        .sup
        .by_console_port(port)
        .ok_or_else(|| ApiError::not_found(format!("no console on port {port}")))?;
    let info = dom.console.info();
    Ok(match format {
        Format::Json => json(&info),
        _ => sxp(&crate::render::console_sxp(&info)),
    })
}

/// `POST /xend/console/PORT op=disconnect`.
pub async fn post(
    State(state): State<AppState>,
    Path(port): Path<String>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    let op = params.op().ok_or_else(ApiError::missing_op)?;
    let port = port_of(&port)?;
    let dom = state
        .sup
        .by_console_port(port)
        .ok_or_else(|| ApiError::not_found(format!("no console on port {port}")))?;
    match op {
        "disconnect" => {
            dom.console.disconnect();
            Ok(super::done(format, StatusCode::OK, "/xend/console"))
        }
        op => Err(ApiError::not_implemented(op)),
    }
}
