//! Every file and directory xend creates goes through here: private modes
//! (0700 directories, 0600 files by default) and no symlink followed at the
//! last component.
//!
//! - [`FileModes::dir_all`] creates missing directories with the directory
//!   mode; an existing one is left as it is (a log directory such as
//!   `/var/log` is not xend's to change).
//! - [`FileModes::own_dir`] is for xend's dedicated directories (state dir,
//!   dbroot, save dir and their subdirectories): created like `dir_all`, and an
//!   existing one gets the directory mode (and group) too, unless it looks
//!   shared (sticky or world-writable, like `/tmp`).
//! - [`FileModes::open`] opens a file for writing with `O_NOFOLLOW` (a symlink
//!   planted at the name is refused, not followed), refuses anything but a
//!   regular file with one link, and gives it the file mode and group.
//!
//! The modes live in [`crate::settings::Settings::file_modes`]; an admin group
//! (`gid`, with 0750/0640) can be configured there without touching any caller.
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

/// The modes (and optional group) of what xend creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileModes {
    /// Mode of directories (default 0700).
    pub dir: u32,
    /// Mode of files (default 0600).
    pub file: u32,
    /// Group given to everything created, when set (an admin group; then
    /// typically 0750 and 0640).
    pub gid: Option<u32>,
}

impl Default for FileModes {
    fn default() -> FileModes {
        FileModes::PRIVATE
    }
}

/// How [`FileModes::open`] treats an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// The file must not exist yet (`O_EXCL`).
    New,
    /// Create it, or empty an existing one.
    Truncate,
    /// Create it, or append to an existing one.
    Append,
    /// It must exist already; it is emptied (nothing is created).
    TruncateExisting,
}

impl FileModes {
    /// Root only: 0700 directories, 0600 files, no group.
    pub const PRIVATE: FileModes = FileModes {
        dir: 0o700,
        file: 0o600,
        gid: None,
    };

    /// Create `path` and its missing parents with the directory mode. Existing
    /// directories keep their mode.
    pub fn dir_all(&self, path: &Path) -> io::Result<()> {
        if path.is_dir() {
            return Ok(());
        }
        // Create one level at a time so that each new directory gets the mode
        // and group (DirBuilder's mode is filtered by the umask).
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            self.dir_all(parent)?;
        }
        match DirBuilder::new().mode(self.dir).create(path) {
            Ok(()) => self.fix_dir(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create the dedicated directory `path` (see [`FileModes::dir_all`]) and
    /// give it the directory mode and group even when it existed, unless it
    /// looks shared: sticky or world-writable (like `/tmp`). Returns whether
    /// its mode was set.
    pub fn own_dir(&self, path: &Path) -> io::Result<bool> {
        self.dir_all(path)?;
        let meta = std::fs::metadata(path)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        // Sticky or world-writable: a shared directory (like /tmp) that
        // xend was pointed at by mistake; not ours to lock down.
        if meta.mode() & 0o1002 != 0 {
            return Ok(false);
        }
        self.fix_dir(path)?;
        Ok(true)
    }

    fn fix_dir(&self, path: &Path) -> io::Result<()> {
        if let Some(gid) = self.gid {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.dir))
    }

    /// Give the existing regular file `path` the file mode and group, without
    /// following a symlink there (e.g. rotated logs an older xend left 0644).
    /// A missing file is fine.
    pub fn restrict(&self, path: &Path) -> io::Result<()> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (refused)",
            ));
        }
        if let Some(gid) = self.gid
            && meta.gid() != gid
        {
            std::os::unix::fs::fchown(&file, None, Some(gid))?;
        }
        if meta.mode() & 0o7777 != self.file {
            file.set_permissions(std::fs::Permissions::from_mode(self.file))?;
        }
        Ok(())
    }

    /// Open `path` for writing as `how` says, with `O_NOFOLLOW`: a symlink at
    /// `path` is refused. Only a regular file with a single link is accepted
    /// (no FIFO, device or hard link to someone else's file); it gets the file
    /// mode and group.
    pub fn open(&self, path: &Path, how: Create) -> io::Result<File> {
        let mut opts = OpenOptions::new();
        opts.write(true)
            .mode(self.file)
            // O_NONBLOCK: opening a FIFO planted at the name must not hang
            // (it is refused below); it changes nothing for regular files.
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits());
        match how {
            Create::New => {
                opts.create_new(true);
            }
            Create::Truncate => {
                opts.create(true);
            }
            Create::Append => {
                opts.create(true).append(true);
            }
            Create::TruncateExisting => {}
        }
        let file = opts.open(path).map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is a symbolic link (refused)",
                )
            } else {
                e
            }
        })?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (refused)",
            ));
        }
        if meta.nlink() > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it has other hard links (refused)",
            ));
        }
        // Truncate only once the file is known to be ours to empty.
        if matches!(how, Create::Truncate | Create::TruncateExisting) && meta.len() > 0 {
            file.set_len(0)?;
        }
        if let Some(gid) = self.gid
            && meta.gid() != gid
        {
            std::os::unix::fs::fchown(&file, None, Some(gid))?;
        }
        if meta.mode() & 0o7777 != self.file {
            file.set_permissions(std::fs::Permissions::from_mode(self.file))?;
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn directories_are_private_and_existing_foreign_ones_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let m = FileModes::PRIVATE;
        let deep = root.path().join("a/b/c");
        m.dir_all(&deep).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&root.path().join(d)), 0o700, "{d}");
        }
        // An existing directory keeps its mode with dir_all...
        let shared = root.path().join("log");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        m.dir_all(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);
        // ...and gets it with own_dir, unless it is sticky.
        assert!(m.own_dir(&shared).unwrap());
        assert_eq!(mode(&shared), 0o700);
        let tmp = root.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(!m.own_dir(&tmp).unwrap());
        assert_eq!(mode(&tmp), 0o1777);
    }

    #[test]
    fn files_are_private_and_symlinks_fifos_and_hard_links_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let m = FileModes::PRIVATE;
        let victim = root.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();

        let link = root.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for how in [
            Create::New,
            Create::Truncate,
            Create::Append,
            Create::TruncateExisting,
        ] {
            assert!(m.open(&link, how).is_err(), "{how:?} followed a symlink");
        }
        let hard = root.path().join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        assert!(m.open(&hard, Create::Truncate).is_err());
        assert!(m.open(&hard, Create::Append).is_err());
        let fifo = root.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(m.open(&fifo, Create::Append).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(mode(&victim), 0o644);

        let f = root.path().join("new");
        m.open(&f, Create::New).unwrap();
        assert_eq!(mode(&f), 0o600);
        assert!(m.open(&f, Create::New).is_err(), "O_EXCL");
        let old = root.path().join("old");
        std::fs::write(&old, "x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        m.open(&old, Create::Append).unwrap();
        assert_eq!(mode(&old), 0o600, "an existing file is made private");
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "x");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        m.restrict(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert!(m.restrict(&link).is_err(), "restrict followed a symlink");
        assert_eq!(mode(&victim), 0o644);
        m.restrict(&root.path().join("none")).unwrap();
        m.open(&old, Create::TruncateExisting).unwrap();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "");
        assert!(
            m.open(&root.path().join("none"), Create::TruncateExisting)
                .is_err()
        );
    }
}
