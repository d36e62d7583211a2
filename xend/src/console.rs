//! Domain consoles: one TCP listener per domain bridged to the VMM's console
//! stream. Raw bytes both ways; the last 64 KiB of output is kept and flushed to
//! a client when it connects; one client at a time (a second one is told
//! `Cannot connect to console <id> on domain <dom>` and closed); every byte of
//! output is also appended to a per-domain log file. The hub outlives VMM
//! instances: on a reboot-restart the new VMM's stream is attached to the same
//! listener and client.
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::ConsoleInfo;
use crate::events::EventBus;
use crate::log::RotatingFile;

/// Output kept for new clients.
pub const HISTORY_BYTES: usize = 64 * 1024;
/// Chunks queued for a client before it counts as stuck and is dropped.
const CLIENT_QUEUE: usize = 4096;
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

struct Client {
    serial: u64,
    peer: SocketAddr,
    tx: mpsc::Sender<Vec<u8>>,
    tasks: [JoinHandle<()>; 2],
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
    to_vmm: Option<mpsc::UnboundedSender<Vec<u8>>>,
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
    name: String,
    token: Option<Arc<String>>,
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
    /// Listen on `addr:port` for domain `domid` and log output to `log_path`.
    pub async fn bind(
        addr: &str,
        port: u16,
        domid: u32,
        name: &str,
        log_path: &Path,
        token: Option<Arc<String>>,
        events: EventBus,
    ) -> Result<Arc<ConsoleHub>, ConsoleError> {
        let listener = TcpListener::bind((addr, port)).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                ConsoleError::PortInUse(port)
            } else {
                ConsoleError::Bind { port, source }
            }
        })?;
        let log = RotatingFile::open(log_path, LOG_BYTES, 1)
            .map_err(|e| tracing::warn!("console log {}: {e}", log_path.display()))
            .ok();
        let hub = Arc::new(ConsoleHub {
            port,
            domid,
            name: name.to_string(),
            token,
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

    async fn accept(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        if let Some(token) = &self.token {
            match tokio::time::timeout(TOKEN_TIMEOUT, read_line(&mut stream)).await {
                Ok(Some(line))
                    if crate::auth::same(line.trim_end().as_bytes(), token.as_bytes()) => {}
                _ => {
                    tracing::warn!("console {}: {peer} sent no valid token", self.port);
                    let _ = stream.write_all(b"Authentication failed\r\n").await;
                    return;
                }
            }
        }
        let (mut rd, mut wr) = stream.into_split();
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
        let history: Vec<u8> = inner.history.iter().copied().collect();
        if !history.is_empty() {
            let _ = tx.try_send(history);
        }
        let writer = tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let weak = Arc::downgrade(&self);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let Some(hub) = weak.upgrade() else { return };
                hub.input(&buf[..n]);
            }
            if let Some(hub) = weak.upgrade() {
                hub.drop_client(serial);
            }
        });
        inner.client = Some(Client {
            serial,
            peer,
            tx,
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

    /// Keyboard input from the client, to the VMM.
    fn input(&self, bytes: &[u8]) {
        if let Some(tx) = &self.lock().to_vmm {
            let _ = tx.send(bytes.to_vec());
        }
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
            Some(c) => c.tx.try_send(bytes.to_vec()).is_err(),
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
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
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

/// Read one line byte by byte (so no console input after it is consumed).
async fn read_line(stream: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 4096 {
        match stream.read(&mut byte).await {
            Ok(1) if byte[0] == b'\n' => return String::from_utf8(line).ok(),
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    None
}
