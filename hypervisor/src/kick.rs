//! Kicking a vCPU thread out of `KVM_RUN` (for pause and shutdown).
//!
//! The kicker sends a real-time signal to the vCPU thread. Its handler sets
//! `immediate_exit` in that thread's `kvm_run` structure, so even a signal that
//! lands just before the thread enters `KVM_RUN` makes that call return at
//! once with `EINTR` (the race-free scheme of `vmm-notes.md` and Firecracker).
use std::cell::Cell;
use std::sync::Once;

use kvm_bindings::kvm_run;

thread_local! {
    /// The `kvm_run` of the vCPU this thread runs (null on other threads).
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The signal used for kicks.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int) {
    // Const-initialised thread-locals are plain TLS reads: async-signal-safe.
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: `run` was registered by this very thread from its VcpuFd,
        // whose kvm_run mapping outlives the registration (cleared before the
        // fd is dropped). A volatile byte store is what KVM expects here.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// Install the kick handler once per process, before any vCPU thread starts
/// (the default action of a real-time signal would kill the process).
pub fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data; zeroed means no flags, empty mask.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_kick as *const () as usize;
        // SAFETY: `act` is a valid sigaction and the handler is async-signal-safe.
        let rc = unsafe { libc::sigaction(kick_signal(), &act, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "cannot install the vCPU kick signal handler");
    });
}

/// Register the calling thread's `kvm_run` (call from the vCPU thread).
///
/// # Safety
///
/// `run` must be the `kvm_run` mapping of the calling thread's vCPU and stay
/// mapped until [`unregister`] is called on this thread: the kick handler
/// writes through it whenever the signal arrives.
pub unsafe fn register(run: *mut kvm_run) {
    KVM_RUN.with(|c| c.set(run));
}

/// Forget the calling thread's `kvm_run` (before its VcpuFd is dropped).
pub fn unregister() {
    KVM_RUN.with(|c| c.set(std::ptr::null_mut()));
}

/// Kick thread `thread` out of `KVM_RUN`.
///
/// # Safety
///
/// `thread` must be a live thread of this process for the whole call (a
/// `pthread_t` of a thread that has exited may name another thread, or
/// nothing: `pthread_kill` on it is undefined behaviour). The domain gives
/// this guarantee by kicking only under its lock, under which a vCPU thread
/// clears its handle before it exits.
pub unsafe fn kick(thread: libc::pthread_t) {
    // SAFETY: `thread` is live (the caller's contract above).
    unsafe { libc::pthread_kill(thread, kick_signal()) };
}
