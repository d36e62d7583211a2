//! Linux boot, side by side: the test kernel under qemu's microvm
//! (`qemu-system-x86_64 -M microvm -accel kvm`, Debian's package) and under
//! our `vmm`, with the same kernel, command line, disk and network. Prints a
//! Markdown table of the time from process start to each console milestone
//! and to the first ping answered, the ping round trip, and the VMM's memory
//! beyond the guest RAM it touched. The README quotes it.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p e2e --bench linux_vs_qemu                 # 3 boots per side
//! cargo bench -p e2e --bench linux_vs_qemu -- --runs 5 --side qemu
//! cargo bench -p e2e --bench linux_vs_qemu -- --kernel bzImage
//! cargo bench -p e2e --bench linux_vs_qemu -- --deadline 300   # a loaded machine
//! cargo bench -p e2e --bench linux_vs_qemu -- --logs DIR  # keep every boot's console
//! cargo bench -p e2e --bench linux_vs_qemu -- --kvm-counts # KVM's work per milestone (perf)
//! cargo bench -p e2e --bench linux_vs_qemu -- --variant cad   # the kernel with VT and the keyboard
//! cargo bench -p e2e --bench linux_vs_qemu -- --append 'i8042.noaux'  # more command line
//! ```
//!
//! Needs root (a network namespace with a bridge and TAPs), /dev/kvm and
//! qemu-system-x86 (and `perf` for `--kvm-counts`); builds the test kernel
//! first if it is not cached. Runs one boot at a time, alternating the sides
//! run by run (qemu, ours, qemu, ours, ...) so a load that drifts during the
//! bench hits both alike: on this machine's emulating KVM timings vary ~25%
//! with load, so it prints every run's pair and the medians.
//!
//! `--kvm-counts` runs each VMM under `perf stat -I` and prints, per
//! milestone, what KVM did for the guest to get there (instructions it
//! emulated, page-table walks, exits to the VMM, interrupts, ...) and the
//! VMM's CPU time. Those counts do not depend on the load the way wall time
//! does, so they show whether one VMM makes the same kernel do more work.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::linux::{self, GuestNet, MILESTONES};

/// Time a boot may take before it counts as failed (`--deadline SECS`).
const DEADLINE: Duration = Duration::from_secs(90);
/// Guest RAM and vCPUs, both sides.
const MEMORY_MIB: u64 = 128;
const VCPUS: u32 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Qemu,
    Vmm,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Qemu => "qemu microvm",
            Side::Vmm => "vmm (ours)",
        }
    }
}

/// What one boot reached, in seconds from process start.
#[derive(Debug, Default)]
struct Boot {
    milestones: Vec<Option<f64>>,
    ping: Option<f64>,
    rtt_ms: Option<f64>,
    rss_kib: u64,
    overhead_kib: Option<u64>,
    failure: Option<String>,
    /// With `--kvm-counts`: per counter of [`KVM_COUNTERS`], its total up to
    /// each milestone (`None` where the milestone was not reached).
    counts: Vec<Vec<Option<f64>>>,
}

struct Options {
    runs: usize,
    deadline: Duration,
    sides: Vec<Side>,
    bz_image: bool,
    /// Where to keep each boot's console (`--logs DIR`), to compare the
    /// guest's own timestamps line by line.
    logs: Option<PathBuf>,
    /// Count KVM's work per milestone with `perf stat` (`--kvm-counts`).
    kvm_counts: bool,
    /// The test kernel's variant (`--variant cad`: tests/linux/kernel-cad.config).
    variant: Option<String>,
    /// Words added to the shared command line (`--append ARGS`).
    append: String,
}

fn options() -> Options {
    let mut o = Options {
        runs: 3,
        deadline: DEADLINE,
        sides: vec![Side::Qemu, Side::Vmm],
        bz_image: false,
        logs: None,
        kvm_counts: false,
        variant: None,
        append: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--deadline" => {
                o.deadline = Duration::from_secs(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .expect("--deadline SECS"),
                )
            }
            "--side" => {
                o.sides = match args.next().as_deref() {
                    Some("qemu") => vec![Side::Qemu],
                    Some("vmm") => vec![Side::Vmm],
                    Some("both") => vec![Side::Qemu, Side::Vmm],
                    other => panic!("--side qemu|vmm|both, not {other:?}"),
                }
            }
            "--kernel" => {
                o.bz_image = match args.next().as_deref() {
                    Some("vmlinux") => false,
                    Some("bzImage") => true,
                    other => panic!("--kernel vmlinux|bzImage, not {other:?}"),
                }
            }
            "--logs" => o.logs = Some(args.next().expect("--logs DIR").into()),
            "--kvm-counts" => o.kvm_counts = true,
            "--variant" => o.variant = Some(args.next().expect("--variant NAME")),
            "--append" => o.append = args.next().expect("--append ARGS"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

/// The CPU qemu shows the guest: the host's, minus what this nested KVM
/// cannot emulate or emulates slowly (tests/linux/README.md), as our VMM
/// does. On this machine the guest sees the host's CPUID regardless, so the
/// shared command line's `clearcpuid=` does the real hiding; the
/// architectural-capabilities MSR must go or qemu fails to start here. KVM's
/// own leaf is honoured: PV unhalt, PV IPIs and PV sched-yield go, as our
/// VMM hides them (their hypercalls never complete on this nested KVM).
const QEMU_CPU: &str = "host,-arch-capabilities,-xsave,-smap,-popcnt,-fsgsbase,-rdtscp,-rdpid,\
     -rdrand,-rdseed,-clflushopt,-clwb,-cx16,-erms,-fsrm,-tsc-deadline,+xsaveerptr,\
     kvm-pv-unhalt=off,kvm-pv-ipi=off,kvm-pv-sched-yield=off";

/// What `--kvm-counts` counts (`perf stat` events) and how the table names
/// it. On this machine's KVM (kvm_pvm: the guest kernel runs
/// deprivileged and KVM emulates what it cannot run, with shadow page
/// tables) there are no `kvm_exit` events: the work shows as emulated
/// instructions, page-table walks and exits to the VMM.
const KVM_COUNTERS: &[(&str, &str)] = &[
    ("task-clock", "VMM CPU time, all threads (s)"),
    ("kvm:kvm_emulate_insn", "instructions KVM emulated"),
    ("kvmmmu:kvm_mmu_pagetable_walk", "guest page-table walks"),
    ("kvmmmu:kvm_mmu_get_page", "shadow pages made"),
    ("kvm:kvm_userspace_exit", "exits to the VMM"),
    ("kvm:kvm_pio", "port I/O"),
    ("kvm:kvm_mmio", "MMIO"),
    ("kvm:kvm_msr", "MSR accesses"),
    ("kvm:kvm_cpuid", "CPUID"),
    ("kvm:kvm_fpu", "FPU loads/puts"),
    ("kvm:kvm_exit", "VM exits"),
    ("kvm:kvm_inj_virq", "interrupts injected"),
    ("kvm:kvm_apic_ipi", "IPIs"),
    ("kvm:kvm_set_irq", "irqchip lines raised"),
    ("kvm:kvm_msi_set_irq", "MSIs"),
    ("kvm:kvm_vcpu_wakeup", "halts woken"),
    ("context-switches", "VMM context switches"),
];

/// `perf stat` for [`KVM_COUNTERS`] around `cmd`, one line per counter
/// every 100 ms into `out` (`-x,`: time, count, unit, event, ...).
fn perf_wrapped(cmd: &Command, out: &Path) -> Command {
    let mut p = Command::new("perf");
    p.args(["stat", "-x", ",", "-I", "100", "-o"]).arg(out);
    for (event, _) in KVM_COUNTERS {
        p.args(["-e", event]);
    }
    p.arg("--").arg(cmd.get_program()).args(cmd.get_args());
    p
}

/// The VMM `perf` started: its only child.
fn perf_child(perf: u32) -> Option<u32> {
    // Asked once the guest has written to its console: the VMM, perf's
    // child, is running by then.
    std::fs::read_to_string(format!("/proc/{perf}/task/{perf}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Each counter's total up to each of `times` (seconds from perf's start),
/// from `perf stat -I -x,` output: whole intervals before the time plus
/// the share of the interval it falls in.
fn counts_at(perf_csv: &str, times: &[Option<f64>]) -> Vec<Vec<Option<f64>>> {
    // Per counter, (interval end, count in the interval), in order.
    let mut series: Vec<Vec<(f64, f64)>> = vec![Vec::new(); KVM_COUNTERS.len()];
    for line in perf_csv.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(t), Some(c), Some(event)) = (f.first(), f.get(1), f.get(3)) else {
            continue;
        };
        let (Ok(t), Ok(mut c)) = (t.trim().parse::<f64>(), c.trim().parse::<f64>()) else {
            continue;
        };
        if f.get(2) == Some(&"msec") {
            c /= 1000.0;
        }
        if let Some(i) = KVM_COUNTERS.iter().position(|(e, _)| e == event) {
            series[i].push((t, c));
        }
    }
    series
        .iter()
        .map(|s| {
            times
                .iter()
                .map(|&t| {
                    let t = t?;
                    let (mut total, mut start) = (0.0, 0.0);
                    for &(end, c) in s {
                        if end <= t {
                            total += c;
                        } else {
                            total += c * ((t - start) / (end - start)).clamp(0.0, 1.0);
                            break;
                        }
                        start = end;
                    }
                    Some(total)
                })
                .collect()
        })
        .collect()
}

fn qemu_command(kernel: &Path, image: &Path, tap: &str, args: &str) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-M",
        "microvm,acpi=off,x-option-roms=off,rtc=off",
        "-accel",
        "kvm",
        "-cpu",
        QEMU_CPU,
        "-smp",
        &VCPUS.to_string(),
        "-m",
        &MEMORY_MIB.to_string(),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ])
    .arg("-kernel")
    .arg(kernel)
    .args(["-append", args])
    .arg("-drive")
    .arg(format!(
        "id=root,file={},format=raw,if=none,cache=none,aio=threads",
        image.display()
    ))
    .args(["-device", "virtio-blk-device,drive=root"])
    .args([
        "-netdev",
        &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        "-device",
        "virtio-net-device,netdev=n0,mac=aa:00:00:79:00:02",
    ]);
    c
}

fn vmm_command(kernel: &Path, image: &Path, bridge: &str, socket: &Path, args: &str) -> Command {
    let mut c = Command::new(e2e::bin("vmm"));
    c.args(["--name", "lxbench", "--domid", "1"])
        .args(["--memory", &MEMORY_MIB.to_string()])
        .args(["--vcpus", &VCPUS.to_string()])
        .arg("--kernel")
        .arg(kernel)
        .args(["--cmdline", args])
        .arg("--disk")
        .arg(format!("file:{},vda,w", image.display()))
        .args(["--vif", &format!("mac=aa:00:00:79:00:02,bridge={bridge}")])
        .arg("--socket")
        .arg(socket)
        .arg("--stdio");
    c
}

/// The guest RAM qemu maps: its largest anonymous mapping's resident KiB.
fn qemu_guest_ram_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut best_size, mut best_rss, mut size, mut anon) = (0u64, 0u64, 0u64, false);
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Size:") => size = words.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            Some("Rss:") => {
                let rss = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                if anon && size > best_size {
                    (best_size, best_rss) = (size, rss);
                }
            }
            Some(w)
                if w.contains('-') && w.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) =>
            {
                // A mapping's header line: anonymous when it names no file.
                anon = line.split_whitespace().nth(5).is_none();
            }
            _ => {}
        }
    }
    best_rss
}

/// Median round trip of `count` pings, ms.
fn ping_rtt(guest: &str, count: u32) -> Option<f64> {
    let out = Command::new("ping")
        .args([
            "-n",
            "-q",
            "-i",
            "0.2",
            "-W",
            "2",
            "-c",
            &count.to_string(),
            guest,
        ])
        .output()
        .ok()?;
    // "rtt min/avg/max/mdev = 10.1/16.2/30.4/4.1 ms": the average.
    let text = String::from_utf8_lossy(&out.stdout);
    let stats = text.lines().find(|l| l.contains("min/avg/max"))?;
    stats
        .split('=')
        .nth(1)?
        .trim()
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

fn boot_once(
    side: Side,
    kernel: &Path,
    image: &Path,
    net: &GuestNet,
    dir: &Path,
    o: &Options,
) -> Boot {
    let (deadline, kvm_counts, append) = (o.deadline, o.kvm_counts, o.append.as_str());
    let args = format!("{} {append}", linux::boot_args("/dev/vda", Some(net)));
    let args = args.trim_end();
    let socket = dir.join("vmm.sock");
    let tap = "lxq0";
    let mut cmd = match side {
        Side::Qemu => {
            net.ns
                .ip(&["tuntap", "add", "dev", tap, "mode", "tap"])
                .expect("tap");
            net.ns
                .ip(&["link", "set", tap, "master", &net.bridge])
                .expect("enslave");
            net.ns.ip(&["link", "set", tap, "up"]).expect("tap up");
            qemu_command(kernel, image, tap, args)
        }
        Side::Vmm => vmm_command(kernel, image, &net.bridge, &socket, args),
    };
    let log_path = dir.join(format!("{side:?}.console"));
    let perf_path = dir.join(format!("{side:?}.perf"));
    if kvm_counts {
        cmd = perf_wrapped(&cmd, &perf_path);
    }
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {side:?}: {e}"));
    let lines: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let at = t0.elapsed().as_secs_f64();
                lines
                    .lock()
                    .unwrap()
                    .push((at, String::from_utf8_lossy(&line).into_owned()));
            }
        })
    };
    let stderr = {
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(err), &mut s);
            s
        })
    };
    let mut boot = Boot {
        milestones: vec![None; MILESTONES.len()],
        ..Boot::default()
    };
    let seen = |text: &str| -> Option<f64> {
        lines
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.contains(text))
            .map(|(t, _)| *t)
    };
    loop {
        for (i, (_, text)) in MILESTONES.iter().enumerate() {
            if boot.milestones[i].is_none() {
                boot.milestones[i] = seen(text);
            }
        }
        let ip_up = boot.milestones[3].is_some();
        if ip_up && boot.ping.is_none() && net.ping_once(1) {
            boot.ping = Some(t0.elapsed().as_secs_f64());
        }
        if boot.ping.is_some() && boot.milestones.iter().all(Option::is_some) {
            break;
        }
        if let Some(p) = seen("Kernel panic") {
            boot.failure = Some(format!("kernel panic at {p:.1} s"));
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            boot.failure = Some(format!("exited with {status}"));
            break;
        }
        if t0.elapsed() > deadline {
            boot.failure = Some(format!("not done after {deadline:?}"));
            break;
        }
        if !ip_up {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The VMM's own process (under `perf`, perf's child).
    let pid = if kvm_counts {
        perf_child(child.id())
    } else {
        Some(child.id())
    };
    if boot.failure.is_none()
        && let Some(pid) = pid
    {
        boot.rtt_ms = ping_rtt(&net.guest, 20);
        boot.rss_kib = e2e::rss_kib(pid);
        boot.overhead_kib = match side {
            Side::Qemu => Some(boot.rss_kib.saturating_sub(qemu_guest_ram_kib(pid))),
            Side::Vmm => hypervisor::control::client::VmmClient::connect(&socket)
                .and_then(|mut c| c.info())
                .ok()
                .map(|i| i.vmm.overhead_kib),
        };
    }
    if kvm_counts && let Some(pid) = pid {
        // perf ends when the VMM does, writing its last interval.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        let csv = std::fs::read_to_string(&perf_path).unwrap_or_default();
        boot.counts = counts_at(&csv, &boot.milestones);
    }
    kill(&mut child);
    let _ = reader.join();
    let err = stderr.join().unwrap_or_default();
    let console: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|(t, l)| format!("[{t:8.3}] {l}"))
        .collect();
    let _ = std::fs::write(&log_path, console.join("\n") + "\n" + &err);
    if let Some(f) = &boot.failure {
        eprintln!(
            "{}: {f}; console and stderr in {}",
            side.label(),
            log_path.display()
        );
    }
    if side == Side::Qemu {
        let _ = net.ns.ip(&["link", "del", tap]);
    }
    let _ = std::fs::remove_file(&socket);
    boot
}

/// The host's 1, 5 and 15 minute load averages (`/proc/loadavg`): this
/// machine's cores are shared, and the figures move with the load.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn median(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some((v[v.len() / 2], v[0], v[v.len() - 1]))
}

fn cell(v: Vec<f64>, runs: usize, unit: &str) -> String {
    let n = v.len();
    match median(v) {
        None => "n/a".into(),
        Some((m, lo, hi)) if n > 1 => {
            let miss = if n < runs {
                format!(", {n}/{runs}")
            } else {
                String::new()
            };
            format!("{m:.2}{unit} ({lo:.2}-{hi:.2}{miss})")
        }
        Some((m, _, _)) => format!("{m:.2}{unit}"),
    }
}

/// A count in few digits: 2.24M, 11.7k, 345.
fn short(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e4 => format!("{:.1}k", x / 1e3),
        x if x >= 100.0 => format!("{x:.0}"),
        x => format!("{x:.2}"),
    }
}

/// One figure of a boot, as a table row: its name, how to read it off a
/// boot, and its unit.
type Figure<'a> = (String, Box<dyn Fn(&Boot) -> Option<f64> + 'a>, &'static str);

fn figures() -> Vec<Figure<'static>> {
    let mut f: Vec<Figure> = Vec::new();
    for (i, (_, text)) in MILESTONES.iter().enumerate() {
        f.push((
            format!("`{text}`"),
            Box::new(move |b| b.milestones[i]),
            " s",
        ));
    }
    f.push(("first ping answered".into(), Box::new(|b| b.ping), " s"));
    f.push((
        "ping round trip (20 pings, average)".into(),
        Box::new(|b| b.rtt_ms),
        " ms",
    ));
    f.push((
        "RSS at the root mount".into(),
        Box::new(|b| (b.rss_kib > 0).then_some(b.rss_kib as f64 / 1024.0)),
        " MiB",
    ));
    f.push((
        "memory beyond touched guest RAM".into(),
        Box::new(|b| b.overhead_kib.map(|k| k as f64 / 1024.0)),
        " MiB",
    ));
    f
}

/// Every run's figures side by side, in the order they ran.
fn print_runs(results: &[(Side, Vec<Boot>)], runs: usize) {
    let mut header = Vec::new();
    for run in 0..runs {
        for (side, _) in results {
            let name = if *side == Side::Qemu { "qemu" } else { "ours" };
            header.push(format!("{name} {}", run + 1));
        }
    }
    println!("| each run, in the order run | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(header.len()));
    for (name, pick, unit) in figures() {
        let mut cells = Vec::new();
        for run in 0..runs {
            for (_, boots) in results {
                cells.push(
                    boots
                        .get(run)
                        .and_then(&pick)
                        .map_or("n/a".into(), |v| format!("{v:.2}")),
                );
            }
        }
        println!("| {name} ({}) | {} |", unit.trim(), cells.join(" | "));
    }
    println!();
}

/// Medians per side and, with both sides, the median of the per-run
/// differences (ours minus qemu: negative is ours sooner).
fn print_medians(results: &[(Side, Vec<Boot>)], runs: usize) {
    let both = results.len() == 2;
    let mut header: Vec<&str> = results.iter().map(|(s, _)| s.label()).collect();
    if both {
        header.push("ours − qemu, median of the run pairs");
    }
    println!("| median (min-max) | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(header.len()));
    for (name, pick, unit) in figures() {
        let mut cells: Vec<String> = results
            .iter()
            .map(|(_, boots)| cell(boots.iter().filter_map(&pick).collect(), runs, unit))
            .collect();
        if both {
            let diffs: Vec<f64> = results[0]
                .1
                .iter()
                .zip(&results[1].1)
                .filter_map(|(q, o)| Some(pick(o)? - pick(q)?))
                .collect();
            cells.push(cell(diffs, runs, unit));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }
    println!();
}

/// With `--kvm-counts`: each counter's median total up to each milestone,
/// per side.
fn print_counts(results: &[(Side, Vec<Boot>)]) {
    let names: Vec<&str> = results
        .iter()
        .map(|(s, _)| if *s == Side::Qemu { "qemu" } else { "ours" })
        .collect();
    let heads: Vec<String> = MILESTONES.iter().map(|(n, _)| n.to_string()).collect();
    println!(
        "| up to the milestone, median of runs ({}) | {} |",
        names.join(" / "),
        heads.join(" | ")
    );
    println!("|---|{}", "---|".repeat(heads.len()));
    for (c, (_, what)) in KVM_COUNTERS.iter().enumerate() {
        let cells: Vec<String> = (0..MILESTONES.len())
            .map(|m| {
                let per_side: Vec<String> = results
                    .iter()
                    .map(|(_, boots)| {
                        let v: Vec<f64> = boots
                            .iter()
                            .filter_map(|b| *b.counts.get(c)?.get(m)?)
                            .collect();
                        median(v).map_or("n/a".into(), |(x, _, _)| short(x))
                    })
                    .collect();
                per_side.join(" / ")
            })
            .collect();
        println!("| {what} | {} |", cells.join(" | "));
    }
    println!();
}

fn main() {
    let o = options();
    if !hypervisor::require_kvm() {
        return;
    }
    let k = linux::kernel_variant(o.variant.as_deref());
    let kernel: PathBuf = if o.bz_image {
        k.bz_image.clone()
    } else {
        k.vmlinux.clone()
    };
    let Some(net) = GuestNet::enter("lxbench", "xenbr0") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "kernel {} ({MEMORY_MIB} MiB, {VCPUS} vCPUs, {} runs per side, load average {})\ncommand line: {}\n",
        kernel.display(),
        o.runs,
        load_average(),
        format!("{} {}", linux::boot_args("/dev/vda", Some(&net)), o.append).trim_end()
    );
    let mut results: Vec<(Side, Vec<Boot>)> = o.sides.iter().map(|&s| (s, Vec::new())).collect();
    // Run by run, the sides in turn: a load that drifts hits both alike.
    for run in 0..o.runs {
        for (side, boots) in results.iter_mut() {
            let side = *side;
            // A fresh root image per boot: a boot writes to it.
            let image = linux::root_image(dir.path(), "root.img");
            let b = boot_once(side, &kernel, &image, &net, dir.path(), &o);
            if let Some(logs) = &o.logs {
                std::fs::create_dir_all(logs).expect("--logs DIR");
                let mut keep = vec![("console", "console")];
                if o.kvm_counts {
                    keep.push(("perf", "perf.csv"));
                }
                for (from, to) in keep {
                    let from = dir.path().join(format!("{side:?}.{from}"));
                    let to = logs.join(format!("{side:?}-{}.{to}", run + 1));
                    std::fs::copy(&from, &to).expect("keep the boot's log");
                }
            }
            eprintln!(
                "{} run {} (load average after it: {}): milestones {:?}, ping {:?}, failure {:?}",
                side.label(),
                run + 1,
                load_average(),
                b.milestones,
                b.ping,
                b.failure
            );
            boots.push(b);
        }
    }
    println!("load average at the end: {}\n", load_average());
    print_runs(&results, o.runs);
    print_medians(&results, o.runs);
    if o.kvm_counts {
        print_counts(&results);
    }
    drop(net);
}
