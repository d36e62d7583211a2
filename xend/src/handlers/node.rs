//! `/xend/node`: host information, the hypervisor log (`dmesg`) and xend's log.
use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, json, sxp, text};
use crate::params::Params;
use crate::state::AppState;

/// Most of a log served at once (the tail is kept).
const LOG_TAIL: u64 = 4 << 20;

/// `GET /xend/node`.
pub async fn info(format: Format) -> Response {
    let node = crate::hostinfo::node_info();
    match format {
        Format::Sxp => sxp(&crate::render::node_sxp(&node)),
        Format::Json => json(&node),
        Format::Html => Html(crate::html::node(&node)).into_response(),
    }
}

/// `POST /xend/node`: `op=shutdown` and `op=reboot` of the host are refused;
/// 2.0's time-slice ops are accepted as stated no-ops ([`super::sched`]).
pub async fn op(format: Format, params: Params) -> ApiResult<Response> {
    let op = params.op().ok_or_else(ApiError::missing_op)?;
    match super::sched::node_noop(op) {
        Some(why) => Ok(super::sched::noop_response(why, format)),
        None => Err(ApiError::not_implemented(op)),
    }
}

fn vmm_logs(state: &AppState) -> Vec<PathBuf> {
    let dir = state.settings.state_dir.join("vmm");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort_by_key(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    logs
}

fn tail(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > LOG_TAIL {
        let _ = f.seek(SeekFrom::Start(len - LOG_TAIL));
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `GET /xend/node/dmesg`: the hypervisor's log, i.e. every VMM's log.
pub async fn dmesg(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    for log in vmm_logs(&state) {
        let body = tail(&log);
        if body.is_empty() {
            continue;
        }
        let domid = log.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        for line in body.lines() {
            out.push_str(&format!("(d{domid}) {line}\n"));
        }
    }
    text(out)
}

/// `POST /xend/node/dmesg op=clear`.
pub async fn dmesg_op(
    State(state): State<AppState>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    match params.op() {
        None => Err(ApiError::missing_op()),
        Some("clear") => {
            for log in vmm_logs(&state) {
                state
                    .settings
                    .file_modes
                    .open(&log, crate::fsutil::Create::TruncateExisting)
                    .map_err(|e| {
                        ApiError::internal(format!("cannot clear {}: {e}", log.display()))
                    })?;
            }
            Ok(super::done(format, StatusCode::OK, "/xend/node"))
        }
        Some(op) => Err(ApiError::not_implemented(op)),
    }
}

/// `GET /xend/node/log`: xend's logfile (its newest part).
pub async fn log(State(state): State<AppState>) -> Response {
    text(tail(&state.settings.logfile))
}
