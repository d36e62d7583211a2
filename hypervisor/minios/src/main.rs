//! minios: a small multi-vCPU guest kernel for the xtop VMM.
//!
//! Every vCPU enters at [`_start`] in long mode with `rdi` = the start-info
//! page, `rsi` = its index and `rsp` = its boot stack (see `guest_abi`).
//! vCPU 0 prints the banner, waits for the others and runs the shell; the
//! other vCPUs sleep in the VMM until vCPU 0 hands them work (`burn`).
//!
//! The code stays plain integer code: the emulating KVM of the build machines
//! cannot run `popcnt`, `cmpxchg16b` or SIMD arithmetic (the `minios_image`
//! test of the hypervisor crate checks every instruction of the image).
#![no_std]
#![no_main]

mod blk;
mod console;
mod dev;
mod hypercall;
mod idt;
mod mem;
mod net;
mod rt;
mod shell;
mod smp;
mod start;
mod time;

use core::arch::global_asm;

// The ELF entry point. The VMM hands over a 16-byte aligned stack; `call`
// pushes the return address so `kernel_main` sees the SysV alignment.
global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    and rsp, -16",
    "    xor ebp, ebp",
    "    call {main}",
    "    ud2",
    main = sym kernel_main,
);

/// The first Rust code every vCPU runs.
extern "C" fn kernel_main(start_info: u64, vcpu: u64) -> ! {
    let vcpu = vcpu as u32;
    idt::load();
    if vcpu != 0 {
        smp::ap_main(vcpu);
    }
    let info = start::init(start_info);
    time::init(info.tsc_khz);
    console::init(info.console_gpa);
    println!(
        "minios {} (guest ABI v{}) booting",
        env!("CARGO_PKG_VERSION"),
        guest_abi::ABI_VERSION
    );
    println!(
        "minios: domain {} id {}, {} MiB, {} vCPUs, cmdline '{}'",
        start::name(),
        info.domid,
        info.mem_bytes >> 20,
        start::nr_vcpus(),
        start::cmdline()
    );
    let online = smp::wait_online();
    println!("minios: {}/{} vCPUs online", online, start::nr_vcpus());
    mem::report();
    blk::list(|name, d| {
        println!(
            "minios: disk {name}: {} sectors{}",
            d.sectors,
            if d.read_only { ", read-only" } else { "" }
        )
    });
    net::rescan();
    shell::run()
}
