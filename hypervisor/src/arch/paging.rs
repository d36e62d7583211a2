//! Identity-mapped boot page tables: PML4 -> PDPT -> PDs of 2 MiB pages
//! covering all of guest RAM. Addresses above RAM are not mapped, so a guest
//! touching them faults inside the guest instead of reaching the VMM as MMIO.
use guest_abi::layout;
use x86_64::structures::paging::PageTableFlags;

use crate::memory::{GuestRam, MemoryError};

const GIB: u64 = 1 << 30;
const HUGE: u64 = 2 << 20;

/// Write the page tables for `ram` (at most `PD_COUNT` GiB are mapped).
pub fn write_page_tables(ram: &GuestRam) -> Result<(), MemoryError> {
    let table = (PageTableFlags::PRESENT | PageTableFlags::WRITABLE).bits();
    let huge = table | PageTableFlags::HUGE_PAGE.bits();
    let pdpt = layout::PML4 + 0x1000;
    ram.write(layout::PML4, pdpt | table)?;
    let gibs = ram.size().div_ceil(GIB).min(layout::PD_COUNT);
    for g in 0..gibs {
        let pd = layout::PD_BASE + g * 0x1000;
        ram.write(pdpt + 8 * g, pd | table)?;
        for i in 0..512u64 {
            let addr = g * GIB + i * HUGE;
            let entry = if addr < ram.size() { addr | huge } else { 0 };
            ram.write(pd + 8 * i, entry)?;
        }
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
}
