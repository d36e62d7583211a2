//! A domain's devices: `GET /xend/domain/DOM?op=vifs|vif|vbds|vbd` and
//! `POST /xend/domain/DOM op=device_create|device_destroy`.
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use hypervisor::control::proto::DeviceClass;

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, json, sxp};
use crate::params::Params;
use crate::render::{vbd_sxp, vif_sxp};
use crate::state::AppState;
use crate::supervisor::Domain;
use crate::supervisor::devices::parse_device;

/// The GET ops served here.
pub const GET_OPS: [&str; 4] = ["vifs", "vif", "vbds", "vbd"];

/// `op=vifs` / `op=vbds` (lists) and `op=vif&vif=N` / `op=vbd&vbd=N` (one),
/// with live figures.
pub async fn get(dom: &Domain, format: Format, params: &Params, op: &str) -> ApiResult<Response> {
    let _ = tokio::time::timeout(Duration::from_secs(2), dom.refresh()).await;
    let stats = dom.stats();
    let one = |key: &str| -> ApiResult<u32> {
        let raw = params.required(key)?;
        raw.parse()
            .map_err(|_| ApiError::invalid(key, format!("{raw:?}: expected a device index")))
    };
    let missing =
        |what: &str, n: u32| ApiError::not_found(format!("domain {} has no {what} {n}", dom.name));
    Ok(match op {
        "vifs" => match format {
            Format::Json => json(&stats.nets),
            _ => sxp(&sxp::Value::list(stats.nets.iter().map(vif_sxp))),
        },
        "vbds" => match format {
            Format::Json => json(&stats.vbds),
            _ => sxp(&sxp::Value::list(stats.vbds.iter().map(vbd_sxp))),
        },
        "vif" => {
            let n = one("vif")?;
            let v = stats
                .nets
                .iter()
                .find(|v| v.idx == n)
                .ok_or(missing("vif", n))?;
            match format {
                Format::Json => json(v),
                _ => sxp(&vif_sxp(v)),
            }
        }
        _ => {
            let n = one("vbd")?;
            let v = stats
                .vbds
                .iter()
                .find(|v| v.idx == n)
                .ok_or(missing("vbd", n))?;
            match format {
                Format::Json => json(v),
                _ => sxp(&vbd_sxp(v)),
            }
        }
    })
}

/// `op=device_create config=(vbd ...)|(vif ...)` (or xm's text with
/// `type=vbd|vif`): hot attach; answers the new device with its figures.
pub async fn create(
    state: &AppState,
    dom: &Arc<Domain>,
    format: Format,
    params: &Params,
) -> ApiResult<Response> {
    let text = params.required("config")?;
    let dev = parse_device(text, params.get("type")).map_err(ApiError::bad_request)?;
    let made = state.sup.device_create(dom, dev).await?;
    if format == Format::Html {
        return Ok(Redirect::to(&format!("/xend/domain/{}", dom.name)).into_response());
    }
    let stats = dom.stats();
    let reply = match made.kind {
        DeviceClass::Vbd => stats
            .vbds
            .iter()
            .find(|v| v.idx == made.idx)
            .map(|v| (serde_json::to_value(v), vbd_sxp(v))),
        DeviceClass::Vif => stats
            .nets
            .iter()
            .find(|v| v.idx == made.idx)
            .map(|v| (serde_json::to_value(v), vif_sxp(v))),
    };
    Ok(match (reply, format) {
        (Some((Ok(j), _)), Format::Json) => json(&j),
        (Some((_, s)), _) => sxp(&s),
        (None, Format::Json) => json(&made),
        (None, _) => sxp(&sxp::Value::list([
            sxp::Value::str(made.kind.as_str()),
            sxp::Value::pair("idx", made.idx),
            sxp::Value::pair("name", made.name.as_str()),
        ])),
    })
}

/// `op=device_destroy type=vbd|vif idx=N` (a vbd's guest name, a vif's
/// interface name or MAC also do; `dev=` is taken for `idx=`): hot detach.
pub async fn destroy(
    state: &AppState,
    dom: &Arc<Domain>,
    format: Format,
    params: &Params,
) -> ApiResult<Response> {
    let kind = match params.required("type")? {
        "vbd" => DeviceClass::Vbd,
        "vif" => DeviceClass::Vif,
        other => {
            return Err(ApiError::invalid(
                "type",
                format!("{other:?}: expected vbd or vif"),
            ));
        }
    };
    let which = match (params.get("idx"), params.get("dev")) {
        (Some(i), _) => i,
        (None, Some(d)) => d,
        (None, None) => return Err(ApiError::missing("idx")),
    };
    state.sup.device_destroy(dom, kind, which).await?;
    Ok(super::done(
        format,
        StatusCode::OK,
        &format!("/xend/domain/{}", dom.name),
    ))
}
