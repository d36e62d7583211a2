//! The two ways to run a console session: interactive (a terminal in raw
//! mode, the banner, the escape key) and pipe (for scripts).
//!
//! Both are one `poll` loop over the console socket, the input and the signal
//! pipes, on the calling thread: no helper thread is left blocked on standard
//! input after a session ends, so an embedding program (xm, xtop) gets its
//! terminal back intact.
//!
//! With TLS the loop is the same: the socket is waited on, plaintext rustls
//! already decrypted counts as ready, and TLS records waiting to go out make
//! it wait for the socket to be writable too.
//!
//! Input to the console is written without blocking, through a bounded
//! queue ([`MAX_QUEUED_INPUT`]): xend holds a console's input back when the
//! guest does not take it (a paused domain, a long paste), and the session
//! must still see the escape key, signals, hang-ups and console output
//! meanwhile. While the queue is full, input is not read.
//!
//! Window size: the console protocol is raw bytes with no way to tell the
//! guest a window size (xend speaks no telnet NAWS), so a resize (`SIGWINCH`)
//! only re-reads the size and hands it to [`InteractiveOptions::on_resize`];
//! no bytes are sent to the guest.
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::console::Console;
use crate::escape::EscapeKey;
use crate::signals::{self, SignalError, SignalPipes};
use crate::stream::Stream;
use crate::terminal::{self, RawModeGuard, TerminalError, WindowSize};

/// The line printed when an interactive session starts, for a given escape key.
pub fn banner(escape: EscapeKey) -> String {
    format!(
        "************ REMOTE CONSOLE: {} TO QUIT ********",
        escape.key_name()
    )
}

/// The line printed when an interactive session ends.
pub const EXIT_LINE: &str = "************ REMOTE CONSOLE EXITED *****************";

/// Errors that end a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The terminal could not be switched to raw mode.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// The signal handlers could not be installed.
    #[error(transparent)]
    Signals(#[from] SignalError),
    /// Reading or writing the console socket failed.
    #[error("console connection to {addr} failed")]
    Socket {
        /// `HOST:PORT`.
        addr: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// Reading the input or writing the output failed.
    #[error("terminal input/output failed")]
    Local(#[source] io::Error),
    /// Waiting for input failed.
    #[error("waiting for console or terminal input failed")]
    Poll(#[source] io::Error),
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The user typed the escape key.
    Escape,
    /// The server closed the console (domain destroyed, or disconnected).
    RemoteClosed,
    /// xend refused the console: it wanted its token and got none
    /// (`token_sent: false`) or a wrong one. Its refusal line was all the
    /// output; [`crate::refusal::hint`] says what to check.
    Refused {
        /// Whether a token line was sent.
        token_sent: bool,
    },
    /// The input ended (pipe mode: end of file and the linger time passed;
    /// interactive: the terminal hung up).
    InputClosed,
    /// SIGINT, SIGTERM or SIGHUP arrived (its number).
    Signal(i32),
}

/// Options of [`Console::run_interactive`].
pub struct InteractiveOptions {
    /// The key that ends the session.
    pub escape: EscapeKey,
    /// Print the banner and exit lines (xm and xencons do).
    pub banner: bool,
    /// Install SIGINT/SIGTERM/SIGHUP/SIGWINCH handlers for the session (see
    /// [`crate::signals::SignalPipes`] for what stays installed afterwards).
    pub handle_signals: bool,
    /// Called with the new size after each window resize.
    pub on_resize: Option<Box<dyn FnMut(WindowSize)>>,
}

impl Default for InteractiveOptions {
    fn default() -> Self {
        Self {
            escape: EscapeKey::DEFAULT,
            banner: true,
            handle_signals: true,
            on_resize: None,
        }
    }
}

impl std::fmt::Debug for InteractiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InteractiveOptions")
            .field("escape", &self.escape)
            .field("banner", &self.banner)
            .field("handle_signals", &self.handle_signals)
            .finish_non_exhaustive()
    }
}

/// Options of [`Console::run_pipe`].
#[derive(Debug, Clone)]
pub struct PipeOptions {
    /// After the input ends, keep copying console output until it has been
    /// quiet this long (or the server closes). The console never ends by
    /// itself while the domain lives, so a script needs a bound.
    pub linger: Duration,
    /// Install SIGINT/SIGTERM/SIGHUP handlers for the session.
    pub handle_signals: bool,
}

impl Default for PipeOptions {
    fn default() -> Self {
        Self {
            linger: Duration::from_secs(1),
            handle_signals: true,
        }
    }
}

const SOCKET_BUF: usize = 64 * 1024;

/// Input read but not yet accepted by the console socket; past this much the
/// session stops reading its input until the console takes some.
pub const MAX_QUEUED_INPUT: usize = 4 << 20;

/// Input on its way to the console socket (see the module doc).
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<u8>,
    /// The socket refused input at least once: the console held it back.
    held_back: bool,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Room for more input.
    fn has_room(&self) -> bool {
        self.queue.len() < MAX_QUEUED_INPUT
    }

    fn push(&mut self, bytes: &[u8]) {
        self.queue.extend(bytes);
    }

    /// Writes what the socket takes now (it is non-blocking): TLS records
    /// waiting first, then queued input.
    fn flush(&mut self, stream: &mut Stream) -> io::Result<()> {
        loop {
            match stream.flush_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.held_back = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.queue.is_empty() {
                return Ok(());
            }
            let (front, _) = self.queue.as_slices();
            match stream.write_some(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.held_back = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The console socket during a session: non-blocking, with the input on its
/// way. When dropped (the session ends on any path) the socket is blocking
/// again, and if the console held input back, closing it will reset the
/// connection: a plain close would queue its FIN behind the input xend has
/// not read, so xend would go on counting this client as connected until the
/// guest took it all. The input not yet taken is abandoned either way.
struct Link<'a> {
    stream: &'a mut Stream,
    outbox: Outbox,
}

impl<'a> Link<'a> {
    fn new(stream: &'a mut Stream) -> io::Result<Self> {
        stream.tcp().set_nonblocking(true)?;
        Ok(Self {
            stream,
            outbox: Outbox::default(),
        })
    }

    /// Input or TLS records are waiting to be written.
    fn has_output(&self) -> bool {
        !self.outbox.is_empty() || self.stream.wants_write()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.outbox.flush(self.stream)
    }

    /// One read from the console into `buf`: `Some(n)` bytes (0: the
    /// server closed or reset the connection), `None` when there is nothing
    /// to read yet (interrupted, or it would block).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.stream.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Link<'_> {
    fn drop(&mut self) {
        let tcp = self.stream.tcp();
        if self.outbox.held_back {
            let _ = rustix::net::sockopt::set_socket_linger(tcp, Some(Duration::ZERO));
        }
        let _ = tcp.set_nonblocking(false);
    }
}

/// Why a session ended when the server closed the connection.
fn closed(refusal: &crate::refusal::Watch) -> ExitReason {
    if refusal.is_refusal() {
        ExitReason::Refused {
            token_sent: refusal.token_sent(),
        }
    } else {
        ExitReason::RemoteClosed
    }
}

impl Console {
    /// Runs an interactive session on this process's terminal (standard
    /// input and output): raw mode, banner, copy both ways until the escape
    /// key, remote close, hangup or a signal; then the terminal mode is
    /// restored and the exit line printed, on every path.
    pub fn run_interactive(
        &mut self,
        mut opts: InteractiveOptions,
    ) -> Result<ExitReason, SessionError> {
        let stdin = io::stdin();
        let stdout = io::stdout();
        let guard = RawModeGuard::enter(stdin.as_fd())?;
        let signals = if opts.handle_signals {
            Some(SignalPipes::install()?)
        } else {
            None
        };
        if opts.banner {
            // Raw mode is on: no output processing, so end lines with CR LF.
            let mut out = stdout.lock();
            write!(out, "{}\r\n", banner(opts.escape))
                .and_then(|()| out.flush())
                .map_err(SessionError::Local)?;
        }
        let result = self.interactive_loop(&mut opts, signals.as_ref());
        drop(signals);
        let _ = guard.restore();
        drop(guard);
        if opts.banner {
            let mut out = stdout.lock();
            let _ = write!(out, "\n{EXIT_LINE}\n");
            let _ = out.flush();
        }
        result
    }

    fn interactive_loop(
        &mut self,
        opts: &mut InteractiveOptions,
        signals: Option<&SignalPipes>,
    ) -> Result<ExitReason, SessionError> {
        let stdin = io::stdin();
        let stdout = io::stdout();
        let socket_err = |addr: &str, source| SessionError::Socket {
            addr: addr.to_string(),
            source,
        };
        let pending = self.take_pending();
        if !pending.is_empty() {
            let mut out = stdout.lock();
            out.write_all(&pending)
                .and_then(|()| out.flush())
                .map_err(SessionError::Local)?;
        }
        let escape = opts.escape.byte();
        let mut sock_buf = vec![0u8; SOCKET_BUF];
        let mut in_buf = [0u8; 4096];
        let addr = &self.addr;
        let mut link = Link::new(&mut self.stream).map_err(|e| socket_err(addr, e))?;
        loop {
            let input_fd = link.outbox.has_room().then(|| stdin.as_fd());
            let buffered = link.stream.has_buffered();
            let ready = wait(
                link.stream.tcp(),
                link.has_output(),
                input_fd,
                signals,
                buffered.then_some(Duration::ZERO),
            )?;
            if let Some(sig) = ready.signal {
                if sig == signals::RESIZE {
                    if let (Some(size), Some(cb)) = (
                        terminal::window_size(stdout.as_fd()),
                        opts.on_resize.as_mut(),
                    ) {
                        cb(size);
                    }
                } else {
                    return Ok(ExitReason::Signal(sig));
                }
            }
            if ready.writable {
                link.flush().map_err(|e| socket_err(addr, e))?;
            }
            if ready.socket || buffered {
                let n = match link.read(&mut sock_buf) {
                    Ok(Some(0)) => return Ok(closed(&self.refusal)),
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(e) => return Err(socket_err(addr, e)),
                };
                self.refusal.note(&sock_buf[..n]);
                let mut out = stdout.lock();
                out.write_all(&sock_buf[..n])
                    .and_then(|()| out.flush())
                    .map_err(SessionError::Local)?;
            }
            if ready.input {
                let n = match stdin.lock().read(&mut in_buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => 0,
                    Err(e) => return Err(SessionError::Local(e)),
                };
                if n == 0 {
                    return Ok(ExitReason::InputClosed);
                }
                let typed = &in_buf[..n];
                let (send, quit) = match typed.iter().position(|&b| b == escape) {
                    Some(pos) => (&typed[..pos], true),
                    None => (typed, false),
                };
                if quit {
                    // Input still queued is dropped with the session.
                    return Ok(ExitReason::Escape);
                }
                link.outbox.push(send);
                link.flush().map_err(|e| socket_err(addr, e))?;
            }
        }
    }

    /// Runs a pipe session: copies `input` to the console and the console to
    /// `output` until the server closes it, or the input ends and the output
    /// has been quiet for [`PipeOptions::linger`]. No banner, no terminal
    /// changes, no escape key.
    pub fn run_pipe(
        &mut self,
        mut input: impl Read + AsFd,
        mut output: impl Write,
        opts: &PipeOptions,
    ) -> Result<ExitReason, SessionError> {
        let signals = if opts.handle_signals {
            Some(SignalPipes::install()?)
        } else {
            None
        };
        let pending = self.take_pending();
        output
            .write_all(&pending)
            .and_then(|()| output.flush())
            .map_err(SessionError::Local)?;
        let mut sock_buf = vec![0u8; SOCKET_BUF];
        let mut in_buf = vec![0u8; SOCKET_BUF];
        let mut input_done = false;
        let mut quiet_deadline: Option<Instant> = None;
        let socket_err = |addr: &str, source| SessionError::Socket {
            addr: addr.to_string(),
            source,
        };
        let addr = &self.addr;
        let mut link = Link::new(&mut self.stream).map_err(|e| socket_err(addr, e))?;
        loop {
            // The linger starts once the input ended and all of it was sent.
            if input_done && !link.has_output() && quiet_deadline.is_none() {
                quiet_deadline = Some(Instant::now() + opts.linger);
            }
            let input_fd = (!input_done && link.outbox.has_room()).then(|| input.as_fd());
            let buffered = link.stream.has_buffered();
            let timeout = if buffered {
                Some(Duration::ZERO)
            } else {
                quiet_deadline.map(|d| d.saturating_duration_since(Instant::now()))
            };
            let ready = wait(
                link.stream.tcp(),
                link.has_output(),
                input_fd,
                signals.as_ref(),
                timeout,
            )?;
            if let Some(sig) = ready.signal
                && sig != signals::RESIZE
            {
                return Ok(ExitReason::Signal(sig));
            }
            if ready.writable {
                link.flush().map_err(|e| socket_err(addr, e))?;
            }
            if ready.socket || buffered {
                let n = match link.read(&mut sock_buf) {
                    Ok(Some(0)) => return Ok(closed(&self.refusal)),
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(e) => return Err(socket_err(addr, e)),
                };
                self.refusal.note(&sock_buf[..n]);
                output
                    .write_all(&sock_buf[..n])
                    .and_then(|()| output.flush())
                    .map_err(SessionError::Local)?;
                if quiet_deadline.is_some() {
                    quiet_deadline = Some(Instant::now() + opts.linger);
                }
            }
            if ready.input && !input_done {
                let n = match input.read(&mut in_buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(SessionError::Local(e)),
                };
                if n == 0 {
                    input_done = true;
                } else {
                    link.outbox.push(&in_buf[..n]);
                    link.flush().map_err(|e| socket_err(addr, e))?;
                }
            }
            if quiet_deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(ExitReason::InputClosed);
            }
        }
    }
}

/// What `poll` found ready.
#[derive(Debug, Default)]
struct Ready {
    socket: bool,
    writable: bool,
    input: bool,
    signal: Option<i32>,
}

/// Waits until the socket (readable, or writable when `write` is set), the
/// input or a signal pipe is ready, or the timeout passes (then nothing is
/// ready). Hangups and errors count as ready so that the following read
/// reports them.
fn wait(
    socket: &impl AsFd,
    write: bool,
    input: Option<std::os::fd::BorrowedFd<'_>>,
    signals: Option<&SignalPipes>,
    timeout: Option<Duration>,
) -> Result<Ready, SessionError> {
    let socket = socket.as_fd();
    let sig_fds: Vec<_> = signals.map(|s| s.fds().collect()).unwrap_or_default();
    let mut fds = Vec::with_capacity(2 + sig_fds.len());
    let socket_events = if write {
        PollFlags::IN | PollFlags::OUT
    } else {
        PollFlags::IN
    };
    fds.push(PollFd::new(&socket, socket_events));
    if let Some(input) = &input {
        fds.push(PollFd::new(input, PollFlags::IN));
    }
    for (_, fd) in &sig_fds {
        fds.push(PollFd::new(fd, PollFlags::IN));
    }
    let timeout = timeout.map(|d| Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as i64,
    });
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(Ready::default()),
        Err(e) => return Err(SessionError::Poll(e.into())),
    }
    let hit = |fd: &PollFd<'_>| {
        fd.revents()
            .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
    };
    let mut ready = Ready {
        socket: hit(&fds[0]),
        writable: write && fds[0].revents().intersects(PollFlags::OUT | PollFlags::ERR),
        ..Ready::default()
    };
    let mut next = 1;
    if input.is_some() {
        ready.input = hit(&fds[1]);
        next = 2;
    }
    for (i, (sig, _)) in sig_fds.iter().enumerate() {
        if hit(&fds[next + i]) {
            if let Some(s) = signals {
                s.drain(*sig);
            }
            // A terminating signal wins over a resize.
            if ready.signal.is_none() || ready.signal == Some(signals::RESIZE) {
                ready.signal = Some(*sig);
            }
        }
    }
    Ok(ready)
}
