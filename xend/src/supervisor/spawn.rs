//! Starting VMM processes and watching them as processes.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use hypervisor::control::proto::TransferProgress;

use crate::config::{DomainConfig, Image};

// The config's limits are the VMM's: one limit, checked when a config is parsed.
const _: () = assert!(crate::config::MAX_MEMORY_MIB == hypervisor::builder::MAX_MEMORY_MIB);
const _: () = assert!(crate::config::MAX_VCPUS == guest_abi::MAX_VCPUS);

/// How long a VMM may take to report ready.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where one VMM instance keeps its runtime files.
#[derive(Clone, Debug)]
pub struct VmmPaths {
    /// Control socket.
    pub socket: PathBuf,
    /// JSON record (pid, name, domid, ...).
    pub record: PathBuf,
    /// VMM log.
    pub log: PathBuf,
    /// The directory a jailed VMM's root is mounted on (empty on the host).
    pub jail: PathBuf,
}

impl VmmPaths {
    /// The files of domain `domid` under `<state-dir>/vmm`.
    pub fn new(state_dir: &Path, domid: u32) -> VmmPaths {
        let dir = state_dir.join("vmm");
        VmmPaths {
            socket: dir.join(format!("{domid}.sock")),
            record: dir.join(format!("{domid}.json")),
            log: dir.join(format!("{domid}.log")),
            jail: state_dir.join("jail").join(domid.to_string()),
        }
    }

    /// Remove the socket and record left by a dead VMM.
    pub fn remove_stale(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.record);
        // Only ever empty on the host (the jail's tmpfs lives in the VMM's
        // own mount namespace); remove_dir refuses anything else.
        let _ = std::fs::remove_dir(&self.jail);
    }

    /// The seccomp violation a jailed VMM reported in its log before it
    /// died (`seccomp violation: SYSCALL on THREAD`), if any: the last
    /// 4 KiB of the log are searched.
    pub fn seccomp_violation(&self) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.log).ok()?;
        let len = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
        let mut tail = Vec::new();
        f.take(4096).read_to_end(&mut tail).ok()?;
        let tail = String::from_utf8_lossy(&tail);
        // Newest first, and only after this VMM's own "jailed:" line (the
        // log is kept across restarts of the domain).
        let line = tail
            .lines()
            .rev()
            .take_while(|l| !l.contains("]: jailed: "))
            .find_map(|l| {
                l.strip_prefix("vmm: ")
                    .filter(|r| r.starts_with("seccomp violation: "))
            })?;
        // The VMM wrote it, but keep the reason a short, printable line.
        Some(line.chars().filter(|c| !c.is_control()).take(120).collect())
    }
}

/// The kernel argument and command line of a config.
pub fn kernel_and_cmdline(cfg: &DomainConfig) -> (String, String) {
    match &cfg.image {
        Image::Minios { args } => ("minios".into(), args.clone().unwrap_or_default()),
        Image::Linux {
            kernel, root, args, ..
        } => {
            let mut cmdline = Vec::new();
            if let Some(r) = root {
                cmdline.push(format!("root={r}"));
            }
            if let Some(a) = args {
                cmdline.push(a.clone());
            }
            (kernel.display().to_string(), cmdline.join(" "))
        }
    }
}

/// The runtime-file and identity flags every VMM gets:
/// `--detach --name=NAME --domid ID --socket S --record R --log L [--cpu N]`.
///
/// A value that comes from a client's config is always written in the same
/// argument as its flag (`--name=NAME`, `--kernel=K`, `--cmdline=C`), so
/// however it starts (`--log=/etc/...`), the VMM reads it as that flag's
/// value and never as a flag of its own.
pub fn common_args(cfg: &DomainConfig, domid: u32, paths: &VmmPaths) -> Vec<String> {
    let mut args = vec![
        "--detach".to_string(),
        format!("--name={}", cfg.name),
        "--domid".into(),
        domid.to_string(),
        "--socket".into(),
        paths.socket.display().to_string(),
        "--record".into(),
        paths.record.display().to_string(),
        "--log".into(),
        paths.log.display().to_string(),
    ];
    if let Some(cpu) = cfg.cpu.filter(|c| *c >= 0) {
        args.push("--cpu".into());
        args.push(cpu.to_string());
    }
    args
}

/// The VMM command line for domain `domid`: [`common_args`], then the boot
/// flags. `kernel` is the canonical path the confinement policy gave for the
/// config's kernel (`None`: the config's own, e.g. `minios`).
pub fn vmm_args(
    cfg: &DomainConfig,
    kernel: Option<&Path>,
    domid: u32,
    paths: &VmmPaths,
) -> Vec<String> {
    let (configured, cmdline) = kernel_and_cmdline(cfg);
    let kernel = kernel.map_or(configured, |k| k.display().to_string());
    let mut args = common_args(cfg, domid, paths);
    args.extend([
        "--memory".into(),
        cfg.memory.to_string(),
        "--maxmem".into(),
        cfg.maxmem.max(cfg.memory).to_string(),
        "--vcpus".into(),
        cfg.vcpus.to_string(),
        format!("--kernel={kernel}"),
        format!("--cmdline={cmdline}"),
    ]);
    args
}

/// The jail flags of domain `domid` (uid and gid `base + domid`).
pub fn jail_args(paths: &VmmPaths, base: u32, domid: u32) -> Vec<String> {
    let id = base.saturating_add(domid).to_string();
    vec![
        "--jail-dir".into(),
        paths.jail.display().to_string(),
        "--jail-uid".into(),
        id.clone(),
        "--jail-gid".into(),
        id,
    ]
}

/// What the VMM says when it refuses the config it was given (its disk
/// errors, `hypervisor::devices::block::DiskError`; its kernel errors,
/// `hypervisor::loader::LoadError`; its own checks, `BuildError::Invalid`),
/// as opposed to failing by itself.
const CONFIG_REFUSALS: &[&str] = &[
    "cannot open disk ",
    "is in use by another domain",
    "cannot read the size of disk ",
    "is smaller than one",
    "cannot read kernel image ",
    "is not an x86-64 ELF kernel",
    "bytes; the limit is",
    "invalid domain: ",
];

/// True when a VMM's start-up error is a refusal of the client's config
/// (answered 400 with the VMM's message, not 500).
pub fn is_config_refusal(why: &str) -> bool {
    CONFIG_REFUSALS.iter().any(|p| why.contains(p))
}

/// Why a VMM did not start. Its users see the whole chain
/// (`errchain::error_chain`); a refusal is the VMM's own message.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The VMM binary could not be run.
    #[error("cannot run {}", path.display())]
    Run {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It did not report ready within [`SPAWN_TIMEOUT`].
    #[error("the VMM did not start within {0:?}")]
    Timeout(Duration),
    /// Waiting for it failed.
    #[error("VMM")]
    Wait(#[source] std::io::Error),
    /// It exited with an error and said why on stderr (its words, as
    /// they are: [`is_config_refusal`] reads them).
    #[error("{0}")]
    Refused(String),
    /// It exited with an error and said nothing.
    #[error("the VMM failed to start ({0})")]
    Failed(std::process::ExitStatus),
    /// It exited successfully without printing its pid.
    #[error("the VMM printed no pid: {0:?}")]
    NoPid(String),
}

/// Run `vmm --detach ...`; returns the pid of the running VMM.
pub async fn spawn(vmm: &Path, args: &[String]) -> Result<u32, SpawnError> {
    spawn_with_env(vmm, args, &[]).await
}

/// [`spawn`] with extra environment variables (secrets stay out of `ps`).
pub async fn spawn_with_env(
    vmm: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<u32, SpawnError> {
    spawn_reporting(vmm, args, env, |_| {}).await
}

/// Longest line the starting VMM may print (its progress lines are ~200 bytes).
const MAX_STDOUT_LINE: usize = 4096;

/// [`spawn_with_env`], handing each `progress JSON` line the VMM prints
/// while it starts (a restore's figures) to `on_progress` as it comes.
pub async fn spawn_reporting(
    vmm: &Path,
    args: &[String],
    env: &[(&str, &str)],
    mut on_progress: impl FnMut(TransferProgress),
) -> Result<u32, SpawnError> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut child = tokio::process::Command::new(vmm)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| SpawnError::Run {
            path: vmm.to_path_buf(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let run = async {
        let err_task = async {
            let mut err = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
            err
        };
        let out_task = async {
            let mut lines = BufReader::new(stdout);
            let mut last = String::new();
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = (&mut lines)
                    .take(MAX_STDOUT_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .await
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&line);
                match text.strip_prefix("progress ") {
                    Some(json) => {
                        if let Ok(p) = serde_json::from_str(json.trim()) {
                            on_progress(p);
                        }
                    }
                    None => last = text.into_owned(),
                }
            }
            last
        };
        let (err, last) = tokio::join!(err_task, out_task);
        let status = child.wait().await;
        (status, err, last)
    };
    let (status, err, stdout) = tokio::time::timeout(SPAWN_TIMEOUT, run)
        .await
        .map_err(|_| SpawnError::Timeout(SPAWN_TIMEOUT))?;
    let status = status.map_err(SpawnError::Wait)?;
    if !status.success() {
        let err = String::from_utf8_lossy(&err).trim().to_string();
        return Err(if err.is_empty() {
            SpawnError::Failed(status)
        } else {
            SpawnError::Refused(err)
        });
    }
    stdout
        .split_whitespace()
        .last()
        .and_then(|p| p.parse().ok())
        .ok_or(SpawnError::NoPid(stdout))
}

/// True while some thread of process `pid` has not finished exiting.
///
/// Not just the main thread: when a VMM exits, its main thread can be a
/// zombie while another thread is still tearing down (closing the KVM VM,
/// which takes a while for a large guest), and the process's files, with a
/// disk's `flock`, are closed only when the last thread is done.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
    })
}

/// How long ago process `pid` started (from `/proc/PID/stat` and `/proc/uptime`).
pub fn process_age(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, clock ticks since boot) counts from the one after ")".
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some(Duration::from_secs_f64(
        (uptime - start_ticks / ticks).max(0.0),
    ))
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Pids of live processes whose command line has `--socket SOCKET` for a socket
/// in `dir` (our VMMs), with the socket path.
pub fn find_vmms(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Some(args) = cmdline(pid) else { continue };
        if let Some(i) = args.iter().position(|a| a == "--socket")
            && let Some(sock) = args.get(i + 1)
        {
            let sock = PathBuf::from(sock);
            if sock.parent() == Some(dir) && pid_alive(pid) {
                found.push((pid, sock));
            }
        }
    }
    found
}

/// The domain id a VMM socket path names (`<state-dir>/vmm/<id>.sock`).
pub fn domid_of_socket(sock: &Path) -> Option<u32> {
    sock.file_stem()?.to_str()?.parse().ok()
}

/// Ids held by live VMM processes of this state dir, whether xend manages
/// them or not: never handed out again.
pub fn live_domids(dir: &Path) -> Vec<u32> {
    find_vmms(dir)
        .iter()
        .filter_map(|(_, sock)| domid_of_socket(sock))
        .collect()
}

/// Wait until `pid` is gone; SIGKILL it after `grace`. Returns true if it had
/// to be killed.
pub async fn wait_exit(pid: u32, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while pid_alive(pid) {
        if Instant::now() >= deadline {
            tracing::warn!("VMM {pid} did not exit within {grace:?}; killing it");
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let hard = Instant::now() + Duration::from_secs(5);
            while pid_alive(pid) && Instant::now() < hard {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// How long a VMM that did not answer `destroy` gets to handle SIGTERM
/// before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long the kernel gets to end a SIGKILLed process.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How [`end_vmm`] ended a VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself within the grace time (or was already gone).
    Exited,
    /// It exited on SIGTERM.
    Terminated,
    /// It had to be SIGKILLed.
    Killed,
    /// It is still there after SIGKILL (in uninterruptible sleep, say).
    Stuck,
}

/// True while `pid` is alive and still the VMM serving `socket` (so a pid
/// reused by another process is never signalled).
/// True while `pid` is the VMM serving `socket` and has not finished
/// exiting. An exiting process gives back its memory first, so its command
/// line reads empty while its files (a disk's lock) are still open: a process
/// in `exit` with no command line still counts as the VMM; any other command
/// line means the pid belongs to someone else.
pub(crate) fn is_vmm(pid: u32, socket: &Path) -> bool {
    pid_alive(pid)
        && cmdline(pid).is_some_and(|args| {
            if args.is_empty() {
                return exiting(pid);
            }
            args.windows(2)
                .any(|w| w[0] == "--socket" && Path::new(&w[1]) == socket)
        })
}

/// True when process `pid` has begun to exit (`PF_EXITING` in the flags of
/// `/proc/PID/stat`).
fn exiting(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // After the command name: state, ppid, pgrp, session, tty, tpgid, flags.
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
            .is_some_and(|flags| flags & PF_EXITING != 0)
    })
}

async fn wait_gone(pid: u32, socket: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !is_vmm(pid, socket) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// End the VMM `pid` serving `socket`: wait `grace` for it to exit by
/// itself, then SIGTERM (with SIGCONT, so a stopped VMM can handle it) and
/// [`TERM_GRACE`], then SIGKILL (which also ends a stopped process).
pub async fn end_vmm(pid: u32, socket: &Path, grace: Duration) -> Ending {
    if wait_gone(pid, socket, grace).await {
        return Ending::Exited;
    }
    let target = Pid::from_raw(pid as i32);
    tracing::warn!("VMM {pid} did not exit; sending SIGTERM");
    let _ = kill(target, Signal::SIGTERM);
    let _ = kill(target, Signal::SIGCONT);
    if wait_gone(pid, socket, TERM_GRACE).await {
        return Ending::Terminated;
    }
    tracing::warn!(
        "VMM {pid} did not exit within {} of SIGTERM; killing it",
        crate::vmm_client::seconds(TERM_GRACE)
    );
    let _ = kill(target, Signal::SIGKILL);
    if wait_gone(pid, socket, KILL_WAIT).await {
        Ending::Killed
    } else {
        tracing::error!("VMM {pid} is still there after SIGKILL");
        Ending::Stuck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vmm_refusing_a_config_is_told_from_it_failing() {
        for why in [
            "vmm: cannot open disk /img/a.img: Permission denied (os error 13)",
            "vmm: disk /img/a.img is smaller than one 512-byte sector",
            "vmm: disk /img/a.img is in use by another domain (write lock); ...",
            "vmm: invalid domain: maxmem 9000 MiB is above the limit of 8192 MiB",
            "vmm: kernel image /boot/x is not an x86-64 ELF kernel for this ABI (...)",
        ] {
            assert!(is_config_refusal(why), "{why}");
        }
        for why in [
            "vmm: KVM create_vm failed: Cannot allocate memory",
            "the VMM did not start within 60 s",
            "vmm: cannot start a thread",
        ] {
            assert!(!is_config_refusal(why), "{why}");
        }
    }

    #[tokio::test]
    async fn end_vmm_kills_a_stopped_vmm_that_ignores_sigterm() {
        let socket = Path::new("/nonexistent/vmm/7.sock");
        // perl with SIGTERM ignored, `--socket` on its command line.
        let mut child = std::process::Command::new("perl")
            .args(["-e", "$SIG{TERM} = 'IGNORE'; sleep 1 while 1;", "--"])
            .args(["--socket", "/nonexistent/vmm/7.sock"])
            .spawn()
            .unwrap();
        let pid = child.id();
        // Wait until perl ignores SIGTERM (bit 15 of SigIgn).
        let ignores_term = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("SigIgn:"))?;
                    u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).ok()
                })
                .is_some_and(|mask| mask & (1 << 14) != 0)
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !(is_vmm(pid, socket) && ignores_term()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        let started = Instant::now();
        assert_eq!(end_vmm(pid, socket, Duration::ZERO).await, Ending::Killed);
        assert!(started.elapsed() < TERM_GRACE + Duration::from_secs(2));
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn end_vmm_leaves_a_process_that_is_not_the_vmm_alone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let socket = Path::new("/nonexistent/vmm/1.sock");
        // Its command line names no such socket: never signalled.
        assert_eq!(end_vmm(pid, socket, Duration::ZERO).await, Ending::Exited);
        assert!(pid_alive(pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
