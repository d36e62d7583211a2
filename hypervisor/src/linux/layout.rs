//! Guest-physical layout of a Linux domain (Firecracker's x86-64 layout).
//!
//! ```text
//! 0x0000_0500  GDT (4 entries), IDT right after
//! 0x0000_6000  PVH hvm_start_info          (PVH boot)
//! 0x0000_7000  boot_params "zero page"     (bzImage boot) / PVH memory map
//! 0x0000_8000  PVH module list (ramdisk)
//! 0x0000_8ff0  boot stack top              (bzImage boot)
//! 0x0000_9000  PML4, PDPT, PD: 1 GiB identity map (bzImage boot)
//! 0x0002_0000  kernel command line (up to 64 KiB)
//! 0x0009_fc00  MP floating pointer and table (reserved, not RAM)
//! 0x0010_0000  kernel (bzImage protected-mode code; vmlinux per its ELF)
//! ...          ramdisk at the top of RAM
//! 0xd000_0000  virtio-mmio devices, 4 KiB each
//! 0xfec0_0000  IOAPIC, 0xfee0_0000 local APICs (KVM's)
//! ```

/// GDT.
pub const GDT: u64 = 0x500;
/// IDT (empty; the kernel loads its own).
pub const IDT: u64 = 0x520;
/// PVH start info.
pub const PVH_START_INFO: u64 = 0x6000;
/// bzImage boot parameters.
pub const ZERO_PAGE: u64 = 0x7000;
/// PVH memory map.
pub const PVH_MEMMAP: u64 = 0x7000;
/// PVH module list.
pub const PVH_MODLIST: u64 = 0x8000;
/// Boot stack top for the 64-bit bzImage entry.
pub const BOOT_STACK: u64 = 0x8ff0;
/// Page-map level 4.
pub const PML4: u64 = 0x9000;
/// Page directory pointer table.
pub const PDPT: u64 = 0xa000;
/// Page directory.
pub const PD: u64 = 0xb000;
/// Command line.
pub const CMDLINE: u64 = 0x2_0000;
/// Longest command line accepted (bytes, with the NUL).
pub const CMDLINE_MAX: usize = 0x1_0000;
/// MP table.
pub const MPTABLE_START: u64 = 0x9_fc00;
/// End of low RAM.
pub const EBDA_START: u64 = 0x9_fc00;
/// First byte of high RAM (where the kernel goes).
pub const HIMEM_START: u64 = 0x10_0000;
/// First virtio-mmio window.
pub const MMIO_BASE: u64 = 0xd000_0000;
/// Size of each virtio-mmio window.
pub const MMIO_SIZE: u64 = 0x1000;
/// Highest RAM a Linux domain may have (RAM must end below the MMIO windows).
pub const MAX_RAM: u64 = 0xc000_0000;
/// IOAPIC.
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// IOAPIC pins (KVM's IOAPIC has 24).
pub const IOAPIC_PINS: u8 = 24;
/// Local APIC.
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// Where KVM's VMX TSS goes (three pages below the IOAPIC region).
pub const KVM_TSS: u64 = 0xfffb_d000;

/// The console UART's I/O base and IRQ.
pub const COM1: u16 = 0x3f8;
/// COM1's IRQ.
pub const COM1_IRQ: u32 = 4;
/// i8042 keyboard controller IRQ.
pub const I8042_IRQ: u32 = 1;
/// First IRQ for virtio-mmio devices (5..=23 minus 8 and 12).
pub const VIRTIO_IRQS: &[u32] = &[
    5, 6, 7, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
];
