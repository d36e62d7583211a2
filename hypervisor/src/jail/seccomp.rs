//! Seccomp-bpf filters, one per kind of VMM thread (with `seccompiler`).
//!
//! Each thread installs the filter of its kind itself, once the jail is in
//! place ([`super::thread_start`]); threads started later by a filtered thread
//! inherit its filter and may stack a narrower one (the kernel applies the
//! strictest answer of every filter). So the control filter is a superset of
//! the device-I/O filter (control threads start network RX threads on hot
//! attach) and of the signal filter. A call outside the list traps: the SIGSYS
//! handler writes `seccomp violation: SYSCALL on THREAD` to the VMM log (fd 2)
//! and the process then dies of SIGSYS. `docs/jail.md` lists every call with
//! the reason it is allowed.
use std::cell::Cell;
use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Errors building or installing a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler refused the rules (a bug in this module).
    #[error("cannot build the {0} seccomp filter")]
    Build(&'static str, #[source] seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error("cannot install the {0} seccomp filter")]
    Install(&'static str, #[source] seccompiler::Error),
    /// `PR_SET_NO_NEW_PRIVS` failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] std::io::Error),
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler")]
    Handler(#[source] std::io::Error),
}

/// The kinds of VMM thread, each with its own filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A vCPU: `KVM_RUN`, hypercalls, block and network TX served inline.
    Vcpu,
    /// Console writer and poller, network RX, the stdio console reader.
    DeviceIo,
    /// The main thread (control socket accept loop) and every control
    /// connection, including save, migration and hot attach, which run on a
    /// control connection's thread.
    Control,
    /// The thread waiting for SIGTERM/SIGINT/SIGHUP.
    Signal,
    /// The thread that reads a restore image or an incoming migration stream
    /// after the header (RAM, vCPU and device state) and sets the vCPUs'
    /// state: it ends before the vCPUs start.
    Restore,
}

impl ThreadKind {
    /// The name used in messages and `docs/jail.md`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::DeviceIo => "device-io",
            ThreadKind::Control => "control",
            ThreadKind::Signal => "signal",
            ThreadKind::Restore => "restore",
        }
    }
}

/// Calls every thread makes: memory allocation, locks, signals (the vCPU
/// kick), time, thread exit, writing the log.
pub const COMMON: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_futex,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_tgkill,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_geteuid,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_restart_syscall,
    libc::SYS_getrandom,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// vCPU threads add: block I/O served on notify (positioned reads and writes,
/// flush), network TX (write to the TAP), releasing guest memory, and KVM
/// ioctls (type 0xAE only: `KVM_RUN`, state capture for save and migration).
pub const VCPU: &[i64] = &[
    libc::SYS_sched_setaffinity,
    libc::SYS_fcntl,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ioctl,
];

/// Device I/O threads add: waiting on the TAP and the stop eventfd (`poll`),
/// and reading the TAP into guest buffers.
pub const DEVICE_IO: &[i64] = &[
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
];

/// The signal thread adds: `sigwait`.
pub const SIGNAL: &[i64] = &[libc::SYS_rt_sigtimedwait];

/// The restore thread adds: reading the image again from its start
/// (`lseek`; the image is checked whole, then loaded), reading the
/// migration socket (`recvfrom`), setting vCPU state (`ioctl`, KVM's type
/// only), and std's `fcntl(F_GETFD)` check when it closes the image.
pub const RESTORE: &[i64] = &[
    libc::SYS_lseek,
    libc::SYS_recvfrom,
    libc::SYS_ioctl,
    libc::SYS_fcntl,
];

/// Control threads add: accepting and serving control connections, starting
/// threads, reading `/proc/self` (RSS, a vCPU's last CPU; read-only opens),
/// pinning vCPUs, the save image (written to a file), migration sockets, KVM
/// ioctls (dirty logging, MSR list), hot attach (flock, eventfd, TAP ioctls).
pub const CONTROL: &[i64] = &[
    libc::SYS_accept4,
    libc::SYS_accept,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_newfstatat,
    libc::SYS_lseek,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_flock,
    libc::SYS_eventfd2,
    libc::SYS_ioctl,
    libc::SYS_mincore,
    libc::SYS_sched_setaffinity,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prctl,
    libc::SYS_rt_sigtimedwait,
];

/// The syscalls of `kind` beyond [`COMMON`].
pub fn extra(kind: ThreadKind) -> &'static [i64] {
    match kind {
        ThreadKind::Vcpu => VCPU,
        ThreadKind::DeviceIo => DEVICE_IO,
        ThreadKind::Control => CONTROL,
        ThreadKind::Signal => SIGNAL,
        ThreadKind::Restore => RESTORE,
    }
}

/// `openat` is allowed to control threads for reading only (the jail's
/// `/proc` is all there is to open).
fn openat_read_only() -> Result<SeccompRule, seccompiler::BackendError> {
    let flags = SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(libc::O_ACCMODE as u64 | libc::O_CREAT as u64),
        libc::O_RDONLY as u64,
    )?;
    SeccompRule::new(vec![flags])
}

/// Control threads may stack a filter on a thread they start (network RX on
/// hot attach, the signal thread): `SECCOMP_SET_MODE_FILTER` without flags
/// (no TSYNC, no user-notification listener). A filter can only forbid more.
fn stack_filter() -> Result<SeccompRule, seccompiler::BackendError> {
    let op = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        u64::from(libc::SECCOMP_SET_MODE_FILTER),
    )?;
    let flags = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, 0)?;
    SeccompRule::new(vec![op, flags])
}

/// `fcntl(fd, F_GETFD)` only: what std's `OwnedFd` drop asks in debug
/// builds to catch a double close, so any thread that closes a descriptor
/// (a console client's stream, an eventfd) makes it.
fn fcntl_getfd_only() -> Result<SeccompRule, seccompiler::BackendError> {
    let cmd = SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::F_GETFD as u64,
    )?;
    SeccompRule::new(vec![cmd])
}

/// `ioctl(vm, KVM_IRQ_LINE, ...)` only: `_IOW(KVMIO, 0x61, struct
/// kvm_irq_level)`, the one KVM call a device thread makes.
fn irq_line_only() -> Result<SeccompRule, seccompiler::BackendError> {
    const KVM_IRQ_LINE: u64 = (1 << 30)
        | ((std::mem::size_of::<kvm_bindings::kvm_irq_level>() as u64) << 16)
        | ((kvm_bindings::KVMIO as u64) << 8)
        | 0x61;
    let cmd = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, KVM_IRQ_LINE)?;
    SeccompRule::new(vec![cmd])
}

/// vCPU threads may only issue KVM ioctls (type 0xAE).
fn kvm_ioctl_only() -> Result<SeccompRule, seccompiler::BackendError> {
    let kvm = SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(0xff00),
        u64::from(kvm_bindings::KVMIO) << 8,
    )?;
    SeccompRule::new(vec![kvm])
}

/// Build the BPF program of `kind`.
pub fn program(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let build = |e| SeccompError::Build(kind.as_str(), e);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in COMMON.iter().chain(extra(kind)) {
        rules.insert(nr, Vec::new());
    }
    match kind {
        ThreadKind::Vcpu => {
            rules.insert(libc::SYS_ioctl, vec![kvm_ioctl_only().map_err(build)?]);
        }
        ThreadKind::Control => {
            // Device I/O threads are started by control threads.
            for &nr in DEVICE_IO {
                rules.insert(nr, Vec::new());
            }
            rules.insert(libc::SYS_openat, vec![openat_read_only().map_err(build)?]);
            rules.insert(libc::SYS_seccomp, vec![stack_filter().map_err(build)?]);
        }
        ThreadKind::DeviceIo => {
            rules.insert(libc::SYS_fcntl, vec![fcntl_getfd_only().map_err(build)?]);
            // A Linux guest's virtio-net RX thread raises the device's
            // interrupt line itself when it delivers a frame.
            rules.insert(libc::SYS_ioctl, vec![irq_line_only().map_err(build)?]);
        }
        ThreadKind::Signal => {
            rules.insert(libc::SYS_fcntl, vec![fcntl_getfd_only().map_err(build)?]);
        }
        ThreadKind::Restore => {
            rules.insert(libc::SYS_ioctl, vec![kvm_ioctl_only().map_err(build)?]);
            rules.insert(libc::SYS_fcntl, vec![fcntl_getfd_only().map_err(build)?]);
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(build)?;
    filter.try_into().map_err(build)
}

/// Every kind's program, compiled once ([`compile_all`]).
static PROGRAMS: std::sync::OnceLock<[BpfProgram; 5]> = std::sync::OnceLock::new();

const KINDS: [ThreadKind; 5] = [
    ThreadKind::Vcpu,
    ThreadKind::DeviceIo,
    ThreadKind::Control,
    ThreadKind::Signal,
    ThreadKind::Restore,
];

/// Compile every kind's filter (once; later calls return at once).
pub fn compile_all() -> Result<(), SeccompError> {
    if PROGRAMS.get().is_some() {
        return Ok(());
    }
    let [a, b, c, d, e] = KINDS.map(program);
    let _ = PROGRAMS.set([a?, b?, c?, d?, e?]);
    Ok(())
}

fn compiled(kind: ThreadKind) -> Result<&'static BpfProgram, SeccompError> {
    compile_all()?;
    let programs = PROGRAMS.get().expect("compiled above");
    Ok(&programs[KINDS.iter().position(|k| *k == kind).expect("every kind")])
}

thread_local! {
    /// This thread's name, for the SIGSYS report (a plain TLS read there).
    static NAME: Cell<[u8; 16]> = const { Cell::new([0; 16]) };
    /// The filter this thread installed last (None: none yet).
    static INSTALLED: Cell<Option<ThreadKind>> = const { Cell::new(None) };
}

/// The filter the calling thread installed (None: it runs unfiltered).
pub fn installed() -> Option<ThreadKind> {
    INSTALLED.with(Cell::get)
}

/// Set `no_new_privs` and install `kind`'s filter on the calling thread.
pub fn install(kind: ThreadKind) -> Result<(), SeccompError> {
    let prog = compiled(kind)?;
    let mut name = [0u8; 16];
    let n = std::thread::current()
        .name()
        .map_or(kind.as_str(), |n| n)
        .as_bytes()
        .iter()
        .take(15)
        .enumerate()
        .map(|(i, b)| name[i] = *b)
        .count();
    debug_assert!(n < 16);
    NAME.with(|c| c.set(name));
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SeccompError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    seccompiler::apply_filter(prog).map_err(|e| SeccompError::Install(kind.as_str(), e))?;
    INSTALLED.with(|c| c.set(Some(kind)));
    Ok(())
}

/// Install the SIGSYS handler that reports a violation (process-wide; call
/// before any filter is installed).
pub fn install_sigsys_handler() -> Result<(), SeccompError> {
    // SAFETY: sigaction is plain data; zeroed is no flags and an empty mask.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_sigsys as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `act` is valid and the handler only does async-signal-safe work.
    if unsafe { libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut()) } != 0 {
        return Err(SeccompError::Handler(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The SIGSYS part of `siginfo_t` on x86-64 (`_sigsys` in the kernel's union,
/// after the three ints and the padding).
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: *mut libc::c_void,
    syscall: i32,
    arch: u32,
}

/// `si_code` of a seccomp trap.
const SYS_SECCOMP: i32 = 1;

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler;
    // SigsysInfo mirrors its layout for SIGSYS on x86-64.
    let info = unsafe { &*(info as *const SigsysInfo) };
    if info.code != SYS_SECCOMP {
        return;
    }
    let mut buf = [0u8; 160];
    let mut len = 0;
    let mut put = |s: &[u8]| {
        for &b in s {
            if len < buf.len() {
                buf[len] = b;
                len += 1;
            }
        }
    };
    put(b"vmm: seccomp violation: ");
    match syscall_name(i64::from(info.syscall)) {
        Some(n) => put(n.as_bytes()),
        None => {
            put(b"syscall ");
            let mut digits = [0u8; 12];
            let mut v = info.syscall.unsigned_abs();
            let mut i = digits.len();
            loop {
                i -= 1;
                digits[i] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            put(&digits[i..]);
        }
    }
    put(b" on ");
    let name = NAME.with(Cell::get);
    let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    put(if n == 0 {
        b"unknown thread"
    } else {
        &name[..n]
    });
    put(b"\n");
    // SAFETY: write(2) of a stack buffer is async-signal-safe and allowed by
    // every filter.
    unsafe { libc::write(2, buf.as_ptr().cast(), len) };
    // SIGSYS is blocked while this handler runs, so the kernel answers a
    // second forbidden call by resetting SIGSYS to its default action and
    // killing the process with it. `reboot` is in no filter.
    // SAFETY: a forbidden system call; it never returns.
    unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0) };
    // SAFETY: not reached with a filter in place; without one, end anyway.
    unsafe { libc::_exit(128 + libc::SIGSYS) };
}

/// Names of the calls a compromised thread is most likely to try, and every
/// allowed one, for the violation report.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    Some(match nr {
        libc::SYS_read => "read",
        libc::SYS_write => "write",
        libc::SYS_open => "open",
        libc::SYS_openat => "openat",
        libc::SYS_close => "close",
        libc::SYS_stat => "stat",
        libc::SYS_fstat => "fstat",
        libc::SYS_newfstatat => "newfstatat",
        libc::SYS_statx => "statx",
        libc::SYS_poll => "poll",
        libc::SYS_ppoll => "ppoll",
        libc::SYS_lseek => "lseek",
        libc::SYS_mmap => "mmap",
        libc::SYS_mprotect => "mprotect",
        libc::SYS_munmap => "munmap",
        libc::SYS_brk => "brk",
        libc::SYS_rt_sigaction => "rt_sigaction",
        libc::SYS_rt_sigprocmask => "rt_sigprocmask",
        libc::SYS_ioctl => "ioctl",
        libc::SYS_pread64 => "pread64",
        libc::SYS_pwrite64 => "pwrite64",
        libc::SYS_access => "access",
        libc::SYS_pipe => "pipe",
        libc::SYS_pipe2 => "pipe2",
        libc::SYS_mincore => "mincore",
        libc::SYS_madvise => "madvise",
        libc::SYS_dup => "dup",
        libc::SYS_dup2 => "dup2",
        libc::SYS_dup3 => "dup3",
        libc::SYS_getpid => "getpid",
        libc::SYS_socket => "socket",
        libc::SYS_connect => "connect",
        libc::SYS_accept => "accept",
        libc::SYS_accept4 => "accept4",
        libc::SYS_sendto => "sendto",
        libc::SYS_recvfrom => "recvfrom",
        libc::SYS_sendmsg => "sendmsg",
        libc::SYS_recvmsg => "recvmsg",
        libc::SYS_bind => "bind",
        libc::SYS_listen => "listen",
        libc::SYS_clone => "clone",
        libc::SYS_clone3 => "clone3",
        libc::SYS_fork => "fork",
        libc::SYS_vfork => "vfork",
        libc::SYS_execve => "execve",
        libc::SYS_execveat => "execveat",
        libc::SYS_exit => "exit",
        libc::SYS_kill => "kill",
        libc::SYS_tgkill => "tgkill",
        libc::SYS_fcntl => "fcntl",
        libc::SYS_flock => "flock",
        libc::SYS_fsync => "fsync",
        libc::SYS_fdatasync => "fdatasync",
        libc::SYS_truncate => "truncate",
        libc::SYS_ftruncate => "ftruncate",
        libc::SYS_getcwd => "getcwd",
        libc::SYS_chdir => "chdir",
        libc::SYS_rename => "rename",
        libc::SYS_renameat => "renameat",
        libc::SYS_renameat2 => "renameat2",
        libc::SYS_mkdir => "mkdir",
        libc::SYS_mkdirat => "mkdirat",
        libc::SYS_unlink => "unlink",
        libc::SYS_unlinkat => "unlinkat",
        libc::SYS_chmod => "chmod",
        libc::SYS_chown => "chown",
        libc::SYS_setuid => "setuid",
        libc::SYS_setgid => "setgid",
        libc::SYS_setresuid => "setresuid",
        libc::SYS_setresgid => "setresgid",
        libc::SYS_ptrace => "ptrace",
        libc::SYS_prctl => "prctl",
        libc::SYS_mount => "mount",
        libc::SYS_umount2 => "umount2",
        libc::SYS_chroot => "chroot",
        libc::SYS_pivot_root => "pivot_root",
        libc::SYS_unshare => "unshare",
        libc::SYS_setns => "setns",
        libc::SYS_seccomp => "seccomp",
        libc::SYS_bpf => "bpf",
        libc::SYS_mknod => "mknod",
        libc::SYS_mknodat => "mknodat",
        libc::SYS_getdents64 => "getdents64",
        libc::SYS_sched_setaffinity => "sched_setaffinity",
        libc::SYS_process_vm_readv => "process_vm_readv",
        libc::SYS_process_vm_writev => "process_vm_writev",
        libc::SYS_memfd_create => "memfd_create",
        libc::SYS_io_uring_setup => "io_uring_setup",
        libc::SYS_perf_event_open => "perf_event_open",
        libc::SYS_keyctl => "keyctl",
        libc::SYS_add_key => "add_key",
        libc::SYS_init_module => "init_module",
        libc::SYS_finit_module => "finit_module",
        libc::SYS_reboot => "reboot",
        libc::SYS_uname => "uname",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds() {
        for kind in KINDS {
            assert!(!program(kind).unwrap().is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn control_covers_the_threads_it_starts() {
        for nr in DEVICE_IO.iter().chain(SIGNAL).chain(RESTORE) {
            assert!(CONTROL.contains(nr), "control lacks {nr}");
        }
    }

    #[test]
    fn nothing_allowed_lets_a_thread_leave_the_jail() {
        for nr in [
            libc::SYS_execve,
            libc::SYS_fork,
            libc::SYS_mount,
            libc::SYS_ptrace,
            libc::SYS_setns,
            libc::SYS_unshare,
            libc::SYS_chroot,
            libc::SYS_bpf,
            libc::SYS_reboot,
            libc::SYS_seccomp,
        ] {
            for kind in [CONTROL, VCPU, DEVICE_IO, SIGNAL, RESTORE, COMMON] {
                assert!(!kind.contains(&nr), "{nr} allowed");
            }
        }
    }
}
