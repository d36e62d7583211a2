//! Reading the SXP form: `(vm (name N) (memory MB) ... (image ...) (device ...))`.

use std::collections::HashMap;

use sxp::{Spanned, SpannedKind, Value};

use super::check::{self, ValueError};
use super::domain::{Device, DomainConfig, VbdMode};
use super::draft::{Draft, Form, Scalar};
use super::error::{ConfigError, Pos};

/// Keys later Xen-era tools (libvirt's xend driver) sent that are read but
/// never written: `vcpu_avail` (accepted when it names every vCPU) and
/// `bootloader` (refused with a message).
pub(crate) const LATER_KEYS: &[&str] = &["vcpu_avail", "bootloader"];

/// Keys of `(vm ...)`, in the order `to_sxp` writes them.
pub(crate) const VM_KEYS: &[&str] = &[
    "name",
    "uuid",
    "memory",
    "maxmem",
    "cpu",
    "cpu_weight",
    "cpu_cap",
    "vcpus",
    "restart",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "console",
    "localtime",
    "image",
    "device",
];

impl DomainConfig {
    /// Reads the SXP form `(vm ...)`. `origin` names the text in errors.
    pub fn from_sxp_str(text: &str, origin: &str) -> Result<DomainConfig, ConfigError> {
        let vm = sxp::parse_spanned(text).map_err(|e| ConfigError::syntax(origin, e))?;
        Reader { origin }.vm(&vm)
    }

    /// Reads an already parsed `(vm ...)` value (errors have no position; their
    /// origin is `<sxp>`).
    pub fn from_sxp(vm: &Value) -> Result<DomainConfig, ConfigError> {
        Reader { origin: "<sxp>" }.vm(&unspanned(vm))
    }
}

/// A value with every position 0:0.
fn unspanned(v: &Value) -> Spanned {
    let kind = match v {
        Value::Str(s) => SpannedKind::Str(s.clone()),
        Value::List(items) => SpannedKind::List(items.iter().map(unspanned).collect()),
    };
    Spanned {
        kind,
        line: 0,
        col: 0,
    }
}

/// How a value looks in an error message.
fn shown(v: &Spanned) -> String {
    match &v.kind {
        SpannedKind::Str(s) => format!("{s:?}"),
        SpannedKind::List(_) => {
            let text = v.to_value().to_string();
            if text.chars().count() > 40 {
                format!("{}...", text.chars().take(37).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// Remembers where each key was first given, to refuse duplicates.
struct Seen<'a> {
    keys: HashMap<&'a str, Pos>,
}

struct Reader<'o> {
    origin: &'o str,
}

impl Reader<'_> {
    fn err(&self, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.origin, pos, message)
    }

    fn first_time<'a>(
        &self,
        seen: &mut Seen<'a>,
        key: &'a str,
        item: &Spanned,
    ) -> Result<(), ConfigError> {
        if let Some(first) = seen.keys.insert(key, Pos::of(item)) {
            let at = if first.line == 0 {
                String::new()
            } else {
                format!(" at {}:{}", first.line, first.col)
            };
            return Err(self.err(
                Pos::of(item),
                format!("duplicate key {key}: it is already set{at}"),
            ));
        }
        Ok(())
    }

    /// The fields `(key ...)` of a list after its head, each checked to be a list
    /// with a string head.
    fn fields<'a>(
        &self,
        list: &'a Spanned,
        what: &str,
    ) -> Result<Vec<(&'a str, &'a Spanned)>, ConfigError> {
        list.rest()
            .iter()
            .map(|item| match item.head() {
                Some(key) => Ok((key, item)),
                None => Err(self.err(
                    Pos::of(item),
                    format!(
                        "expected a field (key value) in {what}, found {}",
                        shown(item)
                    ),
                )),
            })
            .collect()
    }

    fn unknown(&self, item: &Spanned, key: &str, what: &str, known: &[&str]) -> ConfigError {
        self.err(
            Pos::of(item),
            format!(
                "unknown key {key} in {what}; known keys: {}",
                known.join(", ")
            ),
        )
    }

    /// The one string value of `(key value)`.
    fn scalar(&self, item: &Spanned, key: &str) -> Result<Scalar, ConfigError> {
        match item.rest() {
            [] => Err(self.err(
                Pos::of(item),
                format!("({key}) has no value: write ({key} VALUE)"),
            )),
            [v] => match v.as_str() {
                Some(text) => Ok(Scalar {
                    text: text.to_owned(),
                    shown: shown(v),
                    pos: Pos::of(v),
                    form: Form::Sxp,
                }),
                None => Err(self.err(
                    Pos::of(v),
                    format!("{key} must be a single value, found a list {}", shown(v)),
                )),
            },
            [_, extra, ..] => Err(self.err(
                Pos::of(extra),
                format!(
                    "({key} ...) takes one value, found another: {}",
                    shown(extra)
                ),
            )),
        }
    }

    /// The one list value of `(key (...))`.
    fn sublist<'a>(
        &self,
        item: &'a Spanned,
        key: &str,
        example: &str,
    ) -> Result<&'a Spanned, ConfigError> {
        match item.rest() {
            [v] if v.head().is_some() => Ok(v),
            [] => Err(self.err(Pos::of(item), format!("({key}) is empty: write {example}"))),
            [v] => Err(self.err(
                Pos::of(v),
                format!("expected {example}, found {}", shown(v)),
            )),
            [_, extra, ..] => Err(self.err(
                Pos::of(extra),
                format!(
                    "({key} ...) takes one list, found another: {}",
                    shown(extra)
                ),
            )),
        }
    }

    fn vm(&self, vm: &Spanned) -> Result<DomainConfig, ConfigError> {
        if vm.head() != Some("vm") {
            return Err(self.err(
                Pos::of(vm),
                format!(
                    "expected a domain config (vm (name NAME) (memory MIB) ...), found {}",
                    shown(vm)
                ),
            ));
        }
        let mut draft = Draft {
            start: Pos::of(vm),
            ..Draft::default()
        };
        let mut seen = Seen {
            keys: HashMap::new(),
        };
        for (key, item) in self.fields(vm, "(vm ...)")? {
            if key == "device" {
                draft.devices.push((self.device(item)?, Pos::of(item)));
                continue;
            }
            if !VM_KEYS.contains(&key) && !LATER_KEYS.contains(&key) {
                return Err(self.unknown(item, key, "(vm ...)", VM_KEYS));
            }
            self.first_time(&mut seen, key, item)?;
            if key == "image" {
                self.image(item, &mut draft)?;
                continue;
            }
            let value = Some(self.scalar(item, key)?);
            match key {
                "name" => draft.name = value,
                "uuid" => draft.uuid = value,
                "localtime" => draft.localtime = value,
                "vcpu_avail" => draft.vcpu_avail = value,
                "bootloader" => draft.bootloader = value,
                "memory" => draft.memory = value,
                "maxmem" => draft.maxmem = value,
                "cpu" => draft.cpu = value,
                "cpu_weight" => draft.cpu_weight = value,
                "cpu_cap" => draft.cpu_cap = value,
                "vcpus" => draft.vcpus = value,
                "restart" => draft.restart = value,
                "on_poweroff" => draft.on_poweroff = value,
                "on_reboot" => draft.on_reboot = value,
                "on_crash" => draft.on_crash = value,
                "console" => draft.console = value,
                _ => unreachable!("every key of VM_KEYS and LATER_KEYS is handled"),
            }
        }
        let config = draft.finish(self.origin, Form::Sxp)?;
        // As in Xen 2.0, the SXP form names what it boots (the xm form's
        // "no kernel line boots minios" is that form's documented default).
        if !seen.keys.contains_key("image") {
            return Err(self.err(
                Pos::of(vm),
                "(vm ...) has no (image ...): add (image (minios)) for the built-in guest, \
                 or (image (linux (kernel /path/to/image)))",
            ));
        }
        Ok(config)
    }

    fn image(&self, item: &Spanned, draft: &mut Draft) -> Result<(), ConfigError> {
        const EXAMPLE: &str = "(image (minios)) or (image (linux (kernel /path/to/image)))";
        let image = self.sublist(item, "image", EXAMPLE)?;
        let (what, known): (&str, &[&str]) = match image.head() {
            Some("minios") => ("(minios ...)", &["args"]),
            Some("linux") => {
                draft.linux = Some(Pos::of(image));
                ("(linux ...)", &["kernel", "ramdisk", "root", "args"])
            }
            Some("hvm") => {
                return Err(self.err(
                    Pos::of(image),
                    format!(
                        "image type hvm is not supported: HVM (fully virtualised) guests \
                         cannot run here; only paravirtual images boot: {EXAMPLE}"
                    ),
                ));
            }
            _ => {
                return Err(self.err(
                    Pos::of(image),
                    format!(
                        "unknown image type {}: expected {EXAMPLE}",
                        shown(&image.as_list().unwrap_or(&[])[0])
                    ),
                ));
            }
        };
        let mut seen = Seen {
            keys: HashMap::new(),
        };
        for (key, field) in self.fields(image, what)? {
            if !known.contains(&key) {
                return Err(self.unknown(field, key, what, known));
            }
            self.first_time(&mut seen, key, field)?;
            let value = Some(self.scalar(field, key)?);
            match key {
                "kernel" => draft.kernel = value,
                "ramdisk" => draft.ramdisk = value,
                "root" => draft.root = value,
                _ => draft.args = value,
            }
        }
        Ok(())
    }

    fn device(&self, item: &Spanned) -> Result<Device, ConfigError> {
        const EXAMPLE: &str =
            "(device (vbd (uname file:/path) (dev xvda) (mode w))) or (device (vif (mac ...)))";
        let dev = self.sublist(item, "device", EXAMPLE)?;
        let (what, known): (&str, &[&str]) = match dev.head() {
            Some("vbd") => ("(vbd ...)", &["uname", "dev", "mode"]),
            Some("vif") => ("(vif ...)", &["mac", "bridge", "ip", "script", "vifname"]),
            _ => {
                return Err(self.err(
                    Pos::of(dev),
                    format!(
                        "unknown device type {}: expected {EXAMPLE}",
                        shown(&dev.as_list().unwrap_or(&[])[0])
                    ),
                ));
            }
        };
        let mut seen = Seen {
            keys: HashMap::new(),
        };
        let mut values: HashMap<&str, Scalar> = HashMap::new();
        for (key, field) in self.fields(dev, what)? {
            if !known.contains(&key) {
                return Err(self.unknown(field, key, what, known));
            }
            self.first_time(&mut seen, key, field)?;
            let value = self.scalar(field, key)?;
            let checked = match key {
                "uname" => check::uname(&value.text),
                "dev" => check::token("a disk's dev", "xvda", &value.text),
                "mode" => {
                    value
                        .text
                        .parse::<VbdMode>()
                        .map(|_| ())
                        .map_err(|_| ValueError::Keyword {
                            key: "a disk's mode".into(),
                            choices: VbdMode::choices(),
                            found: value.shown.clone(),
                        })
                }
                "mac" => check::mac(&value.text),
                "ip" => check::ip(&value.text),
                _ => check::token(&format!("a vif's {key}"), "xen-br0", &value.text),
            };
            checked.map_err(|e| self.err(value.pos, e.to_string()))?;
            values.insert(key, value);
        }
        let mut take = |key: &str| values.remove(key).map(|s| s.text);
        if dev.head() == Some("vif") {
            return Ok(Device::Vif {
                mac: take("mac"),
                bridge: take("bridge"),
                ip: take("ip"),
                script: take("script"),
                vifname: take("vifname"),
            });
        }
        let mut need = |key: &str, sample: &str| {
            take(key)
                .ok_or_else(|| self.err(Pos::of(dev), format!("(vbd ...) needs ({key} {sample})")))
        };
        let uname = need("uname", "file:/path/to/disk.img")?;
        let name = need("dev", "xvda")?;
        let mode = need("mode", "r|w|w!")?;
        Ok(Device::Vbd {
            uname,
            dev: name,
            mode: mode.parse().expect("mode was checked above"),
        })
    }
}
