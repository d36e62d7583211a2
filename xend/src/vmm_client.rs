//! An async client of a VMM's control socket (JSON lines of
//! `hypervisor::control::proto` over a Unix stream).
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hypervisor::control::proto::{DomainInfo, Event, Payload, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long an ordinary request may take before the VMM counts as
/// unresponsive, unless `vmm-timeout` says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The deadline of ordinary requests, milliseconds (`vmm-timeout`).
static REQUEST_TIMEOUT_MS: AtomicU64 = AtomicU64::new(2000);

/// Set the deadline of every ordinary request (`vmm-timeout`; done once at start).
pub fn set_request_timeout(timeout: Duration) {
    let ms = u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    REQUEST_TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// The deadline of ordinary requests (connect, info, pause, ...).
pub fn request_timeout() -> Duration {
    Duration::from_millis(REQUEST_TIMEOUT_MS.load(Ordering::Relaxed))
}

/// A duration as people read it in messages: `2 s`, `0.5 s`, `600 s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{} s", (s * 1000.0).round() / 1000.0)
    }
}

/// Errors talking to a VMM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// The socket cannot be reached or the connection broke.
    #[error("VMM connection failed")]
    Io(#[from] std::io::Error),
    /// The VMM closed the connection.
    #[error("VMM closed the connection")]
    Closed,
    /// The VMM did not answer in time (it is hung, stopped or overloaded).
    #[error("the VMM did not answer within {}", seconds(*.0))]
    Timeout(Duration),
    /// A line that is not a reply.
    #[error("VMM sent a bad reply: {0}")]
    Bad(String),
    /// The VMM refused the request.
    #[error("{0}")]
    Refused(String),
}

impl VmmError {
    /// The failure as a metric label (`/metrics`).
    pub fn kind(&self) -> &'static str {
        match self {
            VmmError::Io(_) => "io",
            VmmError::Closed => "closed",
            VmmError::Timeout(_) => "timeout",
            VmmError::Bad(_) => "bad_reply",
            VmmError::Refused(_) => "refused",
        }
    }
}

/// A control request's name (its `op`), as a metric label.
fn request_name(req: &Request) -> &'static str {
    match req {
        Request::Info => "info",
        Request::Pause => "pause",
        Request::Unpause => "unpause",
        Request::Shutdown { .. } => "shutdown",
        Request::Destroy => "destroy",
        Request::SetMemTarget { .. } => "set_mem_target",
        Request::SetMaxMem { .. } => "set_max_mem",
        Request::PinVcpu { .. } => "pin_vcpu",
        Request::Console { .. } => "console",
        Request::Events => "events",
        Request::Save { .. } => "save",
        Request::Migrate { .. } => "migrate",
        Request::Progress => "progress",
        Request::DeviceAttach { .. } => "device_attach",
        Request::DeviceDetach { .. } => "device_detach",
    }
}

/// One connection to a VMM's control socket.
#[derive(Debug)]
pub struct VmmConn {
    stream: BufReader<UnixStream>,
    line: String,
}

impl VmmConn {
    /// Connect to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<VmmConn, VmmError> {
        let limit = request_timeout();
        let stream = match tokio::time::timeout(limit, UnixStream::connect(path)).await {
            Err(_) => Err(VmmError::Timeout(limit)),
            // A full accept backlog: the VMM has stopped accepting.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(VmmError::Timeout(limit))
            }
            Ok(r) => r.map_err(VmmError::from),
        };
        crate::metrics::observe_vmm_call("connect", stream.as_ref().err().map(VmmError::kind));
        let stream = stream?;
        Ok(VmmConn {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    /// Send `req` and wait for its reply.
    pub async fn request(&mut self, req: &Request) -> Result<Payload, VmmError> {
        self.request_within(req, request_timeout()).await
    }

    /// Send `req` and wait up to `timeout` for its reply (save and migrate
    /// take longer than ordinary requests). After a timeout the connection
    /// is out of step (a late reply may still come): drop it.
    pub async fn request_within(
        &mut self,
        req: &Request,
        timeout: Duration,
    ) -> Result<Payload, VmmError> {
        let r = tokio::time::timeout(timeout, self.request_inner(req))
            .await
            .map_err(|_| VmmError::Timeout(timeout))
            .and_then(|r| r);
        crate::metrics::observe_vmm_call(request_name(req), r.as_ref().err().map(VmmError::kind));
        r
    }

    async fn request_inner(&mut self, req: &Request) -> Result<Payload, VmmError> {
        let mut line = serde_json::to_string(req).map_err(|e| VmmError::Bad(e.to_string()))?;
        line.push('\n');
        self.stream.get_mut().write_all(line.as_bytes()).await?;
        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            return Err(VmmError::Closed);
        }
        match serde_json::from_str::<Reply>(&self.line) {
            Ok(Reply::Ok(p)) => Ok(p),
            Ok(Reply::Error(e)) => Err(VmmError::Refused(e)),
            Err(e) => Err(VmmError::Bad(format!("{e}: {}", self.line.trim()))),
        }
    }

    /// `info`.
    pub async fn info(&mut self) -> Result<DomainInfo, VmmError> {
        match self.request(&Request::Info).await? {
            Payload::Info(i) => Ok(*i),
            other => Err(VmmError::Bad(format!("expected info, got {other:?}"))),
        }
    }

    /// Turn this connection into the raw console stream (replaying the VMM's
    /// history first when `history`).
    pub async fn into_console(mut self, history: bool) -> Result<BufReader<UnixStream>, VmmError> {
        self.request(&Request::Console { history }).await?;
        Ok(self.stream)
    }

    /// Turn this connection into the event stream.
    pub async fn into_events(mut self) -> Result<EventLines, VmmError> {
        self.request(&Request::Events).await?;
        Ok(EventLines {
            stream: self.stream,
            line: String::new(),
        })
    }
}

/// The VMM's event lines.
#[derive(Debug)]
pub struct EventLines {
    stream: BufReader<UnixStream>,
    line: String,
}

impl EventLines {
    /// The next event; `None` when the VMM closed the connection (it exited).
    pub async fn next(&mut self) -> Option<Result<Event, VmmError>> {
        loop {
            self.line.clear();
            match self.stream.read_line(&mut self.line).await {
                Ok(0) => return None,
                Ok(_) if self.line.trim().is_empty() => continue,
                Ok(_) => {
                    return Some(
                        serde_json::from_str(&self.line)
                            .map_err(|e| VmmError::Bad(format!("{e}: {}", self.line.trim()))),
                    );
                }
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_state_their_deadline_in_seconds() {
        let msg = |d| VmmError::Timeout(d).to_string();
        assert_eq!(
            msg(Duration::from_secs(2)),
            "the VMM did not answer within 2 s"
        );
        assert_eq!(
            msg(Duration::from_millis(500)),
            "the VMM did not answer within 0.5 s"
        );
        assert_eq!(
            msg(Duration::from_secs(600)),
            "the VMM did not answer within 600 s"
        );
    }

    #[tokio::test]
    async fn a_vmm_that_never_answers_times_out_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hung.sock");
        // Listening, never reading: what a SIGSTOPped VMM looks like.
        let _listener = tokio::net::UnixListener::bind(&path).unwrap();
        let mut conn = VmmConn::connect(&path).await.unwrap();
        let started = std::time::Instant::now();
        let err = conn
            .request_within(&Request::Info, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, VmmError::Timeout(d) if d == Duration::from_millis(200)));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
