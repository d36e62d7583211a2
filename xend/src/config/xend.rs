//! xend's own settings: `xend-config.sxp`.
//!
//! The file is either `(xend-config (key value) ...)` or a sequence of
//! top-level `(key value)` lists, as the original accepted. Keys this xend does
//! not use (Xen 2.0.6's stock file has `vif-antispoof`, `block-file`,
//! `block-enbd`) are ignored with a warning naming their position, as the
//! original ignored them; but a key one or two letters away from a known one
//! is an error: a misspelt `xend-adress` ignored would leave xend listening
//! somewhere the user did not ask for. An empty file gives the defaults.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sxp::{Spanned, Value};

use super::check::ValueError;
use super::error::{ConfigError, Pos};
pub use super::xend_keywords::{LogLevel, TcpAuth};

/// Default seconds a VMM has to answer an ordinary request (`vmm-timeout`).
pub const DEFAULT_VMM_TIMEOUT: f64 = 2.0;
/// Default `vmm-jail-uid-base`: domain N's VMM runs as uid/gid 200000 + N.
pub const DEFAULT_JAIL_UID_BASE: u32 = 200_000;
/// Largest `vmm-jail-uid-base` (leaves room for every domain id below the
/// kernel's "no uid" value, 2^32 - 1).
pub const MAX_JAIL_UID_BASE: u32 = u32::MAX - (1 << 20);
/// Bounds of `vmm-timeout`, seconds.
pub const MIN_VMM_TIMEOUT: f64 = 0.1;
/// See [`MIN_VMM_TIMEOUT`].
pub const MAX_VMM_TIMEOUT: f64 = 300.0;
/// Default seconds between two samples of every domain's figures
/// (`xend-sample-interval`).
pub const DEFAULT_SAMPLE_INTERVAL: f64 = 1.0;
/// Bounds of `xend-sample-interval`, seconds.
pub const MIN_SAMPLE_INTERVAL: f64 = 0.1;
/// See [`MIN_SAMPLE_INTERVAL`].
pub const MAX_SAMPLE_INTERVAL: f64 = 3600.0;

/// The keys of `xend-config.sxp`, in the order [`XendConfig::to_sxp`] writes them.
pub const XEND_KEYS: &[&str] = &[
    "xend-port",
    "xend-address",
    "xend-event-port",
    "xend-event-address",
    "console-port-base",
    "console-address",
    "logfile",
    "loglevel",
    "log-max-bytes",
    "log-keep",
    "dbroot",
    "state-dir",
    "save-dir",
    "disk-dirs",
    "kernel-dirs",
    "vmm-path",
    "token-file",
    "xend-unix-path",
    "xend-admin-group",
    "xend-tcp-auth",
    "xend-tls-cert",
    "xend-tls-key",
    "xend-server-names",
    "xend-event-inject-tcp",
    "xend-max-connections",
    "xend-header-timeout",
    "xend-body-timeout",
    "min-restart-time",
    "max-request-bytes",
    "vmm-timeout",
    "vmm-jail",
    "vmm-jail-uid-base",
    "xend-sample-interval",
    "network-script",
    "vif-bridge",
    "vif-script",
    "cgroup-parent",
];

/// Default `cgroup-parent`.
pub const DEFAULT_CGROUP_PARENT: &str = "xend";

/// A `cgroup-parent` value: one path component a cgroup file system takes.
fn valid_cgroup_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where xend keeps the bearer token unless `token-file` says otherwise.
pub const DEFAULT_TOKEN_FILE: &str = "/var/lib/xen/xend-token";
/// Where xend reads its config unless told otherwise (clients read it too, to
/// find the local socket and the token file).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/xen/xend-config.sxp";
/// Default `disk-dirs`: where `file:` disk images may lie.
pub const DEFAULT_DISK_DIRS: &[&str] = &["/var/lib/xen/images"];
/// Default `kernel-dirs`: where kernels and ramdisks may lie.
pub const DEFAULT_KERNEL_DIRS: &[&str] = &["/boot", "/var/lib/xen/images", "/usr/lib/xen/boot"];

/// The daemon's settings, with the reference's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct XendConfig {
    /// HTTP API port (`xend-port`, 8000). 0 asks the OS for a free port.
    pub xend_port: u16,
    /// HTTP API address (`xend-address`, 127.0.0.1; `''` means every interface).
    pub xend_address: IpAddr,
    /// Event subscription port (`xend-event-port`, 8001). 0 asks the OS.
    pub xend_event_port: u16,
    /// Event subscription address (`xend-event-address`, default `xend-address`).
    pub xend_event_address: IpAddr,
    /// First console port; a domain's console is at base + domid (`console-port-base`, 9600).
    pub console_port_base: u16,
    /// Console listener address (`console-address`, 127.0.0.1).
    pub console_address: IpAddr,
    /// Log file (`logfile`, /var/log/xend.log).
    pub logfile: PathBuf,
    /// Least severe level logged (`loglevel`, INFO).
    pub loglevel: LogLevel,
    /// Rotate the log when it grows past this many bytes (`log-max-bytes`, 10 MiB; 0 never).
    pub log_max_bytes: u64,
    /// Rotated logs kept (`log-keep`, 5).
    pub log_keep: u32,
    /// Persistent domain records (`dbroot`, /var/lib/xen/xend-db).
    pub dbroot: PathBuf,
    /// Runtime sockets and domain records (`state-dir`, /var/run/xend).
    pub state_dir: PathBuf,
    /// Saved domain images (`save-dir`, default `<state-dir>/save`).
    pub save_dir: PathBuf,
    /// Directories `file:` disk backends must canonicalize into (`disk-dirs
    /// DIR ...`, default `/var/lib/xen/images`); `phy:` backends must be block
    /// devices under `/dev`.
    pub disk_dirs: Vec<PathBuf>,
    /// Directories kernels and ramdisks must canonicalize into (`kernel-dirs
    /// DIR ...`, default `/boot /var/lib/xen/images /usr/lib/xen/boot`).
    pub kernel_dirs: Vec<PathBuf>,
    /// The VMM executable (`vmm-path`, default `vmm` next to the running executable).
    pub vmm_path: PathBuf,
    /// File holding the bearer token every TCP listener requires
    /// (`token-file`, /var/lib/xen/xend-token; created on first start).
    pub token_file: PathBuf,
    /// The local API socket (`xend-unix-path`, default `<state-dir>/xend.sock`).
    /// Its file permissions are the authorization: root and `xend-admin-group`.
    pub unix_path: PathBuf,
    /// Group allowed to use the local socket and read the token file, logs and
    /// state (`xend-admin-group`, none: root only).
    pub admin_group: Option<String>,
    /// Whether TCP clients must send the token (`xend-tcp-auth`, `token`; `none`
    /// serves every TCP client unauthenticated, on loopback only).
    pub tcp_auth: TcpAuth,
    /// PEM certificate chain served by the API over HTTPS (`xend-tls-cert`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (`xend-tls-key`).
    pub tls_key: Option<PathBuf>,
    /// Host names (besides the listener's address, `localhost` on loopback and
    /// this host's name) that requests may carry in `Host` (`xend-server-names`).
    pub server_names: Vec<String>,
    /// Whether TCP clients may `op=inject` events (`xend-event-inject-tcp`, no).
    pub event_inject_tcp: bool,
    /// Seconds a client may take to send a request header, and a kept-alive
    /// connection may stay idle (`xend-header-timeout`, 10).
    pub header_timeout: f64,
    /// Seconds a client may take to send a request body (`xend-body-timeout`, 30).
    pub body_timeout: f64,
    /// Concurrent connections served per listener (`xend-max-connections`, 4096;
    /// at most a quarter of the open-file limit).
    pub max_connections: u32,
    /// Seconds that must pass between two restarts of a domain (`min-restart-time`, 20).
    pub min_restart_time: f64,
    /// Largest request body accepted, bytes (`max-request-bytes`, 1 MiB).
    pub max_request_bytes: u64,
    /// Seconds a VMM has to answer an ordinary request before it is marked
    /// unresponsive (`vmm-timeout`, 2).
    pub vmm_timeout: f64,
    /// Jail every VMM (`vmm-jail`, yes): namespaces, empty root, no
    /// capabilities, an unprivileged uid, seccomp (`docs/jail.md`).
    pub vmm_jail: bool,
    /// Domain `N`'s jailed VMM runs as uid and gid `vmm-jail-uid-base + N`
    /// (`vmm-jail-uid-base`, 200000): ids no host account may use.
    pub vmm_jail_uid_base: u32,
    /// Seconds between two samples of every domain's figures
    /// (`xend-sample-interval`, 1).
    pub sample_interval: f64,
    /// Network setup script (`network-script`; kept for the device work).
    pub network_script: Option<String>,
    /// Default bridge for vifs (`vif-bridge`; kept for the device work).
    pub vif_bridge: Option<String>,
    /// vif hotplug script (`vif-script`; kept for the device work).
    pub vif_script: Option<String>,
    /// The cgroup holding every domain's cgroup, under xend's own
    /// (`cgroup-parent`, `xend`); `None` (`(cgroup-parent none)`): no cgroups.
    pub cgroup_parent: Option<String>,
    /// Keys this xend does not use, ignored, and keys it keeps but never
    /// acts on (`network-script`, `vif-script`): one `file:line:col: ...` warning
    /// each, for the log.
    pub ignored: Vec<String>,
}

impl Default for XendConfig {
    fn default() -> XendConfig {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let state_dir = PathBuf::from("/var/run/xend");
        XendConfig {
            xend_port: 8000,
            xend_address: loopback,
            xend_event_port: 8001,
            xend_event_address: loopback,
            console_port_base: 9600,
            console_address: loopback,
            logfile: PathBuf::from("/var/log/xend.log"),
            loglevel: LogLevel::Info,
            log_max_bytes: 10 << 20,
            log_keep: 5,
            dbroot: PathBuf::from("/var/lib/xen/xend-db"),
            save_dir: state_dir.join("save"),
            unix_path: state_dir.join("xend.sock"),
            state_dir,
            disk_dirs: DEFAULT_DISK_DIRS.iter().map(PathBuf::from).collect(),
            kernel_dirs: DEFAULT_KERNEL_DIRS.iter().map(PathBuf::from).collect(),
            vmm_path: default_vmm_path(),
            token_file: PathBuf::from(DEFAULT_TOKEN_FILE),
            admin_group: None,
            tcp_auth: TcpAuth::Token,
            tls_cert: None,
            tls_key: None,
            server_names: Vec::new(),
            event_inject_tcp: false,
            max_connections: 4096,
            header_timeout: 10.0,
            body_timeout: 30.0,
            min_restart_time: 20.0,
            max_request_bytes: 1 << 20,
            vmm_timeout: DEFAULT_VMM_TIMEOUT,
            vmm_jail: true,
            vmm_jail_uid_base: DEFAULT_JAIL_UID_BASE,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            network_script: None,
            vif_bridge: None,
            vif_script: None,
            cgroup_parent: Some(DEFAULT_CGROUP_PARENT.into()),
            ignored: Vec::new(),
        }
    }
}

/// `vmm` in the directory of the running executable, else `vmm` (found on `PATH`).
fn default_vmm_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("vmm")))
        .unwrap_or_else(|| PathBuf::from("vmm"))
}

impl XendConfig {
    /// Reads `path`. Relative paths in the file are taken relative to the file's
    /// directory.
    pub fn load(path: &Path) -> Result<XendConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read the xend config file: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &origin, Some(base))
    }

    /// Reads the text of an `xend-config.sxp`; relative paths stay as written.
    pub fn from_sxp_str(text: &str, origin: &str) -> Result<XendConfig, ConfigError> {
        Self::parse(text, origin, None)
    }

    /// The minimum time between two restarts of a domain.
    pub fn min_restart(&self) -> Duration {
        Duration::from_secs_f64(self.min_restart_time)
    }

    /// The settings as `(xend-config (key value) ...)`; reading it back gives the
    /// same settings.
    pub fn to_sxp(&self) -> Value {
        let path = |p: &Path| Value::str(p.to_string_lossy().into_owned());
        let mut items = vec![
            Value::str("xend-config"),
            Value::pair("xend-port", self.xend_port),
            Value::pair("xend-address", self.xend_address.to_string()),
            Value::pair("xend-event-port", self.xend_event_port),
            Value::pair("xend-event-address", self.xend_event_address.to_string()),
            Value::pair("console-port-base", self.console_port_base),
            Value::pair("console-address", self.console_address.to_string()),
            Value::pair("logfile", path(&self.logfile)),
            Value::pair("loglevel", self.loglevel.as_str()),
            Value::pair("log-max-bytes", self.log_max_bytes),
            Value::pair("log-keep", self.log_keep),
            Value::pair("dbroot", path(&self.dbroot)),
            Value::pair("state-dir", path(&self.state_dir)),
            Value::pair("save-dir", path(&self.save_dir)),
        ];
        for (key, dirs) in [
            ("disk-dirs", &self.disk_dirs),
            ("kernel-dirs", &self.kernel_dirs),
        ] {
            let mut list = vec![Value::str(key)];
            list.extend(dirs.iter().map(|d| path(d)));
            items.push(Value::List(list));
        }
        items.push(Value::pair("vmm-path", path(&self.vmm_path)));
        items.push(Value::pair("token-file", path(&self.token_file)));
        items.push(Value::pair("xend-unix-path", path(&self.unix_path)));
        if let Some(group) = &self.admin_group {
            items.push(Value::pair("xend-admin-group", group.as_str()));
        }
        items.push(Value::pair("xend-tcp-auth", self.tcp_auth.as_str()));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            items.push(Value::pair("xend-tls-cert", path(cert)));
            items.push(Value::pair("xend-tls-key", path(key)));
        }
        if !self.server_names.is_empty() {
            let mut names = vec![Value::str("xend-server-names")];
            names.extend(self.server_names.iter().map(|n| Value::str(n.as_str())));
            items.push(Value::List(names));
        }
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        items.push(Value::pair(
            "xend-event-inject-tcp",
            yes_no(self.event_inject_tcp),
        ));
        items.push(Value::pair("xend-max-connections", self.max_connections));
        items.push(Value::pair("xend-header-timeout", self.header_timeout));
        items.push(Value::pair("xend-body-timeout", self.body_timeout));
        items.push(Value::pair("min-restart-time", self.min_restart_time));
        items.push(Value::pair("max-request-bytes", self.max_request_bytes));
        items.push(Value::pair("vmm-timeout", self.vmm_timeout));
        items.push(Value::pair("vmm-jail", yes_no(self.vmm_jail)));
        items.push(Value::pair("vmm-jail-uid-base", self.vmm_jail_uid_base));
        items.push(Value::pair("xend-sample-interval", self.sample_interval));
        for (key, v) in [
            ("network-script", &self.network_script),
            ("vif-bridge", &self.vif_bridge),
            ("vif-script", &self.vif_script),
        ] {
            if let Some(v) = v {
                items.push(Value::pair(key, v));
            }
        }
        items.push(Value::pair(
            "cgroup-parent",
            self.cgroup_parent.as_deref().unwrap_or("none"),
        ));
        Value::List(items)
    }

    fn parse(text: &str, origin: &str, base: Option<&Path>) -> Result<XendConfig, ConfigError> {
        let err = |pos: Pos, message: String| ConfigError::at(origin, pos, message);
        let top = sxp::parse_all_spanned(text).map_err(|e| ConfigError::syntax(origin, e))?;
        let fields: Vec<&Spanned> = match top.as_slice() {
            [one] if one.head() == Some("xend-config") => one.rest().iter().collect(),
            _ => top.iter().collect(),
        };
        let mut config = XendConfig::default();
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for field in fields {
            let pos = Pos::of(field);
            let Some(key) = field.head() else {
                return Err(err(
                    pos,
                    format!(
                        "expected a setting (key value), e.g. (xend-port 8000), found {}",
                        field.to_value()
                    ),
                ));
            };
            if !XEND_KEYS.contains(&key) {
                let near = XEND_KEYS
                    .iter()
                    .filter(|k| super::domain_xm::edit_distance(k, key) <= 2)
                    .min_by_key(|k| super::domain_xm::edit_distance(k, key));
                if let Some(near) = near {
                    return Err(err(
                        pos,
                        format!(
                            "unknown key {key} (did you mean {near}?); known keys: {}",
                            XEND_KEYS.join(", ")
                        ),
                    ));
                }
                config.ignored.push(
                    err(
                        pos,
                        format!("unknown key {key} ignored (this xend does not use it)"),
                    )
                    .to_string(),
                );
                continue;
            }
            if let Some(first) = seen.insert(key, pos) {
                return Err(err(
                    pos,
                    format!(
                        "duplicate key {key}: it is already set at {}:{}",
                        first.line, first.col
                    ),
                ));
            }
            if matches!(key, "network-script" | "vif-script") {
                // Xen's stock config names both: read and kept, but a user
                // should know nothing runs them.
                config.ignored.push(
                    err(
                        pos,
                        format!(
                            "{key} is kept but never run: xend creates each vif's TAP device \
                             and attaches it to its bridge itself"
                        ),
                    )
                    .to_string(),
                );
            }
            if matches!(key, "disk-dirs" | "kernel-dirs") {
                let dirs = dir_list(key, field.rest(), base, origin)?;
                match key {
                    "disk-dirs" => config.disk_dirs = dirs,
                    _ => config.kernel_dirs = dirs,
                }
                continue;
            }
            if key == "xend-server-names" {
                for v in field.rest() {
                    let name = v.as_str().filter(|n| valid_server_name(n)).ok_or_else(|| {
                        err(
                            Pos::of(v),
                            format!(
                                "xend-server-names lists host names (letters, digits, '-' and '.'), found {}",
                                v.to_value()
                            ),
                        )
                    })?;
                    config.server_names.push(name.to_ascii_lowercase());
                }
                continue;
            }
            let (value, vpos) = match field.rest() {
                [v] => match v.as_str() {
                    Some(s) => (s, Pos::of(v)),
                    None => {
                        return Err(err(
                            Pos::of(v),
                            format!(
                                "{key} must be a single value, found a list {}",
                                v.to_value()
                            ),
                        ));
                    }
                },
                [] => {
                    return Err(err(
                        pos,
                        format!("({key}) has no value: write ({key} VALUE)"),
                    ));
                }
                [_, extra, ..] => {
                    return Err(err(
                        Pos::of(extra),
                        format!(
                            "({key} ...) takes one value, found another: {}",
                            extra.to_value()
                        ),
                    ));
                }
            };
            let bad = |m: String| err(vpos, m);
            let port = |zero_ok: bool| -> Result<u16, ConfigError> {
                match value.parse::<u16>() {
                    Ok(0) if !zero_ok => Err(bad(format!(
                        "{key} must be a TCP port between 1 and 65535, found 0"
                    ))),
                    Ok(p) => Ok(p),
                    Err(_) => Err(bad(format!(
                        "{key} must be a TCP port between {} and 65535 (e.g. ({key} 8000)), found {value:?}",
                        u8::from(!zero_ok)
                    ))),
                }
            };
            let address = || -> Result<IpAddr, ConfigError> {
                match value {
                    "" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    _ => value.parse().map_err(|_| {
                        bad(format!("{key} must be an IP address (e.g. ({key} 127.0.0.1)), or '' for every interface, found {value:?}"))
                    }),
                }
            };
            let path = || -> Result<PathBuf, ConfigError> {
                if value.is_empty() {
                    return Err(bad(format!("{key} must be a path, found ''")));
                }
                let p = PathBuf::from(value);
                Ok(match base {
                    Some(base) if p.is_relative() => base.join(p),
                    _ => p,
                })
            };
            let whole = |example: &str| -> Result<u64, ConfigError> {
                value.parse().map_err(|_| {
                    bad(format!(
                        "{key} must be a whole number (e.g. ({key} {example})), found {value:?}"
                    ))
                })
            };
            match key {
                "xend-port" => config.xend_port = port(true)?,
                "xend-address" => config.xend_address = address()?,
                "xend-event-port" => config.xend_event_port = port(true)?,
                "xend-event-address" => config.xend_event_address = address()?,
                "console-port-base" => config.console_port_base = port(false)?,
                "console-address" => config.console_address = address()?,
                "logfile" => config.logfile = path()?,
                "loglevel" => {
                    config.loglevel = value.parse().map_err(|e: ValueError| bad(e.to_string()))?
                }
                "log-max-bytes" => config.log_max_bytes = whole("10485760")?,
                "log-keep" => {
                    let n = whole("5")?;
                    config.log_keep = u32::try_from(n)
                        .ok()
                        .filter(|n| *n <= 1000)
                        .ok_or_else(|| bad(format!("log-keep must be at most 1000, found {n}")))?;
                }
                "dbroot" => config.dbroot = path()?,
                "state-dir" => config.state_dir = path()?,
                "save-dir" => config.save_dir = path()?,
                "vmm-path" => config.vmm_path = path()?,
                "token-file" => config.token_file = path()?,
                "xend-unix-path" => config.unix_path = path()?,
                "xend-admin-group" => {
                    if value.is_empty()
                        || value.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control())
                    {
                        return Err(bad(format!(
                            "xend-admin-group must be a group name or number, found {value:?}"
                        )));
                    }
                    config.admin_group = Some(value.to_owned());
                }
                "xend-tcp-auth" => {
                    config.tcp_auth = match value {
                        "token" => TcpAuth::Token,
                        "none" => TcpAuth::None,
                        _ => {
                            return Err(bad(format!(
                                "xend-tcp-auth must be token or none, found {value:?}"
                            )));
                        }
                    }
                }
                "xend-tls-cert" => config.tls_cert = Some(path()?),
                "xend-tls-key" => config.tls_key = Some(path()?),
                "xend-event-inject-tcp" => {
                    config.event_inject_tcp = yes_no(value).ok_or_else(|| {
                        bad(format!(
                            "xend-event-inject-tcp must be yes or no, found {value:?}"
                        ))
                    })?
                }
                "xend-max-connections" => {
                    let n = whole("4096")?;
                    config.max_connections = u32::try_from(n)
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "xend-max-connections must be between 1 and 100000, found {n}"
                            ))
                        })?;
                }
                "xend-header-timeout" | "xend-body-timeout" => {
                    let secs = value
                        .parse::<f64>()
                        .ok()
                        .filter(|t| t.is_finite() && (0.1..=3600.0).contains(t))
                        .ok_or_else(|| {
                            bad(format!(
                                "{key} must be a number of seconds between 0.1 and 3600, found {value:?}"
                            ))
                        })?;
                    if key == "xend-header-timeout" {
                        config.header_timeout = secs;
                    } else {
                        config.body_timeout = secs;
                    }
                }
                "min-restart-time" => {
                    config.min_restart_time = value
                        .parse::<f64>()
                        .ok()
                        .filter(|t| t.is_finite() && (0.0..=86400.0).contains(t))
                        .ok_or_else(|| {
                            bad(format!(
                                "min-restart-time must be a number of seconds between 0 and 86400 (e.g. (min-restart-time 20)), found {value:?}"
                            ))
                        })?;
                }
                "max-request-bytes" => {
                    let n = whole("1048576")?;
                    if n < 1024 {
                        return Err(bad(format!(
                            "max-request-bytes must be at least 1024, found {n}"
                        )));
                    }
                    config.max_request_bytes = n;
                }
                "vmm-timeout" => {
                    config.vmm_timeout = value
                        .parse::<f64>()
                        .ok()
                        .filter(|t| t.is_finite() && (MIN_VMM_TIMEOUT..=MAX_VMM_TIMEOUT).contains(t))
                        .ok_or_else(|| {
                            bad(format!(
                                "vmm-timeout must be a number of seconds between {MIN_VMM_TIMEOUT} and {MAX_VMM_TIMEOUT} (e.g. (vmm-timeout 2)), found {value:?}"
                            ))
                        })?;
                }
                "vmm-jail" => {
                    config.vmm_jail = yes_no(value).ok_or_else(|| {
                        bad(format!("vmm-jail must be yes or no, found {value:?}"))
                    })?;
                }
                "vmm-jail-uid-base" => {
                    config.vmm_jail_uid_base = value
                        .parse::<u32>()
                        .ok()
                        .filter(|b| (1..=MAX_JAIL_UID_BASE).contains(b))
                        .ok_or_else(|| {
                            bad(format!(
                                "vmm-jail-uid-base must be a uid between 1 and {MAX_JAIL_UID_BASE} (e.g. (vmm-jail-uid-base {DEFAULT_JAIL_UID_BASE})), found {value:?}"
                            ))
                        })?;
                }
                "xend-sample-interval" => {
                    config.sample_interval = value
                        .parse::<f64>()
                        .ok()
                        .filter(|t| {
                            t.is_finite() && (MIN_SAMPLE_INTERVAL..=MAX_SAMPLE_INTERVAL).contains(t)
                        })
                        .ok_or_else(|| {
                            bad(format!(
                                "xend-sample-interval must be a number of seconds between {MIN_SAMPLE_INTERVAL} and {MAX_SAMPLE_INTERVAL} (e.g. (xend-sample-interval 1.0)), found {value:?}"
                            ))
                        })?;
                }
                "network-script" => config.network_script = Some(value.to_owned()),
                "vif-bridge" => config.vif_bridge = Some(value.to_owned()),
                "vif-script" => config.vif_script = Some(value.to_owned()),
                "cgroup-parent" => {
                    config.cgroup_parent = match value {
                        "none" => None,
                        v if valid_cgroup_name(v) => Some(v.to_owned()),
                        v => {
                            return Err(bad(format!(
                                "cgroup-parent must be one directory name of letters, digits, '.', '_' or '-' (at most 64, e.g. (cgroup-parent xend)) or none, found {v:?}"
                            )));
                        }
                    }
                }
                _ => unreachable!("every key of XEND_KEYS is handled"),
            }
        }
        if !seen.contains_key("xend-event-address") {
            config.xend_event_address = config.xend_address;
        }
        if !seen.contains_key("save-dir") {
            config.save_dir = config.state_dir.join("save");
        }
        if !seen.contains_key("xend-unix-path") {
            config.unix_path = config.state_dir.join("xend.sock");
        }
        match (seen.get("xend-tls-cert"), seen.get("xend-tls-key")) {
            (Some(_), None) => {
                return Err(err(
                    seen["xend-tls-cert"],
                    "xend-tls-cert needs xend-tls-key (the certificate's private key)".into(),
                ));
            }
            (None, Some(pos)) => {
                return Err(err(
                    *pos,
                    "xend-tls-key needs xend-tls-cert (the certificate chain it belongs to)".into(),
                ));
            }
            _ => {}
        }
        Ok(config)
    }
}

/// `yes`/`no` (also `true`/`false`, `1`/`0`), as the original's boolean keys.
fn yes_no(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Some(true),
        "no" | "false" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// A DNS host name: labels of letters, digits and `-`, joined by `.`.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The token a token file's text holds: its first line, trimmed, printable
/// ASCII without spaces.
pub fn parse_token(text: &str) -> Option<String> {
    let token = text.lines().next()?.trim();
    (!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())).then(|| token.to_owned())
}

/// The xend config a client on this host reads to find the local socket and
/// the token file: `$XEND_CONFIG`, else [`DEFAULT_CONFIG_FILE`] when it
/// exists; the defaults when there is none or it cannot be read (the server
/// reports config errors; a client only looks for paths).
pub fn client_config() -> XendConfig {
    let path = std::env::var("XEND_CONFIG")
        .ok()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()));
    path.as_deref()
        .and_then(|p| XendConfig::load(p).ok())
        .unwrap_or_default()
}

/// The directories of `(disk-dirs DIR ...)` / `(kernel-dirs DIR ...)`:
/// absolute paths, or relative to the config file's directory. An empty list
/// allows no directory at all.
fn dir_list(
    key: &str,
    values: &[Spanned],
    base: Option<&Path>,
    origin: &str,
) -> Result<Vec<PathBuf>, ConfigError> {
    values
        .iter()
        .map(|v| {
            let bad = |m: String| ConfigError::at(origin, Pos::of(v), m);
            let Some(s) = v.as_str() else {
                return Err(bad(format!(
                    "{key} takes directory paths, e.g. ({key} /var/lib/xen/images /srv/xen), found a list {}",
                    v.to_value()
                )));
            };
            if s.is_empty() {
                return Err(bad(format!("{key} must list directory paths, found ''")));
            }
            let p = PathBuf::from(s);
            Ok(match base {
                Some(base) if p.is_relative() => base.join(p),
                _ if p.is_relative() => {
                    return Err(bad(format!(
                        "{key} must list absolute directory paths, found {s:?}"
                    )));
                }
                _ => p,
            })
        })
        .collect()
}
