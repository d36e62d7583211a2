//! A 1 MiB paste into a running minios shell (a bench binary; nothing is
//! asserted): written as fast as xend takes it while GETs are timed for up
//! to 30 s. Prints the rate at which the guest takes input (the VMM's
//! `console_bytes_in`), the slowest GET, xend's RSS, then leaves mid-paste
//! and times how long until the console is free.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p e2e --bench console_paste`
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::Xend;
use e2e::rss_kib;

fn main() {
    if !hypervisor::require_kvm() {
        return;
    }
    const PASTE: usize = 1 << 20;
    const WINDOW: Duration = Duration::from_secs(30);
    let xend = Xend::start();
    let pid = xend.pid().expect("xend's pid");
    let (dom, con) = xend.create_booted("paste");
    con.close();
    let port = xend.console_port(dom.id);
    xend.wait_console_free(port);
    let idle = rss_kib(pid);
    let before = xend.domain("paste").console_bytes_in;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect the console");
    if let Some(t) = xend.token() {
        s.write_all(format!("{t}\n").as_bytes()).unwrap();
    }
    // Read (and drop) the echo and the shell's answers.
    let mut reader = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(std::io::Read::read(&mut reader, &mut buf), Ok(n) if n > 0) {}
    });
    let line = format!("{}\n", "x".repeat(63));
    let text = line.repeat(PASTE / line.len());
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = w.write_all(text.as_bytes());
    });
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut peak = idle;
    let mut taken = 0;
    while start.elapsed() < WINDOW && taken < PASTE as u64 {
        let t = Instant::now();
        taken = xend.domain("paste").console_bytes_in - before;
        slowest = slowest.max(t.elapsed());
        peak = peak.max(rss_kib(pid));
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "paste: the guest took {} KiB in {secs:.1} s ({:.1} KiB/s); slowest GET {slowest:?}; xend RSS idle {idle} KiB, peak {peak} KiB",
        taken >> 10,
        taken as f64 / 1024.0 / secs,
    );
    let t = Instant::now();
    let _ = s.shutdown(std::net::Shutdown::Both);
    drop(s);
    xend.wait_console_free(port);
    eprintln!(
        "paste: console free {:?} after the client left mid-paste",
        t.elapsed()
    );
}
