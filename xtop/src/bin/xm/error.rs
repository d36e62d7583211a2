//! The errors xm reports (`Error: <message>` on stderr, exit status 1).
use std::path::PathBuf;

/// Everything that can make an xm command fail.
#[derive(Debug, thiserror::Error)]
pub enum XmError {
    /// A call to xend failed (including "Error connecting to xend ...").
    #[error(transparent)]
    Xend(#[from] xend::client::Error),
    /// The command name matches no command.
    #[error("Unknown command '{0}'; try `xm help` for the list of commands")]
    UnknownCommand(String),
    /// The command name is the prefix of several commands.
    #[error("Ambiguous command '{prefix}': it could be {}", candidates.join(", "))]
    Ambiguous {
        /// What was typed.
        prefix: String,
        /// The commands it starts.
        candidates: Vec<String>,
    },
    /// A command of the reference that this xend has no API for.
    #[error("{0} is not supported by this xend yet")]
    Unsupported(String),
    /// Bad command-line arguments (clap's message, or ours).
    #[error("{0}")]
    Usage(String),
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadConfig {
        /// The path tried.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `VAR=VAL` argument of create is malformed or does not fit the config.
    #[error("{0}")]
    BadVariable(String),
    /// The domain config is invalid (file:line:col and what was expected).
    #[error(transparent)]
    Config(#[from] xend::config::ConfigError),
    /// xend sent SXP we cannot read.
    #[error("xend sent SXP this client cannot read ({what}): {source}")]
    BadSxp {
        /// Which reply.
        what: String,
        /// The parse error.
        source: sxp::ParseError,
    },
    /// A domain has no console to attach to.
    #[error("domain {0} has no console")]
    NoConsole(String),
    /// xend refused the console (no token, or a wrong one): what to check.
    #[error("{0}")]
    ConsoleRefused(&'static str),
    /// Connecting to a console failed.
    #[error(transparent)]
    Connect(#[from] console_client::ConnectError),
    /// A console session failed.
    #[error(transparent)]
    Session(#[from] console_client::SessionError),
    /// Running another program (xtop) failed.
    #[error("cannot run {}: {source}", path.display())]
    Exec {
        /// The program.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing JSON output failed.
    #[error("cannot encode JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result of xm's commands.
pub type Result<T, E = XmError> = std::result::Result<T, E>;

/// The message and its sources, joined with ": " (the connection error to xend
/// stands alone: its first line is what scripts match on).
pub fn render(e: &XmError) -> String {
    let mut text = e.to_string();
    if let XmError::Xend(inner) = e
        && inner.is_connect()
    {
        return text;
    }
    let mut source = std::error::Error::source(e);
    // `transparent` variants already show their inner message: skip it.
    if matches!(
        e,
        XmError::Xend(_) | XmError::Connect(_) | XmError::Session(_)
    ) {
        source = source.and_then(std::error::Error::source);
    }
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
