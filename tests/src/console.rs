//! Console and event-port clients for tests: connect (with the token), wait
//! for text with a deadline, send.
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use testkit::expect::Expect;

use crate::{PROMPT, Xend};

/// A TCP console connection with everything read so far: a
/// [`testkit::expect::Expect`] transcript (`seen`, `cursor`, `expect`,
/// `pump`, `send`, `expect_closed`, ...) plus what speaking to a minios
/// shell through xend adds.
#[derive(Debug)]
pub struct Console {
    inner: Expect<TcpStream>,
}

impl Deref for Console {
    type Target = Expect<TcpStream>;

    fn deref(&self) -> &Expect<TcpStream> {
        &self.inner
    }
}

impl DerefMut for Console {
    fn deref_mut(&mut self) -> &mut Expect<TcpStream> {
        &mut self.inner
    }
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
            inner: Expect::new(stream),
        })
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

    /// Close our side.
    pub fn close(self) {
        let _ = self.inner.stream().shutdown(Shutdown::Both);
    }
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
            if self.inner.is_closed() || Instant::now() >= deadline {
                return None;
            }
            self.inner.pump();
        }
    }
}
