//! The API's values in their SXP forms (reference sections 2 and 3). The
//! view only: every function here turns API values ([`crate::api`]) into SXP
//! and knows nothing of the supervisor. Each form is written once, against
//! [`Sink`]: into text directly for replies ([`TextSink`], no tree built),
//! or into a [`Value`] for callers that inspect or extend it.
use sxp::{Sink, TextSink, Value, ValueSink};

use crate::api::{
    ConsoleInfo, DomainRecord, DomainStats, NetStats, NodeInfo, OpProgress, RestartInfo, Snapshot,
    VbdStats,
};

/// Bytes of SXP a bulk reply takes per domain, to size its buffer once.
const BYTES_PER_DOMAIN: usize = 640;

fn opt_str(s: &mut impl Sink, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        s.pair_str(key, v);
    }
}

/// Writes the domain sxpr. First Xen 2.0.6's `XendDomainInfo.sxpr()`, field
/// for field and in its order: `id name memory maxmem state
/// [shutdown_reason] cpu cpu_time up_time start_time [console]
/// [restart_state] [restart_time] (devices ...) [(config ...)]`, with a
/// five-letter `rbpsc` state (2.0's `xm list` columns expect five) and `cpu`
/// the physical CPU vCPU 0 last ran on. Then what Xen 3, xentop and this
/// xend add (`crash_reason`, `vcpus`, `vcpu_info`, ..., `uuid`,
/// `sampled_at`), always after the 2.0 fields, and last the hung VMM's mark.
pub fn write_domain(
    s: &mut impl Sink,
    d: &DomainStats,
    console: Option<&ConsoleInfo>,
    restart: RestartInfo,
    config: Option<&Value>,
) {
    s.open("domain");
    s.pair_uint("id", d.id.into());
    s.pair_str("name", &d.name);
    s.pair_uint("memory", d.memory);
    s.pair_uint("maxmem", d.maxmem);
    let state = d.state.get(..5).unwrap_or(&d.state);
    s.pair_str("state", state);
    opt_str(s, "shutdown_reason", &d.shutdown_reason);
    let last_cpu = d
        .vcpu_info
        .first()
        .and_then(|v| v.cpu)
        .and_then(|c| i64::try_from(c).ok());
    s.pair_int("cpu", last_cpu.or(d.cpu).unwrap_or(-1));
    s.pair_float("cpu_time", d.cpu_time);
    s.pair_float("up_time", d.up_time);
    s.pair_float("start_time", d.start_time);
    if let Some(c) = console {
        write_console(s, c);
    }
    if let Some(state) = restart.state {
        s.pair_str("restart_state", state);
    }
    if let Some(t) = restart.time {
        s.pair_float("restart_time", t);
    }
    write_devices(s, d);
    if let Some(c) = config {
        s.open("config");
        s.value(c);
        s.end();
    }
    // Ours, after every 2.0 field.
    opt_str(s, "crash_reason", &d.crash_reason);
    s.pair_uint("vcpus", d.vcpus.into());
    s.open("vcpu_info");
    for v in &d.vcpu_info {
        s.open("vcpu");
        s.pair_uint("id", v.id.into());
        s.pair_float("cpu_time", v.cpu_time);
        s.pair_str("state", &v.state);
        s.open("affinity");
        for c in &v.affinity {
            s.uint(*c as u64);
        }
        s.end();
        s.pair_int("cpu", v.cpu.map(|c| c as i64).unwrap_or(-1));
        s.end();
    }
    s.end();
    s.pair_str("restart", &d.restart);
    s.pair_uint("mem_kib", d.mem_kib);
    s.pair_uint("maxmem_kib", d.maxmem_kib);
    if let Some(p) = d.console_port {
        s.pair_uint("console_port", p.into());
    }
    s.pair_uint("console_bytes_out", d.console_bytes_out);
    s.pair_uint("console_bytes_in", d.console_bytes_in);
    s.pair_uint("exits", d.exits);
    s.pair_uint("vmm_overhead_kib", d.vmm_overhead_kib);
    opt_str(s, "uuid", &d.uuid);
    if let Some(t) = &d.sampled_at {
        s.open("sampled_at");
        s.pair_float("mono", t.mono);
        s.pair_float("wall", t.wall);
        s.end();
    }
    if let Some(p) = &d.progress {
        write_progress(s, p);
    }
    // Last of all: `(unresponsive (since T) (last_answer T))` while the VMM
    // does not answer; nothing while it does (JSON has `last_answer` always).
    if let Some(since) = d.unresponsive_since {
        s.open("unresponsive");
        s.pair_float("since", since);
        if let Some(t) = d.last_answer {
            s.pair_float("last_answer", t);
        }
        s.end();
    }
    s.end();
}

/// The domain sxpr as a [`Value`] (see [`write_domain`]).
pub fn domain_sxp(
    d: &DomainStats,
    console: Option<&ConsoleInfo>,
    restart: RestartInfo,
    config: Option<&Value>,
) -> Value {
    let mut s = ValueSink::new();
    write_domain(&mut s, d, console, restart, config);
    s.finish()
}

/// Writes a domain's full record: stats, console, restart state, config.
pub fn write_record(s: &mut impl Sink, r: &DomainRecord) {
    write_domain(
        s,
        &r.stats,
        r.console.as_ref(),
        r.restart,
        r.config.as_ref(),
    );
}

/// A domain's full record as a [`Value`].
pub fn record_sxp(r: &DomainRecord) -> Value {
    let mut s = ValueSink::new();
    write_record(&mut s, r);
    s.finish()
}

/// One record in the compact form, as [`records_text`] writes it.
pub fn record_text(r: &DomainRecord) -> String {
    let mut s = TextSink::with_capacity(BYTES_PER_DOMAIN * 2);
    write_record(&mut s, r);
    s.finish()
}

/// `(R1 R2 ...)` from records already written by [`record_text`], in
/// order: byte for byte what [`records_text`] writes for the same records.
pub fn records_text_spliced<'a>(
    records: impl IntoIterator<Item = &'a str>,
    capacity: usize,
) -> String {
    let mut s = TextSink::with_capacity(capacity);
    s.begin();
    for r in records {
        s.raw(r);
    }
    s.end();
    s.finish()
}

/// `(R1 R2 ...)`: every record, in the compact form (`?detail=1`).
pub fn records_text(records: &[DomainRecord]) -> String {
    let mut s = TextSink::with_capacity(BYTES_PER_DOMAIN * 2 * (records.len() + 1));
    s.begin();
    for r in records {
        write_record(&mut s, r);
    }
    s.end();
    s.finish()
}

/// Writes `(console (status ..) (id ..) (domain ..) (local_port ..)
/// (remote_port ..) (console_port N) [(connected HOST PORT)])`.
pub fn write_console(s: &mut impl Sink, c: &ConsoleInfo) {
    s.open("console");
    s.pair_str("status", &c.status);
    s.pair_uint("id", c.id.into());
    s.pair_uint("domain", c.domain.into());
    s.pair_uint("local_port", c.local_port.into());
    s.pair_uint("remote_port", c.remote_port.into());
    s.pair_uint("console_port", c.console_port.into());
    if let Some(peer) = &c.connected {
        let (host, port) = peer.rsplit_once(':').unwrap_or((peer.as_str(), ""));
        s.open("connected");
        s.atom(host);
        s.atom(port);
        s.end();
    }
    s.end();
}

/// Writes `(progress (op save) (phase memory) (done_bytes N) (total_bytes N)
/// (percent P) (round R) (dirty_pages D) (seconds S))`.
pub fn write_progress(s: &mut impl Sink, p: &OpProgress) {
    s.open("progress");
    s.pair_str("op", &p.op);
    s.pair_str("phase", &p.phase);
    s.pair_uint("done_bytes", p.done_bytes);
    s.pair_uint("total_bytes", p.total_bytes);
    s.pair_float("percent", (p.percent() * 10.0).round() / 10.0);
    s.pair_uint("round", p.round.into());
    s.pair_uint("dirty_pages", p.dirty_pages);
    s.pair_float("seconds", (p.seconds * 1000.0).round() / 1000.0);
    s.end();
}

/// The progress sxpr as a [`Value`].
pub fn progress_sxp(p: &OpProgress) -> Value {
    let mut s = ValueSink::new();
    write_progress(&mut s, p);
    s.finish()
}

/// The console sxpr as a [`Value`].
pub fn console_sxp(c: &ConsoleInfo) -> Value {
    let mut s = ValueSink::new();
    write_console(&mut s, c);
    s.finish()
}

/// Writes `(vif (idx N) (vif N) (mac M) (vifname vifD.N) (bridge B) (tx_bytes ..) ...)`.
pub fn write_vif(s: &mut impl Sink, n: &NetStats) {
    s.open("vif");
    s.pair_uint("idx", n.idx.into());
    s.pair_uint("vif", n.idx.into());
    s.pair_str("mac", &n.mac);
    s.pair_str("vifname", &n.vifname);
    s.pair_str("bridge", &n.bridge);
    s.pair_uint("tx_bytes", n.tx_bytes);
    s.pair_uint("tx_packets", n.tx_packets);
    s.pair_uint("tx_errors", n.tx_errors);
    s.pair_uint("tx_drops", n.tx_drops);
    s.pair_uint("rx_bytes", n.rx_bytes);
    s.pair_uint("rx_packets", n.rx_packets);
    s.pair_uint("rx_errors", n.rx_errors);
    s.pair_uint("rx_drops", n.rx_drops);
    s.end();
}

/// The vif sxpr as a [`Value`].
pub fn vif_sxp(n: &NetStats) -> Value {
    let mut s = ValueSink::new();
    write_vif(&mut s, n);
    s.finish()
}

/// Writes `(vbd (idx N) (vdev V) (device V) (mode M) (dev D) (uname U) (rd_req ..) ...)`.
pub fn write_vbd(s: &mut impl Sink, v: &VbdStats) {
    let num = u64::from(crate::config::vdev(&v.dev));
    s.open("vbd");
    s.pair_uint("idx", v.idx.into());
    s.pair_uint("vdev", num);
    s.pair_uint("device", num);
    s.pair_str("mode", &v.mode);
    s.pair_str("dev", &v.dev);
    s.pair_str("uname", &v.uname);
    s.pair_uint("rd_req", v.rd_req);
    s.pair_uint("wr_req", v.wr_req);
    s.pair_uint("rd_sect", v.rd_sect);
    s.pair_uint("wr_sect", v.wr_sect);
    s.pair_uint("oo_req", v.oo_req);
    s.end();
}

/// The vbd sxpr as a [`Value`].
pub fn vbd_sxp(v: &VbdStats) -> Value {
    let mut s = ValueSink::new();
    write_vbd(&mut s, v);
    s.finish()
}

/// Writes the domain sxpr's `(devices (vbd ...) ... (vif ...) ...)`,
/// `(devices)` when it has none (Xen 2.0 always printed it).
pub fn write_devices(s: &mut impl Sink, d: &DomainStats) {
    s.open("devices");
    for v in &d.vbds {
        write_vbd(s, v);
    }
    for n in &d.nets {
        write_vif(s, n);
    }
    s.end();
}

/// Writes the node sxpr (reference section 3 plus Xen 3's fields).
pub fn write_node(s: &mut impl Sink, n: &NodeInfo) {
    s.open("node");
    s.pair_str("system", &n.system);
    s.pair_str("host", &n.host);
    s.pair_str("release", &n.release);
    s.pair_str("version", &n.version);
    s.pair_str("machine", &n.machine);
    s.pair_uint("cores", n.cores.into());
    s.pair_uint("hyperthreads_per_core", n.hyperthreads_per_core.into());
    s.pair_uint("cpu_mhz", n.cpu_mhz.into());
    s.pair_uint("memory", n.memory);
    s.pair_uint("free_memory", n.free_memory);
    s.pair_uint("nr_cpus", n.nr_cpus.into());
    s.pair_uint("xen_major", n.xen_major.into());
    s.pair_uint("xen_minor", n.xen_minor.into());
    s.pair_str("xen_extra", &n.xen_extra);
    s.pair_str("xen_caps", &n.xen_caps);
    s.end();
}

/// The node sxpr as a [`Value`].
pub fn node_sxp(n: &NodeInfo) -> Value {
    let mut s = ValueSink::new();
    write_node(&mut s, n);
    s.finish()
}

/// Writes `(snapshot (time T) (xend_version V) (node ...) (domains (domain ...) ...))`.
pub fn write_snapshot(s: &mut impl Sink, snap: &Snapshot) {
    open_snapshot(s, snap.time, &snap.xend_version, &snap.node);
    for d in &snap.domains {
        write_bulk_domain(s, d);
    }
    s.end();
    s.end();
}

/// Writes the snapshot up to its open `(domains` list.
fn open_snapshot(s: &mut impl Sink, time: f64, xend_version: &str, node: &NodeInfo) {
    s.open("snapshot");
    s.pair_float("time", time);
    s.pair_str("xend_version", xend_version);
    write_node(s, node);
    s.open("domains");
}

/// Writes a domain's entry in the bulk snapshot: its sxpr without console,
/// restart state or config.
fn write_bulk_domain(s: &mut impl Sink, d: &DomainStats) {
    write_domain(s, d, None, RestartInfo::default(), None);
}

/// The bulk snapshot in the compact form, written straight into text.
pub fn snapshot_text(snap: &Snapshot) -> String {
    let mut s = TextSink::with_capacity(BYTES_PER_DOMAIN * (snap.domains.len() + 1));
    write_snapshot(&mut s, snap);
    s.finish()
}

/// A domain's entry in the bulk snapshot, in the compact form: what
/// [`snapshot_text`] writes for it, to be kept and spliced in by
/// [`snapshot_text_spliced`].
pub fn bulk_domain_text(d: &DomainStats) -> String {
    let mut s = TextSink::with_capacity(BYTES_PER_DOMAIN);
    write_bulk_domain(&mut s, d);
    s.finish()
}

/// The bulk snapshot in the compact form from its domains' entries already
/// written by [`bulk_domain_text`], in order: byte for byte what
/// [`snapshot_text`] writes for the same values. `capacity` sizes the
/// buffer (the entries' total length plus room for the head).
pub fn snapshot_text_spliced<'a>(
    time: f64,
    xend_version: &str,
    node: &NodeInfo,
    domains: impl IntoIterator<Item = &'a str>,
    capacity: usize,
) -> String {
    let mut s = TextSink::with_capacity(capacity);
    open_snapshot(&mut s, time, xend_version, node);
    for d in domains {
        s.raw(d);
    }
    s.end();
    s.end();
    s.finish()
}

/// The bulk snapshot as a [`Value`].
pub fn snapshot_sxp(snap: &Snapshot) -> Value {
    let mut s = ValueSink::new();
    write_snapshot(&mut s, snap);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SampleTime, VcpuStats};

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
            Some(&Value::list([Value::str("vm")])),
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
        let v = domain_sxp(&d, Some(&console), restart, Some(&config));
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

    #[test]
    fn the_sample_time_follows_our_fields_before_the_hung_mark() {
        let d = DomainStats {
            name: "web".into(),
            state: "-b----".into(),
            uuid: Some("0f0e0d0c-0b0a-4908-8706-050403020100".into()),
            up_time: 12.5,
            sampled_at: Some(SampleTime {
                mono: 5012.25,
                wall: 1764757312.5,
            }),
            unresponsive_since: Some(1764757320.0),
            ..DomainStats::default()
        };
        let v = domain_sxp(&d, None, RestartInfo::default(), None);
        let heads: Vec<&str> = v.rest().iter().filter_map(|x| x.head()).collect();
        assert_eq!(
            heads[heads.len() - 3..],
            ["uuid", "sampled_at", "unresponsive"],
            "{v}"
        );
        let t = v.child("sampled_at").unwrap();
        assert_eq!(t.child_value("mono"), Some("5012.25"));
        assert_eq!(t.child_value("wall"), Some("1764757312.5"));
        // The VMM's own up time, as it reported it.
        assert_eq!(v.child_value("up_time"), Some("12.5"));
        // Before the VMM answered: no stamp.
        let fresh = DomainStats {
            sampled_at: None,
            ..d
        };
        assert!(
            domain_sxp(&fresh, None, RestartInfo::default(), None)
                .child("sampled_at")
                .is_none()
        );
    }

    #[test]
    fn text_and_value_forms_of_a_snapshot_are_the_same() {
        let vcpu = VcpuStats {
            id: 1,
            cpu_time: 1.0 / 3.0,
            state: "running".into(),
            affinity: vec![0, 1],
            cpu: Some(1),
        };
        let dom = DomainStats {
            id: 4,
            name: "it's odd".into(),
            state: "r-----".into(),
            cpu_time: 2.5,
            vcpu_info: vec![vcpu],
            nets: vec![NetStats {
                mac: "aa:00:00:00:00:01".into(),
                ..NetStats::default()
            }],
            vbds: vec![VbdStats {
                dev: "xvda".into(),
                uname: "file:/x y".into(),
                ..VbdStats::default()
            }],
            sampled_at: Some(SampleTime {
                mono: 1.0,
                wall: 2.0,
            }),
            ..DomainStats::default()
        };
        let snap = Snapshot {
            time: 1764757312.123,
            xend_version: "0.1.0".into(),
            node: NodeInfo::default(),
            domains: vec![DomainStats::default(), dom],
        };
        assert_eq!(snapshot_text(&snap), snapshot_sxp(&snap).to_string());
        let records = [DomainRecord {
            stats: snap.domains[1].clone(),
            console: Some(ConsoleInfo {
                connected: Some("127.0.0.1:4242".into()),
                ..ConsoleInfo::default()
            }),
            restart: RestartInfo {
                state: Some("booting"),
                time: Some(3.5),
            },
            config: Some(Value::list([Value::str("vm"), Value::pair("name", "x")])),
        }];
        assert_eq!(
            records_text(&records),
            Value::list([record_sxp(&records[0])]).to_string()
        );
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn progress_is_one_list_in_the_domain_and_its_events() {
        let p = OpProgress {
            op: "save".into(),
            phase: "memory".into(),
            done_bytes: 1 << 20,
            total_bytes: 4 << 20,
            seconds: 0.25,
            ..OpProgress::default()
        };
        let want = "(progress (op save) (phase memory) (done_bytes 1048576) \
                    (total_bytes 4194304) (percent 25) (round 0) (dirty_pages 0) (seconds 0.25))";
        assert_eq!(progress_sxp(&p).to_string(), want);
        let d = DomainStats {
            id: 4,
            name: "big".into(),
            progress: Some(p.clone()),
            ..DomainStats::default()
        };
        let mut s = TextSink::with_capacity(256);
        write_domain(&mut s, &d, None, RestartInfo::default(), None);
        assert!(s.finish().contains(want));
        let e = crate::api::XendEvent {
            event: "xend.domain.progress".into(),
            domid: Some(4),
            name: Some("big".into()),
            detail: Some(p.summary()),
            time: 1.0,
            progress: Some(p),
        };
        let text = crate::events::to_sxp(&e).to_string();
        assert!(
            text.contains("(detail 'save memory 25% (1.0 of 4.0 MiB)')") && text.contains(want),
            "{text}"
        );
    }
}
