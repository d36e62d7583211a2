//! `/xend/event`: the streaming subscription and `op=inject`.
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use crate::error::{ApiError, ApiResult};
use crate::events::MAX_EVENT_BYTES;
use crate::listen::Peer;
use crate::negotiate::{Format, SXP_MIME};
use crate::params::Params;
use crate::state::AppState;

/// One event as a line in `format`.
pub fn line(e: &crate::api::XendEvent, format: Format) -> String {
    match format {
        Format::Json => format!("{}\n", serde_json::to_string(e).unwrap_or_default()),
        _ => format!("{}\n", crate::events::to_sxp(e)),
    }
}

/// `GET /xend/event?op=stream`: one event per line until the client leaves.
pub async fn get(
    State(state): State<AppState>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    params.only_op("stream")?;
    let rx = state.events.subscribe();
    let stopping = state.stopping.clone();
    let stream =
        futures::stream::unfold((rx, stopping), move |(mut rx, mut stopping)| async move {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = stopping.wait_for(|s| *s) => return None,
                };
                match next {
                    Ok(e) => {
                        return Some((Ok::<_, std::io::Error>(line(&e, format)), (rx, stopping)));
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("event stream subscriber missed {n} events");
                        continue;
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
    let ctype = match format {
        Format::Json => "application/x-ndjson",
        _ => SXP_MIME,
    };
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, ctype),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /xend/event op=inject event=SXP`: publish an event.
///
/// Only local clients may inject (TCP clients too with
/// `(xend-event-inject-tcp yes)`), and never under xend's own `xend.` names:
/// subscribers trust those to come from xend.
pub async fn post(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    params.only_op("inject")?;
    let local = peer.is_some_and(|Extension(p)| p.is_local());
    if !local && !state.settings.event_inject_tcp {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden: op=inject is for local clients (the local socket); set (xend-event-inject-tcp yes) to allow it over TCP",
        ));
    }
    let text = params.required("event")?;
    if text.len() > MAX_EVENT_BYTES {
        return Err(ApiError::invalid(
            "event",
            format!(
                "{} bytes, longer than the limit of {MAX_EVENT_BYTES}; send a shorter detail",
                text.len()
            ),
        ));
    }
    let v = sxp::parse(text).map_err(|e| ApiError::invalid("event", e))?;
    let event = crate::events::from_sxp(&v).ok_or_else(|| {
        ApiError::invalid("event", "expected (event NAME (domid N) ...) or (NAME ...)")
    })?;
    if event.event == "xend" || event.event.starts_with("xend.") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden: events named xend.* come from xend only; inject {} under another name",
                event.event
            ),
        ));
    }
    state.events.send(event);
    Ok(super::done(format, StatusCode::OK, "/xend/"))
}
