//! A soak of xend under faults (a bench binary; nothing is asserted, the
//! figures are printed): 50 domains, 32 clients asking for single domains
//! and the bulk endpoint for 60 s, while a chaos thread SIGKILLs and
//! SIGSTOPs/SIGCONTs the VMMs of 10 "victim" domains at random. Printed:
//! requests, errors on healthy domains (target 0), latency p50/p99, and
//! xend's RSS over time (target flat).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p e2e --bench xend_soak`
//! (`XEND_SOAK_SECS`, `XEND_SOAK_DOMAINS`, `XEND_SOAK_CLIENTS` change the size).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use e2e::rss_kib;
use e2e::{Xend, XendOptions};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The pid of the VMM running domain `id` (from its `--domid` argument).
fn vmm_pid(xend: &Xend, id: u64) -> Option<u32> {
    xend.vmm_pids().into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.windows(2)
                    .any(|w| w[0] == b"--domid" && w[1] == id.to_string().as_bytes())
            })
            .unwrap_or(false)
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if !hypervisor::require_kvm() {
        return;
    }
    let secs = env_or("XEND_SOAK_SECS", 60);
    let domains = env_or("XEND_SOAK_DOMAINS", 50) as usize;
    let clients = env_or("XEND_SOAK_CLIENTS", 32) as usize;
    let victims = (domains / 5).max(1);
    let xend = Arc::new(Xend::start_with(XendOptions {
        console_ports: (domains as u16 + 10).max(100),
        loglevel: "INFO".into(),
        ..XendOptions::default()
    }));
    let mut ids = Vec::new();
    for i in 0..domains {
        let d = xend.create(&format!(
            "(vm (name s{i}) (memory 16) (restart never) (image (minios)))"
        ));
        ids.push((d.id as u64, d.name));
    }
    let healthy: Vec<String> = ids[victims..].iter().map(|(_, n)| n.clone()).collect();
    let victim_ids: Vec<u64> = ids[..victims].iter().map(|(i, _)| *i).collect();
    let xend_pid = xend.pid().expect("xend pid");
    println!(
        "soak: {domains} domains ({victims} victims), {clients} clients, {secs} s; xend RSS at start {} KiB",
        rss_kib(xend_pid)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let first_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (xend, stop, requests, errors, samples, first_errors, healthy) = (
                xend.clone(),
                stop.clone(),
                requests.clone(),
                errors.clone(),
                samples.clone(),
                first_errors.clone(),
                healthy.clone(),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let auth = xend.authorization();
                let mut mine = Vec::new();
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let path = if n % 4 == 0 {
                        "/xend/domain?op=stats".to_string()
                    } else {
                        format!("/xend/domain/{}", healthy[n % healthy.len()])
                    };
                    let start = Instant::now();
                    let r = http
                        .get(xend.url(&path))
                        .header("Authorization", &auth)
                        .header("Accept", "application/json")
                        .send();
                    mine.push(start.elapsed());
                    requests.fetch_add(1, Ordering::Relaxed);
                    let bad = match r {
                        Ok(r) if r.status().is_success() => None,
                        Ok(r) => Some(format!("{path}: {}", r.status())),
                        Err(e) => Some(format!("{path}: {e}")),
                    };
                    if let Some(why) = bad {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let mut f = first_errors.lock().unwrap();
                        if f.len() < 5 {
                            f.push(why);
                        }
                    }
                }
                samples.lock().unwrap().extend(mine);
            })
        })
        .collect();

    // Chaos: every 0.5 s a victim VMM is stopped, continued or killed.
    let chaos = {
        let (xend, stop) = (xend.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n: u64 = 7;
            let (mut killed, mut stopped) = (0, 0);
            let mut paused: Vec<u32> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let id = victim_ids[(n >> 33) as usize % victim_ids.len()];
                if let Some(pid) = vmm_pid(&xend, id) {
                    let sig = match (n >> 20) % 3 {
                        0 => Signal::SIGKILL,
                        1 => Signal::SIGSTOP,
                        _ => Signal::SIGCONT,
                    };
                    let _ = kill(Pid::from_raw(pid as i32), sig);
                    match sig {
                        Signal::SIGKILL => killed += 1,
                        Signal::SIGSTOP => {
                            stopped += 1;
                            paused.push(pid);
                        }
                        _ => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            for pid in paused {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
            }
            (killed, stopped)
        })
    };

    let mut rss = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_kib(xend_pid));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let (killed, stopped) = chaos.join().unwrap();
    let mut t = samples.lock().unwrap().clone();
    t.sort();
    let total = requests.load(Ordering::Relaxed);
    println!(
        "requests {total} ({:.0}/s), errors on healthy domains {} (target 0)",
        total as f64 / secs as f64,
        errors.load(Ordering::Relaxed)
    );
    for e in first_errors.lock().unwrap().iter() {
        println!("  e.g. {e}");
    }
    println!(
        "latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&t, 0.5).as_secs_f64() * 1e3,
        percentile(&t, 0.99).as_secs_f64() * 1e3,
        t.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("chaos: {killed} VMMs killed, {stopped} stopped");
    let every = (rss.len() / 10).max(1);
    let series: Vec<String> = rss
        .iter()
        .step_by(every)
        .map(|k| format!("{}", k / 1024))
        .collect();
    println!(
        "xend RSS (MiB, every {every} s): {} (min {} max {} KiB)",
        series.join(" "),
        rss.iter().min().unwrap_or(&0),
        rss.iter().max().unwrap_or(&0)
    );
}
