//! Identity-mapped boot page tables: PML4 -> PDPT -> PDs of 2 MiB pages
//! covering all of guest RAM. Addresses above RAM are not mapped, so a guest
//! touching them faults inside the guest instead of reaching the VMM as MMIO.
use guest_abi::layout;
use x86_64::structures::paging::PageTableFlags;

use crate::memory::{GuestRam, MemoryError};

const GIB: u64 = 1 << 30;
const HUGE: u64 = 2 << 20;

const TABLE: u64 = PageTableFlags::PRESENT.bits() | PageTableFlags::WRITABLE.bits();
const PDPT: u64 = layout::PML4 + 0x1000;

/// Write the page tables for `ram` (at most `PD_COUNT` GiB are mapped).
pub fn write_page_tables(ram: &GuestRam) -> Result<(), MemoryError> {
    ram.write(layout::PML4, PDPT | TABLE)?;
    map_ram(ram, 0, ram.size())
}

/// Map guest RAM `[from, to)` (2 MiB aligned; `from` is 0 or where RAM
/// ended before it grew) with 2 MiB pages, adding page directories as the
/// range reaches new GiBs. Entries are only added (not present -> present),
/// which needs no TLB flush, and each directory is filled before the entry
/// that points to it, so a running guest sees the new RAM whole or not at all.
pub fn map_ram(ram: &GuestRam, from: u64, to: u64) -> Result<(), MemoryError> {
    let huge = TABLE | PageTableFlags::HUGE_PAGE.bits();
    let to = to.min(layout::PD_COUNT * GIB);
    for g in from / GIB..to.div_ceil(GIB) {
        let pd = layout::PD_BASE + g * 0x1000;
        // A directory no earlier RAM reached is written whole.
        let fresh = from <= g * GIB;
        for i in 0..512u64 {
            let addr = g * GIB + i * HUGE;
            if (from..to).contains(&addr) {
                ram.write(pd + 8 * i, addr | huge)?;
            } else if fresh {
                ram.write(pd + 8 * i, 0u64)?;
            }
        }
        ram.write(PDPT + 8 * g, pd | TABLE)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ram_and_nothing_above() {
        let ram = GuestRam::new(6 << 20).unwrap();
        write_page_tables(&ram).unwrap();
        let pd0: u64 = ram.read(layout::PD_BASE).unwrap();
        assert_eq!(pd0 & !0xfff, 0);
        assert_ne!(pd0 & PageTableFlags::HUGE_PAGE.bits(), 0);
        let pd2: u64 = ram.read(layout::PD_BASE + 16).unwrap();
        assert_eq!(pd2 & !0xfff, 4 << 20);
        let pd3: u64 = ram.read(layout::PD_BASE + 24).unwrap();
        assert_eq!(pd3, 0, "the 2 MiB page above RAM must not be mapped");
    }

    #[test]
    fn grown_ram_is_mapped_across_a_gib_boundary() {
        let ram = GuestRam::with_reserve(1020 << 20, 1030 << 20).unwrap();
        write_page_tables(&ram).unwrap();
        let pdpt1: u64 = ram.read(PDPT + 8).unwrap();
        assert_eq!(pdpt1, 0, "nothing above the first GiB yet");
        ram.grow(1028 << 20, |_| Ok(())).unwrap();
        map_ram(&ram, 1020 << 20, ram.size()).unwrap();
        let last0: u64 = ram.read(layout::PD_BASE + 8 * 511).unwrap();
        assert_eq!(last0 & !0xfff, 1022 << 20);
        let pdpt1: u64 = ram.read(PDPT + 8).unwrap();
        assert_eq!(pdpt1 & !0xfff, layout::PD_BASE + 0x1000);
        let e1: u64 = ram.read(layout::PD_BASE + 0x1000 + 8).unwrap();
        assert_eq!(e1 & !0xfff, GIB + (2 << 20));
        let e2: u64 = ram.read(layout::PD_BASE + 0x1000 + 16).unwrap();
        assert_eq!(e2, 0, "above the grown RAM");
    }
}
