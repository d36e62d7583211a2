//! The socket under a console: plain TCP, or TLS over it (rustls driven by
//! hand, so that the session's non-blocking `poll` loop works the same for
//! both: readiness is the TCP socket's, plus plaintext rustls already holds,
//! plus TLS records waiting to go out).
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A console's connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket (under TLS, when there is TLS).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Reads plaintext. `Ok(0)` when the server closed the connection
    /// (with or without TLS's close_notify); `WouldBlock` when nothing is
    /// there yet on a non-blocking socket.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tls = match self {
            Stream::Plain(s) => return s.read(buf),
            Stream::Tls(t) => t,
        };
        loop {
            match tls.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let n = tls.conn.read_tls(&mut tls.sock)?;
            let state = tls
                .conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if n == 0 && state.plaintext_bytes_to_read() == 0 {
                return Ok(0);
            }
        }
    }

    /// True when plaintext is already decrypted and waiting, or the
    /// connection's end was seen: the next read will not block.
    pub(crate) fn has_buffered(&mut self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.conn.process_new_packets().map_or(true, |s| {
                s.plaintext_bytes_to_read() > 0 || s.peer_has_closed()
            }),
        }
    }

    /// True when TLS records wait to be written to the socket.
    pub(crate) fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.conn.wants_write(),
        }
    }

    /// Writes the TLS records waiting (none for plain TCP); `WouldBlock`
    /// when the socket takes no more now.
    pub(crate) fn flush_pending(&mut self) -> io::Result<()> {
        if let Stream::Tls(t) = self {
            while t.conn.wants_write() {
                if t.conn.write_tls(&mut t.sock)? == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
        }
        Ok(())
    }

    /// Hands some of `bytes` over without blocking: to the socket, or (TLS)
    /// to rustls's bounded send buffer, which [`Stream::flush_pending`]
    /// empties. `WouldBlock` when nothing was taken.
    pub(crate) fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(bytes),
            Stream::Tls(t) => match t.conn.writer().write(bytes)? {
                0 if !bytes.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
                n => Ok(n),
            },
        }
    }

    /// Writes all of `bytes` (the socket is blocking).
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(t) => {
                t.write_all(bytes)?;
                t.flush()
            }
        }
    }
}
