//! Loading a kernel image (ELF64 built for our ABI) into guest RAM.
use std::io::Cursor;

use guest_abi::layout;
use linux_loader::loader::{KernelLoader, elf::Elf};
use vm_memory::GuestAddress;

use crate::memory::GuestRam;

/// Largest kernel image accepted (the image is read into memory first).
pub const MAX_IMAGE_BYTES: usize = 64 << 20;

/// Errors loading a kernel.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read kernel image {path}")]
    Read {
        /// Path given.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The image is larger than [`MAX_IMAGE_BYTES`].
    #[error("kernel image {path} is {size} bytes; the limit is {MAX_IMAGE_BYTES}")]
    TooLarge {
        /// Path given.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The image is not an ELF64 kernel that fits our layout.
    #[error(
        "kernel image {path} is not an x86-64 ELF kernel for this ABI (segments at or above {:#x}, inside guest RAM)",
        layout::KERNEL_BASE
    )]
    Elf {
        /// Path given.
        path: String,
        /// Cause.
        #[source]
        source: linux_loader::loader::Error,
    },
}

/// Where the image went.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// Entry point (guest-physical = virtual, identity mapped).
    pub entry: u64,
    /// First address above the image.
    pub end: u64,
}

/// Read an image file, refusing oversized ones before reading them.
pub fn read_image(path: &str) -> Result<Vec<u8>, LoadError> {
    let meta = std::fs::metadata(path).map_err(|source| LoadError::Read {
        path: path.into(),
        source,
    })?;
    if meta.len() > MAX_IMAGE_BYTES as u64 {
        return Err(LoadError::TooLarge {
            path: path.into(),
            size: meta.len(),
        });
    }
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.into(),
        source,
    })
}

/// Load the ELF image `bytes` (named `path` in errors) into `ram`.
pub fn load_elf(ram: &GuestRam, bytes: &[u8], path: &str) -> Result<Loaded, LoadError> {
    let mut image = Cursor::new(bytes);
    let result = Elf::load(
        ram.guest_memory(),
        None,
        &mut image,
        Some(GuestAddress(layout::KERNEL_BASE)),
    )
    .map_err(|source| LoadError::Elf {
        path: path.into(),
        source,
    })?;
    let entry = elf_entry(bytes).unwrap_or(result.kernel_load.0);
    Ok(Loaded {
        entry,
        end: result.kernel_end,
    })
}

/// `e_entry` of an ELF64 header (already validated by the loader).
fn elf_entry(bytes: &[u8]) -> Option<u64> {
    let raw = bytes.get(24..32)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}
