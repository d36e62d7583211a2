//! Boot order: KVM VM, guest RAM, GDT and page tables, kernel, start-info,
//! vCPUs, then the console threads and one thread per vCPU.
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VmFd};

use crate::arch;
use crate::domain::{Domain, DomainSpec, SpecError, write_start_info};
use crate::jail::{self, ThreadKind};
use crate::kick;
use crate::loader::{self, LoadError};
use crate::log::log;
use crate::memory::{GuestRam, MemoryError};
use crate::vcpu;

pub use crate::domain::spec::MAX_MEMORY_MIB;
/// Console output is picked up at least this often while a vCPU runs.
pub const CONSOLE_POLL: Duration = Duration::from_millis(10);

/// Errors building a domain.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is unusable.
    #[error("invalid domain: {0}")]
    Invalid(#[from] SpecError),
    /// A KVM call failed.
    #[error("KVM {what} failed")]
    Kvm {
        /// Which call.
        what: &'static str,
        /// Cause.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be set up.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The kernel could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A vCPU could not be set up.
    #[error(transparent)]
    Arch(#[from] arch::ArchError),
    /// A thread could not be started.
    #[error("cannot start a thread")]
    Thread(#[source] std::io::Error),
    /// The image or migration stream could not be restored.
    #[error("cannot restore the domain")]
    Restore(#[from] Box<crate::snapshot::SnapshotError>),
    /// A device given at boot could not be attached.
    #[error(transparent)]
    Device(#[from] crate::devices::DeviceError),
    /// A Linux kernel could not be set up.
    #[error(transparent)]
    Linux(Box<crate::linux::LinuxError>),
}

/// A running domain and what keeps it alive.
pub struct Vmm {
    /// The shared domain state.
    pub domain: Arc<Domain>,
    vcpu_threads: Vec<JoinHandle<()>>,
    _vm: Arc<VmFd>,
    _kvm: Kvm,
}

impl Vmm {
    /// A domain with its vCPU threads started (for the Linux machine).
    pub(crate) fn assemble(
        domain: Arc<Domain>,
        vcpu_threads: Vec<JoinHandle<()>>,
        vm: Arc<VmFd>,
        kvm: Kvm,
    ) -> Vmm {
        Vmm {
            domain,
            vcpu_threads,
            _vm: vm,
            _kvm: kvm,
        }
    }

    /// Wait until every vCPU thread has ended.
    pub fn join(self) {
        for t in self.vcpu_threads {
            let _ = t.join();
        }
    }
}

/// Build the domain and start its vCPUs.
pub fn start(spec: DomainSpec, image: &[u8]) -> Result<Vmm, BuildError> {
    start_with_devices(spec, image, &[])
}

/// Like [`start`], attaching `devices` (kind and `--disk` / `--vif` string)
/// before any vCPU runs.
pub fn start_with_devices(
    spec: DomainSpec,
    image: &[u8],
    devices: &[(crate::control::proto::DeviceClass, String)],
) -> Result<Vmm, BuildError> {
    boot(spec, Boot::Kernel(image), devices, false)
}

/// Where a domain's first state comes from.
pub enum Boot<'a> {
    /// Load this ELF kernel image and start every vCPU at its entry.
    Kernel(&'a [u8]),
    /// Load RAM, vCPU, console and device state from an image or a migration
    /// stream; the guest runs on from where it was saved.
    Restore(&'a mut dyn crate::snapshot::RestoreSource),
}

/// Build the domain from `how`, attach `devices`, and start its vCPUs
/// (parked in the paused state when `paused`).
pub fn boot(
    spec: DomainSpec,
    how: Boot<'_>,
    devices: &[(crate::control::proto::DeviceClass, String)],
    paused: bool,
) -> Result<Vmm, BuildError> {
    spec.validate()?;
    kick::install_handler();
    let kvm_err = |what| move |source| BuildError::Kvm { what, source };
    let kvm = Kvm::new().map_err(kvm_err("open /dev/kvm"))?;
    jail::remember_kvm(&kvm);
    let vm = kvm.create_vm().map_err(kvm_err("create_vm"))?;

    let size = (spec.maxmem_mib << 20).next_multiple_of(2 << 20);
    let ram = GuestRam::with_reserve(size, growth_reserve())?;
    // SAFETY: `ram` moves into the Domain, which the vCPU threads keep alive
    // for as long as the VM can run, and the VM fd is dropped before or with
    // it (struct Vmm).
    unsafe { ram.map_boot_slot(&vm) }.map_err(kvm_err("set_user_memory_region"))?;

    let (loaded, restored) = match how {
        Boot::Kernel(image) => {
            arch::write_gdt(&ram)?;
            arch::write_page_tables(&ram)?;
            (Some(loader::load_elf(&ram, image, &spec.kernel)?), None)
        }
        Boot::Restore(source) => (None, Some(source.load(&ram, &spec).map_err(Box::new)?)),
    };

    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("get_supported_cpuid"))?;
    let mut fds = Vec::with_capacity(spec.vcpus as usize);
    for i in 0..spec.vcpus {
        let fd = vm
            .create_vcpu(u64::from(i))
            .map_err(kvm_err("create_vcpu"))?;
        fd.set_cpuid2(&cpuid).map_err(kvm_err("set_cpuid2"))?;
        match (&loaded, &restored) {
            (Some(l), _) => arch::setup_vcpu(&fd, i, l.entry)?,
            (None, Some(r)) => r.restore_vcpu(&fd, i, &ram).map_err(Box::new)?,
            (None, None) => unreachable!("a kernel or an image"),
        }
        fds.push(fd);
    }
    let tsc_khz = fds[0]
        .get_tsc_khz()
        .map(u64::from)
        .unwrap_or_else(|_| host_tsc_khz());
    if let Some(l) = &loaded {
        write_start_info(&ram, &spec, tsc_khz, l.end)?;
    }

    let vm = Arc::new(vm);
    let domain = Domain::new(spec, ram, Arc::clone(&vm));
    for (kind, config) in devices {
        domain.devices.attach(*kind, config, None)?;
    }
    if let Some(r) = restored {
        r.finish(&domain).map_err(Box::new)?;
    }
    if paused {
        let _ = domain.pause();
    }
    let d = Arc::clone(&domain);
    std::thread::Builder::new()
        .name("console-out".into())
        .spawn(move || {
            if jail::thread_start(ThreadKind::DeviceIo) {
                d.console.run_writer();
            }
        })
        .map_err(BuildError::Thread)?;
    let d = Arc::clone(&domain);
    std::thread::Builder::new()
        .name("console-poll".into())
        .spawn(move || {
            if jail::thread_start(ThreadKind::DeviceIo) {
                poll_console(&d);
            }
        })
        .map_err(BuildError::Thread)?;
    let mut vcpu_threads = Vec::new();
    for (i, fd) in fds.into_iter().enumerate() {
        let d = Arc::clone(&domain);
        let t = std::thread::Builder::new()
            .name(format!("vcpu{i}"))
            .spawn(move || {
                if jail::thread_start(ThreadKind::Vcpu) {
                    vcpu::run(d, fd, i);
                }
            })
            .map_err(BuildError::Thread)?;
        vcpu_threads.push(t);
    }
    log(&format!(
        "domain {} (id {}) {}: {} MiB, {} vCPUs, kernel {}, {}, tsc {} kHz",
        domain.spec.name,
        domain.spec.domid,
        if loaded.is_some() {
            "started"
        } else {
            "restored"
        },
        domain.spec.memory_mib,
        domain.spec.vcpus,
        domain.spec.kernel,
        match &loaded {
            Some(l) => format!("entry {:#x}", l.entry),
            None => "from an image".into(),
        },
        tsc_khz
    ));
    Ok(Vmm {
        domain,
        vcpu_threads,
        _vm: vm,
        _kvm: kvm,
    })
}

/// Address space reserved for guest RAM to grow into when the toolstack
/// raises maxmem: the host's memory, at most what the boot page tables can
/// map ([`MAX_MEMORY_MIB`]). Reserved with `MAP_NORESERVE` and `PROT_NONE`,
/// it costs nothing until it becomes RAM.
pub fn growth_reserve() -> u64 {
    let host = crate::stats::host_memory_bytes().unwrap_or(0);
    host.min(MAX_MEMORY_MIB << 20)
        .next_multiple_of(crate::memory::GROW_ALIGN)
}

/// Pick up console output while some vCPU runs (a busy guest need not exit
/// to be heard); sleep on the domain condvar while all are blocked or paused.
fn poll_console(dom: &Domain) {
    while dom.wait_until_running(Duration::from_secs(3600)) {
        std::thread::sleep(CONSOLE_POLL);
        if let Err(e) = dom.console.drain(&dom.ram) {
            log(&format!("console: {e}"));
        }
    }
    let _ = dom.console.drain(&dom.ram);
}

/// The host TSC frequency when KVM cannot tell (from /proc/cpuinfo's MHz).
fn host_tsc_khz() -> u64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(1_000_000, |mhz| (mhz * 1000.0) as u64)
}
