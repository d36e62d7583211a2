//! Guest RAM: one anonymous `MAP_NORESERVE` mapping registered with KVM, and
//! the checked accessors the VMM uses on it.
//!
//! Every guest-physical address that comes from the guest goes through
//! [`GuestRam::check`] (directly or via vm-memory's checked `Bytes` methods)
//! before it is touched: a wild pointer is an error for the caller to turn
//! into a crashed domain, never a VMM fault.
use std::sync::atomic::{AtomicU32, AtomicU64};

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap, MmapRegion,
};

/// Page size the accounting works in.
pub const PAGE_SIZE: u64 = 4096;

/// Errors from guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// mmap failed.
    #[error("cannot map {mib} MiB of guest RAM")]
    Map {
        /// Size asked for.
        mib: u64,
        /// Cause.
        #[source]
        source: vm_memory::mmap::MmapRegionError,
    },
    /// The guest named memory outside its RAM.
    #[error("guest address range {gpa:#x}+{len:#x} is outside guest RAM ({size:#x} bytes)")]
    OutOfRange {
        /// Start.
        gpa: u64,
        /// Length.
        len: u64,
        /// RAM size.
        size: u64,
    },
    /// An atomic field at a misaligned address.
    #[error("guest address {gpa:#x} is not {align}-byte aligned")]
    Misaligned {
        /// Address.
        gpa: u64,
        /// Required alignment.
        align: u64,
    },
    /// A checked access failed inside vm-memory.
    #[error("guest memory access at {gpa:#x} failed")]
    Access {
        /// Address.
        gpa: u64,
        /// Cause.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// Guest RAM starting at guest-physical 0.
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: u64,
    host: *mut u8,
}

// SAFETY: `host` points into the mapping owned by `mem`, which vm-memory
// already shares across threads; GuestRam adds no thread-affine state.
unsafe impl Send for GuestRam {}
// SAFETY: as above; all access to guest bytes goes through volatile/atomic
// operations (vm-memory) or `AtomicU32`/`AtomicU64` references.
unsafe impl Sync for GuestRam {}

impl GuestRam {
    /// Map `size` bytes (a multiple of 2 MiB) of private anonymous memory that
    /// costs nothing until the guest touches it.
    pub fn new(size: u64) -> Result<GuestRam, MemoryError> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let region = MmapRegion::build(
            None,
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
        )
        .map_err(|source| MemoryError::Map {
            mib: size >> 20,
            source,
        })?;
        let region = GuestRegionMmap::new(region, GuestAddress(0))
            .expect("a region at guest address 0 cannot overflow");
        let mem = GuestMemoryMmap::from_regions(vec![region])
            .expect("a single region never overlaps another");
        let host = mem
            .get_host_address(GuestAddress(0))
            .expect("address 0 is inside the only region");
        Ok(GuestRam { mem, size, host })
    }

    /// Bytes of guest RAM.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host address of guest-physical 0 (for KVM memory-slot registration).
    pub fn host_base(&self) -> u64 {
        self.host as u64
    }

    /// The vm-memory view (for the kernel loader).
    pub fn guest_memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Check that `[gpa, gpa+len)` lies inside guest RAM.
    pub fn check(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        match gpa.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(MemoryError::OutOfRange {
                gpa,
                len,
                size: self.size,
            }),
        }
    }

    /// Read a plain value at a checked address.
    pub fn read<T: vm_memory::ByteValued>(&self, gpa: u64) -> Result<T, MemoryError> {
        self.check(gpa, size_of::<T>() as u64)?;
        self.mem
            .read_obj(GuestAddress(gpa))
            .map_err(|source| MemoryError::Access { gpa, source })
    }

    /// Write a plain value at a checked address.
    pub fn write<T: vm_memory::ByteValued>(&self, gpa: u64, val: T) -> Result<(), MemoryError> {
        self.check(gpa, size_of::<T>() as u64)?;
        self.mem
            .write_obj(val, GuestAddress(gpa))
            .map_err(|source| MemoryError::Access { gpa, source })
    }

    /// Copy guest bytes out.
    pub fn read_slice(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.check(gpa, buf.len() as u64)?;
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|source| MemoryError::Access { gpa, source })
    }

    /// Copy bytes into the guest.
    pub fn write_slice(&self, gpa: u64, buf: &[u8]) -> Result<(), MemoryError> {
        self.check(gpa, buf.len() as u64)?;
        self.mem
            .write_slice(buf, GuestAddress(gpa))
            .map_err(|source| MemoryError::Access { gpa, source })
    }

    /// A u32 shared with the guest, accessed atomically.
    pub fn atomic_u32(&self, gpa: u64) -> Result<&AtomicU32, MemoryError> {
        self.check(gpa, 4)?;
        if !gpa.is_multiple_of(4) {
            return Err(MemoryError::Misaligned { gpa, align: 4 });
        }
        // SAFETY: [gpa, gpa+4) is inside the mapping (checked above), which lives
        // as long as `self`; the address is 4-aligned; AtomicU32 has the layout
        // of u32 and every byte pattern is valid. The guest accesses the word
        // concurrently, like another thread using atomics on shared memory.
        Ok(unsafe { &*(self.host.add(gpa as usize) as *const AtomicU32) })
    }

    /// A u64 shared with the guest, accessed atomically.
    pub fn atomic_u64(&self, gpa: u64) -> Result<&AtomicU64, MemoryError> {
        self.check(gpa, 8)?;
        if !gpa.is_multiple_of(8) {
            return Err(MemoryError::Misaligned { gpa, align: 8 });
        }
        // SAFETY: as in `atomic_u32`, with 8-byte size and alignment.
        Ok(unsafe { &*(self.host.add(gpa as usize) as *const AtomicU64) })
    }

    /// Bytes of guest RAM currently backed by host pages (touched by the guest
    /// or the VMM), from `mincore`.
    pub fn touched_bytes(&self) -> u64 {
        let pages = self.size.div_ceil(PAGE_SIZE) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: `host` is the page-aligned start of a mapping of `size` bytes
        // that outlives this call; `vec` has one byte per page as mincore needs.
        let rc = unsafe { libc::mincore(self.host.cast(), self.size as usize, vec.as_mut_ptr()) };
        if rc != 0 {
            return 0;
        }
        vec.iter().filter(|b| *b & 1 != 0).count() as u64 * PAGE_SIZE
    }

    /// Ask for transparent huge pages over all of RAM (a Linux guest touches
    /// most of its RAM at boot; 2 MiB pages mean far fewer nested page
    /// faults). Advisory: an error only means 4 KiB pages.
    pub fn advise_huge_pages(&self) {
        // SAFETY: the range is exactly our own anonymous mapping;
        // MADV_HUGEPAGE changes how it is backed, never its contents.
        unsafe {
            libc::madvise(self.host.cast(), self.size as usize, libc::MADV_HUGEPAGE);
        }
    }

    /// Give pages back to the host (balloon release, shutdown). The guest reads
    /// zeros there afterwards.
    pub fn release(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        self.check(gpa, len)?;
        if !gpa.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return Err(MemoryError::Misaligned {
                gpa,
                align: PAGE_SIZE,
            });
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range is page aligned and inside our private anonymous
        // mapping (checked above); MADV_DONTNEED only drops its pages, which
        // later read as zero. No Rust reference to those bytes is held across
        // this call except atomics, whose values becoming 0 is valid.
        unsafe {
            libc::madvise(
                self.host.add(gpa as usize).cast(),
                len as usize,
                libc::MADV_DONTNEED,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_ranges_and_alignment() {
        let ram = GuestRam::new(2 << 20).unwrap();
        assert!(ram.check(0, 2 << 20).is_ok());
        assert!(ram.check(1, 2 << 20).is_err());
        assert!(ram.check(u64::MAX, 2).is_err());
        assert!(ram.atomic_u32(2).is_err());
        assert!(ram.atomic_u32((2 << 20) - 4).is_ok());
        assert!(ram.atomic_u64((2 << 20) - 4).is_err());
    }

    #[test]
    fn touched_pages_are_counted_and_released() {
        let ram = GuestRam::new(4 << 20).unwrap();
        assert_eq!(ram.touched_bytes(), 0);
        for page in 0..10u64 {
            ram.write(page * PAGE_SIZE, 1u8).unwrap();
        }
        assert_eq!(ram.touched_bytes(), 10 * PAGE_SIZE);
        ram.release(0, 5 * PAGE_SIZE).unwrap();
        assert_eq!(ram.touched_bytes(), 5 * PAGE_SIZE);
        assert_eq!(ram.read::<u8>(0).unwrap(), 0);
    }
}
