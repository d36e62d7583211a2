//! `xend`'s command line (here, not in the binary, so the man page and the
//! shell completions can be generated from it).
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The control daemon: HTTP API, domain supervision, consoles, events.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Cli {
    /// xend-config.sxp to read (else $XEND_CONFIG, else /etc/xen/xend-config.sxp
    /// if it exists, else the built-in defaults).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// What xend does.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start xend in the background; returns once the API answers.
    Start,
    /// Stop the running xend (domains keep running) and wait until it has exited.
    Stop,
    /// Stop, then start.
    Restart,
    /// Exit 0 when xend is running and answers, 1 when it runs but does not
    /// answer, 3 when it is not running.
    Status,
    /// Run in the foreground (development, service managers, tests).
    Foreground {
        /// Internal: started by `xend start`; detach into a new session.
        #[arg(long, hide = true)]
        detached: bool,
    },
}
