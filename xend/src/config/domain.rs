//! The typed domain config, its SXP and xm renderings, and validation.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sxp::Value;

use super::check::{self, ValueError};
use super::error::{ConfigError, Pos};
use super::xm::quote;

/// A domain's configuration, read from either the SXP `(vm ...)` form or the
/// xm/xl `key = value` file form.
///
/// Memory figures are MiB. `maxmem` defaults to `memory`, `vcpus` to 1. The
/// `on_*` actions are `None` unless given; the effective action, derived from
/// `restart` when not given, is [`DomainConfig::poweroff_action`] and friends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// Domain name (see [`super::valid_name`]).
    pub name: String,
    /// The domain's UUID (`uuid`), if given. xend gives every domain one when
    /// it is created and stores it in the config, so it stays across restarts,
    /// save/restore and migration.
    pub uuid: Option<uuid::Uuid>,
    /// Initial memory, MiB.
    pub memory: u64,
    /// Memory ceiling, MiB (at least `memory`).
    pub maxmem: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Physical CPU to pin to; `None` lets the host schedule freely.
    pub cpu: Option<i64>,
    /// Credit-scheduler weight, if set (1..65535; 256 when unset).
    pub cpu_weight: Option<u32>,
    /// Credit-scheduler cap, percent of one CPU, if set (0 or unset: no cap;
    /// at most 100 per vCPU).
    pub cpu_cap: Option<u32>,
    /// Xen 2.0's restart mode.
    pub restart: RestartMode,
    /// What to do when the guest powers off, if set explicitly.
    pub on_poweroff: Option<ExitAction>,
    /// What to do when the guest reboots, if set explicitly.
    pub on_reboot: Option<ExitAction>,
    /// What to do when the guest crashes, if set explicitly.
    pub on_crash: Option<ExitAction>,
    /// Console TCP port; `None` means `console-port-base + domid`.
    pub console: Option<u16>,
    /// `localtime`: the guest's clock is meant to run in the host's local
    /// time zone rather than UTC. Stored and shown only: our guests read the
    /// host's UTC wall clock and keep no time zone.
    pub localtime: bool,
    /// What to boot.
    pub image: Image,
    /// Block and network devices, block devices first (stored for the device
    /// work; not acted on yet).
    pub devices: Vec<Device>,
}

/// What a domain boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// The built-in minios guest (`(image (minios))`; no `kernel` in an xm file).
    Minios {
        /// Guest command line.
        args: Option<String>,
    },
    /// A kernel image built for our guest ABI.
    Linux {
        /// Absolute path of the image (its existence is checked by xend at create).
        kernel: PathBuf,
        /// Absolute path of an initial ramdisk.
        ramdisk: Option<PathBuf>,
        /// Root device, passed on the command line as `root=`.
        root: Option<String>,
        /// Extra command line (`extra` in xm files).
        args: Option<String>,
    },
}

/// A device of a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// A virtual block device: `(vbd (uname file:/x) (dev xvda) (mode w))`,
    /// xm `'file:/x,xvda,w'`.
    Vbd {
        /// Backing store, `TYPE:PATH` (`file:/srv/d.img`, `phy:sda1`).
        uname: String,
        /// Device name in the guest (`xvda`, `hda1`).
        dev: String,
        /// Access mode.
        mode: VbdMode,
    },
    /// A virtual network interface: `(vif (mac ..) (bridge ..) ...)`, xm
    /// `'mac=aa:00:00:00:00:11, bridge=xen-br0'`. Every field is optional; xend
    /// picks a random `aa:00:00:XX:XX:XX` MAC when none is given.
    Vif {
        /// MAC address, six hex pairs.
        mac: Option<String>,
        /// Bridge to attach to.
        bridge: Option<String>,
        /// IP address of the guest (for anti-spoofing rules).
        ip: Option<String>,
        /// Hotplug script.
        script: Option<String>,
        /// Back-end interface name.
        vifname: Option<String>,
    },
}

impl Device {
    /// `vbd` or `vif`.
    pub fn kind(&self) -> &'static str {
        match self {
            Device::Vbd { .. } => "vbd",
            Device::Vif { .. } => "vif",
        }
    }

    /// A vif with every field unset.
    pub fn empty_vif() -> Device {
        Device::Vif {
            mac: None,
            bridge: None,
            ip: None,
            script: None,
            vifname: None,
        }
    }

    /// The device as SXP, without the `(device ...)` wrapper.
    pub fn to_sxp(&self) -> Value {
        match self {
            Device::Vbd { uname, dev, mode } => Value::list([
                Value::str("vbd"),
                Value::pair("uname", uname),
                Value::pair("dev", dev),
                Value::pair("mode", mode.as_str()),
            ]),
            Device::Vif { .. } => {
                let mut items = vec![Value::str("vif")];
                for (key, value) in self.vif_fields() {
                    items.push(Value::pair(key, value));
                }
                Value::List(items)
            }
        }
    }

    /// The device as an xm list entry: `file:/x,xvda,w` or `mac=.., bridge=..`.
    pub fn to_xm_entry(&self) -> String {
        match self {
            Device::Vbd { uname, dev, mode } => format!("{uname},{dev},{}", mode.as_str()),
            Device::Vif { .. } => self
                .vif_fields()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The set fields of a vif, in the canonical order.
    fn vif_fields(&self) -> impl Iterator<Item = (&'static str, &String)> {
        let fields = match self {
            Device::Vif {
                mac,
                bridge,
                ip,
                script,
                vifname,
            } => [
                ("mac", mac),
                ("bridge", bridge),
                ("ip", ip),
                ("script", script),
                ("vifname", vifname),
            ],
            Device::Vbd { .. } => [("", &None); 5],
        };
        fields
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    fn validate(&self) -> Result<(), ValueError> {
        match self {
            Device::Vbd { uname, dev, .. } => {
                check::uname(uname)?;
                check::token("a disk's dev", "xvda", dev)
            }
            Device::Vif {
                mac,
                bridge,
                ip,
                script,
                vifname,
            } => {
                if let Some(mac) = mac {
                    check::mac(mac)?;
                }
                if let Some(ip) = ip {
                    check::ip(ip)?;
                }
                for (what, example, v) in [
                    ("a vif's bridge", "xen-br0", bridge),
                    ("a vif's script", "vif-bridge", script),
                    ("a vif's vifname", "vif5.0", vifname),
                ] {
                    if let Some(v) = v {
                        check::token(what, example, v)?;
                    }
                }
                Ok(())
            }
        }
    }
}

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The keyword as written in configs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            /// The accepted keywords, for error messages: `a, b or c`.
            pub(crate) fn choices() -> String {
                let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                match all.split_last() {
                    Some((last, [])) => last.to_string(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                }
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, ValueError> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| ValueError::Keyword {
                        key: $what.into(),
                        choices: Self::choices(),
                        found: format!("{s:?}"),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum!(
    /// Xen 2.0's restart mode (reference section 6).
    RestartMode, "restart" {
        /// Rebuild the domain when it exits with reason reboot (the default).
        OnReboot = "onreboot",
        /// Rebuild the domain when it powers off or reboots.
        Always = "always",
        /// Never rebuild it.
        Never = "never",
    }
);

keyword_enum!(
    /// Xen 3/xl's action for one way a domain can end.
    ExitAction, "an on_poweroff/on_reboot/on_crash action" {
        /// Destroy the domain.
        Destroy = "destroy",
        /// Rebuild it (same name, id and console).
        Restart = "restart",
        /// Keep it in the shut-down or crashed state for inspection.
        Preserve = "preserve",
    }
);

keyword_enum!(
    /// Access mode of a block device.
    VbdMode, "a disk's mode" {
        /// Read-only.
        Read = "r",
        /// Read-write, exclusive.
        Write = "w",
        /// Read-write, shared with other domains.
        WriteShared = "w!",
    }
);

impl DomainConfig {
    /// A minios domain with the defaults: `maxmem = memory`, one vCPU, restart
    /// `onreboot`, no devices.
    pub fn new(name: impl Into<String>, memory: u64) -> DomainConfig {
        DomainConfig {
            name: name.into(),
            uuid: None,
            memory,
            maxmem: memory,
            vcpus: 1,
            cpu: None,
            cpu_weight: None,
            cpu_cap: None,
            restart: RestartMode::OnReboot,
            on_poweroff: None,
            on_reboot: None,
            on_crash: None,
            console: None,
            localtime: false,
            image: Image::Minios { args: None },
            devices: Vec::new(),
        }
    }

    /// The effective action when the guest powers off: `on_poweroff` if set,
    /// else from `restart` (`always` -> restart; `onreboot`, `never` -> destroy).
    pub fn poweroff_action(&self) -> ExitAction {
        self.on_poweroff.unwrap_or(match self.restart {
            RestartMode::Always => ExitAction::Restart,
            RestartMode::OnReboot | RestartMode::Never => ExitAction::Destroy,
        })
    }

    /// The effective action when the guest reboots: `on_reboot` if set, else
    /// from `restart` (`always`, `onreboot` -> restart; `never` -> destroy).
    pub fn reboot_action(&self) -> ExitAction {
        self.on_reboot.unwrap_or(match self.restart {
            RestartMode::Always | RestartMode::OnReboot => ExitAction::Restart,
            RestartMode::Never => ExitAction::Destroy,
        })
    }

    /// The effective action when the guest crashes: `on_crash` if set, else
    /// destroy whatever `restart` says (Xen 2.0 never restarted a crashed
    /// domain, and xl's default `on_crash` is destroy too).
    pub fn crash_action(&self) -> ExitAction {
        self.on_crash.unwrap_or(ExitAction::Destroy)
    }

    /// Reads a config in either form: SXP when the first character that is not
    /// whitespace or part of a `#` comment is `(`, else the xm `key = value` form.
    /// `origin` names the text in errors (a file name, `<request>`).
    pub fn parse(text: &str, origin: &str) -> Result<DomainConfig, ConfigError> {
        if looks_like_sxp(text) {
            DomainConfig::from_sxp_str(text, origin)
        } else {
            DomainConfig::from_xm_str(text, origin)
        }
    }

    /// Checks every field against the limits both text forms enforce (for
    /// configs built or changed in code). The error has no position.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|e| ConfigError {
            origin: "<config>".into(),
            line: Pos::NONE.line,
            col: Pos::NONE.col,
            message: e.to_string(),
        })
    }

    fn check(&self) -> Result<(), ValueError> {
        check::name(&format!("{:?}", self.name), &self.name)?;
        check::memory("memory", self.memory)?;
        check::memory("maxmem", self.maxmem)?;
        check::maxmem_at_least_memory(self.memory, self.maxmem)?;
        check::vcpus(self.vcpus)?;
        if let Some(cpu) = self.cpu {
            check::cpu(cpu)?;
        }
        if let Some(w) = self.cpu_weight {
            check::cpu_weight(w)?;
        }
        if let Some(cap) = self.cpu_cap {
            check::cpu_cap(cap, self.vcpus)?;
        }
        if let Some(port) = self.console {
            check::console(port)?;
        }
        if let Image::Linux {
            kernel, ramdisk, ..
        } = &self.image
        {
            check::absolute_path("kernel", kernel)?;
            if let Some(ramdisk) = ramdisk {
                check::absolute_path("ramdisk", ramdisk)?;
            }
        }
        let vifs = self
            .devices
            .iter()
            .filter(|d| matches!(d, Device::Vif { .. }))
            .count();
        if vifs > check::MAX_NICS {
            return Err(ValueError::TooManyVifs(vifs));
        }
        self.devices.iter().try_for_each(Device::validate)
    }

    /// The config as SXP, in the reference's order: name, uuid, memory,
    /// maxmem, cpu, cpu_weight, cpu_cap, vcpus, restart, on_poweroff, on_reboot,
    /// on_crash, console, localtime, image, then the devices (vbds, then vifs).
    pub fn to_sxp(&self) -> Value {
        let mut vm = vec![Value::str("vm"), Value::pair("name", &self.name)];
        if let Some(uuid) = self.uuid {
            vm.push(Value::pair("uuid", uuid.to_string()));
        }
        vm.push(Value::pair("memory", self.memory));
        vm.push(Value::pair("maxmem", self.maxmem));
        if let Some(cpu) = self.cpu {
            vm.push(Value::pair("cpu", cpu));
        }
        if let Some(w) = self.cpu_weight {
            vm.push(Value::pair("cpu_weight", w));
        }
        if let Some(cap) = self.cpu_cap {
            vm.push(Value::pair("cpu_cap", cap));
        }
        vm.push(Value::pair("vcpus", self.vcpus));
        vm.push(Value::pair("restart", self.restart.as_str()));
        for (key, action) in self.actions() {
            if let Some(action) = action {
                vm.push(Value::pair(key, action.as_str()));
            }
        }
        if let Some(port) = self.console {
            vm.push(Value::pair("console", port));
        }
        if self.localtime {
            vm.push(Value::pair("localtime", 1));
        }
        vm.push(Value::pair("image", self.image_sxp()));
        for kind in ["vbd", "vif"] {
            for device in self.devices.iter().filter(|d| d.kind() == kind) {
                vm.push(Value::pair("device", device.to_sxp()));
            }
        }
        Value::List(vm)
    }

    fn actions(&self) -> [(&'static str, Option<ExitAction>); 3] {
        [
            ("on_poweroff", self.on_poweroff),
            ("on_reboot", self.on_reboot),
            ("on_crash", self.on_crash),
        ]
    }

    fn image_sxp(&self) -> Value {
        let mut items = Vec::new();
        match &self.image {
            Image::Minios { args } => {
                items.push(Value::str("minios"));
                if let Some(args) = args {
                    items.push(Value::pair("args", args));
                }
            }
            Image::Linux {
                kernel,
                ramdisk,
                root,
                args,
            } => {
                items.push(Value::str("linux"));
                items.push(Value::pair("kernel", kernel.to_string_lossy().into_owned()));
                if let Some(ramdisk) = ramdisk {
                    items.push(Value::pair(
                        "ramdisk",
                        ramdisk.to_string_lossy().into_owned(),
                    ));
                }
                if let Some(root) = root {
                    items.push(Value::pair("root", root));
                }
                if let Some(args) = args {
                    items.push(Value::pair("args", args));
                }
            }
        }
        Value::List(items)
    }

    /// The config as an xm `key = value` file that reads back to the same config.
    pub fn to_xm(&self) -> String {
        self.xm_entries()
            .into_iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }

    /// The xm entries as `(key, value text)` pairs, in file order.
    pub(crate) fn xm_entries(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("name", quote(&self.name))];
        if let Some(uuid) = self.uuid {
            out.push(("uuid", quote(&uuid.to_string())));
        }
        out.push(("memory", self.memory.to_string()));
        out.push(("maxmem", self.maxmem.to_string()));
        if let Some(cpu) = self.cpu {
            out.push(("cpu", cpu.to_string()));
        }
        if let Some(w) = self.cpu_weight {
            out.push(("cpu_weight", w.to_string()));
        }
        if let Some(cap) = self.cpu_cap {
            out.push(("cpu_cap", cap.to_string()));
        }
        out.push(("vcpus", self.vcpus.to_string()));
        out.push(("restart", quote(self.restart.as_str())));
        for (key, action) in self.actions() {
            if let Some(action) = action {
                out.push((key, quote(action.as_str())));
            }
        }
        if let Some(port) = self.console {
            out.push(("console", port.to_string()));
        }
        if self.localtime {
            out.push(("localtime", "1".to_string()));
        }
        match &self.image {
            Image::Minios { args } => {
                if let Some(args) = args {
                    out.push(("args", quote(args)));
                }
            }
            Image::Linux {
                kernel,
                ramdisk,
                root,
                args,
            } => {
                out.push(("kernel", quote(&kernel.to_string_lossy())));
                if let Some(ramdisk) = ramdisk {
                    out.push(("ramdisk", quote(&ramdisk.to_string_lossy())));
                }
                if let Some(root) = root {
                    out.push(("root", quote(root)));
                }
                if let Some(args) = args {
                    out.push(("extra", quote(args)));
                }
            }
        }
        for (key, kind) in [("disk", "vbd"), ("vif", "vif")] {
            let entries: Vec<String> = self
                .devices
                .iter()
                .filter(|d| d.kind() == kind)
                .map(|d| quote(&d.to_xm_entry()))
                .collect();
            if !entries.is_empty() {
                out.push((key, format!("[ {} ]", entries.join(", "))));
            }
        }
        out
    }
}

/// Whether the first character that is not whitespace or in a `#` comment is `(`.
fn looks_like_sxp(text: &str) -> bool {
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        return line.starts_with('(');
    }
    false
}

/// Xen's virtual device number of a guest disk name (`xvda` = 51712,
/// `hda` = 768, `sda` = 2048), 0 when the name has no number.
pub fn vdev(dev: &str) -> u32 {
    let (major, letters_at, per_disk) = if let Some(r) = dev.strip_prefix("xvd") {
        (202u32, r, 16u32)
    } else if let Some(r) = dev.strip_prefix("hd") {
        (3, r, 64)
    } else if let Some(r) = dev.strip_prefix("sd") {
        (8, r, 16)
    } else {
        return 0;
    };
    let letter = letters_at.chars().next().filter(char::is_ascii_lowercase);
    let Some(letter) = letter else { return 0 };
    let part: u32 = letters_at[1..].parse().unwrap_or(0);
    let disk = letter as u32 - 'a' as u32;
    if part >= per_disk {
        return 0;
    }
    (major << 8) | (disk * per_disk + part)
}

#[cfg(test)]
mod vdev_tests {
    use super::vdev;

    #[test]
    fn device_numbers() {
        assert_eq!(vdev("xvda"), 51712);
        assert_eq!(vdev("xvdb"), 51728);
        assert_eq!(vdev("hda"), 768);
        assert_eq!(vdev("sda1"), 2049);
        assert_eq!(vdev("disk0"), 0);
    }
}
