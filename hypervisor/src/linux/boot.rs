//! Loading a Linux kernel and its ramdisk (linux-loader), writing what the
//! boot protocol hands it (PVH `hvm_start_info` with its memory map, or the
//! bzImage zero page with its e820 table), and the first vCPU's registers:
//! 32-bit protected mode at the PVH entry, or 64-bit long mode on a 1 GiB
//! identity map at the bzImage's 64-bit entry (`startup_64`).
use std::io::{Read, Seek};

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Cmdline, Elf, KernelLoader, PvhBootCapability, load_cmdline};
use vm_memory::{Bytes, GuestAddress, ReadVolatile};

use super::image::ImageKind;
use super::layout::*;
use crate::memory::GuestRam;

/// Errors loading a Linux kernel.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// linux-loader refused the image.
    #[error("cannot load {what} {path}")]
    Load {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: linux_loader::loader::Error,
    },
    /// A vmlinux without the PVH entry note.
    #[error(
        "kernel {0} is an ELF without a PVH entry point (build it with CONFIG_PVH=y, or use its bzImage)"
    )]
    NoPvh(String),
    /// The command line is not acceptable.
    #[error("kernel command line is not usable: {0}")]
    Cmdline(String),
    /// The ramdisk does not fit.
    #[error("ramdisk {path} ({size} bytes) does not fit in guest RAM above the kernel")]
    RamdiskTooLarge {
        /// Path.
        path: String,
        /// Size.
        size: u64,
    },
    /// A boot structure could not be written.
    #[error("cannot write the boot structures into guest RAM")]
    Memory(#[from] crate::memory::MemoryError),
    /// A boot structure could not be written (linux-loader's writer).
    #[error("cannot write the boot parameters: {0}")]
    Params(String),
    /// A vCPU register call failed.
    #[error("KVM {what} failed")]
    Kvm {
        /// Call.
        what: &'static str,
        /// Cause.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// How the first vCPU enters the kernel.
#[derive(Clone, Copy, Debug)]
pub enum Entry {
    /// PVH: 32-bit protected mode, `ebx` = start info.
    Pvh(u64),
    /// bzImage: 64-bit entry, `rsi` = zero page.
    Linux64(u64),
}

/// A kernel loaded into guest RAM.
pub struct Loaded {
    /// Where the boot vCPU starts.
    pub entry: Entry,
}

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x100_0000;

/// The RAM map both protocols describe: low RAM below the EBDA, the MP
/// table reserved, high RAM from 1 MiB to `mem_end`.
fn memory_map(mem_end: u64) -> [(u64, u64, u32); 3] {
    [
        (0, EBDA_START, E820_RAM),
        (EBDA_START, 0x400, E820_RESERVED),
        (HIMEM_START, mem_end - HIMEM_START, E820_RAM),
    ]
}

fn write_cmdline(ram: &GuestRam, cmdline: &str) -> Result<usize, BootError> {
    let mut cl = Cmdline::new(CMDLINE_MAX).map_err(|e| BootError::Cmdline(e.to_string()))?;
    cl.insert_str(cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    load_cmdline(ram.guest_memory(), GuestAddress(CMDLINE), &cl)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    Ok(cmdline.len() + 1)
}

/// Place the ramdisk at the top of RAM (below `limit`), page aligned.
fn load_ramdisk(
    ram: &GuestRam,
    bytes: &[u8],
    path: &str,
    kernel_end: u64,
    limit: u64,
) -> Result<(u64, u64), BootError> {
    let size = bytes.len() as u64;
    let top = limit.min(ram.size());
    let too_large = || BootError::RamdiskTooLarge {
        path: path.into(),
        size,
    };
    let at = top.checked_sub(size).ok_or_else(too_large)? & !0xfff;
    if at < kernel_end {
        return Err(too_large());
    }
    ram.write_slice(at, bytes)?;
    Ok((at, size))
}

/// Load `image` (of `kind`) with `ramdisk`, the command line and the boot
/// protocol's structures; `mem_end` is the RAM the guest is told it has.
pub fn load<F: Read + ReadVolatile + Seek>(
    ram: &GuestRam,
    kind: ImageKind,
    image: &mut F,
    path: &str,
    ramdisk: Option<(&[u8], &str)>,
    cmdline: &str,
    mem_end: u64,
) -> Result<Loaded, BootError> {
    let load_err = |what, path: &str| {
        let path = path.to_string();
        move |source| BootError::Load { what, path, source }
    };
    let cmdline_len = write_cmdline(ram, cmdline)?;
    match kind {
        ImageKind::PvhElf | ImageKind::Abi => {
            let r = Elf::load(
                ram.guest_memory(),
                None,
                image,
                Some(GuestAddress(HIMEM_START)),
            )
            .map_err(load_err("kernel", path))?;
            let PvhBootCapability::PvhEntryPresent(entry) = r.pvh_boot_cap else {
                return Err(BootError::NoPvh(path.into()));
            };
            let mut start = hvm_start_info {
                magic: XEN_HVM_START_MAGIC,
                version: 1,
                cmdline_paddr: CMDLINE,
                memmap_paddr: PVH_MEMMAP,
                ..Default::default()
            };
            let mut modules = Vec::new();
            if let Some((bytes, rpath)) = ramdisk {
                let (at, size) = load_ramdisk(ram, bytes, rpath, r.kernel_end, mem_end)?;
                modules.push(hvm_modlist_entry {
                    paddr: at,
                    size,
                    ..Default::default()
                });
                start.nr_modules = 1;
                start.modlist_paddr = PVH_MODLIST;
            }
            let map: Vec<hvm_memmap_table_entry> = memory_map(mem_end)
                .iter()
                .map(|&(addr, size, type_)| hvm_memmap_table_entry {
                    addr,
                    size,
                    type_,
                    reserved: 0,
                })
                .collect();
            start.memmap_entries = map.len() as u32;
            let mut params = BootParams::new(&start, GuestAddress(PVH_START_INFO));
            params.set_sections(&map, GuestAddress(PVH_MEMMAP));
            if !modules.is_empty() {
                params.set_modules(&modules, GuestAddress(PVH_MODLIST));
            }
            PvhBootConfigurator::write_bootparams::<vm_memory::GuestMemoryMmap>(
                &params,
                ram.guest_memory(),
            )
            .map_err(|e| BootError::Params(e.to_string()))?;
            Ok(Loaded {
                entry: Entry::Pvh(entry.0),
            })
        }
        ImageKind::BzImage => {
            let r = BzImage::load(
                ram.guest_memory(),
                None,
                image,
                Some(GuestAddress(HIMEM_START)),
            )
            .map_err(load_err("kernel", path))?;
            let mut bp = boot_params::default();
            if let Some(h) = r.setup_header {
                bp.hdr = h;
            }
            bp.hdr.type_of_loader = KERNEL_LOADER_OTHER;
            bp.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
            bp.hdr.header = KERNEL_HDR_MAGIC;
            bp.hdr.cmd_line_ptr = CMDLINE as u32;
            bp.hdr.cmdline_size = cmdline_len as u32;
            if bp.hdr.kernel_alignment < KERNEL_MIN_ALIGNMENT {
                bp.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
            }
            if let Some((bytes, rpath)) = ramdisk {
                let limit = u64::from(bp.hdr.initrd_addr_max).max(HIMEM_START) + 1;
                let (at, size) = load_ramdisk(ram, bytes, rpath, r.kernel_end, limit.min(mem_end))?;
                bp.hdr.ramdisk_image = at as u32;
                bp.hdr.ramdisk_size = size as u32;
            }
            for (i, (addr, size, typ)) in memory_map(mem_end).into_iter().enumerate() {
                bp.e820_table[i] = boot_e820_entry {
                    addr,
                    size,
                    r#type: typ,
                };
                bp.e820_entries = i as u8 + 1;
            }
            ram.guest_memory()
                .write_obj(bp, GuestAddress(ZERO_PAGE))
                .map_err(|e| BootError::Params(e.to_string()))?;
            write_page_tables(ram)?;
            Ok(Loaded {
                entry: Entry::Linux64(r.kernel_load.0 + 0x200),
            })
        }
    }
}

/// 1 GiB identity map with 2 MiB pages, for the 64-bit bzImage entry.
fn write_page_tables(ram: &GuestRam) -> Result<(), crate::memory::MemoryError> {
    ram.write(PML4, PDPT | 0x03)?;
    ram.write(PDPT, PD | 0x03)?;
    for i in 0..512u64 {
        ram.write(PD + i * 8, (i << 21) | 0x83)?;
    }
    Ok(())
}

fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((u64::from(base) & 0xff00_0000) << 32)
        | ((u64::from(flags) & 0xf0ff) << 40)
        | ((u64::from(limit) & 0x000f_0000) << 32)
        | ((u64::from(base) & 0x00ff_ffff) << 16)
        | (u64::from(limit) & 0x0000_ffff)
}

fn segment(entry: u64, index: u16) -> kvm_segment {
    let flags = (entry >> 40) & 0xf0ff;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: {
            let l = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
            if flags & 0x8000 != 0 {
                (l << 12) | 0xfff
            } else {
                l
            }
        },
        selector: index * 8,
        type_: (flags & 0xf) as u8,
        present: ((flags >> 7) & 1) as u8,
        dpl: ((flags >> 5) & 3) as u8,
        db: ((flags >> 14) & 1) as u8,
        s: ((flags >> 4) & 1) as u8,
        l: ((flags >> 13) & 1) as u8,
        g: ((flags >> 15) & 1) as u8,
        avl: ((flags >> 12) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Set the boot vCPU's registers for `entry`.
pub fn setup_boot_vcpu(fd: &VcpuFd, ram: &GuestRam, entry: Entry) -> Result<(), BootError> {
    let kvm = |what| move |source| BootError::Kvm { what, source };
    let long = matches!(entry, Entry::Linux64(_));
    let code = if long {
        gdt_entry(0xa09b, 0, 0xfffff)
    } else {
        gdt_entry(0xc09b, 0, 0xfffff)
    };
    let gdt = [
        0,
        code,
        gdt_entry(0xc093, 0, 0xfffff),
        gdt_entry(0x008b, 0, 0xfffff),
    ];
    for (i, e) in gdt.iter().enumerate() {
        ram.write(GDT + i as u64 * 8, *e)?;
    }
    ram.write(IDT, 0u64)?;

    let mut sregs = fd.get_sregs().map_err(kvm("get_sregs"))?;
    sregs.gdt.base = GDT;
    sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
    sregs.idt.base = IDT;
    sregs.idt.limit = 7;
    sregs.cs = segment(gdt[1], 1);
    let data = segment(gdt[2], 2);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = segment(gdt[3], 3);
    set_mode(&mut sregs, long);
    fd.set_sregs(&sregs).map_err(kvm("set_sregs"))?;

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    fd.set_fpu(&fpu).map_err(kvm("set_fpu"))?;

    let regs = match entry {
        Entry::Pvh(ip) => kvm_regs {
            rflags: 2,
            rip: ip,
            rbx: PVH_START_INFO,
            ..Default::default()
        },
        Entry::Linux64(ip) => kvm_regs {
            rflags: 2,
            rip: ip,
            rsp: BOOT_STACK,
            rbp: BOOT_STACK,
            rsi: ZERO_PAGE,
            ..Default::default()
        },
    };
    fd.set_regs(&regs).map_err(kvm("set_regs"))
}

fn set_mode(sregs: &mut kvm_sregs, long: bool) {
    const CR0_PE: u64 = 1;
    const CR0_ET: u64 = 1 << 4;
    const CR0_PG: u64 = 1 << 31;
    const CR4_PAE: u64 = 1 << 5;
    const EFER_LME: u64 = 1 << 8;
    const EFER_LMA: u64 = 1 << 10;
    if long {
        sregs.cr3 = PML4;
        sregs.cr4 |= CR4_PAE;
        sregs.cr0 |= CR0_PE | CR0_ET | CR0_PG;
        sregs.efer |= EFER_LME | EFER_LMA;
    } else {
        sregs.cr0 = CR0_PE | CR0_ET;
        sregs.cr4 = 0;
        sregs.efer = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_as_firecrackers() {
        assert_eq!(gdt_entry(0xa09b, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        let cs = segment(gdt_entry(0xa09b, 0, 0xfffff), 1);
        assert_eq!(
            (cs.l, cs.db, cs.g, cs.type_, cs.limit),
            (1, 0, 1, 0xb, u32::MAX)
        );
    }

    #[test]
    fn memory_map_skips_the_hole() {
        let m = memory_map(128 << 20);
        assert_eq!(m[0], (0, EBDA_START, E820_RAM));
        assert_eq!(m[2].0 + m[2].1, 128 << 20);
    }
}
