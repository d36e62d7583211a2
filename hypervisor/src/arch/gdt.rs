//! The boot GDT: null, 64-bit code, data, and a TSS descriptor for TR.
use guest_abi::layout;
use x86_64::structures::gdt::DescriptorFlags;

use crate::memory::{GuestRam, MemoryError};

/// Selector of the 64-bit code segment.
pub const CODE_SELECTOR: u16 = 0x08;
/// Selector of the data segment.
pub const DATA_SELECTOR: u16 = 0x10;
/// Selector of the (placeholder) TSS that TR points at.
pub const TSS_SELECTOR: u16 = 0x18;
/// Bytes in the GDT (four 8-byte entries; the TSS entry takes two).
pub const GDT_LIMIT: u16 = 5 * 8 - 1;

/// Busy 64-bit TSS, present, limit 0x67, base 0 (low half; high half is 0).
const TSS_LOW: u64 = 0x0000_8b00_0000_0067;

/// Write the GDT at [`layout::GDT`].
pub fn write_gdt(ram: &GuestRam) -> Result<(), MemoryError> {
    let entries = [
        0u64,
        DescriptorFlags::KERNEL_CODE64.bits(),
        DescriptorFlags::KERNEL_DATA.bits(),
        TSS_LOW,
        0,
    ];
    for (i, e) in entries.iter().enumerate() {
        ram.write(layout::GDT + 8 * i as u64, *e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_the_classic_flat_ones() {
        assert_eq!(DescriptorFlags::KERNEL_CODE64.bits(), 0x00af_9b00_0000_ffff);
        assert_eq!(DescriptorFlags::KERNEL_DATA.bits(), 0x00cf_9300_0000_ffff);
    }
}
