//! A connection to a domain console: connect (over TLS when asked, then the
//! optional token), send, and wait for output.
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::stream::Stream;
use crate::tls::{self, ConsoleTls, TlsError};

/// Errors while connecting to a console.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection (or the token line) failed.
    #[error("Cannot connect to console on {addr}: {reason}")]
    Connect {
        /// `HOST:PORT` as given.
        addr: String,
        /// A short lower-case reason, e.g. `connection refused`.
        reason: String,
    },
    /// The token contains a line break, which would end the token line early.
    #[error("invalid console token: it must not contain a line break")]
    BadToken,
    /// TLS could not be set up (certificate files, names).
    #[error("Cannot connect to console on {addr}")]
    TlsSetup {
        /// `HOST:PORT` as given.
        addr: String,
        /// Why.
        #[source]
        source: TlsError,
    },
    /// The TLS handshake failed: the server's certificate was refused, or
    /// the server does not speak TLS. Nothing was sent in clear.
    #[error("Cannot connect to console on {addr}: {reason}")]
    Tls {
        /// `HOST:PORT` as given.
        addr: String,
        /// What went wrong and what to do.
        reason: String,
    },
}

/// Errors while waiting for console output.
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// The text did not appear before the deadline.
    #[error(
        "timed out after {timeout:?} waiting for {wanted:?} on the console; last output: {tail:?}"
    )]
    Timeout {
        /// What was awaited.
        wanted: String,
        /// How long.
        timeout: Duration,
        /// The end of what was received meanwhile.
        tail: String,
    },
    /// The server closed the console before the text appeared.
    #[error("the console closed while waiting for {wanted:?}; last output: {tail:?}")]
    Closed {
        /// What was awaited.
        wanted: String,
        /// The end of what was received.
        tail: String,
    },
    /// Reading the socket failed.
    #[error("cannot read the console")]
    Io(#[from] io::Error),
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Sent as the first line (`TOKEN\n`) when set, for consoles that require it.
    pub token: Option<String>,
    /// Connect timeout per address (and for the TLS handshake).
    pub timeout: Duration,
    /// Speak TLS, trusting this (`None`: plain TCP). Never falls back to
    /// plain TCP.
    pub tls: Option<ConsoleTls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            token: None,
            timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// An open console connection.
#[derive(Debug)]
pub struct Console {
    pub(crate) stream: Stream,
    pub(crate) addr: String,
    /// Bytes read by [`Console::expect`] beyond the awaited text; handed out
    /// first by the next read or session.
    pub(crate) pending: Vec<u8>,
    /// Tells xend's refusal (no or a wrong token) from a plain close.
    pub(crate) refusal: crate::refusal::Watch,
}

/// A short lower-case description of an I/O error, for "Cannot connect" lines.
pub fn describe_io(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        TimedOut | WouldBlock => "timed out".into(),
        NotFound => "host not found".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        AddrNotAvailable => "address not available".into(),
        _ => {
            let text = e.to_string();
            // "Foo bar (os error 12)" -> "foo bar"
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

impl Console {
    /// Connects to `host:port` (TLS first when asked) and sends the token
    /// line when one is set.
    pub fn connect(host: &str, port: u16, opts: &ConnectOptions) -> Result<Self, ConnectError> {
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Self::connect_addr(&addr, opts)
    }

    /// Connects to an address written `HOST:PORT`; with TLS, the certificate
    /// is checked for `HOST`.
    pub fn connect_addr(addr: &str, opts: &ConnectOptions) -> Result<Self, ConnectError> {
        let fail = |e: &io::Error| ConnectError::Connect {
            addr: addr.to_string(),
            reason: describe_io(e),
        };
        if opts
            .token
            .as_deref()
            .is_some_and(|t| t.contains(['\n', '\r']))
        {
            return Err(ConnectError::BadToken);
        }
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| fail(&e))?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host not found");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, opts.timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| fail(&last))?;
        stream.set_nodelay(true).map_err(|e| fail(&e))?;
        let mut stream = match &opts.tls {
            None => Stream::Plain(stream),
            Some(trust) => handshake(stream, addr, trust, opts.timeout)?,
        };
        if let Some(token) = &opts.token {
            stream
                .write_all(format!("{token}\n").as_bytes())
                .map_err(|e| fail(&e))?;
        }
        Ok(Self {
            stream,
            addr: addr.to_string(),
            pending: Vec::new(),
            refusal: crate::refusal::Watch::new(opts.token.is_some()),
        })
    }

    /// The address connected to, as `HOST:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The TCP socket (under TLS when the console speaks TLS: then its
    /// readiness is not the console's), e.g. for socket options. Bytes held
    /// back by [`Console::expect`] are returned by [`Console::take_pending`].
    pub fn stream(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// True when the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Bytes already read from the socket but not yet consumed.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Sends bytes to the console (typed input).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads until `wanted` appears in the output, or the timeout passes, and
    /// returns everything read up to and including it. Bytes after it are kept
    /// for the next call or session.
    pub fn expect(&mut self, wanted: &[u8], timeout: Duration) -> Result<Vec<u8>, ExpectError> {
        let deadline = Instant::now() + timeout;
        let mut seen = std::mem::take(&mut self.pending);
        let mut buf = vec![0u8; 64 * 1024];
        // Where the next search starts: earlier bytes were searched already
        // (less a needle's length, for a match split across reads).
        let mut searched = 0;
        loop {
            if let Some(pos) = find(&seen[searched..], wanted) {
                let end = searched + pos + wanted.len();
                self.pending = seen.split_off(end);
                return Ok(seen);
            }
            let now = Instant::now();
            let tail = || tail_text(&seen);
            let wanted_text = || String::from_utf8_lossy(wanted).into_owned();
            if now >= deadline {
                let tail = tail();
                self.pending = seen;
                return Err(ExpectError::Timeout {
                    wanted: wanted_text(),
                    timeout,
                    tail,
                });
            }
            self.stream.tcp().set_read_timeout(Some(deadline - now))?;
            let read = self.stream.read(&mut buf);
            self.stream.tcp().set_read_timeout(None)?;
            match read {
                Ok(0) => {
                    return Err(ExpectError::Closed {
                        wanted: wanted_text(),
                        tail: tail(),
                    });
                }
                Ok(n) => {
                    searched = (seen.len() + 1).saturating_sub(wanted.len().max(1));
                    seen.extend_from_slice(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    self.pending = seen;
                    return Err(e.into());
                }
            }
        }
    }
}

/// The TLS handshake on `sock`, within `timeout`; the certificate is
/// checked for `addr`'s host as `trust` says.
fn handshake(
    mut sock: TcpStream,
    addr: &str,
    trust: &ConsoleTls,
    timeout: Duration,
) -> Result<Stream, ConnectError> {
    let setup = |source| ConnectError::TlsSetup {
        addr: addr.to_string(),
        source,
    };
    let host = match addr.rsplit_once(':') {
        Some((host, _)) => host,
        None => addr,
    };
    let config = tls::client_config(trust).map_err(setup)?;
    let name = tls::server_name(host).map_err(setup)?;
    let mut conn =
        rustls::ClientConnection::new(config, name).map_err(|e| setup(TlsError::Rustls(e)))?;
    let failed = |e: &io::Error| ConnectError::Tls {
        addr: addr.to_string(),
        reason: tls::describe(e, trust),
    };
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| failed(&e))?;
    sock.set_write_timeout(Some(timeout))
        .map_err(|e| failed(&e))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| failed(&e))?;
    }
    sock.set_read_timeout(None).map_err(|e| failed(&e))?;
    sock.set_write_timeout(None).map_err(|e| failed(&e))?;
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, sock))))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(200);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
