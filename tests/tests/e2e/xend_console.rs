//! Consoles end to end: history on connect, one client at a time, server-side
//! disconnect, the per-domain console log.
use e2e::{BOOT, STATE, Xend, prompt};

#[test]
fn history_single_client_and_disconnect() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name con) (memory 16) (image (minios)))");
    let port = xend.console_port(dom.id);
    let mut first = xend.console(dom.id);
    first.expect(&prompt("con"), BOOT);
    first.echo("marker-one", BOOT);

    // A second client is refused with the reference's message; the first stays.
    let mut second = xend.console(dom.id);
    let msg = second.expect_closed(STATE);
    assert_eq!(
        msg.trim_end(),
        format!("Cannot connect to console {0} on domain {0}", dom.id)
    );
    first.echo("still-here", BOOT);

    // Server-side disconnect.
    let info = sxp::parse(&xend.get(&format!("/xend/console/{port}")).ok().body).unwrap();
    assert_eq!(info.child_value("status"), Some("connected"));
    xend.post(&format!("/xend/console/{port}"), &[("op", "disconnect")])
        .ok();
    first.expect_closed(STATE);
    let info = sxp::parse(&xend.get(&format!("/xend/console/{port}")).ok().body).unwrap();
    assert_eq!(info.child_value("status"), Some("listening"));

    // A new client gets the history: the banner and everything since.
    let mut third = xend.console(dom.id);
    let hist = third.expect("still-here", STATE);
    assert!(
        hist.contains("booting") && hist.contains("marker-one"),
        "{hist}"
    );
    third.echo("third-client", BOOT);

    // Everything was logged.
    let log = std::fs::read_to_string(xend.console_log(dom.id)).unwrap();
    assert!(
        log.contains("marker-one") && log.contains("still-here"),
        "{log}"
    );
}

#[test]
fn history_is_capped_at_64_kib() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name big) (memory 16) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("big"), BOOT);
    // A marker, then ~100 KiB of output, then another marker.
    con.run("echo first-marker", BOOT);
    con.send("spew 100\n");
    con.expect("spew: done", BOOT);
    con.expect(&prompt("big"), BOOT);
    con.run("echo last-marker", BOOT);
    con.close();
    xend.wait_console_free(xend.console_port(dom.id));
    let mut late = xend.console(dom.id);
    late.expect("last-marker", STATE);
    late.expect(&prompt("big"), STATE);
    let seen = late.seen.len();
    assert!(
        seen <= 64 * 1024 && seen > 60 * 1024,
        "history was {seen} bytes"
    );
    assert!(!String::from_utf8_lossy(&late.seen).contains("first-marker"));
}
