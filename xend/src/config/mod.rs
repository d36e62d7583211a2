//! Configuration formats: domain configs (SXP `(vm ...)` and the xm/xl
//! `key = value` file) and xend's own `xend-config.sxp`.
//!
//! Both domain-config forms parse into one [`DomainConfig`]; [`XendConfig`] holds
//! the daemon's settings. Every error is a [`ConfigError`] that names the origin,
//! the line and column of the offending value, what was found and the expected
//! form, e.g. `dom.cfg:3:10: memory must be a whole number of MiB (e.g. memory =
//! 64), found "lots"`.

mod check;
mod console_tls;
mod domain;
mod domain_sxp;
mod domain_xm;
mod draft;
mod error;
mod xend;
mod xend_keywords;
mod xm;

#[cfg(test)]
mod tests;

pub use check::{
    MAX_CPU_CAP_PER_VCPU, MAX_CPU_WEIGHT, MAX_MEMORY_MIB, MAX_NAME_LEN, MAX_NICS, MAX_VCPUS,
    MIN_MEMORY_MIB, NAME_RULE, NameError, ValueError, check_domain_name, check_file_name, cpu_cap,
    cpu_weight, is_uuid, valid_name,
};
pub use console_tls::{ConsoleTls, console_tls};
pub use domain::{Device, DomainConfig, ExitAction, Image, RestartMode, VbdMode, vdev};
pub use error::ConfigError;
pub use xend::{
    DEFAULT_CONFIG_FILE, DEFAULT_DISK_DIRS, DEFAULT_KERNEL_DIRS, DEFAULT_TOKEN_FILE, LogLevel,
    TcpAuth, XEND_KEYS, XendConfig, client_config, parse_token, valid_server_name,
};
