//! The domain DB: one SXP record per domain in `<dbroot>/domain/<domid>`, and
//! the last config of every domain name in `<dbroot>/config/<name>`.
//!
//! Every write is atomic: a temp file in the same directory, `fsync`, `rename`
//! over the old file, `fsync` of the directory. A crash at any moment leaves the
//! old record or the new one, never a torn one; leftover temp files (`.tmp-*`)
//! are ignored and removed on the next start.
//!
//! Files and directories are private ([`FileModes`]: 0600 and 0700 by
//! default) and created without following symlinks; a config is only ever
//! stored under a name that passes the name rule
//! ([`crate::config::check_file_name`]), so it stays in `<dbroot>/config`.
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::NameError;
use crate::fsutil::{Create, FileModes};

/// Errors reading or writing records.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A filesystem operation failed.
    #[error("cannot {what} {path}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A name that cannot name a record file.
    #[error("cannot store a config under the name {name:?}: {why}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong with it.
        #[source]
        why: NameError,
    },
    /// A record does not parse.
    #[error("bad record {path}: {message}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DbError + use<> {
    let path = path.to_path_buf();
    move |source| DbError::Io { what, path, source }
}

/// Write `contents` to `path` atomically (temp file, fsync, rename, fsync
/// dir). The temp file is new (`O_EXCL`, no symlink followed) and has the file
/// mode of `modes`; a missing directory is created with its directory mode.
pub fn write_atomic(path: &Path, contents: &[u8], modes: FileModes) -> Result<(), DbError> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    modes.dir_all(dir).map_err(io_err("create", dir))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let tmp = dir.join(format!(
        ".tmp-{name}-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let written = modes
        .open(&tmp, Create::New)
        .map_err(io_err("create", &tmp))
        .and_then(|mut f| {
            f.write_all(contents).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("fsync", &tmp))
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(io_err("rename to", path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), DbError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Remove `path` (and fsync its directory); a missing file is fine.
pub fn remove(path: &Path) -> Result<(), DbError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// The DB rooted at `dbroot`.
#[derive(Clone, Debug)]
pub struct Db {
    root: PathBuf,
    modes: FileModes,
}

impl Db {
    /// Open (create) the DB directories, private, and drop leftover temp files.
    pub fn open(root: &Path) -> Result<Db, DbError> {
        Db::open_with(root, FileModes::default())
    }

    /// [`Db::open`] with the given modes: `dbroot`, `domain` and `config` are
    /// xend's own directories and get the directory mode even if they existed.
    pub fn open_with(root: &Path, modes: FileModes) -> Result<Db, DbError> {
        let db = Db {
            root: root.to_path_buf(),
            modes,
        };
        modes.own_dir(root).map_err(io_err("create", root))?;
        for dir in [db.domain_dir(), db.config_dir()] {
            modes.own_dir(&dir).map_err(io_err("create", &dir))?;
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(".tmp-") {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        Ok(db)
    }

    /// `<dbroot>/domain`.
    pub fn domain_dir(&self) -> PathBuf {
        self.root.join("domain")
    }

    /// `<dbroot>/config`.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    /// The modes records are written with.
    pub fn modes(&self) -> FileModes {
        self.modes
    }

    /// The kept config of domain `name`: `<dbroot>/config/<name>`, for a name
    /// that passes the name rule only.
    pub fn config_path(&self, name: &str) -> Result<PathBuf, DbError> {
        crate::config::check_file_name(name).map_err(|why| DbError::BadName {
            name: name.to_string(),
            why,
        })?;
        Ok(self.config_dir().join(name))
    }

    /// The kept config of domain `name`, if there is one (and the name is valid).
    pub fn load_config(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.config_path(name).ok()?).ok()
    }

    /// The record file of domain `domid`.
    pub fn domain_path(&self, domid: u32) -> PathBuf {
        self.domain_dir().join(domid.to_string())
    }

    /// Store a domain record: a comment line, then the record.
    pub fn save_domain(&self, domid: u32, record: &sxp::Value) -> Result<(), DbError> {
        let text = format!(
            "# xend domain record, domain {domid}; written {}\n{}\n",
            crate::events::now(),
            sxp::pretty(record)
        );
        write_atomic(&self.domain_path(domid), text.as_bytes(), self.modes)
    }

    /// Write a domain's record (see [`DomainEntry`]).
    pub fn save_entry(&self, domid: u32, entry: &DomainEntry) -> Result<(), DbError> {
        self.save_domain(domid, &entry.to_sxp())
    }

    /// Remove domain `domid`'s record.
    pub fn remove_domain(&self, domid: u32) -> Result<(), DbError> {
        remove(&self.domain_path(domid))
    }

    /// Every domain record: `(domid, record)`, sorted by id. Files that do not
    /// parse are reported in the second list (never deleted).
    pub fn load_domains(&self) -> (Vec<(u32, sxp::Value)>, Vec<DbError>) {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        let Ok(rd) = fs::read_dir(self.domain_dir()) else {
            return (ok, bad);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(domid) = name.parse::<u32>() else {
                continue;
            };
            let path = e.path();
            match fs::read_to_string(&path) {
                Ok(text) => match sxp::parse(&text) {
                    Ok(v) if v.head() == Some("domain") => ok.push((domid, v)),
                    Ok(_) => bad.push(DbError::Bad {
                        path,
                        message: "not a (domain ...) record".into(),
                    }),
                    Err(e) => bad.push(DbError::Bad {
                        path,
                        message: e.to_string(),
                    }),
                },
                Err(e) => bad.push(io_err("read", &path)(e)),
            }
        }
        ok.sort_by_key(|(id, _)| *id);
        (ok, bad)
    }

    /// Keep the config of domain `name` (persists after the domain is gone).
    pub fn save_config(&self, name: &str, config: &sxp::Value) -> Result<(), DbError> {
        let path = self.config_path(name)?;
        let text = format!("# last config of domain {name}\n{}\n", sxp::pretty(config));
        write_atomic(&path, text.as_bytes(), self.modes)
    }
}

/// What the DB keeps of a domain: its full record, plus its console log's
/// lifetime (see [`crate::console`]) and whether a restart is under way (so a
/// restart cut short by a crash of xend is finished when xend starts again).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainEntry {
    /// The domain's full record.
    pub record: crate::api::DomainRecord,
    /// The lifetime stamp of its console log.
    pub lifetime: u64,
    /// A restart is under way.
    pub restarting: bool,
}

impl DomainEntry {
    /// The record's sxpr plus `(lifetime STAMP)` and `(phase restarting)`
    /// while a restart is under way.
    pub fn to_sxp(&self) -> sxp::Value {
        let mut v = crate::render::record_sxp(&self.record);
        if let sxp::Value::List(items) = &mut v {
            items.push(sxp::Value::pair("lifetime", self.lifetime));
            if self.restarting {
                items.push(sxp::Value::pair("phase", "restarting"));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_temp_files_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let rec = sxp::parse("(domain (id 3) (name 'a b') (config (vm (name x))))").unwrap();
        db.save_domain(3, &rec).unwrap();
        fs::write(db.domain_dir().join(".tmp-3-999"), "(domain (id").unwrap();
        fs::write(db.domain_dir().join("7"), "(domain (id").unwrap();
        let (ok, bad) = db.load_domains();
        assert_eq!(ok, vec![(3, rec)]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        let text = fs::read_to_string(db.domain_path(3)).unwrap();
        assert!(text.starts_with("# xend domain record"), "{text}");
        Db::open(dir.path()).unwrap();
        assert!(!db.domain_dir().join(".tmp-3-999").exists());
        db.remove_domain(3).unwrap();
        db.remove_domain(3).unwrap();
        assert!(db.load_domains().0.is_empty());
    }

    #[test]
    fn records_are_private_and_names_cannot_leave_the_config_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let db = Db::open(&root).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700, "an existing dbroot is made private");
        assert_eq!(mode(&db.domain_dir()), 0o700);
        assert_eq!(mode(&db.config_dir()), 0o700);
        let cfg = sxp::parse("(vm (name a))").unwrap();
        db.save_domain(1, &cfg).unwrap();
        db.save_config("a", &cfg).unwrap();
        assert_eq!(mode(&db.domain_path(1)), 0o600);
        assert_eq!(mode(&db.config_path("a").unwrap()), 0o600);
        assert!(db.load_config("a").unwrap().contains("(name a)"));

        let victim = dir.path().join("victim.txt");
        fs::write(&victim, "precious").unwrap();
        for bad in ["../victim.txt", "../../x", "..", ".", "a/b", "-x", ""] {
            assert!(
                matches!(db.save_config(bad, &cfg), Err(DbError::BadName { .. })),
                "{bad:?}"
            );
            assert!(db.load_config(bad).is_none());
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        // A symlink planted at a config name is replaced, never written through.
        std::os::unix::fs::symlink(&victim, db.config_dir().join("b")).unwrap();
        db.save_config("b", &cfg).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            !fs::symlink_metadata(db.config_dir().join("b"))
                .unwrap()
                .is_symlink()
        );
    }

    proptest::proptest! {
        /// Whatever a client sends as a name, a config path xend accepts is
        /// a direct child of `<dbroot>/config`.
        #[test]
        fn config_paths_stay_in_the_config_dir(
            name in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[a-z./\\-+: \\n\\x00]{0,8}",
            ]
        ) {
            let db = Db { root: PathBuf::from("/var/lib/xen/xend-db"), modes: FileModes::default() };
            if let Ok(path) = db.config_path(&name) {
                let dir = db.config_dir();
                proptest::prop_assert_eq!(path.parent(), Some(dir.as_path()));
                proptest::prop_assert_eq!(path.file_name().and_then(|f| f.to_str()), Some(name.as_str()));
            }
        }
    }
}
