//! Process plumbing for the VMM binary: detaching from the spawner, the
//! runtime record, signals, and the control socket file.
use std::io::{BufRead, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::progress::Progress;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors in process setup.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A file operation failed.
    #[error("{what} {path}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Another live VMM owns the socket.
    #[error("control socket {0} is in use by another VMM")]
    SocketInUse(PathBuf),
    /// fork/setsid/pipe failed.
    #[error("cannot detach: {0}")]
    Detach(#[source] std::io::Error),
}

/// The runtime record a VMM leaves in the state dir while it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// VMM process id.
    pub pid: u32,
    /// Domain name.
    pub name: String,
    /// Domain id.
    pub domid: u32,
    /// Control socket.
    pub socket: PathBuf,
    /// Boot time, seconds since the Unix epoch.
    pub start_time: f64,
    /// RAM at boot, MiB.
    pub memory_mib: u64,
    /// Maximum RAM, MiB.
    pub maxmem_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// `minios` or a kernel path.
    pub kernel: String,
    /// Kernel command line.
    pub cmdline: String,
    /// Boot id of the host kernel when the VMM started (to spot records left
    /// over from before a host reboot).
    pub boot_id: String,
}

/// Move this process into the cgroup directory `dir` (cgroup v1 or v2) by
/// writing its pid to `dir/cgroup.procs`. xend gives one `--cgroup` per
/// hierarchy; the VMM joins them first thing, before it allocates guest RAM
/// or starts a thread, so everything it does is counted there and the
/// detached process and every thread inherit them.
pub fn join_cgroup(dir: &Path) -> Result<(), DaemonError> {
    let path = dir.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(|source| DaemonError::File {
            what: "cannot join cgroup",
            path,
            source,
        })
}

/// This host boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Write `record` to `path` atomically (temp file, rename), without fsync:
/// a record describes a process that cannot outlive this host boot (a crash
/// takes the VMM with it), and xend only asks whether it exists, so
/// durability buys nothing; the rename keeps it whole for readers. The
/// two fsyncs cost 10-60 ms on a loaded host, and a jailed VMM's vCPUs wait
/// for the record before they may run (the jail is entered after it).
pub fn write_record(path: &Path, record: &Record) -> Result<(), DaemonError> {
    let err = |what, source| DaemonError::File {
        what,
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = private_file(&tmp, false).map_err(|e| err("cannot create", e))?;
    let body = serde_json::to_vec_pretty(record).expect("records always serialize");
    f.write_all(&body).map_err(|e| err("cannot write", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| err("cannot rename into", e))?;
    Ok(())
}

/// Create `path` for writing, mode 0600, without following a symlink at
/// `path` (`O_NOFOLLOW`): new (`O_EXCL`) unless `append`, which appends to an
/// existing file (made 0600 if it was not).
pub fn private_file(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if append {
        opts.create(true).append(true);
    } else {
        opts.create_new(true);
    }
    let f = opts.open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.permissions().mode() & 0o777 != 0o600 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Bind the control socket with mode 0600, replacing a stale socket file but
/// refusing one a live VMM still answers on.
pub fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::SocketInUse(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|source| DaemonError::File {
        what: "cannot bind",
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        DaemonError::File {
            what: "cannot chmod",
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(listener)
}

/// The child side of `detach`: tell the waiting parent how start-up went.
pub struct ReadyPipe(std::io::PipeWriter);

impl ReadyPipe {
    /// Start-up succeeded.
    pub fn ready(mut self) {
        let _ = writeln!(self.0, "ready {}", crate::jail::host_pid());
    }

    /// Start-up failed with `msg`.
    pub fn failed(mut self, msg: &str) {
        let _ = writeln!(self.0, "error: {msg}");
    }

    /// Relay `progress` to the parent (which prints it for the spawner) as
    /// `progress JSON` lines, at most every [`RELAY_EVERY`] and only when it
    /// changed, until the relay is dropped (before `ready` or `failed`).
    pub fn relay(&self, progress: Arc<Progress>) -> std::io::Result<ProgressRelay> {
        let mut pipe = self.0.try_clone()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = crate::jail::spawn(
            "progress".into(),
            crate::jail::ThreadKind::DeviceIo,
            move || {
                let (lock, cond) = &*flag;
                let mut last = None;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    // Once more after the stop, so a finished operation's
                    // last figures go out.
                    let now = progress.snapshot();
                    if now.is_some() && now != last {
                        let json = serde_json::to_string(&now).expect("progress serializes");
                        if writeln!(pipe, "progress {json}").is_err() {
                            return;
                        }
                        last = now;
                    }
                    if *stopped {
                        return;
                    }
                    stopped = cond
                        .wait_timeout(stopped, RELAY_EVERY)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            },
        )?;
        Ok(ProgressRelay {
            stop,
            thread: Some(thread),
        })
    }
}

/// How often [`ReadyPipe::relay`] looks at the progress.
pub const RELAY_EVERY: Duration = Duration::from_millis(100);

/// A running [`ReadyPipe::relay`]; dropping it stops the thread (joined, so
/// no progress line can follow `ready`).
pub struct ProgressRelay {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ProgressRelay {
    fn drop(&mut self) {
        let (lock, cond) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cond.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fork into the background. The parent waits until the child reports
/// (`ReadyPipe`), prints the child's pid (or its error) and exits. The child
/// gets its own session (no controlling terminal) and `/dev/null` stdio,
/// except stderr, which goes to `log` when given.
///
/// # Safety
///
/// The process must be single-threaded when this is called: `fork` copies
/// only the calling thread, so a lock another thread held (the allocator's,
/// stdio's) would stay locked forever in the child.
pub unsafe fn detach(log: Option<&Path>) -> Result<ReadyPipe, DaemonError> {
    let (reader, writer) = std::io::pipe().map_err(DaemonError::Detach)?;
    // SAFETY: called while the process is single-threaded (documented
    // precondition), so the child starts in a consistent state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(DaemonError::Detach(std::io::Error::last_os_error()));
    }
    if pid > 0 {
        drop(writer);
        // Progress lines are passed on as they come; `ready PID` ends
        // start-up; anything else is the error.
        let mut reader = std::io::BufReader::new(reader);
        let mut msg = String::new();
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            if line.starts_with("progress ") {
                let mut out = std::io::stdout();
                let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
            } else if let Some(child) = line.strip_prefix("ready ") {
                println!("{}", child.trim());
                std::process::exit(0);
            } else {
                msg.push_str(&line);
            }
            line.clear();
        }
        match msg.strip_prefix("ready ") {
            Some(child) => {
                println!("{}", child.trim());
                std::process::exit(0);
            }
            None if msg.is_empty() => {
                eprintln!("vmm: the domain process exited during start-up (see its log)");
                std::process::exit(1);
            }
            None => {
                eprint!("vmm: {}", msg.strip_prefix("error: ").unwrap_or(&msg));
                std::process::exit(1);
            }
        }
    }
    drop(reader);
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } < 0 {
        return Err(DaemonError::Detach(std::io::Error::last_os_error()));
    }
    redirect_stdio(log)?;
    Ok(ReadyPipe(writer))
}

/// Point stdin/stdout at /dev/null and stderr at `log` (or /dev/null).
pub fn redirect_stdio(log: Option<&Path>) -> Result<(), DaemonError> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|source| DaemonError::File {
            what: "cannot open",
            path: "/dev/null".into(),
            source,
        })?;
    let err_file = match log {
        Some(p) => private_file(p, true).map_err(|source| DaemonError::File {
            what: "cannot open log",
            path: p.to_path_buf(),
            source,
        })?,
        None => null.try_clone().map_err(DaemonError::Detach)?,
    };
    // SAFETY: dup2 onto the standard descriptors with valid open fds; the
    // originals stay open until the Files drop, after the dup.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(err_file.as_raw_fd(), 2);
    }
    Ok(())
}

/// Send stderr to `log` (append).
pub fn log_to(log: &Path) -> Result<(), DaemonError> {
    use std::os::fd::AsRawFd;
    let f = private_file(log, true).map_err(|source| DaemonError::File {
        what: "cannot open log",
        path: log.to_path_buf(),
        source,
    })?;
    // SAFETY: dup2 of a valid open fd onto stderr.
    unsafe { libc::dup2(f.as_raw_fd(), 2) };
    Ok(())
}

/// Block SIGTERM, SIGINT and SIGHUP in this thread (and so in every thread it
/// starts afterwards) and ignore SIGPIPE; then `wait_for_termination` can
/// collect them synchronously on one thread.
pub fn block_termination_signals() {
    // SAFETY: plain libc signal-mask manipulation on a local sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Wait for SIGTERM/SIGINT/SIGHUP (blocked by `block_termination_signals`).
pub fn wait_for_termination() -> i32 {
    // SAFETY: sigwait on a local, initialised set of blocked signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        sig
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn records_and_logs_are_private_and_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();

        let record = Record {
            pid: 1,
            name: "a".into(),
            domid: 1,
            socket: dir.path().join("1.sock"),
            start_time: 0.0,
            memory_mib: 16,
            maxmem_mib: 16,
            vcpus: 1,
            kernel: "minios".into(),
            cmdline: String::new(),
            boot_id: String::new(),
        };
        let path = dir.path().join("1.json");
        // A symlink planted at the temp name is removed, not written through.
        std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).unwrap();
        write_record(&path, &record).unwrap();
        assert_eq!(mode(&path), 0o600);
        let log = dir.path().join("1.log");
        std::fs::write(&log, "old\n").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&log, true).unwrap();
        assert_eq!(mode(&log), 0o600, "an existing log is made private");
        let link = dir.path().join("2.log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(private_file(&link, true).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(mode(&victim), 0o644);
    }
}
