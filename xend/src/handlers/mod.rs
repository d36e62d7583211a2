//! Request handlers, one module per resource of the API.
pub mod console;
pub mod devices;
pub mod domain;
pub mod domain_op;
pub mod event;
pub mod metrics;
pub mod migrate;
pub mod node;
pub mod root;
pub mod save;
pub mod sched;
pub mod vnet;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;
use crate::negotiate::{Format, json, sxp};
use crate::supervisor::SupError;
use crate::supervisor::migrate::PeerError;
use crate::vmm_client::VmmError;

impl From<SupError> for ApiError {
    fn from(e: SupError) -> Self {
        let status = match &e {
            SupError::NameClash(_) | SupError::UuidClash { .. } | SupError::Busy(..) => {
                StatusCode::CONFLICT
            }
            SupError::Console(crate::console::ConsoleError::PortInUse(_)) => StatusCode::CONFLICT,
            SupError::Invalid(_) => StatusCode::BAD_REQUEST,
            SupError::Confine(c) if c.is_forbidden() => StatusCode::FORBIDDEN,
            SupError::Confine(_) => StatusCode::BAD_REQUEST,
            SupError::Vmm {
                source: VmmError::Refused(_),
                ..
            } => StatusCode::BAD_REQUEST,
            // The VMM missed its deadline: 504, the message states it.
            SupError::Vmm {
                source: VmmError::Timeout(_),
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            SupError::Vmm { .. } => StatusCode::BAD_GATEWAY,
            SupError::Peer(PeerError::BadDestination(_)) => StatusCode::BAD_REQUEST,
            SupError::Peer(_) => StatusCode::BAD_GATEWAY,
            // A full disk is the host's condition, not a client's mistake.
            _ if crate::error::is_storage_full(&e) => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, errchain::error_chain(&e))
    }
}

/// The reply to a successful action: `0` for programs, a redirect back to the
/// page for browsers.
pub fn done(format: Format, status: StatusCode, back: &str) -> Response {
    match format {
        Format::Html => Redirect::to(back).into_response(),
        Format::Json => (status, json(&0)).into_response(),
        Format::Sxp => (status, sxp(&sxp::Value::str("0"))).into_response(),
    }
}
