//! The bearer token file: every TCP listener (API, event port, consoles)
//! requires the token it holds. xend reads it at start, or creates it with a
//! fresh random token when it does not exist yet, so a new install is
//! authenticated by default. Local clients that can read the file (root and
//! the admin group) use it without being told.
use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Bytes of randomness in a new token (printed as hex).
const TOKEN_BYTES: usize = 32;
/// A token file larger than this is not a token file.
const MAX_TOKEN_FILE: u64 = 4096;

/// Why the token could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or creating the file failed.
    #[error("cannot {action} token file {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is readable or writable by users it should not be.
    #[error(
        "token file {path} is mode {mode:04o}: it must be readable by its owner only (chmod 600 {path}), or by the admin group (chmod 640)"
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to someone else, who could change the token.
    #[error("token file {path} is owned by uid {uid}; it must belong to the user xend runs as")]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// The file is empty, too large or not one line of text.
    #[error("token file {path} holds no token: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TokenError + 'a {
    move |source| TokenError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The token in `path`; when the file does not exist, a new random token is
/// written there first (mode 0600, or 0640 owned by group `gid`).
pub fn load_or_create(path: &Path, gid: Option<u32>) -> Result<String, TokenError> {
    match load(path, gid) {
        Err(TokenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create(path, gid)
        }
        other => other,
    }
}

/// The token in `path`, after checking the file is private to xend (and the
/// admin group `gid`).
pub fn load(path: &Path, gid: Option<u32>) -> Result<String, TokenError> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(io("read", path))?;
    let meta = file.metadata().map_err(io("read", path))?;
    let mode = meta.permissions().mode() & 0o7777;
    let group = mode & 0o070;
    let group_ok = group == 0 || (group == 0o040 && Some(meta.gid()) == gid);
    if mode & 0o007 != 0 || !group_ok {
        return Err(TokenError::Mode {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(TokenError::Owner {
            path: path.to_path_buf(),
            uid: meta.uid(),
        });
    }
    if !meta.is_file() || meta.len() > MAX_TOKEN_FILE {
        return Err(TokenError::Invalid {
            path: path.to_path_buf(),
            why: "it is not a small regular file",
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io("read", path))?;
    parse(&text).ok_or_else(|| TokenError::Invalid {
        path: path.to_path_buf(),
        why: "it must hold one line of printable characters",
    })
}

/// The token a file's text holds (see [`crate::config::parse_token`]).
pub fn parse(text: &str) -> Option<String> {
    crate::config::parse_token(text)
}

fn create(path: &Path, gid: Option<u32>) -> Result<String, TokenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io("create the directory of", path))?;
    }
    let mut raw = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(io("make a random token for", path))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(io("create", path))?;
    if let Some(gid) = gid {
        std::os::unix::fs::fchown(&file, None, Some(gid)).map_err(io("set the group of", path))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o640))
            .map_err(io("set the mode of", path))?;
    }
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", path))?;
    tracing::info!("created a new API token in {}", path.display());
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_gets_a_new_private_token_that_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/xend-token");
        let token = load_or_create(&path, None).unwrap();
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path, None).unwrap(), token);
        // A second file gets another token.
        let other = load_or_create(&dir.path().join("t2"), None).unwrap();
        assert_ne!(other, token);
    }

    #[test]
    fn a_file_others_can_read_or_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path, None).unwrap_err();
        assert!(matches!(err, TokenError::Mode { mode: 0o644, .. }), "{err}");
        // Group-readable only for the admin group.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load(&path, None).is_err());
        let gid = std::fs::metadata(&path).unwrap().gid();
        assert_eq!(load(&path, Some(gid)).unwrap(), "secret");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            load_or_create(&link, Some(gid)).unwrap_err(),
            TokenError::Io { .. }
        ));
    }

    #[test]
    fn tokens_are_one_printable_line() {
        assert_eq!(parse("abc\n").as_deref(), Some("abc"));
        assert_eq!(parse("  abc  \nignored").as_deref(), Some("abc"));
        assert_eq!(parse(""), None);
        assert_eq!(parse("a b"), None);
        assert_eq!(parse("\n"), None);
    }
}
