//! Virtual network interfaces and vnets through xend, inside a network
//! namespace the test creates and runs xend in (never the host's own
//! interfaces): xend creates the missing bridge, guests ping dom0's bridge
//! address and each other, `op=vifs` and the bulk endpoint count the
//! traffic, the MAC the VMM chose survives a restart, vifs attach and detach
//! while the guest runs, and vnets are bridges created and deleted through
//! the API.
use e2e::netns::Netns;
use e2e::{BOOT, STATE, Xend, prompt, wait_until};
use xend::api::{NetStats, Snapshot};

fn vifs(xend: &Xend, dom: &str) -> Vec<NetStats> {
    let r = xend.get_json(&format!("/xend/domain/{dom}?op=vifs")).ok();
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("bad vifs JSON {e}: {}", r.body))
}

#[test]
fn guests_on_xends_bridge_ping_dom0_and_each_other_and_the_counters_follow() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = Netns::enter("vif") else {
        return;
    };
    let xend = Xend::start();
    assert!(!ns.has_link("xenbr0"));
    let n1 = xend.create(
        "name = 'n1'\nmemory = 16\nextra = 'ip=10.78.0.21/24'\nvif = ['mac=aa:00:00:00:31:01']\n",
    );
    // xend made the default bridge; dom0 gets an address on it.
    assert!(ns.has_link("xenbr0"), "xend did not create xenbr0");
    ns.ip(&["addr", "add", "10.78.0.1/24", "dev", "xenbr0"])
        .unwrap();
    let n2 = xend.create("name = 'n2'\nmemory = 16\nextra = 'ip=10.78.0.22/24'\nvif = ['']\n");
    let mut c1 = xend.console(n1.id);
    c1.expect(&prompt("n1"), BOOT);
    let mut c2 = xend.console(n2.id);
    c2.expect(&prompt("n2"), BOOT);
    assert_eq!(
        ns.bridge_ports("xenbr0"),
        [format!("vif{}.0", n1.id), format!("vif{}.0", n2.id)]
    );

    // The VMM chose n2's MAC; xend stored it in the config.
    let v2 = vifs(&xend, "n2");
    assert_eq!(v2.len(), 1);
    let mac2 = v2[0].mac.clone();
    assert!(mac2.starts_with("aa:00:00:"), "{mac2}");
    let cfg = xend.get("/xend/domain/n2?op=config&format=xm").ok().body;
    assert!(cfg.contains(&format!("mac={mac2}")), "{cfg}");

    // The reference's vif sxpr.
    let one = xend.get("/xend/domain/n1?op=vif&vif=0").ok().body;
    assert!(
        one.starts_with(&format!(
            "(vif (idx 0) (vif 0) (mac aa:00:00:00:31:01) (vifname vif{}.0) (bridge xenbr0) (tx_bytes ",
            n1.id
        )),
        "{one}"
    );

    // A guest pings dom0's bridge address, then the other guest.
    let out = c1.run("ping 10.78.0.1 3", STATE);
    assert!(
        out.contains("ping: 3 packets transmitted, 3 received"),
        "{out}"
    );
    let before = vifs(&xend, "n2")[0].clone();
    let out = c1.run("ping 10.78.0.22 4", STATE);
    assert!(
        out.contains("ping: 4 packets transmitted, 4 received"),
        "{out}"
    );
    let after = vifs(&xend, "n2")[0].clone();
    let (rx, tx) = (
        after.rx_packets - before.rx_packets,
        after.tx_packets - before.tx_packets,
    );
    // Four echo requests in and four replies out, plus at most an ARP exchange.
    assert!(
        (4..=8).contains(&rx) && (4..=6).contains(&tx),
        "{before:?} -> {after:?}"
    );
    assert!(
        after.rx_bytes - before.rx_bytes >= 4 * 98,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.tx_bytes - before.tx_bytes >= 4 * 98,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.rx_errors + after.tx_errors, 0, "{after:?}");
    let out = c2.run("ping 10.78.0.21 2", STATE);
    assert!(
        out.contains("ping: 2 packets transmitted, 2 received"),
        "{out}"
    );

    // The bulk endpoint (what xtop polls) and the domain carry the same figures.
    let now = vifs(&xend, "n2")[0].clone();
    wait_until(STATE, "bulk vif figures", || {
        let r = xend.get_json("/xend/domain?op=stats").ok();
        let snap: Snapshot = serde_json::from_str(&r.body).unwrap();
        let d = snap.domains.into_iter().find(|d| d.name == "n2")?;
        let n = d.nets.first()?;
        (n.tx_packets >= now.tx_packets && n.vifname == now.vifname).then_some(())
    });
    assert_eq!(xend.domain("n2").nets[0].mac, mac2);
    let sxpr = xend.get("/xend/domain/n2").ok().body;
    assert!(sxpr.contains("(devices (vif (idx 0)"), "{sxpr}");
    let page = xend
        .request("GET", "/xend/domain/n2", e2e::Accept::Html, &[])
        .ok()
        .body;
    assert!(
        page.contains("<table id=\"vifs\">") && page.contains(&mac2),
        "{page}"
    );

    // A restart keeps the MAC the VMM chose.
    xend.act("n2", "destroy", &[("reason", "reboot")]).ok();
    // (The restart keeps the connected console client.)
    c2.expect(&prompt("n2"), BOOT);
    let out = c2.run("echo rebooted", STATE);
    assert!(out.contains("rebooted"), "{out}");
    assert_eq!(vifs(&xend, "n2")[0].mac, mac2);

    // Hot attach and detach; the stored config follows. A second vif on n1
    // (minios drives only its first, so this one is seen from the host).
    let r = xend
        .act(
            "n1",
            "device_create",
            &[("type", "vif"), ("config", "bridge=xenbr0")],
        )
        .ok();
    let made: NetStats = serde_json::from_str(&r.body).unwrap();
    assert_eq!((made.idx, made.bridge.as_str()), (1, "xenbr0"));
    assert_eq!(made.vifname, format!("vif{}.1", n1.id));
    assert!(ns.bridge_ports("xenbr0").contains(&made.vifname));
    // xend made the TAP (the jailed VMM cannot) and passed it; the VMM's
    // receive thread for it is filtered and unprivileged like the rest.
    let pid = e2e::jail::vmm_pid(&xend, n1.id);
    e2e::jail::assert_jailed(pid, n1.id, &[&format!("{}-rx", made.vifname)]);
    let cfg = xend.get("/xend/domain/n1?op=config&format=xm").ok().body;
    assert!(cfg.contains(&format!("mac={}", made.mac)), "{cfg}");
    xend.act("n1", "device_destroy", &[("type", "vif"), ("idx", "1")])
        .ok();
    assert_eq!(vifs(&xend, "n1").len(), 1);
    assert!(!ns.has_link(&made.vifname));
    let cfg = xend.get("/xend/domain/n1?op=config&format=xm").ok().body;
    assert!(!cfg.contains(&made.mac), "{cfg}");
    let r = xend.act("n1", "device_destroy", &[("type", "vif"), ("idx", "7")]);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = xend.post_json(
        "/xend/domain",
        &[
            ("op", "create"),
            (
                "config",
                "(vm (name bad) (memory 16) (device (vif (bridge a-bridge-name-too-long))) (image (minios)))",
            ),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("bridge name"), "{}", r.body);
    assert!(!ns.has_link("a-bridge-name-too-long"));

    // n2's only vif goes (named by its MAC) and a new one comes, SXP form:
    // the guest loses and regains eth0 and talks again.
    xend.act("n2", "device_destroy", &[("type", "vif"), ("idx", &mac2)])
        .ok();
    let out = c2.run("ifconfig", STATE);
    assert!(out.contains("no network interface"), "{out}");
    let r = xend
        .act_sxp(
            "n2",
            "device_create",
            &[("config", "(vif (mac aa:00:00:00:31:09) (bridge xenbr0))")],
        )
        .ok();
    assert!(
        r.body
            .starts_with("(vif (idx 0) (vif 0) (mac aa:00:00:00:31:09)"),
        "{}",
        r.body
    );
    let out = c2.run("ifconfig", STATE);
    assert!(out.contains("eth0: mac aa:00:00:00:31:09"), "{out}");
    c2.run("ip 10.78.0.22/24", STATE);
    let out = c2.run("ping 10.78.0.1 2", STATE);
    assert!(
        out.contains("ping: 2 packets transmitted, 2 received"),
        "{out}"
    );
    let cfg = xend.get("/xend/domain/n2?op=config&format=xm").ok().body;
    assert!(
        cfg.contains("mac=aa:00:00:00:31:09") && !cfg.contains(&mac2),
        "{cfg}"
    );
}

#[test]
fn vnets_are_bridges_created_and_deleted_through_the_api() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = Netns::enter("vnet") else {
        return;
    };
    let xend = Xend::start();
    assert_eq!(xend.get("/xend/vnet").ok().body.trim(), "()");
    let r = xend.post(
        "/xend/vnet",
        &[("op", "create"), ("config", "(vnet (id 7) (bridge vnbr7))")],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(ns.has_link("vnbr7"));
    let r = xend.post(
        "/xend/vnet",
        &[("op", "create"), ("config", "(vnet (id 7))")],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("vnet 7 already exists"), "{}", r.body);
    let r = xend.post(
        "/xend/vnet",
        &[("op", "create"), ("config", "(vnet (bridge x))")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = xend.post(
        "/xend/vnet",
        &[("op", "create"), ("config", "(vnet (id 8))")],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(ns.has_link("vnet8"));

    let list = xend.get("/xend/vnet").ok().body;
    assert_eq!(
        list.trim(),
        "((vnet (id 7) (bridge vnbr7) (vifs)) (vnet (id 8) (bridge vnet8) (vifs)))"
    );

    // A domain on the vnet: deleting it is refused until the vif goes.
    let d = xend.create("name = 'vn'\nmemory = 16\nvif = ['bridge=vnbr7']\n");
    let mut con = xend.console(d.id);
    con.expect(&prompt("vn"), BOOT);
    let one = xend.get_json("/xend/vnet/7").ok().json();
    assert_eq!(one["vifs"][0], format!("vif{}.0", d.id));
    let r = xend.post("/xend/vnet/7", &[("op", "delete")]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains(&format!("vif{}.0", d.id)), "{}", r.body);
    assert!(ns.has_link("vnbr7"));
    xend.act("vn", "device_destroy", &[("type", "vif"), ("idx", "0")])
        .ok();
    xend.post("/xend/vnet/7", &[("op", "delete")]).ok();
    assert!(!ns.has_link("vnbr7"));
    xend.get("/xend/vnet/7").status(404);
    xend.post("/xend/vnet/8", &[("op", "delete")]).ok();
    assert!(!ns.has_link("vnet8"));
    assert_eq!(xend.get("/xend/vnet").ok().body.trim(), "()");
}

#[test]
fn nics_join_the_configured_default_bridge_with_macs_kept_in_the_config() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = Netns::enter("nics") else {
        return;
    };
    let xend = Xend::start_with(e2e::XendOptions {
        extra_config: "(vif-bridge defbr9)".into(),
        ..e2e::XendOptions::default()
    });
    let d = xend.create("name = 'nn'\nmemory = 16\nnics = 2\n");
    let v = vifs(&xend, "nn");
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|n| n.bridge == "defbr9"), "{v:?}");
    assert_ne!(v[0].mac, v[1].mac);
    assert_eq!(
        ns.bridge_ports("defbr9"),
        [format!("vif{}.0", d.id), format!("vif{}.1", d.id)]
    );
    let cfg = xend.get("/xend/domain/nn?op=config").ok().body;
    for n in &v {
        assert!(cfg.contains(&format!("(mac {})", n.mac)), "{cfg}");
    }
}
