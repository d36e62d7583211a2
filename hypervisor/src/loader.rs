//! Loading a kernel image (ELF64 built for our ABI) into guest RAM.
use std::io::Cursor;

use guest_abi::layout;
use linux_loader::loader::{KernelLoader, elf::Elf};
use vm_memory::GuestAddress;

use crate::memory::GuestRam;

/// Largest kernel image or ramdisk accepted.
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

/// A kernel image file, open for loading: telling its kind
/// ([`crate::linux::image::ImageKind::of`]) reads only its headers, and
/// linux-loader reads only the parts it loads, straight into guest RAM (an
/// unstripped `vmlinux` is 17 MB, of which about 10 MB load). Read with
/// `pread`, not mapped: a file cut short meanwhile fails the load with an
/// error instead of a SIGBUS.
#[derive(Debug)]
pub struct ImageFile {
    file: std::fs::File,
    path: String,
    size: u64,
}

impl ImageFile {
    /// Open `path`, refusing an image over [`MAX_IMAGE_BYTES`].
    pub fn open(path: &str) -> Result<ImageFile, LoadError> {
        let read_err = |source| LoadError::Read {
            path: path.into(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        if size > MAX_IMAGE_BYTES as u64 {
            return Err(LoadError::TooLarge {
                path: path.into(),
                size,
            });
        }
        Ok(ImageFile {
            file,
            path: path.into(),
            size,
        })
    }

    /// The open file, for a loader that reads and seeks.
    pub fn file_mut(&mut self) -> &mut std::fs::File {
        &mut self.file
    }

    /// The whole image (an ABI kernel, loaded from bytes).
    pub fn read_all(&self) -> Result<Vec<u8>, LoadError> {
        let mut buf = vec![0u8; self.size as usize];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, 0).map_err(|source| {
            LoadError::Read {
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(buf)
    }
}

impl crate::linux::image::ImageBytes for ImageFile {
    fn bytes_at(&self, offset: u64, len: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        if offset.checked_add(len as u64)? > self.size {
            return None;
        }
        let mut buf = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, offset).ok()?;
        Some(std::borrow::Cow::Owned(buf))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::image::{ImageBytes, ImageKind};

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel");
        std::fs::write(&path, bytes).unwrap();
        (dir, path.display().to_string())
    }

    #[test]
    fn an_image_file_reads_like_its_bytes() {
        let elf = crate::minios::elf();
        let (_dir, path) = file_with(elf);
        let file = ImageFile::open(&path).unwrap();
        assert_eq!(ImageKind::of(&file), ImageKind::of(elf));
        assert_eq!(file.read_all().unwrap(), elf);
        assert_eq!(file.bytes_at(1, 3).as_deref(), Some(&elf[1..4]));
        let len = elf.len() as u64;
        assert!(file.bytes_at(len - 1, 2).is_none(), "past the end");
        assert!(file.bytes_at(u64::MAX, 2).is_none());
    }

    #[test]
    fn a_vmlinux_file_is_told_from_its_note() {
        let (_dir, path) = file_with(&crate::linux::image::tests::pvh_elf());
        assert_eq!(
            ImageKind::of(&ImageFile::open(&path).unwrap()),
            ImageKind::PvhElf
        );
    }

    #[test]
    fn a_bzimage_file_is_told_from_its_header() {
        let (_dir, path) = file_with(&crate::linux::image::tests::bzimage_header());
        assert_eq!(
            ImageKind::of(&ImageFile::open(&path).unwrap()),
            ImageKind::BzImage
        );
    }

    #[test]
    fn hostile_or_short_files_are_refused_cleanly() {
        // Program headers claimed past the end of the file.
        let mut b = crate::minios::elf()[..64].to_vec();
        b[32..40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let (_dir, path) = file_with(&b);
        assert_eq!(
            ImageKind::of(&ImageFile::open(&path).unwrap()),
            ImageKind::Abi
        );
        // Larger than the limit: refused before anything is read.
        let (_dir2, big) = file_with(b"");
        std::fs::File::options()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(MAX_IMAGE_BYTES as u64 + 1)
            .unwrap();
        assert!(matches!(
            ImageFile::open(&big),
            Err(LoadError::TooLarge { .. })
        ));
        assert!(matches!(
            ImageFile::open("/nonexistent/kernel"),
            Err(LoadError::Read { .. })
        ));
    }
}
