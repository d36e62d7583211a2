//! The daemon's effective settings, taken from `xend-config.sxp`
//! ([`crate::config::XendConfig`]) and checked for safety: a non-loopback
//! listen address needs a token file, and the token file must be private.
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors in the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Listening beyond this host without a token.
    #[error(
        "xend-address {0} is not a loopback address: set token-file to a file (mode 0600) holding a bearer token, or listen on 127.0.0.1"
    )]
    NeedToken(String),
    /// The token file is readable by others.
    #[error("token file {0} must be mode 0600 (chmod 600 {0})")]
    TokenMode(String),
    /// The token file cannot be read or is empty.
    #[error("cannot read a token from token file {path}: {why}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The config file is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Everything the daemon needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The config file read, if any.
    pub config_path: Option<PathBuf>,
    /// HTTP port.
    pub port: u16,
    /// HTTP listen address.
    pub address: String,
    /// Event port (SXP event lines).
    pub event_port: u16,
    /// Event port address.
    pub event_address: String,
    /// Console port of domain N is `console_base + N`.
    pub console_base: u16,
    /// Console listen address.
    pub console_address: String,
    /// xend's logfile.
    pub logfile: PathBuf,
    /// Log level name.
    pub loglevel: String,
    /// Rotate the logfile past this size (0: never).
    pub log_max_bytes: u64,
    /// Rotated logfiles kept.
    pub log_keep: usize,
    /// Persistent DB.
    pub dbroot: PathBuf,
    /// Runtime state: VMM sockets/records/logs, pid file, console logs.
    pub state_dir: PathBuf,
    /// Saved domain images (`save-dir`): save and restore file names resolve
    /// inside it.
    pub save_dir: PathBuf,
    /// Modes (and group) of every file and directory xend creates
    /// ([`crate::fsutil`]); 0700/0600 until an admin group is configured.
    pub file_modes: crate::fsutil::FileModes,
    /// The VMM binary.
    pub vmm_path: PathBuf,
    /// Bearer token guarding the API, event port and consoles.
    pub token: Option<Arc<String>>,
    /// Minimum seconds between two restarts of a domain.
    pub min_restart_time: f64,
    /// Request body cap.
    pub max_request_bytes: usize,
    /// Bridge of vifs that name none (`vif-bridge`, default `xenbr0`).
    pub vif_bridge: String,
}

impl Settings {
    /// Settings from a parsed `xend-config.sxp` (or its defaults), checked.
    pub fn from_config(
        c: &crate::config::XendConfig,
        config_path: Option<PathBuf>,
    ) -> Result<Settings, SettingsError> {
        Settings {
            config_path,
            port: c.xend_port,
            address: c.xend_address.to_string(),
            event_port: c.xend_event_port,
            event_address: c.xend_event_address.to_string(),
            console_base: c.console_port_base,
            console_address: c.console_address.to_string(),
            logfile: c.logfile.clone(),
            loglevel: c.loglevel.as_str().to_string(),
            log_max_bytes: c.log_max_bytes,
            log_keep: c.log_keep as usize,
            dbroot: c.dbroot.clone(),
            state_dir: c.state_dir.clone(),
            save_dir: c.save_dir.clone(),
            file_modes: crate::fsutil::FileModes::default(),
            vmm_path: c.vmm_path.clone(),
            token: None,
            min_restart_time: c.min_restart_time,
            max_request_bytes: usize::try_from(c.max_request_bytes).unwrap_or(usize::MAX),
            vif_bridge: c
                .vif_bridge
                .clone()
                .unwrap_or_else(|| crate::network::DEFAULT_BRIDGE.to_string()),
        }
        .check(c.token_file.as_deref())
    }

    /// The pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join("xend.pid")
    }

    /// `http://ADDRESS:PORT`, as clients on this host reach it.
    pub fn base_url(&self) -> String {
        let host = match self.address.as_str() {
            "" | "0.0.0.0" => "127.0.0.1",
            "::" => "[::1]",
            a => a,
        };
        format!("http://{host}:{}", self.port)
    }

    /// Check the safety rules and read the token file.
    pub fn check(mut self, token_file: Option<&Path>) -> Result<Settings, SettingsError> {
        if let Some(path) = token_file {
            use std::os::unix::fs::PermissionsExt;
            let shown = path.display().to_string();
            let meta = std::fs::metadata(path).map_err(|e| SettingsError::Token {
                path: shown.clone(),
                why: e.to_string(),
            })?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(SettingsError::TokenMode(shown));
            }
            let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Token {
                path: shown.clone(),
                why: e.to_string(),
            })?;
            let token = text.trim().to_string();
            if token.is_empty() {
                return Err(SettingsError::Token {
                    path: shown,
                    why: "it is empty".into(),
                });
            }
            self.token = Some(Arc::new(token));
        }
        if self.token.is_none() && !is_loopback(&self.address) {
            return Err(SettingsError::NeedToken(self.address.clone()));
        }
        if self.token.is_none() && !is_loopback(&self.event_address) {
            return Err(SettingsError::NeedToken(self.event_address.clone()));
        }
        if self.token.is_none() && !is_loopback(&self.console_address) {
            return Err(SettingsError::NeedToken(self.console_address.clone()));
        }
        Ok(self)
    }
}

/// `localhost`, `127.x.y.z` and `::1` are loopback; `''` (all interfaces) is not.
pub fn is_loopback(addr: &str) -> bool {
    addr == "localhost" || addr.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
