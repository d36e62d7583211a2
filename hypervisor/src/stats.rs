//! Host-side accounting: vCPU thread CPU clocks, affinity, the VMM's RSS.

/// CPU time of the calling thread, nanoseconds.
pub fn own_thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of another live thread of this process, nanoseconds.
///
/// # Safety
///
/// `thread` must be a live thread of this process for the whole call (the
/// domain lock guarantees it: a vCPU thread marks itself offline, under that
/// lock, before it exits). A handle of an exited thread is undefined
/// behaviour in `pthread_getcpuclockid`.
pub unsafe fn thread_cpu_ns(thread: libc::pthread_t) -> u64 {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `thread` is a live thread of this process (the caller's
    // contract) and `clock` is a valid out-pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(thread, &mut clock) };
    if rc != 0 {
        return 0;
    }
    clock_ns(clock)
}

/// `CLOCK_MONOTONIC`, seconds: the same clock in every process on this host.
pub fn monotonic_secs() -> f64 {
    clock_ns(libc::CLOCK_MONOTONIC) as f64 / 1e9
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; an invalid clock id only yields an error.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Kernel thread id of the calling thread.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Host CPUs thread `tid` may run on.
pub fn affinity(tid: i32) -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(tid, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Restrict thread `tid` to `cpus` (empty = every online CPU).
pub fn set_affinity(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    let online = online_cpus();
    let want: Vec<usize> = if cpus.is_empty() {
        (0..online).collect()
    } else {
        cpus.to_vec()
    };
    if let Some(bad) = want.iter().find(|&&c| c >= online) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "host CPU {bad} does not exist (this host has CPUs 0-{})",
                online - 1
            ),
        ));
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in &want {
        // SAFETY: `c` < online <= CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Number of online host CPUs, asked once (std reads cgroup files for it,
/// which a jailed thread can no longer open; the jail asks before it
/// closes).
pub fn online_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Host CPU thread `tid` last ran on (field 39 of its stat file).
pub fn last_cpu(tid: i32) -> Option<usize> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(36)?.parse().ok()
}

/// The host's memory (`MemTotal` in `/proc/meminfo`), bytes; `None` if it
/// cannot be read.
pub fn host_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident set size of this process, KiB.
pub fn rss_kib() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_clock_advances_with_work() {
        let a = own_thread_cpu_ns();
        let mut x = 0u64;
        while own_thread_cpu_ns() - a < 2_000_000 {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        // SAFETY: the calling thread is alive.
        assert!(unsafe { thread_cpu_ns(me) } >= a + 2_000_000);
    }

    #[test]
    fn affinity_round_trips() {
        let tid = gettid();
        let all = affinity(tid);
        assert!(!all.is_empty());
        set_affinity(tid, &[all[0]]).unwrap();
        assert_eq!(affinity(tid), vec![all[0]]);
        set_affinity(tid, &[]).unwrap();
        assert!(set_affinity(tid, &[100_000]).is_err());
        assert!(last_cpu(tid).is_some());
        assert!(rss_kib() > 0);
    }
}
