//! Signals that end or affect a session, delivered as readable descriptors.
//!
//! Each signal gets a socket pair; the signal handler (installed by
//! `signal-hook`) writes a byte to one end and the session loop polls the
//! other, so a signal wakes `poll` without any work in the handler itself.
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use signal_hook::SigId;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};

/// Errors while installing the signal handlers.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Creating the socket pair or registering the handler failed.
    #[error("cannot install the handler for signal {signal}")]
    Install {
        /// The signal number.
        signal: i32,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// The signals a session watches: the three that end it and the resize.
pub const WATCHED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGWINCH];

/// `SIGWINCH`, the window-size change.
pub const RESIZE: i32 = SIGWINCH;

/// Handlers for [`WATCHED`] signals, removed again when dropped.
///
/// Note (a limit of `signal-hook`): after removal the process keeps a no-op
/// handler for a signal whose action was the default, so a program that embeds
/// sessions and wants to die on SIGTERM afterwards should install its own
/// handlers (xtop uses tokio's).
#[derive(Debug)]
pub struct SignalPipes {
    pipes: Vec<(i32, UnixStream, SigId)>,
}

impl SignalPipes {
    /// Installs the handlers.
    pub fn install() -> Result<Self, SignalError> {
        let mut pipes = Vec::new();
        for signal in WATCHED {
            let err = |source| SignalError::Install { signal, source };
            let (read, write) = UnixStream::pair().map_err(err)?;
            read.set_nonblocking(true).map_err(err)?;
            write.set_nonblocking(true).map_err(err)?;
            let id = signal_hook::low_level::pipe::register(signal, write).map_err(err)?;
            pipes.push((signal, read, id));
        }
        Ok(Self { pipes })
    }

    /// The descriptors to poll, with their signal numbers.
    pub fn fds(&self) -> impl Iterator<Item = (i32, BorrowedFd<'_>)> {
        self.pipes.iter().map(|(sig, read, _)| (*sig, read.as_fd()))
    }

    /// Empties the pipe of `signal` (after `poll` said it is readable).
    pub fn drain(&self, signal: i32) {
        if let Some((_, read, _)) = self.pipes.iter().find(|(s, _, _)| *s == signal) {
            let mut buf = [0u8; 64];
            let mut read = read;
            while matches!(read.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

impl Drop for SignalPipes {
    fn drop(&mut self) {
        for (_, _, id) in self.pipes.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
