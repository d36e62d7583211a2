//! What can go wrong carrying out an action, typed; the UI shows each as one
//! line with its cause ([`error_chain`]).
use crate::settings::SettingsError;

/// An effect that failed (an operation, a config, the editor, a console, the
/// settings file).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// xend refused or did not answer.
    #[error(transparent)]
    Xend(#[from] xend::client::Error),
    /// The external editor failed.
    #[error(transparent)]
    Editor(#[from] EditorError),
    /// The domain has no console.
    #[error("{0} has no console")]
    NoConsole(String),
    /// xend refused the console (no token, or a wrong one): what to check.
    #[error("{0}")]
    ConsoleRefused(&'static str),
    /// Connecting to a console failed.
    #[error(transparent)]
    ConsoleConnect(#[from] console_client::ConnectError),
    /// A full-screen console session failed.
    #[error(transparent)]
    ConsoleSession(#[from] console_client::SessionError),
    /// The settings file could not be written.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// There is nowhere to write the settings.
    #[error("no settings path: set $HOME or $XTOP_CONFIG")]
    NoSettingsPath,
}

/// Why polling a host gave no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// xend refused or could not be reached.
    #[error(transparent)]
    Xend(#[from] xend::client::Error),
    /// Nothing came back in time (a host that accepts and never answers, or
    /// one slower than the deadline); the other hosts are not held up.
    #[error("no answer within {secs:.1} s")]
    NoAnswer {
        /// The deadline, seconds.
        secs: f64,
    },
}

/// Why editing in `$VISUAL`/`$EDITOR` failed.
#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    /// The temporary file could not be made, written or read back.
    #[error("cannot {what} the temporary file {path}")]
    File {
        /// `create`, `write` or `read`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The editor could not be started.
    #[error("cannot run the editor '{cmd}'")]
    Spawn {
        /// The command.
        cmd: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The editor exited with a failure.
    #[error("the editor '{cmd}' exited with {status}; nothing applied")]
    Failed {
        /// The command.
        cmd: String,
        /// How it exited.
        status: std::process::ExitStatus,
    },
}

/// An error and its causes as one line (the workspace's one definition,
/// in the `errchain` crate).
pub use errchain::error_chain;
