//! Where a guest's storage may come from. xend runs as root, so a disk or
//! kernel path from a client is a request to open a host file with root's
//! rights; this module is the one place that decides which ones it opens.
//!
//! Rules (issue 10 item 3, issue 13 item 1):
//! - `file:PATH` must canonicalize (every symlink and `..` followed) to a
//!   regular file inside one of `disk-dirs` (default `/var/lib/xen/images`).
//! - `phy:DEV` (`phy:sdb1` is `/dev/sdb1`) must canonicalize to a block
//!   device under `/dev`.
//! - `kernel` and `ramdisk` must canonicalize to a regular file inside one of
//!   `kernel-dirs` (default `/boot /var/lib/xen/images /usr/lib/xen/boot`).
//!   `disk-dirs` do not count by themselves: the lists are separate so an
//!   administrator can keep kernels out of directories guests write.
//!
//! "Inside" compares canonical paths component by component
//! ([`Path::starts_with`]), so `/srv/images-old` is not inside `/srv/images`.
//! A refused path gets one message whether or not it exists, so the answers
//! are no existence oracle for files outside the allowed directories; inside
//! them, a missing file is a plain 400.
//!
//! Callers hand the VMM the canonical path this module returns, never the
//! client's spelling: a symlink swapped after the check cannot redirect the
//! open, short of someone replacing a directory on the canonical path itself
//! (which needs write access inside an allowed directory). Opening in xend
//! and passing the descriptor would close that too; it is left as a
//! follow-up.
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

/// The only directory `phy:` devices may live in.
pub const DEV_DIR: &str = "/dev";

/// Why a disk, kernel or ramdisk path is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// A `file:` backend outside every allowed disk directory (or one that
    /// cannot be resolved to a place inside one).
    #[error(
        "disk {uname} is outside the allowed disk directories ({dirs}); add its directory to disk-dirs in xend-config.sxp"
    )]
    DiskOutside {
        /// The backend as the client wrote it.
        uname: String,
        /// The allowed directories, as configured.
        dirs: String,
    },
    /// A `phy:` backend that is not a block device under `/dev`.
    #[error(
        "disk {uname} is not a block device under /dev; phy: names a host block device (e.g. phy:sdb1 or phy:/dev/vg0/disk)"
    )]
    NotBlockDevice {
        /// The backend as the client wrote it.
        uname: String,
    },
    /// A kernel or ramdisk outside every allowed kernel directory.
    #[error(
        "{what} {path} is outside the allowed kernel directories ({dirs}); add its directory to kernel-dirs in xend-config.sxp"
    )]
    KernelOutside {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path as the client wrote it.
        path: String,
        /// The allowed directories, as configured.
        dirs: String,
    },
    /// A `file:` backend inside an allowed directory that does not exist.
    #[error("Invalid parameter: config: disk {0} does not exist")]
    DiskMissing(String),
    /// A `file:` backend inside an allowed directory that is not a file.
    #[error("Invalid parameter: config: disk {0} is not a regular file")]
    DiskNotFile(String),
    /// A kernel inside an allowed directory that does not exist.
    #[error("{} does not exist: {path}", image_word(what))]
    KernelMissing {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path as the client wrote it.
        path: String,
    },
    /// A kernel inside an allowed directory that is not a regular file.
    #[error("{} is not a regular file: {path}", image_word(what))]
    KernelNotFile {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path as the client wrote it.
        path: String,
    },
    /// A kernel inside an allowed directory that cannot be opened.
    #[error("{} is not readable: {path}", image_word(what))]
    KernelUnreadable {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path as the client wrote it.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Not `file:` or `phy:`, or a relative `file:` path.
    #[error("Invalid parameter: config: {0}")]
    Syntax(String),
    /// The canonical path holds a comma, which the VMM's `--disk` syntax
    /// cannot carry.
    #[error(
        "Invalid parameter: config: disk {uname} resolves to {path}, whose comma the VMM's disk syntax cannot carry; rename it"
    )]
    Comma {
        /// The backend as the client wrote it.
        uname: String,
        /// Its canonical path.
        path: String,
    },
}

fn image_word(what: &str) -> &'static str {
    if what == "ramdisk" {
        "Ramdisk image"
    } else {
        "Kernel image"
    }
}

impl ConfineError {
    /// True for a refusal by policy (HTTP 403); false for a plain mistake
    /// inside the allowed places (400).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            ConfineError::DiskOutside { .. }
                | ConfineError::NotBlockDevice { .. }
                | ConfineError::KernelOutside { .. }
        )
    }
}

/// The kind of a disk backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// `file:` (a disk image).
    File,
    /// `phy:` (a host block device).
    Phy,
}

impl BackendKind {
    /// `file` or `phy`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::File => "file",
            BackendKind::Phy => "phy",
        }
    }
}

/// A disk backend that passed the policy: what the VMM opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `file:` or `phy:`.
    pub kind: BackendKind,
    /// The canonical host path.
    pub path: PathBuf,
}

impl Backend {
    /// The VMM's `--disk` value: `KIND:/canonical,DEV,MODE`.
    pub fn vmm_spec(&self, dev: &str, mode: &str) -> String {
        format!(
            "{}:{},{dev},{mode}",
            self.kind.as_str(),
            self.path.display()
        )
    }
}

/// The allowed directories (`disk-dirs`, `kernel-dirs` of `xend-config.sxp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    /// Directories `file:` disks must lie in.
    pub disk_dirs: Vec<PathBuf>,
    /// Directories kernels and ramdisks must lie in.
    pub kernel_dirs: Vec<PathBuf>,
    /// Where `phy:` devices must lie (`/dev`; other values only in tests).
    dev_dir: PathBuf,
}

impl Default for Confinement {
    /// The built-in defaults of `xend-config.sxp`.
    fn default() -> Self {
        use crate::config::{DEFAULT_DISK_DIRS, DEFAULT_KERNEL_DIRS};
        Confinement::new(
            DEFAULT_DISK_DIRS.iter().map(PathBuf::from).collect(),
            DEFAULT_KERNEL_DIRS.iter().map(PathBuf::from).collect(),
        )
    }
}

impl Confinement {
    /// A policy allowing `file:` disks in `disk_dirs`, kernels and ramdisks in
    /// `kernel_dirs`, `phy:` block devices under `/dev`.
    pub fn new(disk_dirs: Vec<PathBuf>, kernel_dirs: Vec<PathBuf>) -> Self {
        Confinement {
            disk_dirs,
            kernel_dirs,
            dev_dir: PathBuf::from(DEV_DIR),
        }
    }

    /// Check a disk backend (`file:PATH`, `phy:DEV`) and resolve it to what
    /// the VMM must open.
    pub fn disk(&self, uname: &str) -> Result<Backend, ConfineError> {
        let (kind, path) = uname.split_once(':').unwrap_or(("", uname));
        match kind {
            "file" if path.starts_with('/') => self.file_disk(uname, Path::new(path)),
            "file" => Err(ConfineError::Syntax(format!(
                "a disk's uname file:PATH needs an absolute path (e.g. file:/var/lib/xen/images/disk.img), found {uname:?}"
            ))),
            "phy" if !path.is_empty() => {
                let path = if path.starts_with('/') {
                    PathBuf::from(path)
                } else {
                    self.dev_dir.join(path)
                };
                self.phy_disk(uname, &path)
            }
            _ => Err(ConfineError::Syntax(format!(
                "a disk's uname must be file:PATH or phy:DEVICE (e.g. file:/var/lib/xen/images/disk.img or phy:sdb1), found {uname:?}"
            ))),
        }
    }

    fn file_disk(&self, uname: &str, path: &Path) -> Result<Backend, ConfineError> {
        let outside = || ConfineError::DiskOutside {
            uname: uname.to_string(),
            dirs: show(&self.disk_dirs),
        };
        let canon = match resolve(path) {
            Resolved::Exists(c) => c,
            Resolved::Missing(c) if inside(&c, &self.disk_dirs) => {
                return Err(ConfineError::DiskMissing(uname.to_string()));
            }
            Resolved::Missing(_) | Resolved::Unresolvable => return Err(outside()),
        };
        if !inside(&canon, &self.disk_dirs) {
            return Err(outside());
        }
        if !fs::metadata(&canon).is_ok_and(|m| m.is_file()) {
            return Err(ConfineError::DiskNotFile(uname.to_string()));
        }
        no_comma(
            uname,
            Backend {
                kind: BackendKind::File,
                path: canon,
            },
        )
    }

    fn phy_disk(&self, uname: &str, path: &Path) -> Result<Backend, ConfineError> {
        let refused = || ConfineError::NotBlockDevice {
            uname: uname.to_string(),
        };
        let Resolved::Exists(canon) = resolve(path) else {
            return Err(refused());
        };
        let under_dev = fs::canonicalize(&self.dev_dir)
            .is_ok_and(|dev| canon.starts_with(&dev) && canon != dev);
        let block = fs::metadata(&canon).is_ok_and(|m| m.file_type().is_block_device());
        if !(under_dev && block) {
            return Err(refused());
        }
        no_comma(
            uname,
            Backend {
                kind: BackendKind::Phy,
                path: canon,
            },
        )
    }

    /// Check a kernel or ramdisk path (`what` names which) and resolve it to
    /// the canonical path the VMM must load.
    pub fn kernel(&self, what: &'static str, path: &Path) -> Result<PathBuf, ConfineError> {
        let shown = path.display().to_string();
        let outside = || ConfineError::KernelOutside {
            what,
            path: shown.clone(),
            dirs: show(&self.kernel_dirs),
        };
        let canon = match resolve(path) {
            Resolved::Exists(c) if path.is_absolute() => c,
            Resolved::Missing(c) if path.is_absolute() && inside(&c, &self.kernel_dirs) => {
                return Err(ConfineError::KernelMissing {
                    what,
                    path: shown.clone(),
                });
            }
            _ => return Err(outside()),
        };
        if !inside(&canon, &self.kernel_dirs) {
            return Err(outside());
        }
        if !fs::metadata(&canon).is_ok_and(|m| m.is_file()) {
            return Err(ConfineError::KernelNotFile { what, path: shown });
        }
        fs::File::open(&canon).map_err(|source| ConfineError::KernelUnreadable {
            what,
            path: shown.clone(),
            source,
        })?;
        Ok(canon)
    }
}

fn no_comma(uname: &str, b: Backend) -> Result<Backend, ConfineError> {
    if b.path.to_string_lossy().contains(',') {
        return Err(ConfineError::Comma {
            uname: uname.to_string(),
            path: b.path.display().to_string(),
        });
    }
    Ok(b)
}

/// The directories as the message shows them: `a, b` (or `none`).
fn show(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "none".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `canon` is one of `dirs` (canonicalized now) or below one.
/// Directories that do not exist allow nothing.
fn inside(canon: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter()
        .filter_map(|d| fs::canonicalize(d).ok())
        .any(|d| canon.starts_with(d))
}

/// Where a path leads.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    /// It exists: its canonical path.
    Exists(PathBuf),
    /// It does not exist; the canonical path of its deepest existing
    /// ancestor with the missing plain names appended (those names cannot be
    /// symlinks, since they do not exist).
    Missing(PathBuf),
    /// It cannot be placed (a `..` below a missing name, a dangling
    /// symlink, a symlink loop, a relative path).
    Unresolvable,
}

fn resolve(path: &Path) -> Resolved {
    if !path.is_absolute() {
        return Resolved::Unresolvable;
    }
    if let Ok(c) = fs::canonicalize(path) {
        return Resolved::Exists(c);
    }
    let mut tail = Vec::new();
    let mut at = path;
    loop {
        // `at` does not canonicalize. If it is there all the same (a
        // dangling symlink, a loop) where it leads is unknown: refuse.
        if fs::symlink_metadata(at).is_ok() {
            return Resolved::Unresolvable;
        }
        match at.components().next_back() {
            Some(Component::Normal(name)) => tail.push(name.to_os_string()),
            // `..` or `.` after a missing name: where it leads depends on
            // nothing that exists; refuse rather than guess.
            _ => return Resolved::Unresolvable,
        }
        let Some(parent) = at.parent() else {
            return Resolved::Unresolvable;
        };
        at = parent;
        // A missing name below a file (ENOTDIR) also ends here: it is
        // missing either way.
        if let Ok(mut c) = fs::canonicalize(at) {
            c.extend(tail.iter().rev());
            return Resolved::Missing(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        policy: Confinement,
    }

    /// `<root>/images` (allowed for disks), `<root>/images-old`,
    /// `<root>/outside.img`, `<root>/kernels/k` (allowed for kernels).
    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir_all(root.join("images/sub")).unwrap();
        fs::create_dir_all(root.join("images-old")).unwrap();
        fs::create_dir_all(root.join("kernels")).unwrap();
        for f in [
            "images/a.img",
            "images/sub/b.img",
            "images-old/c.img",
            "outside.img",
            "kernels/k",
        ] {
            fs::write(root.join(f), b"x").unwrap();
        }
        let policy = Confinement::new(vec![root.join("images")], vec![root.join("kernels")]);
        Fixture {
            _tmp: tmp,
            root,
            policy,
        }
    }

    #[track_caller]
    fn refused(policy: &Confinement, uname: &str, forbidden: bool, says: &str) {
        let e = policy.disk(uname).expect_err(uname);
        assert_eq!(e.is_forbidden(), forbidden, "{uname}: {e}");
        assert!(e.to_string().contains(says), "{uname}: {e}");
    }

    #[test]
    fn file_disks_inside_the_allowed_dirs_resolve_to_their_canonical_path() {
        let f = fixture();
        let images = f.root.join("images");
        for (uname, want) in [
            (format!("file:{}/a.img", images.display()), "a.img"),
            (format!("file:{}/sub/b.img", images.display()), "sub/b.img"),
            (format!("file:{}/sub/../a.img", images.display()), "a.img"),
            (
                format!("file:{}/./sub//b.img", images.display()),
                "sub/b.img",
            ),
        ] {
            let b = f.policy.disk(&uname).unwrap();
            assert_eq!(b.kind, BackendKind::File);
            assert_eq!(b.path, images.join(want), "{uname}");
        }
        // A symlink from elsewhere into the directory: the target counts.
        symlink(images.join("a.img"), f.root.join("in.img")).unwrap();
        let b = f
            .policy
            .disk(&format!("file:{}/in.img", f.root.display()))
            .unwrap();
        assert_eq!(b.path, images.join("a.img"));
        assert_eq!(
            b.vmm_spec("xvda", "w"),
            format!("file:{}/a.img,xvda,w", images.display())
        );
    }

    #[test]
    fn file_disks_outside_are_refused_alike_whether_or_not_they_exist() {
        let f = fixture();
        let images = f.root.join("images");
        symlink(f.root.join("outside.img"), images.join("escape.img")).unwrap();
        symlink(&f.root, images.join("up")).unwrap();
        symlink(f.root.join("nowhere.img"), images.join("dangling.img")).unwrap();
        let r = f.root.display();
        let i = images.display();
        for uname in [
            format!("file:{r}/outside.img"),
            format!("file:{r}/missing.img"),
            format!("file:{r}/images-old/c.img"), // a string prefix is not a directory prefix
            format!("file:{r}/images-old/missing.img"),
            format!("file:{i}/../outside.img"),
            format!("file:{i}/../missing.img"),
            format!("file:{i}/escape.img"),
            format!("file:{i}/up/outside.img"),
            format!("file:{i}/up/missing.img"),
            format!("file:{i}/dangling.img"),
            format!("file:{i}/missing/../../outside.img"),
            "file:/etc/shadow".into(),
            "file:/nonexistent/dir/x.img".into(),
        ] {
            let e = f.policy.disk(&uname).expect_err(&uname);
            assert!(e.is_forbidden(), "{uname}: {e}");
            assert_eq!(
                e.to_string(),
                format!(
                    "disk {uname} is outside the allowed disk directories ({i}); add its directory to disk-dirs in xend-config.sxp"
                )
            );
        }
    }

    #[test]
    fn file_disk_mistakes_inside_the_dirs_are_plain_errors() {
        let f = fixture();
        let i = f.root.join("images");
        let i = i.display();
        refused(
            &f.policy,
            &format!("file:{i}/missing.img"),
            false,
            "does not exist",
        );
        refused(
            &f.policy,
            &format!("file:{i}/new/dir/x.img"),
            false,
            "does not exist",
        );
        refused(
            &f.policy,
            &format!("file:{i}/sub"),
            false,
            "not a regular file",
        );
        refused(&f.policy, &format!("file:{i}"), false, "not a regular file");
        fs::write(f.root.join("images/a,b.img"), b"x").unwrap();
        refused(&f.policy, &format!("file:{i}/a,b.img"), false, "comma");
        refused(&f.policy, "file:rel.img", false, "absolute");
        refused(&f.policy, "nbd:host:1", false, "file:PATH or phy:");
        refused(&f.policy, "phy:", false, "file:PATH or phy:");
    }

    #[test]
    fn no_allowed_dir_allows_nothing() {
        let f = fixture();
        let none = Confinement::new(vec![], vec![]);
        let uname = format!("file:{}/images/a.img", f.root.display());
        let e = none.disk(&uname).unwrap_err();
        assert!(e.to_string().contains("directories (none)"), "{e}");
        let missing_dir =
            Confinement::new(vec![f.root.join("not-there")], vec![f.root.join("nor")]);
        assert!(missing_dir.disk(&uname).unwrap_err().is_forbidden());
        let e = missing_dir
            .kernel("kernel", &f.root.join("kernels/k"))
            .unwrap_err();
        assert!(e.is_forbidden(), "{e}");
    }

    #[test]
    fn phy_disks_must_be_block_devices_under_dev() {
        let f = fixture();
        for uname in [
            "phy:../etc/passwd",
            "phy:../x",
            "phy:/etc/passwd",
            "phy:shm",
            "phy:/dev/shm",
            "phy:/dev",
            "phy:/dev/",
            "phy:null",
            "phy:/dev/null",
            "phy:no-such-device",
        ] {
            refused(&f.policy, uname, true, "is not a block device under /dev");
        }
        // A symlink under /dev to a block device elsewhere is not enough:
        // the canonical path must be under /dev.
        let fake_dev = Confinement {
            dev_dir: f.root.join("dev"),
            ..f.policy.clone()
        };
        fs::create_dir(f.root.join("dev")).unwrap();
        if let Some(block) = some_block_device() {
            symlink(&block, f.root.join("dev/disk")).unwrap();
            refused(&fake_dev, "phy:disk", true, "not a block device");
            let name = block.file_name().unwrap().to_str().unwrap();
            let b = f.policy.disk(&format!("phy:{name}")).unwrap();
            assert_eq!((b.kind, b.path.clone()), (BackendKind::Phy, block.clone()));
            let b = f.policy.disk(&format!("phy:{}", block.display())).unwrap();
            assert_eq!(
                b.vmm_spec("xvdb", "r"),
                format!("phy:{},xvdb,r", block.display())
            );
        }
    }

    fn some_block_device() -> Option<PathBuf> {
        fs::read_dir(DEV_DIR).ok()?.flatten().find_map(|e| {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).ok()?;
            meta.file_type().is_block_device().then_some(p)
        })
    }

    #[test]
    fn kernels_must_lie_in_the_kernel_dirs() {
        let f = fixture();
        let k = f.root.join("kernels/k");
        assert_eq!(f.policy.kernel("kernel", &k).unwrap(), k);
        symlink(&k, f.root.join("images/k")).unwrap();
        assert_eq!(
            f.policy.kernel("kernel", &f.root.join("images/k")).unwrap(),
            k
        );
        symlink("/etc/shadow", f.root.join("kernels/shadow")).unwrap();
        for p in [
            PathBuf::from("/etc/shadow"),
            f.root.join("kernels/shadow"),
            f.root.join("kernels/../outside.img"),
            f.root.join("images/a.img"), // disk-dirs are not kernel dirs
            f.root.join("missing"),
            PathBuf::from("relative/k"),
        ] {
            let e = f.policy.kernel("ramdisk", &p).expect_err("refused");
            assert!(e.is_forbidden(), "{}: {e}", p.display());
            assert_eq!(
                e.to_string(),
                format!(
                    "ramdisk {} is outside the allowed kernel directories ({}); add its directory to kernel-dirs in xend-config.sxp",
                    p.display(),
                    f.root.join("kernels").display()
                )
            );
        }
        let e = f
            .policy
            .kernel("kernel", &f.root.join("kernels/missing"))
            .unwrap_err();
        assert!(!e.is_forbidden());
        assert!(
            e.to_string().starts_with("Kernel image does not exist: "),
            "{e}"
        );
        let e = f
            .policy
            .kernel("kernel", &f.root.join("kernels"))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Kernel image is not a regular file: "),
            "{e}"
        );
    }

    #[test]
    fn resolving_missing_paths() {
        let f = fixture();
        let r = &f.root;
        assert_eq!(
            resolve(&r.join("images/a.img")),
            Resolved::Exists(r.join("images/a.img"))
        );
        assert_eq!(
            resolve(&r.join("images/x/y.img")),
            Resolved::Missing(r.join("images/x/y.img"))
        );
        assert_eq!(
            resolve(&r.join("images/x/../y.img")),
            Resolved::Unresolvable
        );
        assert_eq!(
            resolve(&r.join("images/a.img/y")),
            Resolved::Missing(r.join("images/a.img/y"))
        );
        assert_eq!(resolve(Path::new("rel")), Resolved::Unresolvable);
    }
}
