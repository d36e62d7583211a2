//! A connection to one of xend's raw TCP listeners (the consoles and the
//! event port): plain TCP, or TLS with the API's certificate when
//! `xend-tls-cert`/`xend-tls-key` are configured. The token line and
//! everything after it travel inside TLS; a client that does not speak TLS
//! to a TLS listener fails the handshake and gets nothing.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The server side of TLS for the raw TCP listeners (the acceptor the API
/// uses, shared).
#[derive(Clone)]
pub struct TlsServer(pub tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer")
    }
}

/// An accepted connection, plain or TLS.
pub enum Conn {
    /// Plain TCP (no certificate configured).
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// A second handle on the TCP socket underneath (a duplicated descriptor
    /// of the same socket), to wait for a reset while the connection itself
    /// is busy elsewhere. It keeps the socket open: drop it with the
    /// connection.
    pub fn watcher(&self) -> io::Result<TcpStream> {
        use std::os::fd::AsFd;
        let fd = self.tcp().as_fd().try_clone_to_owned()?;
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true)?;
        TcpStream::from_std(std)
    }
}

/// Turn an accepted TCP stream into a [`Conn`]: with `tls`, the handshake
/// must complete within [`crate::listen::HANDSHAKE_TIMEOUT`]; `None` (and a
/// debug log line naming `what`) when it does not.
pub async fn accept(
    stream: TcpStream,
    tls: Option<&TlsServer>,
    what: &str,
    peer: std::net::SocketAddr,
) -> Option<Conn> {
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return Some(Conn::Plain(stream));
    };
    match tokio::time::timeout(crate::listen::HANDSHAKE_TIMEOUT, tls.0.accept(stream)).await {
        Ok(Ok(s)) => Some(Conn::Tls(Box::new(s))),
        Ok(Err(e)) => {
            tracing::debug!("{what}: TLS handshake with {peer} failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("{what}: TLS handshake with {peer} timed out");
            None
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Read one line byte by byte (so nothing after it is consumed): at most
/// 4 KiB, `None` on end of stream, an error or a longer line.
pub async fn read_line<R: AsyncRead + Unpin>(stream: &mut R) -> Option<String> {
    use tokio::io::AsyncReadExt;
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
