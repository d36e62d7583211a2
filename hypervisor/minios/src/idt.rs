//! CPU exceptions: report them on the console, then end the domain as crashed.
//!
//! There are no device interrupts (vCPUs run with interrupts off and sleep in
//! the VMM), so the IDT holds only the 32 exception vectors. The handler never
//! returns, so the stubs save no registers.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};

use guest_abi::{MAX_VCPUS, ShutdownReason, layout};
use spin::Once;

use crate::{console, hypercall};

// One stub per vector: push a zero error code where the CPU pushes none, then
// the vector, and hand the frame to `exception`.
global_asm!(
    ".section .text.exceptions, \"ax\"",
    ".irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
    "minios_exc_\\n:",
    "    push 0",
    "    push \\n",
    "    jmp minios_exc_common",
    ".endr",
    ".irp n, 8,10,11,12,13,14,17,21,29,30",
    "minios_exc_\\n:",
    "    push \\n",
    "    jmp minios_exc_common",
    ".endr",
    "minios_exc_common:",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {handler}",
    "    ud2",
    ".section .rodata.exceptions, \"a\"",
    ".balign 8",
    ".global minios_exc_table",
    "minios_exc_table:",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    .quad minios_exc_\\n",
    ".endr",
    handler = sym exception,
);

unsafe extern "C" {
    /// Addresses of the 32 stubs above.
    static minios_exc_table: [u64; 32];
}

/// What the stub and the CPU pushed.
#[repr(C)]
struct Frame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// A 64-bit interrupt gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

/// The operand of `lidt`.
#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

static IDT: Once<[Gate; 32]> = Once::new();
/// Set while a vCPU reports an exception: a second fault on the way goes
/// straight to shutdown instead of recursing.
static REPORTING: [AtomicBool; MAX_VCPUS as usize] =
    [const { AtomicBool::new(false) }; MAX_VCPUS as usize];

fn build() -> [Gate; 32] {
    let selector: u16;
    // SAFETY: reading CS has no side effects.
    unsafe { asm!("mov {0:x}, cs", out(reg) selector, options(nomem, nostack, preserves_flags)) };
    // SAFETY: `minios_exc_table` is a read-only table of 32 addresses
    // defined in the assembly above.
    let stubs = unsafe { &minios_exc_table };
    stubs.map(|addr| Gate {
        offset_low: addr as u16,
        selector,
        ist: 0,
        attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
        offset_mid: (addr >> 16) as u16,
        offset_high: (addr >> 32) as u32,
        reserved: 0,
    })
}

/// Load the exception IDT on this vCPU (built once, shared by all vCPUs).
pub fn load() {
    let idt = IDT.call_once(build);
    let pointer = Pointer {
        limit: (core::mem::size_of_val(idt) - 1) as u16,
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT is a static that lives forever and every gate points at
    // a stub above that never returns into a bad state.
    unsafe { asm!("lidt [{0}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

fn name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating point error",
        _ => "reserved",
    }
}

/// The vCPU we run on, from the boot stack the fault happened on.
fn vcpu_of(rsp: u64) -> Option<u64> {
    let index = rsp.checked_sub(layout::BOOT_STACKS)? / layout::BOOT_STACK_SIZE;
    (index < u64::from(MAX_VCPUS)).then_some(index)
}

extern "C" fn exception(frame: &Frame) -> ! {
    let vcpu = vcpu_of(frame.rsp);
    let slot = &REPORTING[vcpu.unwrap_or(0) as usize];
    if slot.swap(true, Ordering::AcqRel) {
        hypercall::shutdown(ShutdownReason::Crash);
    }
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    {
        use core::fmt::Write as _;
        let mut w = console::Writer::lock_for_crash();
        w.fresh_line();
        let _ = write!(w, "minios: ");
        if let Some(vcpu) = vcpu {
            let _ = write!(w, "vCPU {vcpu}: ");
        }
        let _ = writeln!(
            w,
            "exception {} ({}) at rip {:#x}, error {:#x}, cr2 {:#x}, rsp {:#x}",
            frame.vector,
            name(frame.vector),
            frame.rip,
            frame.error,
            cr2,
            frame.rsp
        );
    }
    console::flush();
    hypercall::shutdown(ShutdownReason::Crash)
}
