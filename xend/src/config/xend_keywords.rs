//! The keyword-valued settings of `xend-config.sxp`: `xend-tcp-auth` and
//! `loglevel`.

use std::str::FromStr;

use super::check::ValueError;

/// `xend-tcp-auth`: what a TCP client must present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpAuth {
    /// The bearer token (the default).
    Token,
    /// Nothing: every TCP client is trusted (loopback only, logged loudly).
    None,
}

impl TcpAuth {
    /// The spelling in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpAuth::Token => "token",
            TcpAuth::None => "none",
        }
    }
}

/// Log levels of `loglevel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation (the default).
    Info,
    /// Problems xend works around.
    Warning,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The level as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

impl FromStr for LogLevel {
    type Err = ValueError;

    /// `DEBUG`, `INFO`, `WARNING` (or `WARN`), `ERROR`, in any case.
    fn from_str(s: &str) -> Result<LogLevel, ValueError> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARNING" | "WARN" => Ok(LogLevel::Warning),
            "ERROR" => Ok(LogLevel::Error),
            _ => Err(ValueError::Keyword {
                key: "loglevel".into(),
                choices: "DEBUG, INFO, WARNING or ERROR".into(),
                found: format!("{s:?}"),
            }),
        }
    }
}
