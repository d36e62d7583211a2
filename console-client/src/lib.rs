//! Attach to a domain console over TCP, as `xencons`, `xm console` and xtop do.
//!
//! A console is raw bytes both ways on a TCP port of xend (no framing, no
//! telnet negotiation), inside TLS when xend has a certificate
//! ([`ConnectOptions::tls`], [`tls`]); on connect xend flushes the last
//! 64 KiB of output.
//!
//! ```no_run
//! use console_client::{Console, ConnectOptions, InteractiveOptions, EscapeKey};
//! let mut console = Console::connect("127.0.0.1", 9601, &ConnectOptions::default())?;
//! let opts = InteractiveOptions { escape: EscapeKey::parse("^X")?, ..Default::default() };
//! let reason = console.run_interactive(opts)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Console::run_interactive`]: raw terminal, banner, escape key (Ctrl-] by
//!   default), terminal restored on every exit path.
//! - [`Console::run_pipe`]: for scripts, when standard input is not a terminal.
//! - [`Console::send`] / [`Console::expect`]: programmatic use (xtop scripts).

pub mod cli;
pub mod console;
pub mod escape;
pub mod refusal;
pub mod session;
pub mod signals;
mod stream;
pub mod terminal;
pub mod tls;

pub use console::{ConnectError, ConnectOptions, Console, ExpectError};
pub use escape::{EscapeError, EscapeKey};
pub use session::{EXIT_LINE, ExitReason, InteractiveOptions, PipeOptions, SessionError, banner};
pub use terminal::{RawModeGuard, TerminalError, WindowSize};
pub use tls::{ConsoleTls, TlsError};
