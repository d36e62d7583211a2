//! Virtual block devices through xend: a config's `disk = [...]` reaches the
//! VMM, the guest's writes land in the host file, the figures show in
//! `op=vbds`, the domain and the bulk endpoint, read-only and read-write
//! sharing are enforced, and disks attach and detach while the guest runs,
//! with the stored config following.
use std::path::{Path, PathBuf};

use e2e::{BOOT, STATE, Xend, XendOptions, prompt, wait_until};
use xend::api::{Snapshot, VbdStats};

/// A zeroed disk image of `kib` KiB.
fn disk(dir: &Path, name: &str, kib: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(kib * 1024).unwrap();
    path
}

fn vbds(xend: &Xend, dom: &str) -> Vec<VbdStats> {
    let r = xend.get_json(&format!("/xend/domain/{dom}?op=vbds")).ok();
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("bad vbds JSON {e}: {}", r.body))
}

fn stored_config(xend: &Xend, dom: &str) -> String {
    xend.get(&format!("/xend/domain/{dom}?op=config&format=xm"))
        .ok()
        .body
}

#[test]
fn a_config_disk_holds_what_the_guest_writes_and_the_figures_follow() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let img = disk(&xend.images_dir(), "d.img", 1024);
    let uname = format!("file:{}", img.display());
    let dom = xend.create(&format!(
        "name = 'dsk'\nmemory = 16\ndisk = ['{uname},xvda,w']\n"
    ));
    let mut con = xend.console(dom.id);
    con.expect(&prompt("dsk"), BOOT);
    let out = con.run("blkwrite xvda 8 100 xend-disk!", STATE);
    assert!(
        out.contains("blkwrite: xvda wrote 100 sectors at 8"),
        "{out}"
    );

    let data = std::fs::read(&img).unwrap();
    let sector: Vec<u8> = b"xend-disk!".iter().copied().cycle().take(512).collect();
    for s in 8..108 {
        assert_eq!(&data[s * 512..(s + 1) * 512], &sector[..], "sector {s}");
    }
    assert!(
        data[..8 * 512].iter().all(|&b| b == 0),
        "sectors 0-7 untouched"
    );
    assert!(
        data[108 * 512..].iter().all(|&b| b == 0),
        "sectors after 107 untouched"
    );

    // op=vbds: the device and its counters.
    let v = vbds(&xend, "dsk");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (
            v[0].idx,
            v[0].dev.as_str(),
            v[0].uname.as_str(),
            v[0].mode.as_str()
        ),
        (0, "xvda", uname.as_str(), "w")
    );
    assert_eq!(v[0].wr_sect, 100, "{v:?}");
    assert!(v[0].wr_req >= 1, "{v:?}");
    assert_eq!(v[0].oo_req, 0, "{v:?}");
    let out = con.run("blkread xvda 0 16", STATE);
    assert!(out.contains("checksum"), "{out}");
    let v = vbds(&xend, "dsk");
    assert_eq!(v[0].rd_sect, 16, "{v:?}");

    // The reference's sxpr shapes: one vbd, the list, and the domain's devices.
    let one = xend.get("/xend/domain/dsk?op=vbd&vbd=0").ok().body;
    assert!(
        one.starts_with(&format!(
            "(vbd (idx 0) (vdev 51712) (device 51712) (mode w) (dev xvda) (uname {uname}) (rd_req "
        )),
        "{one}"
    );
    assert!(one.contains("(wr_sect 100)"), "{one}");
    let list = xend.get("/xend/domain/dsk?op=vbds").ok().body;
    assert!(list.starts_with("((vbd (idx 0)"), "{list}");
    xend.get("/xend/domain/dsk?op=vbd&vbd=3").status(404);
    xend.get("/xend/domain/dsk?op=vbd").status(400);
    let sxpr = xend.get("/xend/domain/dsk").ok().body;
    assert!(sxpr.contains("(devices (vbd (idx 0)"), "{sxpr}");
    let page = xend
        .request("GET", "/xend/domain/dsk", e2e::Accept::Html, &[])
        .ok()
        .body;
    assert!(
        page.contains("<table id=\"vbds\">")
            && page.contains(&format!(
                "<td>xvda</td><td class=\"l\">{uname}</td><td>w</td>"
            )),
        "{page}"
    );

    // The domain and the bulk endpoint carry the same figures.
    assert_eq!(xend.domain("dsk").vbds[0].wr_sect, 100);
    wait_until(STATE, "bulk vbd figures", || {
        let r = xend.get_json("/xend/domain?op=stats").ok();
        let snap: Snapshot = serde_json::from_str(&r.body).unwrap();
        let d = snap.domains.into_iter().find(|d| d.name == "dsk")?;
        (d.vbds.first()?.rd_sect == 16 && d.vbds[0].wr_sect == 100).then_some(())
    });

    // A restarted xend re-adopts the domain with its disk and figures.
    drop(con);
    xend.stop();
    xend.restart_foreground();
    let v = vbds(&xend, "dsk");
    assert_eq!((v.len(), v[0].wr_sect, v[0].rd_sect), (1, 100, 16), "{v:?}");
    assert!(stored_config(&xend, "dsk").contains(&format!("{uname},xvda,w")));

    // A reboot hands the disk (and its lock) to the new VMM: the data is there.
    let mut con = xend.console(dom.id);
    con.echo("live", STATE); // past the history
    con.expect(&prompt("dsk"), STATE);
    xend.act("dsk", "destroy", &[("reason", "reboot")]).ok();
    con.expect(&prompt("dsk"), BOOT);
    let out = con.run("blkverify xvda 8 100 xend-disk!", STATE);
    assert!(
        out.contains("blkverify: xvda 100 sectors at 8: ok"),
        "{out}"
    );
    assert_eq!(vbds(&xend, "dsk")[0].rd_sect, 100);
}

#[test]
fn read_only_disks_refuse_writes_and_a_writer_excludes_others_unless_shared() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let shared = disk(&xend.images_dir(), "shared.img", 256);
    let ro = disk(&xend.images_dir(), "ro.img", 256);
    let cfg = |name: &str, disks: &str| format!("name = '{name}'\nmemory = 16\ndisk = [{disks}]\n");

    let a = xend.create(&cfg(
        "rw1",
        &format!(
            "'file:{},xvda,w', 'file:{},xvdb,r'",
            shared.display(),
            ro.display()
        ),
    ));
    let mut con = xend.console(a.id);
    con.expect(&prompt("rw1"), BOOT);
    let out = con.run("blkwrite xvdb 0 4 nope", STATE);
    assert!(out.contains("read-only device"), "{out}");
    assert!(
        std::fs::read(&ro).unwrap().iter().all(|&b| b == 0),
        "ro.img written"
    );
    let v = vbds(&xend, "rw1");
    assert_eq!(v[1].mode, "r");
    assert_eq!(v[1].wr_sect, 0, "{v:?}");

    // A second domain asking for the same disk read-write is refused, clearly.
    let r = xend.post_json(
        "/xend/domain",
        &[
            ("op", "create"),
            (
                "config",
                &cfg("rw2", &format!("'file:{},xvda,w'", shared.display())),
            ),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let err = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains(&format!(
            "disk {} is in use by another domain",
            shared.display()
        )) && err.contains("w!"),
        "{err}"
    );
    assert!(
        xend.try_domain("rw2").is_none(),
        "refused domain left behind"
    );
    // ... and so is reading it while it is written.
    let r = xend.post_json(
        "/xend/domain",
        &[
            ("op", "create"),
            (
                "config",
                &cfg("rd2", &format!("'file:{},xvda,r'", shared.display())),
            ),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // w! shares it read-write on purpose; the second writer's data lands.
    let b = xend.create(&cfg("rw3", &format!("'file:{},xvda,w!'", shared.display())));
    let mut con3 = xend.console(b.id);
    con3.expect(&prompt("rw3"), BOOT);
    let out = con3.run("blkwrite xvda 2 1 shared!", STATE);
    assert!(out.contains("wrote 1 sectors at 2"), "{out}");
    let data = std::fs::read(&shared).unwrap();
    assert_eq!(&data[1024..1031], b"shared!");

    // Backends other than file: and phy: are refused before any VMM starts.
    let r = xend.post_json(
        "/xend/domain",
        &[
            ("op", "create"),
            ("config", &cfg("bad", "'nbd:host:1,xvda,w'")),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("file:PATH or phy:DEVICE"), "{}", r.body);
}

#[test]
fn disks_attach_and_detach_while_the_guest_runs_and_the_config_follows() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let img = disk(&xend.images_dir(), "hot.img", 256);
    let img2 = disk(&xend.images_dir(), "hot2.img", 256);
    let (dom, mut con) = xend.create_booted("hot");
    assert!(vbds(&xend, "hot").is_empty());

    // SXP config.
    let vbd = format!("(vbd (uname file:{}) (dev xvdb) (mode w))", img.display());
    let r = xend.act("hot", "device_create", &[("config", &vbd)]).ok();
    let made: VbdStats = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (made.idx, made.dev.as_str(), made.mode.as_str()),
        (0, "xvdb", "w")
    );
    let out = con.run("blkwrite xvdb 1 3 hot", STATE);
    assert!(out.contains("blkwrite: xvdb wrote 3 sectors at 1"), "{out}");
    assert_eq!(&std::fs::read(&img).unwrap()[512..515], b"hot");
    assert!(
        stored_config(&xend, "hot").contains(&format!("file:{},xvdb,w", img.display())),
        "{}",
        stored_config(&xend, "hot")
    );

    // xm's text form with type=vbd.
    let text = format!("file:{},xvdc,r", img2.display());
    let r = xend
        .act_sxp(
            "hot",
            "device_create",
            &[("type", "vbd"), ("config", &text)],
        )
        .ok();
    assert!(r.body.starts_with("(vbd (idx 1)"), "{}", r.body);
    assert!(r.body.contains("(dev xvdc)"), "{}", r.body);
    let v = vbds(&xend, "hot");
    assert_eq!(v.len(), 2, "{v:?}");

    // Bad requests: a clear error, nothing attached.
    let r = xend.act(
        "hot",
        "device_create",
        &[("config", "(vbd (uname file:/x) (dev xvdd))")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("(vbd ...) needs (mode"), "{}", r.body);
    let r = xend.act(
        "hot",
        "device_create",
        &[("type", "vbd"), ("config", "nbd:x,xvdd,w")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = xend.act(
        "hot",
        "device_create",
        &[
            ("type", "vbd"),
            ("config", &format!("file:{},xvdb,r", img2.display())),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("already has a disk named xvdb"),
        "{}",
        r.body
    );
    assert_eq!(vbds(&xend, "hot").len(), 2);

    // Detach by guest name and by index.
    xend.act("hot", "device_destroy", &[("type", "vbd"), ("idx", "xvdb")])
        .ok();
    let out = con.run("blkwrite xvdb 1 3 gone", STATE);
    assert!(out.contains("xvdb: no such disk"), "{out}");
    xend.act("hot", "device_destroy", &[("type", "vbd"), ("idx", "1")])
        .ok();
    assert!(vbds(&xend, "hot").is_empty());
    let cfg = stored_config(&xend, "hot");
    assert!(!cfg.contains("disk"), "{cfg}");
    let r = xend.act("hot", "device_destroy", &[("type", "vbd"), ("idx", "0")]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("has no vbd 0"), "{}", r.body);
    let r = xend.act("hot", "device_destroy", &[("type", "disk"), ("idx", "0")]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(dom.name, "hot");
}

#[test]
fn a_saved_domain_comes_back_with_its_disk() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let img = disk(&xend.images_dir(), "s.img", 256);
    let dom = xend.create(&format!(
        "name = 'sv'\nmemory = 16\ndisk = ['file:{},xvda,w']\n",
        img.display()
    ));
    let mut con = xend.console(dom.id);
    con.expect(&prompt("sv"), BOOT);
    let out = con.run("blkwrite xvda 4 8 saved!", STATE);
    assert!(out.contains("wrote 8 sectors at 4"), "{out}");
    xend.act("sv", "save", &[("file", "sv.img")]).ok();
    xend.wait_gone("sv");
    let r = xend.post_json("/xend/domain", &[("op", "restore"), ("file", "sv.img")]);
    assert!(
        r.status == 200 || r.status == 201,
        "{}\n{}",
        r.body,
        xend.output()
    );
    let v = vbds(&xend, "sv");
    assert_eq!((v.len(), v[0].dev.as_str()), (1, "xvda"), "{v:?}");
    let id = xend.domain("sv").id;
    let mut con = xend.console(id);
    con.echo("restored", STATE);
    con.expect(&prompt("sv"), STATE);
    let out = con.run("blkverify xvda 4 8 saved!", STATE);
    assert!(out.contains("blkverify: xvda 8 sectors at 4: ok"), "{out}");
    let out = con.run("blkwrite xvda 20 2 after", STATE);
    assert!(out.contains("wrote 2 sectors at 20"), "{out}");
    assert_eq!(
        &std::fs::read(&img).unwrap()[20 * 512..20 * 512 + 5],
        b"after"
    );
}

#[test]
fn a_domain_migrates_with_a_shared_disk_and_a_held_one_is_refused_clearly() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    // One host: the destination must allow the source's image directory.
    let b = Xend::start_with(XendOptions {
        disk_dirs: vec![a.images_dir()],
        ..XendOptions::default()
    });
    let held = disk(&a.images_dir(), "held.img", 256);
    let shared = disk(&a.images_dir(), "shared.img", 256);
    let cfg = |name: &str, img: &Path, mode: &str| {
        format!(
            "name = '{name}'\nmemory = 16\ndisk = ['file:{},xvda,{mode}']\n",
            img.display()
        )
    };
    // On one host the source VMM still holds a `w` disk while the
    // destination starts: refused, and the domain runs on where it was.
    let d = a.create(&cfg("held", &held, "w"));
    let r = e2e::save::migrate(&a, "held", &b, false);
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("is in use by another domain"), "{}", r.body);
    let mut con = a.console(d.id);
    con.expect(&prompt("held"), BOOT);
    let out = con.run("blkwrite xvda 0 1 still-here", STATE);
    assert!(out.contains("wrote 1 sectors"), "{out}");
    assert!(b.try_domain("held").is_none());

    // `w!` shares it: the domain arrives with its disk.
    let d = a.create(&cfg("mover", &shared, "w!"));
    let mut con = a.console(d.id);
    con.expect(&prompt("mover"), BOOT);
    let out = con.run("blkwrite xvda 3 2 moving", STATE);
    assert!(out.contains("wrote 2 sectors at 3"), "{out}");
    let r = e2e::save::migrate(&a, "mover", &b, false).ok().json();
    let id = r["domid"].as_u64().unwrap() as u32;
    let v = vbds(&b, "mover");
    assert_eq!((v.len(), v[0].mode.as_str()), (1, "w!"), "{v:?}");
    let mut con = b.console(id);
    con.echo("arrived", STATE);
    con.expect(&prompt("mover"), STATE);
    let out = con.run("blkverify xvda 3 2 moving", STATE);
    assert!(out.contains("blkverify: xvda 2 sectors at 3: ok"), "{out}");
}
