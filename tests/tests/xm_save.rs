//! `xm save`, `xm restore [-p]` and `xm migrate [-l]` end to end: a real
//! minios guest goes into an image, comes back paused, runs on, and moves to
//! a second xend (guarded by a token) where it keeps counting; errors print
//! `Error: ...` and exit 1. Their progress goes to stderr as plain lines
//! when it is not a terminal (stdout stays Xen's).
use std::process::Output;

use e2e::save::{MOVE, assert_no_domains, tick, xm};
use e2e::{Xend, XendOptions, prompt};

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "xm failed: {out:?}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A save, restore or migration that succeeded: its stdout, after checking
/// that stderr (not a terminal here) has only plain progress lines about
/// `what` (`save trip`), the last at 100%.
#[track_caller]
fn ok_with_progress(out: Output, what: &str) -> String {
    assert!(out.status.success(), "xm failed: {out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with(&format!("{what}: "))),
        "{err:?}"
    );
    let last = lines.last().unwrap_or_else(|| panic!("no progress lines"));
    assert!(last.starts_with(&format!("{what}: done 100% (")), "{err:?}");
    assert!(
        !err.contains('\x1b') && !err.contains('\r'),
        "no bar: {err:?}"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn error(out: Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("Error: ") && err.ends_with('\n'), "{err:?}");
    err
}

#[test]
fn xm_saves_restores_and_migrates_a_domain() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let b = Xend::start_with(XendOptions {
        token: Some("b-token".into()),
        ..XendOptions::default()
    });
    let (dom, mut con) = a.create_booted("trip");
    tick(&mut con, 1);

    let err = error(xm(&a, &["save", "trip", "../trip.img"]));
    assert!(
        err.contains("Invalid parameter: file: ../trip.img is outside"),
        "{err}"
    );
    let err = error(xm(&a, &["save", "nosuch", "x.img"]));
    assert!(err.contains("nosuch"), "{err}");
    con.echo("not-saved", MOVE);

    let out = xm(&a, &["save", "trip", "trip.img"]);
    assert_eq!(ok_with_progress(out, "save trip"), "");
    con.expect_closed(MOVE);
    assert_no_domains(&a);

    let err = error(xm(&a, &["restore", "nothing.img"]));
    assert!(
        err.contains("Invalid parameter: file: nothing.img"),
        "{err}"
    );
    let out = ok_with_progress(xm(&a, &["restore", "-p", "trip.img"]), "restore trip");
    assert!(
        out.starts_with("(domain") && out.contains("(name trip)"),
        "{out}"
    );
    let d = a.domain("trip");
    assert!(d.state.contains('p'), "restored paused: {}", d.state);
    ok(xm(&a, &["unpause", "trip"]));
    let mut con = a.console(d.id);
    tick(&mut con, 2);

    // A destination that does not answer: the domain stays.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port().to_string();
    drop(dead);
    let err = error(xm(&a, &["migrate", "trip", "127.0.0.1", "-p", &dead_port]));
    assert!(err.contains("cannot reach the destination xend"), "{err}");
    con.echo("not-migrated", MOVE);

    let dest = format!("127.0.0.1:{}", b.api_port());
    let out = xm(
        &a,
        &["migrate", "-l", "trip", &dest, "--dest-token", "b-token"],
    );
    assert_eq!(ok_with_progress(out, "migrate trip"), "");
    con.expect_closed(MOVE);
    assert_no_domains(&a);
    let on_b = b.domain("trip");
    let mut con = b.console(on_b.id);
    con.expect(&prompt("trip"), MOVE);
    tick(&mut con, 3);
    let _ = dom;
}
