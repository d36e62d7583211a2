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

/// Domain-0: the host itself, with its CPU time per CPU from `/proc/stat`.
pub fn domain0(node: &NodeInfo) -> DomainStats {
    let stat = read("/proc/stat");
    let busy = |line: &str| -> f64 {
        // user nice system idle iowait irq softirq steal
        let f: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let sum: f64 = f.iter().sum();
        let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
        (sum - idle) / USER_HZ
    };
    let mut cpu_time = 0.0;
    let mut vcpu_info = Vec::new();
    for line in stat.lines() {
        if let Some(rest) = line.strip_prefix("cpu") {
            if rest.starts_with(' ') {
                cpu_time = busy(line);
            } else if let Some(id) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                vcpu_info.push(VcpuStats {
                    id,
                    cpu_time: busy(line),
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
