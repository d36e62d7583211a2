//! xm's device and vnet commands end to end: a real xend (in a network
//! namespace the test creates, so its bridges never touch the host's
//! interfaces), a real minios guest, and the API checked after each command.
use std::process::Output;

use e2e::netns::Netns;
use e2e::{STATE, Xend};

fn xm(xend: &Xend, args: &[&str]) -> Output {
    xend.command("xm")
        .arg("-H")
        .arg(xend.base_url())
        .args(args)
        .output()
        .expect("run xm")
}

/// Runs xm, asserts success and an empty stderr, returns stdout.
#[track_caller]
fn ok(xend: &Xend, args: &[&str]) -> String {
    let out = xm(xend, args);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "xm {args:?} failed: {out:?}\n{}",
        xend.output()
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn xm_attaches_lists_and_detaches_disks_and_vifs_and_manages_vnets() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = Netns::enter("xm") else {
        return;
    };
    let xend = Xend::start();
    let img = xend.images_dir().join("x.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(256 * 1024)
        .unwrap();
    let uname = format!("file:{}", img.display());
    let (dom, mut con) = xend.create_booted("xd");

    // Disks.
    assert_eq!(ok(&xend, &["vbd-list", "xd"]), "");
    ok(&xend, &["block-attach", "xd", &uname, "xvdb", "w"]);
    let out = con.run("blkwrite xvdb 0 2 by-xm", STATE);
    assert!(out.contains("blkwrite: xvdb wrote 2 sectors at 0"), "{out}");
    assert_eq!(&std::fs::read(&img).unwrap()[..5], b"by-xm");
    let list = ok(&xend, &["vbd-list", "xd"]);
    assert!(
        list.starts_with(&format!(
            "(vbd (idx 0) (vdev 51728) (device 51728) (mode w) (dev xvdb) (uname {uname})"
        )) && list.contains("(wr_sect 2)")
            && list.lines().count() == 1,
        "{list}"
    );
    let out = xm(&xend, &["block-attach", "xd", "nbd:x", "xvdc", "w"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("file:PATH or phy:DEVICE"), "{err}");
    ok(&xend, &["block-detach", "xd", "xvdb"]);
    assert_eq!(ok(&xend, &["vbd-list", "xd"]), "");
    ok(&xend, &["vbd-create", "xd", &uname, "xvdc", "r"]);
    let list = ok(&xend, &["vbd-list", "xd"]);
    assert!(
        list.contains("(dev xvdc)") && list.contains("(mode r)"),
        "{list}"
    );
    ok(&xend, &["vbd-destroy", "xd", "0"]);
    assert_eq!(ok(&xend, &["vbd-list", "xd"]), "");

    // Network interfaces (xend creates the bridge).
    assert_eq!(ok(&xend, &["vif-list", "xd"]), "");
    ok(
        &xend,
        &[
            "network-attach",
            "xd",
            "mac=aa:00:00:00:41:01",
            "bridge=xmbr0",
        ],
    );
    assert_eq!(ns.bridge_ports("xmbr0"), [format!("vif{}.0", dom.id)]);
    let out = con.run("ifconfig", STATE);
    assert!(out.contains("eth0: mac aa:00:00:00:41:01"), "{out}");
    let list = ok(&xend, &["vif-list", "xd"]);
    assert!(
        list.starts_with(&format!(
            "(vif (idx 0) (vif 0) (mac aa:00:00:00:41:01) (vifname vif{}.0) (bridge xmbr0)",
            dom.id
        )),
        "{list}"
    );
    let out = xm(&xend, &["network-attach", "xd", "colour=red"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("colour"), "{err}");
    ok(&xend, &["network-detach", "xd", "0"]);
    assert_eq!(ok(&xend, &["vif-list", "xd"]), "");
    assert!(ns.bridge_ports("xmbr0").is_empty());

    // Vnets.
    assert_eq!(ok(&xend, &["vnet-list"]), "");
    let cfg = xend.dir().join("vnet.sxp");
    std::fs::write(&cfg, "(vnet (id 42) (bridge vnbr42))\n").unwrap();
    ok(&xend, &["vnet-create", cfg.to_str().unwrap()]);
    assert!(ns.has_link("vnbr42"));
    assert_eq!(
        ok(&xend, &["vnet-list"]),
        "(vnet (id 42) (bridge vnbr42) (vifs))\n"
    );
    let out = xm(&xend, &["vnet-create", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: vnet 42 already exists\n"
    );
    ok(&xend, &["vnet-delete", "42"]);
    assert!(!ns.has_link("vnbr42"));
    assert_eq!(ok(&xend, &["vnet-list"]), "");
}
