//! Reading the xm/xl file form (`name = "web1"`, `memory = 64`, `disk = [ ... ]`)
//! and `xm create CONFIG VAR=VAL` overrides.

use std::collections::HashMap;

use super::check::{self, VIF_KEYS, ValueError};
use super::domain::{Device, DomainConfig, VbdMode};
use super::draft::{Draft, Form, Scalar};
use super::error::{ConfigError, Pos};
use super::xm::{self, Entry, XmValue};

/// Keys of the xm form.
pub(crate) const XM_KEYS: &[&str] = &[
    "name",
    "uuid",
    "memory",
    "maxmem",
    "vcpus",
    "cpu",
    "cpu_weight",
    "cpu_cap",
    "restart",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "console",
    "localtime",
    "vcpu_avail",
    "bootloader",
    "builder",
    "kernel",
    "ramdisk",
    "root",
    "extra",
    "args",
    "disk",
    "vif",
    "nics",
];

/// Where overrides given on the command line are reported from.
const COMMAND_LINE: &str = "command line";

impl DomainConfig {
    /// Reads the xm/xl `key = value` form. `origin` names the text in errors.
    ///
    /// `kernel` absent means the built-in minios; `extra` and `args` are two
    /// names for the guest command line; `nics` asks for at least that many vifs.
    /// Unknown and repeated keys are errors.
    pub fn from_xm_str(text: &str, origin: &str) -> Result<DomainConfig, ConfigError> {
        from_entries(xm::parse(text, origin)?, origin)
    }

    /// Applies `xm create CONFIG VAR=VAL` overrides: each `(key, value)` replaces
    /// that key of the config (keys and checks as in the xm form). A value that
    /// starts with `[` or a quote is read as an xm value; otherwise it is a
    /// string (a single string is fine for `disk` and `vif`). Setting `memory`
    /// alone also moves `maxmem` when it was equal to `memory`. On error the
    /// config is unchanged.
    pub fn apply_vars(&mut self, vars: &[(String, String)]) -> Result<(), ConfigError> {
        let none = |key: &str, value: XmValue| Entry {
            key: key.to_owned(),
            key_pos: Pos::NONE,
            value,
            value_pos: Pos::NONE,
        };
        let mut entries: Vec<Entry> = self
            .xm_entries()
            .into_iter()
            .map(|(key, text)| {
                let value =
                    xm::parse_value(&text, key, "<config>").expect("to_xm writes valid values");
                none(key, value)
            })
            .collect();
        let sets = |key: &str| vars.iter().any(|(k, _)| k == key);
        if sets("memory") && !sets("maxmem") && self.maxmem == self.memory {
            entries.retain(|e| e.key != "maxmem");
        }
        for (key, text) in vars {
            let origin = format!("{COMMAND_LINE} argument {key}={text}");
            if !XM_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::at(&origin, Pos::NONE, unknown_key(key)));
            }
            let trimmed = text.trim_start();
            let value = if trimmed.starts_with(['[', '\'', '"']) {
                xm::parse_value(text, key, &origin)?
            } else if let (true, Ok(n)) = (
                NUMERIC_KEYS.contains(&key.as_str()),
                text.trim().parse::<i64>(),
            ) {
                // Only keys that hold numbers take a bare number: `name=+0` is a name.
                XmValue::Int(n)
            } else {
                XmValue::Str(text.clone())
            };
            entries.retain(|e| slot(&e.key) != slot(key));
            entries.push(none(key, value));
        }
        *self = from_entries(entries, COMMAND_LINE)?;
        Ok(())
    }
}

/// `extra` and `args` fill the same field.
/// Keys whose value is a number, so `KEY=12` on the command line means 12.
const NUMERIC_KEYS: &[&str] = &[
    "memory",
    "maxmem",
    "vcpus",
    "cpu",
    "cpu_weight",
    "cpu_cap",
    "console",
    "nics",
    "localtime",
    "vcpu_avail",
];

fn slot(key: &str) -> &str {
    if key == "args" { "extra" } else { key }
}

fn unknown_key(key: &str) -> String {
    let hint = XM_KEYS
        .iter()
        .filter(|k| edit_distance(k, key) <= 2)
        .min_by_key(|k| edit_distance(k, key))
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default();
    format!(
        "unknown key {key}{hint}; known keys: {}",
        XM_KEYS.join(", ")
    )
}

/// Levenshtein distance, for "did you mean".
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn from_entries(entries: Vec<Entry>, origin: &str) -> Result<DomainConfig, ConfigError> {
    let err = |pos: Pos, message: String| ConfigError::at(origin, pos, message);
    let mut draft = Draft {
        start: Pos::NONE,
        ..Draft::default()
    };
    let mut seen: HashMap<&str, (&str, Pos)> = HashMap::new();
    for entry in &entries {
        let key = entry.key.as_str();
        if !XM_KEYS.contains(&key) {
            return Err(err(entry.key_pos, unknown_key(key)));
        }
        if let Some((first, at)) = seen.insert(slot(key), (key, entry.key_pos)) {
            let at = if at.line == 0 {
                String::new()
            } else {
                format!(" at line {}", at.line)
            };
            let message = if first == key {
                format!("duplicate key {key}: it is already set{at}")
            } else {
                format!(
                    "{key} and {first} both set the guest command line: {first} is already set{at}; keep one"
                )
            };
            return Err(err(entry.key_pos, message));
        }
        match key {
            "disk" => {
                for (text, pos) in strings(entry, origin)? {
                    draft
                        .devices
                        .push((disk(&text).map_err(|e| err(pos, e.to_string()))?, pos));
                }
                continue;
            }
            "vif" => {
                for (text, pos) in strings(entry, origin)? {
                    draft
                        .devices
                        .push((vif(&text).map_err(|e| err(pos, e.to_string()))?, pos));
                }
                continue;
            }
            _ => {}
        }
        let value = Some(scalar(entry, origin)?);
        match key {
            "name" => draft.name = value,
            "uuid" => draft.uuid = value,
            "localtime" => draft.localtime = value,
            "vcpu_avail" => draft.vcpu_avail = value,
            "bootloader" => draft.bootloader = value,
            "builder" => draft.builder = value,
            "memory" => draft.memory = value,
            "maxmem" => draft.maxmem = value,
            "vcpus" => draft.vcpus = value,
            "cpu" => draft.cpu = value,
            "cpu_weight" => draft.cpu_weight = value,
            "cpu_cap" => draft.cpu_cap = value,
            "restart" => draft.restart = value,
            "on_poweroff" => draft.on_poweroff = value,
            "on_reboot" => draft.on_reboot = value,
            "on_crash" => draft.on_crash = value,
            "console" => draft.console = value,
            "kernel" => draft.kernel = value,
            "ramdisk" => draft.ramdisk = value,
            "root" => draft.root = value,
            "extra" | "args" => draft.args = value,
            "nics" => draft.nics = value,
            _ => unreachable!("every key of XM_KEYS is handled"),
        }
    }
    draft.finish(origin, Form::Xm)
}

fn scalar(entry: &Entry, origin: &str) -> Result<Scalar, ConfigError> {
    let (text, shown) = match &entry.value {
        XmValue::Str(s) => (s.clone(), format!("{s:?}")),
        XmValue::Int(n) => (n.to_string(), n.to_string()),
        XmValue::List(_) => {
            return Err(ConfigError::at(
                origin,
                entry.value_pos,
                format!(
                    "{} must be a single value, not a list (e.g. {} = ...)",
                    entry.key, entry.key
                ),
            ));
        }
    };
    Ok(Scalar {
        text,
        shown,
        pos: entry.value_pos,
        form: Form::Xm,
    })
}

/// The strings of a list key; a single string counts as a list of one.
fn strings(entry: &Entry, origin: &str) -> Result<Vec<(String, Pos)>, ConfigError> {
    match &entry.value {
        XmValue::List(items) => Ok(items.clone()),
        XmValue::Str(s) => Ok(vec![(s.clone(), entry.value_pos)]),
        XmValue::Int(n) => Err(ConfigError::at(
            origin,
            entry.value_pos,
            format!(
                "{} must be a list of strings (e.g. {} = [ '...' ]), found {n}",
                entry.key, entry.key
            ),
        )),
    }
}

/// `'TYPE:PATH,DEV,MODE'`.
fn disk(text: &str) -> Result<Device, ValueError> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [uname, dev, mode] = parts[..] else {
        return Err(ValueError::DiskForm(text.to_owned()));
    };
    check::uname(uname)?;
    check::token("a disk's dev", "xvda", dev)?;
    let mode: VbdMode = mode.parse().map_err(|_| ValueError::Keyword {
        key: "a disk's mode".into(),
        choices: VbdMode::choices(),
        found: format!("{mode:?} in {text:?}"),
    })?;
    Ok(Device::Vbd {
        uname: uname.to_owned(),
        dev: dev.to_owned(),
        mode,
    })
}

/// `'mac=aa:00:00:00:00:11, bridge=xen-br0'` (any of mac, bridge, ip, script,
/// vifname; an empty string is a vif with defaults).
fn vif(text: &str) -> Result<Device, ValueError> {
    let mut fields: HashMap<&str, String> = HashMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(ValueError::VifField(part.to_owned()));
        };
        let (key, value) = (key.trim(), value.trim());
        if !VIF_KEYS.contains(&key) {
            return Err(ValueError::VifKey(key.to_owned()));
        }
        match key {
            "mac" => check::mac(value)?,
            "ip" => check::ip(value)?,
            _ => check::token(&format!("a vif's {key}"), "xen-br0", value)?,
        }
        if fields.insert(key, value.to_owned()).is_some() {
            return Err(ValueError::VifDuplicate {
                key: key.to_owned(),
                entry: text.to_owned(),
            });
        }
    }
    Ok(Device::Vif {
        mac: fields.remove("mac"),
        bridge: fields.remove("bridge"),
        ip: fields.remove("ip"),
        script: fields.remove("script"),
        vifname: fields.remove("vifname"),
    })
}
