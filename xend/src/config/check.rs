//! Limits and the checks every domain-config value goes through, whichever form
//! it came from. Each check returns the message of a [`super::ConfigError`].

use std::net::IpAddr;
use std::path::Path;

/// Smallest memory a domain may have, in MiB.
pub const MIN_MEMORY_MIB: u64 = 2;
/// Largest memory (and maxmem) a domain may have, in MiB.
pub const MAX_MEMORY_MIB: u64 = 65536;
/// Most vCPUs a domain may have. This is `guest_abi::MAX_VCPUS`; the value is
/// repeated here so that the config formats do not depend on the guest ABI crate.
pub const MAX_VCPUS: u32 = 32;
/// Longest domain name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Most network interfaces (`nics`, or entries of `vif`) a domain may have.
pub const MAX_NICS: usize = 32;
/// Highest physical CPU number accepted for `cpu` (pinning).
pub const MAX_CPU: i64 = 4095;
/// Largest credit-scheduler weight.
pub const MAX_CPU_WEIGHT: u32 = 65535;

/// Whether `name` is a valid domain name: 1 to 64 characters, letters, digits and
/// `_-.:/+`, not starting with a digit (the reference's rule).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/+".contains(c))
}

pub(crate) fn name(found: &str, name: &str) -> Result<(), String> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid vm name: a name is 1 to {MAX_NAME_LEN} letters, digits and _-.:/+, not starting with a digit, found {found}"
        ))
    }
}

pub(crate) fn memory(key: &str, mib: u64) -> Result<(), String> {
    if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) {
        Ok(())
    } else {
        Err(format!(
            "{key} must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, found {mib}"
        ))
    }
}

pub(crate) fn maxmem_at_least_memory(memory: u64, maxmem: u64) -> Result<(), String> {
    if maxmem >= memory {
        Ok(())
    } else {
        Err(format!(
            "maxmem ({maxmem} MiB) must be at least memory ({memory} MiB)"
        ))
    }
}

pub(crate) fn vcpus(n: u32) -> Result<(), String> {
    if (1..=MAX_VCPUS).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "vcpus must be between 1 and {MAX_VCPUS}, found {n}"
        ))
    }
}

pub(crate) fn cpu(n: i64) -> Result<(), String> {
    if (0..=MAX_CPU).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "cpu must be a CPU number between 0 and {MAX_CPU} (or -1 for no pinning), found {n}"
        ))
    }
}

pub(crate) fn cpu_weight(n: u32) -> Result<(), String> {
    if (1..=MAX_CPU_WEIGHT).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "cpu_weight must be between 1 and {MAX_CPU_WEIGHT}, found {n}"
        ))
    }
}

pub(crate) fn console(port: u16) -> Result<(), String> {
    if port == 0 {
        Err("console must be a TCP port between 1 and 65535, found 0".into())
    } else {
        Ok(())
    }
}

pub(crate) fn absolute_path(key: &str, path: &Path) -> Result<(), String> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(format!(
            "{key} must be an absolute path (e.g. /boot/image), found {:?}",
            path.display().to_string()
        ))
    }
}

/// A token inside a `disk` or `vif` entry: non-empty, no whitespace, commas,
/// `=`, quotes or parentheses (so that both forms can hold it).
pub(crate) fn token(what: &str, example: &str, s: &str) -> Result<(), String> {
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ",='\"()".contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "{what} must be a non-empty word without spaces, commas, '=', quotes or parentheses (e.g. {example}), found {s:?}"
        ))
    }
}

pub(crate) fn uname(s: &str) -> Result<(), String> {
    token("a disk's uname", "file:/srv/disk.img", s)?;
    match s.split_once(':') {
        Some((kind, path)) if !kind.is_empty() && !path.is_empty() => Ok(()),
        _ => Err(format!(
            "a disk's uname is TYPE:PATH (e.g. file:/srv/disk.img or phy:sda1), found {s:?}"
        )),
    }
}

pub(crate) fn mac(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(format!(
            "a vif's mac must be six hex pairs (e.g. aa:00:00:12:34:56), found {s:?}"
        ))
    }
}

pub(crate) fn ip(s: &str) -> Result<(), String> {
    s.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("a vif's ip must be an IP address (e.g. 10.0.0.2), found {s:?}"))
}
