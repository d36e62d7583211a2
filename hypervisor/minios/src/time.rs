//! Time from the TSC (`rdtsc` does not exit) and `StartInfo::tsc_khz`.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// TSC ticks per millisecond; never zero.
static TSC_KHZ: AtomicU64 = AtomicU64::new(1_000_000);

/// Remember the boot time and the TSC rate (a VMM that could not tell the
/// rate gives 0: assume 1 GHz rather than divide by zero).
pub fn init(tsc_khz: u64) {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
    if tsc_khz != 0 {
        TSC_KHZ.store(tsc_khz, Ordering::Relaxed);
    }
}

/// The guest clock in TSC ticks: the hardware counter less the host's
/// correction for time spent saved or migrating (`StartInfo::tsc_adjust`).
pub fn rdtsc() -> u64 {
    raw_rdtsc().wrapping_sub(crate::start::get().tsc_adjust.load(Ordering::Acquire))
}

/// The hardware time stamp counter.
fn raw_rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the time stamp counter into edx:eax.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// TSC ticks per millisecond.
pub fn ticks_per_ms() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

/// The TSC value `ms` milliseconds from now.
pub fn deadline_ms(ms: u64) -> u64 {
    rdtsc().saturating_add(ms.saturating_mul(ticks_per_ms()))
}

/// Nanoseconds until the TSC reaches `deadline` (0 once it has).
pub fn ns_until(deadline: u64) -> u64 {
    let ticks = deadline.saturating_sub(rdtsc());
    // ticks * 1e6 / khz without overflow for any realistic span.
    let khz = ticks_per_ms();
    (ticks / khz).saturating_mul(1_000_000) + (ticks % khz) * 1_000_000 / khz
}

/// Milliseconds since `init`.
pub fn uptime_ms() -> u64 {
    rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed)) / ticks_per_ms()
}
