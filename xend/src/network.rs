//! Host networking for vifs: the Linux bridges vifs join (created when a vif
//! names a missing one, as Xen's `network-bridge` script did) and vnets (a
//! vnet is a named, isolated bridge xend creates and deletes).
//!
//! Bridges are made with iproute2 (`ip link add NAME type bridge`, `ip link
//! set NAME up`, `ip link del NAME`): xend may not use `unsafe` (so no raw
//! bridge ioctls), iproute2 is what Xen's own network scripts run, and it acts
//! in xend's network namespace like the VMMs xend starts (bridges and their
//! ports are listed with `ip -o link show` too).
//!
//! Vnets are stored as `<dbroot>/vnet/<id>` files holding their sxpr, so they
//! survive a restart of xend. A vnet id follows the name rule
//! ([`crate::config::check_file_name`]: it may start with a digit, as Xen's
//! vnet ids do), so it always names a file inside that directory; bridge
//! names follow Linux's interface-name rule and never start with `-`.
use std::path::{Path, PathBuf};
use std::process::Command;

use sxp::Value;

use crate::config::NameError;
use crate::fsutil::{Create, FileModes};

/// The default bridge vifs join when neither the vif nor `vif-bridge` names one.
pub const DEFAULT_BRIDGE: &str = "xenbr0";

/// Errors of bridge and vnet operations.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// `ip` failed.
    #[error("cannot {what}: {why}")]
    Ip {
        /// What was attempted.
        what: String,
        /// `ip`'s message.
        why: String,
    },
    /// A bridge name Linux would refuse, or one that reads as an option.
    #[error(
        "bridge name {0:?} must be 1-15 letters, digits, '.', '_' or '-', not starting with '-', and not . or .."
    )]
    BadBridge(String),
    /// A vnet id that cannot name a file.
    #[error("vnet id {id:?}: {why}; {rule} (digits first are fine)", rule = crate::config::NAME_RULE)]
    BadId {
        /// The id.
        id: String,
        /// What is wrong with it.
        why: NameError,
    },
    /// The vnet config is not `(vnet (id ID) ...)`.
    #[error("{0}")]
    BadConfig(String),
    /// No vnet with this id.
    #[error("no such vnet: {0}")]
    NoVnet(String),
    /// The id is taken.
    #[error("vnet {0} already exists")]
    VnetExists(String),
    /// The bridge exists already (a vnet's bridge is its own).
    #[error("bridge {0} already exists; a vnet needs a bridge of its own")]
    BridgeExists(String),
    /// Interfaces are still attached.
    #[error("vnet {0} still has interfaces attached ({1}); detach them first")]
    Busy(String, String),
    /// The vnet store could not be read or written.
    #[error("vnet store {0}: {1}")]
    Store(String, std::io::Error),
}

/// Whether `name` is a valid bridge name: what Linux accepts as an interface
/// name (`dev_valid_name`: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// whitespace), narrowed to letters, digits, `.`, `_` and `-`, and never
/// starting with `-` (it is an argument to `ip`).
pub fn valid_bridge(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Whether the bridge `name` exists in xend's network namespace.
pub fn bridge_exists(name: &str) -> bool {
    links(&["-o", "link", "show", "type", "bridge"])
        .iter()
        .any(|l| l == name)
}

/// The interfaces attached to bridge `name` (sorted).
pub fn bridge_ports(name: &str) -> Vec<String> {
    let mut ports = links(&["-o", "link", "show", "master", name]);
    ports.sort();
    ports
}

/// Interface names `ip ARGS` lists (`N: NAME[@PEER]: <FLAGS> ...` lines).
/// `ip` rather than sysfs: sysfs shows the namespace it was mounted in,
/// which need not be xend's.
fn links(args: &[&str]) -> Vec<String> {
    let Ok(out) = Command::new("ip").args(args).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .collect()
}

fn ip(what: &str, args: &[&str]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError::Ip {
            what: what.into(),
            why: format!("cannot run ip: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Ip {
            what: what.into(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Create bridge `name` and bring it up unless it exists. Returns whether it
/// was created.
pub fn ensure_bridge(name: &str) -> Result<bool, NetError> {
    if !valid_bridge(name) {
        return Err(NetError::BadBridge(name.into()));
    }
    if bridge_exists(name) {
        return Ok(false);
    }
    let what = format!("create bridge {name}");
    if let Err(e) = ip(&what, &["link", "add", name, "type", "bridge"]) {
        // Someone else may have created it meanwhile.
        if !bridge_exists(name) {
            return Err(e);
        }
    }
    ip(
        &format!("bring bridge {name} up"),
        &["link", "set", name, "up"],
    )?;
    tracing::info!("created bridge {name}");
    Ok(true)
}

/// Delete bridge `name`.
pub fn delete_bridge(name: &str) -> Result<(), NetError> {
    if !valid_bridge(name) {
        return Err(NetError::BadBridge(name.into()));
    }
    ip(&format!("delete bridge {name}"), &["link", "del", name])
}

/// A vnet: an isolated bridge under an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vnet {
    /// Its id.
    pub id: String,
    /// Its bridge.
    pub bridge: String,
    /// `security` as given (kept, not acted on).
    pub security: Option<String>,
}

impl Vnet {
    /// Parse `(vnet (id ID) [(bridge NAME)] [(vnetif NAME)] [(security LEVEL)])`;
    /// the bridge defaults to `vnetID` (cut to 15 characters).
    pub fn parse(text: &str) -> Result<Vnet, NetError> {
        const EXAMPLE: &str = "(vnet (id 1010) (bridge vnet1010))";
        let v = sxp::parse(text).map_err(|e| {
            NetError::BadConfig(format!("config:{}:{}: {}", e.line, e.col, e.message))
        })?;
        if v.head() != Some("vnet") {
            return Err(NetError::BadConfig(format!(
                "a vnet config is {EXAMPLE}, found {}",
                v
            )));
        }
        let mut id = None;
        let mut bridge = None;
        let mut security = None;
        for item in v.rest() {
            let (Some(key), Some(value)) =
                (item.head(), item.rest().first().and_then(Value::as_str))
            else {
                return Err(NetError::BadConfig(format!(
                    "a vnet field is (KEY VALUE) with KEY id, bridge, vnetif or security, found {item}"
                )));
            };
            match key {
                "id" => id = Some(value.to_string()),
                "bridge" => bridge = Some(value.to_string()),
                "security" => security = Some(value.to_string()),
                "vnetif" => {}
                other => {
                    return Err(NetError::BadConfig(format!(
                        "unknown vnet field {other:?}: expected id, bridge, vnetif or security"
                    )));
                }
            }
        }
        let id = id.ok_or_else(|| NetError::BadConfig(format!("a vnet needs an id: {EXAMPLE}")))?;
        check_id(&id)?;
        let bridge = bridge.unwrap_or_else(|| {
            let mut b = format!("vnet{id}").replace(':', "-");
            b.truncate(15);
            b
        });
        if !valid_bridge(&bridge) {
            return Err(NetError::BadBridge(bridge));
        }
        Ok(Vnet {
            id,
            bridge,
            security,
        })
    }

    /// `(vnet (id ID) (bridge NAME) [(security L)])`, the stored form.
    pub fn to_sxp(&self) -> Value {
        let mut items = vec![
            Value::str("vnet"),
            Value::pair("id", self.id.as_str()),
            Value::pair("bridge", self.bridge.as_str()),
        ];
        if let Some(s) = &self.security {
            items.push(Value::pair("security", s.as_str()));
        }
        Value::List(items)
    }

    /// The stored form plus `(vifs IF ...)`: the interfaces on its bridge.
    pub fn info_sxp(&self) -> Value {
        let mut v = self.to_sxp();
        if let Value::List(items) = &mut v {
            let mut vifs = vec![Value::str("vifs")];
            vifs.extend(bridge_ports(&self.bridge).into_iter().map(Value::Str));
            items.push(Value::List(vifs));
        }
        v
    }
}

fn check_id(id: &str) -> Result<(), NetError> {
    crate::config::check_file_name(id).map_err(|why| NetError::BadId { id: id.into(), why })
}

/// The vnets stored under `<dbroot>/vnet`.
#[derive(Clone, Debug)]
pub struct Vnets {
    dir: PathBuf,
    modes: FileModes,
}

impl Vnets {
    /// The store under `dbroot`; files get `modes`.
    pub fn new(dbroot: &Path, modes: FileModes) -> Vnets {
        Vnets {
            dir: dbroot.join("vnet"),
            modes,
        }
    }

    /// The record of vnet `id` (checked: inside the store).
    fn path(&self, id: &str) -> Result<PathBuf, NetError> {
        check_id(id)?;
        Ok(self.dir.join(id))
    }

    fn store_err(&self, e: std::io::Error) -> NetError {
        NetError::Store(self.dir.display().to_string(), e)
    }

    /// Every vnet, by id.
    pub fn list(&self) -> Vec<Vnet> {
        let mut out: Vec<Vnet> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter_map(|t| Vnet::parse(&t).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The vnet `id`.
    pub fn get(&self, id: &str) -> Result<Vnet, NetError> {
        let path = self.path(id).map_err(|_| NetError::NoVnet(id.into()))?;
        let text = std::fs::read_to_string(path).map_err(|_| NetError::NoVnet(id.into()))?;
        Vnet::parse(&text)
    }

    /// Create `vnet`: its bridge (which must not exist yet) and its record.
    pub fn create(&self, vnet: &Vnet) -> Result<(), NetError> {
        let path = self.path(&vnet.id)?;
        if !valid_bridge(&vnet.bridge) {
            return Err(NetError::BadBridge(vnet.bridge.clone()));
        }
        self.modes
            .own_dir(&self.dir)
            .map_err(|e| self.store_err(e))?;
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(NetError::VnetExists(vnet.id.clone()));
        }
        if self.list().iter().any(|v| v.bridge == vnet.bridge) {
            return Err(NetError::BridgeExists(vnet.bridge.clone()));
        }
        // Reserve the id first (two creations of one id: one wins).
        self.modes
            .open(&path, Create::New)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => NetError::VnetExists(vnet.id.clone()),
                _ => self.store_err(e),
            })?;
        let made = if bridge_exists(&vnet.bridge) {
            Err(NetError::BridgeExists(vnet.bridge.clone()))
        } else {
            ensure_bridge(&vnet.bridge).map(|_| ())
        };
        let saved = made.and_then(|()| {
            crate::db::write_atomic(&path, format!("{}\n", vnet.to_sxp()).as_bytes(), self.modes)
                .map_err(|e| self.store_err(std::io::Error::other(e.to_string())))
        });
        if saved.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        saved
    }

    /// Delete vnet `id` and its bridge; refused while interfaces are attached.
    pub fn delete(&self, id: &str) -> Result<Vnet, NetError> {
        let vnet = self.get(id)?;
        let ports = bridge_ports(&vnet.bridge);
        if !ports.is_empty() {
            return Err(NetError::Busy(vnet.id, ports.join(", ")));
        }
        if bridge_exists(&vnet.bridge) {
            delete_bridge(&vnet.bridge)?;
        }
        std::fs::remove_file(self.path(id)?).map_err(|e| self.store_err(e))?;
        Ok(vnet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_configs() {
        let v = Vnet::parse("(vnet (id 1010) (bridge vnbr1) (security none))").unwrap();
        assert_eq!(v.id, "1010");
        assert_eq!(v.bridge, "vnbr1");
        assert_eq!(
            v.to_sxp().to_string(),
            "(vnet (id 1010) (bridge vnbr1) (security none))"
        );
        let v = Vnet::parse("(vnet (id 0123456789abcdef))").unwrap();
        assert_eq!(v.bridge, "vnet0123456789a");
        for bad in [
            "(vnet (bridge b))",
            "(vif (id 1))",
            "(vnet (id ../x))",
            "(vnet (id ..))",
            "(vnet (id -help))",
            "(vnet (id a/b))",
            "(vnet (id .x))",
            "(vnet (id 1) (bridge has/slash))",
            "(vnet (id 1) (bridge -help))",
            "(vnet (id 1) (bridge ..))",
            "(vnet (id 1) (bridge a:b))",
            "(vnet (id 1) (colour red))",
            "(vnet (id 1",
        ] {
            assert!(Vnet::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn bridge_names() {
        assert!(valid_bridge("xenbr0"));
        assert!(!valid_bridge("a-name-longer-than-15"));
        assert!(!valid_bridge("a b"));
        assert!(!valid_bridge(""));
        assert!(valid_bridge("br-0.1_x"));
        assert!(valid_bridge(&"b".repeat(15)));
        for bad in [
            "-help", "-", ".", "..", "a/b", "a:b", "a\tb", "a\nb", "br\u{e9}",
        ] {
            assert!(!valid_bridge(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_vnet_store_stays_in_its_directory_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Vnets::new(dir.path(), FileModes::default());
        for bad in ["../x", "..", "a/b", "-x", ""] {
            assert!(
                matches!(store.path(bad), Err(NetError::BadId { .. })),
                "{bad:?}"
            );
            assert!(
                matches!(store.get(bad), Err(NetError::NoVnet(_))),
                "{bad:?}"
            );
        }
        let p = store.path("1010").unwrap();
        assert_eq!(p.parent(), Some(dir.path().join("vnet").as_path()));
        store.modes.own_dir(&store.dir).unwrap();
        crate::db::write_atomic(&p, b"(vnet (id 1010))\n", store.modes).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&store.dir), 0o700);
        assert_eq!(store.get("1010").unwrap().bridge, "vnet1010");
    }

    proptest::proptest! {
        /// Whatever id a client sends, a vnet record path xend accepts is a
        /// direct child of `<dbroot>/vnet`.
        #[test]
        fn vnet_paths_stay_in_the_store(
            id in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[a-z0-9./\\-+: \\n\\x00]{0,8}",
            ]
        ) {
            let store = Vnets::new(Path::new("/var/lib/xen/xend-db"), FileModes::default());
            if let Ok(path) = store.path(&id) {
                proptest::prop_assert_eq!(path.parent(), Some(store.dir.as_path()));
                proptest::prop_assert_eq!(path.file_name().and_then(|f| f.to_str()), Some(id.as_str()));
            }
        }
    }
}
