//! Telling kernel images apart: our ABI's ELF (minios), a Linux `bzImage`
//! (the x86 boot protocol's `HdrS` header), or a Linux `vmlinux` ELF with a
//! PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`).
use std::borrow::Cow;

/// The kind of a kernel image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// An ELF64 built for our guest ABI (minios).
    Abi,
    /// A Linux bzImage.
    BzImage,
    /// An uncompressed Linux ELF with a PVH entry point.
    PvhElf,
}

/// Random access to an image's bytes, so telling its kind reads only the
/// headers (an unstripped `vmlinux` is 17 MB, mostly debug information).
pub trait ImageBytes {
    /// `len` bytes at `offset`, or `None` where the image is shorter.
    fn bytes_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>>;
}

impl ImageBytes for [u8] {
    fn bytes_at(&self, offset: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let start = usize::try_from(offset).ok()?;
        self.get(start..start.checked_add(len)?).map(Cow::Borrowed)
    }
}

/// The most bytes read for a note segment (the PVH note sits in a few
/// hundred; a larger one is not looked into).
const MAX_NOTES: u64 = 64 << 10;

impl ImageKind {
    /// What `image` is. Anything that is neither bzImage nor PVH ELF is left
    /// to the ABI loader (which refuses what it cannot load).
    pub fn of(image: &(impl ImageBytes + ?Sized)) -> ImageKind {
        if image
            .bytes_at(0x1fe, 8)
            .is_some_and(|h| h[..2] == [0x55, 0xaa] && &h[4..8] == b"HdrS")
        {
            return ImageKind::BzImage;
        }
        if has_pvh_note(image) {
            return ImageKind::PvhElf;
        }
        ImageKind::Abi
    }

    /// True for the two Linux kinds.
    pub fn is_linux(self) -> bool {
        self != ImageKind::Abi
    }

    /// A short name for logs and `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Abi => "elf",
            ImageKind::BzImage => "bzImage",
            ImageKind::PvhElf => "vmlinux (PVH)",
        }
    }
}

const PT_NOTE: u32 = 4;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// ELF64 header and program header sizes.
const EHDR: usize = 64;
const PHDR: usize = 56;

fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes_at(b, at)?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes_at(b, at)?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes_at(b, at)?))
}

/// Whether an ELF64 image has a `Xen` note of type PHYS32_ENTRY in a
/// PT_NOTE segment. Every offset is bounds-checked: the image is untrusted.
fn has_pvh_note(image: &(impl ImageBytes + ?Sized)) -> bool {
    let Some(ehdr) = image.bytes_at(0, EHDR) else {
        return false;
    };
    if ehdr[..4] != *b"\x7fELF" || ehdr[4] != 2 {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (u64_at(&ehdr, 32), u16_at(&ehdr, 54), u16_at(&ehdr, 56))
    else {
        return false;
    };
    let (phentsize, phnum) = (usize::from(phentsize), usize::from(phnum.min(256)));
    // An ELF64 program header is 56 bytes; anything far off is not a kernel
    // (and bounds what is read).
    if !(PHDR..=256).contains(&phentsize) {
        return false;
    }
    let Some(phdrs) = image.bytes_at(phoff, phentsize * phnum) else {
        return false;
    };
    (0..phnum).any(|i| {
        let ph = i * phentsize;
        if u32_at(&phdrs, ph) != Some(PT_NOTE) {
            return false;
        }
        let (Some(off), Some(size)) = (u64_at(&phdrs, ph + 8), u64_at(&phdrs, ph + 32)) else {
            return false;
        };
        if size > MAX_NOTES {
            return false;
        }
        image
            .bytes_at(off, size as usize)
            .is_some_and(|notes| notes_have_pvh_entry(&notes))
    })
}

/// Whether a note segment holds Xen's `PHYS32_ENTRY` note.
fn notes_have_pvh_entry(notes: &[u8]) -> bool {
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let (Some(namesz), Some(descsz), Some(kind)) = (
            u32_at(notes, at),
            u32_at(notes, at + 4),
            u32_at(notes, at + 8),
        ) else {
            break;
        };
        let name_at = at + 12;
        let name_end = name_at.saturating_add(namesz as usize);
        if notes
            .get(name_at..name_end)
            .is_some_and(|n| n.starts_with(b"Xen"))
            && kind == XEN_ELFNOTE_PHYS32_ENTRY
        {
            return true;
        }
        let desc_at = name_at.saturating_add((namesz as usize).next_multiple_of(4));
        at = desc_at.saturating_add((descsz as usize).next_multiple_of(4));
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn minios_is_our_abi() {
        assert_eq!(ImageKind::of(crate::minios::elf()), ImageKind::Abi);
    }

    /// The first KiB of a bzImage: the boot sector's signature and the
    /// setup header's magic, nothing else.
    pub(crate) fn bzimage_header() -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x1fe] = 0x55;
        b[0x1ff] = 0xaa;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b
    }

    #[test]
    fn bzimage_header_is_recognised() {
        let b = bzimage_header();
        assert_eq!(ImageKind::of(b.as_slice()), ImageKind::BzImage);
    }

    /// An ELF64 header, one PT_NOTE program header and Xen's
    /// PHYS32_ENTRY note (entry 0x1000000).
    pub(crate) fn pvh_elf() -> Vec<u8> {
        let mut b = vec![0u8; 140];
        b[..5].copy_from_slice(b"\x7fELF\x02");
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        b[72..80].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        b[96..104].copy_from_slice(&20u64.to_le_bytes()); // p_filesz
        let note = [4u32, 4, XEN_ELFNOTE_PHYS32_ENTRY];
        for (i, w) in note.iter().enumerate() {
            b[120 + 4 * i..124 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        b[132..136].copy_from_slice(b"Xen\0");
        b[136..140].copy_from_slice(&0x100_0000u32.to_le_bytes());
        b
    }

    #[test]
    fn a_pvh_note_makes_a_vmlinux() {
        let b = pvh_elf();
        assert_eq!(ImageKind::of(b.as_slice()), ImageKind::PvhElf);
        // Another note type, or the note cut off: not PVH.
        let mut other = b.clone();
        other[128..132].copy_from_slice(&17u32.to_le_bytes());
        assert_eq!(ImageKind::of(other.as_slice()), ImageKind::Abi);
        assert_eq!(ImageKind::of(&b[..130]), ImageKind::Abi);
    }

    #[test]
    fn hostile_headers_do_not_panic() {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        b[54..56].copy_from_slice(&u16::MAX.to_le_bytes());
        b[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(ImageKind::of(b.as_slice()), ImageKind::Abi);
        assert_eq!(ImageKind::of([].as_slice()), ImageKind::Abi);
    }
}
