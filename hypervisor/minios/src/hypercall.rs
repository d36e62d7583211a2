//! Hypercalls: `outl` to `HYPERCALL_PORT_BASE + nr`, each one VM exit.
//!
//! Argument structs live on the caller's stack or in the kernel image, both
//! below 4 GiB and identity mapped, so their address is their 32-bit GPA.

use core::arch::asm;

use guest_abi::{
    BlockArgs, Events, Hypercall, KickArgs, MemReleaseArgs, MemReportArgs, ShutdownReason,
};

/// `BlockArgs::timeout_ns` meaning "no deadline".
pub const NO_TIMEOUT: u64 = u64::MAX;

fn call(nr: Hypercall, value: u32) {
    // SAFETY: `out` to a hypercall port only exits to the VMM; it touches no
    // guest memory except the argument struct the caller keeps alive across
    // this call (the asm is not `nomem`, so the struct is written before it).
    unsafe {
        asm!("out dx, eax", in("dx") nr.port(), in("eax") value, options(nostack, preserves_flags));
    }
}

fn call_with<T>(nr: Hypercall, args: &T) {
    let gpa = core::ptr::from_ref(args).expose_provenance();
    debug_assert!(gpa <= u32::MAX as usize);
    call(nr, gpa as u32);
}

/// Ask the VMM to drain the console output ring now.
pub fn console_notify() {
    call(Hypercall::ConsoleNotify, 0);
}

/// Sleep in the VMM until one of `events` is pending, another vCPU kicks us,
/// or `timeout_ns` passes ([`NO_TIMEOUT`]: no deadline).
pub fn block(timeout_ns: u64, events: Events) {
    let args = BlockArgs {
        timeout_ns,
        event_mask: events.bits(),
        _pad: 0,
    };
    call_with(Hypercall::Block, &args);
}

/// Give the host CPU to someone else once.
pub fn yield_now() {
    call(Hypercall::Yield, 0);
}

/// End the domain. The VMM does not run this vCPU again; should it do so
/// anyway, we sleep for good.
pub fn shutdown(reason: ShutdownReason) -> ! {
    call(Hypercall::Shutdown, reason as u32);
    loop {
        block(NO_TIMEOUT, Events::empty());
    }
}

/// Hand `len` bytes at `gpa` (page aligned) back to the host.
pub fn mem_release(gpa: u64, len: u64) {
    call_with(Hypercall::MemRelease, &MemReleaseArgs { gpa, len });
}

/// Wake the vCPUs whose bits are set in `vcpu_mask`.
pub fn kick(vcpu_mask: u64) {
    call_with(Hypercall::Kick, &KickArgs { vcpu_mask });
}

/// Tell the host how much RAM the kernel considers in use.
pub fn mem_report(used_kib: u64) {
    call_with(Hypercall::MemReport, &MemReportArgs { used_kib });
}

/// Requests are waiting on device slot `slot`'s ring (one exit; the host
/// handles all of them before it returns).
pub fn device_notify(slot: u32) {
    call(Hypercall::DeviceNotify, slot);
}
