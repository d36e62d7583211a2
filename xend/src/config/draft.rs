//! A domain config being read: the raw values with their positions, whichever
//! form they came from, and the one place that turns them into a checked
//! [`DomainConfig`].

use std::path::PathBuf;
use std::str::FromStr;

use super::check::{self, ValueError};
use super::domain::{Device, DomainConfig, ExitAction, Image, RestartMode};
use super::error::{ConfigError, Pos};

/// Which text form a value came from (for the examples in error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    Sxp,
    Xm,
}

impl Form {
    /// `memory = 64` or `(memory 64)`.
    pub(crate) fn example(self, key: &str, sample: &str) -> String {
        match self {
            Form::Sxp => format!("({key} {sample})"),
            Form::Xm => format!("{key} = {sample}"),
        }
    }
}

/// One scalar value as read: its text, how it looked in the source (for
/// "found ..."), and where it was.
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub text: String,
    pub shown: String,
    pub pos: Pos,
    pub form: Form,
}

/// Every field of a domain config, unchecked.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    /// Where the whole config starts (for "X is required").
    pub start: Pos,
    pub name: Option<Scalar>,
    pub uuid: Option<Scalar>,
    pub localtime: Option<Scalar>,
    pub vcpu_avail: Option<Scalar>,
    /// `bootloader` (refused: we boot the image ourselves).
    pub bootloader: Option<Scalar>,
    /// xm `builder` (`linux` accepted, `hvm` refused).
    pub builder: Option<Scalar>,
    pub memory: Option<Scalar>,
    pub maxmem: Option<Scalar>,
    pub vcpus: Option<Scalar>,
    pub cpu: Option<Scalar>,
    pub cpu_weight: Option<Scalar>,
    pub cpu_cap: Option<Scalar>,
    pub restart: Option<Scalar>,
    pub on_poweroff: Option<Scalar>,
    pub on_reboot: Option<Scalar>,
    pub on_crash: Option<Scalar>,
    pub console: Option<Scalar>,
    /// `(image (linux ...))` was given here (SXP); xm implies linux by `kernel`.
    pub linux: Option<Pos>,
    pub kernel: Option<Scalar>,
    pub ramdisk: Option<Scalar>,
    pub root: Option<Scalar>,
    pub args: Option<Scalar>,
    /// Devices, each already checked, with where they were.
    pub devices: Vec<(Device, Pos)>,
    pub nics: Option<Scalar>,
}

impl Draft {
    /// Checks every value and builds the config; the first problem is the error.
    pub(crate) fn finish(self, origin: &str, form: Form) -> Result<DomainConfig, ConfigError> {
        let err = |pos: Pos, message: String| ConfigError::at(origin, pos, message);
        let at = |s: &Scalar| {
            let pos = s.pos;
            move |message: String| ConfigError::at(origin, pos, message)
        };
        let bad = |s: &Scalar| {
            let pos = s.pos;
            move |e: ValueError| ConfigError::at(origin, pos, e.to_string())
        };

        let required = |field: &Option<Scalar>, key: &str, sample: &str| match field {
            Some(s) => Ok(s.clone()),
            None => Err(err(
                self.start,
                format!("{key} is required (e.g. {})", form.example(key, sample)),
            )),
        };

        let name = required(
            &self.name,
            "name",
            if form == Form::Xm { "\"web1\"" } else { "web1" },
        )?;
        check::name(&name.shown, &name.text).map_err(|e| at(&name)(e.to_string()))?;

        if let Some(s) = &self.bootloader {
            return Err(at(s)(format!(
                "bootloader is not supported (found {}): xend boots the image itself; \
                 drop bootloader and name the kernel in the config, or none for the built-in minios",
                s.shown
            )));
        }
        if let Some(s) = &self.builder {
            match s.text.as_str() {
                "linux" => {}
                "hvm" => {
                    return Err(at(s)(format!(
                        "builder {} is not supported: HVM (fully virtualised) guests cannot \
                         run here; only paravirtual images boot (builder = 'linux', the default)",
                        s.shown
                    )));
                }
                _ => {
                    return Err(at(s)(format!("builder must be linux, found {}", s.shown)));
                }
            }
        }

        let uuid = match &self.uuid {
            Some(s) => Some(check::uuid(&s.shown, &s.text).map_err(|e| at(s)(e.to_string()))?),
            None => None,
        };

        let localtime = match &self.localtime {
            Some(s) => match s.text.trim() {
                "0" => false,
                "1" => true,
                _ => {
                    return Err(at(s)(format!(
                        "localtime must be 0 or 1 (e.g. {}), found {}",
                        form.example("localtime", "1"),
                        s.shown
                    )));
                }
            },
            None => false,
        };

        let memory = required(&self.memory, "memory", "64")?;
        let memory_mib: u64 =
            whole(&memory, "memory", "a whole number of MiB", "64").map_err(bad(&memory))?;
        check::memory("memory", memory_mib).map_err(|e| at(&memory)(e.to_string()))?;

        let maxmem = match &self.maxmem {
            Some(s) => {
                let mib: u64 =
                    whole(s, "maxmem", "a whole number of MiB", "128").map_err(bad(s))?;
                check::memory("maxmem", mib).map_err(|e| at(s)(e.to_string()))?;
                check::maxmem_at_least_memory(memory_mib, mib).map_err(|e| at(s)(e.to_string()))?;
                mib
            }
            None => memory_mib,
        };

        let vcpus = match &self.vcpus {
            Some(s) => {
                let n: u32 = whole(s, "vcpus", "a whole number", "2").map_err(bad(s))?;
                check::vcpus(n).map_err(|e| at(s)(e.to_string()))?;
                n
            }
            None => 1,
        };
        if let Some(s) = &self.vcpu_avail {
            let mask: u64 =
                whole(s, "vcpu_avail", "a bitmap of online vCPUs", "3").map_err(bad(s))?;
            check::vcpu_avail(mask, vcpus).map_err(|e| at(s)(e.to_string()))?;
        }

        let cpu = match &self.cpu {
            Some(s) => {
                let n: i64 = whole(s, "cpu", "a CPU number", "0").map_err(bad(s))?;
                if n == -1 {
                    None
                } else {
                    check::cpu(n).map_err(|e| at(s)(e.to_string()))?;
                    Some(n)
                }
            }
            None => None,
        };

        let cpu_weight = match &self.cpu_weight {
            Some(s) => {
                let n: u32 = whole(s, "cpu_weight", "a whole number", "256").map_err(bad(s))?;
                check::cpu_weight(n).map_err(|e| at(s)(e.to_string()))?;
                Some(n)
            }
            None => None,
        };

        let cpu_cap = match &self.cpu_cap {
            Some(s) => {
                let n: u32 =
                    whole(s, "cpu_cap", "a whole percentage of one CPU", "50").map_err(bad(s))?;
                check::cpu_cap(n, vcpus).map_err(|e| at(s)(e.to_string()))?;
                Some(n)
            }
            None => None,
        };

        let restart = match &self.restart {
            Some(s) => keyword(s, "restart", &RestartMode::choices()).map_err(bad(s))?,
            None => RestartMode::OnReboot,
        };
        let action =
            |field: &Option<Scalar>, key: &str| -> Result<Option<ExitAction>, ConfigError> {
                field
                    .as_ref()
                    .map(|s| keyword(s, key, &ExitAction::choices()).map_err(bad(s)))
                    .transpose()
            };
        let on_poweroff = action(&self.on_poweroff, "on_poweroff")?;
        let on_reboot = action(&self.on_reboot, "on_reboot")?;
        let on_crash = action(&self.on_crash, "on_crash")?;

        let console = match &self.console {
            Some(s) => {
                let port: u16 = whole(s, "console", "a TCP port number", "9605").map_err(bad(s))?;
                check::console(port).map_err(|e| at(s)(e.to_string()))?;
                Some(port)
            }
            None => None,
        };

        let args = self.args.as_ref().map(|s| s.text.clone());
        let image = if self.linux.is_some() || self.kernel.is_some() {
            let Some(kernel) = &self.kernel else {
                let pos = self.linux.unwrap_or(self.start);
                return Err(err(
                    pos,
                    "a linux image needs a kernel: (linux (kernel /path/to/image) ...)".into(),
                ));
            };
            let kernel_path = PathBuf::from(&kernel.text);
            check::absolute_path("kernel", &kernel_path).map_err(|e| at(kernel)(e.to_string()))?;
            let ramdisk = match &self.ramdisk {
                Some(s) => {
                    let path = PathBuf::from(&s.text);
                    check::absolute_path("ramdisk", &path).map_err(|e| at(s)(e.to_string()))?;
                    Some(path)
                }
                None => None,
            };
            Image::Linux {
                kernel: kernel_path,
                ramdisk,
                root: self.root.as_ref().map(|s| s.text.clone()),
                args,
            }
        } else {
            for (key, field) in [("ramdisk", &self.ramdisk), ("root", &self.root)] {
                if let Some(s) = field {
                    return Err(at(s)(format!(
                        "{key} needs a kernel: without {} the domain boots the built-in minios, which takes no {key}",
                        form.example(
                            "kernel",
                            if form == Form::Xm {
                                "\"/path/to/image\""
                            } else {
                                "/path/to/image"
                            }
                        )
                    )));
                }
            }
            Image::Minios { args }
        };

        // Block devices first, then network devices, each in the given order.
        let mut devices: Vec<(Device, Pos)> = self.devices;
        devices.sort_by_key(|(d, _)| d.kind() != "vbd");
        let vifs = devices.iter().filter(|(d, _)| d.kind() == "vif").count();
        if vifs > check::MAX_NICS {
            let pos = devices
                .iter()
                .filter(|(d, _)| d.kind() == "vif")
                .nth(check::MAX_NICS)
                .map(|(_, p)| *p);
            return Err(err(
                pos.unwrap_or(self.start),
                format!("at most {} vifs are allowed, found {vifs}", check::MAX_NICS),
            ));
        }
        let mut devices: Vec<Device> = devices.into_iter().map(|(d, _)| d).collect();
        if let Some(s) = &self.nics {
            let n: usize =
                whole(s, "nics", "a whole number of network interfaces", "1").map_err(bad(s))?;
            if n > check::MAX_NICS {
                return Err(at(s)(format!(
                    "nics must be at most {}, found {n}",
                    check::MAX_NICS
                )));
            }
            for _ in vifs..n {
                devices.push(Device::empty_vif());
            }
        }

        Ok(DomainConfig {
            name: name.text,
            uuid,
            memory: memory_mib,
            maxmem,
            vcpus,
            cpu,
            cpu_weight,
            cpu_cap,
            restart,
            on_poweroff,
            on_reboot,
            on_crash,
            console,
            localtime,
            image,
            devices,
        })
    }
}

/// Parses a whole number, or says what was expected: `memory must be a whole
/// number of MiB (e.g. memory = 64), found "lots"`.
fn whole<T: FromStr>(s: &Scalar, key: &str, what: &str, sample: &str) -> Result<T, ValueError> {
    s.text.trim().parse().map_err(|_| ValueError::NotANumber {
        key: key.to_owned(),
        what: what.to_owned(),
        example: s.form.example(key, sample),
        found: s.shown.clone(),
    })
}

/// Parses a keyword, or lists the accepted ones.
fn keyword<T: FromStr>(s: &Scalar, key: &str, choices: &str) -> Result<T, ValueError> {
    s.text.parse().map_err(|_| ValueError::Keyword {
        key: key.to_owned(),
        choices: choices.to_owned(),
        found: s.shown.clone(),
    })
}
