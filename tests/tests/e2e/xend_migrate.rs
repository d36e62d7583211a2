//! Migration between two real xends on this machine (separate state dirs,
//! DBs and ports; the destination guarded by a token): the guest keeps
//! counting and keeps its memory across a stop-and-copy and a live
//! migration, its console answers on the destination's port, and failed
//! migrations (destination down, wrong token, name taken there) leave it
//! running on the source.
use std::time::Duration;

use e2e::save::{MOVE, assert_no_domains, migrate, pattern_check, pattern_write, tick};
use e2e::{EventPort, Xend, XendOptions, prompt};

const EVENT: Duration = Duration::from_secs(30);

fn with_token(token: &str) -> Xend {
    Xend::start_with(XendOptions {
        token: Some(token.into()),
        ..XendOptions::default()
    })
}

#[test]
fn a_domain_migrates_there_and_back_and_runs_on() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let b = with_token("b-secret");
    let mut a_events = EventPort::connect(&a);
    let mut b_events = EventPort::connect(&b);
    let dom = a.create("(vm (name rover) (memory 32) (image (minios)))");
    let mut con = a.console(dom.id);
    con.expect(&prompt("rover"), e2e::BOOT);
    tick(&mut con, 1);
    pattern_write(&mut con, 8, 5);
    let up1 = tick(&mut con, 2);

    // Stop-and-copy to b.
    let r = migrate(&a, "rover", &b, false).ok().json();
    assert_eq!(r["name"], "rover", "{r}");
    assert_eq!(r["destination"], format!("127.0.0.1:{}", b.api_port()));
    assert_eq!(r["live"], false);
    assert!(r["bytes"].as_u64().unwrap() > 8 << 20, "{r}");
    let b_id = r["domid"].as_u64().unwrap() as u32;
    // Gone from a (VMM, record, console), running on b.
    assert!(a.try_domain("rover").is_none());
    con.expect_closed(MOVE);
    assert_no_domains(&a);
    assert!(
        a_events
            .expect_line("xend.domain.migrate", EVENT)
            .contains("rover")
    );
    b_events.expect_line("xend.domain.migrate", EVENT);
    let on_b = b.domain("rover");
    assert_eq!(on_b.id, b_id);
    assert_eq!(on_b.memory, 32);
    assert_eq!(on_b.console_port, Some(b.console_port(b_id)));
    let mut con = b.console(b_id);
    con.echo("on-b", MOVE);
    let up2 = tick(&mut con, 3);
    assert!(up2 >= up1, "uptime went back: {up1} s, then {up2} s on b");
    pattern_check(&mut con, 8, 5);

    // Live, back to a (which has no token; b sends its own, a ignores it).
    let r = migrate(&b, "rover", &a, true).ok().json();
    assert_eq!(r["live"], true, "{r}");
    assert!(r["downtime_seconds"].as_f64().unwrap() <= r["total_seconds"].as_f64().unwrap());
    let a_id = r["domid"].as_u64().unwrap() as u32;
    con.expect_closed(MOVE);
    assert_no_domains(&b);
    let mut con = a.console(a_id);
    con.echo("home-again", MOVE);
    let up3 = tick(&mut con, 4);
    assert!(up3 >= up2, "uptime went back: {up2} s, then {up3} s on a");
    pattern_check(&mut con, 8, 5);
    assert_eq!(a.domain_names(), vec!["Domain-0", "rover"]);
}

#[test]
fn a_failed_migration_leaves_the_domain_running_on_the_source() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let b = with_token("right-token");
    let (dom, mut con) = a.create_booted("stayer");
    tick(&mut con, 1);

    // Nothing listens at the destination.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dest = format!("127.0.0.1:{port}");
    let r = a
        .act("stayer", "migrate", &[("destination", dest.as_str())])
        .status(502)
        .json();
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains("cannot reach the destination xend"), "{msg}");

    // The wrong token.
    let dest = format!("127.0.0.1:{}", b.api_port());
    let r = a
        .act(
            "stayer",
            "migrate",
            &[("destination", dest.as_str()), ("token", "wrong-token")],
        )
        .status(502)
        .json();
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains("refused"), "{msg}");
    assert_no_domains(&b);

    // The name is taken at the destination.
    b.create("(vm (name stayer) (memory 16) (image (minios)))");
    let r = migrate(&a, "stayer", &b, true).status(502).json();
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains("vm name clash: stayer"), "{msg}");
    assert_eq!(b.domain_names(), vec!["Domain-0", "stayer"]);

    // The destination-side ops refuse a domain that is not arriving.
    let r = a.act("stayer", "migrate_abort", &[]).status(400).json();
    assert_eq!(
        r["error"],
        "Invalid parameter: op: domain stayer is not arriving by migration"
    );

    // A bad destination is the client's mistake.
    a.act("stayer", "migrate", &[("destination", "no host/x")])
        .status(400);

    // Still running on a, same id, same console, counter intact.
    let d = a.domain("stayer");
    assert_eq!(d.id, dom.id);
    assert!(
        !d.state.contains('p') && !d.state.contains('c'),
        "{}",
        d.state
    );
    con.echo("still-here", MOVE);
    tick(&mut con, 2);
}

/// The destination xend accepts the migration, but its VMM then refuses the
/// source VMM (it was started with another token, by a wrapper in place of
/// the VMM binary): the source tells the destination to abort, which kills
/// the waiting VMM and forgets the domain, and the guest runs on at the
/// source.
#[test]
fn a_migration_the_destination_vmm_refuses_is_aborted_on_both_sides() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let mut b = Xend::start();
    let wrapper = b.dir().join("vmm-wrong-token");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nVMM_INCOMING_TOKEN=not-the-token exec {} \"$@\"\n",
            e2e::bin("vmm").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    b.stop();
    let config = std::fs::read_to_string(b.config_path()).unwrap();
    let config = config.replace(
        &format!("(vmm-path {})", e2e::bin("vmm").display()),
        &format!("(vmm-path {})", wrapper.display()),
    );
    assert!(config.contains("vmm-wrong-token"), "{config}");
    std::fs::write(b.config_path(), config).unwrap();
    b.restart_foreground();

    let (dom, mut con) = a.create_booted("bounced");
    tick(&mut con, 1);
    let r = migrate(&a, "bounced", &b, true).status(502).json();
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("migration to 127.0.0.1:{} failed: ", b.api_port()))
            && msg.contains("wrong migration token"),
        "{msg}"
    );
    assert_no_domains(&b);
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(log.contains("migration aborted by the source"), "{log}");
    let d = a.domain("bounced");
    assert_eq!(d.id, dom.id);
    assert!(!d.state.contains('p'), "{}", d.state);
    con.echo("still-at-a", MOVE);
    tick(&mut con, 2);
}

/// A destination xend that dies while its VMM waits for a migration drops
/// that VMM when it starts again (nobody would adopt what arrives; the
/// source's migration then fails and it keeps the domain).
#[test]
fn a_migration_still_waiting_when_the_destination_xend_restarts_is_dropped() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut b = Xend::start();
    let r = b
        .post_json(
            "/xend/domain",
            &[
                ("op", "migrate_receive"),
                ("config", "(vm (name waiter) (memory 16) (image (minios)))"),
            ],
        )
        .status(201)
        .json();
    assert_eq!(r["name"], "waiter", "{r}");
    assert!(r["port"].as_u64().unwrap() > 0 && r["token"].as_str().unwrap().len() == 32);
    assert_eq!(b.domain_names(), vec!["Domain-0", "waiter"]);
    let waiting = b.vmm_processes();
    assert_eq!(waiting.len(), 1, "one VMM waits: {waiting:?}");
    b.kill();
    assert!(e2e::pid_alive(waiting[0]), "the waiting VMM outlives xend");
    b.restart_foreground();
    assert_no_domains(&b);
    assert!(!e2e::pid_alive(waiting[0]));
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(
        log.contains("domain waiter (id 1) was waiting for a migration when xend stopped"),
        "{log}"
    );
}

/// A domain paused by the toolstack migrates paused and stays paused at the
/// destination until unpaused there; then it runs on.
#[test]
fn a_paused_domain_arrives_paused() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let b = Xend::start();
    let (_, mut con) = a.create_booted("sleeper");
    tick(&mut con, 1);
    a.act("sleeper", "pause", &[]).ok();
    let r = migrate(&a, "sleeper", &b, true).ok().json();
    let id = r["domid"].as_u64().unwrap() as u32;
    assert_no_domains(&a);
    let d = b.domain("sleeper");
    assert!(d.state.contains('p'), "arrived paused: {}", d.state);
    let mut con = b.console(id);
    b.act("sleeper", "unpause", &[]).ok();
    tick(&mut con, 2);
    assert!(!b.domain("sleeper").state.contains('p'));
}
