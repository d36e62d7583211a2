//! The VMM jails itself once its domain is built (Firecracker's jailer, done
//! from inside): new mount, pid, ipc and uts namespaces, an empty read-only
//! root (a tmpfs holding only `/proc`, mounted over the per-domain jail
//! directory and entered with `pivot_root`), no capabilities (bounding set
//! emptied before any thread starts; permitted and effective cleared by the
//! uid change), an unprivileged uid and gid, `no_new_privs`, and a seccomp
//! filter per thread kind ([`seccomp`]).
//!
//! Order (see `docs/jail.md`):
//! 1. [`prepare`], single-threaded, before `--detach` forks: unshare the
//!    namespaces (the fork makes the VMM pid 1 of its own pid namespace),
//!    empty the capability bounding set, and close the thread gate.
//! 2. The domain is built as root on the host's view: `/dev/kvm`, guest RAM,
//!    disk files, TAPs, the control socket, the log. Threads started now
//!    ([`thread_start`]) wait at the gate before running anything.
//! 3. [`enter`], on the main thread: root swap, uid/gid drop (glibc applies
//!    `setresuid` to every thread), SIGSYS handler, the main thread's
//!    (control) filter; then the gate opens and every waiting thread installs
//!    the filter of its kind before it runs guest code.
//!
//! A VMM built without [`prepare`] (tests, `vmm` by hand) never closes the
//! gate and runs unjailed.
pub mod caps;
pub mod seccomp;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

pub use seccomp::ThreadKind;

use crate::log::log;

/// Who the jailed VMM becomes and where its root is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailConfig {
    /// The per-domain directory the jail's root is mounted on (created if
    /// missing; it stays empty on the host).
    pub dir: PathBuf,
    /// The uid to run as (not 0).
    pub uid: u32,
    /// The gid to run as (not 0).
    pub gid: u32,
}

/// Errors entering the jail.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// uid or gid 0 would keep the VMM privileged.
    #[error("the jail's uid and gid must not be 0")]
    Root,
    /// A system call of the jail set-up failed.
    #[error("jail: {what} failed")]
    Sys {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A seccomp filter could not be installed.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JailError {
    let what = what.into();
    move |source| JailError::Sys { what, source }
}

fn check(rc: libc::c_int, what: impl Into<String>) -> Result<(), JailError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(sys(what)(std::io::Error::last_os_error()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GateState {
    /// No jail was prepared: threads run at once, unfiltered.
    Open,
    /// A jail is being set up: threads wait.
    Closed,
    /// The jail is in place: threads install their filters and run.
    Jailed,
    /// Setting up the jail failed: the VMM is ending; threads park.
    Failed,
}

static GATE: Mutex<GateState> = Mutex::new(GateState::Open);
/// How long [`prepare`] took, µs (reported with the jail's entry).
static PREPARE_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The jail's uid and gid, for the threads that drop to them at the gate.
static IDS: OnceLock<(u32, u32)> = OnceLock::new();
static GATE_CV: Condvar = Condvar::new();
static HOST_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static PID_NS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set once the host pid is read for good (just before the root swap).
static PID_FROZEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn set_gate(s: GateState) {
    *GATE.lock().unwrap_or_else(|e| e.into_inner()) = s;
    GATE_CV.notify_all();
}

/// True once this process is jailed.
pub fn is_jailed() -> bool {
    *GATE.lock().unwrap_or_else(|e| e.into_inner()) == GateState::Jailed
}

/// True while a prepared jail has not been entered yet.
pub fn is_pending() -> bool {
    *GATE.lock().unwrap_or_else(|e| e.into_inner()) == GateState::Closed
}

/// Called first by every thread the VMM starts: wait for the jail if one is
/// being set up, then install `kind`'s filter. Returns false if the jail
/// failed (the thread should end; the process is exiting).
pub fn thread_start(kind: ThreadKind) -> bool {
    let mut g = GATE.lock().unwrap_or_else(|e| e.into_inner());
    while *g == GateState::Closed {
        g = GATE_CV.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    let state = *g;
    drop(g);
    match state {
        GateState::Open => true,
        GateState::Failed | GateState::Closed => false,
        GateState::Jailed => match confine_thread(kind) {
            Ok(()) => true,
            Err(e) => {
                log(&format!("{}; ending the VMM", errchain::error_chain(&e)));
                std::process::exit(1);
            }
        },
    }
}

/// Start a thread named `name` that passes the gate as `kind`
/// ([`thread_start`]) and then runs `body`; if the jail failed, the thread
/// ends without running it.
pub fn spawn(
    name: String,
    kind: ThreadKind,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        if thread_start(kind) {
            body();
        }
    })
}

/// The calling thread's jail state as it is now, for log lines: its
/// effective uid (asked of the kernel) and the seccomp filter it installed.
pub fn thread_state() -> String {
    // SAFETY: geteuid has no arguments and cannot fail.
    let euid = unsafe { libc::syscall(libc::SYS_geteuid) };
    match seccomp::installed() {
        Some(kind) => format!("euid {euid}, seccomp filter {}", kind.as_str()),
        None => format!("euid {euid}, no seccomp filter"),
    }
}

/// The calling thread's part of the jail: its own uid/gid drop if it was
/// started before the jail (it is still root), then its filter.
fn confine_thread(kind: ThreadKind) -> Result<(), JailError> {
    if caps::thread_is_root() {
        let &(uid, gid) = IDS.get().ok_or(JailError::Root)?;
        caps::become_user(uid, gid)?;
    }
    seccomp::install(kind)?;
    Ok(())
}

/// This process's pid as the host sees it (a jailed VMM is pid 1 of its own
/// pid namespace; the record, the log and xend need the host's number).
/// Read from the host's `/proc/self` until the root swap, then remembered;
/// without a pid namespace it is plainly `getpid()`.
pub fn host_pid() -> u32 {
    if !PID_NS.load(std::sync::atomic::Ordering::Relaxed) {
        return std::process::id();
    }
    if PID_FROZEN.load(std::sync::atomic::Ordering::Relaxed) {
        return HOST_PID.load(std::sync::atomic::Ordering::Relaxed);
    }
    let pid = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(std::process::id);
    HOST_PID.store(pid, std::sync::atomic::Ordering::Relaxed);
    pid
}

/// Step 1 (single-threaded, before `--detach` forks): new mount, ipc, uts
/// and pid namespaces (the pid namespace applies to the forked child), an
/// empty capability bounding set, and the thread gate closed.
///
/// `pid_ns` only when a fork follows (`--detach`): after `unshare` of the
/// pid namespace this process itself can no longer start threads.
pub fn prepare(cfg: &JailConfig, pid_ns: bool) -> Result<(), JailError> {
    if cfg.uid == 0 || cfg.gid == 0 {
        return Err(JailError::Root);
    }
    let started = std::time::Instant::now();
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if pid_ns {
        flags |= libc::CLONE_NEWPID;
        PID_NS.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: unshare with namespace flags only; the process is still
    // single-threaded, as CLONE_NEWPID requires for the threads to come.
    check(unsafe { libc::unshare(flags) }, "unshare")?;
    // Mounts made from here on stay in this namespace.
    // SAFETY: null source/type/data are allowed for a propagation change;
    // the target is a valid C string.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    check(rc, "making mounts private")?;
    let host = c"vmm";
    // SAFETY: the pointer and length describe a valid buffer.
    let rc = unsafe { libc::sethostname(host.as_ptr(), host.to_bytes().len()) };
    check(rc, "sethostname")?;
    caps::drop_bounding_set()?;
    // Asked now: std reads cgroup files for it, which the jail cannot.
    crate::stats::online_cpus();
    // Every filter is compiled once, here, before any thread exists; the
    // threads only load theirs.
    seccomp::compile_all()?;
    let _ = IDS.set((cfg.uid, cfg.gid));
    PREPARE_US.store(
        started.elapsed().as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    set_gate(GateState::Closed);
    Ok(())
}

/// Step 3 (main thread, after the domain is built): swap the root, drop to
/// `cfg`'s uid/gid, install the SIGSYS handler and the control filter on the
/// calling thread, and let the waiting threads run. On failure the gate
/// stays shut (threads park) and the caller must end the process.
pub fn enter(cfg: &JailConfig) -> Result<(), JailError> {
    let started = std::time::Instant::now();
    let r = enter_inner(cfg);
    match &r {
        Ok(()) => {
            log(&format!(
                "jailed: root {}, uid {} gid {}, no capabilities, seccomp on ({:.2} ms; set-up before the build {:.2} ms)",
                cfg.dir.display(),
                cfg.uid,
                cfg.gid,
                started.elapsed().as_secs_f64() * 1000.0,
                PREPARE_US.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
            ));
            set_gate(GateState::Jailed);
        }
        Err(_) => set_gate(GateState::Failed),
    }
    r
}

fn enter_inner(cfg: &JailConfig) -> Result<(), JailError> {
    host_pid();
    PID_FROZEN.store(true, std::sync::atomic::Ordering::Relaxed);
    make_root(&cfg.dir)?;
    seccomp::install_sigsys_handler()?;
    confine_thread(ThreadKind::Control)
}

fn cstr(p: &Path) -> Result<CString, JailError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| JailError::Sys {
        what: format!("jail directory {}", p.display()),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

fn mount(
    src: &std::ffi::CStr,
    target: &std::ffi::CStr,
    fstype: &std::ffi::CStr,
    flags: libc::c_ulong,
    data: &std::ffi::CStr,
    what: &str,
) -> Result<(), JailError> {
    // SAFETY: all pointers are valid NUL-terminated strings.
    check(
        unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
        },
        what,
    )
}

/// Mount a small tmpfs on `dir`, give it an empty `proc` holding a procfs of
/// our pid namespace (only our own pid is visible), make it read-only, and
/// `pivot_root` into it. The host's tree is detached from this namespace.
fn make_root(dir: &Path) -> Result<(), JailError> {
    std::fs::create_dir_all(dir).map_err(sys(format!("creating {}", dir.display())))?;
    let d = cstr(dir)?;
    let nosuid = (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong;
    mount(
        c"jail",
        &d,
        c"tmpfs",
        nosuid,
        c"size=16k,nr_inodes=16,mode=0755",
        "mounting the jail's tmpfs",
    )?;
    let proc_dir = dir.join("proc");
    std::fs::create_dir(&proc_dir).map_err(sys("creating the jail's /proc"))?;
    let p = cstr(&proc_dir)?;
    mount(
        c"proc",
        &p,
        c"proc",
        nosuid,
        c"hidepid=invisible,subset=pid",
        "mounting /proc in the jail",
    )?;
    mount(
        c"",
        &d,
        c"",
        (libc::MS_REMOUNT | libc::MS_RDONLY) as libc::c_ulong | nosuid,
        c"",
        "making the jail's root read-only",
    )?;
    std::env::set_current_dir(dir).map_err(sys("entering the jail directory"))?;
    // pivot_root(".", ".") stacks the old root under the new one; detaching
    // it leaves only the jail (the trick runc and Firecracker use).
    // SAFETY: valid C strings; pivot_root has no memory preconditions.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    check(rc as libc::c_int, "pivot_root")?;
    // SAFETY: valid C string.
    let rc = unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) };
    check(rc, "detaching the host's root")?;
    std::env::set_current_dir("/").map_err(sys("chdir /"))?;
    Ok(())
}

static KVM_FD: OnceLock<std::os::fd::RawFd> = OnceLock::new();

/// Remember the VMM's `/dev/kvm` descriptor (the builder's [`Kvm`], kept
/// open for the process's life) so later KVM queries need no path.
///
/// [`Kvm`]: kvm_ioctls::Kvm
pub fn remember_kvm(kvm: &kvm_ioctls::Kvm) {
    use std::os::fd::AsRawFd;
    let _ = KVM_FD.set(kvm.as_raw_fd());
}

/// A `/dev/kvm` handle: a duplicate of the remembered one (the jail has no
/// `/dev`), else a fresh open.
pub fn open_kvm() -> Result<kvm_ioctls::Kvm, kvm_ioctls::Error> {
    use std::os::fd::FromRawFd;
    let Some(&fd) = KVM_FD.get() else {
        return kvm_ioctls::Kvm::new();
    };
    // SAFETY: `fd` is the builder's /dev/kvm descriptor, open for the life
    // of the process (the Vmm holds it); fcntl duplicates it.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(kvm_ioctls::Error::last());
    }
    // SAFETY: `dup` is a fresh descriptor we own, referring to /dev/kvm.
    Ok(unsafe { kvm_ioctls::Kvm::from_raw_fd(dup) })
}

/// The test-only switch: with the environment variable
/// `VMM_TEST_SECCOMP_VIOLATION` set to this domain's name (only whoever
/// starts xend or the VMM can set it; neither a guest nor an API client
/// can), a jailed vCPU thread answers the guest's shutdown hypercall (e.g.
/// `poweroff` typed on its console) with a call its filter forbids
/// (`socket`), so a test can watch a violation end a running domain.
/// Returns false (after the process died) only in theory.
pub fn test_violation(domain: &str) -> bool {
    if is_jailed() && std::env::var_os(TEST_VIOLATION_ENV).is_some_and(|v| v == domain) {
        // SAFETY: socket(2) with integer arguments; forbidden on vCPU threads,
        // so it traps and the process dies of SIGSYS.
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        return true;
    }
    false
}

/// The variable [`test_violation`] reads.
pub const TEST_VIOLATION_ENV: &str = "VMM_TEST_SECCOMP_VIOLATION";
