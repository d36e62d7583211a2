//! Real host figures from `/proc` and the kernel: node info and Domain-0.
use std::fs;

use crate::api::{DomainStats, NodeInfo, VcpuStats};

/// Clock ticks per second of `/proc/stat` (USER_HZ; 100 on Linux).
const USER_HZ: f64 = 100.0;

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn trimmed(path: &str) -> String {
    read(path).trim().to_string()
}

/// `(MemTotal, MemAvailable)` in MiB.
pub fn memory_mib() -> (u64, u64) {
    let info = read("/proc/meminfo");
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Node information: the static part (`uname`, `/proc/cpuinfo`) is read once,
/// memory figures from `/proc/meminfo` on every call.
pub fn node_info() -> NodeInfo {
    static BASE: std::sync::OnceLock<NodeInfo> = std::sync::OnceLock::new();
    let mut n = BASE.get_or_init(read_node_info).clone();
    let (memory, free_memory) = memory_mib();
    n.memory = memory;
    n.free_memory = free_memory;
    n
}

/// Node information from `uname`, `/proc/cpuinfo` and `/proc/meminfo`.
pub fn read_node_info() -> NodeInfo {
    let cpuinfo = read("/proc/cpuinfo");
    let mut nr_cpus = 0u32;
    let mut cores_per_socket = 0u32;
    let mut siblings = 0u32;
    let mut mhz = 0f64;
    let mut sockets = std::collections::BTreeSet::new();
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => nr_cpus += 1,
            "cpu cores" => cores_per_socket = v.parse().unwrap_or(0),
            "siblings" => siblings = v.parse().unwrap_or(0),
            "cpu MHz" if mhz == 0.0 => mhz = v.parse().unwrap_or(0.0),
            "physical id" => {
                sockets.insert(v.to_string());
            }
            _ => {}
        }
    }
    let nr_cpus = nr_cpus.max(1);
    let sockets = sockets.len().max(1) as u32;
    let cores = if cores_per_socket > 0 {
        cores_per_socket * sockets
    } else {
        nr_cpus
    };
    let hyperthreads_per_core = if cores_per_socket > 0 && siblings >= cores_per_socket {
        siblings / cores_per_socket
    } else {
        1
    };
    let (memory, free_memory) = memory_mib();
    NodeInfo {
        system: trimmed("/proc/sys/kernel/ostype"),
        host: trimmed("/proc/sys/kernel/hostname"),
        release: trimmed("/proc/sys/kernel/osrelease"),
        version: trimmed("/proc/sys/kernel/version"),
        machine: std::env::consts::ARCH.to_string(),
        cores,
        hyperthreads_per_core,
        cpu_mhz: mhz.round() as u32,
        memory,
        free_memory,
        nr_cpus,
        xen_major: 3,
        xen_minor: 0,
        xen_extra: "-kvm".to_string(),
        xen_caps: format!("xen-3.0-{}-kvm", std::env::consts::ARCH),
    }
}

/// Seconds a `/proc/stat` `cpu` line counts as busy: user, nice, system,
/// irq and softirq. Not idle or iowait; not steal (time a hypervisor below
/// gave to others); not guest or guest_nice, which the kernel already counts
/// in user and nice (a VMM's guest time would count twice).
fn busy_secs(line: &str) -> f64 {
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
    (at(0) + at(1) + at(2) + at(5) + at(6)) / USER_HZ
}

/// Domain-0: the host itself, with its CPU time per CPU from `/proc/stat`.
pub fn domain0(node: &NodeInfo) -> DomainStats {
    let stat = read("/proc/stat");
    let mut cpu_time = 0.0;
    let mut vcpu_info = Vec::new();
    for line in stat.lines() {
        if let Some(rest) = line.strip_prefix("cpu") {
            if rest.starts_with(' ') {
                cpu_time = busy_secs(line);
            } else if let Some(id) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                vcpu_info.push(VcpuStats {
                    id,
                    cpu_time: busy_secs(line),
                    state: "running".into(),
                    affinity: Vec::new(),
                    cpu: Some(id as usize),
                });
            }
        }
    }
    let uptime: f64 = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let used = node.memory.saturating_sub(node.free_memory);
    DomainStats {
        id: 0,
        name: "Domain-0".into(),
        memory: used,
        maxmem: node.memory,
        state: "r-----".into(),
        cpu: None,
        cpu_time,
        up_time: uptime,
        start_time: crate::events::now() - uptime,
        vcpus: vcpu_info.len() as u32,
        vcpu_info,
        mem_kib: used * 1024,
        maxmem_kib: node.memory * 1024,
        restart: "never".into(),
        ..DomainStats::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_counts_guest_time_once_and_leaves_out_idle_and_steal() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let line = "cpu  1000 20 300 9000 50 4 6 700 800 10";
        assert!(
            (busy_secs(line) - 13.30).abs() < 1e-9,
            "{}",
            busy_secs(line)
        );
        // An older kernel's shorter line, and garbage, still parse.
        assert!((busy_secs("cpu0 100 0 100 5") - 2.0).abs() < 1e-9);
        assert_eq!(busy_secs("cpu x y"), 0.0);
    }
}
