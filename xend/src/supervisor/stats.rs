//! The model's output: a domain's API values ([`DomainStats`], its
//! [`DomainRecord`]) from what its VMM last reported and its config. Nothing
//! here formats: `render.rs` turns these values into SXP, the handlers into
//! JSON or HTML.
use hypervisor::control::proto::{DomainInfo, RunState, VcpuState};

use super::{DomState, Domain, Phase};
use crate::api::{
    ConsoleInfo, DomainRecord, DomainStats, NetStats, RestartInfo, SampleTime, VbdStats, VcpuStats,
};

/// The six state letters `rbpscd` (`-` where unset).
pub fn state_letters(state: Option<RunState>, dying: bool) -> String {
    let mut s = *b"------";
    match state {
        Some(RunState::Running) => s[0] = b'r',
        Some(RunState::Blocked) => s[1] = b'b',
        Some(RunState::Paused) => s[2] = b'p',
        Some(RunState::Shutdown) => s[3] = b's',
        Some(RunState::Crashed) => s[4] = b'c',
        None => {}
    }
    if dying {
        s[5] = b'd';
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn vcpu_state(s: VcpuState) -> &'static str {
    match s {
        VcpuState::Running => "running",
        VcpuState::Blocked => "blocked",
        VcpuState::Paused => "paused",
        VcpuState::Offline => "offline",
    }
}

/// A domain's stats from its cached VMM figures and its config. The times
/// are the VMM's own: `up_time` as the VMM measured it at `sampled_at`.
pub fn domain_stats(dom: &Domain, st: &DomState) -> DomainStats {
    let cfg = &st.config;
    let dying = st.phase == Phase::Dying;
    let sched = super::sched::SchedCredit::of(cfg);
    let mut d = DomainStats {
        id: dom.id,
        name: dom.name.clone(),
        uuid: dom.uuid.map(|u| u.to_string()),
        memory: st.live_memory.unwrap_or(cfg.memory),
        maxmem: cfg.maxmem,
        state: state_letters(st.info.as_ref().map(|i| i.state), dying),
        cpu: cfg.cpu,
        cpu_weight: Some(sched.weight),
        cpu_cap: Some(sched.cap),
        vcpus: cfg.vcpus,
        mem_kib: cfg.memory * 1024,
        maxmem_kib: cfg.maxmem * 1024,
        console_port: Some(dom.console.port),
        kernel: match &cfg.image {
            crate::config::Image::Minios { .. } => "minios".to_string(),
            crate::config::Image::Linux { kernel, .. } => kernel.to_string_lossy().into_owned(),
        },
        restart: cfg.restart.as_str().to_string(),
        restarts: st.restarts,
        last_answer: st.last_answer,
        unresponsive_since: st.unresponsive_since,
        progress: st.progress.clone(),
        ..DomainStats::default()
    };
    let Some(i) = &st.info else { return d };
    d.memory = i.memory.target_kib / 1024;
    d.maxmem = i.memory.max_kib / 1024;
    // A reset answering a requested poweroff reads as the poweroff.
    d.shutdown_reason = i.shutdown_reason.map(|r| {
        super::policy::effective_reason(r, st.requested)
            .as_str()
            .to_string()
    });
    d.crash_reason = i.crash_reason.clone();
    if i.state == RunState::Crashed && d.shutdown_reason.is_none() {
        d.shutdown_reason = Some("crash".into());
    }
    d.cpu_time = i.cpu_time_ns as f64 / 1e9;
    d.sampled_at = (i.sampled_at.mono > 0.0).then_some(SampleTime {
        mono: i.sampled_at.mono,
        wall: i.sampled_at.wall,
    });
    d.start_time = i.start_time;
    d.image = i.image.clone();
    d.up_time = i.up_time;
    d.vcpus = i.vcpus.len() as u32;
    d.vcpu_info = i
        .vcpus
        .iter()
        .map(|v| VcpuStats {
            id: v.id,
            cpu_time: v.cpu_time_ns as f64 / 1e9,
            state: vcpu_state(v.state).to_string(),
            affinity: v.affinity.clone(),
            cpu: v.cpu,
        })
        .collect();
    d.mem_kib = i.memory.target_kib;
    d.maxmem_kib = i.memory.max_kib;
    d.console_bytes_out = i.console.bytes_out;
    d.console_bytes_in = i.console.bytes_in;
    d.exits = i.exits.values().sum();
    d.exits_by_kind = i.exits.clone();
    d.vmm_overhead_kib = i.vmm.overhead_kib;
    d.nets = net_stats(i);
    d.vbds = vbd_stats(i);
    d
}

/// A domain's [`RestartInfo`].
pub fn restart_info(st: &DomState) -> RestartInfo {
    RestartInfo {
        state: (st.phase == Phase::Restarting).then_some("booting"),
        time: st.restart_time,
    }
}

/// Everything of a domain's full record (`GET /xend/domain/DOM`, the DB).
pub fn domain_record(dom: &Domain, st: &DomState) -> DomainRecord {
    domain_record_with(dom, st, dom.console.info())
}

/// [`domain_record`] with the console's fields already read.
pub fn domain_record_with(dom: &Domain, st: &DomState, console: ConsoleInfo) -> DomainRecord {
    DomainRecord {
        stats: domain_stats(dom, st),
        console: Some(console),
        restart: restart_info(st),
        config: Some(st.config.to_sxp()),
    }
}

/// The vifs of a VMM's figures.
pub fn net_stats(info: &DomainInfo) -> Vec<NetStats> {
    info.vifs
        .iter()
        .map(|v| NetStats {
            idx: v.id,
            vifname: v.ifname.clone(),
            mac: v.mac.clone(),
            bridge: v.bridge.clone().unwrap_or_default(),
            tx_bytes: v.tx_bytes,
            tx_packets: v.tx_packets,
            tx_errors: v.tx_errors,
            tx_drops: v.tx_drops,
            rx_bytes: v.rx_bytes,
            rx_packets: v.rx_packets,
            rx_errors: v.rx_errors,
            rx_drops: v.rx_drops,
        })
        .collect()
}

/// The vbds of a VMM's figures.
pub fn vbd_stats(info: &DomainInfo) -> Vec<VbdStats> {
    info.vbds
        .iter()
        .map(|v| VbdStats {
            idx: v.id,
            dev: v.dev.clone(),
            uname: v.uname.clone(),
            mode: v.mode.clone(),
            oo_req: v.oo_req,
            rd_req: v.rd_req,
            wr_req: v.wr_req,
            rd_sect: v.rd_sect,
            wr_sect: v.wr_sect,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_letters_are_six_in_rbpscd_order() {
        assert_eq!(state_letters(Some(RunState::Running), false), "r-----");
        assert_eq!(state_letters(Some(RunState::Blocked), false), "-b----");
        assert_eq!(state_letters(Some(RunState::Paused), false), "--p---");
        assert_eq!(state_letters(Some(RunState::Shutdown), false), "---s--");
        assert_eq!(state_letters(Some(RunState::Crashed), true), "----cd");
        assert_eq!(state_letters(None, false), "------");
    }
}
