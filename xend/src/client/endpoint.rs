//! Where a client finds xend and how it proves who it is.
//!
//! - A URL given (`-H`, `$XEND_URL`): `http://HOST:PORT`, `https://HOST:PORT`
//!   (the certificate is verified against the system's roots, or only against
//!   `--cacert FILE` / `$XEND_CACERT`), or the local socket as `unix:PATH`
//!   (also a bare absolute path).
//! - No URL: the local socket named by xend's config (`$XEND_CONFIG`, else
//!   `/etc/xen/xend-config.sxp` when it exists, else the built-in defaults):
//!   `xend-unix-path`, by default `/var/run/xend/xend.sock`.
//! - The token (for TCP, and for consoles and the event port on any
//!   transport): `--token`, else `$XEND_TOKEN`, else the token file
//!   (`$XEND_TOKEN_FILE`, else the config's `token-file`) when this user can
//!   read it, read when first needed, so a client started before xend created
//!   the file still finds it.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reqwest::Url;

use super::{Error, Result};
use crate::config::XendConfig;

/// Environment variable naming the token file.
pub const TOKEN_FILE_ENV: &str = "XEND_TOKEN_FILE";
/// Environment variable naming a PEM file of CA certificates to trust
/// instead of the system's.
pub const CACERT_ENV: &str = "XEND_CACERT";

/// How a client reaches xend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP or HTTPS over TCP to this base URL.
    Tcp(Url),
    /// HTTP over the local socket at this path.
    Unix(PathBuf),
}

/// Everything a client needs to reach one xend.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The transport.
    pub transport: Transport,
    /// Where consoles and the event port listen (the URL's host, or the
    /// config's `console-address` for the local socket).
    pub console_host: String,
    /// The token, given or read from the token file.
    pub token: TokenSource,
    /// CA certificates to trust instead of the system's (PEM).
    pub cacert: Option<PathBuf>,
    /// TLS on consoles and the event port (see [`crate::config::console_tls`]).
    pub console_tls: Option<crate::config::ConsoleTls>,
}

/// A token given outright, or a file to read it from when needed.
#[derive(Clone, Debug)]
pub struct TokenSource {
    given: Option<String>,
    file: Option<PathBuf>,
    read: Arc<Mutex<Option<String>>>,
}

impl TokenSource {
    /// A token given outright (`None`: no token).
    pub fn given(token: Option<String>) -> Self {
        TokenSource {
            given: token,
            file: None,
            read: Arc::default(),
        }
    }

    /// The token: the one given, else the token file's when it can be read.
    pub fn get(&self) -> Option<String> {
        if let Some(t) = &self.given {
            return Some(t.clone());
        }
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if read.is_none() {
            *read = self
                .file
                .as_deref()
                .and_then(|f| std::fs::read_to_string(f).ok())
                .and_then(|text| crate::config::parse_token(&text));
        }
        read.clone()
    }
}

/// What a client was told on its command line (each may be absent).
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// xend's URL (`-H`).
    pub url: Option<String>,
    /// The bearer token (`--token`).
    pub token: Option<String>,
    /// CA certificates for `https://` (`--cacert`).
    pub cacert: Option<PathBuf>,
}

impl ClientOptions {
    /// These options, with what is absent taken from the environment and
    /// xend's config file.
    pub fn resolve(&self) -> Result<Endpoint> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let config = crate::config::client_config();
        let url = self.url.clone().or_else(|| env(super::URL_ENV));
        let cacert = self
            .cacert
            .clone()
            .or_else(|| env(CACERT_ENV).map(PathBuf::from));
        let console_tls = crate::config::console_tls(url.as_deref(), cacert.as_deref(), &config);
        let (transport, console_host) = match url {
            Some(url) => {
                let transport = parse_url(&url)?;
                let host = match &transport {
                    Transport::Tcp(u) => u
                        .host_str()
                        .unwrap_or("127.0.0.1")
                        .trim_matches(['[', ']'])
                        .to_string(),
                    Transport::Unix(_) => local_console_host(&config),
                };
                (transport, host)
            }
            None => (
                Transport::Unix(config.unix_path.clone()),
                local_console_host(&config),
            ),
        };
        let token = TokenSource {
            given: self.token.clone().or_else(|| env(super::TOKEN_ENV)),
            file: Some(
                env(TOKEN_FILE_ENV)
                    .map(PathBuf::from)
                    .unwrap_or(config.token_file),
            ),
            read: Arc::default(),
        };
        Ok(Endpoint {
            transport,
            console_host,
            token,
            cacert,
            console_tls,
        })
    }
}

/// Consoles of a local xend listen on its `console-address` (loopback when
/// that is every interface).
fn local_console_host(config: &XendConfig) -> String {
    let addr = config.console_address;
    if addr.is_unspecified() {
        "127.0.0.1".into()
    } else {
        addr.to_string()
    }
}

/// `http(s)://HOST[:PORT]`, a bare `HOST:PORT` (http), `unix:PATH` or an
/// absolute path (the local socket).
pub fn parse_url(url: &str) -> Result<Transport> {
    let bad = |reason: String| Error::BadUrl {
        url: url.to_owned(),
        reason,
    };
    if let Some(path) = url
        .strip_prefix("unix://")
        .or_else(|| url.strip_prefix("unix:"))
        .or_else(|| url.starts_with('/').then_some(url))
    {
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(bad("a unix: URL names an absolute socket path".into()));
        }
        return Ok(Transport::Unix(path.to_path_buf()));
    }
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let mut parsed = Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme '{}' is not http, https or unix",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".to_owned()));
    }
    // A base given as `.../xend` or `.../xend/` means the same as the server root.
    let trimmed = parsed
        .path()
        .trim_end_matches('/')
        .trim_end_matches("/xend")
        .to_owned();
    parsed.set_path(&trimmed);
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(Transport::Tcp(parsed))
}

/// An HTTP client for `endpoint`: its socket, and for HTTPS the CA
/// certificates to trust.
pub fn http_client(endpoint: &Endpoint, user_agent: &str) -> Result<(reqwest::Client, Url)> {
    let bad = |reason: String| Error::BadUrl {
        url: endpoint.display(),
        reason,
    };
    let mut builder = reqwest::Client::builder()
        .connect_timeout(super::CONNECT_TIMEOUT)
        .user_agent(user_agent);
    let base = match &endpoint.transport {
        Transport::Tcp(url) => url.clone(),
        Transport::Unix(path) => {
            builder = builder.unix_socket(path.as_path());
            Url::parse("http://localhost").map_err(|e| bad(e.to_string()))?
        }
    };
    // Loading the system's CA certificates costs a plain-HTTP or socket
    // client a fifth of an `xm list -l` over 500 domains (measured with
    // perf: PEM parsing and a stat of every file in the CA directory), and
    // it never uses them: only an https:// endpoint loads them.
    if base.scheme() != "https" {
        builder = builder.tls_built_in_root_certs(false);
    }
    if let Some(file) = &endpoint.cacert {
        let pem = std::fs::read(file)
            .map_err(|e| bad(format!("cannot read the CA file {}: {e}", file.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad(format!("{} holds no PEM certificate: {e}", file.display())))?;
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let http = builder
        .build()
        .map_err(|e| bad(format!("cannot build an HTTP client ({e})")))?;
    Ok((http, base))
}

impl Endpoint {
    /// How the endpoint is shown to people: the URL, or `unix:PATH`.
    pub fn display(&self) -> String {
        match &self.transport {
            Transport::Tcp(u) => u.as_str().trim_end_matches('/').to_string(),
            Transport::Unix(p) => format!("unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_sockets() {
        assert_eq!(
            parse_url("unix:/run/x.sock").unwrap(),
            Transport::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse_url("unix:///run/x.sock").unwrap(),
            Transport::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse_url("/run/x.sock").unwrap(),
            Transport::Unix("/run/x.sock".into())
        );
        assert!(parse_url("unix:rel.sock").is_err());
        let Transport::Tcp(u) = parse_url("https://h:8443/xend/").unwrap() else {
            panic!("tcp expected")
        };
        assert_eq!(u.as_str(), "https://h:8443/");
        assert!(parse_url("ftp://h").is_err());
    }

    #[test]
    fn a_token_file_is_read_when_first_needed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        let source = TokenSource {
            given: None,
            file: Some(file.clone()),
            read: Arc::default(),
        };
        assert_eq!(source.get(), None);
        std::fs::write(&file, "abc\n").unwrap();
        assert_eq!(source.get().as_deref(), Some("abc"));
        assert_eq!(
            TokenSource::given(Some("x".into())).get().as_deref(),
            Some("x")
        );
    }
}
