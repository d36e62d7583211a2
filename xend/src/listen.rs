//! The API's listeners: the local Unix socket and the TCP port (plain HTTP or
//! HTTPS), each with its own accept loop built on hyper, so that every
//! connection is bounded (a cap on concurrent connections, a header-read
//! timeout, a TLS handshake deadline) and every request knows its [`Peer`]:
//! which listener it came through and who is on the other end. The access
//! rules that use the peer live in [`crate::auth`].
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// The header timeout while more than half of the connection slots are in
/// use (when shorter than the configured one): slow clients are shed faster
/// when they crowd out others.
pub const BUSY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may take to finish once xend stops.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Who sent a request: attached to every request as an extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A process on this host, through the local socket; the kernel vouches
    /// for its credentials.
    Local {
        /// Its user id.
        uid: u32,
        /// Its primary group id.
        gid: u32,
        /// Its process id, when the kernel says.
        pid: Option<i32>,
    },
    /// A TCP client.
    Tcp {
        /// Its address.
        addr: SocketAddr,
        /// Whether the connection is TLS.
        tls: bool,
    },
}

impl Peer {
    /// True for the local socket.
    pub fn is_local(&self) -> bool {
        matches!(self, Peer::Local { .. })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Local { uid, pid, .. } => match pid {
                Some(pid) => write!(f, "local uid {uid} pid {pid}"),
                None => write!(f, "local uid {uid}"),
            },
            Peer::Tcp { addr, tls: true } => write!(f, "{addr} (TLS)"),
            Peer::Tcp { addr, tls: false } => write!(f, "{addr}"),
        }
    }
}

/// Errors setting up a listener.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The socket could not be created, bound or given its mode.
    #[error("cannot {action} the local API socket {path}")]
    Unix {
        /// What was being done.
        action: &'static str,
        /// The socket path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file where the socket goes is not a socket: xend will not remove it.
    #[error("{0} exists and is not a socket; remove it or set xend-unix-path")]
    NotASocket(String),
    /// The certificate or key could not be read.
    #[error("cannot read TLS {what} {path}")]
    TlsFile {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the certificate and key.
    #[error("TLS certificate {cert} and key {key} do not make a server configuration")]
    Tls {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

/// Bind the local socket at `path`: a stale socket left by a dead xend is
/// replaced (the caller has checked no xend runs), anything else is refused.
/// Mode 0600, or 0660 with group `gid`.
pub fn bind_unix(path: &Path, gid: Option<u32>) -> Result<UnixListener, ListenError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = || path.display().to_string();
    let err = |action| {
        move |source| ListenError::Unix {
            action,
            path: path.display().to_string(),
            source,
        }
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(err("remove the stale"))?;
        }
        Ok(_) => return Err(ListenError::NotASocket(shown())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("inspect")(e)),
    }
    let listener = UnixListener::bind(path).map_err(err("bind"))?;
    let mode = match gid {
        Some(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(err("set the group of"))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(err("set the mode of"))?;
    Ok(listener)
}

/// A TLS acceptor for the PEM certificate chain and key in these files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, ListenError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| ListenError::TlsFile {
            what: "certificate",
            path: cert.display().to_string(),
            source,
        })?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| ListenError::TlsFile {
        what: "key",
        path: key.display().to_string(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|source| ListenError::Tls {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            source,
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// How a listener bounds its connections (from `xend-max-connections`,
/// `xend-header-timeout`, `xend-body-timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a request header may take, and a kept-alive connection idle.
    pub header_timeout: Duration,
    /// How long a request body may take, from its header on.
    pub body_timeout: Duration,
}

/// What every connection of one listener shares.
#[derive(Clone)]
struct Shared {
    app: Router,
    slots: Arc<Semaphore>,
    limits: Limits,
    burst: Arc<Burst>,
}

/// Connections open now and the most open since the heap was last trimmed:
/// when a burst (e.g. a slowloris) has mostly gone, its memory goes back to
/// the system instead of staying in the allocator.
#[derive(Default)]
struct Burst {
    open: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// Bursts smaller than this are not worth a trim.
const BURST: usize = 64;

impl Burst {
    fn opened(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.open.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
    }

    fn closed(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.open.fetch_sub(1, Relaxed) - 1;
        let peak = self.peak.load(Relaxed);
        if peak >= BURST
            && now * 4 <= peak
            && self
                .peak
                .compare_exchange(peak, now, Relaxed, Relaxed)
                .is_ok()
        {
            tokio::task::spawn_blocking(hypervisor::heap::release_free_memory);
        }
    }
}

impl Shared {
    fn new(app: Router, limits: Limits) -> Shared {
        let max = limits.max_connections.max(1);
        Shared {
            app,
            slots: Arc::new(Semaphore::new(max)),
            limits: Limits {
                max_connections: max,
                ..limits
            },
            burst: Arc::default(),
        }
    }

    /// The header timeout for a connection accepted now.
    fn header_timeout(&self) -> Duration {
        if self.slots.available_permits() * 2 < self.limits.max_connections {
            self.limits.header_timeout.min(BUSY_HEADER_TIMEOUT)
        } else {
            self.limits.header_timeout
        }
    }
}

/// Serve `app` on the TCP `listener` (TLS when `tls` is given) until
/// `stopping` turns true, then let open connections finish for up to
/// [`DRAIN`].
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let shared = Shared::new(app, limits);
    let graceful = GracefulShutdown::new();
    while let Some((slot, (stream, addr))) =
        next_connection(&shared, &mut stopping, || listener.accept()).await
    {
        let _ = stream.set_nodelay(true);
        let peer = Peer::Tcp {
            addr,
            tls: tls.is_some(),
        };
        let timeouts = (shared.header_timeout(), shared.limits.body_timeout);
        let (app, watcher, tls) = (shared.app.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Some(acceptor) = tls else {
                return connection(stream, peer, app, timeouts, watcher).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => connection(stream, peer, app, timeouts, watcher).await,
                Ok(Err(e)) => tracing::debug!("TLS handshake with {addr} failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {addr} timed out"),
            }
        });
    }
    drain(graceful).await;
}

/// Serve `app` on the local socket until `stopping` turns true.
pub async fn serve_unix(
    listener: UnixListener,
    app: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let shared = Shared::new(app, limits);
    let graceful = GracefulShutdown::new();
    while let Some((slot, (stream, _))) =
        next_connection(&shared, &mut stopping, || listener.accept()).await
    {
        let peer = match stream.peer_cred() {
            Ok(c) => Peer::Local {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            Err(e) => {
                tracing::warn!("local API client without credentials refused: {e}");
                continue;
            }
        };
        let timeouts = (shared.header_timeout(), shared.limits.body_timeout);
        let (app, watcher) = (shared.app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _slot = slot;
            connection(stream, peer, app, timeouts, watcher).await;
        });
    }
    drain(graceful).await;
}

/// The next connection `accept` gives, with its slot (waiting for a free
/// one first); `None` once xend stops. Failed accepts are logged and retried.
async fn next_connection<T, F, Fut>(
    shared: &Shared,
    stopping: &mut watch::Receiver<bool>,
    accept: F,
) -> Option<(Slot, T)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    loop {
        let slot = acquire(shared, stopping).await?;
        let accepted = tokio::select! {
            r = accept() => r,
            _ = stopping.wait_for(|s| *s) => return None,
        };
        match accepted {
            Ok(conn) => return Some((slot, conn)),
            Err(e) => accept_failed(&e).await,
        }
    }
}

/// A connection's place among a listener's `max_connections`; given back
/// (and counted out of the burst) when dropped.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    burst: Arc<Burst>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.burst.closed();
    }
}

/// A free connection slot, or `None` once xend stops.
async fn acquire(shared: &Shared, stopping: &mut watch::Receiver<bool>) -> Option<Slot> {
    let permit = tokio::select! {
        permit = shared.slots.clone().acquire_owned() => permit.ok()?,
        _ = stopping.wait_for(|s| *s) => return None,
    };
    shared.burst.opened();
    Some(Slot {
        _permit: permit,
        burst: shared.burst.clone(),
    })
}

/// Accepting failed (e.g. out of file descriptors): say so, at most once a
/// second, and give the process a moment before trying again.
async fn accept_failed(e: &std::io::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!("accept error: {e}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Serve one HTTP/1.1 connection to its end (or until xend stops): every
/// request carries `peer`; `(header, body)` are its timeouts.
async fn connection<I>(
    io: I,
    peer: Peer,
    app: Router,
    (header_timeout, body_timeout): (Duration, Duration),
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut req = req.map(|body| DeadlineBody::new(body, body_timeout, read.clone()));
        req.extensions_mut().insert(peer.clone());
        let reply = app.clone().oneshot(req);
        async move {
            let mut resp = reply.await?;
            // Answered before the body was read (401, 413, ...): the
            // connection ends after this reply, so say so, or a client could
            // send its next request on it and see it closed.
            if !read.load(std::sync::atomic::Ordering::Relaxed) {
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!("connection ended: {e}");
    }
}

/// A request body that fails once its deadline passes, so a client that
/// announces a body and never sends it cannot hold a handler forever.
/// It also notes when the body has been read to its end.
struct DeadlineBody {
    inner: Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    read: Arc<std::sync::atomic::AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration, read: Arc<std::sync::atomic::AtomicBool>) -> Self {
        use hyper::body::Body;
        if inner.is_end_stream() {
            read.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
            read,
        }
    }
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

impl hyper::body::Body for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.read.store(true, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Ready(frame) => {
                if this.inner.is_end_stream() {
                    this.read.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

async fn drain(graceful: GracefulShutdown) {
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; stopping anyway");
    }
}
