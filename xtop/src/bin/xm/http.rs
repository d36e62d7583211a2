//! Raw SXP requests to xend, for what the typed client does not return: the
//! server's own SXP (`xm list -l`, `xm info`, `xm consoles`, `xm call`).
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Method, Url};
use xend::client::Error;

/// A client for the SXP form of xend's API.
#[derive(Debug, Clone)]
pub struct SxpClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl SxpClient {
    /// For xend at `base` (as normalised by the typed client).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, Error> {
        let bad = |reason: String| Error::BadUrl {
            url: base.to_string(),
            reason,
        };
        let base = Url::parse(base).map_err(|e| bad(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .user_agent(concat!("xm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { http, base, token })
    }

    /// The URL of `/xend/<segments...>`.
    pub fn path(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("xend");
            path.extend(segments);
        }
        url
    }

    /// `GET` with a query; the reply body as text.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<String, Error> {
        let url = self.path(segments);
        let req = self.request(Method::GET, url.clone()).query(query);
        self.send(url, req).await
    }

    /// `POST` with a form; the reply body as text.
    pub async fn post(&self, segments: &[&str], form: &[(&str, &str)]) -> Result<String, Error> {
        let url = self.path(segments);
        let req = self.request(Method::POST, url.clone()).form(form);
        self.send(url, req).await
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, url)
            .header(ACCEPT, "application/sxp");
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        req
    }

    async fn send(&self, url: Url, req: reqwest::RequestBuilder) -> Result<String, Error> {
        let transport = |source: reqwest::Error| {
            if source.is_connect() {
                Error::Connect {
                    url: self.base.as_str().trim_end_matches('/').to_string(),
                    source,
                }
            } else {
                Error::Http {
                    url: url.to_string(),
                    source,
                }
            }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.text().await.map_err(transport)?;
        if status.is_success() && !body.trim_start().starts_with("(xend.err") {
            Ok(body)
        } else {
            Err(Error::Api {
                status: status.as_u16(),
                message: error_message(&body),
            })
        }
    }
}

/// The message of an error reply: `(xend.err 'msg')` or the text itself.
pub fn error_message(body: &str) -> String {
    match sxp::parse(body) {
        Ok(v) if v.head() == Some("xend.err") => v
            .rest()
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        _ => body.trim().to_string(),
    }
}
