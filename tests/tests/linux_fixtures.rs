//! The Linux-guest fixtures themselves: the cached test kernel is a PVH
//! `vmlinux` and a `bzImage` built from the repo's fragment and patches, the
//! root image is ext2 with the spinning `/init`, and that init is a real
//! executable that makes no system call.
use std::process::Command;

use e2e::linux;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cached_kernel_is_a_pvh_vmlinux_and_a_bzimage_with_the_fragments_config() {
    let k = linux::kernel();
    // vmlinux: an x86-64 ELF with Xen's PHYS32_ENTRY note (type 0x12), the
    // PVH entry point.
    let notes = run(Command::new("readelf").arg("-n").arg(&k.vmlinux));
    assert!(
        notes.contains("Xen") && notes.contains("0x00000012"),
        "no PVH entry note in {}:\n{notes}",
        k.vmlinux.display()
    );
    // bzImage: the boot protocol's "HdrS" magic at 0x202.
    let bz = std::fs::read(&k.bz_image).unwrap();
    assert_eq!(&bz[0x202..0x206], b"HdrS", "{}", k.bz_image.display());
    // The installed .config has every line of the fragment.
    let config = std::fs::read_to_string(k.dir().join("config")).unwrap();
    let fragment =
        std::fs::read_to_string(linux::build_script().with_file_name("kernel.config")).unwrap();
    for line in fragment.lines() {
        if line.starts_with("CONFIG_") {
            assert!(config.lines().any(|l| l == line), "{line} missing");
        } else if let Some(opt) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            let set = format!("{opt}=");
            assert!(!config.lines().any(|l| l.starts_with(&set)), "{opt} is set");
        }
    }
    // A warm cache answers with the same paths without building.
    let again = run(&mut Command::new(linux::build_script()));
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        [k.vmlinux.to_str().unwrap(), k.bz_image.to_str().unwrap()]
    );
    let dir = run(Command::new(linux::build_script()).arg("--print-path"));
    assert_eq!(dir.trim(), k.dir().to_str().unwrap());
}

#[test]
fn the_root_image_is_ext2_with_the_spinning_init() {
    let dir = tempfile::tempdir().unwrap();
    let image = linux::root_image(dir.path(), "root.img");
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 8 << 20);
    let sb = run(Command::new("dumpe2fs").arg("-h").arg(&image));
    assert!(sb.contains("Filesystem volume name:   root"), "{sb}");
    assert!(!sb.contains("has_journal"), "not ext2: {sb}");
    for path in ["/init", "/sbin/init"] {
        let out = Command::new("debugfs")
            .args(["-R", &format!("cat {path}")])
            .arg(&image)
            .output()
            .unwrap();
        assert_eq!(out.stdout, linux::spin_init_elf(), "{path}");
    }
    let stat = run(Command::new("debugfs")
        .args(["-R", "stat /init"])
        .arg(&image));
    assert!(stat.contains("Mode:  0755"), "{stat}");
    // Only the staging dir's contents went in; nothing is left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["root.img"]);
}

#[test]
fn the_init_is_an_executable_that_runs_without_system_calls() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("init");
    std::fs::write(&path, linux::spin_init_elf()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // exec succeeds (spawn reports ENOEXEC synchronously for a bad ELF) ...
    let mut child = Command::new(&path).spawn().expect("exec the init");
    // ... and the program reaches user mode and stays there: /proc/PID/syscall
    // reads "running" (on a CPU) or "-1 ..." (preempted outside any system
    // call); in a system call it would name its number, and an exit would
    // end the process.
    let file = format!("/proc/{}/syscall", child.id());
    e2e::wait_for(e2e::STATE, "the init in user mode", || {
        let s = std::fs::read_to_string(&file).unwrap_or_default();
        s.trim() == "running" || s.starts_with("-1 ")
    });
    assert_eq!(child.try_wait().unwrap(), None, "the init ended by itself");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
}
