//! Boot order: KVM VM, guest RAM, GDT and page tables, kernel, start-info,
//! vCPUs, then the console threads and one thread per vCPU.
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::arch;
use crate::domain::{Domain, DomainSpec, SpecError, write_start_info};
use crate::jail::{self, ThreadKind};
use crate::kick;
use crate::loader::{self, LoadError};
use crate::log::log;
use crate::memory::{GuestRam, MemoryError};
use crate::snapshot::Restored;
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
    Restore(Box<dyn crate::snapshot::RestoreSource + Send>),
}

/// Build the domain from `how`, attach `devices`, and start its vCPUs
/// (parked in the paused state when `paused`).
///
/// A restore done this way reads its whole source before returning; a
/// VMM that jails itself instead calls [`stage`] before the jail and
/// [`Staged::restore`] after it.
pub fn boot(
    spec: DomainSpec,
    how: Boot<'_>,
    devices: &[(crate::control::proto::DeviceClass, String)],
    paused: bool,
) -> Result<Vmm, BuildError> {
    match how {
        Boot::Kernel(image) => boot_kernel(spec, image, devices, paused),
        Boot::Restore(source) => stage(spec, devices, paused, "restore")?.restore(source),
    }
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> BuildError {
    move |source| BuildError::Kvm { what, source }
}

/// The VM and its RAM, before anything is loaded.
struct Machine {
    kvm: Kvm,
    vm: VmFd,
    ram: GuestRam,
}

/// Check `spec`, open KVM, create the VM and map its RAM.
fn machine(spec: &DomainSpec) -> Result<Machine, BuildError> {
    spec.validate()?;
    kick::install_handler();
    let kvm = Kvm::new().map_err(kvm_err("open /dev/kvm"))?;
    jail::remember_kvm(&kvm);
    let vm = kvm.create_vm().map_err(kvm_err("create_vm"))?;

    let size = (spec.maxmem_mib << 20).next_multiple_of(2 << 20);
    let ram = GuestRam::with_reserve(size, growth_reserve())?;
    // SAFETY: `ram` moves into the Domain, which the vCPU threads keep alive
    // for as long as the VM can run, and the VM fd is dropped before or with
    // it (struct Vmm).
    unsafe { ram.map_boot_slot(&vm) }.map_err(kvm_err("set_user_memory_region"))?;
    Ok(Machine { kvm, vm, ram })
}

/// Create `n` vCPUs with KVM's CPUID; `setup` gives each its first state.
fn create_vcpus(
    m: &Machine,
    n: u32,
    mut setup: impl FnMut(&VcpuFd, u32) -> Result<(), BuildError>,
) -> Result<Vec<VcpuFd>, BuildError> {
    let cpuid = m
        .kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("get_supported_cpuid"))?;
    let mut fds = Vec::with_capacity(n as usize);
    for i in 0..n {
        let fd =
            m.vm.create_vcpu(u64::from(i))
                .map_err(kvm_err("create_vcpu"))?;
        fd.set_cpuid2(&cpuid).map_err(kvm_err("set_cpuid2"))?;
        setup(&fd, i)?;
        fds.push(fd);
    }
    Ok(fds)
}

fn tsc_khz(fd: &VcpuFd) -> u64 {
    fd.get_tsc_khz()
        .map(u64::from)
        .unwrap_or_else(|_| host_tsc_khz())
}

fn boot_kernel(
    spec: DomainSpec,
    image: &[u8],
    devices: &[(crate::control::proto::DeviceClass, String)],
    paused: bool,
) -> Result<Vmm, BuildError> {
    let m = machine(&spec)?;
    arch::write_gdt(&m.ram)?;
    arch::write_page_tables(&m.ram)?;
    let loaded = loader::load_elf(&m.ram, image, &spec.kernel)?;
    let fds = create_vcpus(&m, spec.vcpus, |fd, i| {
        Ok(arch::setup_vcpu(fd, i, loaded.entry)?)
    })?;
    write_start_info(&m.ram, &spec, tsc_khz(&fds[0]), loaded.end)?;
    let Machine { kvm, vm, ram } = m;
    let vm = Arc::new(vm);
    let domain = Domain::new(spec, ram, Arc::clone(&vm));
    for (kind, config) in devices {
        domain.devices.attach(*kind, config, None)?;
    }
    launch(domain, fds, paused, vm, kvm, Some(loaded.entry))
}

/// A device given at start, opened while the VMM is still root: a disk's
/// file, or the `/dev/net/tun` descriptor of a vif's TAP (created, up and on
/// its bridge). Attached later with the descriptor, as a hot attach is.
pub struct OpenedDevice {
    kind: crate::control::proto::DeviceClass,
    config: String,
    file: std::fs::File,
}

/// Open every device of `devices` for domain `domid` (disks as their mode
/// says; vifs as TAP `vif<domid>.<N>`, N counting the vifs in order, which is
/// the index attaching them gives), attaching none of them yet.
pub fn open_devices(
    domid: u32,
    devices: &[(crate::control::proto::DeviceClass, String)],
) -> Result<Vec<OpenedDevice>, crate::devices::DeviceError> {
    use crate::control::proto::DeviceClass;
    use crate::devices::config::{DiskConfig, VifConfig};
    use crate::devices::{block::Disk, net::NetError, tap::Tap};
    let mut vifs = 0;
    let mut opened = Vec::with_capacity(devices.len());
    for (kind, config) in devices {
        let file = match kind {
            DeviceClass::Vbd => Disk::open_file(&DiskConfig::parse(config)?)?,
            DeviceClass::Vif => {
                let cfg = VifConfig::parse(config)?;
                let tap = Tap::create(&format!("vif{domid}.{vifs}")).map_err(NetError::from)?;
                tap.set_up().map_err(NetError::from)?;
                if let Some(br) = &cfg.bridge {
                    tap.attach_to_bridge(br).map_err(NetError::from)?;
                }
                vifs += 1;
                tap.into_file()
            }
        };
        opened.push(OpenedDevice {
            kind: *kind,
            config: config.clone(),
            file,
        });
    }
    Ok(opened)
}

/// What the restore thread does once it has the source: read it into the
/// domain and set the vCPUs' state; it hands the vCPUs back.
type RestoreJob = Box<dyn FnOnce() -> RestoreDone + Send>;
/// The vCPUs with their state set, and the rest of what was read.
type RestoreDone = Result<(Vec<VcpuFd>, Restored), BuildError>;

/// A domain to be restored, built as far as root must build it: the VM, its
/// RAM (sized by the image's checked `SPEC`), its vCPUs (created, no state
/// yet), its devices (opened, not attached: attaching reads the restored
/// device page), and the restore thread (started, waiting at the jail's
/// gate like every thread started before the jail). Nothing of the image
/// beyond its `SPEC` has been read.
pub struct Staged {
    domain: Arc<Domain>,
    fds: Vec<VcpuFd>,
    devices: Vec<OpenedDevice>,
    paused: bool,
    vm: Arc<VmFd>,
    kvm: Kvm,
    job: std::sync::mpsc::Sender<RestoreJob>,
    thread: JoinHandle<Option<RestoreDone>>,
}

/// Build what [`Staged`] holds for `spec` (the image's, with overrides);
/// `thread` names the restore thread.
pub fn stage(
    spec: DomainSpec,
    devices: &[(crate::control::proto::DeviceClass, String)],
    paused: bool,
    thread: &str,
) -> Result<Staged, BuildError> {
    let m = machine(&spec)?;
    let fds = create_vcpus(&m, spec.vcpus, |_, _| Ok(()))?;
    let devices = open_devices(spec.domid, devices)?;
    let Machine { kvm, vm, ram } = m;
    let vm = Arc::new(vm);
    let domain = Domain::new(spec, ram, Arc::clone(&vm));
    // Started now, as root (glibc sets up its own signal handlers on a
    // process's first thread, which no filter allows); it drops to the
    // jail's ids and installs its filter at the gate, before it reads.
    let (job, jobs) = std::sync::mpsc::channel::<RestoreJob>();
    let name = thread.to_string();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if !jail::thread_start(ThreadKind::Restore) {
                return None;
            }
            let job = jobs.recv().ok()?;
            log(&format!(
                "restore: reading the image's state on thread {name} ({})",
                jail::thread_state()
            ));
            Some(job())
        })
        .map_err(BuildError::Thread)?;
    Ok(Staged {
        domain,
        fds,
        devices,
        paused,
        vm,
        kvm,
        job,
        thread,
    })
}

impl Staged {
    /// The domain being restored (its spec, for the runtime record).
    pub fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }

    /// Read the rest of the image from `source` into the domain on the
    /// restore thread (under the `restore` seccomp filter once the VMM is
    /// jailed: call this after [`crate::jail::enter`]); then attach the
    /// devices and start the vCPUs.
    pub fn restore(
        self,
        mut source: Box<dyn crate::snapshot::RestoreSource + Send>,
    ) -> Result<Vmm, BuildError> {
        let Staged {
            domain,
            fds,
            devices,
            paused,
            vm,
            kvm,
            job,
            thread,
        } = self;
        let d = Arc::clone(&domain);
        let work: RestoreJob = Box::new(move || {
            let restored = source.load(&d.ram, &d.spec).map_err(Box::new)?;
            for (i, fd) in fds.iter().enumerate() {
                restored
                    .restore_vcpu(fd, i as u32, &d.ram)
                    .map_err(Box::new)?;
            }
            Ok((fds, restored))
        });
        let gone = || BuildError::Thread(std::io::Error::other("the restore thread ended"));
        job.send(work).map_err(|_| gone())?;
        let (fds, restored) = thread.join().ok().flatten().ok_or_else(gone)??;
        for d in devices {
            domain.devices.attach(d.kind, &d.config, Some(d.file))?;
        }
        restored.finish(&domain).map_err(Box::new)?;
        launch(domain, fds, paused, vm, kvm, None)
    }
}

/// Start the console threads and one thread per vCPU of a built domain
/// (paused first when `paused`). `entry`: the kernel entry of a fresh boot.
fn launch(
    domain: Arc<Domain>,
    fds: Vec<VcpuFd>,
    paused: bool,
    vm: Arc<VmFd>,
    kvm: Kvm,
    entry: Option<u64>,
) -> Result<Vmm, BuildError> {
    let tsc_khz = tsc_khz(&fds[0]);
    if paused {
        let _ = domain.pause();
    }
    spawn_console_writer(&domain)?;
    let d = Arc::clone(&domain);
    jail::spawn("console-poll".into(), ThreadKind::DeviceIo, move || {
        poll_console(&d)
    })
    .map_err(BuildError::Thread)?;
    let vcpu_threads = spawn_vcpus(&domain, fds, vcpu::run)?;
    log(&format!(
        "domain {} (id {}) {}: {} MiB, {} vCPUs, kernel {}, {}, tsc {} kHz",
        domain.spec.name,
        domain.spec.domid,
        if entry.is_some() {
            "started"
        } else {
            "restored"
        },
        domain.spec.memory_mib,
        domain.spec.vcpus,
        domain.spec.kernel,
        match entry {
            Some(e) => format!("entry {e:#x}"),
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

/// Start the thread that writes the console's output to its clients.
pub(crate) fn spawn_console_writer(domain: &Arc<Domain>) -> Result<(), BuildError> {
    let d = Arc::clone(domain);
    jail::spawn("console-out".into(), ThreadKind::DeviceIo, move || {
        d.console.run_writer()
    })
    .map_err(BuildError::Thread)?;
    Ok(())
}

/// Start one thread per vCPU, `vcpu{i}`, each running `run(domain, fd, i)`
/// once past the jail's gate.
pub(crate) fn spawn_vcpus<F>(
    domain: &Arc<Domain>,
    fds: Vec<VcpuFd>,
    run: F,
) -> Result<Vec<JoinHandle<()>>, BuildError>
where
    F: Fn(Arc<Domain>, VcpuFd, usize) + Clone + Send + 'static,
{
    let mut threads = Vec::with_capacity(fds.len());
    for (i, fd) in fds.into_iter().enumerate() {
        let d = Arc::clone(domain);
        let run = run.clone();
        let t = jail::spawn(format!("vcpu{i}"), ThreadKind::Vcpu, move || run(d, fd, i))
            .map_err(BuildError::Thread)?;
        threads.push(t);
    }
    Ok(threads)
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
