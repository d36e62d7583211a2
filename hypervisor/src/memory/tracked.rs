//! A view of guest RAM for device backends that records every page it
//! writes.
//!
//! KVM's dirty log sees only the guest's own writes; what the VMM writes
//! through its mapping (a block read landing in a guest buffer, a received
//! frame, ring indices and statuses) is invisible to it. Devices reach guest
//! RAM only through [`TrackedRam`], which notes each written page in the
//! domain's [`WriteLog`]; live migration sends those pages again in its
//! final round ([`WriteLog::take`]).
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::{GuestRam, MemoryError, PAGE_SIZE};

/// Guest pages written from VMM threads since the last [`WriteLog::take`].
#[derive(Default)]
pub struct WriteLog(Mutex<BTreeSet<u64>>);

impl WriteLog {
    /// Note a write of `len` bytes at `gpa`.
    pub fn note(&self, gpa: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut pages = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let last = gpa.saturating_add(len - 1) / PAGE_SIZE;
        for page in gpa / PAGE_SIZE..=last {
            pages.insert(page);
        }
    }

    /// The pages noted since the last call, as page-aligned `(gpa, len)`
    /// ranges.
    pub fn take(&self) -> Vec<(u64, u64)> {
        let pages = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for page in pages {
            match ranges.last_mut() {
                Some((start, len)) if *start + *len == page * PAGE_SIZE => *len += PAGE_SIZE,
                _ => ranges.push((page * PAGE_SIZE, PAGE_SIZE)),
            }
        }
        ranges
    }
}

/// Guest RAM as a device sees it: checked accessors, and every write noted.
#[derive(Clone, Copy)]
pub struct TrackedRam<'a> {
    ram: &'a GuestRam,
    log: &'a WriteLog,
}

impl<'a> TrackedRam<'a> {
    /// A view of `ram` noting writes in `log`.
    pub fn new(ram: &'a GuestRam, log: &'a WriteLog) -> TrackedRam<'a> {
        TrackedRam { ram, log }
    }

    /// Check that `[gpa, gpa+len)` lies inside guest RAM.
    pub fn check(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        self.ram.check(gpa, len)
    }

    /// Read a plain value.
    pub fn read<T: vm_memory::ByteValued>(&self, gpa: u64) -> Result<T, MemoryError> {
        self.ram.read(gpa)
    }

    /// Copy guest bytes out.
    pub fn read_slice(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.ram.read_slice(gpa, buf)
    }

    /// Write a plain value (noted).
    pub fn write<T: vm_memory::ByteValued>(&self, gpa: u64, val: T) -> Result<(), MemoryError> {
        self.ram.write(gpa, val)?;
        self.log.note(gpa, size_of::<T>() as u64);
        Ok(())
    }

    /// Copy bytes into the guest (noted).
    pub fn write_slice(&self, gpa: u64, buf: &[u8]) -> Result<(), MemoryError> {
        self.ram.write_slice(gpa, buf)?;
        self.log.note(gpa, buf.len() as u64);
        Ok(())
    }

    /// Load a u32 the guest shares (acquire).
    pub fn load_u32(&self, gpa: u64) -> Result<u32, MemoryError> {
        Ok(self.ram.atomic_u32(gpa)?.load(Ordering::Acquire))
    }

    /// Store a u32 the guest shares (release; noted).
    pub fn store_u32(&self, gpa: u64, val: u32) -> Result<(), MemoryError> {
        self.ram.atomic_u32(gpa)?.store(val, Ordering::Release);
        self.log.note(gpa, 4);
        Ok(())
    }

    /// Add to a u32 the guest shares (acquire-release; noted).
    pub fn fetch_add_u32(&self, gpa: u64, val: u32) -> Result<u32, MemoryError> {
        let old = self.ram.atomic_u32(gpa)?.fetch_add(val, Ordering::AcqRel);
        self.log.note(gpa, 4);
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pages_merge_into_ranges_and_are_taken_once() {
        let w = WriteLog::default();
        w.note(0x1000, 1);
        w.note(0x1ff0, 0x20); // spans 0x1000 and 0x2000
        w.note(0x5000, 0x1000);
        w.note(0x9000, 0);
        assert_eq!(w.take(), vec![(0x1000, 0x2000), (0x5000, 0x1000)]);
        assert!(w.take().is_empty());
    }

    #[test]
    fn every_write_through_the_view_is_noted_and_reads_are_not() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let log = WriteLog::default();
        let view = TrackedRam::new(&ram, &log);
        view.write(0x3000, 7u64).unwrap();
        view.write_slice(0x8ffe, &[1, 2, 3, 4]).unwrap();
        view.store_u32(0x20000, 5).unwrap();
        view.fetch_add_u32(0x20004, 1).unwrap();
        let _: u64 = view.read(0x40000).unwrap();
        assert_eq!(view.load_u32(0x20000).unwrap(), 5);
        assert!(view.write(2 << 20, 1u8).is_err());
        assert_eq!(
            log.take(),
            vec![(0x3000, 0x1000), (0x8000, 0x2000), (0x20000, 0x1000)]
        );
        assert_eq!(ram.read::<u64>(0x3000).unwrap(), 7);
    }
}
