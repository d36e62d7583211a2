//! A small synchronous client of the control socket (tests, benches, tools).
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::proto::{DomainInfo, Event, Payload, Reply, Request};

/// Errors talking to a VMM.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket I/O failed.
    #[error("control socket I/O failed")]
    Io(#[from] std::io::Error),
    /// The VMM sent something that is not a reply.
    #[error("malformed reply from the VMM: {0}")]
    Malformed(String),
    /// The VMM refused the request.
    #[error("{0}")]
    Refused(String),
    /// The connection closed before a reply.
    #[error("the VMM closed the connection")]
    Closed,
}

/// One control connection.
pub struct VmmClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl VmmClient {
    /// Connect to the socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<VmmClient, ClientError> {
        let stream = UnixStream::connect(path)?;
        Ok(VmmClient {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Send a request and read its reply.
    pub fn request(&mut self, req: &Request) -> Result<Payload, ClientError> {
        let mut line = serde_json::to_vec(req).expect("requests always serialize");
        line.push(b'\n');
        self.writer.write_all(&line)?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(ClientError::Closed);
        }
        match serde_json::from_str::<Reply>(&reply) {
            Ok(Reply::Ok(p)) => Ok(p),
            Ok(Reply::Error(e)) => Err(ClientError::Refused(e)),
            Err(e) => Err(ClientError::Malformed(format!("{e}: {reply:?}"))),
        }
    }

    /// Domain statistics.
    pub fn info(&mut self) -> Result<DomainInfo, ClientError> {
        match self.request(&Request::Info)? {
            Payload::Info(i) => Ok(*i),
            other => Err(ClientError::Malformed(format!(
                "expected info, got {other:?}"
            ))),
        }
    }

    /// Turn this connection into the console stream. Output that arrived
    /// together with the reply (history) is kept and read first.
    pub fn console(mut self, history: bool) -> Result<ConsoleStream, ClientError> {
        self.request(&Request::Console { history })?;
        let early = self.reader.buffer().to_vec();
        Ok(ConsoleStream {
            early,
            pos: 0,
            stream: self.writer,
        })
    }

    /// Turn this connection into the event stream.
    pub fn events(mut self) -> Result<impl Iterator<Item = Event>, ClientError> {
        self.request(&Request::Events)?;
        Ok(self
            .reader
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok()))
    }
}

/// The raw console byte stream of a domain (see [`VmmClient::console`]).
pub struct ConsoleStream {
    early: Vec<u8>,
    pos: usize,
    stream: UnixStream,
}

impl ConsoleStream {
    /// The underlying socket (for timeouts, shutdown, cloning the write side).
    pub fn socket(&self) -> &UnixStream {
        &self.stream
    }
}

impl Read for ConsoleStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.early.len() {
            let n = buf.len().min(self.early.len() - self.pos);
            buf[..n].copy_from_slice(&self.early[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.stream.read(buf)
    }
}

impl Write for ConsoleStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}
