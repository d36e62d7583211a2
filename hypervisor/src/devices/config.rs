//! Device configuration strings, as `vmm --disk` / `--vif` and the
//! `device_attach` control request take them (Xen's `disk = [...]` and
//! `vif = [...]` entries).
use serde::{Deserialize, Serialize};

/// Errors in a device configuration string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A disk entry that is not `TYPE:PATH,DEV,MODE[,direct]`.
    #[error(
        "disk '{0}' is not TYPE:PATH,DEV,MODE (e.g. file:/var/disk.img,xvda,w; TYPE file or phy, MODE r, w or w!)"
    )]
    DiskSyntax(String),
    /// An unknown disk type.
    #[error("disk '{0}': type '{1}' is unknown (expected file: or phy:)")]
    DiskType(String, String),
    /// An unknown disk mode.
    #[error("disk '{0}': mode '{1}' is unknown (expected r, w or w!)")]
    DiskMode(String, String),
    /// A bad guest device name.
    #[error("disk '{0}': device name '{1}' must be 1-15 letters and digits (e.g. xvda)")]
    DiskDev(String, String),
    /// An unknown disk option.
    #[error("disk '{0}': option '{1}' is unknown (expected direct)")]
    DiskOption(String, String),
    /// A vif entry with a key we do not know.
    #[error("vif '{0}': key '{1}' is unknown (expected mac=, bridge=)")]
    VifKey(String, String),
    /// A malformed MAC address.
    #[error("vif '{0}': MAC '{1}' is not six hex bytes like aa:00:00:12:34:56")]
    VifMac(String, String),
    /// A bridge name Linux would refuse.
    #[error("vif '{0}': bridge name '{1}' must be 1-15 characters without '/', ':' or spaces")]
    VifBridge(String, String),
}

/// How the guest may use a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskMode {
    /// Read-only; a shared lock (others may read it too).
    #[serde(rename = "r")]
    ReadOnly,
    /// Read-write; an exclusive lock refuses it to any other domain.
    #[serde(rename = "w")]
    ReadWrite,
    /// Read-write without a lock (the administrator knows it is shared).
    #[serde(rename = "w!")]
    ReadWriteShared,
}

impl DiskMode {
    /// The Xen spelling: `r`, `w`, `w!`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DiskMode::ReadOnly => "r",
            DiskMode::ReadWrite => "w",
            DiskMode::ReadWriteShared => "w!",
        }
    }
}

/// One virtual block device: `file:/path,xvda,w` or `phy:/dev/sdb,xvdb,r`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskConfig {
    /// The backend as given (`file:/path` or `phy:/dev/X`).
    pub uname: String,
    /// The host path.
    pub path: String,
    /// The name the guest sees (`xvda`).
    pub dev: String,
    /// Access mode.
    pub mode: DiskMode,
    /// Open with `O_DIRECT` (bypass the host page cache).
    pub direct: bool,
}

impl DiskConfig {
    /// Parse `TYPE:PATH,DEV,MODE[,direct]`.
    pub fn parse(s: &str) -> Result<DiskConfig, ConfigError> {
        let syntax = || ConfigError::DiskSyntax(s.to_string());
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() < 3 {
            return Err(syntax());
        }
        let (kind, path) = parts[0].split_once(':').ok_or_else(syntax)?;
        if !matches!(kind, "file" | "phy") {
            return Err(ConfigError::DiskType(s.into(), kind.into()));
        }
        if path.is_empty() {
            return Err(syntax());
        }
        let dev = parts[1];
        if dev.is_empty()
            || dev.len() >= guest_abi::DEVICE_NAME_LEN
            || !dev.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ConfigError::DiskDev(s.into(), dev.into()));
        }
        let mode = match parts[2] {
            "r" => DiskMode::ReadOnly,
            "w" => DiskMode::ReadWrite,
            "w!" => DiskMode::ReadWriteShared,
            other => return Err(ConfigError::DiskMode(s.into(), other.into())),
        };
        let mut direct = false;
        for opt in &parts[3..] {
            match *opt {
                "direct" => direct = true,
                other => return Err(ConfigError::DiskOption(s.into(), other.into())),
            }
        }
        Ok(DiskConfig {
            uname: parts[0].to_string(),
            path: path.to_string(),
            dev: dev.to_string(),
            mode,
            direct,
        })
    }
}

/// One virtual network interface: `mac=aa:00:00:12:34:56,bridge=xenbr0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VifConfig {
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// The bridge the host-side TAP joins, if any.
    pub bridge: Option<String>,
}

impl VifConfig {
    /// Parse `key=value` pairs separated by commas (all optional). Without
    /// `mac=` a random `aa:00:00:XX:XX:XX` is chosen.
    pub fn parse(s: &str) -> Result<VifConfig, ConfigError> {
        let mut mac = None;
        let mut bridge = None;
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            match k.trim() {
                "mac" => {
                    mac = Some(
                        parse_mac(v.trim())
                            .ok_or_else(|| ConfigError::VifMac(s.into(), v.trim().into()))?,
                    )
                }
                "bridge" => {
                    let b = v.trim();
                    if b.is_empty()
                        || b.len() > 15
                        || b.contains(['/', ':'])
                        || b.contains(char::is_whitespace)
                    {
                        return Err(ConfigError::VifBridge(s.into(), b.into()));
                    }
                    bridge = Some(b.to_string());
                }
                other => return Err(ConfigError::VifKey(s.into(), other.into())),
            }
        }
        Ok(VifConfig {
            mac: mac.unwrap_or_else(random_mac),
            bridge,
        })
    }
}

/// `aa:bb:cc:dd:ee:ff` to bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Bytes to `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A random locally administered unicast MAC, `aa:00:00:XX:XX:XX` (Xen's style).
pub fn random_mac() -> [u8; 6] {
    let mut tail = [0u8; 3];
    // SAFETY: getrandom writes at most `tail.len()` bytes into `tail`.
    let n = unsafe { libc::getrandom(tail.as_mut_ptr().cast(), tail.len(), 0) };
    if n != tail.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id();
        tail.copy_from_slice(&t.to_le_bytes()[..3]);
    }
    [0xaa, 0, 0, tail[0], tail[1], tail[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_parse_and_errors_name_the_problem() {
        let d = DiskConfig::parse("file:/tmp/d.img,xvda,w").unwrap();
        assert_eq!(d.path, "/tmp/d.img");
        assert_eq!(d.dev, "xvda");
        assert_eq!(d.mode, DiskMode::ReadWrite);
        assert!(!d.direct);
        let d = DiskConfig::parse("phy:/dev/loop0, xvdb, w!, direct").unwrap();
        assert_eq!(d.mode, DiskMode::ReadWriteShared);
        assert!(d.direct);
        assert_eq!(
            DiskConfig::parse("file:/x,xvda,r").unwrap().mode,
            DiskMode::ReadOnly
        );
        let e = DiskConfig::parse("nbd:/x,xvda,w").unwrap_err();
        assert!(e.to_string().contains("type 'nbd' is unknown"), "{e}");
        let e = DiskConfig::parse("file:/x,xvda,rw").unwrap_err();
        assert!(e.to_string().contains("mode 'rw' is unknown"), "{e}");
        assert!(DiskConfig::parse("file:/x").is_err());
        assert!(DiskConfig::parse("file:,xvda,w").is_err());
        assert!(DiskConfig::parse("file:/x,xv/da,w").is_err());
        assert!(DiskConfig::parse("file:/x,xvda,w,fast").is_err());
    }

    #[test]
    fn vifs_parse_with_random_mac() {
        let v = VifConfig::parse("mac=aa:00:00:12:34:56, bridge=xenbr0").unwrap();
        assert_eq!(v.mac, [0xaa, 0, 0, 0x12, 0x34, 0x56]);
        assert_eq!(v.bridge.as_deref(), Some("xenbr0"));
        let v = VifConfig::parse("").unwrap();
        assert_eq!(&v.mac[..3], &[0xaa, 0, 0]);
        assert_eq!(v.bridge, None);
        assert!(VifConfig::parse("mac=aa:00").is_err());
        assert!(VifConfig::parse("mac=aa:00:00:12:34:zz").is_err());
        assert!(VifConfig::parse("bridge=a/b").is_err());
        assert!(VifConfig::parse("ip=1.2.3.4").is_err());
        assert_eq!(format_mac(&[0xaa, 0, 0, 1, 0xb, 0xff]), "aa:00:00:01:0b:ff");
    }
}
