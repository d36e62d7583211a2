//! Guest RAM as minios sees it: the kernel below `kernel_end`, a pool of
//! pages touched by `mem` above it, and the rest free.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{hypercall, start};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// Bytes of the touched pool (it starts at [`pool_base`]).
static POOL: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    /// End of the image, from the linker script.
    static __kernel_end: u8;
}

/// First byte above the kernel: everything below is in use for good.
fn pool_base() -> u64 {
    // Only the address of the linker symbol is taken (no read).
    let image_end = core::ptr::addr_of!(__kernel_end) as u64;
    image_end
        .max(start::get().kernel_end)
        .next_multiple_of(PAGE)
}

/// RAM the host has mapped for us, bytes: the most a target can give.
fn mapped() -> u64 {
    let info = start::get();
    info.max_mem_bytes
        .load(Ordering::Acquire)
        .max(info.mem_bytes)
}

/// The host's balloon target in bytes (never above mapped RAM), if set.
fn host_target() -> Option<u64> {
    match start::get().mem_target_kib.load(Ordering::Acquire) {
        0 => None,
        kib => Some(kib.saturating_mul(1024).min(mapped())),
    }
}

/// Total guest RAM, bytes: what we booted with, or more once the host
/// raised the target above it (the balloon grows up to maxmem).
pub fn total() -> u64 {
    start::get().mem_bytes.max(host_target().unwrap_or(0))
}

/// The RAM we may use, bytes: the host's target, or all we booted with.
fn target() -> u64 {
    host_target().unwrap_or(start::get().mem_bytes)
}

/// RAM in use: the kernel and the touched pool.
pub fn used() -> u64 {
    pool_base() + POOL.load(Ordering::Relaxed)
}

/// The balloon target, if the host set one below total RAM.
pub fn target_below_total() -> Option<u64> {
    let t = target();
    (t < total()).then_some(t)
}

/// Tell the host how much we use (one exit).
pub fn report() {
    hypercall::mem_report(used() / 1024);
}

/// Why `mem` could not do what was asked.
pub enum TouchError {
    /// Only this many MiB fit between the kernel and the limit.
    TooBig { available_mib: u64 },
}

/// Make the pool `mib` MiB: write one word per 4 KiB page of it, give pages
/// beyond it back to the host, and report the new use.
pub fn set_pool(mib: u64) -> Result<(), TouchError> {
    let base = pool_base();
    let limit = target().max(base);
    let available_mib = (limit - base) / MIB;
    if mib > available_mib {
        return Err(TouchError::TooBig { available_mib });
    }
    let bytes = mib * MIB;
    let mut page = base;
    while page < base + bytes {
        // SAFETY: `page` is inside guest RAM (below the target, which is at
        // most the RAM the host has mapped) and above the kernel image, in memory nothing else uses;
        // RAM is identity mapped. Volatile so every page is really written.
        unsafe { (page as *mut u64).write_volatile(page / PAGE) };
        page += PAGE;
    }
    shrink_to(bytes);
    POOL.store(bytes, Ordering::Relaxed);
    report();
    Ok(())
}

/// Release pool pages beyond `bytes`.
fn shrink_to(bytes: u64) {
    let old = POOL.load(Ordering::Relaxed);
    if old > bytes {
        hypercall::mem_release(pool_base() + bytes, old - bytes);
        POOL.store(bytes, Ordering::Relaxed);
    }
}

/// The host changed the balloon target: give back what lies above it.
pub fn apply_target() {
    let room = target().saturating_sub(pool_base()) / PAGE * PAGE;
    if POOL.load(Ordering::Relaxed) > room {
        shrink_to(room);
        report();
    }
}
