//! Limits and the checks every domain-config value goes through, whichever form
//! it came from. Each check returns a [`ValueError`], the message of a
//! [`super::ConfigError`].

use std::net::IpAddr;
use std::path::Path;

/// Smallest memory a domain may have, in MiB.
pub const MIN_MEMORY_MIB: u64 = 2;
/// Largest memory (and maxmem) a domain may have, in MiB: what the VMM can
/// map (`hypervisor::builder::MAX_MEMORY_MIB`). These limits are the only
/// ones xend checks; the values are repeated here so that the config formats
/// (also built into the clients) do not depend on the hypervisor crate, and
/// the daemon asserts at compile time that they agree
/// (`supervisor::spawn`).
pub const MAX_MEMORY_MIB: u64 = 8192;
/// Most vCPUs a domain may have (`guest_abi::MAX_VCPUS`, asserted as above).
pub const MAX_VCPUS: u32 = 32;
/// Longest domain name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Most network interfaces (`nics`, or entries of `vif`) a domain may have.
pub const MAX_NICS: usize = 32;
/// Highest physical CPU number accepted for `cpu` (pinning).
pub const MAX_CPU: i64 = 4095;
/// Largest credit-scheduler weight.
pub const MAX_CPU_WEIGHT: u32 = 65535;
/// Largest credit-scheduler cap per vCPU, percent of one CPU.
pub const MAX_CPU_CAP_PER_VCPU: u32 = 100;

/// Why a name is refused by [`check_file_name`] or [`check_domain_name`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing given.
    #[error("it is empty")]
    Empty,
    /// Over [`MAX_NAME_LEN`] characters.
    #[error("it is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    /// A character outside the allowed set (`/`, whitespace, controls, ...).
    #[error("{0:?} is not allowed")]
    BadChar(char),
    /// `.`, `..`, or `..` inside (a path, not a name).
    #[error("'..' and a lone '.' are not allowed")]
    Dots,
    /// A leading `-` (it would read as an option to a command).
    #[error("it starts with '-'")]
    LeadingDash,
    /// A leading `.` (a hidden file, and the DB's temp-file prefix).
    #[error("it starts with '.'")]
    LeadingDot,
    /// A leading digit (a domain name would read as a domain id).
    #[error("it starts with a digit")]
    LeadingDigit,
}

/// The one rule for every client-chosen name that becomes a file name (domain
/// names, vnet ids): 1 to 64 characters, each a letter, digit or one of
/// `_-.:+` (so no `/`, whitespace or control characters), not starting with
/// `-` or `.`, and no `..` anywhere. Such a name is always exactly one normal
/// path component: `dir.join(name)` stays directly inside `dir`.
pub fn check_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-.:+".contains(*c)))
    {
        return Err(NameError::BadChar(c));
    }
    if name.contains("..") || name == "." {
        return Err(NameError::Dots);
    }
    if name.starts_with('-') {
        return Err(NameError::LeadingDash);
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    Ok(())
}

/// A domain name: [`check_file_name`], and not starting with a digit (the
/// reference's rule: `lookup` tries names first, then ids).
pub fn check_domain_name(name: &str) -> Result<(), NameError> {
    check_file_name(name)?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(NameError::LeadingDigit);
    }
    Ok(())
}

/// Whether `name` is a valid domain name ([`check_domain_name`]).
pub fn valid_name(name: &str) -> bool {
    check_domain_name(name).is_ok()
}

/// How the name rule reads in messages.
pub const NAME_RULE: &str = "a name is 1 to 64 letters, digits and _-.:+, not starting with a digit, '-' or '.', without '..'";

/// Why a config value is refused. The message names the key, the rule and
/// what was found; the parsers add the position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A name outside [`NAME_RULE`].
    #[error("invalid vm name: {why}; {NAME_RULE}, found {found}")]
    Name {
        /// The name as written in the source.
        found: String,
        /// What is wrong with it.
        why: NameError,
    },
    /// `memory` or `maxmem` outside the limits.
    #[error("{key} must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, found {mib}")]
    Memory {
        /// `memory` or `maxmem`.
        key: &'static str,
        /// The value, MiB.
        mib: u64,
    },
    /// `maxmem` below `memory`.
    #[error("maxmem ({maxmem} MiB) must be at least memory ({memory} MiB)")]
    MaxmemBelowMemory {
        /// `memory`, MiB.
        memory: u64,
        /// `maxmem`, MiB.
        maxmem: u64,
    },
    /// `vcpus` outside 1..=[`MAX_VCPUS`].
    #[error("vcpus must be between 1 and {MAX_VCPUS}, found {0}")]
    Vcpus(u32),
    /// `cpu` outside 0..=[`MAX_CPU`].
    #[error("cpu must be a CPU number between 0 and {MAX_CPU} (or -1 for no pinning), found {0}")]
    Cpu(i64),
    /// `cpu_weight` outside 1..=[`MAX_CPU_WEIGHT`].
    #[error("cpu_weight must be between 1 and {MAX_CPU_WEIGHT}, found {0}")]
    CpuWeight(u32),
    /// `cpu_cap` above 100 per vCPU.
    #[error(
        "cpu_cap must be a percentage of one CPU between 0 (no cap) and {max} (100 per vCPU, {vcpus} vCPUs), found {cap}"
    )]
    CpuCap {
        /// The cap given.
        cap: u32,
        /// The domain's vCPUs.
        vcpus: u32,
        /// The largest cap for them.
        max: u32,
    },
    /// `console` 0.
    #[error("console must be a TCP port between 1 and 65535, found 0")]
    ConsolePortZero,
    /// A kernel or ramdisk path that is not absolute.
    #[error("{key} must be an absolute path (e.g. /boot/image), found {path:?}")]
    NotAbsolute {
        /// `kernel` or `ramdisk`.
        key: &'static str,
        /// The path.
        path: String,
    },
    /// A word inside a `disk` or `vif` entry with characters neither form can hold.
    #[error(
        "{what} must be a non-empty word without spaces, commas, '=', quotes or parentheses (e.g. {example}), found {found:?}"
    )]
    Token {
        /// What it is (`a disk's dev`).
        what: String,
        /// A good value.
        example: &'static str,
        /// The value.
        found: String,
    },
    /// A disk's uname that is not `TYPE:PATH`.
    #[error("a disk's uname is TYPE:PATH (e.g. file:/srv/disk.img or phy:sda1), found {0:?}")]
    Uname(String),
    /// A MAC address that is not six hex pairs.
    #[error("a vif's mac must be six hex pairs (e.g. aa:00:00:12:34:56), found {0:?}")]
    Mac(String),
    /// An IP address that does not parse.
    #[error("a vif's ip must be an IP address (e.g. 10.0.0.2), found {0:?}")]
    Ip(String),
    /// More than [`MAX_NICS`] vifs.
    #[error("at most {MAX_NICS} vifs are allowed, found {0}")]
    TooManyVifs(usize),
    /// A value that is not a number of the kind the key takes.
    #[error("{key} must be {what} (e.g. {example}), found {found}")]
    NotANumber {
        /// The key.
        key: String,
        /// What it takes (`a whole number of MiB`).
        what: String,
        /// A good entry, in the config's form.
        example: String,
        /// The value as written.
        found: String,
    },
    /// A keyword outside the accepted ones.
    #[error("{key} must be {choices}, found {found}")]
    Keyword {
        /// The key, or what the value is (`a disk's mode`).
        key: String,
        /// The accepted keywords (`a, b or c`).
        choices: String,
        /// The value as written.
        found: String,
    },
    /// A `disk` entry that is not three fields.
    #[error("a disk is 'TYPE:PATH,DEV,MODE' (e.g. 'file:/srv/disk.img,xvda,w'), found {0:?}")]
    DiskForm(String),
    /// A `vif` entry field that is not `KEY=VALUE`.
    #[error(
        "a vif is 'KEY=VALUE, ...' with keys {keys} (e.g. 'mac=aa:00:00:00:00:11, bridge=xen-br0'), found {0:?}",
        keys = VIF_KEYS.join(", ")
    )]
    VifField(String),
    /// A `vif` key outside [`VIF_KEYS`].
    #[error("unknown vif key {0:?}; known keys: {keys}", keys = VIF_KEYS.join(", "))]
    VifKey(String),
    /// A `vif` key given twice.
    #[error("duplicate vif key {key} in {entry:?}")]
    VifDuplicate {
        /// The key.
        key: String,
        /// The whole entry.
        entry: String,
    },
}

/// The keys of an xm `vif` entry.
pub(crate) const VIF_KEYS: &[&str] = &["mac", "bridge", "ip", "script", "vifname"];

pub(crate) fn name(found: &str, name: &str) -> Result<(), ValueError> {
    check_domain_name(name).map_err(|why| ValueError::Name {
        found: found.to_owned(),
        why,
    })
}

pub(crate) fn memory(key: &'static str, mib: u64) -> Result<(), ValueError> {
    if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) {
        Ok(())
    } else {
        Err(ValueError::Memory { key, mib })
    }
}

pub(crate) fn maxmem_at_least_memory(memory: u64, maxmem: u64) -> Result<(), ValueError> {
    if maxmem >= memory {
        Ok(())
    } else {
        Err(ValueError::MaxmemBelowMemory { memory, maxmem })
    }
}

pub(crate) fn vcpus(n: u32) -> Result<(), ValueError> {
    if (1..=MAX_VCPUS).contains(&n) {
        Ok(())
    } else {
        Err(ValueError::Vcpus(n))
    }
}

pub(crate) fn cpu(n: i64) -> Result<(), ValueError> {
    if (0..=MAX_CPU).contains(&n) {
        Ok(())
    } else {
        Err(ValueError::Cpu(n))
    }
}

pub fn cpu_weight(n: u32) -> Result<(), ValueError> {
    if (1..=MAX_CPU_WEIGHT).contains(&n) {
        Ok(())
    } else {
        Err(ValueError::CpuWeight(n))
    }
}

/// A credit cap for a domain of `vcpus`: 0..=100 per vCPU.
pub fn cpu_cap(cap: u32, vcpus: u32) -> Result<(), ValueError> {
    let max = MAX_CPU_CAP_PER_VCPU * vcpus.max(1);
    if cap <= max {
        Ok(())
    } else {
        Err(ValueError::CpuCap { cap, vcpus, max })
    }
}

pub(crate) fn console(port: u16) -> Result<(), ValueError> {
    if port == 0 {
        Err(ValueError::ConsolePortZero)
    } else {
        Ok(())
    }
}

pub(crate) fn absolute_path(key: &'static str, path: &Path) -> Result<(), ValueError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ValueError::NotAbsolute {
            key,
            path: path.display().to_string(),
        })
    }
}

/// A token inside a `disk` or `vif` entry: non-empty, no whitespace, commas,
/// `=`, quotes or parentheses (so that both forms can hold it).
pub(crate) fn token(what: &str, example: &'static str, s: &str) -> Result<(), ValueError> {
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ",='\"()".contains(c))
    {
        Ok(())
    } else {
        Err(ValueError::Token {
            what: what.to_owned(),
            example,
            found: s.to_owned(),
        })
    }
}

pub(crate) fn uname(s: &str) -> Result<(), ValueError> {
    token("a disk's uname", "file:/srv/disk.img", s)?;
    match s.split_once(':') {
        Some((kind, path)) if !kind.is_empty() && !path.is_empty() => Ok(()),
        _ => Err(ValueError::Uname(s.to_owned())),
    }
}

pub(crate) fn mac(s: &str) -> Result<(), ValueError> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(ValueError::Mac(s.to_owned()))
    }
}

pub(crate) fn ip(s: &str) -> Result<(), ValueError> {
    s.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| ValueError::Ip(s.to_owned()))
}

/// Why a `uuid` value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UuidError {
    /// A UUID, but not written in the canonical form.
    #[error("uuid must be 8-4-4-4-12 lowercase hex digits, found {found}: write {canonical}")]
    NotCanonical {
        /// The value as given.
        found: String,
        /// The same UUID in the canonical form.
        canonical: uuid::Uuid,
    },
    /// Not a UUID at all.
    #[error(
        "uuid must be 8-4-4-4-12 lowercase hex digits (e.g. 6f1c2a4e-0b7d-4c8e-9a51-3d2f0e6b7c90), found {0}"
    )]
    Malformed(String),
}

/// A domain UUID in the canonical form `8-4-4-4-12` lowercase hex digits
/// (`6f1c2a4e-0b7d-4c8e-9a51-3d2f0e6b7c90`), as every Xen 3-era tool wrote it.
/// `found` is how the value looked in the source.
pub(crate) fn uuid(found: &str, s: &str) -> Result<uuid::Uuid, UuidError> {
    let groups: Vec<&str> = s.split('-').collect();
    let canonical = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    match uuid::Uuid::try_parse(s) {
        Ok(u) if canonical => Ok(u),
        Ok(u) => Err(UuidError::NotCanonical {
            found: found.to_owned(),
            canonical: u,
        }),
        Err(_) => Err(UuidError::Malformed(found.to_owned())),
    }
}

/// Whether `s` is a UUID in the canonical form (for looking domains up).
pub fn is_uuid(s: &str) -> bool {
    uuid(s, s).is_ok()
}

/// `vcpu_avail` names a vCPU that would be offline.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "vcpu_avail {mask} leaves some of the {vcpus} vCPUs offline (all of them is {all}); \
     vCPU hot-plug is not supported: set vcpus to the number wanted and drop vcpu_avail"
)]
pub(crate) struct VcpuAvailError {
    mask: u64,
    vcpus: u32,
    all: u64,
}

/// `vcpu_avail`, the bitmap of online vCPUs later Xen tools sent: only "all
/// of them" can be honoured (vCPUs cannot be plugged or unplugged).
pub(crate) fn vcpu_avail(mask: u64, vcpus: u32) -> Result<(), VcpuAvailError> {
    let all = if vcpus >= 64 {
        u64::MAX
    } else {
        (1u64 << vcpus) - 1
    };
    if mask == all {
        Ok(())
    } else {
        Err(VcpuAvailError { mask, vcpus, all })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    /// What "stays inside its directory" means for one accepted name.
    fn assert_inside(name: &str) -> Result<(), TestCaseError> {
        let dir = Path::new("/var/lib/xen/xend-db/config");
        let joined = dir.join(name);
        prop_assert_eq!(joined.parent(), Some(dir), "{:?} left its directory", name);
        prop_assert!(joined.starts_with(dir));
        prop_assert_eq!(joined.file_name().and_then(|f| f.to_str()), Some(name));
        prop_assert!(!name.contains('/'));
        let parts: Vec<Component> = Path::new(name).components().collect();
        prop_assert_eq!(parts.len(), 1, "{:?} is not one component", name);
        prop_assert!(matches!(parts[0], Component::Normal(_)), "{:?}", name);
        for c in joined.components() {
            prop_assert!(
                !matches!(c, Component::ParentDir | Component::CurDir),
                "{:?} has a . or .. component",
                name
            );
        }
        prop_assert!(!name.starts_with('-') && !name.chars().any(char::is_control));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn accepted_names_stay_inside_their_directory(
            name in prop_oneof![
                any::<String>(),
                // The characters that make paths and options, densely.
                "[a-z0-9./+:_ \\-\n\t\x00\x1b]{0,8}",
                "(\\.\\.|\\.|/|-|a|1|:){1,6}",
            ]
        ) {
            if check_file_name(&name).is_ok() {
                assert_inside(&name)?;
            }
            if check_domain_name(&name).is_ok() {
                prop_assert!(check_file_name(&name).is_ok());
                assert_inside(&name)?;
            }
        }
    }

    #[track_caller]
    fn check(name: &str, want: Result<(), NameError>) {
        assert_eq!(check_domain_name(name), want, "{name:?}");
    }

    #[test]
    fn the_name_rule() {
        check("Domain-0", Ok(()));
        check("web1.example.com:8+x_y", Ok(()));
        check(&"a".repeat(64), Ok(()));
        check("", Err(NameError::Empty));
        check(&"a".repeat(65), Err(NameError::TooLong));
        check("../../../../srv/victim.txt", Err(NameError::BadChar('/')));
        check("a/b", Err(NameError::BadChar('/')));
        check("..", Err(NameError::Dots));
        check(".", Err(NameError::Dots));
        check("a..b", Err(NameError::Dots));
        check("-help", Err(NameError::LeadingDash));
        check(".hidden", Err(NameError::LeadingDot));
        check("1abc", Err(NameError::LeadingDigit));
        check("a b", Err(NameError::BadChar(' ')));
        check("a\nb", Err(NameError::BadChar('\n')));
        check("a\0b", Err(NameError::BadChar('\0')));
        check("caf\u{e9}", Err(NameError::BadChar('\u{e9}')));
        // Vnet ids may start with a digit; the rest is the same.
        assert_eq!(check_file_name("1010"), Ok(()));
        assert_eq!(check_file_name("-1"), Err(NameError::LeadingDash));
    }
}
