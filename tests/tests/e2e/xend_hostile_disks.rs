//! Hostile disk and kernel paths (issue 10 item 3, issue 13 item 1): xend
//! runs as root, so a client naming a host file as a guest's disk or kernel
//! must not get root's access to it. `file:` disks must lie in `disk-dirs`,
//! `phy:` disks must be block devices under `/dev`, kernels and ramdisks must
//! lie in `kernel-dirs`; anything else is refused with 403 before any VMM
//! starts, on every path a disk takes to a VMM (create, configure, hot
//! attach, reboot, restore, incoming migration). Each attack checks that the
//! victim file is unchanged and that xend keeps serving.
//!
//! These tests speak to xend through the harness's normal HTTP helpers (with
//! its token when one is configured), as any client of the API would.
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use e2e::save::{assert_no_domains, migrate, restore, save};
use e2e::{BOOT, Reply, STATE, Xend, XendOptions, prompt, wait_for};

const SECRET: &[u8] = b"root-only secret: nobody may read or write this\n";

/// A root-owned 0600 file outside every allowed directory, and what it was.
struct Victim {
    path: PathBuf,
    meta: (u64, u32),
}

impl Victim {
    fn new(dir: &Path) -> Victim {
        let path = dir.join("victim.txt");
        std::fs::write(&path, SECRET).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let meta = Self::meta_of(&path);
        Victim { path, meta }
    }

    fn meta_of(path: &Path) -> (u64, u32) {
        let m = std::fs::metadata(path).unwrap();
        (m.len(), m.permissions().mode() & 0o7777)
    }

    /// Size, mode and contents are as before.
    #[track_caller]
    fn assert_untouched(&self) {
        assert_eq!(Self::meta_of(&self.path), self.meta, "victim size/mode");
        assert_eq!(
            std::fs::read(&self.path).unwrap(),
            SECRET,
            "victim contents"
        );
    }

    fn uname(&self) -> String {
        format!("file:{}", self.path.display())
    }
}

/// A zeroed disk image of `kib` KiB.
fn disk(dir: &Path, name: &str, kib: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .set_len(kib * 1024)
        .unwrap();
    path
}

fn create(xend: &Xend, config: &str) -> Reply {
    xend.post_json("/xend/domain", &[("op", "create"), ("config", config)])
}

/// An xm config whose guest, once booted, writes over the first sector of
/// its disk `uname` on its own.
fn writer_config(name: &str, uname: &str, mode: &str) -> String {
    format!(
        "name = '{name}'\nmemory = 16\ndisk = ['{uname},xvda,{mode}']\n\
         extra = 'autorun=blkwrite xvda 0 1 PWNED'\n"
    )
}

fn outside_message(uname: &str, dirs: &str) -> String {
    format!(
        "disk {uname} is outside the allowed disk directories ({dirs}); add its directory to disk-dirs in xend-config.sxp"
    )
}

fn dirs_of(xend: &Xend) -> String {
    xend.images_dir().display().to_string()
}

/// 403 with exactly `message` (JSON `{"error": ...}`).
#[track_caller]
fn forbidden(r: Reply, message: &str) {
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], message, "{}", r.body);
}

/// xend still answers.
#[track_caller]
fn serving(xend: &Xend) {
    xend.get_json("/xend/node").ok();
}

#[test]
fn a_root_only_file_outside_disk_dirs_cannot_be_overwritten_through_a_guest() {
    let xend = Xend::start();
    let victim = Victim::new(xend.dir());
    let uname = victim.uname();
    let want = outside_message(&uname, &dirs_of(&xend));
    for mode in ["w", "w!", "r"] {
        forbidden(create(&xend, &writer_config("evil", &uname, mode)), &want);
    }
    let sxp = format!(
        "(vm (name evil) (memory 16) (image (minios (args 'autorun=blkwrite xvda 0 1 PWNED')))\
         (device (vbd (uname {uname}) (dev xvda) (mode w))))"
    );
    forbidden(create(&xend, &sxp), &want);
    // SXP reply for programs: the same message and status.
    let r = xend.post("/xend/domain", &[("op", "create"), ("config", &sxp)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.starts_with("(xend.err "), "{}", r.body);
    assert!(
        r.body.contains("add its directory to disk-dirs"),
        "{}",
        r.body
    );
    victim.assert_untouched();
    assert_no_domains(&xend);
    serving(&xend);
}

#[test]
fn outside_paths_are_refused_alike_whether_or_not_they_exist() {
    let xend = Xend::start();
    let dirs = dirs_of(&xend);
    let missing = xend.dir().join("no-such-dir/no-such.img");
    for uname in [
        "file:/etc/shadow".to_string(),
        "file:/etc/no-such-file".to_string(),
        format!("file:{}", missing.display()),
    ] {
        let r = create(&xend, &writer_config("peek", &uname, "r"));
        forbidden(r, &outside_message(&uname, &dirs));
    }
    // Inside the allowed directory a missing image is a plain 400.
    let inside = xend.images_dir().join("missing.img");
    let r = create(
        &xend,
        &writer_config("peek", &format!("file:{}", inside.display()), "r"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("does not exist"), "{}", r.body);
    assert_no_domains(&xend);
    serving(&xend);
}

#[test]
fn symlinks_and_dotdot_cannot_leave_the_images_dir() {
    let xend = Xend::start();
    let victim = Victim::new(xend.dir());
    let images = xend.images_dir();
    symlink(&victim.path, images.join("link.img")).unwrap();
    symlink(xend.dir(), images.join("up")).unwrap();
    let sibling = xend.dir().join("images-old");
    std::fs::create_dir(&sibling).unwrap();
    disk(&sibling, "old.img", 16);
    let dirs = dirs_of(&xend);
    for path in [
        images.join("link.img"),
        images.join("../victim.txt"),
        images.join("up/victim.txt"),
        images.join("nothing/../../victim.txt"),
        sibling.join("old.img"), // a string prefix of the directory is not inside it
    ] {
        let uname = format!("file:{}", path.display());
        let r = create(&xend, &writer_config("escape", &uname, "w"));
        forbidden(r, &outside_message(&uname, &dirs));
    }
    victim.assert_untouched();
    assert_no_domains(&xend);
    serving(&xend);
}

#[test]
fn phy_backends_must_be_block_devices_under_dev() {
    let xend = Xend::start();
    for uname in [
        "phy:../x",
        "phy:../etc/shadow",
        "phy:/etc/shadow",
        "phy:shm",
        "phy:/dev/shm",
        "phy:/dev/null",
        "phy:null",
        "phy:/dev",
        "phy:no-such-device",
    ] {
        let r = create(&xend, &writer_config("phy", uname, "w"));
        forbidden(
            r,
            &format!(
                "disk {uname} is not a block device under /dev; phy: names a host block device (e.g. phy:sdb1 or phy:/dev/vg0/disk)"
            ),
        );
    }
    assert_no_domains(&xend);
    serving(&xend);
}

#[test]
fn kernels_and_ramdisks_outside_kernel_dirs_are_refused() {
    let xend = Xend::start();
    let images = xend.images_dir();
    let dirs = dirs_of(&xend);
    let kernel = images.join("vmlinuz");
    std::fs::write(&kernel, b"not really a kernel").unwrap();
    symlink("/etc/shadow", images.join("shadow-link")).unwrap();
    let refused = |what: &str, path: &str| {
        format!(
            "{what} {path} is outside the allowed kernel directories ({dirs}); add its directory to kernel-dirs in xend-config.sxp"
        )
    };
    for path in [
        "/etc/shadow".to_string(),
        images.join("shadow-link").display().to_string(),
        images.join("../xend-config.sxp").display().to_string(),
    ] {
        let r = create(
            &xend,
            &format!("name = 'k'\nmemory = 16\nkernel = \"{path}\"\n"),
        );
        forbidden(r, &refused("kernel", &path));
    }
    let r = create(
        &xend,
        &format!(
            "name = 'k'\nmemory = 16\nkernel = \"{}\"\nramdisk = \"/etc/shadow\"\n",
            kernel.display()
        ),
    );
    forbidden(r, &refused("ramdisk", "/etc/shadow"));
    assert_no_domains(&xend);
    serving(&xend);
}

#[test]
fn incoming_migration_configs_are_confined_too() {
    let xend = Xend::start();
    let victim = Victim::new(xend.dir());
    let uname = victim.uname();
    let config = format!(
        "(vm (name moved) (memory 16) (device (vbd (uname {uname}) (dev xvda) (mode w))) (image (minios)))"
    );
    let r = xend.post_json(
        "/xend/domain",
        &[("op", "migrate_receive"), ("config", &config)],
    );
    forbidden(r, &outside_message(&uname, &dirs_of(&xend)));
    let r = xend.post_json(
        "/xend/domain",
        &[
            ("op", "migrate_receive"),
            (
                "config",
                "(vm (name moved) (memory 16) (image (linux (kernel /etc/shadow))))",
            ),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    victim.assert_untouched();
    assert_no_domains(&xend);
    serving(&xend);
}

#[test]
fn an_image_inside_disk_dirs_works_end_to_end() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let img = disk(&xend.images_dir(), "good.img", 256);
    // The same guest command as the attacks: allowed here, it writes.
    let uname = format!("file:{}", img.display());
    let dom = xend.create(&writer_config("good", &uname, "w"));
    wait_for(BOOT, "the guest's autorun write to land", || {
        std::fs::read(&img).is_ok_and(|d| d.starts_with(b"PWNED"))
    });
    let mut con = xend.console(dom.id);
    con.expect("blkwrite: xvda wrote 1 sectors at 0", BOOT);
    con.expect(&prompt("good"), BOOT);
    let out = con.run("blkwrite xvda 2 1 inside", STATE);
    assert!(out.contains("wrote 1 sectors at 2"), "{out}");
    assert_eq!(&std::fs::read(&img).unwrap()[1024..1030], b"inside");
    let out = con.run("blkverify xvda 2 1 inside", STATE);
    assert!(out.contains("ok"), "{out}");
    // A symlink from elsewhere into disk-dirs is fine: the VMM opens the
    // canonical path.
    let second = xend.images_dir().join("second.img");
    std::fs::copy(&img, &second).unwrap();
    let img = second;
    let elsewhere = xend.dir().join("alias.img");
    symlink(&img, &elsewhere).unwrap();
    let r = xend
        .act(
            "good",
            "device_create",
            &[(
                "config",
                &format!(
                    "(vbd (uname file:{}) (dev xvdb) (mode r))",
                    elsewhere.display()
                ),
            )],
        )
        .ok();
    assert!(
        r.body.contains(&format!("file:{}", img.display())),
        "{}",
        r.body
    );
    let out = con.run("blkverify xvdb 2 1 inside", STATE);
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn hot_attach_and_configure_cannot_reach_outside_files() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let victim = Victim::new(xend.dir());
    let uname = victim.uname();
    let want = outside_message(&uname, &dirs_of(&xend));
    let (_dom, mut con) = xend.create_booted("hot");
    let stored_before = xend.get("/xend/domain/hot?op=config").ok().body;

    let r = xend.act(
        "hot",
        "device_create",
        &[(
            "config",
            &format!("(vbd (uname {uname}) (dev xvdb) (mode w))"),
        )],
    );
    forbidden(r, &want);
    let r = xend.act(
        "hot",
        "device_create",
        &[("type", "vbd"), ("config", &format!("{uname},xvdb,w"))],
    );
    forbidden(r, &want);
    let r = xend.act(
        "hot",
        "device_create",
        &[("type", "vbd"), ("config", "phy:/dev/null,xvdb,w")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let vbds = xend.get_json("/xend/domain/hot?op=vbds").ok().json();
    assert_eq!(vbds, serde_json::json!([]), "nothing attached");
    let out = con.run("blkwrite xvdb 0 1 PWNED", STATE);
    assert!(!out.contains("wrote"), "{out}");

    // Nor may the config stored for the next boot name it.
    let r = xend.act(
        "hot",
        "configure",
        &[("config", &writer_config("hot", &uname, "w"))],
    );
    forbidden(r, &want);
    assert_eq!(
        xend.get("/xend/domain/hot?op=config").ok().body,
        stored_before
    );
    con.echo("still-alive", STATE);
    victim.assert_untouched();
    serving(&xend);
}

#[test]
fn a_disk_swapped_for_a_symlink_is_refused_at_reboot_and_at_restore() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        min_restart_time: 0.0,
        ..XendOptions::default()
    });
    let victim = Victim::new(xend.dir());
    let images = xend.images_dir();

    // Reboot: every boot checks again, and the VMM gets the canonical path.
    let img = disk(&images, "swap.img", 64);
    let uname = format!("file:{}", img.display());
    let dom = xend.create(&writer_config("swap", &uname, "w"));
    wait_for(BOOT, "the first boot's write", || {
        std::fs::read(&img).is_ok_and(|d| d.starts_with(b"PWNED"))
    });
    std::fs::remove_file(&img).unwrap();
    symlink(&victim.path, &img).unwrap();
    xend.act("swap", "shutdown", &[("reason", "reboot")]).ok();
    xend.wait_gone("swap");
    let log = std::fs::read_to_string(xend.log_path()).unwrap();
    assert!(
        log.contains(&format!(
            "restart of domain swap failed: {}",
            outside_message(&uname, &dirs_of(&xend))
        )),
        "{log}"
    );
    let _ = dom;

    // Restore: the image's domain gets its disk back only if it is still
    // inside disk-dirs.
    let img = disk(&images, "saved.img", 64);
    let uname = format!("file:{}", img.display());
    let dom = xend.create(&format!(
        "name = 'saved'\nmemory = 16\ndisk = ['{uname},xvda,w']\n"
    ));
    xend.console(dom.id).expect(&prompt("saved"), BOOT);
    save(&xend, "saved", "saved.sav").ok();
    xend.wait_gone("saved");
    std::fs::remove_file(&img).unwrap();
    symlink(&victim.path, &img).unwrap();
    forbidden(
        restore(&xend, "saved.sav", false),
        &outside_message(&uname, &dirs_of(&xend)),
    );
    victim.assert_untouched();
    assert_no_domains(&xend);
    serving(&xend);
}

#[test]
fn migrating_to_a_xend_that_does_not_allow_the_disk_is_refused_and_the_domain_stays() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let b = Xend::start();
    let img = disk(&a.images_dir(), "m.img", 64);
    let uname = format!("file:{}", img.display());
    let dom = a.create(&format!(
        "name = 'stay'\nmemory = 16\ndisk = ['{uname},xvda,w!']\n"
    ));
    let mut con = a.console(dom.id);
    con.expect(&prompt("stay"), BOOT);
    let r = migrate(&a, "stay", &b, false);
    assert!(r.status >= 400, "{}", r.body);
    assert!(
        r.body.contains(&outside_message(&uname, &dirs_of(&b))),
        "{}",
        r.body
    );
    assert_no_domains(&b);
    con.echo("still-here", STATE);
    assert_eq!(a.domain("stay").id, dom.id);
}
