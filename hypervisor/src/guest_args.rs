//! Reading hypercall argument structs out of guest memory, field by field,
//! after checking the whole struct lies inside guest RAM.
use guest_abi::{BlockArgs, KickArgs, MemReleaseArgs, MemReportArgs};

use crate::memory::{GuestRam, MemoryError};

/// An ABI struct the VMM reads from a guest pointer.
pub trait FromGuest: Sized {
    /// Read `Self` at `gpa`.
    fn read_from(ram: &GuestRam, gpa: u64) -> Result<Self, MemoryError>;
}

impl FromGuest for BlockArgs {
    fn read_from(ram: &GuestRam, gpa: u64) -> Result<Self, MemoryError> {
        ram.check(gpa, size_of::<Self>() as u64)?;
        Ok(BlockArgs {
            timeout_ns: ram.read(gpa)?,
            event_mask: ram.read(gpa + 8)?,
            _pad: 0,
        })
    }
}

impl FromGuest for KickArgs {
    fn read_from(ram: &GuestRam, gpa: u64) -> Result<Self, MemoryError> {
        Ok(KickArgs {
            vcpu_mask: ram.read(gpa)?,
        })
    }
}

impl FromGuest for MemReleaseArgs {
    fn read_from(ram: &GuestRam, gpa: u64) -> Result<Self, MemoryError> {
        ram.check(gpa, size_of::<Self>() as u64)?;
        Ok(MemReleaseArgs {
            gpa: ram.read(gpa)?,
            len: ram.read(gpa + 8)?,
        })
    }
}

impl FromGuest for MemReportArgs {
    fn read_from(ram: &GuestRam, gpa: u64) -> Result<Self, MemoryError> {
        Ok(MemReportArgs {
            used_kib: ram.read(gpa)?,
        })
    }
}
