//! Raw terminal mode with guaranteed restore, and the window size.
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::termios::{self, OptionalActions, Termios};

/// Errors while switching the terminal mode.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// Standard input is not a terminal, so there is no mode to change.
    #[error("standard input is not a terminal (use pipe mode for scripts)")]
    NotATerminal,
    /// Reading or changing the terminal attributes failed.
    #[error("cannot set the terminal to raw mode")]
    Attributes(#[source] io::Error),
    /// Duplicating the terminal descriptor failed.
    #[error("cannot duplicate the terminal descriptor")]
    Dup(#[source] io::Error),
}

/// The size of a terminal window in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// The window size of the terminal on `fd`, if it is a terminal that knows it.
pub fn window_size(fd: impl AsFd) -> Option<WindowSize> {
    let ws = termios::tcgetwinsize(fd).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some(WindowSize {
        cols: ws.ws_col,
        rows: ws.ws_row,
    })
}

/// Puts a terminal in raw mode and puts the saved mode back when dropped, on
/// every path out of a session: return, error and panic unwinding.
///
/// The guard keeps its own duplicate of the descriptor, so restoring never
/// depends on the caller's handle still being open.
#[derive(Debug)]
pub struct RawModeGuard {
    fd: OwnedFd,
    saved: Termios,
}

impl RawModeGuard {
    /// Saves the mode of the terminal on `fd` and switches it to raw mode
    /// (no echo, no line editing, no signal keys, no output processing).
    pub fn enter(fd: impl AsFd) -> Result<Self, TerminalError> {
        let fd = fd.as_fd();
        if !termios::isatty(fd) {
            return Err(TerminalError::NotATerminal);
        }
        let fd = fd.try_clone_to_owned().map_err(TerminalError::Dup)?;
        let saved = termios::tcgetattr(&fd).map_err(|e| TerminalError::Attributes(e.into()))?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&fd, OptionalActions::Now, &raw)
            .map_err(|e| TerminalError::Attributes(e.into()))?;
        Ok(Self { fd, saved })
    }

    /// Puts the saved mode back now (also done on drop).
    pub fn restore(&self) -> io::Result<()> {
        termios::tcsetattr(&self.fd, OptionalActions::Drain, &self.saved).map_err(Into::into)
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        // Nothing useful can be done if the terminal is gone (hangup).
        let _ = self.restore();
    }
}
