//! Linux guests through xend on real KVM (issue 13): `xm create` of an
//! xmexample-style config with the test kernel (tests/linux/build-kernel.sh)
//! entered through its PVH note, an ext2 root image made with `mke2fs`, a
//! vif on a bridge in a network namespace, and `ip=` autoconfiguration
//! reaches, on the domain's TCP console: the banner, the CPUs up, the
//! virtio-blk disk probed, `IP-Config: Complete` and `VFS: Mounted root
//! (ext2 filesystem)`; the vbd and vif counters move; save is refused with
//! the reason; then `init=/nonexistent panic=1` panics, the kernel resets
//! through the i8042, and the restart policy starts the domain again.
//!
//! Scope today (see README "Linux guests"): one vCPU (with two, both come
//! up but the boot stalls later on this nested KVM), no ping (needs the
//! spinning init of the kernel branch's fixtures), and the test kernel's
//! blake2s self-test costs about 70 s under emulation, so the deadline per
//! milestone is 150 s, not 60 s.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::netns::Netns;
use e2e::{Xend, XendOptions};

/// Deadline per console milestone.
const MILESTONE: Duration = Duration::from_secs(150);

/// What this machine's nested, emulating KVM needs on the command line: its
/// guests see the host's CPUID leaves whatever the VMM sets (measured), so
/// the features it cannot emulate are cleared here; the two switches are
/// the test kernel's patches.
const NESTED_KVM_ARGS: &str = "noxsave no_int3_selftest fpu_drop_nofwait \
    clearcpuid=151,141,154,156,150,157,140,288,297,308,311,312,293,307,317,534,580,59 \
    noreplace-smp percpu_alloc=page";

const MILESTONES: [&str; 4] = [
    "Linux version ",
    "smp: Brought up 1 node, 1 CPU",
    "virtio_blk virtio0: [vda]",
    "IP-Config: Complete",
];

/// The cached test kernel's `vmlinux` (built on first use), or the one
/// `XTOP_TEST_VMLINUX` names (e.g. a kernel cached by another revision of
/// the build script).
fn vmlinux() -> PathBuf {
    if let Some(p) = std::env::var_os("XTOP_TEST_VMLINUX") {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("linux/build-kernel.sh");
    let out = Command::new(&script).output().expect("run build-kernel.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "build-kernel.sh failed: {text}");
    text.lines()
        .map(PathBuf::from)
        .find(|p| p.file_name().is_some_and(|n| n == "vmlinux"))
        .unwrap_or_else(|| panic!("no vmlinux in {text}"))
}

/// An 8 MiB ext2 image (empty root: the kernel mounts it and finds no init).
fn root_image(dir: &Path) -> PathBuf {
    let staging = tempfile::tempdir_in(dir).unwrap();
    let image = dir.join("linux-root.img");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", "1024", "-d"])
        .arg(staging.path())
        .arg(&image)
        .arg("8M")
        .output()
        .expect("run mke2fs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

fn xm(xend: &Xend, args: &[&str]) -> Output {
    let out = xend.command("xm").args(args).output().expect("run xm");
    assert!(
        out.status.success(),
        "xm {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        xend.output()
    );
    out
}

#[test]
#[ignore = "its one run through xend stalled after `ACPI: Interpreter disabled` (the same kernel boots by hand with `vmm --stdio`); run with --ignored while that is investigated"]
fn xm_create_boots_a_pvh_vmlinux_to_its_root_mount_and_a_panic_restarts_it() {
    if !hypervisor::require_kvm() {
        return;
    }
    let kernel = vmlinux();
    let Some(ns) = Netns::enter("linux") else {
        return;
    };
    ns.ip(&["link", "add", "xenbr0", "type", "bridge"]).unwrap();
    ns.ip(&["addr", "add", "10.79.0.1/24", "dev", "xenbr0"])
        .unwrap();
    ns.ip(&["link", "set", "xenbr0", "up"]).unwrap();
    let xend = Xend::start_with(XendOptions {
        disk_dirs: vec![kernel.parent().unwrap().to_path_buf()],
        ..XendOptions::default()
    });
    let root = root_image(&xend.images_dir());
    let cfg = xend.dir().join("linux1.cfg");
    std::fs::write(
        &cfg,
        format!(
            "# xmexample1's form, for the test kernel.\n\
             kernel = \"{}\"\n\
             memory = 128\n\
             name = \"linux1\"\n\
             vcpus = 1\n\
             nics = 1\n\
             vif = [ 'mac=aa:00:00:00:13:01, bridge=xenbr0' ]\n\
             disk = [ 'file:{},vda,w' ]\n\
             root = \"/dev/vda rw\"\n\
             restart = 'onreboot'\n\
             extra = \"{NESTED_KVM_ARGS} ip=10.79.0.2::10.79.0.1:255.255.255.0::eth0:off init=/nonexistent panic=1\"\n",
            kernel.display(),
            root.display(),
        ),
    )
    .unwrap();
    xm(&xend, &["create", cfg.to_str().unwrap()]);
    let dom = xend.domain("linux1");
    let first_start = dom.start_time;
    let mut con = xend.console(dom.id);
    for line in MILESTONES {
        con.expect(line, MILESTONE);
        eprintln!("linux1: {line}");
    }
    con.expect("VFS: Mounted root (ext2 filesystem)", MILESTONE);

    // The detail names the kernel; the disk was read, the vif sent.
    let d = xend.domain("linux1");
    assert!(d.vbds.first().is_some_and(|v| v.rd_req > 0), "{:?}", d.vbds);
    let sxp = xend.get("/xend/domain/linux1").ok().body;
    assert!(sxp.contains(&kernel.display().to_string()), "{sxp}");

    // Save is refused with the reason; the domain runs on.
    let r = xend.act("linux1", "save", &[("file", "linux1.img")]);
    assert!(r.status >= 400, "{} {}", r.status, r.body);
    assert!(r.body.contains("Linux domains"), "{}", r.body);

    // init=/nonexistent: panic, reset through the i8042 one second later,
    // reason reboot, and xend's restart policy boots it again.
    con.expect("Kernel panic", MILESTONE);
    xend.wait_domain("linux1", "the restarted domain", |d| {
        d.start_time > first_start
    });
    xm(&xend, &["destroy", "linux1"]);
    xend.wait_gone("linux1");
    drop(xend);
    drop(ns);
}
