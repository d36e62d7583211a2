//! The optional bearer token: when `token-file` is set, every API request must
//! carry `Authorization: Bearer TOKEN` (browsers may use `?token=TOKEN` once;
//! it is then kept in a cookie). Consoles and the event port take the token as
//! their first line.
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Constant-time comparison of two byte strings.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: refuse requests without the token (401).
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.settings.token.clone() else {
        return next.run(req).await;
    };
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("xend_token="))
        .next();
    let query = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let ok = |t: Option<&str>| t.is_some_and(|t| same(t.as_bytes(), token.as_bytes()));
    if ok(bearer) || ok(cookie) {
        return next.run(req).await;
    }
    if ok(query.as_deref()) {
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "xend_token={token}; Path=/; HttpOnly; SameSite=Strict"
        )) {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        return resp;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Authentication required: send Authorization: Bearer TOKEN (the contents of the token file)",
    )
    .into_response();
    resp.headers_mut()
        .insert("WWW-Authenticate", HeaderValue::from_static("Bearer"));
    resp
}
