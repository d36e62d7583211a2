//! A domain's block and network devices: the VMM's `--disk` / `--vif` flags
//! from the config, the bridges those vifs need, the MACs the VMM chose,
//! hot attach and detach (`device_create` / `device_destroy`). Their
//! figures are made in `stats.rs`, their sxprs in `render.rs`.
//!
//! The stored config follows the devices: a vif without a MAC gets the one
//! the VMM picked (so a restart keeps it), a hot-attached device is appended
//! and a detached one removed.
use std::sync::Arc;

use hypervisor::control::proto::{DeviceClass, DeviceRef, Payload, Request};

use super::confine::{ConfineError, Confinement};
use super::{Domain, SupError, Supervisor};
use crate::config::{ConfigError, Device, DomainConfig};
use crate::vmm_client::VmmError;

/// The VMM's `--disk` value for a vbd: `file:/canonical,DEV,MODE` or
/// `phy:/dev/X,DEV,MODE` (`phy:sda1` means `/dev/sda1`, as in Xen), once
/// `policy` allows the backend (see [`super::confine`]: `file:` inside
/// `disk-dirs`, `phy:` a block device under `/dev`). Every path by which a
/// disk reaches a VMM (create, restart, hot attach, restore, migration)
/// goes through here, at the moment the VMM is asked to open it.
pub fn vmm_disk(
    policy: &Confinement,
    uname: &str,
    dev: &str,
    mode: &str,
) -> Result<String, ConfineError> {
    Ok(policy.disk(uname)?.vmm_spec(dev, mode))
}

/// The VMM's `--vif` value: `mac=..,bridge=..` (the bridge defaults to `default_bridge`).
pub fn vmm_vif(mac: Option<&str>, bridge: Option<&str>, default_bridge: &str) -> String {
    let bridge = bridge.unwrap_or(default_bridge);
    match mac {
        Some(m) => format!("mac={m},bridge={bridge}"),
        None => format!("bridge={bridge}"),
    }
}

/// Check the devices of a config for what xend itself can tell: disk
/// backends must be ones `policy` allows, bridge names must be ones Linux
/// accepts.
pub fn check(cfg: &DomainConfig, policy: &Confinement) -> Result<(), SupError> {
    for d in &cfg.devices {
        match d {
            Device::Vbd { uname, .. } => {
                policy.disk(uname)?;
            }
            Device::Vif {
                bridge: Some(b), ..
            } if !crate::network::valid_bridge(b) => {
                return Err(SupError::Invalid(format!(
                    "Invalid parameter: config: {}",
                    crate::network::NetError::BadBridge(b.clone())
                )));
            }
            Device::Vif { .. } => {}
        }
    }
    Ok(())
}

/// Why a `device_create` config is refused (all 400s).
#[derive(Debug, thiserror::Error)]
pub enum DeviceConfigError {
    /// The config does not parse, or describes no device or a bad one.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `type` is neither `vbd` nor `vif`.
    #[error("Invalid parameter: type: {0:?}: expected vbd or vif")]
    Type(String),
    /// xm's text form without `type`.
    #[error(
        "Invalid parameter: config: expected (vbd ...) or (vif ...), or give type=vbd|vif with xm's text form"
    )]
    NoType,
    /// xm's text form with quotes or newlines.
    #[error("Invalid parameter: config: {0:?} may not hold quotes or newlines")]
    Quoted(String),
}

/// A [`ConfigError`] about the whole `config` parameter.
fn whole(message: String) -> DeviceConfigError {
    DeviceConfigError::Config(ConfigError {
        origin: "config".into(),
        line: 0,
        col: 0,
        message,
    })
}

/// Parse a `device_create` config: SXP `(vbd ...)` / `(vif ...)` (optionally
/// inside `(device ...)`), or xm's `file:/p,xvdb,w` / `mac=..,bridge=..` text
/// when `kind` (the `type` parameter) says which.
pub fn parse_device(text: &str, kind: Option<&str>) -> Result<Device, DeviceConfigError> {
    let text = text.trim();
    if text.starts_with('(') {
        let inner = match sxp::parse(text) {
            Ok(v) if v.head() == Some("device") => match v.rest().first() {
                Some(d) => d.to_string(),
                None => return Err(whole("(device) names no device".into())),
            },
            Ok(_) => text.to_string(),
            Err(e) => return Err(ConfigError::syntax("config", e).into()),
        };
        let wrapped = format!("(vm (name device) (memory 16) (device\n{inner}) (image (minios)))");
        let cfg = DomainConfig::parse(&wrapped, "config").map_err(|mut e| {
            // Line 1 is the wrapper; report positions in the client's text.
            if e.line > 1 {
                e.line -= 1;
            } else {
                e.line = 0;
                e.col = 0;
            }
            e
        })?;
        return cfg
            .devices
            .into_iter()
            .next()
            .ok_or_else(|| whole("expected (vbd ...) or (vif ...)".into()));
    }
    let key = match kind {
        Some("vbd") => "disk",
        Some("vif") => "vif",
        Some(other) => return Err(DeviceConfigError::Type(other.to_owned())),
        None => return Err(DeviceConfigError::NoType),
    };
    if text.contains(['\'', '"', '\n']) {
        return Err(DeviceConfigError::Quoted(text.to_owned()));
    }
    let prefix = format!("{key} = ['");
    let wrapped = format!("name = 'device'\nmemory = 16\n{prefix}{text}']\n");
    let cfg = DomainConfig::parse(&wrapped, "config").map_err(|mut e| {
        e.line = if e.line == 3 { 1 } else { 0 };
        e.col = if e.line == 1 {
            e.col.saturating_sub(prefix.len() as u32).max(1)
        } else {
            0
        };
        e
    })?;
    cfg.devices
        .into_iter()
        .next()
        .ok_or_else(|| whole(format!("no {key} in {text:?}")))
}

fn refused(dom: &Domain, why: String) -> SupError {
    SupError::Vmm {
        name: dom.name.clone(),
        source: VmmError::Refused(why),
    }
}

impl Supervisor {
    /// The bridge a vif joins: its own, else `vif-bridge`, else `xenbr0`.
    pub fn vif_bridge<'a>(&'a self, bridge: Option<&'a str>) -> &'a str {
        bridge.unwrap_or(self.settings.vif_bridge.as_str())
    }

    /// The VMM's `--disk` / `--vif` flags for `cfg`'s devices, in config order
    /// (vbds, then vifs). Creates the bridges the vifs name when missing.
    pub fn device_args(&self, cfg: &DomainConfig) -> Result<Vec<String>, SupError> {
        let mut disks = Vec::new();
        let mut vifs = Vec::new();
        for d in &cfg.devices {
            match d {
                Device::Vbd { uname, dev, mode } => {
                    let spec = vmm_disk(&self.settings.confinement, uname, dev, mode.as_str())?;
                    disks.push(format!("--disk={spec}"));
                }
                Device::Vif { mac, bridge, .. } => {
                    let bridge = self.vif_bridge(bridge.as_deref());
                    crate::network::ensure_bridge(bridge)
                        .map_err(|e| SupError::Invalid(format!("domain {}: {e}", cfg.name)))?;
                    vifs.push(format!(
                        "--vif={}",
                        vmm_vif(mac.as_deref(), Some(bridge), bridge)
                    ));
                }
            }
        }
        disks.extend(vifs);
        Ok(disks)
    }

    /// Store the MACs the VMM chose for vifs configured without one (the
    /// config's n-th vif is the VMM's vif n after a boot), so that a restart
    /// keeps them. Writes the record when something changed.
    pub fn remember_macs(&self, dom: &Domain) {
        let changed = {
            let mut st = dom.state();
            let Some(info) = st.info.clone() else { return };
            let mut vifs: Vec<_> = info.vifs.iter().collect();
            vifs.sort_by_key(|v| v.id);
            let mut changed = false;
            let config_vifs = st
                .config
                .devices
                .iter_mut()
                .filter(|d| matches!(d, Device::Vif { .. }));
            for (d, v) in config_vifs.zip(vifs) {
                if let Device::Vif {
                    mac: mac @ None, ..
                } = d
                {
                    *mac = Some(v.mac.clone());
                    changed = true;
                }
            }
            changed
        };
        if changed {
            self.store(dom);
        }
    }

    fn store(&self, dom: &Domain) {
        if let Err(e) = self.save(dom) {
            tracing::error!("domain {}: {e}", dom.name);
        }
        let config = dom.state().config.to_sxp();
        if let Err(e) = self.db.save_config(&dom.name, &config) {
            tracing::error!("domain {}: {e}", dom.name);
        }
    }

    /// Hot-attach `dev` to the running domain and append it to the stored
    /// config (a vif with the MAC the VMM chose). Returns the new device.
    pub async fn device_create(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        dev: Device,
    ) -> Result<DeviceRef, SupError> {
        let _life = self.ready(dom).await?;
        let (kind, spec, passed) = match &dev {
            Device::Vbd { uname, dev, mode } => {
                // Opened here and passed along (SCM_RIGHTS): a jailed VMM
                // cannot open the path, and the descriptor is the file this
                // check approved, whatever the path says later.
                let backend = self.settings.confinement.disk(uname)?;
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(mode.as_str() != "r")
                    .open(&backend.path)
                    .map_err(|e| {
                        SupError::Invalid(format!(
                            "Invalid parameter: config: cannot open disk {}: {e}",
                            backend.path.display()
                        ))
                    })?;
                (DeviceClass::Vbd, backend.vmm_spec(dev, mode.as_str()), file)
            }
            Device::Vif { mac, bridge, .. } => {
                let bridge = self.vif_bridge(bridge.as_deref());
                crate::network::ensure_bridge(bridge)
                    .map_err(|e| SupError::Invalid(format!("domain {}: {e}", dom.name)))?;
                // Created, brought up and bridged here and passed along
                // (SCM_RIGHTS): all three need CAP_NET_ADMIN, which a jailed
                // VMM has not. Named for the index the VMM will give it.
                (
                    DeviceClass::Vif,
                    vmm_vif(mac.as_deref(), Some(bridge), bridge),
                    self.vif_tap(dom, bridge).await?,
                )
            }
        };
        let req = Request::DeviceAttach { kind, config: spec };
        let answer =
            super::save::long_request_with_file(dom, &req, passed, self.settings.vmm_timeout).await;
        let created = match answer? {
            Payload::Device(d) => d,
            other => return Err(refused(dom, format!("expected a device, got {other:?}"))),
        };
        let _ = dom.refresh().await;
        let mut dev = dev;
        if let Device::Vif { mac, .. } = &mut dev
            && mac.is_none()
        {
            let st = dom.state();
            *mac = st
                .info
                .as_ref()
                .and_then(|i| i.vifs.iter().find(|v| v.id == created.idx))
                .map(|v| v.mac.clone());
        }
        dom.state().config.devices.push(dev);
        self.store(dom);
        self.events.domain(
            "xend.domain.device_create",
            dom.id,
            &dom.name,
            Some(format!(
                "{} {} {}",
                kind.as_str(),
                created.idx,
                created.name
            )),
        );
        Ok(created)
    }

    /// A TAP for `dom`'s next vif (`vif<domid>.<N>`, N its lowest free vif
    /// index), up and in `bridge`; the VMM owns it once passed (xend's copy
    /// closes, and the interface goes with the VMM's).
    async fn vif_tap(&self, dom: &Arc<Domain>, bridge: &str) -> Result<std::fs::File, SupError> {
        dom.refresh().await?;
        let used: Vec<u32> = dom
            .state()
            .info
            .as_ref()
            .map(|i| i.vifs.iter().map(|v| v.id).collect())
            .unwrap_or_default();
        let idx = (0..)
            .find(|i| !used.contains(i))
            .expect("fewer than u32::MAX");
        let name = format!("vif{}.{idx}", dom.id);
        let tap = hypervisor::devices::tap::Tap::create(&name)
            .and_then(|t| t.set_up().map(|()| t))
            .and_then(|t| t.attach_to_bridge(bridge).map(|()| t))
            .map_err(|e| {
                SupError::Invalid(format!(
                    "domain {}: {}",
                    dom.name,
                    errchain::error_chain(&e)
                ))
            })?;
        Ok(tap.into_file())
    }

    /// Hot-detach the device of `kind` named by `which` (its index, or for a
    /// vbd its guest name, for a vif its interface name or MAC) and remove it
    /// from the stored config.
    pub async fn device_destroy(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        kind: DeviceClass,
        which: &str,
    ) -> Result<u32, SupError> {
        let _life = self.ready(dom).await?;
        dom.refresh().await?;
        let info = dom.state().info.clone().expect("refreshed");
        let (idx, key) = match kind {
            DeviceClass::Vbd => info
                .vbds
                .iter()
                .find(|v| v.id.to_string() == which || v.dev == which)
                .map(|v| (v.id, v.dev.clone())),
            DeviceClass::Vif => info
                .vifs
                .iter()
                .find(|v| v.id.to_string() == which || v.ifname == which || v.mac == which)
                .map(|v| (v.id, v.mac.clone())),
        }
        .ok_or_else(|| {
            SupError::Invalid(format!(
                "Invalid parameter: idx: domain {} has no {} {which}",
                dom.name,
                kind.as_str()
            ))
        })?;
        dom.request(&Request::DeviceDetach { kind, idx }).await?;
        let _ = dom.refresh().await;
        {
            let mut st = dom.state();
            let pos = st.config.devices.iter().position(|d| match d {
                Device::Vbd { dev, .. } => kind == DeviceClass::Vbd && *dev == key,
                Device::Vif { mac, .. } => {
                    kind == DeviceClass::Vif
                        && mac.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&key))
                }
            });
            if let Some(p) = pos {
                st.config.devices.remove(p);
            }
        }
        self.store(dom);
        self.events.domain(
            "xend.domain.device_destroy",
            dom.id,
            &dom.name,
            Some(format!("{} {idx}", kind.as_str())),
        );
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_specs() {
        let dir = tempfile::tempdir().unwrap();
        let images = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(images.join("d.img"), b"").unwrap();
        let policy = Confinement::new(vec![images.clone()], vec![]);
        assert_eq!(
            vmm_disk(
                &policy,
                &format!("file:{}/./d.img", images.display()),
                "xvda",
                "w"
            )
            .unwrap(),
            format!("file:{}/d.img,xvda,w", images.display())
        );
        let e = vmm_disk(&policy, "phy:null", "xvdb", "r").unwrap_err();
        assert!(e.is_forbidden(), "{e}");
        let e = vmm_disk(&policy, "file:/srv/d.img", "xvda", "w").unwrap_err();
        assert!(e.is_forbidden(), "{e}");
        for (uname, says) in [
            ("nbd:host:1", "file:PATH or phy:"),
            ("file:rel.img", "absolute"),
        ] {
            let e = vmm_disk(&policy, uname, "xvda", "w").unwrap_err();
            assert!(!e.is_forbidden() && e.to_string().contains(says), "{e}");
            assert!(
                e.to_string().starts_with("Invalid parameter: config: "),
                "{e}"
            );
        }
    }

    #[test]
    fn device_configs() {
        let d = parse_device("(vbd (uname file:/x.img) (dev xvdb) (mode w!))", None).unwrap();
        assert_eq!(d.to_xm_entry(), "file:/x.img,xvdb,w!");
        let d = parse_device("(device (vif (bridge br1)))", None).unwrap();
        assert_eq!(d.to_xm_entry(), "bridge=br1");
        let d = parse_device("file:/x.img,xvdc,r", Some("vbd")).unwrap();
        assert_eq!(d.to_xm_entry(), "file:/x.img,xvdc,r");
        let d = parse_device("mac=aa:00:00:00:00:01, bridge=b", Some("vif")).unwrap();
        assert_eq!(d.to_xm_entry(), "mac=aa:00:00:00:00:01, bridge=b");
        let e = parse_device("(vbd (uname file:/x) (dev xvdb) (mode rw))", None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config:1:"), "{e}");
        assert!(e.contains("mode"), "{e}");
        let e = parse_device("file:/x.img,xvdc,q", Some("vbd"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode"), "{e}");
        assert!(parse_device("file:/x.img,xvdc,r", None).is_err());
        assert!(parse_device("file:/x.img,xvdc,r", Some("disk")).is_err());
    }
}
