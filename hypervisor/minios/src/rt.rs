//! What a freestanding Rust binary needs from its runtime: the memory
//! functions the compiler calls, and a panic handler.
//!
//! The copies use `rep movsb` / `rep stosb`: one instruction for the emulating
//! KVM to run instead of a loop of them.

use core::arch::asm;
use core::panic::PanicInfo;

use guest_abi::ShutdownReason;

use crate::{console, hypercall};

/// # Safety
/// `dest` and `src` are valid for `n` bytes and do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges; DF is clear (SysV ABI).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `dest` and `src` are valid for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src` or past its end: a forward copy is safe.
        // SAFETY: as for `memcpy`; forward order never reads a byte it wrote.
        unsafe { memcpy(dest, src, n) }
    } else {
        // SAFETY: the caller guarantees both ranges; copying backwards (DF
        // set, pointers at the last byte) handles `dest` inside `src`; DF is
        // cleared again as the ABI requires.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _, options(nostack));
        }
        dest
    }
}

/// # Safety
/// `dest` is valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range; DF is clear (SysV ABI).
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and the caller guarantees `n` readable bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    {
        use core::fmt::Write as _;
        let mut w = console::Writer::lock_for_crash();
        w.fresh_line();
        let _ = write!(w, "minios: panic: {}", info.message());
        if let Some(at) = info.location() {
            let _ = write!(w, " at {}:{}", at.file(), at.line());
        }
        let _ = w.write_str("\n");
    }
    console::flush();
    hypercall::shutdown(ShutdownReason::Crash)
}
