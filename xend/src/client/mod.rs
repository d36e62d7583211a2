//! Typed calls to xend's HTTP API, for clients (xtop, xm, scripts).
//!
//! Every call asks for JSON (`Accept: application/json`) and decodes the shapes
//! of [`crate::api`]. Failures come back as one [`Error`]: a refused connection
//! reads `Error connecting to xend, is xend running? (URL)`, and an error the
//! server reports carries the server's own message.
//!
//! ```no_run
//! # async fn demo() -> Result<(), xend::client::Error> {
//! let xend = xend::client::Client::new(xend::client::DEFAULT_URL, None)?;
//! let snapshot = xend.snapshot().await?;
//! for dom in &snapshot.domains {
//!     println!("{} {}", dom.name, dom.state);
//! }
//! # Ok(())
//! # }
//! ```
use std::collections::VecDeque;

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::api::{DomainStats, NodeInfo, Snapshot};

pub mod endpoint;
mod events;
pub use endpoint::{ClientOptions, Endpoint};
pub use events::EventStream;

/// xend's TCP API on this host with the default port (clients use the local
/// socket unless given a URL).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";
/// Environment variable naming xend's URL.
pub const URL_ENV: &str = "XEND_URL";
/// Environment variable holding the bearer token, if xend wants one.
pub const TOKEN_ENV: &str = "XEND_TOKEN";

/// How long an ordinary request may take (the event stream has no limit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A save or a migration moves the whole guest RAM: allow it much longer.
const MOVE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long connecting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What can go wrong talking to xend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing answered at the URL (refused, unreachable, timed out connecting).
    #[error("Error connecting to xend, is xend running? ({url})")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why the connection failed.
        #[source]
        source: reqwest::Error,
    },
    /// xend answered with an error status; `message` is xend's own text.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's message (`{"error": msg}` or `(xend.err 'msg')`).
        message: String,
    },
    /// Connecting failed after something answered (TLS refused, reset, ...).
    #[error("cannot talk to xend at {url}: {detail}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The deepest cause.
        detail: String,
    },
    /// The local socket exists but this user may not use it.
    #[error(
        "Permission denied on xend's local socket {path}: it serves root and the members of xend-admin-group"
    )]
    LocalDenied {
        /// The socket.
        path: String,
    },
    /// The request failed after connecting (reset, timeout, ...).
    #[error("request to {url} failed")]
    Http {
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// xend answered something this client cannot read.
    #[error("unexpected reply from {url}: {detail}")]
    Decode {
        /// The URL requested.
        url: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The base URL given is not usable.
    #[error(
        "invalid xend URL '{url}': {reason}; expected e.g. http://127.0.0.1:8000, https://host:8000 or unix:/var/run/xend/xend.sock"
    )]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// True when xend could not be reached at all (as opposed to refusing a request).
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Unreachable { .. })
    }
}

/// Result of the calls in this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `op=configure` did with a new config: the fields applied to the running
/// domain now, and those stored for its next boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigureResult {
    /// Fields changed on the running domain (e.g. `memory`, `maxmem`, `cpu`).
    #[serde(default)]
    pub live: Vec<String>,
    /// Fields stored for the next boot (e.g. `vcpus`, `image`).
    #[serde(default)]
    pub next_boot: Vec<String>,
}

/// Why a domain is asked to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Power off.
    Poweroff,
    /// Reboot (the restart mode decides what follows).
    Reboot,
    /// Halt: power off and cancel any pending restart.
    Halt,
}

impl ShutdownReason {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Poweroff => "poweroff",
            ShutdownReason::Reboot => "reboot",
            ShutdownReason::Halt => "halt",
        }
    }
}

/// Which form of the stored config to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// The SXP `(vm ...)` form.
    Sxp,
    /// The `key = value` form xm config files use.
    Xm,
}

/// A handle on one xend. Cheap to clone (connections are pooled and shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    endpoint: Endpoint,
    display: String,
}

impl Client {
    /// A client for xend at `url` exactly (`http(s)://HOST:PORT`, a bare
    /// `HOST:PORT`, or `unix:PATH`), sending `token` if given.
    pub fn new(url: &str, token: Option<String>) -> Result<Self> {
        let transport = endpoint::parse_url(url)?;
        let console_host = match &transport {
            endpoint::Transport::Tcp(u) => u
                .host_str()
                .unwrap_or("127.0.0.1")
                .trim_matches(['[', ']'])
                .to_string(),
            endpoint::Transport::Unix(_) => "127.0.0.1".into(),
        };
        let console_tls =
            crate::config::console_tls(Some(url), None, &crate::config::client_config());
        Client::with_endpoint(Endpoint {
            transport,
            console_host,
            token: endpoint::TokenSource::given(token),
            cacert: None,
            console_tls,
        })
    }

    /// A client for the URL given (else `$XEND_URL`, else xend's local socket)
    /// and the token given (else `$XEND_TOKEN`, else xend's token file when
    /// readable): see [`endpoint`].
    pub fn from_env(url: Option<&str>, token: Option<String>) -> Result<Self> {
        Client::connect(&ClientOptions {
            url: url.map(str::to_owned),
            token,
            cacert: None,
        })
    }

    /// A client for these options, completed from the environment and
    /// xend's config file.
    pub fn connect(opts: &ClientOptions) -> Result<Self> {
        Client::with_endpoint(opts.resolve()?)
    }

    fn with_endpoint(endpoint: Endpoint) -> Result<Self> {
        let (http, base) = endpoint::http_client(
            &endpoint,
            concat!("xend-client/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Client {
            http,
            base,
            display: endpoint.display(),
            endpoint,
        })
    }

    /// Where xend is, as shown to people: the URL (normalised, without the
    /// trailing slash) or `unix:PATH`.
    pub fn url(&self) -> &str {
        &self.display
    }

    /// The bearer token, if any (consoles and the event port take it as their
    /// first line).
    pub fn token(&self) -> Option<String> {
        self.endpoint.token.get()
    }

    /// The host where this xend's consoles listen.
    pub fn console_host(&self) -> &str {
        &self.endpoint.console_host
    }

    /// Whether consoles and the event port speak TLS, and which certificate
    /// to trust there (`None`: plain TCP).
    pub fn console_tls(&self) -> Option<&crate::config::ConsoleTls> {
        self.endpoint.console_tls.as_ref()
    }

    /// A request to `/xend/<segments...>` with the token, and no `Accept`:
    /// for callers that want another representation than JSON.
    pub fn raw_request(&self, method: Method, segments: &[&str]) -> (Url, RequestBuilder) {
        let url = self.path(segments);
        let mut req = self.http.request(method, url.clone());
        if matches!(self.endpoint.transport, endpoint::Transport::Tcp(_))
            && let Some(token) = self.token()
        {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        (url, req)
    }

    /// The host (`GET /xend/node`).
    pub async fn node(&self) -> Result<NodeInfo> {
        self.get_json(self.path(&["node"]), &[]).await
    }

    /// Names of all domains (`GET /xend/domain`).
    pub async fn domain_names(&self) -> Result<Vec<String>> {
        self.get_json(self.path(&["domain"]), &[]).await
    }

    /// One domain by name or id (`GET /xend/domain/DOM`).
    pub async fn domain(&self, dom: &str) -> Result<DomainStats> {
        self.get_json(self.path(&["domain", dom]), &[]).await
    }

    /// The host and every domain in one request (`GET /xend/domain?op=stats`).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        self.get_json(self.path(&["domain"]), &[("op", "stats")])
            .await
    }

    /// The stored config of a domain (`GET /xend/domain/DOM?op=config`).
    pub async fn config(&self, dom: &str, format: ConfigFormat) -> Result<String> {
        let mut query = vec![("op", "config")];
        if format == ConfigFormat::Xm {
            query.push(("format", "xm"));
        }
        self.get_text(self.path(&["domain", dom]), &query).await
    }

    /// Creates a domain from a config (SXP or `key = value` text) and returns it.
    pub async fn create(&self, config: &str) -> Result<DomainStats> {
        self.create_with(config, false).await
    }

    /// Creates a domain that stays paused before its first instruction
    /// (`xm create -p`) until it is unpaused.
    pub async fn create_paused(&self, config: &str) -> Result<DomainStats> {
        self.create_with(config, true).await
    }

    async fn create_with(&self, config: &str, paused: bool) -> Result<DomainStats> {
        let url = self.path(&["domain"]);
        let paused = if paused { "1" } else { "0" };
        let resp = self
            .post(
                url.clone(),
                &[("op", "create"), ("config", config), ("paused", paused)],
            )
            .await?;
        decode_json(&url, resp).await
    }

    /// Replaces a domain's config; says which fields changed live and which wait
    /// for the next boot.
    pub async fn configure(&self, dom: &str, config: &str) -> Result<ConfigureResult> {
        let url = self.path(&["domain", dom]);
        let resp = self
            .post(url.clone(), &[("op", "configure"), ("config", config)])
            .await?;
        decode_json(&url, resp).await
    }

    /// Pauses a domain.
    pub async fn pause(&self, dom: &str) -> Result<()> {
        self.domain_op(dom, &[("op", "pause")]).await
    }

    /// Unpauses a domain.
    pub async fn unpause(&self, dom: &str) -> Result<()> {
        self.domain_op(dom, &[("op", "unpause")]).await
    }

    /// Asks a domain to shut down for `reason`.
    pub async fn shutdown(&self, dom: &str, reason: ShutdownReason) -> Result<()> {
        self.domain_op(dom, &[("op", "shutdown"), ("reason", reason.as_str())])
            .await
    }

    /// Destroys a domain at once.
    pub async fn destroy(&self, dom: &str) -> Result<()> {
        self.domain_op(dom, &[("op", "destroy")]).await
    }

    /// Pins vCPU `vcpu` of a domain to the host CPUs `cpus` (empty = all CPUs).
    pub async fn pincpu(&self, dom: &str, vcpu: u32, cpus: &[usize]) -> Result<()> {
        let vcpu = vcpu.to_string();
        let map = cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.domain_op(dom, &[("op", "pincpu"), ("vcpu", &vcpu), ("cpumap", &map)])
            .await
    }

    /// Sets a domain's maximum memory, MiB.
    pub async fn maxmem_set(&self, dom: &str, mib: u64) -> Result<()> {
        let mib = mib.to_string();
        self.domain_op(dom, &[("op", "maxmem_set"), ("memory", &mib)])
            .await
    }

    /// A domain's credit-scheduler weight and cap (`op=sched_credit`),
    /// after setting those given.
    pub async fn sched_credit(
        &self,
        dom: &str,
        weight: Option<u32>,
        cap: Option<u32>,
    ) -> Result<crate::api::SchedCredit> {
        let (w, c) = (weight.map(|w| w.to_string()), cap.map(|c| c.to_string()));
        let mut form = vec![("op", "sched_credit")];
        if let Some(w) = &w {
            form.push(("weight", w));
        }
        if let Some(c) = &c {
            form.push(("cap", c));
        }
        let url = self.path(&["domain", dom]);
        let resp = self.post(url.clone(), &form).await?;
        decode_json(&url, resp).await
    }

    /// Sets a domain's memory target, MiB.
    pub async fn mem_target_set(&self, dom: &str, mib: u64) -> Result<()> {
        let mib = mib.to_string();
        self.domain_op(dom, &[("op", "mem_target_set"), ("target", &mib)])
            .await
    }

    /// Console ports in use (`GET /xend/console`).
    pub async fn consoles(&self) -> Result<Vec<u16>> {
        let url = self.path(&["console"]);
        let value: serde_json::Value = self.get_json(url.clone(), &[]).await?;
        console_ports(&value).ok_or_else(|| Error::Decode {
            url: url.to_string(),
            detail: format!("expected a list of console ports, got {value}"),
        })
    }

    /// The hypervisor log (`GET /xend/node/dmesg`).
    pub async fn dmesg(&self) -> Result<String> {
        self.get_text(self.path(&["node", "dmesg"]), &[]).await
    }

    /// Clears the hypervisor log.
    pub async fn dmesg_clear(&self) -> Result<()> {
        let url = self.path(&["node", "dmesg"]);
        self.post(url, &[("op", "clear")]).await.map(drop)
    }

    /// xend's own log (`GET /xend/node/log`).
    pub async fn log(&self) -> Result<String> {
        self.get_text(self.path(&["node", "log"]), &[]).await
    }

    /// Subscribes to xend's events (`GET /xend/event?op=stream`). The stream ends
    /// when xend closes the connection; an item is an error when a line cannot be
    /// read or decoded.
    pub async fn events(&self) -> Result<EventStream> {
        let url = self.path(&["event"]);
        let req = self
            .request(Method::GET, url.clone())
            .query(&[("op", "stream")]);
        let resp = self.send(&url, req).await?;
        let resp = check(resp).await?;
        Ok(EventStream {
            url: url.to_string(),
            body: Box::pin(resp.bytes_stream().map(|chunk| chunk.map(|b| b.to_vec()))),
            buf: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        })
    }

    /// A request that could not be sent: xend unreachable (named as the user
    /// gave it), the local socket refused to this user, or a transport error.
    pub fn send_error(&self, url: &Url, source: reqwest::Error) -> Error {
        if !source.is_connect() {
            return transport_error(url, source);
        }
        let kind = io_kind(&source);
        if let endpoint::Transport::Unix(path) = &self.endpoint.transport
            && kind == Some(std::io::ErrorKind::PermissionDenied)
        {
            return Error::LocalDenied {
                path: path.display().to_string(),
            };
        }
        let nobody_there = matches!(
            kind,
            None | Some(
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::TimedOut
            )
        );
        if nobody_there {
            return Error::Connect {
                url: self.display.clone(),
                source,
            };
        }
        // Something answered but the connection failed: say why (a TLS
        // certificate that is not trusted, a reset, ...).
        Error::Unreachable {
            url: self.display.clone(),
            detail: innermost(&source),
        }
    }

    fn path(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("base URL checked to be http(s)");
            path.pop_if_empty().push("xend");
            path.extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut req = self
            .http
            .request(method, url)
            .header(ACCEPT, "application/json");
        if matches!(self.endpoint.transport, endpoint::Transport::Tcp(_))
            && let Some(token) = self.token()
        {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        req
    }

    async fn send(&self, url: &Url, req: RequestBuilder) -> Result<Response> {
        req.send()
            .await
            .map_err(|source| self.send_error(url, source))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        query: &[(&str, &str)],
    ) -> Result<T> {
        let req = self
            .request(Method::GET, url.clone())
            .query(query)
            .timeout(REQUEST_TIMEOUT);
        let resp = self.send(&url, req).await?;
        decode_json(&url, resp).await
    }

    async fn get_text(&self, url: Url, query: &[(&str, &str)]) -> Result<String> {
        let req = self
            .request(Method::GET, url.clone())
            .query(query)
            .timeout(REQUEST_TIMEOUT);
        let resp = self.send(&url, req).await?;
        let resp = check(resp).await?;
        resp.text()
            .await
            .map_err(|source| transport_error(&url, source))
    }

    /// Saves a domain to `file` inside xend's save directory; the domain ends.
    pub async fn save(&self, dom: &str, file: &str) -> Result<crate::api::SaveReply> {
        let url = self.path(&["domain", dom]);
        let resp = self
            .post_within(url.clone(), &[("op", "save"), ("file", file)], MOVE_TIMEOUT)
            .await?;
        decode_json(&url, resp).await
    }

    /// Migrates a domain to the xend at `destination` (`HOST[:PORT]`),
    /// live (pre-copy) or stop-and-copy.
    pub async fn migrate(
        &self,
        dom: &str,
        destination: &str,
        live: bool,
    ) -> Result<crate::api::MigrateReply> {
        let url = self.path(&["domain", dom]);
        let form = [
            ("op", "migrate"),
            ("destination", destination),
            ("live", if live { "1" } else { "0" }),
        ];
        let resp = self.post_within(url.clone(), &form, MOVE_TIMEOUT).await?;
        decode_json(&url, resp).await
    }

    async fn post(&self, url: Url, form: &[(&str, &str)]) -> Result<Response> {
        self.post_within(url, form, REQUEST_TIMEOUT).await
    }

    async fn post_within(
        &self,
        url: Url,
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response> {
        let req = self
            .request(Method::POST, url.clone())
            .form(form)
            .timeout(timeout);
        let resp = self.send(&url, req).await?;
        check(resp).await
    }

    async fn domain_op(&self, dom: &str, form: &[(&str, &str)]) -> Result<()> {
        self.post(self.path(&["domain", dom]), form).await.map(drop)
    }
}

/// The message of the deepest cause of `e`.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The kind of the I/O error at the bottom of `e`, if there is one.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

fn transport_error(url: &Url, source: reqwest::Error) -> Error {
    if source.is_connect() {
        let mut base = url.clone();
        base.set_path("");
        base.set_query(None);
        let base = base.as_str().trim_end_matches('/').to_owned();
        Error::Connect { url: base, source }
    } else {
        Error::Http {
            url: url.to_string(),
            source,
        }
    }
}

async fn check(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    Err(Error::Api {
        status: status.as_u16(),
        message: error_message(status, &body),
    })
}

async fn decode_json<T: serde::de::DeserializeOwned>(url: &Url, resp: Response) -> Result<T> {
    let resp = check(resp).await?;
    let bytes = resp
        .bytes()
        .await
        .map_err(|source| transport_error(url, source))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
        url: url.to_string(),
        detail: format!(
            "{e} in {:?}",
            truncate(&String::from_utf8_lossy(&bytes), 200)
        ),
    })
}

/// The server's message out of an error body: `{"error": msg}`,
/// `(xend.err 'msg')`, or the text itself.
fn error_message(status: StatusCode, body: &str) -> String {
    let body = body.trim();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body)
        && let Some(serde_json::Value::String(msg)) = map.get("error")
    {
        return msg.clone();
    }
    if let Some(rest) = body
        .strip_prefix("(xend.err")
        .and_then(|r| r.strip_suffix(')'))
    {
        let rest = rest.trim();
        let unquoted = rest
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
            .unwrap_or(rest);
        return unquoted.replace("\\'", "'").replace("\\\"", "\"");
    }
    if body.is_empty() {
        return format!("xend answered {status}");
    }
    truncate(body, 500).to_owned()
}

fn console_ports(value: &serde_json::Value) -> Option<Vec<u16>> {
    let list = match value {
        serde_json::Value::Array(list) => list,
        serde_json::Value::Object(map) => map.get("consoles")?.as_array()?,
        _ => return None,
    };
    list.iter()
        .map(|item| match item {
            serde_json::Value::Object(map) => ["console_port", "port", "local_port"]
                .iter()
                .find_map(|k| map.get(*k).and_then(serde_json::Value::as_u64)),
            other => other.as_u64(),
        })
        .map(|port| port.and_then(|p| u16::try_from(p).ok()))
        .collect()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        #[track_caller]
        fn check(input: &str, expected: &str) {
            assert_eq!(Client::new(input, None).unwrap().url(), expected, "{input}");
        }
        check("http://127.0.0.1:8000", "http://127.0.0.1:8000");
        check("http://127.0.0.1:8000/", "http://127.0.0.1:8000");
        check("localhost:9000", "http://localhost:9000");
        check("http://h:1/xend/", "http://h:1");
        assert!(Client::new("ftp://h", None).is_err());
        assert!(Client::new("http://", None).is_err());
    }

    #[test]
    fn paths_escape_names() {
        let c = Client::new("http://h:1", None).unwrap();
        assert_eq!(
            c.path(&["domain", "a/b c"]).as_str(),
            "http://h:1/xend/domain/a%2Fb%20c"
        );
        assert_eq!(c.path(&["node"]).as_str(), "http://h:1/xend/node");
    }

    #[test]
    fn error_bodies() {
        let s = StatusCode::NOT_FOUND;
        assert_eq!(
            error_message(s, r#"{"error": "invalid domain:foo"}"#),
            "invalid domain:foo"
        );
        assert_eq!(
            error_message(s, "(xend.err 'invalid domain:foo')"),
            "invalid domain:foo"
        );
        assert_eq!(error_message(s, "plain text\n"), "plain text");
        assert_eq!(error_message(s, ""), "xend answered 404 Not Found");
    }

    #[test]
    fn console_lists() {
        let v = serde_json::json!([9601, 9602]);
        assert_eq!(console_ports(&v), Some(vec![9601, 9602]));
        let v = serde_json::json!([{"console_port": 9603}]);
        assert_eq!(console_ports(&v), Some(vec![9603]));
        assert_eq!(console_ports(&serde_json::json!("x")), None);
    }

    #[tokio::test]
    async fn refused_connection_names_the_url() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let err = Client::new(&url, None)
            .unwrap()
            .snapshot()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("Error connecting to xend, is xend running? ({url})")
        );
    }
}
