//! Save, restore and migration benchmarks on the real `vmm` binary and minios
//! (`cargo bench -p hypervisor --bench snapshot`). Prints a Markdown table.
//!
//! For 64 and 256 MiB domains with most of their RAM touched (`mem`):
//! save time (request to reply, image on disk and fsynced), restore time
//! (process start to the control socket answering, image validated and
//! loaded), both as MB/s of image and of guest RAM; migration between two
//! VMMs on this machine, stop-and-copy and live, total time and downtime
//! (pause to the destination running), live with an idle guest and with a
//! guest rewriting its 192 MiB (`pattern write`) meanwhile. Median of `RUNS`
//! runs each.
#![allow(unsafe_code)] // libc calls, each with a SAFETY comment
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hypervisor::control::client::{ConsoleStream, VmmClient};
use hypervisor::control::proto::{MigrateInfo, Payload, Request, SaveInfo};

const VMM: &str = env!("CARGO_BIN_EXE_vmm");
const RUNS: usize = 3;
const T: Duration = Duration::from_secs(120);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Proc {
    child: Child,
    socket: PathBuf,
}

impl Proc {
    fn spawn(socket: PathBuf, args: &[&str]) -> Proc {
        let child = Command::new(VMM)
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc { child, socket }
    }

    /// Wait until the VMM answers `info` (the socket file exists before the
    /// domain is built; it is served only after).
    fn wait_socket(&mut self) {
        let deadline = Instant::now() + T;
        while VmmClient::connect(&self.socket)
            .and_then(|mut c| c.info())
            .is_err()
        {
            assert!(self.child.try_wait().unwrap().is_none(), "vmm exited");
            assert!(Instant::now() < deadline, "vmm did not come up");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn console(&self) -> ConsoleStream {
        let c = VmmClient::connect(&self.socket)
            .unwrap()
            .console(false)
            .unwrap();
        c.socket()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        c
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Type `command` and read until `needle`.
fn run(con: &mut ConsoleStream, command: &str, needle: &str) {
    con.write_all(format!("{command}\n").as_bytes()).unwrap();
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} after {command:?}");
        if let Ok(n) = con.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
    }
}

/// A domain of `mib` MiB with `touch` MiB touched, at its prompt.
fn domain(dir: &Path, name: &str, mib: u64, touch: u64) -> Proc {
    let mut p = Proc::spawn(
        dir.join(format!("{name}.sock")),
        &["--name", name, "--domid", "3", "--memory", &mib.to_string()],
    );
    p.wait_socket();
    let mut con = p.console();
    run(&mut con, "", &format!("minios@{name}# "));
    run(
        &mut con,
        &format!("mem {touch}"),
        &format!("touched {touch} MiB"),
    );
    p
}

fn save(p: &mut Proc, image: &Path) -> (SaveInfo, f64) {
    let t0 = Instant::now();
    let reply = VmmClient::connect(&p.socket)
        .unwrap()
        .request(&Request::Save {
            path: image.to_string_lossy().into_owned(),
        });
    let secs = t0.elapsed().as_secs_f64();
    match reply {
        Ok(Payload::Saved(info)) => {
            p.child.wait().unwrap();
            (info, secs)
        }
        other => panic!("save: {other:?}"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Migrate `src` to a fresh destination; with `busy`, the guest rewrites
/// its `busy` MiB pool (one word per 64 bytes) meanwhile.
fn migrate(dir: &Path, src: &mut Proc, name: &str, live: bool, busy: Option<u64>) -> MigrateInfo {
    let port = free_port();
    let out = Command::new(VMM)
        .args(["--incoming", &format!("127.0.0.1:{port}")])
        .args(["--incoming-token", "bench", "--detach", "--socket"])
        .arg(dir.join(format!("{name}-dst.sock")))
        .output()
        .unwrap();
    assert!(out.status.success());
    let dst_pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let mut con = src.console();
    if let Some(mib) = busy {
        let cmd = format!("pattern write {mib} 9");
        run(&mut con, &cmd, &format!("{cmd}\r\n"));
    }
    let reply = VmmClient::connect(&src.socket)
        .unwrap()
        .request(&Request::Migrate {
            host: "127.0.0.1".into(),
            port,
            token: "bench".into(),
            live,
        });
    let info = match reply {
        Ok(Payload::Migrated(info)) => info,
        other => panic!("migrate: {other:?}"),
    };
    src.child.wait().unwrap();
    // SAFETY: signalling the destination process this bench started.
    unsafe { libc::kill(dst_pid, libc::SIGKILL) };
    info
}

fn main() {
    if let Err(why) = hypervisor::kvm_usable() {
        println!("no usable /dev/kvm ({why}): nothing to measure");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    println!("| benchmark | result |");
    println!("|---|---|");
    for (mib, touch) in [(64u64, 48u64), (256, 192)] {
        let (mut save_s, mut restore_s, mut image_mb, mut ram_mb) = (vec![], vec![], 0.0, 0.0);
        for i in 0..RUNS {
            let name = format!("s{mib}x{i}");
            let mut p = domain(dir.path(), &name, mib, touch);
            let image = dir.path().join(format!("{name}.img"));
            let (info, secs) = save(&mut p, &image);
            save_s.push(secs);
            image_mb = info.image_bytes as f64 / 1e6;
            ram_mb = (info.ram_pages * 4096) as f64 / 1e6;
            let t0 = Instant::now();
            let mut r = Proc::spawn(
                dir.path().join(format!("{name}-r.sock")),
                &["--restore", image.to_str().unwrap()],
            );
            r.wait_socket();
            restore_s.push(t0.elapsed().as_secs_f64());
            let _ = std::fs::remove_file(&image);
        }
        let (s, r) = (median(save_s), median(restore_s));
        println!(
            "| save, {mib} MiB domain, {touch} MiB touched (image {image_mb:.1} MB, guest RAM {ram_mb:.1} MB) | {:.0} ms: {:.0} MB/s of image, {:.0} MB/s of RAM |",
            s * 1e3,
            image_mb / s,
            ram_mb / s
        );
        println!(
            "| restore, {mib} MiB domain (validate + load, start to socket ready) | {:.0} ms: {:.0} MB/s of image, {:.0} MB/s of RAM |",
            r * 1e3,
            image_mb / r,
            ram_mb / r
        );
    }
    let mib = 256;
    let touch = 192;
    for (label, live, busy) in [
        ("stop-and-copy", false, None),
        ("live, idle guest", true, None),
        ("live, guest rewriting its RAM", true, Some(touch)),
    ] {
        let (mut total, mut down, mut rounds, mut mb) = (vec![], vec![], 0, 0.0);
        for i in 0..RUNS {
            let name = format!("m{i}{}{}", u8::from(live), u8::from(busy.is_some()));
            let mut p = domain(dir.path(), &name, mib, touch);
            let info = migrate(dir.path(), &mut p, &name, live, busy);
            total.push(info.total_seconds);
            down.push(info.downtime_seconds);
            rounds = rounds.max(info.rounds);
            mb = info.bytes as f64 / 1e6;
        }
        println!(
            "| migrate {mib} MiB ({touch} MiB touched), {label} | total {:.0} ms, downtime {:.1} ms, {mb:.0} MB sent, up to {rounds} pre-copy rounds |",
            median(total) * 1e3,
            median(down) * 1e3
        );
    }
}
