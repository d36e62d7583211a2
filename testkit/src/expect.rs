//! A console transcript over a byte stream: everything read so far, a cursor
//! past what was matched, waits with deadlines.
//!
//! The stream must have a short read timeout (e.g. 50 ms via
//! `set_read_timeout`): [`Expect::pump`] treats a timed-out read as "nothing
//! yet" and the waits check their deadline between reads.
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// A stream and what it sent so far.
#[derive(Debug)]
pub struct Expect<S> {
    stream: S,
    /// Every byte received since attaching.
    pub seen: Vec<u8>,
    /// Bytes of `seen` already matched by [`Expect::expect`].
    pub cursor: usize,
    closed: bool,
}

impl<S: Read + Write> Expect<S> {
    /// Wrap `stream` (which has a short read timeout).
    pub fn new(stream: S) -> Expect<S> {
        Expect {
            stream,
            seen: Vec::new(),
            cursor: 0,
            closed: false,
        }
    }

    /// The stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The stream, to read or write it directly.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream, giving up the transcript.
    pub fn into_stream(self) -> S {
        self.stream
    }

    /// Read what is available now (up to the read timeout); true when
    /// something arrived. End of stream or a read error marks it closed.
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
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
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

    /// Everything received, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Everything received after the cursor, as text.
    pub fn unread(&self) -> String {
        String::from_utf8_lossy(&self.seen[self.cursor..]).into_owned()
    }

    /// Wait until `needle` appears after the cursor; moves the cursor past it
    /// and returns the text up to and including it. Panics with what was
    /// seen when the stream closes or `timeout` passes first.
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
                    self.unread()
                );
            }
            self.pump();
        }
    }

    /// Wait until `needle` appears anywhere in what was received from byte
    /// `from` on (the cursor stays); returns that text. Panics with it when
    /// the stream closes or `timeout` passes first.
    #[track_caller]
    pub fn expect_from(&mut self, from: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if find(&self.seen[from..], needle.as_bytes()).is_some() {
                return String::from_utf8_lossy(&self.seen[from..]).into_owned();
            }
            let text = String::from_utf8_lossy(&self.seen[from..]);
            if self.closed {
                panic!("console closed while waiting for {needle:?}; got:\n{text}");
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {needle:?}; got:\n{text}");
            }
            self.pump();
        }
    }

    /// Send `command` and a newline, and wait for `needle` in what follows;
    /// returns that output (the cursor stays).
    #[track_caller]
    pub fn run_until(&mut self, command: &str, needle: &str, timeout: Duration) -> String {
        let from = self.seen.len();
        self.send(&format!("{command}\n"));
        self.expect_from(from, needle, timeout)
    }

    /// Send text.
    pub fn send(&mut self, text: &str) {
        self.stream
            .write_all(text.as_bytes())
            .expect("console write");
    }

    /// Wait until the other end closes; returns everything unread.
    #[track_caller]
    pub fn expect_closed(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            if Instant::now() >= deadline {
                panic!(
                    "console still open after {timeout:?}; seen: {:?}",
                    self.unread()
                );
            }
            self.pump();
        }
        self.unread()
    }

    /// True once the other end closed (as far as read so far).
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Where `needle` starts in `hay` (0 for an empty needle).
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn pair() -> (Expect<UnixStream>, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        (Expect::new(a), b)
    }

    #[test]
    fn expect_moves_the_cursor_past_each_match() {
        let (mut con, mut guest) = pair();
        guest.write_all(b"boot\n# echo a\na\n# ").unwrap();
        assert_eq!(con.expect("# ", Duration::from_secs(5)), "boot\n# ");
        assert_eq!(con.expect("# ", Duration::from_secs(5)), "echo a\na\n# ");
        assert_eq!(con.unread(), "");
    }

    #[test]
    fn run_until_sends_the_command_and_returns_what_follows() {
        let (mut con, mut guest) = pair();
        guest.write_all(b"old output\n").unwrap();
        con.pump();
        let echo = std::thread::spawn(move || {
            let mut line = [0u8; 6];
            guest.read_exact(&mut line).unwrap();
            assert_eq!(&line, b"uname\n");
            guest.write_all(b"minios 0.1.0\n").unwrap();
            guest
        });
        let out = con.run_until("uname", "minios", Duration::from_secs(5));
        assert_eq!(out, "minios 0.1.0\n");
        drop(echo.join().unwrap());
        assert_eq!(
            con.expect_closed(Duration::from_secs(5)),
            "old output\nminios 0.1.0\n"
        );
    }

    #[test]
    #[should_panic(expected = "timed out waiting for \"never\"")]
    fn expect_from_panics_after_its_deadline() {
        let (mut con, _guest) = pair();
        con.expect_from(0, "never", Duration::from_millis(50));
    }
}
