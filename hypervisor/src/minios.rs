//! The embedded minios guest kernel, the VMM's default kernel.
//!
//! `build.rs` builds `hypervisor/minios` (a freestanding `no_std` kernel) with
//! a nested cargo and leaves the ELF in `OUT_DIR`; it is embedded here so the
//! `vmm` binary needs no kernel file on disk. The image follows the guest ABI
//! in `guest_abi`: an ELF64 x86-64 executable whose `PT_LOAD` segments sit at
//! or above `guest_abi::layout::KERNEL_BASE`, entered in long mode on every
//! vCPU.

/// The minios kernel image: an ELF64 x86-64 executable, ready to load.
///
/// The `minios_image` test checks its headers and that its code uses no
/// instruction the emulating KVM of the build machines cannot run.
pub fn elf() -> &'static [u8] {
    static ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/minios.elf"));
    ELF
}

/// The guest ABI version the embedded minios speaks (it prints it in its banner).
pub use guest_abi::ABI_VERSION;
