//! The daemon's effective settings, taken from `xend-config.sxp`
//! ([`crate::config::XendConfig`]) and checked for safety: TCP listeners
//! without authentication stay on loopback.
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::TcpAuth;

/// Errors in the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Serving TCP beyond this host without authentication.
    #[error(
        "{0} is not a loopback address and xend-tcp-auth is none: every host that reaches it would control xend; remove (xend-tcp-auth none) or listen on 127.0.0.1"
    )]
    NoAuthBeyondLoopback(String),
    /// `xend-admin-group` names no group.
    #[error("xend-admin-group {0}: no such group")]
    NoSuchGroup(String),
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
    /// Where disks, kernels and ramdisks may come from (`disk-dirs`,
    /// `kernel-dirs`).
    pub confinement: crate::supervisor::confine::Confinement,
    /// Modes (and group) of every file and directory xend creates
    /// ([`crate::fsutil`]): 0700/0600, or 0750/0640 and the admin group.
    pub file_modes: crate::fsutil::FileModes,
    /// The VMM binary.
    pub vmm_path: PathBuf,
    /// Bearer token guarding every TCP listener (API, event port, consoles);
    /// `None` only with `(xend-tcp-auth none)`. Read (or created) from
    /// `token_file` when the daemon starts.
    pub token: Option<Arc<String>>,
    /// Where the token lives.
    pub token_file: PathBuf,
    /// What TCP clients must present.
    pub tcp_auth: TcpAuth,
    /// The local API socket.
    pub unix_path: PathBuf,
    /// The admin group's id: it may use the local socket and read the token.
    pub admin_gid: Option<u32>,
    /// Certificate and key for HTTPS on the API port (and TLS on the
    /// consoles and the event port).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The TLS server made from `tls`, shared by every TCP listener; set
    /// when the daemon starts.
    pub tls_server: Option<crate::tcpconn::TlsServer>,
    /// Extra names a request's `Host` may carry.
    pub server_names: Vec<String>,
    /// Whether TCP clients may inject events.
    pub event_inject_tcp: bool,
    /// Concurrent connections per listener.
    pub max_connections: usize,
    /// How long a request header may take (and a kept-alive connection idle).
    pub header_timeout: std::time::Duration,
    /// How long a request body may take.
    pub body_timeout: std::time::Duration,
    /// Minimum seconds between two restarts of a domain.
    pub min_restart_time: f64,
    /// Request body cap.
    pub max_request_bytes: usize,
    /// How long a VMM has to answer an ordinary request (`vmm-timeout`).
    pub vmm_timeout: std::time::Duration,
    /// Jail every VMM, domain N as uid/gid `base + N` (`vmm-jail`,
    /// `vmm-jail-uid-base`); `None`: VMMs run as root, unjailed.
    pub vmm_jail: Option<u32>,
    /// How often every domain's figures are sampled (`xend-sample-interval`).
    pub sample_interval: std::time::Duration,
    /// Bridge of vifs that name none (`vif-bridge`, default `xenbr0`).
    pub vif_bridge: String,
    /// The cgroup of every domain's cgroup (`cgroup-parent`); `None`: none.
    pub cgroup_parent: Option<String>,
    /// What the config file said that was ignored (unknown keys), logged as
    /// warnings once logging starts.
    pub config_warnings: Vec<String>,
}

impl Settings {
    /// Settings from a parsed `xend-config.sxp` (or its defaults), checked.
    pub fn from_config(
        c: &crate::config::XendConfig,
        config_path: Option<PathBuf>,
    ) -> Result<Settings, SettingsError> {
        let admin_gid = match &c.admin_group {
            None => None,
            Some(g) => Some(group_id(g).ok_or_else(|| SettingsError::NoSuchGroup(g.clone()))?),
        };
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
            confinement: crate::supervisor::confine::Confinement::new(
                c.disk_dirs.clone(),
                c.kernel_dirs.clone(),
            ),
            file_modes: match admin_gid {
                Some(gid) => crate::fsutil::FileModes {
                    dir: 0o750,
                    file: 0o640,
                    gid: Some(gid),
                },
                None => crate::fsutil::FileModes::default(),
            },
            vmm_path: c.vmm_path.clone(),
            token: None,
            token_file: c.token_file.clone(),
            tcp_auth: c.tcp_auth,
            unix_path: c.unix_path.clone(),
            admin_gid,
            tls: c.tls_cert.clone().zip(c.tls_key.clone()),
            tls_server: None,
            server_names: c.server_names.clone(),
            event_inject_tcp: c.event_inject_tcp,
            max_connections: c.max_connections as usize,
            header_timeout: std::time::Duration::from_secs_f64(c.header_timeout),
            body_timeout: std::time::Duration::from_secs_f64(c.body_timeout),
            min_restart_time: c.min_restart_time,
            vmm_timeout: std::time::Duration::from_secs_f64(c.vmm_timeout),
            vmm_jail: c.vmm_jail.then_some(c.vmm_jail_uid_base),
            sample_interval: std::time::Duration::from_secs_f64(c.sample_interval),
            max_request_bytes: usize::try_from(c.max_request_bytes).unwrap_or(usize::MAX),
            vif_bridge: c
                .vif_bridge
                .clone()
                .unwrap_or_else(|| crate::network::DEFAULT_BRIDGE.to_string()),
            cgroup_parent: c.cgroup_parent.clone(),
            config_warnings: c.ignored.clone(),
        }
        .check()
    }

    /// The pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join("xend.pid")
    }

    /// `http://ADDRESS:PORT` (`https` with TLS), as clients on this host reach it.
    pub fn base_url(&self) -> String {
        let host = match self.address.as_str() {
            "" | "0.0.0.0" => "127.0.0.1",
            "::" => "[::1]",
            a if a.contains(':') => return format!("{}://[{a}]:{}", self.scheme(), self.port),
            a => a,
        };
        format!("{}://{host}:{}", self.scheme(), self.port)
    }

    /// `https` when the API serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Check the safety rules: without authentication, TCP stays on loopback.
    pub fn check(self) -> Result<Settings, SettingsError> {
        if self.tcp_auth == TcpAuth::None {
            for addr in [&self.address, &self.event_address, &self.console_address] {
                if !is_loopback(addr) {
                    return Err(SettingsError::NoAuthBeyondLoopback(addr.clone()));
                }
            }
        }
        Ok(self)
    }
}

/// The id of group `name` (a name in the group database, or a number).
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Some(gid);
    }
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// `localhost`, `127.x.y.z` and `::1` are loopback; `''` (all interfaces) is not.
pub fn is_loopback(addr: &str) -> bool {
    addr == "localhost" || addr.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
