//! Restart policy end to end: restart modes, xl's on_* actions, halt cancelling
//! a restart, and the minimum restart time ("restarting too fast").
use e2e::{BOOT, STATE, Xend, XendOptions, prompt, wait_for};

/// Create `name` from `config`, wait for its prompt; returns (id, console).
fn boot(xend: &Xend, name: &str, config: &str) -> (u32, e2e::Console) {
    let dom = xend.create(config);
    assert_eq!(dom.name, name);
    let mut con = xend.console(dom.id);
    con.expect(&prompt(name), BOOT);
    (dom.id, con)
}

#[test]
fn onreboot_restarts_in_place_and_keeps_the_console_client() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let mut events = e2e::EventPort::connect(&xend);
    let (id, mut con) = boot(&xend, "rb", "(vm (name rb) (memory 16) (image (minios)))");
    let first = xend.domain("rb");
    // Reboot from inside the guest: same id, name, console port; the connected
    // client sees the new boot on the same connection.
    con.send("reboot\n");
    con.expect("minios: reboot", BOOT);
    con.expect("booting", BOOT);
    con.expect(&prompt("rb"), BOOT);
    let after = xend.wait_domain("rb", "restarted", |d| d.start_time > first.start_time);
    assert_eq!((after.id, after.console_port), (id, first.console_port));
    assert!(!after.state.contains('s'), "{}", after.state);
    assert_eq!(xend.domain_names(), ["Domain-0", "rb"]);
    events.expect_line("(event xend.domain.shutdown (rb 1 reboot))", STATE);
    events.expect_line("(event xend.domain.restart (rb 1", STATE);
    // The console still works both ways.
    let out = con.run("uname", BOOT);
    assert!(out.contains("x86_64"), "{out}");
    // Reboot requested through the API (restart at least 1 s after the last).
    wait_for(STATE, "min-restart-time to pass", || {
        xend.domain("rb").up_time > 1.2
    });
    xend.act("rb", "shutdown", &[("reason", "reboot")])
        .status(202);
    let third = xend.wait_domain("rb", "second restart", |d| d.start_time > after.start_time);
    assert_eq!(third.id, id);
    // The new instance's boot, on the same client connection.
    con.expect("booting", BOOT);
    con.expect(&prompt("rb"), BOOT);
    // The DB record is rewritten with the restart time.
    let rec = std::fs::read_to_string(xend.db_dir().join("domain/1")).unwrap();
    assert!(rec.contains("(restart_time"), "{rec}");
    // Poweroff with onreboot: destroyed, console closed.
    con.send("poweroff\n");
    xend.wait_gone("rb");
    con.expect_closed(STATE);
}

#[test]
fn restart_modes_and_exit_actions() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // never: a reboot destroys it.
    let (_, mut never) = boot(&xend, "nv", "name = 'nv'\nmemory = 16\nrestart = 'never'\n");
    never.send("reboot\n");
    xend.wait_gone("nv");
    // always: a poweroff restarts it.
    let (id, mut always) = boot(
        &xend,
        "al",
        "(vm (name al) (memory 16) (restart always) (image (minios)))",
    );
    let t0 = xend.domain("al").start_time;
    always.send("poweroff\n");
    let d = xend.wait_domain("al", "restart after poweroff", |d| d.start_time > t0);
    assert_eq!(d.id, id);
    always.expect(&prompt("al"), BOOT);
    // halt cancels the restart even with always.
    xend.act("al", "shutdown", &[("reason", "halt")])
        .status(202);
    xend.wait_gone("al");
    always.expect_closed(STATE);
    // on_crash = preserve keeps the crashed domain for inspection.
    let (_, mut pc) = boot(
        &xend,
        "pc",
        "name = 'pc'\nmemory = 16\non_crash = 'preserve'\non_poweroff = 'preserve'\n",
    );
    pc.send("crash\n");
    let d = xend.wait_domain("pc", "crashed and preserved", |d| d.state == "----c-");
    assert_eq!(d.shutdown_reason.as_deref(), Some("crash"));
    let sx = sxp::parse(&xend.get("/xend/domain/pc").ok().body).unwrap();
    assert_eq!(sx.child_value("state"), Some("----c"));
    xend.act("pc", "destroy", &[]).ok();
    xend.wait_gone("pc");
    // on_reboot = destroy overrides restart = always.
    let (_, mut od) = boot(
        &xend,
        "od",
        "(vm (name od) (memory 16) (restart always) (on_reboot destroy) (image (minios)))",
    );
    od.send("reboot\n");
    xend.wait_gone("od");
    // on_crash = restart.
    let (id, mut cr) = boot(
        &xend,
        "cr",
        "name = 'cr'\nmemory = 16\non_crash = 'restart'\n",
    );
    let t0 = xend.domain("cr").start_time;
    cr.send("crash\n");
    let d = xend.wait_domain("cr", "restart after crash", |d| d.start_time > t0);
    assert_eq!(d.id, id);
    // A preserved poweroff shows the shutdown state letter.
    let (_, mut po) = boot(
        &xend,
        "po",
        "name = 'po'\nmemory = 16\non_poweroff = 'preserve'\n",
    );
    po.send("poweroff\n");
    let d = xend.wait_domain("po", "shut down and preserved", |d| d.state == "---s--");
    assert_eq!(d.shutdown_reason.as_deref(), Some("poweroff"));
}

#[test]
fn restarting_too_fast_destroys_the_domain() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        min_restart_time: 600.0,
        ..XendOptions::default()
    });
    let (id, mut con) = boot(
        &xend,
        "fast",
        "(vm (name fast) (memory 16) (restart always) (image (minios)))",
    );
    let t0 = xend.domain("fast").start_time;
    // The first restart is allowed.
    con.send("reboot\n");
    xend.wait_domain("fast", "first restart", |d| d.start_time > t0);
    con.expect(&prompt("fast"), BOOT);
    assert_eq!(xend.domain("fast").id, id);
    // The second one, well within min-restart-time, is refused.
    con.send("reboot\n");
    xend.wait_gone("fast");
    con.expect_closed(STATE);
    let log = xend.get("/xend/node/log").ok().body;
    assert!(log.contains("VM fast restarting too fast"), "{log}");
    assert!(
        std::fs::read_dir(xend.db_dir().join("domain"))
            .unwrap()
            .next()
            .is_none()
    );
}
