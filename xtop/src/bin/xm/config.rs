//! Reading a domain config for `xm create`, with `VAR=VAL` overrides.
//!
//! The config (SXP `(vm ...)` or xm `key = value`) is read and checked here
//! with xend's own config module, so mistakes are reported with the file, line
//! and column before anything is sent; `VAR=VAL` arguments replace fields as
//! xend's `apply_vars` defines. xend checks the text again on create.
use std::path::{Path, PathBuf};

use xend::config::DomainConfig;

use crate::error::{Result, XmError};

/// Where configs named without a directory are also looked for, as in Xen.
pub const CONFIG_DIR: &str = "/etc/xen";

/// Reads `CONFIG`: the path as given, else `/etc/xen/CONFIG` for a bare name.
pub fn read(config: &str) -> Result<(PathBuf, String)> {
    let given = PathBuf::from(config);
    match std::fs::read_to_string(&given) {
        Ok(text) => Ok((given, text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !config.contains('/') => {
            let fallback = Path::new(CONFIG_DIR).join(config);
            std::fs::read_to_string(&fallback)
                .map(|text| (fallback, text))
                .map_err(|_| XmError::ReadConfig {
                    path: given,
                    source: e,
                })
        }
        Err(source) => Err(XmError::ReadConfig {
            path: given,
            source,
        }),
    }
}

/// Splits a `VAR=VAL` argument.
pub fn parse_var(arg: &str) -> Result<(String, String)> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(XmError::BadVariable(format!(
            "invalid argument '{arg}': expected VAR=VALUE, e.g. memory=64 or name=web1"
        ))),
    }
}

/// The config to send: read, checked, with the overrides applied. Without
/// overrides the text goes to xend as written; with them, as SXP.
pub fn prepare(path: &Path, text: &str, vars: &[String]) -> Result<(DomainConfig, String)> {
    let origin = path.display().to_string();
    let mut config = DomainConfig::parse(text, &origin)?;
    if vars.is_empty() {
        return Ok((config, text.to_string()));
    }
    let vars = vars
        .iter()
        .map(|v| parse_var(v))
        .collect::<Result<Vec<_>>>()?;
    config.apply_vars(&vars)?;
    let sxp = config.to_sxp().to_string();
    Ok((config, sxp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_errors() {
        let path = Path::new("web.cfg");
        let text = "name = \"a\"\nmemory = 32\n";
        let (config, sent) = prepare(path, text, &[]).unwrap();
        assert_eq!(sent, text);
        assert_eq!(config.memory, 32);
        let (config, sent) = prepare(path, text, &["memory=64".into(), "name=b".into()]).unwrap();
        assert_eq!((config.name.as_str(), config.memory), ("b", 64));
        assert!(sent.starts_with("(vm (name b) (memory 64)"), "{sent}");
        let e = prepare(path, "name = \"a\"\nmemory = lots\n", &[]).unwrap_err();
        assert!(e.to_string().starts_with("web.cfg:2:"), "{e}");
        let e = prepare(path, text, &["memory".into()]).unwrap_err();
        assert!(e.to_string().contains("'memory'"), "{e}");
    }
}
