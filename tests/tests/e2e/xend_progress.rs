//! Progress of long work: a save of a 256 MiB domain (96 MiB of it written
//! by the guest) publishes `xend.domain.progress` events whose bytes only
//! grow and that end at 100%; the domain's record shows the progress while
//! the save runs; the restore and a live migration report theirs too; `xm
//! save` on a terminal draws a bar; xtop's status line shows a running
//! save; a subscriber that never reads holds up nothing.
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};

use e2e::save::{MOVE, migrate, pattern_check, pattern_write, restore, save};
use e2e::{Xend, XendOptions, prompt};
use xend::api::{OpProgress, XendEvent};

/// xend's JSON event stream, subscribed (the subscription exists once the
/// response has begun).
fn subscribe(xend: &Xend) -> BufReader<reqwest::blocking::Response> {
    let resp = reqwest::blocking::Client::new()
        .get(xend.url("/xend/event?op=stream"))
        .header("Accept", "application/json")
        .header("Authorization", xend.authorization())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    BufReader::new(resp)
}

/// Events up to and including the first named `last` about `name`.
fn events_until(
    stream: &mut BufReader<reqwest::blocking::Response>,
    last: &str,
    name: &str,
) -> Vec<XendEvent> {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            stream.read_line(&mut line).unwrap() > 0,
            "stream ended; seen {seen:?}"
        );
        let e: XendEvent = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let end = e.event == last && e.name.as_deref() == Some(name);
        seen.push(e);
        if end {
            return seen;
        }
    }
}

/// The progress events of `op` about domain `name` in `events`, checked:
/// each names its domain, bytes and totals only grow, done never passes
/// the total, and the last is `done` at 100% and comes before `end_event`.
#[track_caller]
fn checked_progress(events: &[XendEvent], op: &str, name: &str) -> Vec<OpProgress> {
    let mut out: Vec<OpProgress> = Vec::new();
    for e in events.iter().filter(|e| e.event == "xend.domain.progress") {
        assert_eq!(e.name.as_deref(), Some(name), "{e:?}");
        assert!(e.domid.is_some(), "{e:?}");
        let p = e
            .progress
            .clone()
            .expect("a progress event carries figures");
        assert_eq!(p.op, op, "{e:?}");
        assert!(p.done_bytes <= p.total_bytes, "done beyond total: {p:?}");
        assert!(
            e.detail.as_deref().is_some_and(|d| d.starts_with(op)),
            "{e:?}"
        );
        if let Some(prev) = out.last() {
            assert!(
                p.done_bytes >= prev.done_bytes && p.total_bytes >= prev.total_bytes,
                "bytes went back: {prev:?} then {p:?}"
            );
            assert!(p.seconds >= prev.seconds, "{prev:?} then {p:?}");
        }
        out.push(p);
    }
    let last = out
        .last()
        .unwrap_or_else(|| panic!("no {op} progress: {events:?}"));
    assert_eq!(last.phase, "done", "{out:?}");
    assert_eq!(last.done_bytes, last.total_bytes, "{out:?}");
    assert_eq!(last.percent(), 100.0);
    assert_eq!(
        out.iter().filter(|p| p.phase == "done").count(),
        1,
        "one done: {out:?}"
    );
    out
}

#[test]
fn a_256_mib_save_and_its_restore_report_progress_in_order_to_100_percent() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name big) (memory 256) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("big"), e2e::BOOT);
    // 96 MiB: a save long enough (about 0.5 s on a quiet host) for several
    // 100 ms progress polls; with 32 MiB a quiet host saved in 0.19 s and
    // only one event came before the end.
    pattern_write(&mut con, 96, 9);
    let mut stream = subscribe(&xend);

    // While the save runs, the domain's record carries its progress.
    let saving = AtomicBool::new(true);
    let seen_in_record = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = None;
            while saving.load(Ordering::Relaxed) && seen.is_none() {
                if let Some(d) = xend.try_domain("big") {
                    seen = d.progress;
                }
            }
            seen
        });
        let r = save(&xend, "big", "big.img").ok().json();
        saving.store(false, Ordering::Relaxed);
        assert_eq!(r["name"], "big", "{r}");
        watcher.join().unwrap()
    });
    let events = events_until(&mut stream, "xend.domain.save", "big");
    let progress = checked_progress(&events, "save", "big");
    assert!(
        progress.len() >= 3,
        "progress while the save ran, not just its end: {progress:?}"
    );
    let last = progress.last().unwrap();
    assert!(
        last.total_bytes >= 96 << 20 && last.total_bytes <= 256 << 20,
        "the guest RAM looked at: {last:?}"
    );
    assert!(
        progress.iter().any(|p| p.phase == "memory"),
        "the memory phase: {progress:?}"
    );
    let in_record = seen_in_record.expect("the domain's record showed the save's progress");
    assert_eq!(in_record.op, "save");
    assert!(xend.try_domain("big").is_none(), "saved domains end");

    // The restore reports the image read (checked, then loaded).
    let r = restore(&xend, "big.img", false).status(201).json();
    let id = r["id"].as_u64().unwrap() as u32;
    let events = events_until(&mut stream, "xend.domain.restore", "big");
    let progress = checked_progress(&events, "restore", "big");
    let image = std::fs::metadata(e2e::save::save_dir(&xend).join("big.img"))
        .unwrap()
        .len();
    assert_eq!(
        progress.last().unwrap().total_bytes,
        2 * image,
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .all(|p| ["checking", "loading", "done"].contains(&p.phase.as_str())),
        "{progress:?}"
    );
    assert!(
        xend.domain("big").progress.is_none(),
        "no progress once done"
    );
    let mut con = xend.console(id);
    // Past the console history the image brought along.
    con.expect("pattern: wrote 96 MiB with seed 9", MOVE);
    // Its first 32 MiB (the pattern of a word depends only on its place).
    pattern_check(&mut con, 32, 9);
}

#[test]
fn a_live_migration_reports_rounds_and_ends_at_100_percent() {
    if !hypervisor::require_kvm() {
        return;
    }
    let a = Xend::start();
    let b = Xend::start_with(XendOptions {
        token: Some("b-progress".into()),
        ..XendOptions::default()
    });
    let dom = a.create("(vm (name mover) (memory 128) (image (minios)))");
    let mut con = a.console(dom.id);
    con.expect(&prompt("mover"), e2e::BOOT);
    pattern_write(&mut con, 24, 4);
    let mut stream = subscribe(&a);
    let r = migrate(&a, "mover", &b, true).ok().json();
    assert_eq!(r["live"], true, "{r}");
    let events = events_until(&mut stream, "xend.domain.migrate", "mover");
    let progress = checked_progress(&events, "migrate", "mover");
    assert!(
        progress.last().unwrap().total_bytes >= 24 << 20,
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .any(|p| p.phase == "precopy" && p.dirty_pages > 0),
        "the first pre-copy round with its pages: {progress:?}"
    );
    let id = b.domain("mover").id;
    let mut con = b.console(id);
    con.echo("moved", MOVE);
}

#[test]
fn xm_save_on_a_terminal_draws_a_bar_to_100_percent() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let (_, mut con) = xend.create_booted("bar");
    pattern_write(&mut con, 8, 1);
    let url = xend.base_url();
    let mut args = vec!["-H", url.as_str()];
    if let Some(t) = xend.token() {
        args.extend(["--token", t]);
    }
    args.extend(["save", "bar", "bar.img"]);
    let mut pty = e2e::pty::Pty::spawn(&e2e::bin("xm"), &args, &[], 24, 100);
    let status = pty.wait_exit(MOVE);
    assert!(status.success(), "{}", pty.screen());
    let screen = pty.screen();
    let bar = screen
        .lines()
        .find(|l| l.starts_with("save bar "))
        .unwrap_or_else(|| panic!("no bar line:\n{screen}"));
    assert!(
        bar.contains("100%") && bar.trim_end().ends_with("done") && bar.contains('█'),
        "{bar:?}"
    );
    assert!(xend.try_domain("bar").is_none());
}

#[test]
fn a_subscriber_that_never_reads_does_not_hold_up_a_save() {
    if !hypervisor::require_kvm() {
        return;
    }
    use std::io::Write;
    let xend = Xend::start();
    let (_, mut con) = xend.create_booted("stuck");
    pattern_write(&mut con, 8, 3);
    // A subscriber that asks for the stream and never reads a byte.
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", xend.api_port())).unwrap();
    // A small receive window (set after connect, it still caps the window).
    rustix::net::sockopt::set_socket_recv_buffer_size(&stuck, 4096).unwrap();
    write!(
        stuck,
        "GET /xend/event?op=stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nAuthorization: {}\r\n\r\n",
        xend.authorization()
    )
    .unwrap();
    let mut reader = subscribe(&xend);
    // Fill its socket buffers: 4 MiB of injected events, far more than its
    // 4 KiB window and xend's send buffer take, so xend's writer for it is
    // stuck when the save starts (the bus then drops its oldest events).
    let detail = "x".repeat(4000);
    let event = format!("(event test.fill (detail {detail}))");
    let local = reqwest::blocking::Client::builder()
        .unix_socket(xend.unix_path())
        .build()
        .unwrap();
    for _ in 0..1024 {
        let r = local
            .post("http://localhost/xend/event")
            .form(&[("op", "inject"), ("event", event.as_str())])
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{r:?}");
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    let r = save(&xend, "stuck", "stuck.img").ok().json();
    assert_eq!(r["name"], "stuck", "{r}");
    let events = events_until(&mut reader, "xend.domain.save", "stuck");
    checked_progress(&events, "save", "stuck");
    drop(stuck);
}

#[test]
fn xtop_shows_a_running_save_in_its_status_line() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name shown) (memory 64) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("shown"), e2e::BOOT);
    pattern_write(&mut con, 32, 2);
    let config = xend.dir().join("xtop-config.toml");
    let home = xend.dir().to_str().unwrap().to_owned();
    let url = xend.base_url();
    let args = ["-H", url.as_str(), "-d", "0.5", "--filter", "^shown$"];
    let xend_config = xend.config_path();
    let env = [
        ("XTOP_CONFIG", config.to_str().unwrap()),
        ("HOME", home.as_str()),
        ("XEND_CONFIG", xend_config.to_str().unwrap()),
    ];
    let mut pty = e2e::pty::Pty::spawn(&e2e::bin("xtop"), &args, &env, 40, 160);
    pty.wait_until(MOVE, "the domain row", |s| s.contains(" shown "));
    pty.send(b"X");
    pty.wait_for(":save ", MOVE);
    pty.send(b"shown.img\r");
    // The status line while the save runs, from xend's progress events.
    pty.wait_until(MOVE, "the save's progress", |s| s.contains("[save shown "));
    pty.wait_for("saved shown to ", MOVE);
    pty.send(b"q");
    assert!(pty.wait_exit(MOVE).success());
}
