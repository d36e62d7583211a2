//! Migration between xends: `op=migrate` on the source
//! (`POST /xend/domain/DOM`), and the destination's `op=migrate_receive`
//! (`POST /xend/domain`), `op=migrate_finish` and `op=migrate_abort`
//! (`POST /xend/domain/DOM`). See `supervisor::migrate` for the protocol.
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::api::{MigrateReceive, MigrateReply};
use crate::config::DomainConfig;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, json, sxp};
use crate::params::Params;
use crate::state::AppState;
use crate::supervisor::Domain;
use crate::supervisor::migrate::Destination;

use super::save::flag;

/// `op=migrate destination=HOST[:PORT] [port=P] [live=1] [token=T]`.
pub async fn migrate(
    state: &AppState,
    dom: &Arc<Domain>,
    format: Format,
    params: &Params,
) -> ApiResult<Response> {
    let dest = params.required("destination")?;
    let port = match params.get("port").filter(|p| !p.trim().is_empty()) {
        Some(_) => Some(params.parse::<u16>("port")?),
        None => None,
    };
    let dest = Destination::parse(dest, port).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let live = flag(params, "live")?;
    let token = params
        .get("token")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let reply = state.sup.migrate(dom, &dest, live, token).await?;
    Ok(match format {
        Format::Json => json(&reply),
        Format::Html => Redirect::to("/xend/").into_response(),
        Format::Sxp => sxp(&migrate_sxp(&reply)),
    })
}

fn migrate_sxp(r: &MigrateReply) -> sxp::Value {
    sxp::Value::list([
        sxp::Value::str("migrate"),
        sxp::Value::pair("name", r.name.as_str()),
        sxp::Value::pair("destination", r.destination.as_str()),
        sxp::Value::pair("domid", r.domid),
        sxp::Value::pair("live", u32::from(r.live)),
        sxp::Value::pair("total_seconds", r.total_seconds),
        sxp::Value::pair("downtime_seconds", r.downtime_seconds),
        sxp::Value::pair("bytes", r.bytes),
        sxp::Value::pair("rounds", r.rounds),
    ])
}

/// Destination: `POST /xend/domain op=migrate_receive config=(vm ...) [paused=1]`.
pub async fn receive(state: &AppState, format: Format, params: &Params) -> ApiResult<Response> {
    let text = params.required("config")?;
    let cfg =
        DomainConfig::parse(text, "config").map_err(|e| ApiError::bad_request(e.to_string()))?;
    let paused = flag(params, "paused")?;
    let r: MigrateReceive = state.sup.migrate_receive(cfg, paused).await?;
    let mut resp = match format {
        Format::Json => json(&r),
        _ => sxp(&sxp::Value::list([
            sxp::Value::str("migrate_receive"),
            sxp::Value::pair("domid", r.domid),
            sxp::Value::pair("name", r.name.as_str()),
            sxp::Value::pair("port", r.port),
            sxp::Value::pair("token", r.token.as_str()),
        ])),
    };
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

/// Destination: `op=migrate_finish` (wait until adopted; the domain) and
/// `op=migrate_abort` (drop the waiting VMM; `0`).
pub async fn finish_or_abort(
    state: &AppState,
    dom: &Arc<Domain>,
    format: Format,
    op: &str,
) -> ApiResult<Response> {
    if op == "migrate_abort" {
        state.sup.migrate_abort(dom).await?;
        return Ok(super::done(format, StatusCode::OK, "/xend/"));
    }
    state.sup.migrate_finish(dom).await?;
    Ok(super::domain::render_domain(state, dom, format))
}
