//! xend's API speed with real domains (a bench binary; no timing is asserted):
//!
//! - single-domain `GET /xend/domain/DOM` (JSON and SXP): p50 / p99
//! - the bulk endpoint `GET /xend/domain?op=stats` with 1, 100 and 500 domains
//! - requests/s for `GET /xend/node` at 32 concurrent keep-alive clients
//! - create-to-shell-prompt through the API (median)
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench xend_api`
//! (`XEND_BENCH_MAX=100` caps the domain count for a quicker run).
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::{Accept, BOOT, Xend, XendOptions, prompt};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// One keep-alive HTTP/1.1 connection speaking just enough HTTP for GETs.
struct Conn {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    request: Vec<u8>,
}

impl Conn {
    fn new(port: u16, auth: &str, path: &str, accept: &str) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nAccept: {accept}\r\n\r\n"
        )
        .into_bytes();
        Conn {
            rd: BufReader::new(s.try_clone().unwrap()),
            wr: s,
            request,
        }
    }

    /// One request; returns the body length.
    fn get(&mut self) -> usize {
        self.wr.write_all(&self.request).unwrap();
        let mut len = 0usize;
        let mut line = String::new();
        self.rd.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "xend answered {line}");
        loop {
            line.clear();
            self.rd.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l
                .to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
            {
                len = v.parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        self.rd.read_exact(&mut body).unwrap();
        len
    }
}

fn latency(xend: &Xend, path: &str, accept: &str, n: usize) -> (Duration, Duration, usize) {
    let mut c = Conn::new(xend.api_port(), &xend.authorization(), path, accept);
    let mut size = 0;
    for _ in 0..20 {
        size = c.get();
    }
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            c.get();
            s.elapsed()
        })
        .collect();
    t.sort();
    (percentile(&t, 0.5), percentile(&t, 0.99), size)
}

fn throughput(xend: &Xend, clients: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let port = xend.api_port();
    let auth = xend.authorization();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let stop = stop.clone();
            let count = count.clone();
            let auth = auth.clone();
            std::thread::spawn(move || {
                let mut c = Conn::new(port, &auth, "/xend/node", "application/json");
                while !stop.load(Ordering::Relaxed) {
                    c.get();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Warm up, then count over a fixed window (measuring, not waiting for a condition).
    std::thread::sleep(Duration::from_millis(300));
    let start_count = count.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let done = count.load(Ordering::Relaxed) - start_count;
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    done as f64 / took.as_secs_f64()
}

fn create_n(xend: &Xend, from: usize, to: usize) {
    for i in from..to {
        let r = xend.post_json(
            "/xend/domain",
            &[
                ("op", "create"),
                (
                    "config",
                    &format!("(vm (name b{i}) (memory 8) (image (minios)))"),
                ),
            ],
        );
        assert_eq!(r.status, 201, "create b{i}: {}", r.body);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !hypervisor::require_kvm() {
        return;
    }
    let max: usize = std::env::var("XEND_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let xend = Xend::start_with(XendOptions {
        loglevel: "INFO".into(),
        console_ports: 1000,
        ..XendOptions::default()
    });
    println!(
        "xend API benchmark (release build, {} CPUs)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // Create to shell prompt, through the API.
    let mut boots = Vec::new();
    for i in 0..15 {
        let name = format!("boot{i}");
        let start = Instant::now();
        let r = xend.post_json(
            "/xend/domain",
            &[
                ("op", "create"),
                (
                    "config",
                    &format!("(vm (name {name}) (memory 16) (image (minios)))"),
                ),
            ],
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_u64().unwrap() as u32;
        let mut con = xend.console(id);
        con.expect(&prompt(&name), BOOT);
        boots.push(start.elapsed());
        xend.act(&name, "destroy", &[]).ok();
    }
    boots.sort();
    println!(
        "create-to-shell-prompt (POST create, attach console, prompt): median {}, min {}, max {} over {} domains",
        ms(percentile(&boots, 0.5)),
        ms(boots[0]),
        ms(*boots.last().unwrap()),
        boots.len()
    );

    create_n(&xend, 0, 1);
    for (fmt, accept) in [("JSON", "application/json"), ("SXP", "application/sxp")] {
        let (p50, p99, size) = latency(&xend, "/xend/domain/b0", accept, 2000);
        println!(
            "GET /xend/domain/DOM ({fmt}, {size} B): p50 {}, p99 {}",
            ms(p50),
            ms(p99)
        );
    }
    let rps = throughput(&xend, 32, 3.0);
    println!("GET /xend/node, 32 concurrent keep-alive clients: {rps:.0} requests/s");

    let mut have = 1;
    for n in [1usize, 100, 500] {
        if n > max {
            break;
        }
        if n > have {
            create_n(&xend, have, n);
            have = n;
        }
        for (fmt, accept) in [("JSON", "application/json"), ("SXP", "application/sxp")] {
            let reps = if n >= 500 { 200 } else { 500 };
            let (p50, p99, size) = latency(&xend, "/xend/domain?op=stats", accept, reps);
            println!(
                "GET /xend/domain?op=stats, {n} domains ({fmt}, {} KiB): p50 {}, p99 {}",
                size / 1024,
                ms(p50),
                ms(p99)
            );
        }
    }
    let _ = xend.request("GET", "/xend/node", Accept::Sxp, &[]);
}
