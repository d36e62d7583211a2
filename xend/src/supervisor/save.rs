//! Saving a domain to an image and restoring one.
//!
//! Image names resolve inside `save-dir` (xend's own directory, mode 0700): a
//! relative name is taken below it, an absolute path must lie in it. A name
//! whose `..`s climb out is refused before the filesystem is looked at; then
//! the directory a name leads to is canonicalized (symlinks followed) before
//! its prefix is checked, so nothing is written or read outside it.
//!
//! A restore that finds no image answers the same whatever the reason
//! (missing, outside the save directory, not a regular file), so it cannot be
//! used to learn whether some file outside the save directory exists.
//! The VMM writes the image (`{"op":"save"}`) and then ends; a restore spawns
//! `vmm --restore IMAGE`, which checks the whole image before it creates
//! anything.
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hypervisor::control::proto::{Payload, Request, SaveInfo};
use hypervisor::snapshot::{self, SavedSpec};

use super::{Domain, EXIT_GRACE, Launch, Phase, SupError, Supervisor, spawn};
use crate::config::{DomainConfig, Image};
use crate::fsutil::FileModes;
use crate::vmm_client::{VmmConn, VmmError};

/// How long the VMM may take to write an image.
const SAVE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why an image name is refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// No name given.
    #[error("the file name is empty")]
    Empty,
    /// The name leads outside `save-dir`.
    #[error("{0} is outside the save directory {1}")]
    Outside(String, String),
    /// The name does not end in a file name.
    #[error("{0} does not name a file")]
    NotAFile(String),
    /// No image to restore under this name in `save-dir`, for whatever
    /// reason (the one answer for missing files and names outside).
    #[error("{0}: no such image in the save directory {1}")]
    NoImage(String, String),
    /// The directory the name leads to does not exist or cannot be read.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The image is not a domain image.
    #[error("{0}: {1}")]
    Image(String, snapshot::format::FormatError),
}

impl From<PathError> for SupError {
    fn from(e: PathError) -> SupError {
        SupError::Invalid(format!("Invalid parameter: file: {e}"))
    }
}

/// Create `dir` (and its missing parents) with the directory mode of `modes`,
/// and give an existing one that mode too (it is xend's own); returns its
/// canonical path.
pub fn ensure_save_dir(dir: &Path, modes: FileModes) -> Result<PathBuf, SupError> {
    modes.own_dir(dir).map_err(|e| {
        SupError::Invalid(format!(
            "cannot create the save directory {}: {e}",
            dir.display()
        ))
    })?;
    dir.canonicalize().map_err(|e| {
        SupError::Invalid(format!(
            "cannot use the save directory {}: {e}",
            dir.display()
        ))
    })
}

/// `save_dir.join(name)` with `.` and `..` resolved lexically (no filesystem
/// access), if it stays strictly inside `save_dir`.
fn lexically_inside(save_dir: &Path, name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in save_dir.join(name).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    (out.starts_with(save_dir) && out != save_dir).then_some(out)
}

/// Where image `name` goes in `save_dir` (canonical): the canonical parent
/// directory (which must exist inside `save_dir`) joined with the file name.
pub fn resolve_for_save(save_dir: &Path, name: &str) -> Result<PathBuf, PathError> {
    if name.trim().is_empty() {
        return Err(PathError::Empty);
    }
    if lexically_inside(save_dir, name).is_none() {
        return Err(outside(name, save_dir));
    }
    let joined = save_dir.join(name);
    let file = match joined.components().next_back() {
        Some(Component::Normal(f)) => f.to_owned(),
        _ => return Err(PathError::NotAFile(name.to_string())),
    };
    let parent = joined.parent().unwrap_or(save_dir);
    let parent = parent
        .canonicalize()
        .map_err(|e| PathError::Io(name.to_string(), e))?;
    if !parent.starts_with(save_dir) {
        return Err(outside(name, save_dir));
    }
    let path = parent.join(file);
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if meta.file_type().is_symlink() {
            // Rename would replace the link, but say so rather than surprise.
            let target = path
                .canonicalize()
                .map_err(|e| PathError::Io(name.to_string(), e))?;
            if !target.starts_with(save_dir) {
                return Err(outside(name, save_dir));
            }
            return Ok(target);
        }
        if meta.is_dir() {
            return Err(PathError::NotAFile(name.to_string()));
        }
    }
    Ok(path)
}

/// The existing image `name` in `save_dir` (canonical, symlinks followed):
/// it must be a regular file inside `save_dir`. Every way of not finding one
/// is the same [`PathError::NoImage`] (no existence oracle), and a name that
/// climbs out of `save_dir` is refused without looking at the filesystem.
pub fn resolve_for_restore(save_dir: &Path, name: &str) -> Result<PathBuf, PathError> {
    if name.trim().is_empty() {
        return Err(PathError::Empty);
    }
    let no_image = || PathError::NoImage(name.to_string(), save_dir.display().to_string());
    let inside = lexically_inside(save_dir, name).ok_or_else(no_image)?;
    match inside.canonicalize() {
        Ok(path) if path.starts_with(save_dir) && path.is_file() => Ok(path),
        _ => Err(no_image()),
    }
}

fn outside(name: &str, save_dir: &Path) -> PathError {
    PathError::Outside(name.to_string(), save_dir.display().to_string())
}

/// The header and `SPEC` record of the image at `path` (the VMM checks the
/// rest before it creates anything).
pub fn read_image_spec(path: &Path, name: &str) -> Result<SavedSpec, PathError> {
    let file = std::fs::File::open(path).map_err(|e| PathError::Io(name.to_string(), e))?;
    let mut r = snapshot::format::Reader::new(std::io::BufReader::new(file))
        .map_err(|e| PathError::Image(name.to_string(), e))?;
    snapshot::read_spec(&mut r).map_err(|e| PathError::Image(name.to_string(), e))
}

/// The config a restored domain runs with: the last config xend kept for
/// its name (policies, console port, devices), with what the image fixes
/// (memory, vCPUs, kernel and command line) taken from the image.
pub fn restored_config(kept: Option<DomainConfig>, spec: &SavedSpec) -> DomainConfig {
    let mut cfg = kept.unwrap_or_else(|| DomainConfig::new(spec.name.clone(), spec.memory_mib));
    cfg.name = spec.name.clone();
    cfg.memory = spec.memory_mib;
    cfg.maxmem = spec.maxmem_mib;
    cfg.vcpus = spec.vcpus;
    let (kernel, cmdline) = spawn::kernel_and_cmdline(&cfg);
    if kernel != spec.kernel || cmdline != spec.cmdline {
        let args = (!spec.cmdline.is_empty()).then(|| spec.cmdline.clone());
        cfg.image = if spec.kernel == "minios" {
            Image::Minios { args }
        } else {
            Image::Linux {
                kernel: spec.kernel.clone().into(),
                ramdisk: None,
                root: None,
                args,
            }
        };
    }
    cfg
}

impl Supervisor {
    /// The canonical `save-dir`, created (0700) when missing.
    pub fn save_dir(&self) -> Result<PathBuf, SupError> {
        ensure_save_dir(&self.settings.save_dir, self.settings.file_modes)
    }

    /// Save `dom` to image `name` (inside `save-dir`); the domain ends once
    /// the image is written. On failure the domain runs on.
    pub async fn save_domain(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        name: &str,
    ) -> Result<SaveInfo, SupError> {
        let dir = self.save_dir()?;
        let path = resolve_for_save(&dir, name)?;
        let _life = self.ready(dom).await?;
        dom.state().phase = Phase::Saving;
        tracing::info!(
            "saving domain {} (id {}) to {}",
            dom.name,
            dom.id,
            path.display()
        );
        let req = Request::Save {
            path: path.display().to_string(),
        };
        let follower = self.follow_progress(dom);
        let result = long_request(dom, &req, SAVE_TIMEOUT).await;
        drop(follower);
        if !matches!(result, Ok(Payload::Saved(_))) {
            self.clear_progress(dom);
        }
        match result {
            Ok(Payload::Saved(info)) => {
                self.finish_progress(dom, "save", info.image_bytes, info.seconds);
                self.end_moved(dom).await;
                tracing::info!(
                    "domain {} (id {}) saved to {} ({} bytes in {:.3} s)",
                    dom.name,
                    dom.id,
                    info.path,
                    info.image_bytes,
                    info.seconds
                );
                self.events.domain(
                    "xend.domain.save",
                    dom.id,
                    &dom.name,
                    Some(info.path.clone()),
                );
                Ok(info)
            }
            Ok(other) => {
                self.resume_after_failure(dom);
                Err(SupError::Vmm {
                    name: dom.name.clone(),
                    source: VmmError::Bad(format!("expected saved, got {other:?}")),
                })
            }
            Err(e) => {
                self.resume_after_failure(dom);
                tracing::error!("save of domain {} failed: {e}", dom.name);
                Err(e)
            }
        }
    }

    /// Restore the image `name` (inside `save-dir`) as a new domain (fresh
    /// id, the saved name), paused if asked.
    pub async fn restore(
        self: &Arc<Self>,
        name: &str,
        paused: bool,
    ) -> Result<Arc<Domain>, SupError> {
        let dir = self.save_dir()?;
        let path = resolve_for_restore(&dir, name)?;
        let (p, n) = (path.clone(), name.to_string());
        let spec = tokio::task::spawn_blocking(move || read_image_spec(&p, &n))
            .await
            .map_err(|e| SupError::Invalid(format!("cannot read the image: {e}")))??;
        let kept = self
            .db
            .load_config(&spec.name)
            .and_then(|t| DomainConfig::parse(&t, "kept config").ok());
        let cfg = restored_config(kept, &spec);
        tracing::info!(
            "restoring domain {} from {}{}",
            cfg.name,
            path.display(),
            if paused { " (paused)" } else { "" }
        );
        self.create_with(
            cfg,
            Launch::Restore {
                image: path,
                paused,
            },
        )
        .await
    }

    /// The VMM of `dom` ended because its domain moved into an image or to
    /// another host (lifecycle lock held): wait for it to exit, drain its
    /// console, and drop the domain (record, console listener) without any
    /// restart handling.
    pub(super) async fn end_moved(&self, dom: &Arc<Domain>) {
        dom.state().phase = Phase::Dying;
        if let Some(w) = dom.state().watcher.take() {
            w.abort();
        }
        *dom.ctl.lock().await = None;
        let pid = dom.state().pid.take();
        if let Some(pid) = pid {
            spawn::wait_exit(pid, EXIT_GRACE).await;
        }
        dom.console.finish_vmm(super::CONSOLE_DRAIN).await;
        self.forget(dom).await;
    }

    /// A save or migration failed: the domain runs on (back to the running
    /// phase); if its VMM died meanwhile, handle that like a crash.
    pub(super) fn resume_after_failure(self: &Arc<Self>, dom: &Arc<Domain>) {
        let (pid, generation) = {
            let mut st = dom.state();
            st.phase = Phase::Running;
            (st.pid, st.generation)
        };
        if pid.is_some_and(|p| !spawn::pid_alive(p)) {
            tracing::error!("domain {} (id {}): its VMM died", dom.name, dom.id);
            self.spawn_exit(dom, generation, hypervisor::control::proto::Reason::Crash);
        }
    }
}

/// Send `req` to `dom`'s VMM on a connection of its own, waiting up to `timeout`.
pub(super) async fn long_request(
    dom: &Domain,
    req: &Request,
    timeout: Duration,
) -> Result<Payload, SupError> {
    let vmm_err = |source| SupError::Vmm {
        name: dom.name.clone(),
        source,
    };
    // A hung VMM fails here within the ordinary deadline, not after `timeout`.
    dom.refresh().await?;
    let mut conn = VmmConn::connect(&dom.paths.socket).await.map_err(vmm_err)?;
    conn.request_within(req, timeout).await.map_err(vmm_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_inside_the_save_dir_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = ensure_save_dir(&root.path().join("save"), FileModes::default()).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink(root.path(), dir.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("pw")).unwrap();
        assert_eq!(resolve_for_save(&dir, "a.img").unwrap(), dir.join("a.img"));
        assert_eq!(resolve_for_save(&dir, "sub/../b").unwrap(), dir.join("b"));
        assert_eq!(
            resolve_for_save(&dir, &dir.join("c").display().to_string()).unwrap(),
            dir.join("c")
        );
        for bad in [
            "../x",
            "/tmp/x",
            "out/x",
            "sub/../../x",
            "pw",
            "",
            "sub/..",
            ".",
        ] {
            assert!(resolve_for_save(&dir, bad).is_err(), "{bad:?} accepted");
        }
        std::fs::write(dir.join("a.img"), "x").unwrap();
        assert_eq!(
            resolve_for_restore(&dir, "a.img").unwrap(),
            dir.join("a.img")
        );
        for bad in ["pw", "../save/../x", "/etc/passwd", "sub", "missing", ""] {
            assert!(resolve_for_restore(&dir, bad).is_err(), "{bad:?} accepted");
        }
        // No existence oracle: a file that exists outside, one that does not,
        // a missing one inside, a symlink out and a directory all answer alike.
        let shown = dir.display().to_string();
        let outside_file = root.path().join("exists.img");
        std::fs::write(&outside_file, "x").unwrap();
        for (name, kind) in [
            (outside_file.display().to_string(), "existing outside"),
            (
                root.path().join("nope.img").display().to_string(),
                "missing outside",
            ),
            ("../exists.img".to_string(), "existing outside, relative"),
            ("../nope.img".to_string(), "missing outside, relative"),
            ("missing.img".to_string(), "missing inside"),
            ("pw".to_string(), "symlink out"),
            ("sub".to_string(), "directory"),
        ] {
            let e = SupError::from(resolve_for_restore(&dir, &name).unwrap_err()).to_string();
            assert_eq!(
                e,
                format!(
                    "Invalid parameter: file: {name}: no such image in the save directory {shown}"
                ),
                "{kind}"
            );
        }
        let e = SupError::from(resolve_for_save(&dir, "/tmp/x").unwrap_err()).to_string();
        assert!(
            e.starts_with("Invalid parameter: file: /tmp/x is outside"),
            "{e}"
        );
    }
}
