//! Who may use the API, checked for every request before any handler runs:
//!
//! 1. **Local socket**: the socket's file mode (0600, or 0660 with
//!    `xend-admin-group`) is the authorization, and the kernel's peer
//!    credentials are checked again here: root, xend's own user, or a member
//!    of the admin group.
//! 2. **TCP** (API port, plain or TLS): the bearer token (`Authorization:
//!    Bearer TOKEN`; browsers may pass `?token=TOKEN` once, which is then kept
//!    in a `SameSite=Strict` cookie), unless `(xend-tcp-auth none)`.
//! 3. **Browsers** (DNS rebinding, cross-site forms): on TCP, a `Host` must
//!    name this xend (an IP literal, `localhost`, this host's name, or a name
//!    in `xend-server-names`); a state-changing request that looks like it
//!    comes from a browser must be same-origin and carry the CSRF token that
//!    xend's own pages embed.
//!
//! Consoles and the event port take the token as their first line.
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::listen::Peer;
use crate::settings::Settings;
use crate::state::AppState;

/// The query parameter and header that carry the CSRF token.
pub const CSRF_PARAM: &str = "csrf";
/// The header form of the CSRF token, for scripts in pages.
pub const CSRF_HEADER: &str = "x-xend-csrf";

/// Constant-time comparison of two byte strings.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token of `bytes` bytes, as hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut raw = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Middleware: the access rules above. Requests without a [`Peer`] (built
/// in-process) are treated as TCP requests.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().cloned();
    if let Some(Peer::Local { uid, gid, pid }) = peer {
        if !local_peer_allowed(&state.settings, uid, gid, pid) {
            tracing::warn!("local API client uid {uid} refused: not root nor in the admin group");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden: the local API is for root and the admin group (xend-admin-group)",
            )
            .into_response();
        }
        return next.run(req).await;
    }
    if let Err(e) = check_host(&state.settings, req.headers()) {
        return e.into_response();
    }
    let mut set_cookie = None;
    if let Some(token) = state.settings.token.clone() {
        match presented_token(&req, &token) {
            Presented::Header | Presented::Cookie => {}
            Presented::Query => {
                set_cookie = HeaderValue::from_str(&format!(
                    "xend_token={token}; Path=/; HttpOnly; SameSite=Strict"
                ))
                .ok();
            }
            Presented::Nothing => return unauthorized(),
        }
    }
    if let Err(e) = check_browser_write(&req, &state.csrf) {
        return e.into_response();
    }
    let mut resp = next.run(req).await;
    if let Some(v) = set_cookie {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

fn unauthorized() -> Response {
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Authentication required: send Authorization: Bearer TOKEN (TOKEN is in the file named by token-file), or use the local socket",
    )
    .into_response();
    resp.headers_mut()
        .insert("WWW-Authenticate", HeaderValue::from_static("Bearer"));
    resp
}

/// Root, xend's own user, or a member of the admin group.
fn local_peer_allowed(settings: &Settings, uid: u32, gid: u32, pid: Option<i32>) -> bool {
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        return true;
    }
    let Some(admin) = settings.admin_gid else {
        return false;
    };
    gid == admin || pid.is_some_and(|pid| supplementary_groups(pid).contains(&admin))
}

/// The supplementary groups of process `pid` (from `/proc/PID/status`).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Where a valid token was found.
enum Presented {
    Header,
    Cookie,
    Query,
    Nothing,
}

fn presented_token(req: &Request, token: &str) -> Presented {
    let ok = |t: Option<&str>| t.is_some_and(|t| same(t.as_bytes(), token.as_bytes()));
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if ok(bearer) {
        return Presented::Header;
    }
    let cookie = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("xend_token="));
    if ok(cookie) {
        return Presented::Cookie;
    }
    if ok(query_param(req, "token").as_deref()) {
        return Presented::Query;
    }
    Presented::Nothing
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

/// The host part of a `Host` header value: without the port, without the
/// brackets of an IPv6 literal, lower case, without a trailing dot.
fn host_name(host: &str) -> String {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A request's `Host` must name this xend: any IP literal (a page can only
/// have such an origin if it was served from that address), `localhost`,
/// this host's name, or a name in `xend-server-names`. Anything else is a
/// browser that was pointed here by a name that resolves to us (DNS
/// rebinding). A request without `Host` (HTTP/1.0) is not from a browser.
fn check_host(settings: &Settings, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(host) = headers.get(HOST) else {
        return Ok(());
    };
    let host = host.to_str().unwrap_or("");
    let name = host_name(host);
    if name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || settings.server_names.contains(&name)
        || this_host_names().contains(&name)
    {
        return Ok(());
    }
    tracing::warn!(
        "request for Host {} refused: not a name of this xend",
        printable(host)
    );
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "Forbidden: Host {} does not name this xend; add the name to xend-server-names in xend-config.sxp",
            printable(&name)
        ),
    ))
}

/// `s` with control characters written as `\xNN`, for messages and logs.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// This host's name, and its first label (`web1.example.org` and `web1`).
fn this_host_names() -> Vec<String> {
    let Ok(name) = nix::unistd::gethostname() else {
        return Vec::new();
    };
    let name = name.to_string_lossy().to_ascii_lowercase();
    let short = name.split('.').next().unwrap_or("").to_string();
    vec![name, short]
}

/// True when a request carries what browsers send and programs do not.
fn from_browser(headers: &HeaderMap) -> bool {
    const BROWSER_HEADERS: [&str; 5] = [
        "origin",
        "sec-fetch-site",
        "sec-fetch-mode",
        "referer",
        "cookie",
    ];
    BROWSER_HEADERS.iter().any(|h| headers.contains_key(*h))
        || crate::negotiate::Format::from_headers(headers) == crate::negotiate::Format::Html
}

/// A state-changing request from a browser must come from xend's own pages:
/// same origin, and the CSRF token those pages embed.
fn check_browser_write(req: &Request, csrf: &str) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let headers = req.headers();
    if !from_browser(headers) {
        return Ok(());
    }
    let forbidden = |why: &str| {
        tracing::warn!("cross-site request refused: {why}");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Forbidden: {why}; use xend's own pages (reload the page if xend restarted)"),
        ))
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
        return forbidden("a cross-site request may not change anything");
    }
    if let Some(origin) = header(ORIGIN.as_str()) {
        let host = header(HOST.as_str()).unwrap_or("");
        let same_origin = origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host));
        if !same_origin {
            return forbidden("the request's Origin is not this xend");
        }
    }
    let given = header(CSRF_HEADER)
        .map(str::to_owned)
        .or_else(|| query_param(req, CSRF_PARAM));
    if !given.is_some_and(|g| same(g.as_bytes(), csrf.as_bytes())) {
        return forbidden("a browser's request must carry the page's CSRF token");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_ports_brackets_and_case() {
        assert_eq!(host_name("Example.ORG:8000"), "example.org");
        assert_eq!(host_name("example.org."), "example.org");
        assert_eq!(host_name("[::1]:8000"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }
}
