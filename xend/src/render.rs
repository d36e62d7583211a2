//! The API's data in its SXP forms (reference sections 2 and 3) and the
//! conversion from what a VMM reports to [`DomainStats`].
use hypervisor::control::proto::{RunState, VcpuState};
use sxp::Value;

use crate::api::{ConsoleInfo, DomainStats, NodeInfo, Snapshot, VcpuStats};
use crate::supervisor::{DomState, Domain, Phase};

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

/// A domain's stats from its cached VMM figures and its config.
pub fn domain_stats(dom: &Domain, st: &DomState) -> DomainStats {
    let cfg = &st.config;
    let dying = st.phase == Phase::Dying;
    let mut d = DomainStats {
        id: dom.id,
        name: dom.name.clone(),
        uuid: dom.uuid.map(|u| u.to_string()),
        memory: st.live_memory.unwrap_or(cfg.memory),
        maxmem: cfg.maxmem,
        state: state_letters(None, dying),
        cpu: cfg.cpu,
        vcpus: cfg.vcpus,
        mem_kib: cfg.memory * 1024,
        maxmem_kib: cfg.maxmem * 1024,
        console_port: Some(dom.console.port),
        restart: cfg.restart.as_str().to_string(),
        restarts: st.restarts,
        last_answer: st.last_answer,
        unresponsive_since: st.unresponsive_since,
        ..DomainStats::default()
    };
    let Some(i) = &st.info else { return d };
    d.memory = i.memory.target_kib / 1024;
    d.maxmem = i.memory.max_kib / 1024;
    d.state = state_letters(Some(i.state), dying);
    d.shutdown_reason = i.shutdown_reason.map(|r| r.as_str().to_string());
    d.crash_reason = i.crash_reason.clone();
    if i.state == RunState::Crashed && d.shutdown_reason.is_none() {
        d.shutdown_reason = Some("crash".into());
    }
    d.cpu_time = i.cpu_time_ns as f64 / 1e9;
    d.sampled_at = (i.sampled_at.mono > 0.0).then_some(i.sampled_at);
    d.start_time = i.start_time;
    d.up_time = if i.state.is_final() {
        i.up_time
    } else {
        (crate::events::now() - i.start_time).max(i.up_time)
    };
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
    d.nets = crate::supervisor::devices::net_stats(i);
    d.vbds = crate::supervisor::devices::vbd_stats(i);
    d
}

fn opt_str(items: &mut Vec<Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        items.push(Value::pair(key, v));
    }
}

/// A domain's restart bookkeeping, as Xen 2.0's record showed it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RestartInfo {
    /// `booting` while a restart is under way (2.0 also had `pending`, for a
    /// restart waiting on a dead domain; ours restart at once).
    pub state: Option<&'static str>,
    /// When the domain last restarted (seconds since the epoch).
    pub time: Option<f64>,
}

/// The domain sxpr. First Xen 2.0.6's `XendDomainInfo.sxpr()`, field for field
/// and in its order: `id name memory maxmem state [shutdown_reason] cpu
/// cpu_time up_time start_time [console] [restart_state] [restart_time]
/// (devices ...) [(config ...)]`, with a five-letter `rbpsc` state (2.0's
/// `xm list` columns expect five) and `cpu` the physical CPU vCPU 0 last ran
/// on. Then what Xen 3, xentop and this xend add (`crash_reason`, `vcpus`,
/// `vcpu_info`, ...), always after the 2.0 fields.
pub fn domain_sxp(
    d: &DomainStats,
    console: Option<&ConsoleInfo>,
    restart: RestartInfo,
    config: Option<Value>,
) -> Value {
    let state: String = d.state.chars().take(5).collect();
    let mut items = vec![
        Value::str("domain"),
        Value::pair("id", d.id),
        Value::pair("name", &d.name),
        Value::pair("memory", d.memory),
        Value::pair("maxmem", d.maxmem),
        Value::pair("state", state),
    ];
    opt_str(&mut items, "shutdown_reason", &d.shutdown_reason);
    let last_cpu = d
        .vcpu_info
        .first()
        .and_then(|v| v.cpu)
        .and_then(|c| i64::try_from(c).ok());
    items.push(Value::pair("cpu", last_cpu.or(d.cpu).unwrap_or(-1)));
    items.push(Value::pair("cpu_time", d.cpu_time));
    items.push(Value::pair("up_time", d.up_time));
    items.push(Value::pair("start_time", d.start_time));
    if let Some(c) = console {
        items.push(console_sxp(c));
    }
    if let Some(state) = restart.state {
        items.push(Value::pair("restart_state", state));
    }
    if let Some(t) = restart.time {
        items.push(Value::pair("restart_time", t));
    }
    items.push(crate::supervisor::devices::devices_sxp(d));
    if let Some(c) = config {
        items.push(Value::pair("config", c));
    }
    // Ours, after every 2.0 field.
    opt_str(&mut items, "crash_reason", &d.crash_reason);
    items.push(Value::pair("vcpus", d.vcpus));
    let mut vcpus = vec![Value::str("vcpu_info")];
    for v in &d.vcpu_info {
        let mut aff = vec![Value::str("affinity")];
        aff.extend(v.affinity.iter().map(|c| Value::from(*c)));
        vcpus.push(Value::list([
            Value::str("vcpu"),
            Value::pair("id", v.id),
            Value::pair("cpu_time", v.cpu_time),
            Value::pair("state", &v.state),
            Value::List(aff),
            Value::pair("cpu", v.cpu.map(|c| c as i64).unwrap_or(-1)),
        ]));
    }
    items.push(Value::List(vcpus));
    items.push(Value::pair("restart", &d.restart));
    items.push(Value::pair("mem_kib", d.mem_kib));
    items.push(Value::pair("maxmem_kib", d.maxmem_kib));
    if let Some(p) = d.console_port {
        items.push(Value::pair("console_port", p));
    }
    items.push(Value::pair("console_bytes_out", d.console_bytes_out));
    items.push(Value::pair("console_bytes_in", d.console_bytes_in));
    items.push(Value::pair("exits", d.exits));
    items.push(Value::pair("vmm_overhead_kib", d.vmm_overhead_kib));
    opt_str(&mut items, "uuid", &d.uuid);
    // Last of all (a hung VMM's mark).
    items.extend(health_sxp(d));
    Value::List(items)
}

/// `(unresponsive (since T) (last_answer T))` while the VMM does not answer;
/// nothing while it does (a healthy domain's record is as before; JSON has
/// `last_answer` always).
fn health_sxp(d: &DomainStats) -> Vec<Value> {
    let mut items = Vec::new();
    if let Some(since) = d.unresponsive_since {
        let mut u = vec![Value::str("unresponsive"), Value::pair("since", since)];
        if let Some(t) = d.last_answer {
            u.push(Value::pair("last_answer", t));
        }
        items.push(Value::List(u));
    }
    items
}

/// `(console (status ..) (id ..) (domain ..) (local_port ..) (remote_port ..)
/// (console_port N) [(connected HOST PORT)])`.
pub fn console_sxp(c: &ConsoleInfo) -> Value {
    let mut items = vec![
        Value::str("console"),
        Value::pair("status", &c.status),
        Value::pair("id", c.id),
        Value::pair("domain", c.domain),
        Value::pair("local_port", c.local_port),
        Value::pair("remote_port", c.remote_port),
        Value::pair("console_port", c.console_port),
    ];
    if let Some(peer) = &c.connected {
        let (host, port) = peer.rsplit_once(':').unwrap_or((peer.as_str(), ""));
        items.push(Value::list([
            Value::str("connected"),
            Value::str(host),
            Value::str(port),
        ]));
    }
    Value::List(items)
}

/// A domain's full sxpr (`GET /xend/domain/DOM`).
pub fn domain_full(dom: &Domain) -> (DomainStats, Value) {
    let stats = dom.stats();
    let (config, restart) = {
        let st = dom.state();
        (st.config.to_sxp(), restart_info(&st))
    };
    let v = domain_sxp(&stats, Some(&dom.console.info()), restart, Some(config));
    (stats, v)
}

/// A domain's [`RestartInfo`].
pub fn restart_info(st: &DomState) -> RestartInfo {
    RestartInfo {
        state: (st.phase == Phase::Restarting).then_some("booting"),
        time: st.restart_time,
    }
}

/// The DB record: the domain sxpr plus `(lifetime STAMP)` (its console log's
/// lifetime, see [`crate::console`]) and
/// `(phase restarting)` while a restart is under way (so a restart cut short
/// by a crash of xend is finished when xend starts again).
pub fn db_record(dom: &Domain, st: &DomState) -> Value {
    let stats = domain_stats(dom, st);
    let mut v = domain_sxp(
        &stats,
        Some(&dom.console.info()),
        restart_info(st),
        Some(st.config.to_sxp()),
    );
    if let Value::List(items) = &mut v {
        items.push(Value::pair("lifetime", dom.console.lifetime));
        if st.phase == Phase::Restarting {
            items.push(Value::pair("phase", "restarting"));
        }
    }
    v
}

/// The node sxpr (reference section 3 plus Xen 3's fields).
pub fn node_sxp(n: &NodeInfo) -> Value {
    Value::list([
        Value::str("node"),
        Value::pair("system", &n.system),
        Value::pair("host", &n.host),
        Value::pair("release", &n.release),
        Value::pair("version", &n.version),
        Value::pair("machine", &n.machine),
        Value::pair("cores", n.cores),
        Value::pair("hyperthreads_per_core", n.hyperthreads_per_core),
        Value::pair("cpu_mhz", n.cpu_mhz),
        Value::pair("memory", n.memory),
        Value::pair("free_memory", n.free_memory),
        Value::pair("nr_cpus", n.nr_cpus),
        Value::pair("xen_major", n.xen_major),
        Value::pair("xen_minor", n.xen_minor),
        Value::pair("xen_extra", &n.xen_extra),
        Value::pair("xen_caps", &n.xen_caps),
    ])
}

/// `(snapshot (time T) (xend_version V) (node ...) (domains (domain ...) ...))`.
pub fn snapshot_sxp(s: &Snapshot) -> Value {
    let mut doms = vec![Value::str("domains")];
    doms.extend(
        s.domains
            .iter()
            .map(|d| domain_sxp(d, None, RestartInfo::default(), None)),
    );
    Value::list([
        Value::str("snapshot"),
        Value::pair("time", s.time),
        Value::pair("xend_version", &s.xend_version),
        node_sxp(&s.node),
        Value::List(doms),
    ])
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

    /// Xen 2.0.6's `XendDomainInfo.sxpr()` field order.
    const XEN_2_0_6_ORDER: [&str; 15] = [
        "id",
        "name",
        "memory",
        "maxmem",
        "state",
        "shutdown_reason",
        "cpu",
        "cpu_time",
        "up_time",
        "start_time",
        "console",
        "restart_state",
        "restart_time",
        "devices",
        "config",
    ];

    #[test]
    fn an_unresponsive_domain_says_so_at_the_end() {
        let d = DomainStats {
            name: "hung".into(),
            state: "-b----".into(),
            last_answer: Some(100.5),
            unresponsive_since: Some(102.5),
            ..DomainStats::default()
        };
        let v = domain_sxp(
            &d,
            None,
            RestartInfo::default(),
            Some(Value::list([Value::str("vm")])),
        );
        let heads: Vec<&str> = v.rest().iter().filter_map(|x| x.head()).collect();
        assert_eq!(heads.last(), Some(&"unresponsive"));
        let u = v.child("unresponsive").unwrap();
        assert_eq!(u.child_value("since"), Some("102.5"));
        assert_eq!(u.child_value("last_answer"), Some("100.5"));
        let healthy = DomainStats {
            unresponsive_since: None,
            ..d
        };
        assert!(
            domain_sxp(&healthy, None, RestartInfo::default(), None)
                .child("unresponsive")
                .is_none()
        );
    }

    #[test]
    fn domain0_sxpr_has_the_reference_order_and_no_console() {
        let d = DomainStats {
            name: "Domain-0".into(),
            state: "r-----".into(),
            ..DomainStats::default()
        };
        let v = domain_sxp(&d, None, RestartInfo::default(), None);
        let heads: Vec<&str> = v.rest().iter().filter_map(|x| x.head()).collect();
        assert_eq!(
            &heads[..10],
            [
                "id",
                "name",
                "memory",
                "maxmem",
                "state",
                "cpu",
                "cpu_time",
                "up_time",
                "start_time",
                "devices"
            ]
        );
        assert!(v.child("console").is_none() && v.child("config").is_none());
        assert_eq!(v.child_value("cpu"), Some("-1"));
        assert_eq!(v.child_value("state"), Some("r----"));
        assert_eq!(
            v.child("devices").map(|d| d.to_string()).as_deref(),
            Some("(devices)")
        );
    }

    #[test]
    fn a_full_record_has_every_2_0_field_first_in_2_0_order() {
        let d = DomainStats {
            name: "web".into(),
            state: "---s-d".into(),
            shutdown_reason: Some("crash".into()),
            crash_reason: Some("triple fault".into()),
            cpu: Some(1),
            vcpu_info: vec![VcpuStats {
                cpu: Some(3),
                ..VcpuStats::default()
            }],
            ..DomainStats::default()
        };
        let console = ConsoleInfo::default();
        let restart = RestartInfo {
            state: Some("booting"),
            time: Some(1234.5),
        };
        let config = Value::list([Value::str("vm"), Value::pair("name", "web")]);
        let v = domain_sxp(&d, Some(&console), restart, Some(config));
        let heads: Vec<&str> = v.rest().iter().filter_map(|x| x.head()).collect();
        assert_eq!(&heads[..15], XEN_2_0_6_ORDER, "{v}");
        assert_eq!(heads[15], "crash_reason");
        assert_eq!(v.child_value("state"), Some("---s-"));
        // The physical CPU vCPU 0 last ran on, not the pin.
        assert_eq!(v.child_value("cpu"), Some("3"));
        assert_eq!(v.child_value("restart_time"), Some("1234.5"));
        // Without figures from the VMM: the pin, else -1.
        let d = DomainStats {
            cpu: Some(1),
            ..DomainStats::default()
        };
        let v = domain_sxp(&d, None, RestartInfo::default(), None);
        assert_eq!(v.child_value("cpu"), Some("1"));
        assert!(v.child("restart_state").is_none() && v.child("restart_time").is_none());
    }
}
