//! Content negotiation: SXP for programs, JSON when asked for, HTML for browsers.
//!
//! The seed's rule: a request with no `User-Agent`, or no `Accept`, or an `Accept`
//! naming `application/sxp` is a program and gets SXP. We add: `Accept:
//! application/json` gets JSON (the shapes of [`crate::api`]), and HTML goes only
//! to clients whose `Accept` names `text/html` (browsers), so `curl` gets SXP.
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::error::ErrorMessage;

/// MIME type of SXP.
pub const SXP_MIME: &str = "application/sxp";

/// The representation a client gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/sxp`.
    Sxp,
    /// `application/json`.
    Json,
    /// `text/html`.
    Html,
}

impl Format {
    /// Decide from the request headers.
    pub fn from_headers(headers: &HeaderMap) -> Format {
        let accept = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/json") {
            return Format::Json;
        }
        if !headers.contains_key(USER_AGENT)
            || accept.is_empty()
            || accept.contains(SXP_MIME)
            || !accept.contains("text/html")
        {
            return Format::Sxp;
        }
        Format::Html
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Format::from_headers(&parts.headers))
    }
}

/// Middleware: re-render an [`crate::error::ApiError`] response in the format
/// the client asked for (the handler rendered SXP).
pub async fn render_errors(req: Request, next: Next) -> Response {
    let format = Format::from_headers(req.headers());
    let resp = next.run(req).await;
    let Some(ErrorMessage(message)) = resp.extensions().get::<ErrorMessage>().cloned() else {
        return resp;
    };
    let status = resp.status();
    let mut resp = match format {
        Format::Sxp => resp,
        Format::Json => {
            let body = serde_json::json!({ "error": message }).to_string();
            let mut r = (status, body).into_response();
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Format::Html => (status, Html(crate::html::error_page(status, &message))).into_response(),
    };
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason_phrase(&message)) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

/// The longest reason phrase sent, in bytes.
pub const MAX_REASON: usize = 200;

/// `message` as an HTTP reason phrase: Xen 2.0's client shows only the status
/// line's reason (`Error: <reason>`) and never reads the body, so the message
/// goes there too. One line of printable ASCII (control characters become
/// spaces, runs of spaces one, anything else `\u{..}`), at most
/// [`MAX_REASON`] bytes (cut with `...`).
pub fn reason_phrase(message: &str) -> String {
    let mut out = String::new();
    for c in message.chars() {
        let piece = if c.is_control() || c.is_whitespace() {
            if out.is_empty() || out.ends_with(' ') {
                continue;
            }
            " ".to_string()
        } else if c.is_ascii() {
            c.to_string()
        } else {
            c.escape_unicode().to_string()
        };
        if out.len() + piece.len() > MAX_REASON - 3 {
            out.push_str("...");
            return out;
        }
        out.push_str(&piece);
    }
    out.truncate(out.trim_end().len());
    out
}

/// An SXP response body.
pub fn sxp(v: &sxp::Value) -> Response {
    ([(CONTENT_TYPE, SXP_MIME)], v.to_string()).into_response()
}

/// An SXP response body already written as text.
pub fn sxp_text(body: String) -> Response {
    ([(CONTENT_TYPE, SXP_MIME)], body).into_response()
}

/// A JSON response body.
pub fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(body) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            crate::error::ApiError::internal(format!("cannot encode JSON: {e}")).into_response()
        }
    }
}

/// A text/plain response body.
pub fn text(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(user_agent: Option<&str>, accept: Option<&str>, want: Format) {
        let mut h = HeaderMap::new();
        if let Some(ua) = user_agent {
            h.insert(USER_AGENT, ua.parse().unwrap());
        }
        if let Some(a) = accept {
            h.insert(ACCEPT, a.parse().unwrap());
        }
        assert_eq!(Format::from_headers(&h), want);
    }

    #[test]
    fn reason_phrases_are_one_bounded_printable_line() {
        #[track_caller]
        fn check(message: &str, want: &str) {
            let got = reason_phrase(message);
            assert_eq!(got, want);
            assert!(hyper::ext::ReasonPhrase::try_from(got).is_ok());
        }
        check("invalid domain:x", "invalid domain:x");
        check(
            "config:3:9: bad value\r\nSet-Cookie: x=1\n",
            "config:3:9: bad value Set-Cookie: x=1",
        );
        check("tab\there\x00nul \x7f", "tab here nul");
        check("caf\u{e9}", "caf\\u{e9}");
        let long = reason_phrase(&"x".repeat(1000));
        assert_eq!(long.len(), MAX_REASON);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn the_seed_rules_plus_json() {
        use Format::*;
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        check(None, None, Sxp);
        check(Some("Mozilla/5.0"), None, Sxp);
        check(None, Some(browser), Sxp);
        check(Some("Mozilla/5.0"), Some(browser), Html);
        check(Some("Mozilla/5.0"), Some("application/sxp, text/html"), Sxp);
        check(Some("curl/8"), Some("*/*"), Sxp);
        check(None, Some("application/json"), Json);
        check(
            Some("Mozilla/5.0"),
            Some("application/json, text/html"),
            Json,
        );
    }
}
