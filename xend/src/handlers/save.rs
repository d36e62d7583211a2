//! `op=save` (`POST /xend/domain/DOM`) and `op=restore` (`POST /xend/domain`):
//! domain images inside `save-dir`.
use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Redirect, Response};

use crate::api::SaveReply;
use crate::error::ApiResult;
use crate::negotiate::{Format, json, sxp};
use crate::params::Params;
use crate::state::AppState;
use crate::supervisor::Domain;

/// A boolean parameter: `1`/`true`/`yes` (absent: false).
pub fn flag(params: &Params, name: &str) -> ApiResult<bool> {
    match params.get(name).map(str::trim) {
        None | Some("") | Some("0") | Some("false") | Some("no") => Ok(false),
        Some("1") | Some("true") | Some("yes") => Ok(true),
        Some(other) => Err(crate::error::ApiError::invalid(
            name,
            format!("{other:?}: expected 0 or 1"),
        )),
    }
}

/// `POST /xend/domain/DOM op=save file=NAME`: write the image, end the domain.
pub async fn save(
    state: &AppState,
    dom: &Arc<Domain>,
    format: Format,
    params: &Params,
) -> ApiResult<Response> {
    let file = params.required("file")?;
    let info = state.sup.save_domain(dom, file).await?;
    let reply = SaveReply {
        name: dom.name.clone(),
        file: info.path,
        image_bytes: info.image_bytes,
        seconds: info.seconds,
    };
    Ok(match format {
        Format::Json => json(&reply),
        Format::Html => Redirect::to("/xend/").into_response(),
        Format::Sxp => sxp(&sxp::Value::list([
            sxp::Value::str("save"),
            sxp::Value::pair("name", reply.name.as_str()),
            sxp::Value::pair("file", reply.file.as_str()),
            sxp::Value::pair("image_bytes", reply.image_bytes),
            sxp::Value::pair("seconds", reply.seconds),
        ])),
    })
}

/// `POST /xend/domain op=restore file=NAME [paused=1]`: 201 and the domain.
pub async fn restore(state: &AppState, format: Format, params: &Params) -> ApiResult<Response> {
    let file = params.required("file")?;
    let paused = flag(params, "paused")?;
    let dom = state.sup.restore(file, paused).await?;
    if format == Format::Html {
        return Ok(Redirect::to("/xend/").into_response());
    }
    let mut resp = super::domain::render_domain(state, &dom, format);
    *resp.status_mut() = StatusCode::CREATED;
    let location = format!("{}/xend/domain/{}", state.settings.base_url(), dom.name);
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}
