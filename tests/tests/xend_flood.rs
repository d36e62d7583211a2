//! The API under connection floods (issue 11, item 4): half-sent headers,
//! bodies that never come and idle connections are dropped after their
//! timeouts, a slowloris of thousands of connections does not stop other
//! clients (over TCP or the local socket), and xend's memory comes back.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{Xend, XendOptions};

/// Short timeouts so the test sees them pass.
fn quick_xend() -> Xend {
    Xend::start_with(XendOptions {
        extra_config: "(xend-header-timeout 2)\n(xend-body-timeout 2)\n".into(),
        ..XendOptions::default()
    })
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what was read and whether it closed.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[test]
fn half_headers_missing_bodies_and_idle_connections_are_dropped() {
    let xend = quick_xend();
    let addr = ("127.0.0.1", xend.api_port());
    // Nothing sent at all.
    let mut silent = TcpStream::connect(addr).unwrap();
    // Half a header.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /xend/node HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    // A body announced (under the size limit) that never comes.
    let mut bodiless = TcpStream::connect(addr).unwrap();
    bodiless
        .write_all(
            format!(
                "POST /xend/domain HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500000\r\n\r\nop=create&",
                xend.authorization()
            )
            .as_bytes(),
        )
        .unwrap();
    // A kept-alive connection that goes idle after one request.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(
        format!(
            "GET /xend/node HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
            xend.authorization()
        )
        .as_bytes(),
    )
    .unwrap();
    let limit = Duration::from_secs(15);
    let (_, closed) = read_until_closed(&mut silent, limit);
    assert!(closed, "a silent connection is closed");
    let (_, closed) = read_until_closed(&mut half, limit);
    assert!(closed, "a half-sent header is dropped");
    let (reply, closed) = read_until_closed(&mut bodiless, limit);
    assert!(
        reply.starts_with("HTTP/1.1 400") && reply.contains("did not arrive within"),
        "{reply}"
    );
    assert!(closed, "the connection of a missing body ends");
    let (reply, closed) = read_until_closed(&mut idle, limit);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(closed, "an idle kept-alive connection is closed");
    assert_eq!(xend.get("/xend/domain").ok().body, "(Domain-0)");
}

#[test]
fn a_slowloris_does_not_stop_other_clients_and_memory_comes_back() {
    const HELD: usize = 2000;
    let xend = quick_xend();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ask = || {
        http.get(xend.url("/xend/node"))
            .header("Authorization", xend.authorization())
            .send()
            .map(|r| r.status().as_u16())
    };
    assert_eq!(ask().unwrap(), 200);
    let idle = e2e::rss_kib(xend.pid().unwrap());
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut s = TcpStream::connect(("127.0.0.1", xend.api_port())).unwrap();
        s.write_all(b"GET /xend/node HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .unwrap();
        held.push(s);
    }
    // While they hang, others are answered: over TCP and the local socket.
    for _ in 0..20 {
        assert_eq!(ask().unwrap(), 200);
        assert!(xend.answers(), "the local socket answers");
    }
    let during = e2e::rss_kib(xend.pid().unwrap());
    // Every held connection is dropped by xend within the (busy) timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, closed) = read_until_closed(s, left.max(Duration::from_millis(1)));
        assert!(closed, "a slowloris connection is still open after 30 s");
    }
    drop(held);
    assert_eq!(ask().unwrap(), 200);
    // Memory comes back to within 2x of idle.
    e2e::wait_for(Duration::from_secs(10), "xend's RSS to come back", || {
        e2e::rss_kib(xend.pid().unwrap()) <= 2 * idle
    });
    eprintln!(
        "xend RSS: idle {idle} KiB, {HELD} slow connections {during} KiB, after {} KiB",
        e2e::rss_kib(xend.pid().unwrap())
    );
}

/// A slowloris on the raw ports: connections to a console and to the event
/// port that never send their token line. Meanwhile the console's real
/// client and an event subscriber are served, no silent connection sees a
/// console byte or an event, and xend closes each within its 10 s token
/// deadline.
#[test]
fn silent_clients_of_consoles_and_the_event_port_are_dropped() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let (dom, console) = xend.create_booted("slow");
    console.close();
    xend.wait_console_free(xend.console_port(dom.id));
    let started = Instant::now();
    let mut silent: Vec<TcpStream> = (0..100)
        .flat_map(|_| {
            [
                TcpStream::connect(("127.0.0.1", xend.console_port(dom.id))).unwrap(),
                TcpStream::connect(("127.0.0.1", xend.event_port())).unwrap(),
            ]
        })
        .collect();
    let mut console = xend.console(dom.id);
    console.send("echo still-served\n");
    console.expect("\nstill-served\r", e2e::STATE);
    let mut events = e2e::EventPort::connect(&xend);
    events.send("(help)\n");
    events.expect_line("(ok", e2e::STATE);
    // Each silent connection ends by xend's deadline with at most the
    // refusal line: never the console history, never an event.
    for s in &mut silent {
        let left = Duration::from_secs(20).saturating_sub(started.elapsed());
        let (text, closed) = read_until_closed(s, left);
        assert!(closed, "a silent connection still open after 20 s");
        assert!(
            text.is_empty() || text.contains("Authentication failed"),
            "{text:?}"
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(9), "closed early");
    console.send("echo after\n");
    console.expect("\nafter\r", e2e::STATE);
}

/// Oversized input on every TCP port: a 1 MiB request header on the API, a
/// 1 MiB "token line" on the event port and a console, and a request of
/// 256 KiB that never ends on an authenticated event port. Each is refused
/// and closed without xend reading it all, and xend keeps serving.
#[test]
fn oversized_headers_token_lines_and_event_requests_are_refused() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name big) (memory 16) (image (minios)))");
    let big = vec![b'a'; 1 << 20];
    let send_big = |port: u16, head: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(head).unwrap();
        // xend may close before taking it all: a write error is the point.
        let _ = s.write_all(&big);
        s
    };
    // API: a header that never fits.
    let mut s = send_big(
        xend.api_port(),
        b"GET /xend/node HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ",
    );
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(20));
    assert!(closed, "the API kept a 1 MiB header open");
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text:?}"
    );
    // Event port and a console port: a token line of 1 MiB.
    for port in [xend.event_port(), xend.console_port(dom.id)] {
        let mut s = send_big(port, b"");
        let (text, closed) = read_until_closed(&mut s, Duration::from_secs(20));
        assert!(closed, "port {port} kept a 1 MiB token line open");
        assert!(
            text.is_empty() || text.contains("Authentication failed"),
            "{text:?}"
        );
    }
    // Event port, authenticated: a request that never ends.
    let token = format!("{}\n(sys.subscribe ", xend.token().unwrap());
    let mut s = TcpStream::connect(("127.0.0.1", xend.event_port())).unwrap();
    s.write_all(token.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b'x'; 256 << 10]);
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(20));
    assert!(closed, "the event port kept a 256 KiB request open");
    assert!(text.contains("request too long"), "{text:?}");
    assert!(xend.answers());
}
