//! The Linux machine: a minimal PC in Firecracker's mould for booting a
//! real Linux kernel (PVH `vmlinux` or `bzImage`) next to our own minios.
//!
//! KVM's in-kernel irqchip (PIC, IOAPIC, local APICs) and PIT; an MP table
//! for the vCPUs; kvm-clock (KVM's paravirtual CPUID leaves are passed
//! through); a 16550 UART on COM1 as the domain console; an i8042 for reset
//! and Ctrl-Alt-Del; virtio-mmio block and network devices announced on the
//! command line (`virtio_mmio.device=`). The domain's state machine, pause,
//! destroy, console history and figures are the same [`Domain`] minios uses.
pub mod boot;
pub mod cpuid;
pub mod i8042;
pub mod image;
pub mod kvm_stats;
pub mod layout;
pub mod mptable;
pub mod serial;
pub mod vcpu;
pub mod virtio;

use std::sync::{Arc, Weak};

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, kvm_pit_config};
use kvm_ioctls::{Kvm, VcpuFd};

use self::i8042::I8042;
use self::image::ImageKind;
use self::kvm_stats::VcpuStats;
use self::serial::{IrqLine, Uart};
use crate::builder::{self, BuildError, Vmm};
use crate::control::proto::{DeviceClass, Reason};
use crate::domain::{Domain, DomainError, DomainSpec};
use crate::jail;
use crate::log::log;
use crate::memory::GuestRam;

/// Why a Linux domain cannot be saved or migrated (yet).
pub const NO_SAVE: &str = "save, restore and migration of Linux domains are not supported yet (the virtio and interrupt controller state is not in the image format)";

/// What a port write asks of the vCPU loop.
pub enum PioAction {
    /// Go on.
    None,
    /// The guest reset the machine.
    Reset,
}

/// The devices of a Linux domain (its [`Domain`] holds it).
pub struct Machine {
    /// What was booted.
    pub kind: ImageKind,
    uart: Uart,
    i8042: I8042,
    stats: Vec<Option<VcpuStats>>,
    virtio: Vec<Arc<virtio::Mmio>>,
}

impl Machine {
    /// A guest `in` from `port`.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        data.fill(0xff);
        match port {
            p if (layout::COM1..layout::COM1 + 8).contains(&p) => {
                data[0] = self.uart.read((p - layout::COM1) as u8);
            }
            i8042::DATA | i8042::COMMAND => data[0] = self.i8042.read(port),
            _ => {}
        }
    }

    /// A guest `out` to `port`.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> PioAction {
        let Some(&value) = data.first() else {
            return PioAction::None;
        };
        match port {
            p if (layout::COM1..layout::COM1 + 8).contains(&p) => {
                self.uart.write((p - layout::COM1) as u8, value);
            }
            i8042::DATA | i8042::COMMAND
                if self.i8042.write(port, value) == i8042::Action::Reset =>
            {
                return PioAction::Reset;
            }
            _ => {}
        }
        PioAction::None
    }

    fn device_at(&self, addr: u64) -> Option<(&virtio::Mmio, u64)> {
        let i = addr.checked_sub(layout::MMIO_BASE)? / layout::MMIO_SIZE;
        let dev = self.virtio.get(usize::try_from(i).ok()?)?;
        Some((dev, addr - dev.base))
    }

    /// A guest read of MMIO at `addr` (outside every device: zeros).
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.device_at(addr) {
            Some((dev, offset)) => dev.read(offset, data),
            None => data.fill(0),
        }
    }

    /// A guest write of MMIO at `addr` (outside every device: ignored).
    pub fn mmio_write(&self, _dom: &Domain, addr: u64, data: &[u8]) {
        if let Some((dev, offset)) = self.device_at(addr) {
            dev.write(offset, data);
        }
    }

    /// Figures of every virtio block device.
    pub fn vbd_info(&self) -> Vec<crate::control::proto::VbdInfo> {
        self.virtio.iter().filter_map(|d| d.vbd_info()).collect()
    }

    /// Figures of every virtio network device.
    pub fn vif_info(&self) -> Vec<crate::control::proto::VifInfo> {
        self.virtio.iter().filter_map(|d| d.vif_info()).collect()
    }

    /// Console input for the UART; returns the bytes taken (0: FIFO full).
    pub fn console_input(&self, data: &[u8]) -> usize {
        self.uart.input(data)
    }

    /// The host asks for a clean shutdown or reboot: Linux has no channel
    /// for the reason, so both are Ctrl-Alt-Del (what the guest's init does
    /// with it decides; see `i8042`). A guest that answers with a reset ends
    /// with reason reboot here; xend, which knows what it asked for, turns a
    /// reset answering a poweroff into a poweroff.
    pub fn request_shutdown(&self, _reason: Reason) -> Result<(), DomainError> {
        self.i8042
            .ctrl_alt_del()
            .map_err(|e| DomainError::Invalid(format!("cannot send Ctrl-Alt-Del: {e}")))
    }

    /// Whether vCPU `index` is halted (KVM's statistics), if known.
    pub fn vcpu_blocking(&self, index: usize) -> Option<bool> {
        self.stats.get(index)?.as_ref()?.blocking()
    }

    /// Halts of vCPU `index` so far, if known.
    pub fn vcpu_halts(&self, index: usize) -> Option<u64> {
        self.stats.get(index)?.as_ref()?.halt_exits()
    }
}

/// Errors specific to building a Linux domain.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// The spec does not fit this machine.
    #[error("invalid Linux domain: {0}")]
    Invalid(String),
    /// Loading the kernel failed.
    #[error(transparent)]
    Boot(#[from] boot::BootError),
}

impl From<LinuxError> for BuildError {
    fn from(e: LinuxError) -> BuildError {
        BuildError::Linux(Box::new(e))
    }
}

/// The command line the guest gets: the console on the UART unless the
/// config names one, the VMM's devices, then the config's own line.
fn full_cmdline(user: &str, devices: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !user.split_whitespace().any(|w| w.starts_with("console=")) {
        parts.push("console=ttyS0".into());
    }
    parts.push("reboot=k".into());
    parts.push("pci=off".into());
    parts.extend(devices.iter().cloned());
    if !user.trim().is_empty() {
        parts.push(user.trim().to_string());
    }
    parts.join(" ")
}

fn set_lint(fd: &VcpuFd) -> Result<(), kvm_ioctls::Error> {
    const LVT_LINT0: usize = 0x350;
    const LVT_LINT1: usize = 0x360;
    const EXTINT: u32 = 7 << 8;
    const NMI: u32 = 4 << 8;
    let mut lapic = fd.get_lapic()?;
    let mut set = |at: usize, mode: u32| {
        let raw: [u8; 4] = std::array::from_fn(|i| lapic.regs[at + i] as u8);
        let v = (u32::from_le_bytes(raw) & !0x700) | mode;
        for (i, b) in v.to_le_bytes().into_iter().enumerate() {
            lapic.regs[at + i] = b as _;
        }
    };
    set(LVT_LINT0, EXTINT);
    set(LVT_LINT1, NMI);
    fd.set_lapic(&lapic)
}

/// AMD's hardware configuration MSR and its TscFreqSel bit (24): the TSC
/// counts at the P0 frequency, as it does on every CPU with an invariant
/// TSC. An AMD guest with a constant TSC checks the bit and otherwise logs
/// "[Firmware Bug]: TSC doesn't count with P0 frequency!". KVM takes the
/// bit from the VMM since Linux 6.6; an older host refuses it, which only
/// leaves the message.
const MSR_K7_HWCR: u32 = 0xc001_0015;
const HWCR_TSC_FREQ_SEL: u64 = 1 << 24;

/// Whether `cpuid` (leaf 0's vendor) is an AMD (or Hygon) CPU's.
fn is_amd(cpuid: &kvm_bindings::CpuId) -> bool {
    cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0)
        .is_some_and(|e| matches!(&e.ebx.to_le_bytes(), b"Auth" | b"Hygo"))
}

/// Set HWCR.TscFreqSel on an AMD vCPU (see [`MSR_K7_HWCR`]); advisory.
fn set_tsc_freq_sel(fd: &VcpuFd) {
    let entry = kvm_bindings::kvm_msr_entry {
        index: MSR_K7_HWCR,
        data: HWCR_TSC_FREQ_SEL,
        ..Default::default()
    };
    if let Ok(msrs) = kvm_bindings::Msrs::from_entries(&[entry]) {
        let _ = fd.set_msrs(&msrs);
    }
}

/// Open every boot device (disk files and locks, TAPs) before the domain
/// exists, so a refused disk fails the start with its name.
fn open_devices(
    spec: &DomainSpec,
    devices: &[(DeviceClass, String)],
) -> Result<Vec<virtio::Backend>, BuildError> {
    use crate::devices::DeviceError;
    use crate::devices::config::{DiskConfig, VifConfig};
    let mut out = Vec::new();
    let (mut vbds, mut vifs) = (0u32, 0u32);
    for (kind, config) in devices {
        match kind {
            DeviceClass::Vbd => {
                let cfg = DiskConfig::parse(config).map_err(DeviceError::from)?;
                if cfg.direct {
                    return Err(LinuxError::Invalid(format!(
                        "disk {}: direct is not supported for Linux domains yet",
                        cfg.uname
                    ))
                    .into());
                }
                let disk = crate::devices::block::Disk::open(&cfg).map_err(DeviceError::from)?;
                log(&format!(
                    "virtio-blk {vbds} ({}): {} mode {}, {} sectors",
                    cfg.dev,
                    cfg.uname,
                    cfg.mode.as_str(),
                    disk.sectors()
                ));
                out.push(virtio::Backend::Blk(virtio::blk::Blk::new(cfg, vbds, disk)));
                vbds += 1;
            }
            DeviceClass::Vif => {
                let cfg = VifConfig::parse(config).map_err(DeviceError::from)?;
                let net =
                    virtio::net::Net::new(cfg, vifs, spec.domid).map_err(DeviceError::from)?;
                log(&format!(
                    "virtio-net {vifs}: {} mac {} bridge {}",
                    net.ifname(),
                    crate::devices::config::format_mac(&net.config.mac),
                    net.config.bridge.as_deref().unwrap_or("(none)")
                ));
                out.push(virtio::Backend::Net(net));
                vifs += 1;
            }
        }
    }
    Ok(out)
}

/// Build a Linux domain from `image` (with `ramdisk`), attach `devices`,
/// and start its vCPUs (parked in the paused state when `paused`).
pub fn start<F: std::io::Read + vm_memory::ReadVolatile + std::io::Seek>(
    spec: DomainSpec,
    kind: ImageKind,
    image: &mut F,
    ramdisk: Option<(&[u8], &str)>,
    devices: &[(DeviceClass, String)],
    paused: bool,
) -> Result<Vmm, BuildError> {
    spec.validate()?;
    if spec.maxmem_mib << 20 > layout::MAX_RAM {
        return Err(LinuxError::Invalid(format!(
            "a Linux domain may have at most {} MiB",
            layout::MAX_RAM >> 20
        ))
        .into());
    }
    if spec.vcpus > mptable::MAX_CPUS {
        return Err(LinuxError::Invalid(format!(
            "a Linux domain may have at most {} vCPUs",
            mptable::MAX_CPUS
        ))
        .into());
    }
    if devices.len() > layout::VIRTIO_IRQS.len() {
        return Err(LinuxError::Invalid(format!(
            "a Linux domain may have at most {} devices",
            layout::VIRTIO_IRQS.len()
        ))
        .into());
    }
    let backends = open_devices(&spec, devices)?;
    crate::kick::install_handler();
    let kvm_err = |what| move |source| BuildError::Kvm { what, source };
    let kvm = Kvm::new().map_err(kvm_err("open /dev/kvm"))?;
    jail::remember_kvm(&kvm);
    let vm = kvm.create_vm().map_err(kvm_err("create_vm"))?;
    vm.set_tss_address(layout::KVM_TSS as usize)
        .map_err(kvm_err("set_tss_address"))?;
    vm.create_irq_chip().map_err(kvm_err("create_irq_chip"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(kvm_err("create_pit2"))?;

    // RAM: memory at boot; maxmem is the toolstack's ceiling only (there is
    // no balloon driver for Linux guests yet).
    let size = (spec.memory_mib << 20).next_multiple_of(2 << 20);
    let ram = GuestRam::new(size)?;
    ram.advise_huge_pages();
    // SAFETY: `ram` moves into the Domain, which the vCPU threads keep alive
    // for as long as the VM can run, and the VM fd is dropped before or with
    // it (struct Vmm).
    unsafe { ram.map_boot_slot(&vm) }.map_err(kvm_err("set_user_memory_region"))?;

    mptable::write(&ram, spec.vcpus)?;
    let announce: Vec<String> = (0..backends.len())
        .map(|i| {
            format!(
                "virtio_mmio.device=4K@{:#x}:{}",
                layout::MMIO_BASE + i as u64 * layout::MMIO_SIZE,
                layout::VIRTIO_IRQS[i]
            )
        })
        .collect();
    let cmdline = full_cmdline(&spec.cmdline, &announce);
    let loaded = boot::load(&ram, kind, image, &spec.kernel, ramdisk, &cmdline, size)
        .map_err(LinuxError::from)?;

    let base_cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("get_supported_cpuid"))?;
    let mut fds = Vec::with_capacity(spec.vcpus as usize);
    let mut stats = Vec::with_capacity(spec.vcpus as usize);
    for i in 0..spec.vcpus {
        let fd = vm
            .create_vcpu(u64::from(i))
            .map_err(kvm_err("create_vcpu"))?;
        let mut cpuid = base_cpuid.clone();
        cpuid::filter(&mut cpuid, i, spec.vcpus);
        fd.set_cpuid2(&cpuid).map_err(kvm_err("set_cpuid2"))?;
        set_lint(&fd).map_err(kvm_err("set_lapic"))?;
        if is_amd(&cpuid) {
            set_tsc_freq_sel(&fd);
        }
        if i == 0 {
            boot::setup_boot_vcpu(&fd, &ram, loaded.entry).map_err(LinuxError::from)?;
        }
        stats.push(VcpuStats::open(&fd));
        fds.push(fd);
    }

    let vm = Arc::new(vm);
    let domain = Domain::new(spec, ram, Arc::clone(&vm));
    let weak: Weak<Domain> = Arc::downgrade(&domain);
    let mut virtio = Vec::new();
    for (i, backend) in backends.into_iter().enumerate() {
        let irq = layout::VIRTIO_IRQS[i];
        let dev = Arc::new(virtio::Mmio::new(
            layout::MMIO_BASE + i as u64 * layout::MMIO_SIZE,
            irq,
            backend,
            weak.clone(),
        ));
        if let virtio::Backend::Net(n) = &dev.backend {
            n.start_rx(Arc::downgrade(&dev), weak.clone())
                .map_err(crate::devices::DeviceError::from)?;
        }
        virtio.push(dev);
    }
    let machine = Arc::new(Machine {
        kind,
        uart: Uart::new(IrqLine::new(Arc::clone(&vm), layout::COM1_IRQ), weak),
        i8042: I8042::new(IrqLine::new(Arc::clone(&vm), layout::I8042_IRQ)),
        stats,
        virtio,
    });
    let _ = domain.linux.set(Arc::clone(&machine));
    if paused {
        let _ = domain.pause();
    }
    builder::spawn_console_writer(&domain)?;
    let m = Arc::clone(&machine);
    let threads = builder::spawn_vcpus(&domain, fds, move |d, fd, i| {
        vcpu::run(d, Arc::clone(&m), fd, i)
    })?;
    log(&format!(
        "domain {} (id {}) started: Linux {} {}, {} MiB, {} vCPUs, cmdline '{}'",
        domain.spec.name,
        domain.spec.domid,
        kind.as_str(),
        domain.spec.kernel,
        domain.spec.memory_mib,
        domain.spec.vcpus,
        cmdline
    ));
    Ok(Vmm::assemble(domain, threads, vm, kvm))
}

#[cfg(test)]
mod tests {
    use super::full_cmdline;

    #[test]
    fn console_defaults_to_the_uart_unless_named() {
        assert_eq!(
            full_cmdline(
                "root=/dev/vda ro",
                &["virtio_mmio.device=4K@0xd0000000:5".into()]
            ),
            "console=ttyS0 reboot=k pci=off virtio_mmio.device=4K@0xd0000000:5 root=/dev/vda ro"
        );
        assert!(!full_cmdline("console=hvc0", &[]).contains("ttyS0"));
    }
}
