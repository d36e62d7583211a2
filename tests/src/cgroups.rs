//! Reading cgroups from outside, as a test checks them: where a process is
//! (`/proc/PID/cgroup`), where each hierarchy is mounted
//! (`/proc/self/mountinfo`), a cgroup's files, and a process's CPU time.
//! Independent of xend's own `cgroup` module: the tests look with their own
//! eyes.
use std::fs;
use std::path::PathBuf;

/// The mount point of the cgroup v1 hierarchy with controller `ctl`, or
/// `None` when there is none.
pub fn v1_mount(ctl: &str) -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let mut post = post.split_whitespace();
        let (fstype, _, opts) = (post.next()?, post.next()?, post.next()?);
        let point = pre.split_whitespace().nth(4)?;
        (fstype == "cgroup" && opts.split(',').any(|o| o == ctl)).then(|| PathBuf::from(point))
    })
}

/// True when this host has the cgroup v1 `cpu`, `memory` and `pids`
/// hierarchies xend uses here (this machine and CI: the unified hierarchy
/// is empty). Says why not on stderr.
pub fn require_v1() -> bool {
    let missing: Vec<&str> = ["cpu", "memory", "pids"]
        .into_iter()
        .filter(|c| v1_mount(c).is_none())
        .collect();
    if missing.is_empty() && nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root and the cgroup v1 hierarchies {missing:?}");
    false
}

/// The cgroup path of process `pid` in the v1 hierarchy of `ctl` (`/a/b`).
pub fn path_of(pid: u32, ctl: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctls, path) = (f.next()?, f.next()?, f.next()?);
        ctls.split(',').any(|c| c == ctl).then(|| path.to_string())
    })
}

/// The directory of process `pid`'s cgroup in the v1 hierarchy of `ctl`.
pub fn dir_of(pid: u32, ctl: &str) -> Option<PathBuf> {
    let path = path_of(pid, ctl)?;
    Some(v1_mount(ctl)?.join(path.trim_start_matches('/')))
}

/// This process's own cgroup directory in the v1 hierarchy of `ctl` (xend,
/// started by the harness, is in the same one).
pub fn own_dir(ctl: &str) -> Option<PathBuf> {
    dir_of(std::process::id(), ctl)
}

/// A cgroup file's contents, trimmed (panics when it cannot be read).
#[track_caller]
pub fn read(dir: &std::path::Path, file: &str) -> String {
    let p = dir.join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// One field of a cgroup's `cpu.stat` (`nr_throttled`, ...).
#[track_caller]
pub fn cpu_stat(dir: &std::path::Path, key: &str) -> u64 {
    read(dir, "cpu.stat")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {}/cpu.stat", dir.display()))
}

/// CPU time process `pid` has used (user + system, every thread, guest time
/// included), seconds; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
        return 0.0;
    };
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after ")".
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks as f64 / hz
}

/// Remove the cgroup `parent` under this process's own cgroup in each v1
/// hierarchy, with what is left in it (empty cgroups of killed VMMs). The
/// last threads of a killed VMM keep its cgroup busy for a moment: retried
/// for up to 10 s.
pub fn remove_parent(parent: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for ctl in ["cpu", "memory", "pids"] {
        let Some(dir) = own_dir(ctl).map(|d| d.join(parent)) else {
            continue;
        };
        while dir.exists() {
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = fs::remove_dir(e.path());
                    }
                }
            }
            if fs::remove_dir(&dir).is_ok() || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
