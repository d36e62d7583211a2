//! What `info` reports about a domain: run state, per-vCPU figures, memory,
//! console and device counters, the VMM's own cost, stamped with when.
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use super::Domain;
use crate::control::proto::{
    ConsoleStats, DomainInfo, MemoryInfo, RunState, SampleTime, VcpuInfo, VcpuState, VmmInfo,
};
use crate::stats;

impl Domain {
    /// Everything `info` reports.
    pub fn info(&self) -> DomainInfo {
        let sampled_at = SampleTime::now();
        let inner = self.lock();
        let vcpus: Vec<VcpuInfo> = inner
            .threads
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let online = inner.online(i);
                VcpuInfo {
                    id: i as u32,
                    cpu_time_ns: match v.thread {
                        // SAFETY: the thread is online and we hold the domain
                        // lock, under which it goes offline before exiting.
                        Some(t) if online => unsafe { stats::thread_cpu_ns(t) },
                        _ => v.final_cpu_ns,
                    },
                    state: match (
                        inner.machine.vcpu(i),
                        self.linux.get().map(|m| m.vcpu_blocking(i)),
                    ) {
                        // In-kernel HLT: KVM knows whether the vCPU waits.
                        (VcpuState::Running, Some(Some(true))) => VcpuState::Blocked,
                        (state, _) => state,
                    },
                    affinity: if online {
                        stats::affinity(v.tid)
                    } else {
                        Vec::new()
                    },
                    cpu: if online { stats::last_cpu(v.tid) } else { None },
                    exits: self.vcpu_exits[i].load(Ordering::Relaxed),
                }
            })
            .collect();
        let mut ev = Self::event_of(&inner);
        if ev.state == RunState::Running
            && self.linux.get().is_some()
            && vcpus.iter().all(|v| v.state != VcpuState::Running)
        {
            ev.state = RunState::Blocked;
        }
        let (max_kib, target_kib) = (inner.max_kib, inner.target_kib);
        drop(inner);
        let touched_kib = self.ram.touched_bytes() / 1024;
        let rss_kib = stats::rss_kib();
        DomainInfo {
            domid: self.spec.domid,
            name: self.spec.name.clone(),
            state: ev.state,
            shutdown_reason: ev.shutdown_reason,
            crash_reason: ev.crash_reason,
            kernel: self.spec.kernel.clone(),
            image: match self.linux.get() {
                Some(m) => m.kind.as_str(),
                None if self.spec.kernel == "minios" => "minios",
                None => "elf",
            }
            .to_string(),
            cmdline: self.spec.cmdline.clone(),
            start_time: self
                .start_wall
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            up_time: self.start.elapsed().as_secs_f64(),
            sampled_at,
            cpu_time_ns: vcpus.iter().map(|v| v.cpu_time_ns).sum(),
            vcpus,
            memory: MemoryInfo {
                configured_kib: self.spec.memory_mib * 1024,
                max_kib,
                target_kib,
                touched_kib,
                guest_used_kib: self.guest_used_kib.load(Ordering::Relaxed),
            },
            console: ConsoleStats {
                bytes_out: self.console.bytes_out(),
                bytes_in: self.console.bytes_in(),
            },
            exits: self.exits.snapshot(),
            vmm: VmmInfo {
                // The host's number: a jailed VMM is pid 1 of its own
                // namespace, and xend signals and places it by this.
                pid: crate::jail::host_pid(),
                rss_kib,
                overhead_kib: rss_kib.saturating_sub(touched_kib),
            },
            vbds: match self.linux.get() {
                Some(m) => m.vbd_info(),
                None => self.devices.vbd_info(),
            },
            vifs: match self.linux.get() {
                Some(m) => m.vif_info(),
                None => self.devices.vif_info(),
            },
        }
    }
}
