//! The start-info page the VMM fills before the first vCPU runs.
use std::time::{SystemTime, UNIX_EPOCH};

use guest_abi::{StartInfo, layout};

use super::DomainSpec;
use crate::memory::GuestRam;

/// Fill the start-info page.
pub fn write_start_info(
    ram: &GuestRam,
    spec: &DomainSpec,
    tsc_khz: u64,
    kernel_end: u64,
) -> Result<(), crate::memory::MemoryError> {
    use core::mem::offset_of;
    let base = layout::START_INFO;
    let at = |off: usize| base + off as u64;
    ram.write(
        at(offset_of!(StartInfo, magic)),
        guest_abi::START_INFO_MAGIC,
    )?;
    ram.write(
        at(offset_of!(StartInfo, abi_version)),
        guest_abi::ABI_VERSION,
    )?;
    ram.write(at(offset_of!(StartInfo, domid)), spec.domid)?;
    ram.write(at(offset_of!(StartInfo, nr_vcpus)), spec.vcpus)?;
    ram.write(at(offset_of!(StartInfo, mem_bytes)), spec.memory_mib << 20)?;
    ram.write(
        at(offset_of!(StartInfo, max_mem_bytes)),
        spec.maxmem_mib << 20,
    )?;
    ram.write(at(offset_of!(StartInfo, tsc_khz)), tsc_khz)?;
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    ram.write(at(offset_of!(StartInfo, boot_wallclock_ns)), wall)?;
    ram.write(at(offset_of!(StartInfo, console_gpa)), layout::CONSOLE)?;
    ram.write(at(offset_of!(StartInfo, kernel_end)), kernel_end)?;
    let mut name = [0u8; guest_abi::NAME_LEN];
    let n = spec.name.len().min(guest_abi::NAME_LEN - 1);
    name[..n].copy_from_slice(&spec.name.as_bytes()[..n]);
    ram.write_slice(at(offset_of!(StartInfo, name)), &name)?;
    let mut cmdline = vec![0u8; guest_abi::CMDLINE_LEN];
    let n = spec.cmdline.len().min(guest_abi::CMDLINE_LEN - 1);
    cmdline[..n].copy_from_slice(&spec.cmdline.as_bytes()[..n]);
    ram.write_slice(at(offset_of!(StartInfo, cmdline)), &cmdline)?;
    ram.write(
        at(offset_of!(StartInfo, mem_target_kib)),
        spec.memory_mib * 1024,
    )?;
    Ok(())
}
