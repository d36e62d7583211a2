//! An async client of a VMM's control socket (JSON lines of
//! `hypervisor::control::proto` over a Unix stream).
use std::path::Path;
use std::time::Duration;

use hypervisor::control::proto::{DomainInfo, Event, Payload, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long one request may take before the VMM counts as unresponsive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors talking to a VMM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// The socket cannot be reached or the connection broke.
    #[error("VMM connection failed")]
    Io(#[from] std::io::Error),
    /// The VMM closed the connection.
    #[error("VMM closed the connection")]
    Closed,
    /// The VMM did not answer in time.
    #[error("VMM did not answer within {0:?}")]
    Timeout(Duration),
    /// A line that is not a reply.
    #[error("VMM sent a bad reply: {0}")]
    Bad(String),
    /// The VMM refused the request.
    #[error("{0}")]
    Refused(String),
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
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| VmmError::Timeout(REQUEST_TIMEOUT))??;
        Ok(VmmConn {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    /// Send `req` and wait for its reply.
    pub async fn request(&mut self, req: &Request) -> Result<Payload, VmmError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.request_inner(req))
            .await
            .map_err(|_| VmmError::Timeout(REQUEST_TIMEOUT))?
    }

    /// Send `req` and wait up to `timeout` for its reply (save and migrate
    /// take longer than ordinary requests).
    pub async fn request_within(
        &mut self,
        req: &Request,
        timeout: Duration,
    ) -> Result<Payload, VmmError> {
        tokio::time::timeout(timeout, self.request_inner(req))
            .await
            .map_err(|_| VmmError::Timeout(timeout))?
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
