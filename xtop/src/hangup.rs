//! Noticing that the terminal is gone.
//!
//! When the terminal hangs up (its window is closed, `tmux kill-server`, an
//! SSH connection drops), every read of it returns end of file or `EIO` for
//! ever. crossterm's event reader retries such reads in a loop (100% CPU,
//! holding its reader lock) and its stream never ends, so xtop watches the
//! terminal itself: a thread polls it for hang-up only (it reads nothing, so
//! it takes no key presses from crossterm) and tells the event loop, which
//! quits. The spinning read may be on the event loop's own thread (crossterm
//! reads there too), so if the process is still alive [`GRACE`] later the
//! watcher ends it (exit status 128 + SIGHUP): there is no terminal left to
//! restore, and the kernel closes the console connections.
//!
//! It asks `poll` for no events, only hang-ups and errors, with a timeout:
//! the kernel's hang-up wake-up is addressed to readers and writers, not to
//! such a waiter, so the watcher looks again every [`LOOK_EVERY`] (a few
//! cheap system calls a second; the state is reported at once when looked at).
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, poll};

/// How often the watcher looks at the terminal, in milliseconds.
pub const LOOK_EVERY: u16 = 200;
/// How long the event loop has to quit by itself after a hang-up.
pub const GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Errors starting the watcher.
#[derive(Debug, thiserror::Error)]
pub enum HangupError {
    /// Neither standard input nor `/dev/tty` could be opened as the terminal.
    #[error("cannot open the terminal to watch it")]
    Open(#[source] std::io::Error),
    /// The thread could not be started.
    #[error("cannot start the terminal watcher thread")]
    Thread(#[source] std::io::Error),
}

/// The terminal crossterm reads: standard input when it is a terminal, else
/// `/dev/tty` (a duplicate, so the watcher owns its descriptor).
fn terminal() -> Result<OwnedFd, HangupError> {
    let stdin = std::io::stdin();
    if nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
        return stdin
            .as_fd()
            .try_clone_to_owned()
            .map_err(HangupError::Open);
    }
    let tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(HangupError::Open)?;
    Ok(tty.into())
}

/// True once `fd` reports a hang-up or an error (blocks until then); false
/// if it cannot be watched.
fn wait_hangup(fd: &OwnedFd) -> bool {
    loop {
        // No requested events: poll still reports POLLHUP, POLLERR, POLLNVAL.
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::empty())];
        match poll(&mut fds, LOOK_EVERY) {
            Ok(_) => {
                let gone = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
                if fds[0].revents().is_some_and(|r| r.intersects(gone)) {
                    return true;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Calls `on_hangup` (once, from a thread of its own) when the terminal
/// hangs up, and ends the process if it is still running [`GRACE`] later.
pub fn watch(on_hangup: impl FnOnce() + Send + 'static) -> Result<(), HangupError> {
    let fd = terminal()?;
    std::thread::Builder::new()
        .name("hangup".into())
        .spawn(move || {
            if wait_hangup(&fd) {
                on_hangup();
                std::thread::sleep(GRACE);
                std::process::exit(128 + nix::sys::signal::Signal::SIGHUP as i32);
            }
        })
        .map_err(HangupError::Thread)?;
    Ok(())
}
