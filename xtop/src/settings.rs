//! The user's settings file, `~/.config/xtop/config.toml` (or `$XTOP_CONFIG`):
//! theme, keys, columns, delay, sort, CPU% convention, mouse, console escape key.
//! `W` writes the current settings back, keeping the `[keys]` table.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::CpuMode;

/// What can be wrong with the settings file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Cannot read it.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It does not parse (the message has line and column).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// Cannot write it.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The settings file's contents; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Theme name or path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    /// Refresh delay, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<f64>,
    /// Sort, `[-]FIELD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Columns shown, by key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// CPU% convention: `xentop` or `virt-top`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_mode: Option<CpuMode>,
    /// Mouse on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mouse: Option<bool>,
    /// Console escape key, e.g. `ctrl-]` or `^T`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escape: Option<String>,
    /// The xend hosts to watch when no `-H` is given: URLs, or tables with a
    /// URL and the host's own token and CA file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSetting>,
    /// Key overrides: key -> command (`""` unbinds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
}

/// One entry of `hosts = [...]`: `"https://h:8000"`, or
/// `{ url = "https://h:8000", token = "...", cacert = "/etc/xen/h-ca.pem" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostSetting {
    /// Just the URL (the token and CA file from the command line or the
    /// environment).
    Url(String),
    /// A URL with its own credentials.
    Full {
        /// The xend URL.
        url: String,
        /// Its bearer token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// CA certificates to trust for its `https://` URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cacert: Option<PathBuf>,
    },
}

impl HostSetting {
    /// The URL.
    pub fn url(&self) -> &str {
        match self {
            HostSetting::Url(u) | HostSetting::Full { url: u, .. } => u,
        }
    }
    /// Its own token, if set.
    pub fn token(&self) -> Option<&str> {
        match self {
            HostSetting::Url(_) => None,
            HostSetting::Full { token, .. } => token.as_deref(),
        }
    }
    /// Its own CA file, if set.
    pub fn cacert(&self) -> Option<&Path> {
        match self {
            HostSetting::Url(_) => None,
            HostSetting::Full { cacert, .. } => cacert.as_deref(),
        }
    }
}

impl Settings {
    /// Where the settings file lives.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("XTOP_CONFIG") {
            return Some(p.into());
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("xtop").join("config.toml"))
    }

    /// Reads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(source) => {
                return Err(SettingsError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes to `path` (creating its directory), atomically.
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let err = |source| SettingsError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = format!(
            "# xtop settings (written by W; edit freely).\n{}",
            toml::to_string_pretty(self).expect("settings serialize")
        );
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xtop/config.toml");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let s = Settings {
            theme: Some("light".into()),
            delay: Some(1.5),
            sort: Some("-cpu".into()),
            columns: Some(vec!["id".into(), "name".into()]),
            cpu_mode: Some(CpuMode::VirtTop),
            mouse: Some(true),
            escape: Some("^T".into()),
            hosts: vec![
                HostSetting::Url("http://a:8000".into()),
                HostSetting::Full {
                    url: "https://b:8000".into(),
                    token: Some("t0k".into()),
                    cacert: Some("/etc/xen/b-ca.pem".into()),
                },
            ],
            keys: [("x".to_owned(), "destroy".to_owned())].into(),
        };
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path).unwrap(), s);
        std::fs::write(
            &path,
            "hosts = [\"unix:/run/x.sock\", { url = \"https://c:8000\", token = \"k\" }]\n",
        )
        .unwrap();
        let hosts = Settings::load(&path).unwrap().hosts;
        assert_eq!(hosts[0].url(), "unix:/run/x.sock");
        assert_eq!(
            (hosts[1].url(), hosts[1].token()),
            ("https://c:8000", Some("k"))
        );
        assert_eq!(hosts[1].cacert(), None);
        std::fs::write(&path, "delay = 2\ncolour = \"red\"\n").unwrap();
        let err = Settings::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("unknown field `colour`") && err.contains("line 2"),
            "{err}"
        );
    }
}
