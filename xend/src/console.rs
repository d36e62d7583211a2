//! Domain consoles: one TCP listener per domain bridged to the VMM's console
//! stream. Raw bytes both ways; the last 64 KiB of output is kept and flushed to
//! a client when it connects; one client at a time (a second one is told
//! `Cannot connect to console <id> on domain <dom>` and closed); every byte of
//! output is also appended to the domain's console log. The hub outlives VMM
//! instances: on a reboot-restart the new VMM's stream is attached to the same
//! listener, client and log.
//!
//! Console logs belong to one domain lifetime: `<dir>/<domid>-<lifetime>.log`,
//! where the lifetime stamp is the creation time in milliseconds since the
//! epoch, kept in the domain's DB record so that a re-adopted domain goes on
//! writing its own file. A new domain's log is created new (`O_EXCL`), so a
//! domain that reuses an id never starts with another domain's output; of the
//! older lifetimes of that id only the newest log is kept.
//!
//! Every buffer a client or the guest can fill is bounded, so xend's memory
//! does not depend on what anybody sends:
//!
//! - Input: at most [`INPUT_BUFFER`] bytes wait between the client's socket
//!   and the VMM's console stream. When the VMM does not take them (the guest
//!   is paused or slow), xend stops reading the client's socket, and TCP flow
//!   control holds the client back. Input with no VMM attached is discarded.
//!   While held back, a client that leaves is noticed only when it resets the
//!   connection (its FIN waits behind its unread data); the console clients
//!   do that when they leave with input held back, and `op=disconnect` or
//!   the domain's end frees the console in any case.
//! - Output: the history is [`HISTORY_BYTES`]; a client that falls more than
//!   [`CLIENT_QUEUE_BYTES`] (or [`CLIENT_QUEUE`] chunks) behind is dropped.
//!
//! Each buffer belongs to its client or VMM stream and is freed with it.
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::{TcpListener, TcpStream, UnixStream};

use crate::tcpconn::TlsServer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::ConsoleInfo;
use crate::events::EventBus;
use crate::fsutil::{Create, FileModes};
use crate::log::RotatingFile;

/// Output kept for new clients.
pub const HISTORY_BYTES: usize = 64 * 1024;
/// Chunks queued for a client before it counts as stuck and is dropped.
pub const CLIENT_QUEUE: usize = 4096;
/// Output bytes queued for a client before it counts as stuck and is dropped.
pub const CLIENT_QUEUE_BYTES: usize = 4 << 20;
/// Client input buffered on its way to the VMM; past it xend stops reading
/// the client's socket until the VMM takes some.
pub const INPUT_BUFFER: usize = 64 * 1024;
/// Size of one input read (so [`INPUT_BUFFER`] is this many chunks deep).
const INPUT_CHUNK: usize = 4096;
/// Console log files rotate at this size (one old file kept).
const LOG_BYTES: u64 = 4 << 20;
/// How long a client has to send its token line.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors creating a console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The port is taken.
    #[error("console port in use: {0}")]
    PortInUse(u16),
    /// Binding failed otherwise.
    #[error("cannot listen on console port {port}")]
    Bind {
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Which lifetime's log a console writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// A new domain: a new log file, named from the time now.
    New,
    /// The domain whose lifetime has this stamp (re-adopted, or restarted):
    /// append to its log.
    Continue(u64),
}

/// Where a console's log goes.
#[derive(Clone, Debug)]
pub struct LogSpec {
    /// The console log directory (`<state-dir>/console`).
    pub dir: PathBuf,
    /// New or continued lifetime.
    pub lifetime: Lifetime,
    /// Modes of the file.
    pub modes: FileModes,
}

/// The console log of lifetime `stamp` of domain `domid`.
pub fn log_path(dir: &Path, domid: u32, stamp: u64) -> PathBuf {
    dir.join(format!("{domid}-{stamp}.log"))
}

/// The lifetime stamp of a console log file name of `domid`
/// (`<domid>-<stamp>.log` or its rotated `.log.1`).
fn stamp_of(file: &str, domid: u32) -> Option<u64> {
    let rest = file.strip_prefix(&format!("{domid}-"))?;
    let stamp = rest
        .strip_suffix(".log")
        .or_else(|| rest.strip_suffix(".log.1"))?;
    stamp.parse().ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Open the log `spec` names for domain `domid`: returns the lifetime stamp
/// and the file (none when it cannot be opened; that is logged).
fn open_log(spec: &LogSpec, domid: u32) -> (u64, Option<RotatingFile>) {
    let opened = |stamp, how| {
        let path = log_path(&spec.dir, domid, stamp);
        RotatingFile::open_as(&path, how, LOG_BYTES, 1, spec.modes).map_err(|e| (path, e))
    };
    let warn = |(path, e): (PathBuf, std::io::Error)| {
        tracing::warn!("console log {}: {e}", path.display());
    };
    match spec.lifetime {
        Lifetime::Continue(stamp) => (stamp, opened(stamp, Create::Append).map_err(warn).ok()),
        Lifetime::New => {
            // Later than every earlier lifetime of this id, even if the clock
            // went back; two lifetimes within a millisecond take the next one.
            let newest = logs_of(&spec.dir, domid)
                .into_iter()
                .filter_map(|(_, s)| s)
                .max();
            let mut stamp = newest.map_or(0, |s| s + 1).max(now_ms());
            for _ in 0..1000 {
                match opened(stamp, Create::New) {
                    Ok(f) => {
                        prune_logs(&spec.dir, domid, stamp);
                        return (stamp, Some(f));
                    }
                    Err((_, e)) if e.kind() == std::io::ErrorKind::AlreadyExists => stamp += 1,
                    Err(e) => {
                        warn(e);
                        break;
                    }
                }
            }
            (stamp, None)
        }
    }
}

/// The console log files of `domid` in `dir` with their lifetime stamps
/// (`None`: a `<domid>.log` of an earlier xend version).
fn logs_of(dir: &Path, domid: u32) -> Vec<(String, Option<u64>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|f| {
            let legacy = f == format!("{domid}.log") || f == format!("{domid}.log.1");
            match stamp_of(&f, domid) {
                Some(s) => Some((f, Some(s))),
                None if legacy => Some((f, None)),
                None => None,
            }
        })
        .collect()
}

/// A new lifetime `current` of `domid` began: keep the newest older lifetime's
/// log (the previous domain with this id, for a look at how it ended) and
/// remove the rest, including the `<domid>.log` of earlier xend versions.
fn prune_logs(dir: &Path, domid: u32, current: u64) {
    let files = logs_of(dir, domid);
    let previous = files
        .iter()
        .filter_map(|(_, s)| *s)
        .filter(|s| *s < current)
        .max();
    for (f, stamp) in files {
        let keep = matches!(stamp, Some(s) if s == current || Some(s) == previous);
        if !keep {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }
}

struct Client {
    serial: u64,
    peer: SocketAddr,
    tx: mpsc::Sender<Vec<u8>>,
    /// Output bytes queued in `tx` and not yet written to the socket.
    queued: Arc<AtomicUsize>,
    tasks: [JoinHandle<()>; 2],
}

impl Client {
    /// Queue output for the client; false when it is too far behind.
    fn offer(&self, bytes: &[u8]) -> bool {
        let queued = self.queued.load(Ordering::Relaxed);
        if queued + bytes.len() > CLIENT_QUEUE_BYTES {
            return false;
        }
        self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        self.tx.try_send(bytes.to_vec()).is_ok()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Default)]
struct Inner {
    history: VecDeque<u8>,
    client: Option<Client>,
    serial: u64,
    /// Input to the current VMM stream (bounded: see [`INPUT_BUFFER`]).
    to_vmm: Option<mpsc::Sender<Vec<u8>>>,
    vmm_tasks: Vec<JoinHandle<()>>,
    listener: Option<JoinHandle<()>>,
    closed: bool,
    log: Option<RotatingFile>,
}

/// One domain's console.
pub struct ConsoleHub {
    /// TCP port.
    pub port: u16,
    /// Domain id.
    pub domid: u32,
    /// The lifetime stamp of its log (see the module doc).
    pub lifetime: u64,
    name: String,
    token: Option<Arc<String>>,
    tls: Option<TlsServer>,
    events: EventBus,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ConsoleHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleHub")
            .field("port", &self.port)
            .field("domid", &self.domid)
            .finish_non_exhaustive()
    }
}

impl ConsoleHub {
    /// Listen on `addr:port` for domain `domid` and log output as `log` says;
    /// clients must send `token` first, inside TLS when `tls` is given.
    pub async fn bind(
        (addr, port): (&str, u16),
        domid: u32,
        name: &str,
        log: &LogSpec,
        (token, tls): (Option<Arc<String>>, Option<TlsServer>),
        events: EventBus,
    ) -> Result<Arc<ConsoleHub>, ConsoleError> {
        let listener = TcpListener::bind((addr, port)).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                ConsoleError::PortInUse(port)
            } else {
                ConsoleError::Bind { port, source }
            }
        })?;
        let (lifetime, log) = open_log(log, domid);
        let hub = Arc::new(ConsoleHub {
            port,
            domid,
            lifetime,
            name: name.to_string(),
            token,
            tls,
            events,
            inner: Mutex::new(Inner {
                log,
                ..Inner::default()
            }),
        });
        let weak = Arc::downgrade(&hub);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let Some(hub) = weak.upgrade() else { return };
                tokio::spawn(async move { hub.accept(stream, peer).await });
            }
        });
        hub.lock().listener = Some(task);
        Ok(hub)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn accept(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let what = format!("console {}", self.port);
        let Some(mut stream) = crate::tcpconn::accept(stream, self.tls.as_ref(), &what, peer).await
        else {
            return;
        };
        if let Some(token) = &self.token {
            match tokio::time::timeout(TOKEN_TIMEOUT, crate::tcpconn::read_line(&mut stream)).await
            {
                Ok(Some(line))
                    if crate::auth::same(line.trim_end().as_bytes(), token.as_bytes()) => {}
                _ => {
                    tracing::warn!("console {}: {peer} sent no valid token", self.port);
                    let _ = stream
                        .write_all(crate::api::CONSOLE_REFUSAL.as_bytes())
                        .await;
                    return;
                }
            }
        }
        let watcher = match stream.watcher() {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("console {}: {peer}: {e}", self.port);
                return;
            }
        };
        let (mut rd, mut wr) = tokio::io::split(stream);
        let busy = {
            let inner = self.lock();
            if inner.closed {
                return;
            }
            inner.client.is_some()
        };
        if busy {
            tracing::info!("console {}: refused second client {peer}", self.port);
            let msg = format!(
                "Cannot connect to console {} on domain {}\r\n",
                self.domid, self.domid
            );
            let _ = wr.write_all(msg.as_bytes()).await;
            let _ = wr.shutdown().await;
            return;
        }
        let mut inner = self.lock();
        if inner.client.is_some() {
            return;
        }
        inner.serial += 1;
        let serial = inner.serial;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CLIENT_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let history: Vec<u8> = inner.history.iter().copied().collect();
        if !history.is_empty() {
            queued.fetch_add(history.len(), Ordering::Relaxed);
            let _ = tx.try_send(history);
        }
        let written = Arc::clone(&queued);
        let writer = tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
                written.fetch_sub(chunk.len(), Ordering::Relaxed);
            }
            let _ = wr.shutdown().await;
        });
        let weak = Arc::downgrade(&self);
        let reader = tokio::spawn(async move {
            loop {
                // A new buffer per read: it moves into the bounded queue.
                let mut buf = vec![0u8; INPUT_CHUNK];
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.truncate(n);
                // No strong reference while waiting: the hub may go away.
                let to_vmm = match weak.upgrade() {
                    Some(hub) => hub.lock().to_vmm.clone(),
                    None => return,
                };
                // Waits while the VMM is behind: this is the backpressure
                // (the socket is not read meanwhile). A VMM that went away
                // drops its receiver, and the input with it.
                // Meanwhile only a reset is noticed: a closed client's FIN
                // waits behind the data not yet read (console clients reset
                // a connection they leave while input is held back).
                if let Some(to_vmm) = to_vmm {
                    tokio::select! {
                        _ = to_vmm.send(buf) => {}
                        _ = watcher.ready(Interest::ERROR) => break,
                    }
                }
            }
            if let Some(hub) = weak.upgrade() {
                hub.drop_client(serial);
            }
        });
        inner.client = Some(Client {
            serial,
            peer,
            tx,
            queued,
            tasks: [writer, reader],
        });
        drop(inner);
        tracing::info!("console {}: client {peer} connected", self.port);
        self.events.domain(
            "xend.console.connect",
            self.domid,
            &self.name,
            Some(peer.to_string()),
        );
    }

    fn drop_client(&self, serial: u64) {
        let mut inner = self.lock();
        if inner.client.as_ref().is_some_and(|c| c.serial == serial) {
            let c = inner.client.take();
            drop(inner);
            if let Some(c) = c {
                self.disconnected(&c);
            }
        }
    }

    fn disconnected(&self, c: &Client) {
        tracing::info!("console {}: client {} disconnected", self.port, c.peer);
        self.events.domain(
            "xend.console.disconnect",
            self.domid,
            &self.name,
            Some(c.peer.to_string()),
        );
    }

    /// Guest output: keep it, log it, pass it on to the client.
    pub fn output(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        if let Some(log) = inner.log.as_mut() {
            let _ = log.write_all(bytes);
        }
        let h = &mut inner.history;
        h.extend(bytes);
        if h.len() > HISTORY_BYTES {
            let excess = h.len() - HISTORY_BYTES;
            h.drain(..excess);
        }
        let stuck = match &inner.client {
            Some(c) => !c.offer(bytes),
            None => false,
        };
        if stuck {
            let c = inner.client.take();
            drop(inner);
            if let Some(c) = c {
                tracing::warn!("console {}: client {} too slow; dropped", self.port, c.peer);
                self.disconnected(&c);
            }
        }
    }

    /// Attach a VMM console stream (the connection after its `console` reply).
    /// Replaces the previous one, keeping the listener and the client.
    pub fn attach_vmm(self: &Arc<Self>, reader: BufReader<UnixStream>) {
        let buffered = reader.buffer().to_vec();
        let stream = reader.into_inner();
        let (mut rd, mut wr) = stream.into_split();
        if !buffered.is_empty() {
            self.output(&buffered);
        }
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(INPUT_BUFFER / INPUT_CHUNK);
        let writer = tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let weak = Arc::downgrade(self);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => match weak.upgrade() {
                        Some(hub) => hub.output(&buf[..n]),
                        None => return,
                    },
                }
            }
        });
        let mut inner = self.lock();
        for t in inner.vmm_tasks.drain(..) {
            t.abort();
        }
        inner.vmm_tasks = vec![writer, reader];
        inner.to_vmm = Some(tx);
    }

    /// The VMM instance is gone: let its console stream drain to its end (at
    /// most `timeout`), then detach. The listener and client stay.
    pub async fn finish_vmm(&self, timeout: Duration) {
        let reader = {
            let mut inner = self.lock();
            inner.to_vmm = None;
            inner.vmm_tasks.pop()
        };
        if let Some(mut reader) = reader
            && tokio::time::timeout(timeout, &mut reader).await.is_err()
        {
            reader.abort();
        }
        self.detach_vmm();
    }

    /// Detach from the VMM (its instance is gone); the listener stays.
    pub fn detach_vmm(&self) {
        let mut inner = self.lock();
        for t in inner.vmm_tasks.drain(..) {
            t.abort();
        }
        inner.to_vmm = None;
    }

    /// Drop the connected client, if any (`op=disconnect`).
    pub fn disconnect(&self) -> bool {
        let c = self.lock().client.take();
        match c {
            Some(c) => {
                self.disconnected(&c);
                true
            }
            None => false,
        }
    }

    /// Close everything: client, listener, VMM stream (the domain is gone).
    /// Returns once the listening socket is closed, so the port can be bound
    /// again at once (e.g. by the next domain with the same id).
    pub async fn close(&self) {
        let (client, listener) = {
            let mut inner = self.lock();
            inner.closed = true;
            for t in inner.vmm_tasks.drain(..) {
                t.abort();
            }
            inner.to_vmm = None;
            (inner.client.take(), inner.listener.take())
        };
        if let Some(c) = client {
            self.disconnected(&c);
        }
        if let Some(l) = listener {
            l.abort();
            let _ = l.await;
        }
    }

    /// The console sxpr fields.
    pub fn info(&self) -> ConsoleInfo {
        let inner = self.lock();
        let status = if inner.closed {
            "closed"
        } else if inner.client.is_some() {
            "connected"
        } else {
            "listening"
        };
        ConsoleInfo {
            status: status.to_string(),
            id: self.domid,
            domain: self.domid,
            local_port: self.domid,
            remote_port: 1,
            console_port: self.port,
            connected: inner.client.as_ref().map(|c| c.peer.to_string()),
        }
    }
}

impl Drop for ConsoleHub {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        for t in inner.vmm_tasks.drain(..) {
            t.abort();
        }
        if let Some(l) = inner.listener.take() {
            l.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, lifetime: Lifetime) -> LogSpec {
        LogSpec {
            dir: dir.to_path_buf(),
            lifetime,
            modes: FileModes::default(),
        }
    }

    #[test]
    fn each_lifetime_has_its_own_log_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("3.log"), "legacy").unwrap();
        std::fs::write(d.join("30-5.log"), "another id").unwrap();
        let (a, f) = open_log(&spec(d, Lifetime::New), 3);
        f.unwrap().write_all(b"first domain\n").unwrap();
        assert!(!d.join("3.log").exists(), "legacy log pruned");
        // The same id again, as fast as possible: a new, empty file.
        let (b, f) = open_log(&spec(d, Lifetime::New), 3);
        assert!(b > a);
        let mut f = f.unwrap();
        assert_eq!(std::fs::read(f.path()).unwrap(), b"");
        f.write_all(b"second domain\n").unwrap();
        // Re-adoption continues the same file.
        let (c, f) = open_log(&spec(d, Lifetime::Continue(b)), 3);
        assert_eq!(c, b);
        f.unwrap().write_all(b"more\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(log_path(d, 3, b)).unwrap(),
            "second domain\nmore\n"
        );
        // A third lifetime keeps only the previous one, and comes after it
        // even if the clock went back.
        std::fs::write(log_path(d, 3, u64::MAX / 2), "from the future").unwrap();
        let (e, _) = open_log(&spec(d, Lifetime::New), 3);
        assert_eq!(e, u64::MAX / 2 + 1);
        assert!(log_path(d, 3, u64::MAX / 2).exists());
        assert!(!log_path(d, 3, b).exists());
        let (e, _) = open_log(&spec(d, Lifetime::New), 3);
        assert_eq!(e, u64::MAX / 2 + 2);
        assert!(!log_path(d, 3, a).exists());
        assert!(log_path(d, 3, e - 1).exists() && log_path(d, 3, e).exists());
        assert!(d.join("30-5.log").exists(), "other ids untouched");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(log_path(d, 3, e))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(stamp_of("3-17.log.1", 3), Some(17));
        assert_eq!(stamp_of("33-17.log", 3), None);
        assert_eq!(stamp_of("3-x.log", 3), None);
    }
}
