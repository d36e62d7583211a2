//! Telling kernel images apart: our ABI's ELF (minios), a Linux `bzImage`
//! (the x86 boot protocol's `HdrS` header), or a Linux `vmlinux` ELF with a
//! PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`).

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

impl ImageKind {
    /// What `bytes` is. Anything that is neither bzImage nor PVH ELF is left
    /// to the ABI loader (which refuses what it cannot load).
    pub fn of(bytes: &[u8]) -> ImageKind {
        if bytes.get(0x202..0x206) == Some(b"HdrS")
            && bytes.get(0x1fe..0x200) == Some(&[0x55, 0xaa])
        {
            return ImageKind::BzImage;
        }
        if has_pvh_note(bytes) {
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
fn has_pvh_note(b: &[u8]) -> bool {
    if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(b, 32), u16_at(b, 54), u16_at(b, 56))
    else {
        return false;
    };
    for i in 0..usize::from(phnum.min(256)) {
        let Some(ph) = usize::try_from(phoff)
            .ok()
            .and_then(|p| p.checked_add(i * usize::from(phentsize)))
        else {
            return false;
        };
        if u32_at(b, ph) != Some(PT_NOTE) {
            continue;
        }
        let (Some(off), Some(size)) = (
            ph.checked_add(8).and_then(|a| u64_at(b, a)),
            ph.checked_add(32).and_then(|a| u64_at(b, a)),
        ) else {
            continue;
        };
        let (off, size) = (off as usize, size as usize);
        let Some(notes) = off.checked_add(size).and_then(|end| b.get(off..end)) else {
            continue;
        };
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
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minios_is_our_abi() {
        assert_eq!(ImageKind::of(crate::minios::elf()), ImageKind::Abi);
    }

    #[test]
    fn bzimage_header_is_recognised() {
        let mut b = vec![0u8; 0x400];
        b[0x1fe] = 0x55;
        b[0x1ff] = 0xaa;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(ImageKind::of(&b), ImageKind::BzImage);
    }

    #[test]
    fn hostile_headers_do_not_panic() {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        b[54..56].copy_from_slice(&u16::MAX.to_le_bytes());
        b[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(ImageKind::of(&b), ImageKind::Abi);
        assert_eq!(ImageKind::of(&[]), ImageKind::Abi);
    }
}
