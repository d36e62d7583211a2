//! A console input flood: a client writes as fast as it can into a paused
//! domain's console. xend holds it back (a small per-console buffer, then it
//! stops reading the socket), so its memory stays flat, it keeps answering
//! other requests meanwhile, and its memory is back near idle once the client
//! left and the domain was destroyed.
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::rss_kib;
use e2e::{STATE, Xend};

/// How much the flood tries to write.
const FLOOD: u64 = 256 << 20;
/// How long it may try.
const FLOOD_TIME: Duration = Duration::from_secs(8);
/// xend's RSS may grow this much above idle during the flood.
const SLACK_KIB: u64 = 32 << 10;

#[test]
fn a_console_input_flood_is_held_back_and_xend_stays_small_and_fast() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let pid = xend.pid().expect("xend's pid");
    let (dom, con) = xend.create_booted("flood");
    con.close();
    let port = xend.console_port(dom.id);
    xend.wait_console_free(port);
    xend.act("flood", "pause", &[]).ok();
    xend.wait_domain("flood", "paused", |d| d.state.contains('p'));
    // Idle: after a few requests, so the API's own buffers are counted.
    for _ in 0..20 {
        xend.get("/xend/domain").ok();
    }
    let idle = rss_kib(pid);

    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let flood = {
        let (written, done) = (written.clone(), done.clone());
        let token = xend.token().map(str::to_owned);
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect the console");
            if let Some(t) = token {
                s.write_all(format!("{t}\n").as_bytes()).unwrap();
            }
            // Writes that block are retried until the deadline: xend holding
            // the input back is what the test expects.
            s.set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let chunk = vec![b'x'; 1 << 20];
            let deadline = Instant::now() + FLOOD_TIME;
            while written.load(Ordering::SeqCst) < FLOOD && Instant::now() < deadline {
                match s.write(&chunk) {
                    Ok(n) => {
                        written.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("console write: {e}"),
                }
            }
            done.store(true, Ordering::SeqCst);
            // The client leaves here (the socket is closed).
        })
    };

    // During the flood: memory bounded, and the API answers quickly.
    let mut peak = idle;
    let mut slowest = Duration::ZERO;
    while !done.load(Ordering::SeqCst) {
        peak = peak.max(rss_kib(pid));
        let t = Instant::now();
        xend.get("/xend/domain/flood").ok();
        slowest = slowest.max(t.elapsed());
    }
    flood.join().expect("the flood thread");
    let sent = written.load(Ordering::SeqCst);
    eprintln!(
        "flood: {} MiB accepted in {FLOOD_TIME:?}; xend RSS idle {idle} KiB, peak {peak} KiB; slowest GET {slowest:?}",
        sent >> 20
    );
    assert!(
        peak < idle + SLACK_KIB,
        "xend grew from {idle} KiB to {peak} KiB during the flood"
    );
    assert!(
        sent < 64 << 20,
        "xend took {} MiB of input for a paused domain: not held back",
        sent >> 20
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a GET took {slowest:?} during the flood"
    );

    // The client left without reading the history xend sent it, so its
    // close reset the connection: xend notices even while it holds the
    // client's input back, and frees the console.
    xend.wait_console_free(port);
    let after_client = rss_kib(pid);
    xend.act("flood", "destroy", &[]).ok();
    xend.wait_gone("flood");
    let mut after = 0;
    e2e::wait_for(STATE, "xend's RSS to be within 2x idle", || {
        after = rss_kib(pid);
        after <= 2 * idle
    });
    eprintln!(
        "flood: xend RSS after the client left {after_client} KiB, after destroy {after} KiB"
    );
    // xend still answers, and a new domain gets a working console.
    let (_, mut con) = xend.create_booted("again");
    con.echo("after-the-flood", e2e::BOOT);
}

/// Event subscribers cannot grow xend: the bus keeps a fixed number of
/// events, a subscriber that never reads only falls behind (and skips), and
/// an injected event is at most 4 KiB (longer ones are refused with 400).
#[test]
fn an_event_subscriber_that_never_reads_does_not_grow_xend() {
    let xend = Xend::start();
    let pid = xend.pid().expect("xend's pid");
    let long = format!("(event test.big (detail {}))", "x".repeat(8192));
    let r = xend.post_local("/xend/event", &[("op", "inject"), ("event", &long)]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("4096"), "{}", r.body);
    let event = format!("(event test.flood (detail {}))", "x".repeat(4000));
    // One client for the many injections (over the local socket).
    let http = reqwest::blocking::Client::builder()
        .unix_socket(xend.unix_path())
        .build()
        .unwrap();
    let inject = || {
        let r = http
            .post("http://localhost/xend/event")
            .form(&[("op", "inject"), ("event", &event)])
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text());
    };
    for _ in 0..20 {
        inject();
    }
    let idle = rss_kib(pid);
    // Subscribers that never read: the event port and the HTTP stream.
    let mut port = TcpStream::connect(("127.0.0.1", xend.event_port())).unwrap();
    if let Some(t) = xend.token() {
        port.write_all(format!("{t}\n").as_bytes()).unwrap();
    }
    let mut stream = TcpStream::connect(("127.0.0.1", xend.api_port())).unwrap();
    write!(
        stream,
        "GET /xend/event?op=stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
        xend.authorization()
    )
    .unwrap();
    // 3000 events of 4 KiB: 12 MiB, more than the socket buffers and the
    // bus's ring (1024 events) hold.
    for _ in 0..3000 {
        inject();
    }
    let after = rss_kib(pid);
    eprintln!(
        "events: xend RSS {idle} KiB before, {after} KiB after 12 MiB of events to two stuck subscribers"
    );
    assert!(
        after < idle + SLACK_KIB,
        "xend grew from {idle} KiB to {after} KiB"
    );
    drop((port, stream));
}

/// A guest attack on xend's memory: the guest spews output while the
/// console's client never reads. xend queues at most 4 MiB for the client,
/// then drops it (the console is free again, `xend.console.disconnect`),
/// and its RSS stays within [`SLACK_KIB`] of idle.
#[test]
fn a_guest_spewing_at_a_client_that_never_reads_does_not_grow_xend() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let pid = xend.pid().expect("xend's pid");
    let (dom, con) = xend.create_booted("spewer");
    con.close();
    let port = xend.console_port(dom.id);
    xend.wait_console_free(port);
    for _ in 0..20 {
        xend.get("/xend/domain").ok();
    }
    let idle = rss_kib(pid);
    // The stuck client: sends the token and the command, never reads.
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).unwrap();
    if let Some(t) = xend.token() {
        stuck.write_all(format!("{t}\n").as_bytes()).unwrap();
    }
    stuck.write_all(b"spew 32768\n").unwrap();
    let status = || {
        let r = xend.get_json(&format!("/xend/console/{port}"));
        (r.status == 200).then(|| r.json()["status"].as_str().unwrap_or("").to_string())
    };
    e2e::wait_for(STATE, "the stuck client to be connected", || {
        status().as_deref() == Some("connected")
    });
    let mut peak = idle;
    e2e::wait_for(
        Duration::from_secs(120),
        "xend to drop the client that never reads",
        || {
            peak = peak.max(rss_kib(pid));
            status().as_deref() == Some("listening")
        },
    );
    assert!(
        peak <= idle + SLACK_KIB,
        "xend grew from {idle} KiB to {peak} KiB"
    );
    let log = std::fs::read_to_string(xend.log_path()).unwrap();
    assert!(log.contains("too slow; dropped"), "{log}");
    drop(stuck);
    xend.act("spewer", "destroy", &[]).ok();
    xend.wait_gone("spewer");
}
