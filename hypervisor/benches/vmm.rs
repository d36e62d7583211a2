//! VMM benchmarks on the real `vmm` binary and minios (`cargo bench -p
//! hypervisor --bench vmm`). Prints a Markdown table; the README quotes it.
//!
//! Measures: process start to first console byte and to the shell prompt
//! (median of 30), pause+unpause round trip, VM exits per KiB of continuous
//! console output, exits per second of an idle guest, VMM memory overhead
//! beyond touched guest RAM, and 100 domains of 16 MiB started at once.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hypervisor::control::client::{ConsoleStream, VmmClient};
use hypervisor::control::proto::{Reason, Request, RunState};

const VMM: &str = env!("CARGO_BIN_EXE_vmm");

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (pct(&v, 0.5), pct(&v, 0.99), v[v.len() - 1])
}

/// Spawn a stdio VMM and time its first console byte and its prompt.
fn start_to_prompt(i: usize) -> (f64, f64) {
    let name = format!("b{i}");
    let t0 = Instant::now();
    let mut child = Command::new(VMM)
        .args([
            "--name",
            &name,
            "--domid",
            "1",
            "--memory",
            "16",
            "--stdio",
            "--exit-on-shutdown",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let prompt = format!("minios@{name}# ");
    let mut seen = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(&prompt) {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "vmm exited before its prompt");
        first.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1e3);
        seen.extend_from_slice(&buf[..n]);
    }
    let prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"poweroff\n")
        .unwrap();
    child.wait().unwrap();
    (first.unwrap(), prompt_ms)
}

struct Dom {
    child: Child,
    socket: PathBuf,
}

impl Dom {
    fn start(dir: &Path, name: &str, extra: &[&str]) -> Dom {
        let socket = dir.join(format!("{name}.sock"));
        let child = Command::new(VMM)
            .args(["--name", name, "--domid", "2", "--socket"])
            .arg(&socket)
            .args(extra)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while VmmClient::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "vmm did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        Dom { child, socket }
    }

    fn client(&self) -> VmmClient {
        VmmClient::connect(&self.socket).unwrap()
    }

    fn console(&self) -> ConsoleStream {
        self.client().console(true).unwrap()
    }
}

impl Drop for Dom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_until(s: &mut ConsoleStream, needle: &str, timeout: Duration) {
    s.socket()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {needle:?}; last output: {:?}",
            String::from_utf8_lossy(&seen)
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("console closed"),
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                let keep = seen.len().saturating_sub(4096);
                seen.drain(..keep);
            }
            Err(_) => {}
        }
    }
}

fn total_exits(c: &mut VmmClient) -> u64 {
    c.info().unwrap().vcpus.iter().map(|v| v.exits).sum()
}

/// Resident KiB of process `pid`, split into file-backed mappings (the
/// `vmm` binary and shared libraries: page cache every VMM on the host
/// shares) and the rest (anonymous memory: this VMM's own, guest RAM
/// included), from `/proc/PID/smaps`.
fn rss_split_kib(pid: u32) -> (u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let (mut file, mut anon) = (0, 0);
    let mut file_backed = false;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: "start-end perms offset dev inode [path]".
            file_backed = words.nth(4).is_some_and(|p| p.starts_with('/'));
        } else if first == "Rss:" {
            let kib: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            if file_backed {
                file += kib;
            } else {
                anon += kib;
            }
        }
    }
    (file, anon)
}

fn mem_available_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap();
    s.lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn main() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    println!("| benchmark | result | target |");
    println!("|---|---|---|");

    // 1. Start to first console byte and to prompt.
    let _ = start_to_prompt(999); // warm the page cache
    let runs: Vec<(f64, f64)> = (0..30).map(start_to_prompt).collect();
    let (first, ..) = summary(runs.iter().map(|r| r.0).collect());
    let (prompt, p99, _) = summary(runs.iter().map(|r| r.1).collect());
    println!("| VMM start to first console byte (median of 30) | {first:.1} ms | < 30 ms |");
    println!(
        "| VMM start to shell prompt (median of 30; p99 {p99:.1} ms) | {prompt:.1} ms | < 100 ms |"
    );

    // 2. Pause + unpause round trip, idle and busy guest.
    for (label, busy) in [("idle", false), ("busy", true)] {
        let d = Dom::start(dir.path(), &format!("pause{label}"), &["--memory", "16"]);
        let mut con = d.console();
        read_until(&mut con, "# ", Duration::from_secs(30));
        if busy {
            con.write_all(b"burn 600\n").unwrap();
            read_until(&mut con, "burn: 1 vCPUs", Duration::from_secs(30));
        }
        let mut c = d.client();
        let mut v = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            c.request(&Request::Pause).unwrap();
            c.request(&Request::Unpause).unwrap();
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (p50, p99, _) = summary(v);
        println!(
            "| pause + unpause round trip, {label} guest (200 runs) | p50 {p50:.3} ms, p99 {p99:.3} ms | < 2 ms |"
        );
    }

    // 3. Exits per KiB of continuous console output.
    {
        let d = Dom::start(dir.path(), "spew", &["--memory", "16"]);
        let mut con = d.console();
        read_until(&mut con, "# ", Duration::from_secs(30));
        let mut c = d.client();
        let kib = 1024u64;
        let e0 = total_exits(&mut c);
        let b0 = c.info().unwrap().console.bytes_out;
        let t = Instant::now();
        con.write_all(format!("spew {kib}\n").as_bytes()).unwrap();
        read_until(&mut con, "spew: done", Duration::from_secs(120));
        let secs = t.elapsed().as_secs_f64();
        let info = c.info().unwrap();
        let bytes = info.console.bytes_out - b0;
        let exits = total_exits(&mut c) - e0;
        let per_kib = exits as f64 / (bytes as f64 / 1024.0);
        println!(
            "| VM exits per KiB of continuous console output ({} KiB in {secs:.2} s, {exits} exits; {:.2} MB/s) | {per_kib:.3} | <= 0.25 |",
            bytes / 1024,
            bytes as f64 / secs / 1e6
        );
    }

    // 4. Idle exits and VMM overhead.
    {
        let d = Dom::start(dir.path(), "idle", &["--memory", "64", "--vcpus", "2"]);
        let mut con = d.console();
        read_until(&mut con, "# ", Duration::from_secs(30));
        let mut c = d.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.info().unwrap().state != RunState::Blocked {
            assert!(Instant::now() < deadline);
        }
        let e0 = total_exits(&mut c);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let rate = (total_exits(&mut c) - e0) as f64 / t.elapsed().as_secs_f64();
        println!("| exits per second of an idle guest (5 s window) | {rate:.2} | 0 |");
        let info = c.info().unwrap();
        println!(
            "| VMM overhead beyond touched guest RAM (64 MiB, 2 vCPUs, at the prompt; RSS {} KiB, touched {} KiB) | {} KiB | < 4096 KiB |",
            info.vmm.rss_kib, info.memory.touched_kib, info.vmm.overhead_kib
        );
        let (file, anon) = rss_split_kib(d.child.id());
        println!(
            "| of which file-backed: the vmm binary's and libraries' resident pages (page cache shared by every VMM on the host) | {file} KiB | report |"
        );
        println!(
            "| of which this VMM's own: anonymous memory beyond touched guest RAM | {} KiB | report |",
            anon.saturating_sub(info.memory.touched_kib)
        );
        c.request(&Request::Shutdown {
            reason: Reason::Poweroff,
        })
        .unwrap();
    }

    // 5. 100 domains of 16 MiB at once.
    {
        let before = mem_available_kib();
        let t = Instant::now();
        let doms: Vec<Dom> = (0..100)
            .map(|i| {
                let socket = dir.path().join(format!("m{i}.sock"));
                let child = Command::new(VMM)
                    .args([
                        "--name",
                        &format!("m{i}"),
                        "--domid",
                        &i.to_string(),
                        "--memory",
                        "16",
                        "--socket",
                    ])
                    .arg(&socket)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                Dom { child, socket }
            })
            .collect();
        for (i, d) in doms.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut con = loop {
                if let Ok(c) = VmmClient::connect(&d.socket) {
                    break c.console(true).unwrap();
                }
                assert!(Instant::now() < deadline, "domain m{i} never started");
                std::thread::sleep(Duration::from_millis(2));
            };
            let prompt = format!("minios@m{i}# ");
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_until(&mut con, &prompt, Duration::from_secs(60))
            }));
            if result.is_err() {
                let info = VmmClient::connect(&d.socket).and_then(|mut c| c.info());
                panic!("domain m{i} did not reach its prompt: {info:?}");
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let used = before.saturating_sub(mem_available_kib());
        println!(
            "| 100 domains of 16 MiB started at once, all at their prompt | {secs:.2} s, host memory used {} MiB ({} KiB per domain) | report |",
            used / 1024,
            used / 100
        );
        drop(doms);
    }
}
