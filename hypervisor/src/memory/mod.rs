//! Guest RAM: one anonymous `MAP_NORESERVE` mapping registered with KVM, and
//! the checked accessors the VMM uses on it.
//!
//! Every guest-physical address that comes from the guest goes through
//! [`GuestRam::check`] (directly or via vm-memory's checked `Bytes` methods)
//! before it is touched: a wild pointer is an error for the caller to turn
//! into a crashed domain, never a VMM fault.
mod tracked;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub use tracked::{TrackedRam, WriteLog};

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap, MmapRegion,
};

/// Page size the accounting works in.
pub const PAGE_SIZE: u64 = 4096;
/// Guest RAM grows in steps of this (the boot page tables' page size).
pub const GROW_ALIGN: u64 = 2 << 20;
/// How many regions (KVM memory slots) guest RAM may consist of: the one
/// mapped at boot and one per later growth.
pub const MAX_REGIONS: usize = 64;

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
    /// Growth beyond the reserved address space.
    #[error("guest RAM cannot grow to {mib} MiB: {reserved_mib} MiB of address space are reserved")]
    Reserve {
        /// Size asked for, MiB.
        mib: u64,
        /// Reserved, MiB.
        reserved_mib: u64,
    },
    /// Too many growths.
    #[error("guest RAM has grown {} times already (the limit)", MAX_REGIONS - 1)]
    Regions,
    /// The reserved range could not be made accessible.
    #[error("cannot make reserved guest RAM accessible: {0}")]
    Protect(#[source] std::io::Error),
    /// KVM refused the new region.
    #[error("KVM refused the new guest RAM region: {0}")]
    Register(#[source] std::io::Error),
}

/// One contiguous part of guest RAM: a KVM memory slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// KVM memory slot number (its index in [`GuestRam::regions`]).
    pub slot: u32,
    /// First guest-physical address.
    pub gpa: u64,
    /// Bytes.
    pub len: u64,
    /// Host address of `gpa`.
    pub host: u64,
}

/// Guest RAM starting at guest-physical 0.
///
/// The mapping reserves address space for the largest size the domain may
/// grow to (`MAP_NORESERVE`, and `PROT_NONE` above the current size: costs
/// nothing); [`GuestRam::grow`] makes more of it guest RAM while the domain
/// runs. Every access is checked against the current size.
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: AtomicU64,
    reserved: u64,
    host: *mut u8,
    regions: Mutex<Vec<Region>>,
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
        GuestRam::with_reserve(size, size)
    }

    /// Like [`GuestRam::new`], reserving address space for growth up to
    /// `reserve` bytes (at least `size`; a multiple of 2 MiB).
    pub fn with_reserve(size: u64, reserve: u64) -> Result<GuestRam, MemoryError> {
        let reserve = reserve.max(size);
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let region = MmapRegion::build(
            None,
            reserve as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
        )
        .map_err(|source| MemoryError::Map {
            mib: reserve >> 20,
            source,
        })?;
        let region = GuestRegionMmap::new(region, GuestAddress(0))
            .expect("a region at guest address 0 cannot overflow");
        let mem = GuestMemoryMmap::from_regions(vec![region])
            .expect("a single region never overlaps another");
        let host = mem
            .get_host_address(GuestAddress(0))
            .expect("address 0 is inside the only region");
        let ram = GuestRam {
            mem,
            size: AtomicU64::new(size),
            reserved: reserve,
            host,
            regions: Mutex::new(vec![Region {
                slot: 0,
                gpa: 0,
                len: size,
                host: host as u64,
            }]),
        };
        // The reserve above `size` is not guest RAM yet: inaccessible, so a
        // stray access from the VMM faults instead of using memory.
        ram.protect(size, reserve, libc::PROT_NONE)
            .map_err(|source| MemoryError::Map {
                mib: reserve >> 20,
                source: vm_memory::mmap::MmapRegionError::Mmap(source),
            })?;
        Ok(ram)
    }

    fn protect(&self, from: u64, to: u64, prot: libc::c_int) -> std::io::Result<()> {
        if to <= from {
            return Ok(());
        }
        // SAFETY: [from, to) lies inside our mapping of `reserved` bytes
        // (callers pass page-aligned bounds at most `reserved`), and no Rust
        // reference points into the part whose protection changes: it is
        // above the checked size (made inaccessible) or about to become RAM.
        let rc = unsafe {
            libc::mprotect(
                self.host.add(from as usize).cast(),
                (to - from) as usize,
                prot,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Bytes of guest RAM now.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Bytes of address space reserved: the most guest RAM can grow to.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// The regions guest RAM is made of, in guest-physical order.
    pub fn regions(&self) -> Vec<Region> {
        self.regions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Grow guest RAM to `to` bytes (rounded up to [`GROW_ALIGN`]) with one
    /// more region, which `register` hands to KVM before any access to it
    /// is allowed. Returns the new region (`None` if RAM is that large
    /// already).
    pub fn grow(
        &self,
        to: u64,
        register: impl FnOnce(&Region) -> std::io::Result<()>,
    ) -> Result<Option<Region>, MemoryError> {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let to = to.next_multiple_of(GROW_ALIGN);
        let from = self.size();
        if to <= from {
            return Ok(None);
        }
        if to > self.reserved {
            return Err(MemoryError::Reserve {
                mib: to >> 20,
                reserved_mib: self.reserved >> 20,
            });
        }
        if regions.len() >= MAX_REGIONS {
            return Err(MemoryError::Regions);
        }
        let region = Region {
            slot: regions.len() as u32,
            gpa: from,
            len: to - from,
            host: self.host as u64 + from,
        };
        self.protect(from, to, libc::PROT_READ | libc::PROT_WRITE)
            .map_err(MemoryError::Protect)?;
        if let Err(e) = register(&region) {
            let _ = self.protect(from, to, libc::PROT_NONE);
            return Err(MemoryError::Register(e));
        }
        regions.push(region);
        self.size.store(to, Ordering::Release);
        Ok(Some(region))
    }

    /// Host address of guest-physical 0 (for KVM memory-slot registration).
    pub fn host_base(&self) -> u64 {
        self.host as u64
    }

    /// Map the boot RAM into `vm` as memory slot 0 at guest-physical 0.
    ///
    /// # Safety
    ///
    /// KVM keeps the host address: `self` must stay mapped, and not move, for
    /// as long as `vm` can run a vCPU (the Domain owns both and drops the VM
    /// fd before or with the RAM).
    pub unsafe fn map_boot_slot(&self, vm: &kvm_ioctls::VmFd) -> Result<(), kvm_ioctls::Error> {
        let region = kvm_bindings::kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: self.size(),
            userspace_addr: self.host_base(),
        };
        // SAFETY: the region is exactly this RAM's mapping; the caller keeps
        // it alive for as long as the VM can use it.
        unsafe { vm.set_user_memory_region(region) }
    }

    /// The vm-memory view (for the kernel loader).
    pub fn guest_memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Check that `[gpa, gpa+len)` lies inside guest RAM.
    pub fn check(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        let size = self.size();
        match gpa.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(MemoryError::OutOfRange { gpa, len, size }),
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

    /// Which pages of guest RAM are backed by host memory now (touched by
    /// the guest or the VMM and not released), from `mincore`: the only
    /// pages that can hold anything but zeros.
    pub fn resident_pages(&self) -> std::io::Result<ResidentPages> {
        let size = self.size();
        let pages = size.div_ceil(PAGE_SIZE) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: `host` is the page-aligned start of a mapping of at least
        // `size` bytes that outlives this call; `vec` has one byte per page as
        // mincore needs.
        let rc = unsafe { libc::mincore(self.host.cast(), size as usize, vec.as_mut_ptr()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(ResidentPages(vec))
    }

    /// Bytes of guest RAM currently backed by host pages (0 if `mincore`
    /// fails).
    pub fn touched_bytes(&self) -> u64 {
        self.resident_pages().map_or(0, |r| r.count() * PAGE_SIZE)
    }

    /// Ask for transparent huge pages over all of RAM (a Linux guest touches
    /// most of its RAM at boot; 2 MiB pages mean far fewer nested page
    /// faults). Advisory: an error only means 4 KiB pages.
    pub fn advise_huge_pages(&self) {
        // SAFETY: the range is exactly the RAM part of our own anonymous
        // mapping; MADV_HUGEPAGE changes how it is backed, never its contents.
        unsafe {
            libc::madvise(self.host.cast(), self.size() as usize, libc::MADV_HUGEPAGE);
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

/// The answer of [`GuestRam::resident_pages`]: one `mincore` byte per page.
pub struct ResidentPages(Vec<u8>);

impl ResidentPages {
    /// Numbers (gpa / [`PAGE_SIZE`]) of the resident pages, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, b)| *b & 1 != 0)
            .map(|(p, _)| p as u64)
    }

    /// How many pages are resident.
    pub fn count(&self) -> u64 {
        self.0.iter().filter(|b| *b & 1 != 0).count() as u64
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
    fn ram_grows_into_its_reserve_only() {
        let ram = GuestRam::with_reserve(2 << 20, 8 << 20).unwrap();
        assert!(ram.check(2 << 20, 1).is_err(), "the reserve is not RAM yet");
        let mut seen = Vec::new();
        let r = ram
            .grow(3 << 20, |r| {
                seen.push(*r);
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!((r.slot, r.gpa, r.len), (1, 2 << 20, 2 << 20), "2 MiB steps");
        assert_eq!(seen, vec![r]);
        assert_eq!(ram.size(), 4 << 20);
        ram.write((4 << 20) - 8, 7u64).unwrap();
        assert_eq!(ram.read::<u64>((4 << 20) - 8).unwrap(), 7);
        assert_eq!(ram.grow(4 << 20, |_| Ok(())).unwrap(), None);
        assert!(matches!(
            ram.grow(10 << 20, |_| Ok(())),
            Err(MemoryError::Reserve { mib: 10, .. })
        ));
        let refused = ram.grow(6 << 20, |_| Err(std::io::Error::other("no")));
        assert!(matches!(refused, Err(MemoryError::Register(_))));
        assert_eq!(ram.size(), 4 << 20, "a refused region is not RAM");
        assert_eq!(ram.regions().len(), 2);
        ram.grow(8 << 20, |_| Ok(())).unwrap();
        assert_eq!(ram.touched_bytes(), PAGE_SIZE, "growth touches nothing");
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
        let pages: Vec<u64> = ram.resident_pages().unwrap().iter().collect();
        assert_eq!(pages, vec![5, 6, 7, 8, 9]);
        assert_eq!(ram.read::<u8>(0).unwrap(), 0);
    }
}
