//! The `Params` extractor: request parameters from the query string and from an
//! `application/x-www-form-urlencoded` or `multipart/form-data` body, as the
//! seed's API takes them. Bodies are capped at `max-request-bytes` (413).
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;

use crate::error::ApiError;
use crate::multipart::{self, MultipartError};
use crate::state::AppState;

/// Request parameters by name (the first occurrence wins).
#[derive(Clone, Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    /// A parameter, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The `op` parameter, if given.
    pub fn op(&self) -> Option<&str> {
        self.get("op")
    }

    /// For a request that has one operation: `op` must be `want`
    /// ([`ApiError::missing_op`] without one, [`ApiError::not_implemented`]
    /// for another).
    pub fn only_op(&self, want: &str) -> Result<(), ApiError> {
        match self.op() {
            None => Err(ApiError::missing_op()),
            Some(op) if op == want => Ok(()),
            Some(op) => Err(ApiError::not_implemented(op)),
        }
    }

    /// A parameter that must be given (`Missing parameter: X`).
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }

    /// A required parameter parsed as `T` (`Invalid parameter: X: ...`).
    pub fn parse<T: std::str::FromStr>(&self, name: &str) -> Result<T, ApiError> {
        let raw = self.required(name)?;
        raw.trim()
            .parse()
            .map_err(|_| ApiError::invalid(name, format!("{raw:?} is not a valid number")))
    }

    fn add(&mut self, k: String, v: String) {
        self.0.entry(k).or_insert(v);
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body too large: the limit is {limit} bytes (max-request-bytes)"),
    )
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.settings.max_request_bytes;
        let mut params = Params::default();
        if let Some(q) = req.uri().query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                params.add(k.into_owned(), v.into_owned());
            }
        }
        let ctype_raw = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let ctype = ctype_raw.to_ascii_lowercase();
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| body_error(e, limit))?;
        if ctype.starts_with("multipart/form-data") {
            let bad = |e: MultipartError| ApiError::bad_request(format!("Bad multipart body: {e}"));
            let boundary = multipart::boundary(&ctype_raw).map_err(bad)?;
            for part in multipart::parse(&body, boundary).map_err(bad)? {
                let text = String::from_utf8(part.data.to_vec())
                    .map_err(|_| ApiError::invalid(&part.name, "not UTF-8 text"))?;
                params.add(part.name, text);
            }
            return Ok(params);
        }
        if !body.is_empty() {
            add_form(&mut params, &body);
        }
        Ok(params)
    }
}

/// 413 when the body is over the limit, else 400 saying why it could not be
/// read (e.g. it did not arrive in time).
fn body_error(e: axum::Error, limit: usize) -> ApiError {
    use std::error::Error;
    let mut cur: Option<&(dyn Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return too_large(limit);
        }
        cur = err.source();
    }
    ApiError::bad_request(format!("Cannot read the request body: {e}"))
}

fn add_form(params: &mut Params, body: &Bytes) {
    for (k, v) in form_urlencoded::parse(body) {
        params.add(k.into_owned(), v.into_owned());
    }
}
