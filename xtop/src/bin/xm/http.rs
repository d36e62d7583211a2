//! Raw SXP requests to xend, for what the typed client does not return: the
//! server's own SXP (`xm list -l`, `xm info`, `xm consoles`, `xm call`).
use reqwest::header::ACCEPT;
use reqwest::{Method, Url};
use xend::client::{Client, Error};

/// A client for the SXP form of xend's API, over the typed client's
/// connection (socket, TLS, token).
#[derive(Debug, Clone)]
pub struct SxpClient {
    client: Client,
}

impl SxpClient {
    /// Over `client`'s connection.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// `GET` with a query; the reply body as text.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<String, Error> {
        let (url, req) = self.request(Method::GET, segments);
        self.send(url, req.query(query)).await
    }

    /// `POST` with a form; the reply body as text.
    pub async fn post(&self, segments: &[&str], form: &[(&str, &str)]) -> Result<String, Error> {
        let (url, req) = self.request(Method::POST, segments);
        self.send(url, req.form(form)).await
    }

    fn request(&self, method: Method, segments: &[&str]) -> (Url, reqwest::RequestBuilder) {
        let (url, req) = self.client.raw_request(method, segments);
        (url, req.header(ACCEPT, "application/sxp"))
    }

    async fn send(&self, url: Url, req: reqwest::RequestBuilder) -> Result<String, Error> {
        let transport = |source: reqwest::Error| self.client.send_error(&url, source);
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
