//! Console and event-port clients for tests: connect (with the token), wait
//! for text with a deadline, send.
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::{PROMPT, Xend};
/// A TCP console connection with everything read so far.
#[derive(Debug)]
pub struct Console {
    stream: TcpStream,
    /// Every byte received since connecting.
    pub seen: Vec<u8>,
    /// Bytes of `seen` already matched by [`Console::expect`].
    pub cursor: usize,
    closed: bool,
}

impl Console {
    /// Connect to a console port; sends `TOKEN\n` first when a token is given.
    pub fn connect(port: u16, token: Option<&str>) -> io::Result<Console> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_millis(50)))?;
        if let Some(t) = token {
            stream.write_all(format!("{t}\n").as_bytes())?;
        }
        Ok(Console {
            stream,
            seen: Vec::new(),
            cursor: 0,
            closed: false,
        })
    }

    /// Read what is available now (up to the short read timeout).
    pub fn pump(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Wait until `needle` appears after the cursor; moves the cursor past it
    /// and returns the text up to and including it. Panics with what was seen.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = find(&self.seen[self.cursor..], needle.as_bytes()) {
                let end = self.cursor + pos + needle.len();
                let text = String::from_utf8_lossy(&self.seen[self.cursor..end]).into_owned();
                self.cursor = end;
                return text;
            }
            if self.closed || Instant::now() >= deadline {
                panic!(
                    "console: {} waiting for {needle:?}; seen after cursor: {:?}",
                    if self.closed { "closed" } else { "timed out" },
                    String::from_utf8_lossy(&self.seen[self.cursor..])
                );
            }
            self.pump();
        }
    }

    /// Send text to the guest.
    pub fn send(&mut self, text: &str) {
        self.stream
            .write_all(text.as_bytes())
            .expect("console write");
    }

    /// Send a shell command line and wait for the next prompt; returns the output.
    #[track_caller]
    pub fn run(&mut self, command: &str, timeout: Duration) -> String {
        self.send(&format!("{command}\n"));
        self.expect(PROMPT, timeout)
    }

    /// Prove the guest answers now (not just old output from the history): run
    /// `echo MARKER` and wait for its output line (`MARKER` at a line start;
    /// the typed command echoes as `echo MARKER`).
    #[track_caller]
    pub fn echo(&mut self, marker: &str, timeout: Duration) {
        self.send(&format!("echo {marker}\n"));
        self.expect(&format!("\n{marker}"), timeout);
    }

    /// Wait until the server closes the connection; returns everything unread.
    #[track_caller]
    pub fn expect_closed(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            if Instant::now() >= deadline {
                panic!(
                    "console still open after {timeout:?}; seen: {:?}",
                    String::from_utf8_lossy(&self.seen[self.cursor..])
                );
            }
            self.pump();
        }
        String::from_utf8_lossy(&self.seen[self.cursor..]).into_owned()
    }

    /// True once the server closed the connection (as far as read so far).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Close our side.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A line reader over a TCP event subscription (`xend-event-port`).
#[derive(Debug)]
pub struct EventPort {
    inner: Console,
}

impl EventPort {
    /// Subscribe on the event port of `xend`.
    pub fn connect(xend: &Xend) -> EventPort {
        let inner = Console::connect(xend.event_port(), xend.token())
            .unwrap_or_else(|e| panic!("connect event port: {e}"));
        EventPort { inner }
    }

    /// Wait for a line containing `needle`; returns the line.
    #[track_caller]
    pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        match self.try_line(needle, timeout) {
            Some(line) => line,
            None => panic!(
                "no event line containing {needle:?}; seen: {:?}",
                String::from_utf8_lossy(&self.inner.seen)
            ),
        }
    }

    /// Send a request (Xen 2.0's protocol: `(help)`, `(sys.subscribe ...)`).
    pub fn send(&mut self, text: &str) {
        self.inner.send(text);
    }

    /// Wait until xend closes the connection; returns what was left unread.
    #[track_caller]
    pub fn expect_closed(&mut self, timeout: Duration) -> String {
        self.inner.expect_closed(timeout)
    }

    /// Like [`EventPort::expect_line`] but `None` on timeout.
    pub fn try_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let rest = &self.inner.seen[self.inner.cursor..];
            if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
                self.inner.cursor += nl + 1;
                if line.contains(needle) {
                    return Some(line);
                }
                continue;
            }
            if self.inner.closed || Instant::now() >= deadline {
                return None;
            }
            self.inner.pump();
        }
    }
}
