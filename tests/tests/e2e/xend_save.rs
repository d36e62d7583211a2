//! Save and restore through xend's API with real VMMs and minios guests: the
//! guest runs on after a restore (its `tick` counter continues, its uptime
//! does not go back, a memory pattern written before the save checks ok),
//! names leading outside `save-dir` are refused, and truncated, corrupted or
//! foreign images are refused with nothing created.
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use e2e::save::{
    MOVE, assert_no_domains, pattern_check, pattern_write, restore, save, save_dir, tick,
};
use e2e::{EventPort, Xend, prompt};

const EVENT: Duration = Duration::from_secs(30);

#[test]
fn a_restored_domain_runs_on_from_where_it_was_saved() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let mut events = EventPort::connect(&xend);
    let dom = xend.create("(vm (name keeper) (memory 32) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("keeper"), e2e::BOOT);
    tick(&mut con, 1);
    pattern_write(&mut con, 8, 77);
    let up_before = tick(&mut con, 2);

    let r = save(&xend, "keeper", "keeper.img").ok().json();
    let dir = save_dir(&xend).canonicalize().unwrap();
    let image = dir.join("keeper.img");
    assert_eq!(r["file"], image.display().to_string(), "{r}");
    assert_eq!(r["name"], "keeper");
    let bytes = std::fs::metadata(&image).unwrap().len();
    assert_eq!(r["image_bytes"], bytes, "{r}");
    assert!(
        bytes > 8 << 20,
        "an image holding the 8 MiB pattern: {bytes} bytes"
    );
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "save-dir mode {mode:o}");
    // The domain has ended: gone from the API, its VMM, record and console.
    assert!(xend.try_domain("keeper").is_none());
    con.expect_closed(MOVE);
    assert_no_domains(&xend);
    let line = events.expect_line("xend.domain.save", EVENT);
    assert!(
        line.contains("keeper") && line.contains("keeper.img"),
        "{line}"
    );

    // Restore paused: it stays paused until unpaused, then runs on.
    let restored = restore(&xend, "keeper.img", true).status(201).json();
    assert_eq!(restored["name"], "keeper", "{restored}");
    let id = restored["id"].as_u64().unwrap() as u32;
    assert!(
        restored["state"].as_str().unwrap().contains('p'),
        "restored paused: {restored}"
    );
    events.expect_line("xend.domain.restore", EVENT);
    let mut con = xend.console(id);
    // The console history came along in the image.
    con.expect("\ntick 2 up ", MOVE);
    xend.act("keeper", "unpause", &[]).ok();
    let up_after = tick(&mut con, 3);
    assert!(
        up_after >= up_before,
        "uptime went back: {up_before} s before the save, {up_after} s after"
    );
    pattern_check(&mut con, 8, 77);
    let d = xend.domain("keeper");
    assert_eq!(d.memory, 32);
    assert!(!d.state.contains('p'), "unpaused: {}", d.state);
}

#[test]
fn names_outside_save_dir_and_bad_images_are_refused() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let (dom, mut con) = xend.create_booted("guard");
    let outside = xend.dir().join("outside");
    std::fs::create_dir_all(save_dir(&xend)).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, save_dir(&xend).join("escape")).unwrap();
    // A symlinked image name in the save dir whose target is a victim file:
    // the image must not be written through it.
    let victim = xend.dir().join("victim.txt");
    std::fs::write(&victim, "root's precious data\n").unwrap();
    std::os::unix::fs::symlink(&victim, save_dir(&xend).join("trap.img")).unwrap();
    let outside_abs = outside.join("x.img").display().to_string();
    for bad in [
        "../x.img",
        "sub/../../x.img",
        "escape/x.img",
        "trap.img",
        outside_abs.as_str(),
        "",
    ] {
        let r = save(&xend, "guard", bad).status(400).json();
        let msg = r["error"].as_str().unwrap();
        assert!(
            msg.starts_with("Invalid parameter: file: "),
            "{bad:?}: {msg}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root's precious data\n"
    );
    // The domain still runs.
    con.echo("still-here", MOVE);
    assert!(!xend.domain("guard").state.contains('p'));

    // A good image, then damaged copies of it.
    save(&xend, "guard", "good.img").ok();
    con.expect_closed(MOVE);
    let dir = save_dir(&xend);
    let good = std::fs::read(dir.join("good.img")).unwrap();
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x5a;
    std::fs::write(dir.join("corrupt.img"), &corrupt).unwrap();
    std::fs::write(dir.join("short.img"), &good[..good.len() / 2]).unwrap();
    std::fs::write(
        dir.join("junk.img"),
        b"this is not an image at all, just text\n",
    )
    .unwrap();
    // Hostile past the header: read by the jailed VMM's restore thread.
    let spec_len = u64::from_le_bytes(good[36..44].try_into().unwrap()) as usize;
    let spec_end = 44 + spec_len;
    let mut far = good[..spec_end].to_vec();
    far.extend_from_slice(b"RAM ");
    far.extend_from_slice(&(8u64 + 4096).to_le_bytes());
    far.extend_from_slice(&(1u64 << 40).to_le_bytes());
    far.extend_from_slice(&[0x5a; 4096]);
    std::fs::write(dir.join("far.img"), &far).unwrap();
    // Hostile in the header itself: refused before any VMM runs.
    let mut spec: serde_json::Value = serde_json::from_slice(&good[44..spec_end]).unwrap();
    spec["vcpus"] = 4_000_000_000u32.into();
    let spec = serde_json::to_vec(&spec).unwrap();
    let mut many = good[..32].to_vec();
    many.extend_from_slice(b"SPEC");
    many.extend_from_slice(&(spec.len() as u64).to_le_bytes());
    many.extend_from_slice(&spec);
    std::fs::write(dir.join("many.img"), &many).unwrap();
    std::fs::write(outside.join("good.img"), &good).unwrap();
    std::os::unix::fs::symlink(outside.join("good.img"), dir.join("link.img")).unwrap();
    for (file, why) in [
        ("far.img", "lie outside the domain's"),
        ("many.img", "4000000000 vCPUs"),
        ("corrupt.img", "the image is corrupted"),
        ("short.img", "the image is truncated"),
        ("junk.img", "not a domain image"),
        // One answer for every image that is not there (no existence oracle).
        ("link.img", "no such image in the save directory"),
        (
            "../../outside/good.img",
            "no such image in the save directory",
        ),
        ("missing.img", "no such image in the save directory"),
    ] {
        let r = restore(&xend, file, false).status(400).json();
        let msg = r["error"].as_str().unwrap();
        assert!(
            msg.starts_with("Invalid parameter: file: ") && msg.contains(why),
            "{file}: {msg}"
        );
        assert_no_domains(&xend);
    }
    // The good image restores once; a second copy of the name clashes.
    let first = restore(&xend, "good.img", false).status(201).json();
    assert_eq!(first["name"], "guard");
    let r = restore(&xend, "good.img", false).status(409).json();
    assert_eq!(r["error"], "vm name clash: guard");
    assert_eq!(xend.domain_names(), vec!["Domain-0", "guard"]);
    let mut con = xend.console(first["id"].as_u64().unwrap() as u32);
    con.echo("restored", MOVE);
    let _ = dom;
}

/// Issue 16 item 6: maxmem raised above the boot maxmem on a running domain
/// (the VMM maps more RAM) is memory the guest can use, the figures show it,
/// and it travels through save and restore.
#[test]
fn raised_maxmem_is_ram_the_guest_uses_and_keeps_across_save_and_restore() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name grower) (memory 16) (image (minios)))");
    assert_eq!(dom.maxmem, 16);
    let mut con = xend.console(dom.id);
    con.expect(&prompt("grower"), e2e::BOOT);
    con.send("mem 24\n");
    con.expect("mem: only ", MOVE);

    xend.act("grower", "maxmem_set", &[("memory", "48")]).ok();
    xend.wait_domain("grower", "maxmem 48", |d| {
        d.maxmem == 48 && d.maxmem_kib == 48 * 1024
    });
    xend.act("grower", "mem_target_set", &[("target", "40")])
        .ok();
    pattern_write(&mut con, 24, 9);
    let d = xend.wait_domain("grower", "24 MiB backing the guest", |d| {
        d.mem_kib >= 24 * 1024
    });
    assert_eq!((d.memory, d.maxmem), (40, 48), "{d:?}");
    // The stored config follows, so the next boot reserves as much.
    assert!(
        stored_config(&xend, "grower").contains("(maxmem 48)"),
        "{}",
        stored_config(&xend, "grower")
    );
    // Beyond the page tables' 8 GiB: refused with a 4xx, nothing changes.
    let r = xend.act("grower", "maxmem_set", &[("memory", "9000")]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(xend.domain("grower").maxmem, 48);

    let saved = save(&xend, "grower", "grower.img").ok().json();
    assert!(
        saved["image_bytes"].as_u64().unwrap() > 24 << 20,
        "the image holds the grown RAM: {saved}"
    );
    con.expect_closed(MOVE);
    let restored = restore(&xend, "grower.img", false).status(201).json();
    let id = restored["id"].as_u64().unwrap() as u32;
    let mut con = xend.console(id);
    // The console history came along; the check's answer follows it. (The
    // first 8 MiB only: every page read after a restore faults it in, which
    // is slow on a loaded nested-KVM host; the figures below show all of it
    // came back.)
    con.expect("pattern: wrote 24 MiB with seed 9", MOVE);
    pattern_check(&mut con, 8, 9);
    let d = xend.wait_domain("grower", "restored with its RAM", |d| {
        d.mem_kib >= 24 * 1024
    });
    assert_eq!((d.memory, d.maxmem), (40, 48), "{d:?}");
}

/// The `(config ...)` part of a domain's full SXP record.
fn stored_config(xend: &Xend, dom: &str) -> String {
    let body = xend.get(&format!("/xend/domain/{dom}")).ok().body;
    let at = body
        .find("(config")
        .unwrap_or_else(|| panic!("no config in {body}"));
    body[at..].to_string()
}

/// A maxmem raise counts against the host's memory like a new domain's
/// maximum: raising domains to 8 GiB each is refused (4xx, nothing changed,
/// the stored config untouched) at the first raise that would commit more
/// than the host has.
#[test]
fn a_maxmem_raise_that_would_overcommit_the_host_is_refused() {
    if !hypervisor::require_kvm() {
        return;
    }
    const BIG: u64 = 8192;
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_mib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("MemTotal")
        / 1024;
    let xend = Xend::start();
    let mut committed = 0;
    for i in 0.. {
        let name = format!("hog{i}");
        xend.create(&format!("(vm (name {name}) (memory 16) (image (minios)))"));
        committed += 16;
        let r = xend.act(&name, "maxmem_set", &[("memory", &BIG.to_string())]);
        if committed - 16 + BIG > total_mib {
            assert_eq!(r.status, 400, "raise {i} should be refused: {}", r.body);
            assert!(r.body.contains("would commit"), "{}", r.body);
            assert_eq!(xend.domain(&name).maxmem, 16);
            assert!(stored_config(&xend, &name).contains("(maxmem 16)"));
            break;
        }
        r.ok();
        committed += BIG - 16;
        assert_eq!(xend.domain(&name).maxmem, BIG);
    }
}
