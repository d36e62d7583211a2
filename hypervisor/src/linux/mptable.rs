//! The Intel MultiProcessor table (MP spec 1.4) that tells a Linux guest
//! how many vCPUs it has and where its IOAPIC is, in the layout Firecracker's
//! `mptable.rs` uses: the floating pointer at the start of the last KiB
//! below 640 KiB (which Linux scans), the config table right after it, one
//! processor entry per vCPU, one ISA bus, the IOAPIC, an interrupt source
//! per IOAPIC pin, and LINT0 (ExtINT) / LINT1 (NMI).
use super::layout::{IOAPIC_ADDR, IOAPIC_PINS, LAPIC_ADDR, MPTABLE_START};
use crate::memory::{GuestRam, MemoryError};

/// Most vCPUs whose entries fit in the 1 KiB the table may use.
pub const MAX_CPUS: u32 = 32;

const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BSP: u8 = 2;
const CPU_STEPPING: u32 = 0x600;
const CPU_FEATURE_FPU_APIC: u32 = 0x201;
const MP_INT: u8 = 0;
const MP_NMI: u8 = 1;
const MP_EXTINT: u8 = 3;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// The table's bytes for `cpus` vCPUs, to be placed at [`MPTABLE_START`].
pub fn build(cpus: u32) -> Vec<u8> {
    let cpus = cpus.clamp(1, MAX_CPUS);
    let ioapic_id = (cpus + 1) as u8;
    let table_at = MPTABLE_START as u32 + 16;
    let mut entries: Vec<u8> = Vec::new();
    for i in 0..cpus {
        entries.push(0); // processor
        entries.push(i as u8);
        entries.push(APIC_VERSION);
        entries.push(CPU_ENABLED | if i == 0 { CPU_BSP } else { 0 });
        entries.extend_from_slice(&CPU_STEPPING.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURE_FPU_APIC.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[1, 0]); // bus 0
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[2, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(IOAPIC_ADDR as u32).to_le_bytes());
    for pin in 0..IOAPIC_PINS {
        // Interrupt source: ISA IRQ `pin` goes to IOAPIC pin `pin`.
        entries.extend_from_slice(&[3, MP_INT, 0, 0, 0, pin, ioapic_id, pin]);
    }
    entries.extend_from_slice(&[4, MP_EXTINT, 0, 0, 0, 0, 0, 0]);
    entries.extend_from_slice(&[4, MP_NMI, 0, 0, 0, 0, 0xff, 1]);
    let count = (cpus + 1 + 1 + u32::from(IOAPIC_PINS) + 2) as u16;

    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    table.push(4); // spec 1.4
    table.push(0); // checksum, below
    table.extend_from_slice(b"XTOPVMM ");
    table.extend_from_slice(b"000000000000");
    table.extend_from_slice(&0u32.to_le_bytes()); // oem table
    table.extend_from_slice(&0u16.to_le_bytes()); // oem size
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&(LAPIC_ADDR as u32).to_le_bytes());
    table.extend_from_slice(&0u32.to_le_bytes());
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut mpf = Vec::with_capacity(16);
    mpf.extend_from_slice(b"_MP_");
    mpf.extend_from_slice(&table_at.to_le_bytes());
    mpf.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    mpf[10] = checksum(&mpf);
    mpf.extend_from_slice(&table);
    mpf
}

/// Write the table for `cpus` vCPUs into guest RAM.
pub fn write(ram: &GuestRam, cpus: u32) -> Result<(), MemoryError> {
    ram.write_slice(MPTABLE_START, &build(cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_and_counts_are_right() {
        for cpus in [1, 2, MAX_CPUS] {
            let t = build(cpus);
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(sum(&t[..16]), 0, "floating pointer checksum");
            let len = u16::from_le_bytes([t[20], t[21]]) as usize;
            assert_eq!(&t[16..20], b"PCMP");
            assert_eq!(sum(&t[16..16 + len]), 0, "table checksum");
            assert_eq!(16 + len, t.len());
            let count = u16::from_le_bytes([t[16 + 34], t[16 + 35]]);
            assert_eq!(u32::from(count), cpus + 2 + u32::from(IOAPIC_PINS) + 2);
            assert!(t.len() <= 1024, "fits below 640 KiB");
        }
    }
}
