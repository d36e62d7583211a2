//! Fixtures for Linux-guest tests and benchmarks: the test kernel, an ext2
//! root image, and a bridge in a network namespace for the guest's vif.
//!
//! - [`kernel`] returns the cached test kernel (`vmlinux` and `bzImage`),
//!   building it with `tests/linux/build-kernel.sh` when it is absent (about
//!   4 minutes on 2 cores the first time; never a skip); [`kernel_cad`] the
//!   same kernel with its keyboard path (`kernel-cad.config`), which hears
//!   Ctrl-Alt-Del.
//! - [`root_image`] writes an ext2 image with `mke2fs -d` whose `/init` (and
//!   `/sbin/init`) is a tiny static program that makes no system call: guest
//!   user space cannot run on this machine's nested KVM (the first `syscall`
//!   faults), and an init that only spins keeps the kernel up for ping.
//! - [`GuestNet::enter`] makes a network namespace with a bridge carrying the
//!   host's address, for a vif and a ping from the host.
//! - [`BOOT_ARGS`], [`MILESTONES`] and [`boot_args`] are the command line and
//!   the console lines every Linux boot test and the qemu benchmark share.
//! - [`create`] starts a xend that may read the kernel, writes a root image
//!   and a config for it and `xm create`s the domain; [`xm`] runs one more
//!   `xm` command that must succeed.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::netns::Netns;
use crate::{Xend, XendOptions};

/// The kernel command line every test boot starts with (the domain's `root`,
/// `ip=` and test-specific words follow). `console=ttyS0` is the VMM's
/// 16550 and `earlyprintk=ttyS0` shows the banner before the console driver
/// starts; the rest work around what this machine's nested, emulating KVM
/// cannot run or runs slowly (tests/linux/README.md):
/// - `clearcpuid=...`: the guest sees the host's CPUID here whatever the VMM
///   sets (measured under qemu: `-cpu host,-smap,-popcnt` still booted with
///   SMAP on and patched in `popcnt`; the linux branch measured the same with
///   our VMM), so the kernel itself drops what KVM's emulator cannot run:
///   POPCNT, CX16, RDRAND, XSAVE, AVX, MOVBE, F16C, FMA, FSGSBASE, ERMS,
///   SMAP, RDSEED, CLFLUSHOPT, CLWB, AVX2, ADX, SHA, RDPID, FSRM, RDTSCP, and
///   the TSC-deadline timer (4:24; cleared as a precaution after boots
///   that looked hung and were, it turned out, only slow under load: not
///   shown to be needed);
/// - `noxsave`: `xrstor` is not emulated;
/// - `no_int3_selftest`, `fpu_drop_nofwait`: the test kernel's two patches
///   (kernel-mode `int3` and `fwait` are not emulated);
/// - `acpi=off`: the machine has no ACPI tables (MP table), and looking for
///   them took 4 s;
/// - `noreplace-smp`, `percpu_alloc=page`: 3 s of boot and a 2 MB memset;
/// - `panic=1`: a panic reboots, so the restart policy applies.
pub const BOOT_ARGS: &str = "console=ttyS0 earlyprintk=ttyS0 acpi=off noxsave \
     clearcpuid=151,141,158,154,156,150,157,140,288,297,308,306,311,312,293,307,317,534,580,59,152 \
     no_int3_selftest fpu_drop_nofwait noreplace-smp percpu_alloc=page panic=1";

/// What [`kernel_cad`] boots with besides [`BOOT_ARGS`]: the i8042 options
/// Firecracker recommends that help here (tests/linux/README.md has the
/// measurements): `i8042.noaux` (there is no AUX port; probing for it waits
/// 0.5 s for a loop-back nobody answers), `i8042.nomux` and `i8042.nopnp`
/// (no active multiplexer, no PnP).
pub const CAD_ARGS: &str = "i8042.noaux i8042.nomux i8042.nopnp";

/// The console lines a test boot reaches, in order, with what each shows.
pub const MILESTONES: [(&str, &str); 5] = [
    ("banner", "Linux version "),
    ("smp", "smp: Brought up "),
    ("vda", "[vda]"),
    ("ip", "IP-Config: Complete"),
    ("root", "VFS: Mounted root (ext2 filesystem)"),
];

/// [`BOOT_ARGS`] plus the root device and, with a network, the kernel's
/// `ip=` autoconfiguration for `eth0`.
pub fn boot_args(root: &str, net: Option<&GuestNet>) -> String {
    let mut args = format!("{BOOT_ARGS} root={root} rw");
    if let Some(net) = net {
        args.push(' ');
        args.push_str(&net.ip_arg());
    }
    args
}

/// The cached test kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The uncompressed ELF, entered through its PVH note.
    pub vmlinux: PathBuf,
    /// The same kernel as a `bzImage` (the x86 boot protocol).
    pub bz_image: PathBuf,
}

impl Kernel {
    /// The cache directory holding both (for xend's `kernel-dirs`).
    pub fn dir(&self) -> &Path {
        self.vmlinux.parent().expect("kernel in a directory")
    }
}

/// The build script (tests/linux/build-kernel.sh).
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("linux/build-kernel.sh")
}

/// The test kernel, built by [`build_script`] when it is not cached yet
/// (the script takes a lock, so concurrent tests build once). Panics when the
/// build fails: a Linux test never skips for want of its kernel.
pub fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    KERNEL.get_or_init(|| build(None)).clone()
}

/// The test kernel plus its keyboard path (`tests/linux/kernel-cad.config`:
/// the i8042 and AT keyboard drivers, input and VT), so Ctrl-Alt-Del on the
/// i8042 restarts it; built like [`kernel`] (`build-kernel.sh --variant
/// cad`). Only the tests of host-requested shutdown and reboot boot it: VT
/// and the keyboard probe cost boot time on this emulating KVM.
pub fn kernel_cad() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    KERNEL.get_or_init(|| build(Some("cad"))).clone()
}

/// The kernel of `variant` ([`kernel`] or [`kernel_cad`]), by name: what the
/// benchmark's `--variant` picks.
pub fn kernel_variant(variant: Option<&str>) -> Kernel {
    match variant {
        None => kernel(),
        Some("cad") => kernel_cad(),
        Some(other) => panic!("no test kernel variant {other:?} (cad)"),
    }
}

fn build(variant: Option<&str>) -> Kernel {
    let script = build_script();
    eprintln!(
        "test kernel{}: running {} (a first build takes minutes)",
        variant.map(|v| format!(" ({v})")).unwrap_or_default(),
        script.display()
    );
    let mut cmd = Command::new(&script);
    if let Some(v) = variant {
        cmd.args(["--variant", v]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed ({}): {text}",
        script.display(),
        out.status
    );
    let path = |name: &str| {
        let p = text
            .lines()
            .map(PathBuf::from)
            .find(|p| p.file_name().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("build-kernel.sh printed no {name}: {text}"));
        assert!(p.is_file(), "{} is missing", p.display());
        p
    };
    Kernel {
        vmlinux: path("vmlinux"),
        bz_image: path("bzImage"),
    }
}

/// The test's `/init`: a static x86-64 ELF executable whose whole program is
/// `pause; jmp .-2`. It makes no system call, so it runs on this machine's
/// KVM (where the first `syscall` faults) and keeps the kernel up.
pub fn spin_init_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const EHDR: u64 = 64;
    const PHDR: u64 = 56;
    let code: [u8; 4] = [0xf3, 0x90, 0xeb, 0xfc]; // pause; jmp -4
    let entry = BASE + EHDR + PHDR;
    let size = EHDR + PHDR + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // ELF header: 64-bit, little-endian, version 1, System V ABI.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine: x86-64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&entry.to_le_bytes()); // e_entry
    elf.extend_from_slice(&EHDR.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    // One PT_LOAD, read + execute, mapping the whole file at BASE.
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&code);
    debug_assert_eq!(elf.len() as u64, size);
    elf
}

/// Run `xm ARGS` against `xend`; panics with xm's stderr and xend's output
/// unless it succeeds.
pub fn xm(xend: &Xend, args: &[&str]) {
    let out = xend.command("xm").args(args).output().expect("run xm");
    assert!(
        out.status.success(),
        "xm {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        xend.output()
    );
}

/// Start a xend whose disk and kernel dirs hold `kernel`'s directory, write
/// the root image `NAME-root.img` ([`root_image`]) in its images dir and
/// the config `config(root image)` as `NAME.cfg` in its temp dir, and
/// `xm create` it.
pub fn create(kernel: &Path, name: &str, config: impl FnOnce(&Path) -> String) -> Xend {
    let xend = Xend::start_with(XendOptions {
        disk_dirs: vec![kernel.parent().unwrap().to_path_buf()],
        ..XendOptions::default()
    });
    let root = root_image(&xend.images_dir(), &format!("{name}-root.img"));
    let cfg = xend.dir().join(format!("{name}.cfg"));
    fs::write(&cfg, config(&root)).unwrap();
    xm(&xend, &["create", cfg.to_str().unwrap()]);
    xend
}

/// Write `dir/NAME` (created, or replaced), an 8 MiB ext2 image made with
/// `mke2fs -d` holding `/init` and `/sbin/init` ([`spin_init_elf`]),
/// `/dev/console` when this process may create device nodes, and empty
/// `/proc`, `/sys`, `/tmp`. `dir` should be the test's temp dir inside the
/// xend's disk-dirs, e.g. [`crate::Xend::images_dir`]. Panics on failure.
pub fn root_image(dir: &Path, name: &str) -> PathBuf {
    let staging = tempfile::Builder::new()
        .prefix("rootfs")
        .tempdir_in(dir)
        .expect("staging dir");
    let root = staging.path();
    for sub in ["sbin", "dev", "proc", "sys", "tmp"] {
        fs::create_dir_all(root.join(sub)).expect("mkdir in staging");
    }
    let init = spin_init_elf();
    for path in ["init", "sbin/init"] {
        use std::os::unix::fs::PermissionsExt;
        let p = root.join(path);
        fs::write(&p, &init).expect("write init");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod init");
    }
    // The kernel opens /dev/console for init; without it, it only warns.
    let console = root.join("dev/console");
    let _ = nix::sys::stat::mknod(
        &console,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(5, 1),
    );
    let image = dir.join(name);
    let _ = fs::remove_file(&image);
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", "1024", "-L", "root"])
        .args(["-E", "root_owner=0:0", "-d"])
        .arg(root)
        .arg(&image)
        .arg("8M")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run mke2fs (apt install e2fsprogs): {e}"));
    assert!(
        out.status.success(),
        "mke2fs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// A network namespace with a bridge for a Linux guest's vif. The calling
/// thread is inside the namespace (see [`Netns::enter`]): start xend after
/// this, and declare it before the `Xend` so the VMMs go first.
pub struct GuestNet {
    /// The namespace (deleted on drop, with the bridge).
    pub ns: Netns,
    /// The bridge's name (e.g. `xenbr0`, what xend's `vif` defaults to).
    pub bridge: String,
    /// The host's address on the bridge, the guest's gateway.
    pub host: String,
    /// The address the guest configures with `ip=`.
    pub guest: String,
}

impl GuestNet {
    /// Enter namespace `e2e-TAG-PID-N`, create `bridge` with `10.79.0.1/24`
    /// and bring it up; the guest gets `10.79.0.2`. `None` (printed) where
    /// namespaces cannot be made; a failure under CI.
    pub fn enter(tag: &str, bridge: &str) -> Option<GuestNet> {
        let ns = Netns::enter(tag)?;
        let host = "10.79.0.1".to_string();
        ns.ip(&["link", "add", bridge, "type", "bridge"])
            .expect("create the bridge");
        ns.ip(&["addr", "add", &format!("{host}/24"), "dev", bridge])
            .expect("address the bridge");
        ns.ip(&["link", "set", bridge, "up"]).expect("bridge up");
        Some(GuestNet {
            ns,
            bridge: bridge.to_string(),
            host,
            guest: "10.79.0.2".to_string(),
        })
    }

    /// The kernel's `ip=` argument: static address, gateway, /24, `eth0`,
    /// no autoconfiguration protocol.
    pub fn ip_arg(&self) -> String {
        format!("ip={}::{}:255.255.255.0::eth0:off", self.guest, self.host)
    }

    /// Send one ping to the guest from the namespace, waiting at most
    /// `wait_secs` for the reply; whether it came.
    pub fn ping_once(&self, wait_secs: u32) -> bool {
        Command::new("ping")
            .args([
                "-n",
                "-q",
                "-c",
                "1",
                "-W",
                &wait_secs.to_string(),
                &self.guest,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}
