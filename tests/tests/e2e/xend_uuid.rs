//! Domain UUIDs end to end: a given one is kept and shown everywhere (SXP
//! record, JSON, `xm list -l`, the stored config), a generated one survives a
//! reboot-restart, an xend restart, save/restore and a migration; lookup by
//! UUID; clashes; and the config keys of later Xen-era tools.
use e2e::save::{MOVE, migrate, restore, save, tick};
use e2e::{BOOT, Xend, prompt};

const GIVEN: &str = "6f1c2a4e-0b7d-4c8e-9a51-3d2f0e6b7c90";

/// The `(uuid ...)` of the SXP domain record of `dom`.
#[track_caller]
fn record_uuid(xend: &Xend, dom: &str) -> String {
    let r = xend.get(&format!("/xend/domain/{dom}")).ok();
    let rec = sxp::parse(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    rec.child_value("uuid")
        .unwrap_or_else(|| panic!("no (uuid ...) in {}", r.body))
        .to_string()
}

/// A create that must fail: its status and message.
fn create_err(xend: &Xend, config: &str) -> (u16, String) {
    let r = xend.post("/xend/domain", &[("op", "create"), ("config", config)]);
    (r.status, r.body)
}

#[test]
fn a_given_uuid_is_kept_shown_and_looked_up() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create(&format!(
        "(vm (name given) (uuid {GIVEN}) (memory 16) (localtime 1) (image (minios)))"
    ));
    assert_eq!(dom.uuid.as_deref(), Some(GIVEN), "{dom:?}");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("given"), BOOT);

    // The SXP record: 2.0.6's fields first and unchanged, ours after, the
    // uuid among them.
    let r = xend.get("/xend/domain/given").ok();
    let rec = sxp::parse(&r.body).unwrap();
    let heads: Vec<&str> = rec
        .as_list()
        .unwrap()
        .iter()
        .filter_map(|v| v.head())
        .collect();
    assert_eq!(
        heads[..5],
        ["id", "name", "memory", "maxmem", "state"],
        "{heads:?}"
    );
    let at = |k: &str| heads.iter().position(|h| *h == k).unwrap();
    assert!(
        at("uuid") > at("config") && at("uuid") > at("vmm_overhead_kib"),
        "{heads:?}"
    );
    assert_eq!(rec.child_value("uuid"), Some(GIVEN));
    let config = rec.child("config").unwrap().to_string();
    assert!(config.contains(&format!("(uuid {GIVEN})")), "{config}");
    assert!(config.contains("(localtime 1)"), "{config}");

    // JSON, and lookup by uuid (JSON, SXP and an action).
    assert_eq!(xend.domain("given").uuid.as_deref(), Some(GIVEN));
    let by_uuid = xend.domain(GIVEN);
    assert_eq!((by_uuid.id, by_uuid.name.as_str()), (dom.id, "given"));
    assert_eq!(record_uuid(&xend, GIVEN), GIVEN);
    xend.act(GIVEN, "pause", &[]).ok();
    xend.wait_domain("given", "paused by uuid", |d| d.state.contains('p'));
    xend.act(GIVEN, "unpause", &[]).ok();
    // An unknown uuid is an unknown domain.
    xend.get_json("/xend/domain/00000000-0000-4000-8000-000000000000")
        .status(404);

    // The stored config, both forms.
    let sxp_cfg = xend.get("/xend/domain/given?op=config").ok().body;
    assert!(sxp_cfg.contains(&format!("(uuid {GIVEN})")), "{sxp_cfg}");
    let xm_cfg = xend.get("/xend/domain/given?op=config&format=xm").ok().body;
    assert!(xm_cfg.contains(&format!("uuid = \"{GIVEN}\"")), "{xm_cfg}");
    assert!(xm_cfg.contains("localtime = 1"), "{xm_cfg}");

    // xm: list -l shows it, and xm takes a uuid where it takes a name.
    let out = xend
        .command("xm")
        .args(["list", "-l", "given"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains(&format!("(uuid {GIVEN})")), "{text}");
    let out = xend.command("xm").args(["list", GIVEN]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.lines().any(|l| l.starts_with("given ")), "{text}");

    // Another domain with the same uuid: 409, like a name clash.
    let (status, body) = create_err(
        &xend,
        &format!("(vm (name twin) (uuid {GIVEN}) (memory 16) (image (minios)))"),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(GIVEN) && body.contains("given"), "{body}");
    assert!(xend.try_domain("twin").is_none());

    // configure may not change it; leaving it out keeps it.
    let r = xend.act(
        "given",
        "configure",
        &[(
            "config",
            "(vm (name given) (uuid 11111111-2222-4333-8444-555555555555) (memory 16) (image (minios)))",
        )],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("uuid cannot change"), "{}", r.body);
    xend.act(
        "given",
        "configure",
        &[("config", "(vm (name given) (memory 16) (image (minios)))")],
    )
    .ok();
    assert_eq!(record_uuid(&xend, "given"), GIVEN);
}

#[test]
fn a_generated_uuid_survives_reboot_xend_restart_save_restore_and_migration() {
    if !hypervisor::require_kvm() {
        return;
    }
    // Two xends sharing a token: the source's token opens the destination.
    let (mut a, b) = Xend::start_pair();
    let (dom, mut con) = a.create_booted("keeper");
    let uuid = dom.uuid.clone().expect("a generated uuid");
    assert!(e2e_is_v4(&uuid), "{uuid}");
    assert_eq!(record_uuid(&a, "keeper"), uuid);

    // A reboot from inside the guest (restart policy onreboot).
    con.send("reboot\n");
    con.expect("booting", BOOT);
    con.expect(&prompt("keeper"), BOOT);
    let after = a.wait_domain("keeper", "restarted", |d| d.start_time > dom.start_time);
    assert_eq!(after.uuid.as_deref(), Some(uuid.as_str()));

    // xend restarts and re-adopts the domain from its record.
    drop(con);
    a.stop();
    a.restart_foreground();
    assert_eq!(a.domain("keeper").uuid.as_deref(), Some(uuid.as_str()));
    assert_eq!(a.domain(&uuid).name, "keeper");

    // Save and restore.
    save(&a, "keeper", "keeper.img").ok();
    a.wait_gone("keeper");
    let restored = restore(&a, "keeper.img", false).status(201).json();
    assert_eq!(restored["uuid"], uuid.as_str(), "{restored}");
    let id = a.domain("keeper").id;
    let mut con = a.console(id);
    tick(&mut con, 1);

    // Migrate to b: the config travels with the uuid.
    migrate(&a, "keeper", &b, true).ok();
    con.expect_closed(MOVE);
    a.wait_gone("keeper");
    let on_b = b.domain(&uuid);
    assert_eq!(on_b.name, "keeper");
    assert_eq!(on_b.uuid.as_deref(), Some(uuid.as_str()));
    assert_eq!(record_uuid(&b, "keeper"), uuid);
}

/// Version 4 (random), canonical lowercase.
fn e2e_is_v4(s: &str) -> bool {
    s.len() == 36
        && s.as_bytes()[14] == b'4'
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn configs_that_cannot_be_honoured_are_refused_naming_the_key() {
    let xend = Xend::start();
    for (config, status, needle) in [
        (
            "(vm (name a) (memory 16) (uuid 6F1C2A4E-0B7D-4C8E-9A51-3D2F0E6B7C90) (image (minios)))",
            400,
            "config:1:32: uuid must be 8-4-4-4-12 lowercase hex digits",
        ),
        (
            "name = 'a'\nmemory = 16\nuuid = 'not-a-uuid'",
            400,
            "config:3:8: uuid must be 8-4-4-4-12 lowercase hex digits",
        ),
        (
            "(vm (name a) (memory 16) (bootloader /usr/bin/pygrub) (image (minios)))",
            400,
            "config:1:38: bootloader is not supported",
        ),
        (
            "name = 'a'\nmemory = 16\nbuilder = 'hvm'",
            400,
            "config:3:11: builder \"hvm\" is not supported",
        ),
        (
            "(vm (name a) (memory 16) (image (hvm (kernel /usr/lib/xen/boot/hvmloader))))",
            400,
            "config:1:33: image type hvm is not supported",
        ),
        (
            "(vm (name a) (memory 16) (vcpus 2) (vcpu_avail 1) (image (minios)))",
            400,
            "vCPU hot-plug is not supported",
        ),
        (
            "(vm (name a) (memory 16))",
            400,
            "config:1:1: (vm ...) has no (image ...): add (image (minios))",
        ),
        (
            "(vm (name a) (memory 16) (pae 1) (image (minios)))",
            400,
            "config:1:26: unknown key pae",
        ),
    ] {
        let (got, body) = create_err(&xend, config);
        assert_eq!(got, status, "{config}: {body}");
        assert!(body.contains(needle), "{config}: {body}");
    }
    assert_eq!(xend.domain_names(), ["Domain-0"]);
}

#[test]
fn configs_of_later_tools_that_can_be_honoured_are_accepted() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // What libvirt's xend driver sent for a paravirtual guest.
    let dom = xend.create(
        "(vm (name lv) (uuid 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d) (memory 16) (vcpus 2) \
         (vcpu_avail 3) (localtime 0) (on_poweroff destroy) (on_reboot restart) \
         (on_crash destroy) (image (minios)))",
    );
    assert_eq!(
        dom.uuid.as_deref(),
        Some("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    );
    assert_eq!(dom.vcpus, 2);
    // The xm form's default stays: no kernel line boots minios.
    let dom = xend.create("name = 'plain'\nmemory = 16\nvcpu_avail = 1\nbuilder = 'linux'");
    assert!(dom.uuid.is_some());
    let mut con = xend.console(dom.id);
    con.expect(&prompt("plain"), BOOT);
}
