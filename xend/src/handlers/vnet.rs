//! `/xend/vnet` and `/xend/vnet/ID`: virtual networks (a vnet is a named,
//! isolated Linux bridge; see [`crate::network`]).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, json, sxp};
use crate::network::{NetError, Vnet, Vnets};
use crate::params::Params;
use crate::state::AppState;

/// A vnet as JSON.
#[derive(Serialize)]
struct VnetJson {
    id: String,
    bridge: String,
    security: Option<String>,
    vifs: Vec<String>,
}

fn to_json(v: &Vnet) -> VnetJson {
    VnetJson {
        id: v.id.clone(),
        bridge: v.bridge.clone(),
        security: v.security.clone(),
        vifs: crate::network::bridge_ports(&v.bridge),
    }
}

fn store(state: &AppState) -> Vnets {
    Vnets::new(&state.settings.dbroot, state.settings.file_modes)
}

fn api_err(e: NetError) -> ApiError {
    let status = match &e {
        NetError::NoVnet(_) => StatusCode::NOT_FOUND,
        NetError::VnetExists(_) | NetError::BridgeExists(_) | NetError::Busy(..) => {
            StatusCode::CONFLICT
        }
        NetError::BadBridge(_) | NetError::BadId { .. } | NetError::BadConfig(_) => {
            StatusCode::BAD_REQUEST
        }
        NetError::Ip { .. } | NetError::Store(..) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

fn render(v: &Vnet, format: Format) -> Response {
    match format {
        Format::Json => json(&to_json(v)),
        _ => sxp(&v.info_sxp()),
    }
}

/// `GET /xend/vnet`: every vnet, `((vnet (id ..) (bridge ..) (vifs ..)) ...)`.
pub async fn list(State(state): State<AppState>, format: Format) -> Response {
    let all = store(&state).list();
    match format {
        Format::Json => json(&all.iter().map(to_json).collect::<Vec<_>>()),
        _ => sxp(&sxp::Value::list(all.iter().map(Vnet::info_sxp))),
    }
}

/// `GET /xend/vnet/ID`: one vnet.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    format: Format,
) -> ApiResult<Response> {
    let v = store(&state).get(&id).map_err(api_err)?;
    Ok(render(&v, format))
}

/// `POST /xend/vnet op=create config=(vnet (id ID) [(bridge NAME)] ...)`:
/// creates the bridge; 201 and the vnet.
pub async fn create(
    State(state): State<AppState>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    params.only_op("create")?;
    let v = Vnet::parse(params.required("config")?).map_err(api_err)?;
    store(&state).create(&v).map_err(api_err)?;
    tracing::info!("created vnet {} (bridge {})", v.id, v.bridge);
    let mut resp = render(&v, format);
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

/// `POST /xend/vnet/ID op=delete`: deletes the vnet and its bridge, refused
/// while interfaces are attached.
pub async fn act(
    State(state): State<AppState>,
    Path(id): Path<String>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    match params.op() {
        None => Err(ApiError::missing_op()),
        Some("delete") => {
            let v = store(&state).delete(&id).map_err(api_err)?;
            tracing::info!("deleted vnet {} (bridge {})", v.id, v.bridge);
            Ok(super::done(format, StatusCode::OK, "/xend/vnet"))
        }
        Some(op) => Err(ApiError::not_implemented(op)),
    }
}
