//! The harness's HTTP side: replies, representations, and [`Xend`]'s request
//! helpers (TCP with the token, or the local socket).
use std::time::Duration;

use crate::Xend;

/// One HTTP reply.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header ("" when absent).
    pub content_type: String,
    /// `Location` header, when present.
    pub location: Option<String>,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON; panics with the body when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Asserts a 2xx status and returns self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {}: {}",
            self.status,
            self.body
        );
        self
    }

    /// Asserts the status is `status` and returns self.
    #[track_caller]
    pub fn status(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
}

/// Which representation to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// No `Accept` and no `User-Agent`: a program, so SXP.
    Sxp,
    /// `Accept: application/json`.
    Json,
    /// A browser's headers: HTML.
    Html,
}

impl Xend {
    fn auth_headers(&self) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.token {
            h.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        h
    }

    /// Send a request: `form` goes in the query string for GET and as an
    /// urlencoded body for POST.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        accept: Accept,
        form: &[(&str, &str)],
    ) -> Reply {
        let url = self.url(path);
        let mut req = match method {
            "GET" => self.http.get(&url).query(form),
            "POST" => self.http.post(&url).form(form),
            m => self
                .http
                .request(m.parse().expect("method"), &url)
                .query(form),
        };
        req = req.headers(self.auth_headers());
        req = match accept {
            Accept::Sxp => req,
            Accept::Json => req.header("Accept", "application/json"),
            Accept::Html => req
                .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
                .header("User-Agent", "Mozilla/5.0 (e2e)"),
        };
        let resp = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        reply(resp)
    }

    /// GET as a program (SXP).
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, Accept::Sxp, &[])
    }

    /// GET with `Accept: application/json`.
    pub fn get_json(&self, path: &str) -> Reply {
        self.request("GET", path, Accept::Json, &[])
    }

    /// POST a form as a program (SXP reply).
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.request("POST", path, Accept::Sxp, form)
    }

    /// POST a form asking for JSON.
    pub fn post_json(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.request("POST", path, Accept::Json, form)
    }

    /// POST a form over the local socket (no token: the socket's mode is the
    /// authorization), as a program (SXP reply).
    pub fn post_local(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let http = reqwest::blocking::Client::builder()
            .unix_socket(self.unix_path())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let resp = http
            .post(format!("http://localhost{path}"))
            .form(form)
            .send()
            .unwrap_or_else(|e| panic!("POST (local) {path}: {e}"));
        reply(resp)
    }

    /// `Bearer TOKEN` for an `Authorization` header ("" without a token).
    pub fn authorization(&self) -> String {
        self.token
            .as_deref()
            .map(|t| format!("Bearer {t}"))
            .unwrap_or_default()
    }

    /// POST a raw body with the given content type.
    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let resp = self
            .http
            .post(self.url(path))
            .headers(self.auth_headers())
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        reply(resp)
    }
}

fn reply(resp: reqwest::blocking::Response) -> Reply {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let location = header("location");
    let body = resp.text().unwrap_or_default();
    Reply {
        status,
        content_type,
        location,
        body,
    }
}
