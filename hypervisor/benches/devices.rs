//! Device benchmarks on the real `vmm` and minios (`cargo bench -p
//! hypervisor --bench devices`). Prints a Markdown table.
//!
//! * Disk: minios writes (`blkwrite`) and then reads (`blkread`, which also
//!   checksums every word in the guest) 32 MiB on a file-backed vbd: MB/s
//!   from the host's clock (command sent to result line) and VM exits per MB.
//! * Network, guest to host: minios sends 20 000 full-size frames
//!   (`netspew`) through its vif to a TAP on a bridge inside a network
//!   namespace this benchmark creates: Mbit/s from the vif's `tx_bytes` and
//!   the host's clock, and VM exits per MB. Skipped (with the reason) when a
//!   namespace cannot be created.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hypervisor::control::client::{ConsoleStream, VmmClient};

const VMM: &str = env!("CARGO_BIN_EXE_vmm");
const T: Duration = Duration::from_secs(600);

struct Dom {
    child: Child,
    socket: PathBuf,
    con: ConsoleStream,
    seen: Vec<u8>,
}

impl Dom {
    fn start(prefix: &[&str], dir: &Path, name: &str, extra: &[&str]) -> Dom {
        let socket = dir.join(format!("{name}.sock"));
        let (program, pre) = prefix
            .split_first()
            .map_or((VMM, &[][..]), |(p, r)| (*p, r));
        let mut cmd = Command::new(program);
        cmd.args(pre);
        if !prefix.is_empty() {
            cmd.arg(VMM);
        }
        let child = cmd
            .args([
                "--name", name, "--domid", "31", "--memory", "64", "--socket",
            ])
            .arg(&socket)
            .arg("--log")
            .arg(dir.join(format!("{name}.log")))
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let con = loop {
            if let Ok(c) = VmmClient::connect(&socket)
                && let Ok(s) = c.console(true)
            {
                break s;
            }
            assert!(Instant::now() < deadline, "vmm did not start");
            std::thread::sleep(Duration::from_millis(5));
        };
        con.socket()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut d = Dom {
            child,
            socket,
            con,
            seen: Vec::new(),
        };
        d.expect(0, &format!("minios@{name}# "));
        d
    }

    fn expect(&mut self, from: usize, needle: &str) {
        let deadline = Instant::now() + T;
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.seen[from..]).contains(needle) {
            assert!(Instant::now() < deadline, "timed out waiting for {needle}");
            match self.con.read(&mut buf) {
                Ok(0) => panic!("console closed"),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    /// Run `cmd`, wait for `needle`; returns the seconds it took.
    fn timed(&mut self, cmd: &str, needle: &str) -> f64 {
        use std::io::Write;
        let from = self.seen.len();
        let t0 = Instant::now();
        self.con.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        self.expect(from, needle);
        t0.elapsed().as_secs_f64()
    }

    fn info(&self) -> hypervisor::control::proto::DomainInfo {
        VmmClient::connect(&self.socket).unwrap().info().unwrap()
    }

    fn exits(&self) -> u64 {
        self.info().vcpus.iter().map(|v| v.exits).sum()
    }
}

impl Drop for Dom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn disk(dir: &Path) -> Vec<(String, f64, f64)> {
    let path = dir.join("bench.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let spec = format!("file:{},xvda,w", path.display());
    let mut d = Dom::start(&[], dir, "blkbench", &["--disk", &spec]);
    let sectors = 32 * 2048;
    let mb = 32.0 * 1.048_576;
    let e0 = d.exits();
    let t = d.timed(
        &format!("blkwrite xvda 0 {sectors} bench"),
        "blkwrite: xvda wrote",
    );
    let e1 = d.exits();
    let tr = d.timed(&format!("blkread xvda 0 {sectors}"), "checksum ");
    let e2 = d.exits();
    vec![
        (
            "disk write, 32 MiB (16 KiB requests, 16 per notify)".into(),
            mb / t,
            (e1 - e0) as f64 / mb,
        ),
        (
            "disk read, 32 MiB (guest checksums every word)".into(),
            mb / tr,
            (e2 - e1) as f64 / mb,
        ),
    ]
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn net(dir: &Path) -> Result<(String, f64, f64), String> {
    let ns = format!("xtopbench-{}", std::process::id());
    if !ip(&["netns", "add", &ns]) {
        return Err("cannot create a network namespace (needs root)".into());
    }
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            ip(&["netns", "del", &self.0]);
        }
    }
    let _del = Del(ns.clone());
    assert!(ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]));
    assert!(ip(&["-n", &ns, "link", "set", "br0", "up"]));
    let mut d = Dom::start(
        &["ip", "netns", "exec", &ns],
        dir,
        "netbench",
        &["--vif", "bridge=br0"],
    );
    let frames = 20_000u64;
    let b0 = d.info().vifs[0].tx_bytes;
    let e0 = d.exits();
    let t = d.timed(&format!("netspew {frames}"), "netspew: sent");
    let b1 = d.info().vifs[0].tx_bytes;
    let e1 = d.exits();
    let mb = (b1 - b0) as f64 / 1e6;
    Ok((
        format!("network guest to host, {frames} frames of 1514 bytes"),
        (b1 - b0) as f64 * 8.0 / 1e6 / t,
        (e1 - e0) as f64 / mb,
    ))
}

fn main() {
    if let Err(e) = hypervisor::kvm_usable() {
        println!("skipped: {e}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    println!("| benchmark | throughput | VM exits per MB |");
    println!("|---|---|---|");
    for (name, mbs, exits) in disk(dir.path()) {
        println!("| {name} | {mbs:.1} MB/s | {exits:.1} |");
    }
    match net(dir.path()) {
        Ok((name, mbit, exits)) => println!("| {name} | {mbit:.1} Mbit/s | {exits:.1} |"),
        Err(e) => println!("| network | skipped: {e} | |"),
    }
}
