//! The API's error type: a status and a message, rendered as `(xend.err 'msg')`
//! for programs, `{"error": "msg"}` for JSON clients and a small page for
//! browsers (see [`crate::negotiate`]).
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A handled error: the HTTP status and the message the client sees.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The message, a short sentence naming what was wrong.
    pub message: String,
}

/// True when `e` or an error under it is the filesystem being full.
pub fn is_storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Marker put in a response's extensions so the negotiation layer can render the
/// error in the representation the client asked for.
#[derive(Clone, Debug)]
pub struct ErrorMessage(pub String);

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: a bad request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 `Missing parameter: X`.
    pub fn missing(param: &str) -> Self {
        Self::bad_request(format!("Missing parameter: {param}"))
    }

    /// 400 `Invalid parameter: X: why`.
    pub fn invalid(param: &str, why: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid parameter: {param}: {why}"))
    }

    /// 404 for an unknown domain.
    pub fn no_domain(dom: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("invalid domain:{dom}"))
    }

    /// 404 for anything else that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 406: the request names no `op`.
    pub fn missing_op() -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "Missing parameter: op")
    }

    /// 501 `Operation not implemented: X`.
    pub fn not_implemented(op: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Operation not implemented: {op}"),
        )
    }

    /// 409: a conflict with the current state (e.g. a name clash).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 500: something failed on our side.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, crate::negotiate::SXP_MIME)],
            sxp_error(&self.message),
        )
            .into_response();
        resp.extensions_mut().insert(ErrorMessage(self.message));
        resp
    }
}

/// Result type of the handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// `(xend.err 'message')`, always quoted as the original printed it.
pub fn sxp_error(message: &str) -> String {
    let quoted = sxp::Value::str(message).to_string();
    if sxp::is_bare(message) {
        format!("(xend.err '{quoted}')")
    } else {
        format!("(xend.err {quoted})")
    }
}
